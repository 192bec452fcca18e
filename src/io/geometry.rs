//! Voxel grid description and the GT-vs-prediction geometry check.
//!
//! We never resample: two volumes are comparable only if they share shape, and
//! spacing and affine agree within a tolerance in millimetres.

use serde::Serialize;

/// Shape, voxel spacing (mm) and voxel-to-world affine (first three rows).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Geometry {
    pub shape: [usize; 3],
    pub spacing: [f64; 3],
    pub affine: [[f64; 4]; 3],
}

impl Geometry {
    /// An axis-aligned grid with the given spacing and origin 0.
    pub fn new(shape: [usize; 3], spacing: [f64; 3]) -> Self {
        let mut affine = [[0.0; 4]; 3];
        for (a, row) in affine.iter_mut().enumerate() {
            row[a] = spacing[a];
        }
        Geometry { shape, spacing, affine }
    }

    /// Number of voxels.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Volume of one voxel in mm³.
    pub fn voxel_volume(&self) -> f64 {
        self.spacing.iter().product()
    }

    /// World (scanner) coordinates in mm of a continuous voxel position.
    pub fn to_world(&self, ijk: [f64; 3]) -> [f64; 3] {
        let mut out = [0.0; 3];
        for (o, row) in out.iter_mut().zip(&self.affine) {
            *o = row[0] * ijk[0] + row[1] * ijk[1] + row[2] * ijk[2] + row[3];
        }
        out
    }

    /// `None` if `other` is the same grid within `tol` mm, else what differs.
    pub fn mismatch(&self, other: &Geometry, tol: f64) -> Option<String> {
        if self.shape != other.shape {
            return Some(format!("shape {} vs {}", fmt_shape(self.shape), fmt_shape(other.shape)));
        }
        for a in 0..3 {
            let d = (self.spacing[a] - other.spacing[a]).abs();
            if d > tol || d.is_nan() {
                return Some(format!(
                    "spacing {:?} mm vs {:?} mm (axis {a} differs by {d:.6} mm, tolerance {tol} mm)",
                    self.spacing, other.spacing
                ));
            }
        }
        for r in 0..3 {
            for c in 0..4 {
                let d = (self.affine[r][c] - other.affine[r][c]).abs();
                if d > tol || d.is_nan() {
                    return Some(format!(
                        "affine element [{r}][{c}] is {} vs {} (differs by {d:.6} mm, tolerance {tol} mm)",
                        self.affine[r][c], other.affine[r][c]
                    ));
                }
            }
        }
        None
    }
}

/// `60×55×52`
pub fn fmt_shape(s: [usize; 3]) -> String {
    format!("{}×{}×{}", s[0], s[1], s[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatch_reports_each_kind() {
        let a = Geometry::new([4, 5, 6], [1.0, 1.0, 2.0]);
        assert!(a.mismatch(&a, 1e-3).is_none());
        let b = Geometry::new([4, 5, 7], [1.0, 1.0, 2.0]);
        assert!(a.mismatch(&b, 1e-3).unwrap().contains("shape 4×5×6 vs 4×5×7"));
        let c = Geometry::new([4, 5, 6], [1.0, 1.0, 2.5]);
        assert!(a.mismatch(&c, 1e-3).unwrap().contains("spacing"));
        let mut d = a.clone();
        d.affine[1][3] = 0.5;
        assert!(a.mismatch(&d, 1e-3).unwrap().contains("affine element [1][3]"));
        assert!(a.mismatch(&d, 1.0).is_none());
    }

    #[test]
    fn world_coordinates_use_affine() {
        let mut g = Geometry::new([2, 2, 2], [0.5, 0.5, 3.0]);
        g.affine[0][3] = 10.0;
        assert_eq!(g.to_world([2.0, 1.0, 1.0]), [11.0, 0.5, 3.0]);
    }
}
