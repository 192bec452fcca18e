//! Per-lesion statistics, accumulated from runs during labelling (one
//! arithmetic update per run, not per voxel, so they are nearly free).

use crate::io::Geometry;
use serde::Serialize;

/// Size and position of one lesion, in voxel indices.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LesionStats {
    pub voxels: u64,
    /// Inclusive bounding box, voxel indices (i, j, k).
    pub bbox_min: [usize; 3],
    pub bbox_max: [usize; 3],
    /// Sum of voxel indices per axis (centroid = sum / voxels).
    pub index_sum: [u64; 3],
}

impl LesionStats {
    pub(crate) fn new() -> Self {
        LesionStats {
            voxels: 0,
            bbox_min: [usize::MAX; 3],
            bbox_max: [0; 3],
            index_sum: [0; 3],
        }
    }

    /// Adds the run x in [start, end) on row (y, z).
    #[inline]
    pub(crate) fn add_run(&mut self, start: usize, end: usize, y: usize, z: usize) {
        self.add_row_group(start, end, (end - start) as u64, run_x_sum(start, end), y, z);
    }

    /// Adds runs of one row (y, z) spanning x in [start, end) with `voxels` voxels whose x
    /// coordinates sum to `x_sum`.
    #[inline]
    pub(crate) fn add_row_group(&mut self, start: usize, end: usize, voxels: u64, x_sum: u64, y: usize, z: usize) {
        self.voxels += voxels;
        self.index_sum[0] += x_sum;
        self.index_sum[1] += y as u64 * voxels;
        self.index_sum[2] += z as u64 * voxels;
        let lo = [start, y, z];
        let hi = [end - 1, y, z];
        for a in 0..3 {
            self.bbox_min[a] = self.bbox_min[a].min(lo[a]);
            self.bbox_max[a] = self.bbox_max[a].max(hi[a]);
        }
    }

    /// Centroid in voxel coordinates.
    pub fn centroid(&self) -> [f64; 3] {
        self.index_sum.map(|s| s as f64 / self.voxels as f64)
    }

    /// Centroid in world coordinates (mm) through the affine.
    pub fn centroid_mm(&self, g: &Geometry) -> [f64; 3] {
        g.to_world(self.centroid())
    }

    pub fn volume_mm3(&self, g: &Geometry) -> f64 {
        self.voxels as f64 * g.voxel_volume()
    }
}

/// Σ x for x in start..end = (start + end − 1)·len / 2, exact in integers.
#[inline]
pub(crate) fn run_x_sum(start: usize, end: usize) -> u64 {
    (start as u64 + end as u64 - 1) * (end - start) as u64 / 2
}
