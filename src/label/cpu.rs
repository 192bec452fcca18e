//! Run-based two-pass connected-component labelling on the CPU, split into
//! z-slabs that rayon labels in parallel.
//!
//! Why hand-written: no crate labels 3-D volumes with a guaranteed numbering
//! and the run-level statistics we need, and the voxel-level union-find of
//! general-purpose crates is several times slower on lesion masks.
//!
//! The algorithm:
//! 1. **Slabs.** The volume is cut into contiguous z-slabs (one for small
//!    volumes or one thread, a few per thread otherwise). Every later step
//!    except the stitch runs on slabs in parallel; nothing depends on how the
//!    volume was cut, so labels are identical for any slab or thread count.
//! 2. **Runs.** Each row (fixed j, k; i varies) is turned into maximal runs of
//!    foreground. Rows that are all zero are rejected by one vectorised OR;
//!    other rows are read 64 bytes at a time into a bit mask `m` (bit i = voxel
//!    i is foreground; eight bytes per u64 operation, see [`fg_bits64`]).
//!    `m ^ (m << 1 | carry)` has a bit wherever foreground starts or stops:
//!    the bits also set in `m` are run starts, the others run ends, so both
//!    lists are read off with `trailing_zeros` without a branch per voxel
//!    (noisy masks have runs of one or two voxels).
//!    Runs are kept in raster order (row by row in storage order, left to
//!    right in a row), per slab.
//! 3. **Union.** A run can only touch runs of earlier rows through the rows
//!    above (j−1, k), behind (j, k−1), and the two diagonals (j∓1, k−1). For
//!    each such row a two-pointer sweep finds overlapping runs:
//!    - 6-conn: (j−1,k) and (j,k−1) with exact i overlap;
//!    - 18-conn: those two with ±1 overlap (edge neighbours), plus (j±1,k−1)
//!      with exact overlap;
//!    - 26-conn: all four rows with ±1 overlap.
//!
//!    The sweep only records the touching pairs, without a branch per step
//!    (on noise whether two runs touch is a coin flip, and ~2·10⁸ steps at
//!    512³ made mispredictions the labeller's main cost); the pairs are then
//!    unioned in a second, predictable loop. (Finding each run's touching
//!    range by popcount rank queries on per-row bit maps was tried and was
//!    slower: its variable-length inner loops mispredict as much.)
//!    When earlier rows' runs all ended with one label (the giant component
//!    of dense noise) and the current row is noisy, only which runs touch
//!    those rows matters, not which of their runs: their foreground bits,
//!    widened by the tolerance, are ORed into one mask, and the runs holding
//!    a bit of it are found a 64-bit word at a time by an addition whose
//!    carry runs through each such run ([`RowMaps::touched_runs`]). That
//!    replaced a bit test per run and earlier row (random p=0.5 512³:
//!    26-conn 1.45 → 0.99 s, 18-conn 1.81 → 1.45 s).
//!    Otherwise a noisy row and an earlier row that touch only on exact overlap
//!    (6-conn; 18-conn's diagonals) get their touching pairs from bit maps:
//!    the pairs are the maximal runs of the two rows' common foreground, and
//!    each pair's two runs are found by counting run starts up to the pair's
//!    first voxel (a popcount), independently for every pair — where the sweep
//!    is a chain of dependent steps (~10 % off dense noise at 6-conn).
//!
//!    Runs in the same row never touch (they are maximal). A run takes the
//!    label of the first earlier run it touches, and further touches union
//!    the two labels; a run touching nothing opens a new label. Labels are
//!    opened in raster order and union-find links the root with the larger
//!    label under the smaller, so a component's root is the label opened by
//!    its first run — whose first voxel is the component's first voxel in
//!    storage order. That is the numbering contract. The union-find is over
//!    labels, not runs, and a finished row's labels are replaced by their
//!    roots, so on dense noise most touches compare equal and skip the union.
//!    Each slab does this for its own planes (rows behind its first plane
//!    belong to the slab before); its labels are shifted by the label counts
//!    of earlier slabs, which keeps them in raster order.
//! 4. **Stitch.** The first plane of every slab is unioned with the last
//!    plane of the slab before (same rule, same min linking). The boundaries'
//!    touching pairs are found in parallel, as pairs of roots without
//!    repeats, and unioned serially; only one plane pair per boundary is
//!    visited. Each run of the two planes has its root looked up once; where
//!    two facing rows each carry a single root (dense noise: the giant
//!    component), a sweep that stops at the first touch decides their one
//!    pair. (Looking roots up per touching pair and sweeping every run pair
//!    took 17 ms of a 600 ms two-thread labelling of 512³ noise; now 2–3 ms.)
//! 5. **Number.** One forward pass over the (small) label table turns roots
//!    into 1..=N: parents are smaller than children, so a parent is final
//!    before its children are visited. Roots of slab s get a contiguous range.
//! 6. **Write.** Each slab looks its runs' final labels up in that table
//!    (read-only now, so slabs share it) and fills its own disjoint part of
//!    the output. The output starts zeroed (lazily, by the allocator), so
//!    only foreground runs are written and pages without lesions are never
//!    touched. A fresh output is mapped ahead of the write, piece by piece
//!    (512 KiB, just before the piece is written, so the kernel's zeroing is
//!    still cached): whole pieces where most rows hold foreground, and in a
//!    large volume also each stretch of consecutive foreground rows (a
//!    lesion's cross-section) — one `madvise` call instead of a page fault
//!    per 4 KiB; 2 MiB regions made of solid rows (whole planes of
//!    foreground) or with at least a quarter of their pages under lesions are
//!    asked for huge pages first (one fault instead of 128–512), all on one
//!    thread before the parallel write (that advice takes the mmap lock for
//!    writing, so from the write threads it stalled their mapping). A row of
//!    many runs (noise) that all got one label is written with one
//!    vectorised select over the row's mask instead; one of several labels
//!    first goes to a scratch row, four labels per run in one store, and is
//!    then copied by the same select. Lesion
//!    statistics are added in the same pass, once per group of consecutive
//!    runs of a row with the same label: a slab owns the statistics of the
//!    labels it numbered and keeps a small side table for components that
//!    started in an earlier slab, merged at the end.

use super::{Components, Connectivity, LesionStats};
use crate::pages::{self, Advice};
use rayon::prelude::*;
use std::collections::HashMap;

/// Foreground runs of a range of rows: row r's runs are `start[row_ptr[r]..row_ptr[r+1]]`.
pub(super) struct Runs {
    pub(super) start: Vec<u32>,
    pub(super) end: Vec<u32>,
    pub(super) row_ptr: Vec<u32>,
}

impl Runs {
    /// Whether row `r` holds any foreground.
    fn busy(&self, r: usize) -> bool {
        self.row_ptr[r] != self.row_ptr[r + 1]
    }
}

/// Volumes below this many voxels are labelled as one slab: splitting them
/// costs more in rayon overhead than a second core saves.
const PARALLEL_MIN_VOXELS: usize = 1 << 20;

/// Slabs per thread, so that a slab that happens to hold most of the lesions
/// does not leave the other threads idle.
const SLABS_PER_THREAD: usize = 4;

pub(super) fn find_runs(mask: &[u8], nx: usize, rows: usize) -> Runs {
    let mut start = Vec::new();
    let mut end = Vec::new();
    let mut row_ptr = Vec::with_capacity(rows + 1);
    row_ptr.push(0u32);
    // Dense masks have tens of millions of runs: past the first piece, the
    // lists' next piece is mapped ahead in one call rather than faulted in
    // page by page as the pushes reach it.
    let mut mapped_to = MAP_PIECE_RUNS;
    for line in mask[..nx * rows].chunks_exact(nx.max(1)) {
        // One vectorised OR rejects empty rows (most rows of a lesion mask)
        // at memory speed, before any per-chunk bit work.
        if line.iter().fold(0u8, |a, &b| a | b) != 0 {
            if start.len() + nx >= mapped_to {
                let piece = MAP_PIECE_RUNS + nx;
                if start.capacity() < start.len() + piece {
                    // Room for the runs the rest of the slab will hold at the
                    // density seen so far: dense noise reallocates (copies)
                    // its lists once, early, rather than at every doubling.
                    let done = row_ptr.len();
                    let projected = start.len() / done * rows + start.len() % done * rows / done + nx;
                    if projected > start.capacity() || start.capacity() < start.len() + nx {
                        // At least half as much again: growth stays amortised
                        // if the density rises further down the slab.
                        let cap = (start.len() + piece).max(projected).max(start.capacity() * 3 / 2);
                        start.reserve_exact(cap - start.len());
                        end.reserve_exact(cap - end.len());
                    }
                }
                let piece = piece
                    .min(start.capacity() - start.len())
                    .min(end.capacity() - end.len());
                map_spare(&mut start, piece);
                map_spare(&mut end, piece);
                mapped_to = (start.len() + MAP_PIECE_RUNS).min(start.capacity());
            }
            scan_row(line, &mut start, &mut end);
        }
        row_ptr.push(start.len() as u32);
    }
    Runs { start, end, row_ptr }
}

