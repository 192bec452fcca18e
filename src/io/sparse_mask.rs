//! Mask buffers whose empty pages are never written.
//!
//! Most of a lesion mask is background, and an empty prediction is all
//! background. Writing those zeros costs a page fault per 4 KiB of a fresh
//! buffer (~2–3 µs each on the VMs measured: ~75 ms for a 512³ mask) and makes
//! every later scan read 128 MiB from memory. Instead the buffer starts zeroed
//! (`calloc`: a fresh mapping for large sizes) and is filled page by page; a
//! page whose source voxels are all zero bytes is skipped and stays unmapped.
//! The whole buffer is then mapped readable in one call, which points every
//! skipped page at the kernel's shared zero page: no memory, no faults later,
//! and the labeller's scan of empty regions reads one cached page (512³
//! all-zero on the dev VM: labelling 15–18 → 6–8 ms, reading and labelling
//! 235–273 → 158–168 ms; docs/benchmarks.md). Where `calloc` hands back heap
//! memory it cleared, or on other systems, the same bytes result with fewer
//! savings.

use crate::pages::{self, Advice};
use std::ops::Range;

/// A mask of `n` voxels. `is_zero(range)` tells whether the source of voxels
/// `range` is all zero bytes (so their mask bytes are all 0); otherwise
/// `fill(range, out)` writes their mask bytes (0 or 1) into `out`
/// (`out.len() == range.len()`). Ranges are page-aligned pieces of the output
/// of at most [`pages::PAGE`] voxels.
pub(super) fn sparse_mask(
    n: usize,
    is_zero: impl Fn(Range<usize>) -> bool,
    mut fill: impl FnMut(Range<usize>, &mut [u8]),
) -> Vec<u8> {
    let mut out = vec![0u8; n];
    let mut at = 0;
    // The first piece ends at the first page boundary, so that no later piece straddles one.
    let mut step = pages::PAGE - out.as_ptr() as usize % pages::PAGE;
    while at < n {
        let end = (at + step).min(n);
        if !is_zero(at..end) {
            fill(at..end, &mut out[at..end]);
        }
        at = end;
        step = pages::PAGE;
    }
    pages::advise(out.as_ptr(), n, pages::PAGE, Advice::PopulateRead);
    out
}

/// Whether every byte of `bytes` is zero (one vectorised OR).
pub(super) fn all_zero(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |a, &b| a | b) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Same bytes as a plain conversion, for lengths around page multiples and
    /// foreground on page edges, at the first and last voxel, and nowhere.
    #[test]
    fn matches_a_plain_conversion() {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for n in [0, 1, 100, 4095, 4096, 4097, 3 * 4096 + 17, 200_000] {
            for density in [0u64, 1, 500] {
                let src: Vec<u8> = (0..n)
                    .map(|i| {
                        s ^= s << 13;
                        s ^= s >> 7;
                        s ^= s << 17;
                        let edge = i == 0 || i + 1 == n || i % 4096 == 4095;
                        u8::from((density > 0 && edge) || s % 1000 < density) * 7
                    })
                    .collect();
                let want: Vec<u8> = src.iter().map(|&b| u8::from(b != 0)).collect();
                let got = sparse_mask(
                    n,
                    |r| all_zero(&src[r]),
                    |r, out| {
                        assert_eq!(r.len(), out.len());
                        assert!(r.len() <= pages::PAGE);
                        for (o, &b) in out.iter_mut().zip(&src[r]) {
                            *o = u8::from(b != 0);
                        }
                    },
                );
                assert_eq!(got, want, "n = {n}, density = {density}");
            }
        }
    }
}
