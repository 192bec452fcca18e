//! Segmentation quality of one matched lesion: Dice, IoU, HD95 and ASSD in mm,
//! computed on the crop of the lesions' bounding boxes (never the whole volume).
//!
//! Definitions (MONAI's `compute_hausdorff_distance(percentile=95)` and
//! `compute_average_surface_distance(symmetric=True)`):
//! - the surface of a voxel set is its voxels with at least one of their six
//!   face neighbours outside the set (or outside the image);
//! - d(a, B) is the Euclidean distance in mm (anisotropic spacing honoured)
//!   from a surface voxel of A to the nearest surface voxel of B;
//! - HD95 = max(P95 of d(a, B) over ∂A, P95 of d(b, A) over ∂B), percentiles
//!   interpolated linearly (NumPy's default);
//! - ASSD = mean of all d(a, B) and d(b, A) together.
//!
//! Distances come from an exact squared Euclidean distance transform of the
//! crop (Felzenszwalb & Huttenlocher's lower envelope of parabolas, one pass
//! per axis, each weighted by its spacing²).
//!
//! [`SurfaceRule::Surfels`] swaps in DeepMind's surface-distance rule (area-weighted
//! surfels on the voxel-corner lattice, `surfels.rs`), the one BraTS uses.

/// Overlap and surface distances of two voxel sets.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SegMetrics {
    pub dice: f64,
    pub iou: f64,
    pub hd95_mm: f64,
    pub assd_mm: f64,
}

/// Which surface HD95 and ASSD are measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SurfaceRule {
    /// Surface voxels, unweighted, linear percentile (MONAI).
    #[default]
    Voxels,
    /// Area-weighted surfels on the voxel-corner lattice (DeepMind surface-distance, BraTS).
    Surfels,
}

impl std::fmt::Display for SurfaceRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SurfaceRule::Voxels => "voxels",
            SurfaceRule::Surfels => "surfels",
        })
    }
}

impl std::str::FromStr for SurfaceRule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "voxels" => Ok(SurfaceRule::Voxels),
            "surfels" => Ok(SurfaceRule::Surfels),
            _ => Err(format!("surface rule must be voxels or surfels, not '{s}'")),
        }
    }
}

/// Compares A = {v : in_a(v)} and B = {v : in_b(v)} inside the inclusive box
/// `lo..=hi` of a volume of `shape` with `spacing`. Both sets must lie in the
/// box and be non-empty.
pub fn compare(
    shape: [usize; 3],
    spacing: [f64; 3],
    lo: [usize; 3],
    hi: [usize; 3],
    rule: SurfaceRule,
    in_a: impl Fn(usize) -> bool,
    in_b: impl Fn(usize) -> bool,
) -> SegMetrics {
    let dims = [hi[0] - lo[0] + 1, hi[1] - lo[1] + 1, hi[2] - lo[2] + 1];
    let n = dims[0] * dims[1] * dims[2];
    let mut a = vec![false; n];
    let mut b = vec![false; n];
    for z in 0..dims[2] {
        for y in 0..dims[1] {
            for x in 0..dims[0] {
                let v = (lo[0] + x) + shape[0] * ((lo[1] + y) + shape[1] * (lo[2] + z));
                let c = x + dims[0] * (y + dims[1] * z);
                a[c] = in_a(v);
                b[c] = in_b(v);
            }
        }
    }
    let (na, nb) = (a.iter().filter(|&&x| x).count(), b.iter().filter(|&&x| x).count());
    let inter = a.iter().zip(&b).filter(|(x, y)| **x && **y).count();
    let dice = 2.0 * inter as f64 / (na + nb) as f64;
    let iou = inter as f64 / (na + nb - inter) as f64;
    if rule == SurfaceRule::Surfels {
        let (hd95_mm, assd_mm) = super::surfels::distances(&a, &b, dims, spacing, 95.0);
        return SegMetrics {
            dice,
            iou,
            hd95_mm,
            assd_mm,
        };
    }
    let sa = surface(&a, dims);
    let sb = surface(&b, dims);
    let to_b = edt_sq(&sb, dims, spacing);
    let to_a = edt_sq(&sa, dims, spacing);
    let mut d_ab: Vec<f64> = (0..n).filter(|&c| sa[c]).map(|c| to_b[c].sqrt()).collect();
    let mut d_ba: Vec<f64> = (0..n).filter(|&c| sb[c]).map(|c| to_a[c].sqrt()).collect();
    let assd = (d_ab.iter().sum::<f64>() + d_ba.iter().sum::<f64>()) / (d_ab.len() + d_ba.len()) as f64;
    let hd95 = percentile(&mut d_ab, 95.0).max(percentile(&mut d_ba, 95.0));
    SegMetrics {
        dice,
        iou,
        hd95_mm: hd95,
        assd_mm: assd,
    }
}