/// Bit i set when `chunk[i]` is non-zero.
///
/// Eight bytes at a time in a u64 (SWAR): `((w & 0x7f..) + 0x7f..) | w` has
/// the top bit of a byte set exactly when the byte is non-zero (the add cannot
/// carry across bytes), and multiplying those top bits, shifted down to bit 0
/// of each byte, by `0x0102_0408_1020_4080` gathers them into the top byte in
/// order. Portable and ~6× faster than the per-byte shift loop, which LLVM
/// turns into a long shuffle sequence rather than a compare-and-movemask.
#[inline]
fn fg_bits64(chunk: &[u8; 64]) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const GATHER: u64 = 0x0102_0408_1020_4080;
    let mut m = 0u64;
    for (k, word) in chunk.chunks_exact(8).enumerate() {
        let w = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
        let top = (((w & LOW7) + LOW7) | w) & !LOW7;
        m |= ((top >> 7).wrapping_mul(GATHER) >> 56) << (8 * k);
    }
    m
}

/// [`fg_bits64`] of fewer than 64 bytes (a row's tail); the missing bytes count as background.
#[inline]
fn fg_bits_short(tail: &[u8]) -> u64 {
    let mut padded = [0u8; 64];
    padded[..tail.len()].copy_from_slice(tail);
    fg_bits64(&padded)
}

/// Appends the runs of one row (see step 2 of the module comment).
#[inline]
fn scan_row(line: &[u8], start: &mut Vec<u32>, end: &mut Vec<u32>) {
    // `carry` is 1 when the voxel before the current chunk is foreground.
    let mut carry = 0u64;
    let mut base = 0u32;
    let mut chunks = line.chunks_exact(64);
    for c in &mut chunks {
        let m = fg_bits64(c.try_into().unwrap_or(&[0; 64]));
        let edges = m ^ ((m << 1) | carry);
        carry = m >> 63;
        push_edges(edges, m, base, start, end);
        base += 64;
    }
    let tail = chunks.remainder();
    if tail.is_empty() {
        if carry != 0 {
            end.push(base);
        }
        return;
    }
    let m = fg_bits_short(tail);
    // Bits 0..=len: bit len is past the row, background, so a run reaching the
    // row's end gets its end edge there.
    let keep = u64::MAX >> (63 - tail.len());
    let edges = (m ^ ((m << 1) | carry)) & keep;
    push_edges(edges, m, base, start, end);
}

#[inline]
fn push_edges(edges: u64, m: u64, base: u32, start: &mut Vec<u32>, end: &mut Vec<u32>) {
    let mut s = edges & m;
    while s != 0 {
        start.push(base + s.trailing_zeros());
        s &= s - 1;
    }
    let mut e = edges & !m;
    while e != 0 {
        end.push(base + e.trailing_zeros());
        e &= e - 1;
    }
}

#[inline]
fn find(parent: &mut [u32], mut a: u32) -> u32 {
    while parent[a as usize] != a {
        let gp = parent[parent[a as usize] as usize];
        parent[a as usize] = gp; // path halving
        a = gp;
    }
    a
}

/// The root of `a`, without shortening the path (for a table shared read-only).
#[inline]
fn root(parent: &[u32], mut a: u32) -> u32 {
    while parent[a as usize] != a {
        a = parent[a as usize];
    }
    a
}

#[inline]
fn union(parent: &mut [u32], a: u32, b: u32) {
    let ra = find(parent, a);
    let rb = find(parent, b);
    if ra < rb {
        parent[rb as usize] = ra;
    } else if rb < ra {
        parent[ra as usize] = rb;
    }
}

/// (row offset in j, row offset in k, x tolerance) of each earlier row whose
/// runs can touch a run of the current row: tolerance 1 accepts diagonal contact.
pub(super) fn neighbour_rows(connectivity: Connectivity) -> &'static [(isize, isize, u32)] {
    match connectivity {
        Connectivity::Six => &[(-1, 0, 0), (0, -1, 0)],
        Connectivity::Eighteen => &[(-1, 0, 1), (0, -1, 1), (-1, -1, 0), (1, -1, 0)],
        Connectivity::TwentySix => &[(-1, 0, 1), (0, -1, 1), (-1, -1, 1), (1, -1, 1)],
    }
}

/// Calls `touch(i, j)` for every pair of runs of rows `cur` and `prev` that
/// touch (overlap in x, or with `tol` = 1 also diagonally).
#[inline]
pub(super) fn touching_runs(runs: &Runs, cur: usize, prev: usize, tol: u32, touch: impl FnMut(usize, usize)) {
    touching_between(runs, cur, runs, prev, tol, touch);
}

/// [`touching_runs`] for rows held in two run lists (two slabs); indices are
/// into each list.
#[inline]
fn touching_between(a: &Runs, cur: usize, b: &Runs, prev: usize, tol: u32, mut touch: impl FnMut(usize, usize)) {
    let (mut i, ie) = (a.row_ptr[cur] as usize, a.row_ptr[cur + 1] as usize);
    let (mut j, je) = (b.row_ptr[prev] as usize, b.row_ptr[prev + 1] as usize);
    while i < ie && j < je {
        let (as_, ae) = (a.start[i], a.end[i]);
        let (bs, be) = (b.start[j], b.end[j]);
        if as_ < be + tol && bs < ae + tol {
            touch(i, j);
        }
        // The run that ends first cannot touch the other row's next run.
        // Arithmetic, not a branch: on noise the outcome is a coin flip.
        let step = usize::from(ae <= be);
        i += step;
        j += 1 - step;
    }
}

/// Whether any run of row `cur` of `a` touches a run of row `prev` of `b`
/// ([`touching_between`]'s rule), stopping at the first touch.
fn any_touch(a: &Runs, cur: usize, b: &Runs, prev: usize, tol: u32) -> bool {
    let (mut i, ie) = (a.row_ptr[cur] as usize, a.row_ptr[cur + 1] as usize);
    let (mut j, je) = (b.row_ptr[prev] as usize, b.row_ptr[prev + 1] as usize);
    while i < ie && j < je {
        if a.start[i] < b.end[j] + tol && b.start[j] < a.end[i] + tol {
            return true;
        }
        if a.end[i] <= b.end[j] {
            i += 1;
        } else {
            j += 1;
        }
    }
    false
}

/// The label every run of row `r` carries (`label[k]` is run `k + first`'s),
/// or [`NO_LABEL`] if they differ or the row is empty.
fn row_label(runs: &Runs, label: &[u32], first: usize, r: usize) -> u32 {
    let span = &label[runs.row_ptr[r] as usize - first..runs.row_ptr[r + 1] as usize - first];
    match span.first() {
        Some(&l0) if span.iter().all(|&l| l == l0) => l0,
        _ => NO_LABEL,
    }
}

/// Labels a binary mask (non-zero = foreground) of `shape` in storage order,
/// in parallel on rayon's pool when the volume is large enough.
///
/// # Panics
/// If `mask.len()` is not the product of `shape`, or the volume has 2³² voxels
/// or more (readers refuse such volumes before they get here).
pub fn label_cpu(mask: &[u8], shape: [usize; 3], connectivity: Connectivity) -> Components {
    let n: usize = shape.iter().product();
    let threads = rayon::current_num_threads();
    let slabs = if threads == 1 || n < PARALLEL_MIN_VOXELS {
        1
    } else {
        threads * SLABS_PER_THREAD
    };
    label_cpu_slabs(mask, shape, connectivity, slabs)
}

/// One slab's runs, each run's provisional label, and the slab's union-find
/// over those labels (all local: the slab's first label is 0).
struct Slab {
    runs: Runs,
    label: Vec<u32>,
    uf: Vec<u32>,
}

/// [`label_cpu`] with the volume cut into `slabs` z-slabs (clamped to 1..=nz)
/// whatever its size, so tests can exercise stitching on small volumes.
/// Labels and statistics do not depend on `slabs`.
///
/// # Panics
/// As [`label_cpu`].
pub fn label_cpu_slabs(mask: &[u8], shape: [usize; 3], connectivity: Connectivity, slabs: usize) -> Components {
    label_slabs::<true>(mask, shape, connectivity, slabs, None)
}

/// [`label_cpu`] writing into the label volume of an earlier result of the
/// same shape (e.g. the previous case of a folder), to skip the page faults
/// of a fresh allocation: only the bounding boxes of `previous`'s lesions are
/// cleared first. Gives the same result as [`label_cpu`]. A `previous` of
/// another size is simply dropped.
///
/// # Panics
/// As [`label_cpu`].
pub fn label_cpu_recycling(
    mask: &[u8],
    shape: [usize; 3],
    connectivity: Connectivity,
    previous: Components,
) -> Components {
    let n: usize = shape.iter().product();
    let slabs = if rayon::current_num_threads() == 1 || n < PARALLEL_MIN_VOXELS {
        1
    } else {
        rayon::current_num_threads() * SLABS_PER_THREAD
    };
    let reuse = (previous.labels.len() == n).then(|| clear_lesions(previous));
    label_slabs::<true>(mask, shape, connectivity, slabs, reuse)
}

