//! The one overlap table every criterion and preset derives from.
//!
//! One pass over the ground-truth foreground reads the prediction label at the
//! same voxel and counts each (gt, pred) pair. No per-pair full-volume masks
//! are ever built, which is what makes the Python peers slow.

use crate::label::Components;
use std::collections::HashMap;

/// Sizes of both sides and the sparse intersection counts.
#[derive(Debug, Clone, PartialEq)]
pub struct OverlapTable {
    /// `gt_sizes[g - 1]` = voxels of GT lesion g.
    pub gt_sizes: Vec<u64>,
    pub pred_sizes: Vec<u64>,
    /// (gt id, pred id, intersecting voxels), sorted by (gt, pred); only pairs
    /// that share at least one voxel.
    pub pairs: Vec<(u32, u32, u64)>,
}

impl OverlapTable {
    /// Builds the table from two labelled volumes of the same shape.
    ///
    /// # Panics
    /// If the volumes differ in length (geometry is checked before this).
    pub fn build(gt: &Components, pred: &Components) -> Self {
        assert_eq!(gt.labels.len(), pred.labels.len(), "label volumes differ in size");
        let mut counts: HashMap<(u32, u32), u64> = HashMap::new();
        // Consecutive voxels usually hit the same pair: count a streak, then
        // flush it, so the hash map sees one update per streak.
        let mut last = (0u32, 0u32);
        let mut streak = 0u64;
        for (&g, &p) in gt.labels.iter().zip(&pred.labels) {
            if g == 0 || p == 0 {
                continue;
            }
            if (g, p) == last {
                streak += 1;
            } else {
                if streak > 0 {
                    *counts.entry(last).or_insert(0) += streak;
                }
                last = (g, p);
                streak = 1;
            }
        }
        if streak > 0 {
            *counts.entry(last).or_insert(0) += streak;
        }
        let mut pairs: Vec<(u32, u32, u64)> = counts.into_iter().map(|((g, p), c)| (g, p, c)).collect();
        pairs.sort_unstable();
        OverlapTable {
            gt_sizes: gt.lesions.iter().map(|l| l.voxels).collect(),
            pred_sizes: pred.lesions.iter().map(|l| l.voxels).collect(),
            pairs,
        }
    }

    pub fn gt_size(&self, g: u32) -> u64 {
        self.gt_sizes[g as usize - 1]
    }

    pub fn pred_size(&self, p: u32) -> u64 {
        self.pred_sizes[p as usize - 1]
    }

    /// Voxels shared by GT lesion `g` and predicted lesion `p` (0 if they do not touch).
    pub fn intersection(&self, g: u32, p: u32) -> u64 {
        self.pairs
            .binary_search_by_key(&(g, p), |&(a, b, _)| (a, b))
            .map_or(0, |i| self.pairs[i].2)
    }

    /// Voxels shared by the binarised masks.
    /// Per prediction (index id − 1): whether it qualifies with some GT lesion under `criterion`.
    pub fn pred_qualifies(&self, criterion: &super::Criterion) -> Vec<bool> {
        let mut q = vec![false; self.pred_sizes.len()];
        for &(g, p, inter) in &self.pairs {
            if criterion.qualifies(criterion.score(self.gt_size(g), self.pred_size(p), inter), inter) {
                q[p as usize - 1] = true;
            }
        }
        q
    }

    pub fn total_intersection(&self) -> u64 {
        self.pairs.iter().map(|&(_, _, c)| c).sum()
    }

    /// IoU of a pair from its intersection.
    pub fn iou(&self, g: u32, p: u32, inter: u64) -> f64 {
        let union = self.gt_size(g) + self.pred_size(p) - inter;
        inter as f64 / union as f64
    }
}