/// Voxels of the set with a face neighbour outside it (the crop's border counts as outside:
/// the crop holds both sets, so a set voxel on it has an outside neighbour there or beyond).
fn surface(m: &[bool], [nx, ny, nz]: [usize; 3]) -> Vec<bool> {
    let at = |x: usize, y: usize, z: usize| m[x + nx * (y + ny * z)];
    let mut s = vec![false; m.len()];
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                if !at(x, y, z) {
                    continue;
                }
                let inner = x > 0
                    && x + 1 < nx
                    && y > 0
                    && y + 1 < ny
                    && z > 0
                    && z + 1 < nz
                    && at(x - 1, y, z)
                    && at(x + 1, y, z)
                    && at(x, y - 1, z)
                    && at(x, y + 1, z)
                    && at(x, y, z - 1)
                    && at(x, y, z + 1);
                s[x + nx * (y + ny * z)] = !inner;
            }
        }
    }
    s
}

/// Squared distance (mm²) from every voxel to the nearest `feature` voxel.
pub(super) fn edt_sq(feature: &[bool], dims: [usize; 3], spacing: [f64; 3]) -> Vec<f64> {
    let mut d: Vec<f64> = feature.iter().map(|&f| if f { 0.0 } else { f64::INFINITY }).collect();
    let strides = [1, dims[0], dims[0] * dims[1]];
    let mut env = Envelope::default();
    for axis in 0..3 {
        let len = dims[axis];
        let w = spacing[axis] * spacing[axis];
        // Lines along `axis` start at every voxel whose coordinate on that axis is 0.
        let (o1, o2) = match axis {
            0 => (1, 2),
            1 => (0, 2),
            _ => (0, 1),
        };
        for j in 0..dims[o2] {
            for i in 0..dims[o1] {
                let start = i * strides[o1] + j * strides[o2];
                env.line.clear();
                env.line.extend((0..len).map(|k| d[start + k * strides[axis]]));
                // A line without any finite value stays infinite (most lines of the first pass).
                if env.transform(w) {
                    for (k, &v) in env.out.iter().enumerate() {
                        d[start + k * strides[axis]] = v;
                    }
                }
            }
        }
    }
    d
}

/// Scratch of the 1-D transform, reused across lines.
#[derive(Default)]
struct Envelope {
    line: Vec<f64>,
    out: Vec<f64>,
    v: Vec<usize>,
    z: Vec<f64>,
}

impl Envelope {
    /// out[i] = min_j line[j] + w·(i − j)² (Felzenszwalb & Huttenlocher 2012); false (and `out`
    /// untouched) when the line has no finite value.
    fn transform(&mut self, w: f64) -> bool {
        let f = &self.line;
        let (v, z) = (&mut self.v, &mut self.z);
        v.clear();
        z.clear();
        // Parabola vertices (finite ones only) and the boundaries between them.
        let cross = |q: usize, p: usize| {
            ((f[q] + w * (q * q) as f64) - (f[p] + w * (p * p) as f64)) / (2.0 * w * (q as f64 - p as f64))
        };
        for (q, fq) in f.iter().enumerate() {
            if fq.is_infinite() {
                continue;
            }
            while let Some(&p) = v.last() {
                let s = cross(q, p);
                if s <= z[z.len() - 1] {
                    v.pop();
                    z.pop();
                } else {
                    break;
                }
            }
            if v.is_empty() {
                z.clear();
                z.push(f64::NEG_INFINITY);
            } else {
                let s = cross(q, v[v.len() - 1]);
                z.push(s);
            }
            v.push(q);
        }
        if v.is_empty() {
            return false;
        }
        z.push(f64::INFINITY);
        self.out.clear();
        let mut k = 0;
        for i in 0..f.len() {
            while z[k + 1] < i as f64 {
                k += 1;
            }
            let p = v[k];
            let di = i as f64 - p as f64;
            self.out.push(f[p] + w * di * di);
        }
        true
    }
}