/// Zeroes the bounding box of every lesion of `c` (all its non-zero voxels lie
/// in them); the whole volume when some lesion has no statistics to go by.
fn clear_lesions(c: Components) -> Vec<u32> {
    let Components {
        shape,
        mut labels,
        lesions,
    } = c;
    if lesions.iter().any(|l| l.voxels == 0) {
        labels.fill(0);
        return labels;
    }
    let [nx, ny, _] = shape;
    for l in &lesions {
        for z in l.bbox_min[2]..=l.bbox_max[2] {
            for y in l.bbox_min[1]..=l.bbox_max[1] {
                let row = nx * (y + ny * z);
                labels[row + l.bbox_min[0]..=row + l.bbox_max[0]].fill(0);
            }
        }
    }
    labels
}

/// [`label_cpu_slabs`] without the lesion statistics (every lesion gets an
/// empty, zero-voxel entry):
/// only for measuring what the fused statistics cost (`benches/label_cpu.rs`).
#[doc(hidden)]
pub fn label_cpu_slabs_without_stats(
    mask: &[u8],
    shape: [usize; 3],
    connectivity: Connectivity,
    slabs: usize,
) -> Components {
    label_slabs::<false>(mask, shape, connectivity, slabs, None)
}

/// The labeller. `zeroed` is an all-zero label volume to write into (else a fresh one is allocated).
fn label_slabs<const STATS: bool>(
    mask: &[u8],
    shape: [usize; 3],
    connectivity: Connectivity,
    slabs: usize,
    zeroed: Option<Vec<u32>>,
) -> Components {
    let [nx, ny, nz] = shape;
    let n = nx * ny * nz;
    assert_eq!(mask.len(), n, "mask length does not match shape {shape:?}");
    assert!(n <= u32::MAX as usize, "volume too large for u32 labels");
    if n == 0 {
        return Components {
            shape,
            labels: Vec::new(),
            lesions: Vec::new(),
        };
    }
    let plane = nx * ny;
    let nslabs = slabs.clamp(1, nz);
    let bounds: Vec<(usize, usize)> = (0..nslabs).map(|s| (s * nz / nslabs, (s + 1) * nz / nslabs)).collect();
    let neighbours = neighbour_rows(connectivity);

    // Steps 2 and 3 per slab.
    let mut work: Vec<Slab> = bounds
        .par_iter()
        .map(|&(z0, z1)| {
            let runs = find_runs(&mask[z0 * plane..z1 * plane], nx, (z1 - z0) * ny);
            let (label, uf) = union_slab(&runs, &mask[z0 * plane..z1 * plane], [nx, ny, z1 - z0], neighbours);
            Slab { runs, label, uf }
        })
        .collect();

    // One union-find over every slab's labels, slab s's shifted by the label
    // counts of the slabs before it so that label order stays raster order.
    // One slab's table is used as it is; several are copied in parallel into
    // one in huge pages. (On dense noise the tables hold ~10⁸ bytes: the
    // serial copy, page faults included, took 4–18 ms of a one-thread run.)
    let mut label_off = vec![0usize; nslabs + 1];
    for (s, w) in work.iter().enumerate() {
        label_off[s + 1] = label_off[s] + w.uf.len();
    }
    let mut uf = if nslabs == 1 {
        std::mem::take(&mut work[0].uf)
    } else {
        par_filled(&label_off, |s, k| work[s].uf[k] + label_off[s] as u32)
    };

    // Step 4: stitch each slab's first plane to the previous slab's last
    // plane. The touching pairs of every boundary are found in parallel (the
    // table is only read there), as pairs of current roots with repeats of
    // the pair before dropped (on dense noise nearly all are the same two
    // giant components); the few left are then unioned serially.
    let stitches: Vec<Vec<(u32, u32)>> = (1..nslabs)
        .into_par_iter()
        .map(|s| {
            let (a, b) = (&work[s], &work[s - 1]);
            let (oa, ob) = (label_off[s] as u32, label_off[s - 1] as u32);
            let last = (bounds[s - 1].1 - bounds[s - 1].0 - 1) * ny;
            let mut found = Vec::new();
            let mut prev = (NO_LABEL, NO_LABEL);
            let mut pair_up = |pair: (u32, u32)| {
                if pair != prev {
                    found.push(pair);
                    prev = pair;
                }
            };
            // The current root of every run of the two planes, looked up once
            // per run rather than per touching pair. On dense noise they are
            // then mostly one label per row (the giant component), and where
            // both rows' runs each carry one, only whether they touch at all
            // matters: a sweep that stops at the first touch finds that in a
            // few steps instead of visiting every run pair (a mispredicted
            // branch each).
            let roots = |w: &Slab, off: u32, rows: std::ops::Range<usize>| -> Vec<u32> {
                let span = w.runs.row_ptr[rows.start] as usize..w.runs.row_ptr[rows.end] as usize;
                w.label[span].iter().map(|&l| root(&uf, l + off)).collect()
            };
            // (The first plane's runs are the slab's first, so `a_root[i]` is run i's.)
            let (a_root, b_root) = (roots(a, oa, 0..ny), roots(b, ob, last..last + ny));
            let b0 = b.runs.row_ptr[last] as usize;
            let last_one: Vec<u32> = (0..ny).map(|py| row_label(&b.runs, &b_root, b0, last + py)).collect();
            for y in (0..ny).filter(|&y| a.runs.busy(y)) {
                let la = row_label(&a.runs, &a_root, 0, y);
                for &(dy, _, tol) in neighbours.iter().filter(|n| n.1 == -1) {
                    let py = y as isize + dy;
                    if py < 0 || py >= ny as isize {
                        continue;
                    }
                    let (py, prow) = (py as usize, last + py as usize);
                    if la != NO_LABEL && last_one[py] != NO_LABEL {
                        if any_touch(&a.runs, y, &b.runs, prow, tol) {
                            pair_up((la, last_one[py]));
                        }
                        continue;
                    }
                    touching_between(&a.runs, y, &b.runs, prow, tol, |i, j| {
                        pair_up((a_root[i], b_root[j - b0]));
                    });
                }
            }
            found
        })
        .collect();
    for (la, lb) in stitches.into_iter().flatten() {
        union(&mut uf, la, lb);
    }

    // Step 5: number the roots; uf[l] <= l, so parents are final before children.
    let mut first = Vec::with_capacity(nslabs + 1);
    let mut next = 0u32;
    for s in 0..nslabs {
        first.push(next + 1);
        for l in label_off[s]..label_off[s + 1] {
            let p = uf[l] as usize;
            if p == l {
                next += 1;
                uf[l] = next;
            } else {
                uf[l] = uf[p];
            }
        }
    }
    first.push(next + 1);

    // Step 6: write labels and statistics.
    let zeroed = zeroed.filter(|z| z.len() == n);
    let map_ahead = match zeroed {
        Some(_) => MapAhead::Nothing,
        None if 4 * n >= FROM_OS_BYTES => MapAhead::Touched,
        None => MapAhead::Dense,
    };
    let voxel_bounds: Vec<usize> = bounds.iter().map(|b| b.0 * plane).chain([n]).collect();
    let mut labels = zeroed.unwrap_or_else(|| vec![0u32; n]);
    if map_ahead != MapAhead::Nothing {
        advise_huge(&work, &mut labels, &voxel_bounds, nx);
    }
    let lesion_bounds: Vec<usize> = first.iter().map(|&l| l as usize - 1).collect();
    // Dense noise has ~10⁶ components: ~10⁸ bytes of statistics.
    let mut lesions = par_filled(&lesion_bounds, |_, _| LesionStats::new());
    let final_label = &uf;
    let foreign: Vec<Vec<(u32, LesionStats)>> = split_mut(&mut labels, &voxel_bounds)
        .into_par_iter()
        .zip(split_mut(&mut lesions, &lesion_bounds))
        .zip(&work)
        .zip(&bounds)
        .zip(&label_off[..nslabs])
        .zip(&first[..nslabs])
        .map(|(((((out, own), w), &(z0, _)), &loff), &first)| {
            let slab_mask = &mask[z0 * plane..z0 * plane + out.len()];
            write_slab::<STATS>(
                w,
                &final_label[loff..],
                first,
                out,
                slab_mask,
                own,
                [nx, ny, z0],
                map_ahead,
            )
        })
        .collect();
    for (l, st) in foreign.into_iter().flatten() {
        merge_stats(&mut lesions[l as usize - 1], &st);
    }
    Components { shape, labels, lesions }
}

/// How many of rows `rows` hold foreground.
fn busy_rows(runs: &Runs, rows: std::ops::Range<usize>) -> usize {
    rows.filter(|&r| runs.busy(r)).count()
}

/// True when most of rows `rows` hold foreground, so the write will touch
/// nearly every page of their part of a fresh label volume anyway.
fn dense_rows(runs: &Runs, rows: std::ops::Range<usize>) -> bool {
    2 * busy_rows(runs, rows.clone()) > rows.len()
}

