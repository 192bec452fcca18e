//! Page-level memory hints (Linux `madvise`), shared by the NIfTI reader and
//! the CPU labeller.
//!
//! They only change when and how the kernel maps pages, never a byte of their
//! contents, so results are identical where a hint is unsupported (other
//! systems, older kernels): the work then just happens in page faults later.

/// Base page size assumed by the callers' page-sized steps (4 KiB on x86-64
/// and on common aarch64 kernels). On a kernel with 16 or 64 KiB pages a
/// range that is not aligned to them is refused (`EINVAL`, ignored), so some
/// hints are lost there: a matter of speed, never of results.
pub(crate) const PAGE: usize = 4096;

/// Huge-page size on x86-64 and aarch64 (4 KiB base pages).
pub(crate) const HUGE_PAGE: usize = 2 << 20;

/// What to ask of the kernel for a range of pages.
#[derive(Clone, Copy)]
pub(crate) enum Advice {
    /// `MADV_POPULATE_WRITE`: map the pages writable now (Linux ≥ 5.14),
    /// one call instead of a fault per page as a write reaches them.
    PopulateWrite,
    /// `MADV_POPULATE_READ`: map the pages readable now (Linux ≥ 5.14); pages
    /// never written get the kernel's shared zero page, which costs no memory.
    PopulateRead,
    /// `MADV_HUGEPAGE`: back the range with 2 MiB pages where possible.
    HugePage,
}

/// Gives `advice` for the whole pages (of `align` bytes, [`PAGE`] or
/// [`HUGE_PAGE`]) within `len` bytes from `addr`, which must lie in one
/// allocation the caller holds (mutably, for the write and huge-page advice).
/// A refusal (old kernel, THP not built in: `EINVAL`) is harmless and ignored.
pub(crate) fn advise(addr: *const u8, len: usize, align: usize, advice: Advice) {
    #[cfg(target_os = "linux")]
    {
        let addr = addr as usize;
        let start = addr.next_multiple_of(align);
        let end = (addr + len) / align * align;
        if end > start {
            let advice = match advice {
                Advice::PopulateWrite => libc::MADV_POPULATE_WRITE,
                Advice::PopulateRead => libc::MADV_POPULATE_READ,
                Advice::HugePage => libc::MADV_HUGEPAGE,
            };
            // SAFETY: [start, end) lies inside the caller's allocation, and
            // these advices only map pages in or choose their size; they
            // change no byte of the memory.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, advice);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (addr, len, align, advice);
}
