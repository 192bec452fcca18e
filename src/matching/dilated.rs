//! BraTS 2023 lesion-wise counting (rachitsaluja/BraTS-2023-Metrics,
//! `get_lesion_wise_score`), `--assign dilated:K`:
//!
//! 1. GT lesions (26-connected) whose dilations touch are merged: the whole GT
//!    mask is dilated K times with the 18-connected structuring element (an
//!    offset (dx, dy, dz) with each |d| ≤ K and |dx| + |dy| + |dz| ≤ 2K) and
//!    labelled 26-connected; GT voxels in one dilated component form one lesion.
//! 2. A predicted lesion is a TP for a GT lesion when it intersects that
//!    lesion's dilation (many-to-many: one prediction may hit several).
//! 3. GT lesions at or below the minimum volume (`--min-size-gt`, BraTS: more
//!    than 50 mm³) are left out; a prediction that only hits such lesions is
//!    neither TP nor FP. A prediction that hits no dilated GT lesion is an FP.
//!
//! This module gives the merged lesions, their dilations and which GT lesions
//! are kept; `eval` turns them into counts and the lesion-wise Dice/HD95.

use crate::label::{self, Components, Connectivity, LesionStats};

/// GT lesions after merging, and the dilation of each (same ids).
pub struct Merged {
    pub lesions: Components,
    pub dilated: Components,
}

/// Merges the GT lesions of `gt` (a binary mask) by touching dilations.
pub fn merge(gt: &[u8], shape: [usize; 3], iterations: u32) -> Merged {
    let dil = dilate18(gt, shape, iterations);
    let dilated = label::label(&dil, shape, Connectivity::TwentySix);
    // Merged ids in order of each merged lesion's first GT voxel (storage order).
    let mut map = vec![0u32; dilated.lesions.len() + 1];
    let mut next = 0u32;
    let mut labels = vec![0u32; gt.len()];
    for (v, &g) in gt.iter().enumerate() {
        if g != 0 {
            let d = dilated.labels[v] as usize;
            if map[d] == 0 {
                next += 1;
                map[d] = next;
            }
            labels[v] = map[d];
        }
    }
    let lesions = from_labels(labels, shape, next);
    let dil_labels: Vec<u32> = dilated.labels.iter().map(|&d| map[d as usize]).collect();
    let dilated = from_labels(dil_labels, shape, next);
    Merged { lesions, dilated }
}

/// Components (with statistics) of a label array with ids 1..=count.
fn from_labels(labels: Vec<u32>, shape: [usize; 3], count: u32) -> Components {
    let mut lesions = vec![LesionStats::new(); count as usize];
    let [nx, ny, _] = shape;
    for (v, &l) in labels.iter().enumerate() {
        if l != 0 {
            let x = v % nx;
            lesions[l as usize - 1].add_run(x, x + 1, (v / nx) % ny, v / (nx * ny));
        }
    }
    Components { shape, labels, lesions }
}

/// `iterations` dilations with the 3×3×3 cube minus its 8 corners (scipy's
/// `generate_binary_structure(3, 2)`); voxels outside the volume count as background.
pub fn dilate18(mask: &[u8], shape: [usize; 3], iterations: u32) -> Vec<u8> {
    let [nx, ny, nz] = shape;
    let mut cur: Vec<u8> = mask.iter().map(|&v| u8::from(v != 0)).collect();
    let mut offsets = Vec::new();
    for dz in -1i64..=1 {
        for dy in -1i64..=1 {
            for dx in -1i64..=1 {
                if dx.abs() + dy.abs() + dz.abs() <= 2 {
                    offsets.push((dx, dy, dz));
                }
            }
        }
    }
    for _ in 0..iterations {
        let mut next = cur.clone();
        for (v, _) in cur.iter().enumerate().filter(|(_, c)| **c != 0) {
            let (x, y, z) = ((v % nx) as i64, ((v / nx) % ny) as i64, (v / (nx * ny)) as i64);
            for &(dx, dy, dz) in &offsets {
                let (a, b, c) = (x + dx, y + dy, z + dz);
                if a >= 0 && b >= 0 && c >= 0 && (a as usize) < nx && (b as usize) < ny && (c as usize) < nz {
                    next[a as usize + nx * (b as usize + ny * c as usize)] = 1;
                }
            }
        }
        cur = next;
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dilation_reaches_the_18_neighbourhood_k_times() {
        // One voxel in a 9³ volume: after 1 iteration 19 voxels; after 3, offsets with
        // each |d| ≤ 3 and |dx|+|dy|+|dz| ≤ 6: the 7³ cube minus the 80 offsets whose
        // absolute values are (3,3,3), (3,3,2), (3,3,1) or (3,2,2) in some order (8 + 3·8·3).
        let mut m = vec![0u8; 729];
        m[4 + 9 * (4 + 9 * 4)] = 1;
        assert_eq!(dilate18(&m, [9, 9, 9], 1).iter().filter(|&&v| v != 0).count(), 19);
        assert_eq!(dilate18(&m, [9, 9, 9], 3).iter().filter(|&&v| v != 0).count(), 343 - 80);
    }

    #[test]
    fn lesions_merge_when_their_dilations_touch() {
        // Row of 20 voxels: lesions at x = 0, x = 7 (gap 6: dilations of 3 meet) and x = 15
        // (gap 7 from x = 7: dilations end at 10 and 12, not adjacent).
        let mut m = vec![0u8; 20];
        for x in [0, 7, 15] {
            m[x] = 1;
        }
        let merged = merge(&m, [20, 1, 1], 3);
        assert_eq!(merged.lesions.count(), 2);
        assert_eq!(merged.lesions.labels[0], 1);
        assert_eq!(merged.lesions.labels[7], 1);
        assert_eq!(merged.lesions.labels[15], 2);
        assert_eq!(merged.dilated.labels[10], 1);
        assert_eq!(merged.dilated.labels[12], 2);
        assert_eq!(merged.dilated.labels[11], 0);
    }
}