/// A fresh label volume is mapped in pieces of about this size just before
/// they are written: small enough that the kernel's zeroing of a piece is
/// still in the core's cache when the labels overwrite it (mapping a whole
/// 512 MiB slab first meant zeroing it out to memory and reading it back).
const MAP_PIECE_BYTES: usize = 512 << 10;

/// Elements of a run list or run table mapped ahead in one call.
const MAP_PIECE_RUNS: usize = MAP_PIECE_BYTES / 4;

/// Smallest stretch of consecutive foreground rows whose pages [`map_chunk`]
/// maps in one call; shorter ones are left to page faults (no gain below that).
const MAP_STRETCH_BYTES: usize = 8 << 10;

/// Label volumes at least this large come straight from the OS as fresh,
/// unmapped zero pages (glibc's `calloc` uses `mmap` from 32 MiB at the
/// latest); smaller ones may be heap memory that `calloc` has just cleared,
/// where mapping ahead is a wasted call.
const FROM_OS_BYTES: usize = 32 << 20;

/// Which pages of a label volume the write asks the kernel to map ahead.
/// Unless `Nothing`, regions [`advise_huge`] picks are also given huge pages
/// (harmless on heap memory that is mapped already).
#[derive(Clone, Copy, PartialEq)]
enum MapAhead {
    /// None: the volume is already mapped (recycled).
    Nothing,
    /// Pieces whose rows are mostly foreground.
    Dense,
    /// Those, and the stretches of foreground rows in other pieces.
    Touched,
}

/// Maps the pages of a fresh piece of the label volume (`out`, rows `row0..`)
/// that the write is about to touch, just before it writes them, while the
/// kernel's zeroing is still in cache: the whole piece when most of its rows
/// hold foreground, else (with [`MapAhead::Touched`]) every stretch of
/// consecutive rows with foreground (a lesion's cross-section in a plane) that
/// covers a few pages. One call per stretch instead of one page fault per
/// page: on a sparse 512³ mask the faults were most of the labelling's time.
fn map_chunk(runs: &Runs, row0: usize, out: &mut [u32], nx: usize, map_ahead: MapAhead) {
    if map_ahead == MapAhead::Nothing {
        return;
    }
    let rows = out.len() / nx;
    if dense_rows(runs, row0..row0 + rows) {
        prefault(out);
        return;
    }
    if map_ahead == MapAhead::Dense {
        return;
    }
    const PAGE_ELEMS: usize = 4096 / 4;
    let busy = |r: usize| runs.busy(row0 + r);
    let mut r = 0;
    while r < rows {
        if !busy(r) {
            r += 1;
            continue;
        }
        let first = r;
        while r < rows && busy(r) {
            r += 1;
        }
        if (r - first) * nx * 4 >= MAP_STRETCH_BYTES {
            // Widened by a page each way, so that `prefault`'s inward rounding
            // keeps every page these rows overlap.
            let lo = (first * nx).saturating_sub(PAGE_ELEMS);
            let hi = (r * nx + PAGE_ELEMS).min(out.len());
            prefault(&mut out[lo..hi]);
        }
    }
}

/// A vector of `bounds[last]` elements (`bounds` as for [`split_mut`]), the
/// k-th element of window `s` (`bounds[s]..bounds[s + 1]`) being `value(s, k)`:
/// in huge pages when large ([`huge_table`]), and filled window by window in
/// parallel, so that mapping and writing a large table is shared by the
/// threads instead of done by one between two parallel steps.
fn par_filled<T: Send>(bounds: &[usize], value: impl Fn(usize, usize) -> T + Sync) -> Vec<T> {
    let n = bounds.last().copied().unwrap_or(0);
    let mut v = Vec::with_capacity(n);
    huge_table(&mut v);
    split_mut(&mut v.spare_capacity_mut()[..n], bounds)
        .into_par_iter()
        .enumerate()
        .for_each(|(s, window)| {
            for (k, slot) in window.iter_mut().enumerate() {
                slot.write(value(s, k));
            }
        });
    // SAFETY: the windows cover `0..n` (`split_mut`'s contract), and every
    // element of each was written above.
    unsafe { v.set_len(n) };
    v
}

/// Reserves room for `extra` more elements in `v` and maps that room now.
fn map_spare(v: &mut Vec<u32>, extra: usize) {
    v.reserve(extra);
    let spare = &mut v.spare_capacity_mut()[..extra];
    let len = std::mem::size_of_val(spare);
    pages::advise(spare.as_ptr().cast(), len, pages::PAGE, Advice::PopulateWrite);
}

/// Tables at least this large get huge pages ([`huge_table`]).
const HUGE_TABLE_BYTES: usize = 4 * pages::HUGE_PAGE;

/// Asks for huge pages on the spare capacity of a large table that is not
/// mapped ahead piece by piece (`MADV_HUGEPAGE`; once, right after reserving):
/// the union-find tables and the statistics, ~10⁸ bytes each on dense noise,
/// which took a page fault per 4 KiB (~3.7 µs each on the dev VM). Unlike the
/// label volume's, their pages are all written, front to back, so a huge page
/// zeroes nothing that is not used; the unused tail of the last one is the
/// only cost. (The run lists are mapped ahead in pieces instead, while the
/// kernel's zeroing is still cached; huge pages did not help them,
/// docs/benchmarks.md, "Tenth session".)
fn huge_table<T>(v: &mut Vec<T>) {
    let spare = v.spare_capacity_mut();
    let len = std::mem::size_of_val(spare);
    if len >= HUGE_TABLE_BYTES {
        pages::advise(spare.as_ptr().cast(), len, pages::HUGE_PAGE, Advice::HugePage);
    }
}

/// `vec![value; n]`, with large tables mapped piece by piece just before they
/// are filled instead of faulted in page by page.
fn filled(n: usize, value: u32) -> Vec<u32> {
    if n <= MAP_PIECE_RUNS {
        return vec![value; n];
    }
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        let piece = MAP_PIECE_RUNS.min(n - v.len());
        map_spare(&mut v, piece);
        v.resize(v.len() + piece, value);
    }
    v
}

/// Asks the kernel to map `out`'s pages now, in one call, instead of one page
/// fault per 4 KiB page as the write reaches it. A freshly allocated 512 MiB
/// label volume is 131 072 pages; on the VMs measured, faulting them one by one
/// cost ~370 ms and `MADV_POPULATE_WRITE` ~260 ms (docs/benchmarks.md).
/// Called on [`MAP_PIECE_BYTES`]-sized pieces right before they are written, so
/// the zeroed pages are still cached. The pages keep their contents (zeros);
/// on kernels before 5.14 or other systems this does nothing and the faults
/// happen as before.
fn prefault(out: &mut [u32]) {
    pages::advise(
        out.as_ptr().cast(),
        std::mem::size_of_val(out),
        pages::PAGE,
        Advice::PopulateWrite,
    );
}

/// Most runs per row for a row to count as solid in [`huge_regions`].
const SOLID_ROW_RUNS: usize = 2;

/// Whether row `r` is solid: one or two runs covering at least 7/8 of it.
fn solid_row(runs: &Runs, r: usize, nx: usize) -> bool {
    let span = runs.row_ptr[r] as usize..runs.row_ptr[r + 1] as usize;
    (1..=SOLID_ROW_RUNS).contains(&span.len())
        && 8 * span.map(|i| (runs.end[i] - runs.start[i]) as usize).sum::<usize>() >= 7 * nx
}

/// A 2 MiB region of a fresh label volume gets a huge page when at least this
/// many of its 512 base pages would be written (see [`huge_regions`]).
const HUGE_MIN_PAGES: usize = (pages::HUGE_PAGE / pages::PAGE) / 4;

/// Number of distinct [`pages::PAGE`]-sized pages in `region` (addresses)
/// that the runs of rows `rows` write into, for a label volume starting at
/// address `base` with rows of `nx` labels. Each busy row is counted from its
/// first run's start to its last run's end, which is exact for every page a
/// row of lesions touches and at most over-counts the gaps between its runs.
fn touched_pages(
    runs: &Runs,
    nx: usize,
    base: usize,
    rows: std::ops::Range<usize>,
    region: std::ops::Range<usize>,
) -> usize {
    let mut count = 0;
    let mut next_page = 0; // pages below this one are counted already
    for r in rows.filter(|&r| runs.busy(r)) {
        let (a, b) = (runs.row_ptr[r] as usize, runs.row_ptr[r + 1] as usize);
        let lo = (base + (r * nx + runs.start[a] as usize) * 4).max(region.start);
        let hi = (base + (r * nx + runs.end[b - 1] as usize) * 4).min(region.end);
        if lo >= hi {
            continue;
        }
        let first = (lo / pages::PAGE).max(next_page);
        let last = (hi - 1) / pages::PAGE;
        if last >= first {
            count += last + 1 - first;
            next_page = last + 1;
        }
    }
    count
}