/// NumPy's default (linear) percentile, `p` in percent; NaN for no values.
fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    super::quantile_sorted(v, p / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force: distance from each surface voxel of one set to the nearest of the other.
    fn brute(a: &[bool], b: &[bool], dims: [usize; 3], sp: [f64; 3]) -> (f64, f64) {
        let (sa, sb) = (surface(a, dims), surface(b, dims));
        let coord = |c: usize| [c % dims[0], (c / dims[0]) % dims[1], c / (dims[0] * dims[1])];
        let dist = |p: usize, q: usize| {
            let (p, q) = (coord(p), coord(q));
            (0..3)
                .map(|k| ((p[k] as f64 - q[k] as f64) * sp[k]).powi(2))
                .sum::<f64>()
                .sqrt()
        };
        let directed = |from: &[bool], to: &[bool]| -> Vec<f64> {
            (0..from.len())
                .filter(|&i| from[i])
                .map(|i| {
                    (0..to.len())
                        .filter(|&j| to[j])
                        .map(|j| dist(i, j))
                        .fold(f64::INFINITY, f64::min)
                })
                .collect()
        };
        let (mut ab, mut ba) = (directed(&sa, &sb), directed(&sb, &sa));
        let assd = (ab.iter().sum::<f64>() + ba.iter().sum::<f64>()) / (ab.len() + ba.len()) as f64;
        (percentile(&mut ab, 95.0).max(percentile(&mut ba, 95.0)), assd)
    }

    #[test]
    fn transform_equals_brute_force_on_anisotropic_blobs() {
        let dims = [9, 7, 5];
        let sp = [0.7, 1.0, 2.5];
        let mut seed = 12345u64;
        for _ in 0..20 {
            let mut rnd = || {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (seed >> 33) % 100
            };
            let n = dims[0] * dims[1] * dims[2];
            let a: Vec<bool> = (0..n).map(|_| rnd() < 35).collect();
            let b: Vec<bool> = (0..n).map(|_| rnd() < 35).collect();
            if !a.iter().any(|&x| x) || !b.iter().any(|&x| x) {
                continue;
            }
            let m = compare(dims, sp, [0; 3], [8, 6, 4], SurfaceRule::Voxels, |v| a[v], |v| b[v]);
            let (hd, assd) = brute(&a, &b, dims, sp);
            assert!((m.hd95_mm - hd).abs() < 1e-9, "{} vs {hd}", m.hd95_mm);
            assert!((m.assd_mm - assd).abs() < 1e-9, "{} vs {assd}", m.assd_mm);
        }
    }

    #[test]
    fn shifted_cube_by_hand() {
        // A 3×3×3 cube and the same cube shifted by one voxel along x (2 mm spacing there).
        let shape = [6, 3, 3];
        let in_a = |v: usize| v % 6 < 3;
        let in_b = |v: usize| (1..4).contains(&(v % 6));
        let m = compare(
            shape,
            [2.0, 1.0, 1.0],
            [0; 3],
            [5, 2, 2],
            SurfaceRule::Voxels,
            in_a,
            in_b,
        );
        assert_eq!(m.dice, 2.0 * 18.0 / 54.0);
        assert_eq!(m.iou, 18.0 / 36.0);
        // Every surface voxel of A is at most one x-step (2 mm) from B's surface; the centre
        // column x = 1 of A is B's surface (x = 1 is B's face), so those are 0.
        assert!(m.hd95_mm <= 2.0 && m.hd95_mm > 0.0);
    }
}