/// Asks the kernel for huge pages (`MADV_HUGEPAGE`) on the 2 MiB-aligned
/// regions of a fresh label volume `labels` that the write will fill mostly
/// (picked by [`huge_regions`]; adjacent ones in one call). `work[s]` holds
/// the runs of voxels `voxel_bounds[s]..voxel_bounds[s + 1]`.
///
/// Called once, before the parallel write, on one thread: `MADV_HUGEPAGE`
/// changes the mapping and so takes the process's mmap lock for writing,
/// which waits until no other thread is mapping pages ahead (`map_chunk`).
/// Issued from the write threads themselves, the two threads of a sparse
/// 512³ mask spent most of their time waiting on each other there.
fn advise_huge(work: &[Slab], labels: &mut [u32], voxel_bounds: &[usize], nx: usize) {
    let base = labels.as_mut_ptr() as usize;
    let mut stretch: Option<(usize, usize)> = None;
    let flush = |st: Option<(usize, usize)>| {
        if let Some((a, b)) = st {
            pages::advise(a as *const u8, b - a, pages::HUGE_PAGE, Advice::HugePage);
        }
    };
    huge_regions(work, voxel_bounds, base, nx, |a| match &mut stretch {
        Some((_, end)) if *end == a => *end += pages::HUGE_PAGE,
        _ => {
            flush(stretch);
            stretch = Some((a, a + pages::HUGE_PAGE));
        }
    });
    flush(stretch);
}

/// Calls `pick` with the address of each 2 MiB-aligned region of a fresh
/// label volume (at address `base`, rows of `nx` labels; `work[s]` holds the
/// runs of voxels `voxel_bounds[s]..voxel_bounds[s + 1]`) that should be a
/// huge page, in increasing order:
/// - regions whose rows are all solid ([`solid_row`]: whole planes of
///   foreground, as in all-one volumes or body masks), where writing a row is
///   a fill and 512 page faults per 2 MiB were most of the cost (all-one 512³:
///   2.5–3× faster);
/// - regions of lesions dense in pages: at least a quarter of the region's
///   base pages written (a 192×192×160 mask of 1.3 % blobs writes 37–56 % of
///   them). A fault costs ~3 µs on the dev VM, zeroing a 4 KiB page
///   about a fifth of that, so from about a quarter one huge-page fault is
///   cheaper than the small ones; it makes at most four times the written
///   pages resident, never more than the volume's size. (On a VM that hands
///   free 2 MiB blocks back to its host, a huge page can instead cost a host
///   fault per 4 KiB; measured in docs/benchmarks.md, "Eighth session".)
///
/// A region may span slabs (a slab of a 192×192×160 volume cut for two
/// threads is 2.9 MB): its rows are gathered from each slab it overlaps, so
/// the choice does not depend on how the volume was cut. (A page across a
/// slab boundary may be counted once per side.)
///
/// Regions where most rows hold foreground but are not solid (dense noise) are
/// left to [`map_chunk`]'s piece-by-piece mapping: there the labelling work
/// dwarfs the faults, and zeroing 2 MiB at a time made dense noise ~30 %
/// slower (docs/benchmarks.md). On memory that is already mapped (heap memory
/// `calloc` has cleared) the advice changes nothing until the pages are given
/// back; where the kernel does not follow it (THP off) nothing changes either.
/// The bytes written are the same in every case.
fn huge_regions(work: &[Slab], voxel_bounds: &[usize], base: usize, nx: usize, mut pick: impl FnMut(usize)) {
    if work.iter().all(|w| w.runs.start.is_empty()) {
        return; // nothing will be written (an empty mask: no pass over its rows)
    }
    const HUGE_VOXELS: usize = pages::HUGE_PAGE / 4;
    let n = voxel_bounds[work.len()];
    // Each slab's rows overlapping the region: (slab, first row, end row).
    let mut parts: Vec<(usize, usize, usize)> = Vec::new();
    let mut first_slab = 0;
    let mut a = base.next_multiple_of(pages::HUGE_PAGE);
    while a + pages::HUGE_PAGE <= base + 4 * n {
        let v0 = (a - base) / 4; // `base` is 4-byte aligned, `a` 2 MiB aligned
        let v1 = v0 + HUGE_VOXELS;
        while voxel_bounds[first_slab + 1] <= v0 {
            first_slab += 1;
        }
        parts.clear();
        let (mut rows, mut busy) = (0, 0);
        for s in (first_slab..work.len()).take_while(|&s| voxel_bounds[s] < v1) {
            let (sb, se) = (voxel_bounds[s], voxel_bounds[s + 1]);
            let (r0, r1) = ((v0.max(sb) - sb) / nx, (v1.min(se) - sb).div_ceil(nx));
            rows += r1 - r0;
            let runs = &work[s].runs;
            if !runs.start.is_empty() {
                busy += busy_rows(runs, r0..r1);
                parts.push((s, r0, r1));
            }
        }
        // Solid rows are busy, so a solid region is among the dense ones
        // (the test of `dense_rows`, over the rows of every slab).
        let huge = if 2 * busy > rows {
            busy == rows
                && parts
                    .iter()
                    .all(|&(s, r0, r1)| (r0..r1).all(|r| solid_row(&work[s].runs, r, nx)))
        } else {
            let region = a..a + pages::HUGE_PAGE;
            let touched = parts.iter().map(|&(s, r0, r1)| {
                touched_pages(&work[s].runs, nx, base + 4 * voxel_bounds[s], r0..r1, region.clone())
            });
            touched.sum::<usize>() >= HUGE_MIN_PAGES
        };
        if huge {
            pick(a);
        }
        a += pages::HUGE_PAGE;
    }
}

/// Splits `v` at the given cumulative `bounds` (first 0, last `v.len()`).
fn split_mut<'a, T>(mut v: &'a mut [T], bounds: &[usize]) -> Vec<&'a mut [T]> {
    // `par_filled` relies on the windows covering the whole of `v`.
    assert_eq!(bounds.first(), Some(&0), "split_mut: bounds must start at 0");
    let mut parts = Vec::with_capacity(bounds.len().saturating_sub(1));
    for w in bounds.windows(2) {
        let (head, rest) = v.split_at_mut(w[1] - w[0]);
        parts.push(head);
        v = rest;
    }
    parts
}

const NO_LABEL: u32 = u32::MAX;

/// Rows with at least this many runs (noise) find their runs touching
/// uniformly labelled earlier rows from bit maps ([`RowMaps::touched_runs`])
/// instead of sweeping those rows' runs.
const BIT_TEST_RUNS: usize = 8;

/// Gives every run of one slab (`nz` planes of `ny` rows of `nx` voxels;
/// `mask` is the slab's part of the mask) a provisional label and unions
/// labels of touching runs. A run touching nothing earlier opens a new label;
/// labels are opened in raster order, so with min-linking a class's root is
/// the label of its component's first run. The union-find is over labels, not
/// runs: on dense noise most runs join an existing label, so the table stays
/// far smaller than the run list and its finds stay in cache.
///
/// On dense noise most finished rows end up with one label (the giant
/// component's). Which runs of such a row a run touches does not matter, only
/// whether it touches any: that is one test of the row's foreground bits over
/// the run's x range widened by the tolerance, independent for every run,
/// where the sweep is a chain of dependent steps. Labels are unchanged: a run
/// still joins exactly the classes of the runs it touches.
fn union_slab(
    runs: &Runs,
    mask: &[u8],
    [nx, ny, nz]: [usize; 3],
    neighbours: &[(isize, isize, u32)],
) -> (Vec<u32>, Vec<u32>) {
    let mut label = filled(runs.start.len(), NO_LABEL);
    // A run opens at most one label, so the table never outgrows this (an
    // unused reservation costs no memory) and is never copied to grow.
    let mut uf: Vec<u32> = Vec::with_capacity(runs.start.len());
    huge_table(&mut uf);
    let mut pairs: Vec<(u32, u32)> = Vec::new();
    // The one label of every run of a finished row, NO_LABEL if they differ or the row is empty.
    let mut uniform = vec![NO_LABEL; ny * nz];
    let mut maps = RowMaps::new(nx, ny + 2);
    let mut near = vec![0u64; maps.words];
    for z in 0..nz {
        for y in 0..ny {
            let row = y + ny * z;
            let span = runs.row_ptr[row] as usize..runs.row_ptr[row + 1] as usize;
            if span.is_empty() {
                continue;
            }
            let noisy = span.len() >= BIT_TEST_RUNS;
            // Earlier rows whose runs all carry one label: (row, tolerance,
            // label); at most the four rows of `neighbour_rows`.
            let mut one_label = [(0usize, 0u32, NO_LABEL); 4];
            let mut n_one = 0;
            for &(dy, dz, tol) in neighbours {
                let (py, pz) = (y as isize + dy, z as isize + dz);
                if py < 0 || pz < 0 || py >= ny as isize {
                    continue;
                }
                let prow = py as usize + ny * pz as usize;
                let l = uniform[prow];
                if l != NO_LABEL && noisy {
                    one_label[n_one] = (prow, tol, l);
                    n_one += 1;
                    continue;
                }
                let n = if noisy && tol == 0 {
                    let (a, b) = (maps.build(row, mask), maps.build(prow, mask));
                    maps.overlap_pairs(a, span.start as u32, b, runs.row_ptr[prow], &mut pairs)
                } else {
                    touching_pairs(runs, row, prow, tol, &mut pairs)
                };
                for &(i, j) in &pairs[..n] {
                    let lj = label[j as usize];
                    join(&mut label, &mut uf, i as usize, lj);
                }
            }
            // The one-label rows, merged per label (on dense noise all of them
            // are the giant component): one word-parallel pass over the row.
            let one_label = &mut one_label[..n_one];
            while let Some(&(_, _, l)) = one_label.iter().find(|e| e.2 != NO_LABEL) {
                near.fill(0);
                for e in one_label.iter_mut().filter(|e| e.2 == l) {
                    let slot = maps.build(e.0, mask);
                    widen_into(maps.slot(slot).0, e.1, &mut near);
                    e.2 = NO_LABEL;
                }
                let cur = maps.build(row, mask);
                for i in maps.touched_runs(cur, &near) {
                    join(&mut label, &mut uf, span.start + i, l);
                }
            }
            // Store roots, not whatever label was copied first: later rows
            // then see equal labels for runs already joined and skip the
            // union (on dense noise almost every touch is such a repeat).
            for l in &mut label[span] {
                if *l == NO_LABEL {
                    *l = uf.len() as u32;
                    uf.push(*l);
                } else {
                    *l = find(&mut uf, *l);
                }
            }
            uniform[row] = row_label(runs, &label, 0, row);
        }
    }
    (label, uf)
}

/// Run `i` touches a run labelled `l`: it takes `l` if it has no label yet,
/// else the two labels are unioned.
#[inline]
fn join(label: &mut [u32], uf: &mut [u32], i: usize, l: u32) {
    let li = label[i];
    if li == NO_LABEL {
        label[i] = l;
    } else if li != l {
        union(uf, li, l);
    }
}

/// Bit maps of the most recent rows of a slab (a ring of `ring` slots, enough
/// for every row a row can touch), each built from the mask when first needed:
/// foreground bits, run-start bits, and the number of run starts before each
/// word, so that the index of the run holding voxel x is a popcount away.
struct RowMaps {
    nx: usize,
    /// Words per row: one spare, so a 64-bit window can be read from two words
    /// without a bounds check.
    words: usize,
    fg: Vec<u64>,
    starts: Vec<u64>,
    before: Vec<u32>,
    /// The row each slot holds (`usize::MAX`: none yet).
    row_of: Vec<usize>,
}

impl RowMaps {
    fn new(nx: usize, ring: usize) -> Self {
        let words = nx / 64 + 2;
        RowMaps {
            nx,
            words,
            fg: vec![0; words * ring],
            starts: vec![0; words * ring],
            before: vec![0; words * ring],
            row_of: vec![usize::MAX; ring],
        }
    }

    /// The slot holding the maps of `row` of `mask`, built now unless they are already there.
    fn build(&mut self, row: usize, mask: &[u8]) -> usize {
        let slot = row % self.row_of.len();
        if self.row_of[slot] != row {
            let (nx, at) = (self.nx, slot * self.words..(slot + 1) * self.words);
            let fg = &mut self.fg[at.clone()];
            row_bits(&mask[row * nx..(row + 1) * nx], fg);
            let (mut carry, mut count) = (0u64, 0u32);
            for ((&f, s), b) in fg.iter().zip(&mut self.starts[at.clone()]).zip(&mut self.before[at]) {
                *s = f & !((f << 1) | carry);
                *b = count;
                carry = f >> 63;
                count += s.count_ones();
            }
            self.row_of[slot] = row;
        }
        slot
    }

    /// Foreground bits, run-start bits and run starts before each word of `slot`.
    fn slot(&self, slot: usize) -> (&[u64], &[u64], &[u32]) {
        let at = slot * self.words..(slot + 1) * self.words;
        (&self.fg[at.clone()], &self.starts[at.clone()], &self.before[at])
    }

    /// Indices (within the row) of the runs of `slot` that hold a bit of
    /// `near`, in increasing order. Word-parallel: with `t` the row's
    /// foreground bits that are also in `near`, adding `t` to the row's bits
    /// `x` carries through each run holding a bit of `t` and lands on the zero
    /// just past the run's end, so `(x + t) & !x` has one bit per such run and
    /// none elsewhere (a run without a bit of `t` adds nothing, and the carry
    /// stops at the first zero). The run ending just below bit `b` is the last
    /// run starting below `b`: a popcount of run starts.
    fn touched_runs<'a>(&'a self, slot: usize, near: &'a [u64]) -> impl Iterator<Item = usize> + 'a {
        let (x, starts, before) = self.slot(slot);
        let mut carry = false;
        (0..self.words).flat_map(move |k| {
            let (sum, c1) = x[k].overflowing_add(x[k] & near[k]);
            let (sum, c2) = sum.overflowing_add(u64::from(carry));
            carry = c1 | c2;
            let mut past_end = sum & !x[k];
            std::iter::from_fn(move || {
                if past_end == 0 {
                    return None;
                }
                let below = (1u64 << past_end.trailing_zeros()) - 1;
                past_end &= past_end - 1;
                Some((before[k] + (starts[k] & below).count_ones()) as usize - 1)
            })
        })
    }

    /// The pairs of runs of two rows (slots `a` and `b`, whose first runs are
    /// `first_a` and `first_b`) that overlap exactly (tolerance 0), written into
    /// `buf`; returns how many. Two such runs overlap on one interval, and the
    /// intervals of different pairs are the maximal runs of the rows' common
    /// foreground `fg_a & fg_b`, so each start of those is one pair: its two runs
    /// are found by counting run starts up to it. No step depends on the one
    /// before, unlike the sweep along both run lists.
    fn overlap_pairs(&self, a: usize, first_a: u32, b: usize, first_b: u32, buf: &mut Vec<(u32, u32)>) -> usize {
        let w = self.words;
        let ((fa, sa, ba), (fb, sb, bb)) = (self.slot(a), self.slot(b));
        // Each pair but the last ends a run of one row or the other.
        let most = (ba[w - 1] + sa[w - 1].count_ones() + bb[w - 1] + sb[w - 1].count_ones()) as usize;
        if buf.len() < most {
            buf.resize(most, (0, 0));
        }
        let (mut n, mut carry) = (0, 0u64);
        for k in 0..w {
            let both = fa[k] & fb[k];
            let mut p = both & !((both << 1) | carry);
            carry = both >> 63;
            while p != 0 {
                // Bits 0..=x of this word.
                let upto = p ^ (p - 1);
                let i = first_a + ba[k] + (sa[k] & upto).count_ones() - 1;
                let j = first_b + bb[k] + (sb[k] & upto).count_ones() - 1;
                buf[n] = (i, j);
                n += 1;
                p &= p - 1;
            }
        }
        n
    }
}

/// Foreground bits of one mask row into `bits` (bit x of word x / 64); words past the row are zeroed.
fn row_bits(line: &[u8], bits: &mut [u64]) {
    let mut chunks = line.chunks_exact(64);
    let mut k = 0;
    for c in &mut chunks {
        bits[k] = fg_bits64(c.try_into().unwrap_or(&[0; 64]));
        k += 1;
    }
    bits[k] = fg_bits_short(chunks.remainder());
    bits[k + 1..].fill(0);
}

/// ORs `bits` (a row's foreground, [`RowMaps`] layout), widened by `tol`
/// (0 or 1) voxels to each side, into `near`.
fn widen_into(bits: &[u64], tol: u32, near: &mut [u64]) {
    if tol == 0 {
        near.iter_mut().zip(bits).for_each(|(n, &b)| *n |= b);
        return;
    }
    let w = bits.len();
    for k in 0..w {
        let below = if k > 0 { bits[k - 1] >> 63 } else { 0 };
        let above = if k + 1 < w { bits[k + 1] << 63 } else { 0 };
        near[k] |= bits[k] | bits[k] << 1 | below | bits[k] >> 1 | above;
    }
}

/// The touching pairs of rows `cur` and `prev` (as [`touching_runs`]) written into `buf`
/// without a branch per step — whether two runs touch is a coin flip on noise — so the
/// caller's loop sees only real touches. Returns how many there are.
#[inline]
fn touching_pairs(runs: &Runs, cur: usize, prev: usize, tol: u32, buf: &mut Vec<(u32, u32)>) -> usize {
    let (i0, ie) = (runs.row_ptr[cur] as usize, runs.row_ptr[cur + 1] as usize);
    let (j0, je) = (runs.row_ptr[prev] as usize, runs.row_ptr[prev + 1] as usize);
    let (cs, ce) = (&runs.start[i0..ie], &runs.end[i0..ie]);
    let (ps, pe) = (&runs.start[j0..je], &runs.end[j0..je]);
    // Each step advances i or j, so there are fewer steps than this; every step writes a slot
    // and keeps it only when the runs touch.
    let most = cs.len() + ps.len();
    if buf.len() < most {
        buf.resize(most, (0, 0));
    }
    let out = &mut buf[..most];
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < cs.len() && j < ps.len() {
        let (as_, ae, bs, be) = (cs[i], ce[i], ps[j], pe[j]);
        out[n] = ((i0 + i) as u32, (j0 + j) as u32);
        n += usize::from(as_ < be + tol && bs < ae + tol);
        // The run that ends first cannot touch the other row's next run.
        let step = usize::from(ae <= be);
        i += step;
        j += 1 - step;
    }
    n
}

/// Rows with at least this many runs, all of one final label, are written with one vectorised
/// select over the row's mask instead of run by run (dense noise: runs of one or two voxels).
const DENSE_ROW_RUNS: usize = 16;

/// Writes one slab's labels into `out` (its part of the volume, starting at
/// plane `z0`; `mask` is the same part of the mask) and adds its runs to the
/// statistics: to `own` for final labels numbered in this slab (from `first`),
/// else to the returned side table. `final_label[l]` is the final label of the
/// slab's provisional label `l`. Consecutive runs of a row with the same label
/// are added to the statistics as one group.
#[allow(clippy::too_many_arguments)]
fn write_slab<const STATS: bool>(
    w: &Slab,
    final_label: &[u32],
    first: u32,
    out: &mut [u32],
    mask: &[u8],
    own: &mut [LesionStats],
    [nx, ny, z0]: [usize; 3],
    map_ahead: MapAhead,
) -> Vec<(u32, LesionStats)> {
    let runs = &w.runs;
    let mut foreign: Vec<(u32, LesionStats)> = Vec::new();
    let mut index: HashMap<u32, usize> = HashMap::new();
    // A component crossing into this slab usually has many runs in a row.
    let mut last = (0u32, 0usize);
    let mut add = |l: u32, g: &Group, y: usize, z: usize| {
        let stats = if l >= first {
            &mut own[(l - first) as usize]
        } else {
            if last.0 != l {
                let k = *index.entry(l).or_insert_with(|| {
                    foreign.push((l, LesionStats::new()));
                    foreign.len() - 1
                });
                last = (l, k);
            }
            &mut foreign[last.1].1
        };
        stats.add_row_group(g.start, g.end, g.voxels, g.x_sum, y, z);
    };
    let mut row_labels: Vec<u32> = Vec::new();
    // A noisy row of several labels is first written here: four labels per
    // run with one store, past its end (the spare four slots take the last
    // run's overshoot), then copied where the mask is set.
    let mut scratch: Vec<u32> = Vec::new();
    let chunk_rows = (MAP_PIECE_BYTES / (4 * nx)).max(1);
    let chunks = out.chunks_mut(chunk_rows * nx).zip(mask.chunks(chunk_rows * nx));
    for (c, (out_chunk, mask_chunk)) in chunks.enumerate() {
        let row0 = c * chunk_rows;
        map_chunk(runs, row0, out_chunk, nx, map_ahead);
        let rows = out_chunk.chunks_exact_mut(nx).zip(mask_chunk.chunks_exact(nx));
        for (k, (line, mrow)) in rows.enumerate() {
            let row = row0 + k;
            let span = runs.row_ptr[row] as usize..runs.row_ptr[row + 1] as usize;
            if span.is_empty() {
                continue;
            }
            let (y, z) = (row % ny, z0 + row / ny);
            // Each run's final label, looked up once for the write and the statistics.
            row_labels.clear();
            row_labels.extend(w.label[span.clone()].iter().map(|&p| final_label[p as usize]));
            let l0 = row_labels[0];
            if span.len() >= DENSE_ROW_RUNS && row_labels.iter().all(|&l| l == l0) {
                for (o, &m) in line.iter_mut().zip(mrow) {
                    *o = if m != 0 { l0 } else { 0 };
                }
            } else if span.len() >= DENSE_ROW_RUNS {
                // Runs of one or two voxels: a loop per run would mispredict
                // its exit about once a run. Each run writes four slots from
                // its start instead (the next run, or the mask, overwrites
                // what lies past its end), longer runs fill the rest.
                scratch.resize(nx + 4, 0);
                for (r, &l) in span.clone().zip(&row_labels) {
                    let (s, e) = (runs.start[r] as usize, runs.end[r] as usize);
                    scratch[s..s + 4].copy_from_slice(&[l; 4]);
                    if e - s > 4 {
                        scratch[s + 4..e].fill(l);
                    }
                }
                for ((o, &m), &l) in line.iter_mut().zip(mrow).zip(&scratch) {
                    *o = if m != 0 { l } else { 0 };
                }
            } else {
                for (r, &l) in span.clone().zip(&row_labels) {
                    let (s, e) = (runs.start[r] as usize, runs.end[r] as usize);
                    // Short runs: a memset call costs more than the stores.
                    if e - s <= 4 {
                        for v in &mut line[s..e] {
                            *v = l;
                        }
                    } else {
                        line[s..e].fill(l);
                    }
                }
            }
            if !STATS {
                continue;
            }
            let mut group: Option<(u32, Group)> = None;
            for (r, &l) in span.zip(&row_labels) {
                let (s, e) = (runs.start[r] as usize, runs.end[r] as usize);
                match &mut group {
                    Some((gl, g)) if *gl == l => g.push(s, e),
                    _ => {
                        if let Some((gl, g)) = group.take() {
                            add(gl, &g, y, z);
                        }
                        group = Some((l, Group::new(s, e)));
                    }
                }
            }
            if let Some((gl, g)) = group {
                add(gl, &g, y, z);
            }
        }
    }
    foreign
}

/// Runs of one row with the same label, summed for the statistics.
struct Group {
    start: usize,
    end: usize,
    voxels: u64,
    x_sum: u64,
}

impl Group {
    fn new(s: usize, e: usize) -> Self {
        let mut g = Group {
            start: s,
            end: e,
            voxels: 0,
            x_sum: 0,
        };
        g.push(s, e);
        g
    }

    #[inline]
    fn push(&mut self, s: usize, e: usize) {
        self.voxels += (e - s) as u64;
        self.x_sum += super::stats::run_x_sum(s, e);
        self.end = e;
    }
}

fn merge_stats(a: &mut LesionStats, b: &LesionStats) {
    a.voxels += b.voxels;
    for k in 0..3 {
        a.index_sum[k] += b.index_sum[k];
        a.bbox_min[k] = a.bbox_min[k].min(b.bbox_min[k]);
        a.bbox_max[k] = a.bbox_max[k].max(b.bbox_max[k]);
    }
}

/// Builds the label volume and lesion statistics from runs and one label per
/// run (1..=count). Only foreground runs are written into a zeroed volume, so
/// pages that hold no lesion are never touched. Used by the GPU path.
pub(super) fn components_from_runs(runs: &Runs, run_labels: &[u32], shape: [usize; 3], count: u32) -> Components {
    let [nx, ny, nz] = shape;
    let mut labels = vec![0u32; nx * ny * nz];
    let mut lesions = vec![LesionStats::new(); count as usize];
    for row in 0..ny * nz {
        let (y, z) = (row % ny, row / ny);
        let base = row * nx;
        let span = runs.row_ptr[row] as usize..runs.row_ptr[row + 1] as usize;
        for ((&s, &e), &l) in runs.start[span.clone()]
            .iter()
            .zip(&runs.end[span.clone()])
            .zip(&run_labels[span])
        {
            let (s, e) = (s as usize, e as usize);
            labels[base + s..base + e].fill(l);
            lesions[l as usize - 1].add_run(s, e, y, z);
        }
    }
    Components { shape, labels, lesions }
}

#[cfg(test)]
mod tests {
    use super::{
        HUGE_TABLE_BYTES, Slab, any_touch, fg_bits64, find_runs, huge_regions, par_filled, solid_row, touched_pages,
        touching_between,
    };

    /// The tests' pseudo-random numbers (xorshift64).
    fn xorshift(s: &mut u64) -> u64 {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        *s
    }

    /// A random mask of `rows` rows of `nx` voxels whose row r is foreground
    /// with probability `per_mille(r)` / 1000.
    fn mask_by_row(nx: usize, rows: usize, seed: u64, per_mille: impl Fn(usize) -> u64) -> Vec<u8> {
        let mut s = seed;
        (0..nx * rows)
            .map(|i| u8::from(xorshift(&mut s) % 1000 < per_mille(i / nx)))
            .collect()
    }

    /// The run lists grow by projection from the density seen so far; a
    /// density that rises down the volume (empty, then sparse, then noise)
    /// must still give exactly the runs of a plain per-row scan.
    #[test]
    fn runs_match_a_plain_scan_when_the_density_rises() {
        let (nx, rows) = (509, 4000);
        let mask = mask_by_row(nx, rows, 0x2545_f491_4f6c_dd1d, |r| match r {
            r if r < 500 => 0,
            r if r < 1500 => 5,
            _ => 500,
        });
        let runs = find_runs(&mask, nx, rows);
        assert!(runs.start.len() > 2 * super::MAP_PIECE_RUNS, "growth is exercised");
        let mut want = (Vec::new(), Vec::new(), vec![0u32]);
        for row in mask.chunks_exact(nx) {
            let mut x = 0;
            while x < nx {
                if row[x] == 0 {
                    x += 1;
                    continue;
                }
                let s0 = x;
                while x < nx && row[x] != 0 {
                    x += 1;
                }
                want.0.push(s0 as u32);
                want.1.push(x as u32);
            }
            want.2.push(want.0.len() as u32);
        }
        assert_eq!((runs.start, runs.end, runs.row_ptr), want);
    }

    /// The stitch's early-exit test agrees with the full sweep on every pair
    /// of rows and tolerance: a touch exactly when the sweep finds a pair.
    #[test]
    fn any_touch_is_whether_the_sweep_finds_a_pair() {
        let (nx, rows) = (70, 400);
        let mask = mask_by_row(nx, rows, 0x9e37_79b9_7f4a_7c15, |r| [30, 300, 500, 800, 970][r % 5]);
        let (a, b) = (
            find_runs(&mask[..nx * rows / 2], nx, rows / 2),
            find_runs(&mask[nx * rows / 2..], nx, rows / 2),
        );
        let (mut touching, mut apart) = (0, 0);
        for r in 0..rows / 2 {
            for tol in [0, 1] {
                let mut pairs = 0;
                touching_between(&a, r, &b, r, tol, |_, _| pairs += 1);
                assert_eq!(any_touch(&a, r, &b, r, tol), pairs > 0, "row {r}, tolerance {tol}");
                if pairs > 0 { touching += 1 } else { apart += 1 }
            }
        }
        assert!(touching > 0 && apart > 0, "both outcomes are exercised");
    }

    /// Huge pages are only asked for where rows are nearly all foreground in
    /// one or two runs, so that they add at most an eighth in memory.
    #[test]
    fn solid_rows_are_one_or_two_runs_covering_seven_eighths() {
        let nx = 64;
        let rows: [(&[(usize, usize)], bool); 6] = [
            (&[(0, 64)], true),
            (&[(0, 30), (34, 60)], true),  // 56 of 64 voxels
            (&[(0, 30), (34, 59)], false), // 55
            (&[(8, 64)], true),
            (&[(0, 20), (21, 40), (41, 64)], false),
            (&[], false),
        ];
        let mut mask = vec![0u8; nx * rows.len()];
        for (r, (spans, _)) in rows.iter().enumerate() {
            for &(s, e) in *spans {
                mask[r * nx + s..r * nx + e].fill(1);
            }
        }
        let runs = find_runs(&mask, nx, rows.len());
        for (r, (_, solid)) in rows.iter().enumerate() {
            assert_eq!(solid_row(&runs, r, nx), *solid, "row {r}");
        }
    }

    /// The page count behind the huge-page decision, against a set of the
    /// pages each busy row's extent covers: rows shorter and longer than a
    /// page, a volume that does not start on a page, windows cutting rows.
    #[test]
    fn touched_pages_counts_each_page_under_a_row_extent_once() {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || xorshift(&mut s);
        for nx in [7, 192, 1000, 3000] {
            let rows = 200;
            let mut mask = vec![0u8; nx * rows];
            for r in 0..rows {
                if next() % 3 == 0 {
                    let a = (next() % nx as u64) as usize;
                    let b = a + 1 + (next() % (nx - a) as u64) as usize;
                    mask[r * nx + a..r * nx + b].fill(1);
                    if next() % 2 == 0 {
                        let c = (next() % nx as u64) as usize;
                        mask[r * nx + c] = 1;
                    }
                }
            }
            let runs = find_runs(&mask, nx, rows);
            let base = 3 * 4096 + 16;
            let end = base + 4 * nx * rows;
            for region in [base..end, base + 5000..base + 40_000, 4096 * 5..4096 * 9] {
                let mut want = std::collections::BTreeSet::new();
                for r in 0..rows {
                    let row = &mask[r * nx..(r + 1) * nx];
                    let (Some(a), Some(b)) = (row.iter().position(|&v| v != 0), row.iter().rposition(|&v| v != 0))
                    else {
                        continue;
                    };
                    for byte in (base + 4 * (r * nx + a)..base + 4 * (r * nx + b + 1)).filter(|x| region.contains(x)) {
                        want.insert(byte / 4096);
                    }
                }
                let got = touched_pages(&runs, nx, base, 0..rows, region.clone());
                assert_eq!(got, want.len(), "nx {nx}, region {region:?}");
            }
        }
    }

    /// The 2 MiB regions picked for huge pages when a 512×512×8 volume
    /// (8 MiB of labels) is cut into z-slabs at `cuts`, its label volume
    /// placed at `base` (only addresses are computed), as offsets from 1 GiB.
    fn picked(mask: &[u8], cuts: &[usize], base: usize) -> Vec<usize> {
        let (nx, plane) = (512, 512 * 512);
        let work: Vec<Slab> = cuts
            .windows(2)
            .map(|z| {
                let runs = find_runs(&mask[z[0] * plane..z[1] * plane], nx, (z[1] - z[0]) * 512);
                Slab {
                    runs,
                    label: Vec::new(),
                    uf: Vec::new(),
                }
            })
            .collect();
        let voxel_bounds: Vec<usize> = cuts.iter().map(|z| z * plane).collect();
        let mut got = Vec::new();
        huge_regions(&work, &voxel_bounds, base, nx, |a| got.push(a - (1 << 30)));
        got
    }

    /// Regions across a slab boundary are judged on the rows of both slabs,
    /// so the pick does not depend on the cut: solid planes, and a region
    /// whose touched pages lie half in each slab (each half alone is below a
    /// quarter of the region).
    #[test]
    fn huge_regions_do_not_depend_on_the_slab_cut() {
        const MIB: usize = 1 << 20;
        let one = vec![1u8; 512 * 512 * 8];
        for base in [1 << 30, (1 << 30) + 4096] {
            let all: Vec<usize> = (0..4).map(|k| 2 * k * MIB).filter(|&o| o + (1 << 30) >= base).collect();
            for cuts in [&[0, 8][..], &[0, 4, 8], &[0, 1, 3, 5, 8]] {
                assert_eq!(picked(&one, cuts, base), all, "all-one, cuts {cuts:?}, base {base:#x}");
            }
        }
        // One voxel on every other 2 KiB row: a page each, 100 pages either
        // side of the plane-4 boundary (the middle of the volume, 4 MiB).
        let mut mask = vec![0u8; 512 * 512 * 8];
        let mid = 4 * 512;
        for r in (mid - 200..mid + 200).step_by(2) {
            mask[r * 512] = 1;
        }
        for cuts in [&[0, 8][..], &[0, 4, 8]] {
            assert_eq!(
                picked(&mask, cuts, 1 << 30),
                Vec::<usize>::new(),
                "aligned: no region gets 128 pages"
            );
        }
        let straddling = (1 << 30) + MIB;
        for cuts in [&[0, 8][..], &[0, 4, 8], &[0, 2, 4, 6, 8]] {
            assert_eq!(picked(&mask, cuts, straddling), vec![4 * MIB], "cuts {cuts:?}");
        }
    }

    /// Windows of any length, empty ones included, get their own values in
    /// order, also for a table large enough to be advised huge pages.
    #[test]
    fn par_filled_fills_each_window_in_order() {
        let bounds = [0, 0, 3, 3, 7];
        let v = par_filled(&bounds, |s, k| (s * 100 + k) as u32);
        assert_eq!(v, [100, 101, 102, 300, 301, 302, 303]);
        let n = 3 * HUGE_TABLE_BYTES / 4;
        let big = par_filled(
            &[0, n / 3, n],
            |s, k| if s == 0 { k as u32 } else { (n / 3 + k) as u32 },
        );
        assert!(big.iter().enumerate().all(|(i, &x)| x == i as u32));
        assert!(par_filled(&[0], |_, _| 0u32).is_empty());
    }

    /// The SWAR bit gather against the obvious per-byte loop: every byte value
    /// at every position, and mixed chunks (carries between bytes must not leak).
    #[test]
    fn fg_bits64_matches_per_byte_loop() {
        let naive = |c: &[u8; 64]| (0..64).fold(0u64, |m, i| m | u64::from(c[i] != 0) << i);
        for pos in 0..64 {
            for b in 0..=255u8 {
                let mut c = [0u8; 64];
                c[pos] = b;
                assert_eq!(fg_bits64(&c), naive(&c), "byte {b} at {pos}");
            }
        }
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..10_000 {
            let mut c = [0u8; 64];
            for v in &mut c {
                let r = xorshift(&mut s);
                *v = if r & 3 == 0 { 0 } else { (r >> 40) as u8 };
            }
            assert_eq!(fg_bits64(&c), naive(&c));
        }
    }
}
