//! Sliding-window inference with MONAI's `sliding_window_inference` semantics
//! (checked against MONAI 1.6.1, fixtures/onnx/sw/README.md):
//! - the image is normalised (z-score over the whole image per channel by
//!   default), then zero-padded symmetrically on axes shorter than the patch
//!   (`before = (patch − size) / 2`) and cropped back at the end;
//! - window starts along an axis are multiples of `max(int(patch·(1−overlap)), 1)`
//!   (the interval is the patch itself when the axis equals it), and a window
//!   that would run past the end is moved back to `size − patch`; with
//!   `nnunet` placement, nnU-Net's evenly spread starts are used instead
//!   (`n = ceil((size − patch)/(step·patch)) + 1` with step = 1 − overlap, nnU-Net's
//!   tile_step_size, start i = round(i·(size − patch)/(n − 1)));
//! - every window's raw output is weighted by an importance map and summed;
//!   the sum is divided by the summed weights. `gaussian`: per axis
//!   exp(−x²/(2σ²)) with x the distance from the patch centre (patch−1)/2 and
//!   σ = 0.125·patch, the outer product of the three, not normalised, clamped
//!   below at max(min, 1e−3); `constant`: ones (a plain mean);
//! - the activation comes after blending (`blend_on = logits`, MONAI's order)
//!   or before it (`probs`): 1 output channel → sigmoid, ≥ 2 → softmax, none
//!   when the model already ends in Sigmoid/Softmax.
//!
//! Volumes are in NIfTI storage order (i fastest); tensors put i on the slowest
//! spatial axis (D), as MONAI does with nibabel arrays, so each window is a
//! transposing copy.

use super::exec::Session;
use super::model::sigmoid;
use super::tensor::Tensor;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blend {
    Gaussian,
    Constant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlendOn {
    Logits,
    Probs,
}

/// Activation applied to the model's outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// None if the model ends in Sigmoid/Softmax, else sigmoid (1 channel) or softmax.
    Auto,
    None,
    Sigmoid,
    Softmax,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Normalize {
    ZScore,
    None,
    Fixed { mean: f64, std: f64 },
}

/// Channel position in the model's input and output tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Decide from the declared input shape (NDHWC when its last axis, not axis 1, equals the channel count).
    Auto,
    Ncdhw,
    Ndhwc,
}

#[derive(Debug, Clone)]
pub struct WindowConfig {
    /// Patch size (i, j, k); None = the model's static input size.
    pub patch: Option<[usize; 3]>,
    pub overlap: f64,
    pub nnunet_steps: bool,
    pub blend: Blend,
    pub blend_on: BlendOn,
    pub activation: Activation,
    pub normalize: Normalize,
    pub layout: Layout,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            patch: None,
            overlap: 0.5,
            nnunet_steps: false,
            blend: Blend::Gaussian,
            blend_on: BlendOn::Logits,
            activation: Activation::Auto,
            normalize: Normalize::ZScore,
            layout: Layout::Auto,
        }
    }
}

/// Window starts along one axis of (padded) length `size ≥ patch`.
pub fn starts(size: usize, patch: usize, overlap: f64, nnunet: bool) -> Vec<usize> {
    if size <= patch {
        return vec![0];
    }
    if nnunet {
        // nnU-Net's tile_step_size is 1 − overlap (its default 0.5 = overlap 0.5).
        let target = (1.0 - overlap) * patch as f64;
        let n = ((size - patch) as f64 / target).ceil() as usize + 1;
        let step = (size - patch) as f64 / (n - 1) as f64;
        // numpy's round: half to even.
        return (0..n).map(|i| round_half_even(step * i as f64) as usize).collect();
    }
    let interval = ((patch as f64 * (1.0 - overlap)) as usize).max(1);
    let n = (size - patch).div_ceil(interval) + 1;
    let mut v: Vec<usize> = (0..n).map(|i| (i * interval).min(size - patch)).collect();
    v.dedup();
    v
}

fn round_half_even(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - x.signum()
    } else {
        r
    }
}

/// The importance map of a patch, in tensor order (i slowest).
pub fn importance_map(patch: [usize; 3], blend: Blend) -> Vec<f32> {
    let n: usize = patch.iter().product();
    if blend == Blend::Constant {
        return vec![1.0; n];
    }
    // Per axis in f32 as MONAI computes it: x from −(r−1)/2 to (r−1)/2.
    let axes: Vec<Vec<f32>> = patch
        .iter()
        .map(|&r| {
            let sigma = 0.125 * r as f32;
            (0..r)
                .map(|i| {
                    let x = i as f32 - (r as f32 - 1.0) / 2.0;
                    (x * x / (-2.0 * sigma * sigma)).exp()
                })
                .collect()
        })
        .collect();
    let mut m = Vec::with_capacity(n);
    for a in &axes[0] {
        for b in &axes[1] {
            for c in &axes[2] {
                m.push(a * b * c);
            }
        }
    }
    let floor = m.iter().copied().fold(f32::INFINITY, f32::min).max(1e-3);
    m.iter_mut().for_each(|v| *v = v.max(floor));
    m
}

/// Result of a sliding-window run: class probabilities in storage order.
pub struct WindowOutput {
    /// One volume per output class (after the activation).
    pub probs: Vec<Vec<f32>>,
    pub windows: usize,
    pub batch: usize,
}

fn normalise(img: &mut [f32], how: Normalize) {
    match how {
        Normalize::None => {}
        Normalize::Fixed { mean, std } => img.iter_mut().for_each(|v| *v = ((f64::from(*v) - mean) / std) as f32),
        Normalize::ZScore => {
            let n = img.len().max(1) as f64;
            let mean = img.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
            let std = (img.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n).sqrt();
            img.iter_mut().for_each(|v| {
                let c = f64::from(*v) - mean;
                *v = if std > 0.0 { (c / std) as f32 } else { c as f32 };
            });
        }
    }
}

/// Run `session` over the image channels (each `shape` voxels in storage order).
pub fn sliding_window(
    session: &Session,
    channels: &[Vec<f32>],
    shape: [usize; 3],
    cfg: &WindowConfig,
) -> Result<WindowOutput> {
    let model = &session.model;
    let bad = |m: String| Error::input(&session.path, m);
    let [input] = model.inputs.as_slice() else {
        return Err(bad(format!(
            "the model has {} inputs; an image model has one",
            model.inputs.len()
        )));
    };
    let dims = &input.dims;
    if dims.len() != 5 {
        return Err(bad(format!(
            "the model input is {}-D; sliding-window inference needs a 5-D (3-D image) input",
            dims.len()
        )));
    }
    let nch = channels.len();
    let layout = match cfg.layout {
        Layout::Auto if dims[1] != Some(nch) && dims[4] == Some(nch) => Layout::Ndhwc,
        Layout::Auto => Layout::Ncdhw,
        l => l,
    };
    let (ch_axis, sp) = if layout == Layout::Ndhwc {
        (4, [1, 2, 3])
    } else {
        (1, [2, 3, 4])
    };
    if let Some(c) = dims[ch_axis]
        && c != nch
    {
        return Err(bad(format!(
            "the model takes {c} input channels, {nch} image files were given"
        )));
    }
    let static_patch = sp.map(|a| dims[a]);
    let patch = match (cfg.patch, static_patch) {
        (Some(p), s) => {
            for a in 0..3 {
                if let Some(d) = s[a]
                    && d != p[a]
                {
                    return Err(bad(format!(
                        "--patch {p:?} differs from the model's fixed input size {s:?}"
                    )));
                }
            }
            p
        }
        (None, [Some(a), Some(b), Some(c)]) => [a, b, c],
        (None, s) => {
            return Err(Error::Config(format!(
                "the model's spatial input size is not fixed ({s:?}); give --patch"
            )));
        }
    };
    if patch.contains(&0) {
        return Err(Error::Config("--patch sizes must be positive".into()));
    }
    // Bound the sizes before allocating anything (a declared input size can be anything).
    let patch_voxels = patch
        .iter()
        .try_fold(nch.max(1), |a, &d| a.checked_mul(d))
        .filter(|&n| n <= 1 << 28);
    let image_voxels = (0..3)
        .try_fold(nch.max(1), |a, i| a.checked_mul(shape[i].max(patch[i])))
        .filter(|&n| n <= 1 << 31);
    if patch_voxels.is_none() || image_voxels.is_none() {
        return Err(Error::Config(format!(
            "patch {patch:?} with {nch} channels on an image of {shape:?} is too large"
        )));
    }
    if !(0.0..1.0).contains(&cfg.overlap) {
        return Err(Error::Config(format!(
            "--overlap must be in [0, 1), got {}",
            cfg.overlap
        )));
    }

    // Normalised channels in tensor order (i slowest), zero-padded to ≥ patch.
    let padded: [usize; 3] = std::array::from_fn(|a| shape[a].max(patch[a]));
    let before: [usize; 3] = std::array::from_fn(|a| (padded[a] - shape[a]) / 2);
    let plane = padded[0] * padded[1] * padded[2];
    let mut img = vec![0.0f32; nch * plane];
    for (c, ch) in channels.iter().enumerate() {
        let mut v = ch.clone();
        normalise(&mut v, cfg.normalize);
        for k in 0..shape[2] {
            for j in 0..shape[1] {
                for i in 0..shape[0] {
                    let t = ((i + before[0]) * padded[1] + j + before[1]) * padded[2] + k + before[2];
                    img[c * plane + t] = v[i + shape[0] * (j + shape[1] * k)];
                }
            }
        }
    }

    if cfg.nnunet_steps {
        // nnU-Net's count of steps has no bound of its own: near overlap 1 it
        // asks for billions of windows (repeats of the same few starts). Up
        // to a million are run as nnU-Net runs them, repeats included.
        let steps: f64 = (0..3)
            .map(|a| ((padded[a] - patch[a]) as f64 / ((1.0 - cfg.overlap) * patch[a] as f64)).ceil() + 1.0)
            .product();
        if steps > MAX_WINDOWS as f64 {
            return Err(Error::Config(format!(
                "--overlap {} with --nnunet-steps places {steps:.0} windows on an image of {padded:?} \
                 (patch {patch:?}), more than {MAX_WINDOWS}; lower --overlap",
                cfg.overlap
            )));
        }
    }
    let st: Vec<Vec<usize>> = (0..3)
        .map(|a| starts(padded[a], patch[a], cfg.overlap, cfg.nnunet_steps))
        .collect();
    let mut windows = Vec::new();
    for &a in &st[0] {
        for &b in &st[1] {
            for &c in &st[2] {
                windows.push([a, b, c]);
            }
        }
    }
    let imp = importance_map(patch, cfg.blend);
    let pn: usize = patch.iter().product();
    let one_shape: Vec<usize> = if layout == Layout::Ndhwc {
        vec![1, patch[0], patch[1], patch[2], nch]
    } else {
        vec![1, nch, patch[0], patch[1], patch[2]]
    };
    let batch = session.max_batch(&one_shape)?.min(windows.len()).max(1);
    let mut acc: Vec<f32> = Vec::new();
    let mut count = vec![0.0f32; plane];
    let mut ncls = 0;
    let act = match cfg.activation {
        Activation::Auto if model.ends_in_activation => Activation::None,
        a => a,
    };
    for chunk in windows.chunks(batch) {
        let b = chunk.len();
        let mut shape_b = one_shape.clone();
        shape_b[0] = b;
        let mut data = vec![0.0f32; b * nch * pn];
        for (w, s) in chunk.iter().enumerate() {
            for c in 0..nch {
                for x in 0..patch[0] {
                    for y in 0..patch[1] {
                        let src = c * plane + ((s[0] + x) * padded[1] + s[1] + y) * padded[2] + s[2];
                        let row = &img[src..src + patch[2]];
                        for (z, &v) in row.iter().enumerate() {
                            let p = (x * patch[1] + y) * patch[2] + z;
                            let dst = if layout == Layout::Ndhwc {
                                (w * pn + p) * nch + c
                            } else {
                                (w * nch + c) * pn + p
                            };
                            data[dst] = v;
                        }
                    }
                }
            }
        }
        let out = session.run(&[&Tensor::new(shape_b, data)])?;
        let (oc, out_sp) = match (layout, out.shape.as_slice()) {
            (Layout::Ndhwc, &[_, x, y, z, c]) => (c, [x, y, z]),
            (_, &[_, c, x, y, z]) => (c, [x, y, z]),
            (_, s) => {
                return Err(bad(format!(
                    "the model output has shape {s:?}; a 5-D output was expected"
                )));
            }
        };
        if out_sp != patch || out.shape[0] != b {
            return Err(bad(format!(
                "the model output {:?} does not match its input patch {patch:?}",
                out.shape
            )));
        }
        if oc == 0 || (ncls != 0 && oc != ncls) {
            return Err(bad(format!(
                "the model output has {oc} channels (expected {ncls} or more than 0)"
            )));
        }
        if ncls == 0 {
            ncls = oc;
            // One blended volume per output channel (and as much again for the
            // cropped maps): a model of many classes on a large image may not
            // fit, which must be an error naming the model, not an abort.
            acc = zeroed(oc, plane).ok_or_else(|| {
                bad(format!(
                    "its {oc} output channels need {oc} × {plane} values ({} GiB) of blending memory, \
                     which cannot be allocated; use a smaller image or a model with fewer outputs",
                    (oc as f64 * plane as f64 * 4.0 / f64::from(1u32 << 30)).ceil()
                ))
            })?;
        }
        let resolved = resolve_act(act, oc);
        for (w, s) in chunk.iter().enumerate() {
            let mut pred = vec![0.0f32; oc * pn];
            for p in 0..pn {
                for c in 0..oc {
                    let src = if layout == Layout::Ndhwc {
                        (w * pn + p) * oc + c
                    } else {
                        (w * oc + c) * pn + p
                    };
                    pred[c * pn + p] = out.data[src];
                }
            }
            if cfg.blend_on == BlendOn::Probs {
                activate(&mut pred, oc, pn, resolved);
            }
            for x in 0..patch[0] {
                for y in 0..patch[1] {
                    let base = ((s[0] + x) * padded[1] + s[1] + y) * padded[2] + s[2];
                    let pbase = (x * patch[1] + y) * patch[2];
                    for z in 0..patch[2] {
                        let wgt = imp[pbase + z];
                        count[base + z] += wgt;
                        for c in 0..oc {
                            acc[c * plane + base + z] += wgt * pred[c * pn + pbase + z];
                        }
                    }
                }
            }
        }
    }
    for c in 0..ncls {
        for (v, n) in acc[c * plane..(c + 1) * plane].iter_mut().zip(&count) {
            *v /= n;
        }
    }
    if cfg.blend_on == BlendOn::Logits {
        activate(&mut acc, ncls, plane, resolve_act(act, ncls));
    }
    // Crop the padding and return to storage order.
    let n = shape[0] * shape[1] * shape[2];
    let mut probs = Vec::with_capacity(ncls);
    for c in 0..ncls {
        let mut v = zeroed(1, n).ok_or_else(|| bad(format!("its output maps of {n} voxels cannot be allocated")))?;
        for k in 0..shape[2] {
            for j in 0..shape[1] {
                for i in 0..shape[0] {
                    let t = ((i + before[0]) * padded[1] + j + before[1]) * padded[2] + k + before[2];
                    v[i + shape[0] * (j + shape[1] * k)] = acc[c * plane + t];
                }
            }
        }
        probs.push(v);
    }
    Ok(WindowOutput {
        probs,
        windows: windows.len(),
        batch,
    })
}

/// Most windows one image may take (nnU-Net placement near overlap 1).
const MAX_WINDOWS: usize = 1 << 20;

/// `count` × `len` zeros, or None when that is over 2³⁶ values (256 GiB) or
/// the allocator refuses it (rather than aborting the process).
fn zeroed(count: usize, len: usize) -> Option<Vec<f32>> {
    let n = count.checked_mul(len).filter(|&n| n <= 1 << 36)?;
    let mut v = Vec::new();
    v.try_reserve_exact(n).ok()?;
    v.resize(n, 0.0);
    Some(v)
}

fn resolve_act(a: Activation, channels: usize) -> Activation {
    match a {
        Activation::Auto if channels == 1 => Activation::Sigmoid,
        Activation::Auto => Activation::Softmax,
        a => a,
    }
}

/// Apply the activation to `c` channel planes of `n` values each.
fn activate(v: &mut [f32], c: usize, n: usize, a: Activation) {
    match a {
        Activation::Sigmoid => v.iter_mut().for_each(|x| *x = sigmoid(*x)),
        Activation::Softmax => {
            for p in 0..n {
                let m = (0..c).map(|k| v[k * n + p]).fold(f32::NEG_INFINITY, f32::max);
                let s: f32 = (0..c).map(|k| (v[k * n + p] - m).exp()).sum();
                for k in 0..c {
                    v[k * n + p] = (v[k * n + p] - m).exp() / s;
                }
            }
        }
        Activation::None | Activation::Auto => {}
    }
}

/// Foreground probability from class probabilities: `class` if given, else
/// 1 − background (class 0) for ≥ 2 classes, or the single channel.
pub fn foreground(probs: &[Vec<f32>], class: Option<usize>) -> Result<Vec<f32>> {
    match (class, probs.len()) {
        (Some(k), n) if k < n => Ok(probs[k].clone()),
        (Some(k), n) => Err(Error::Config(format!("--class {k} but the model outputs {n} channels"))),
        (None, 1) => Ok(probs[0].clone()),
        (None, _) => Ok(probs[0].iter().map(|&b| 1.0 - b).collect()),
    }
}

/// Argmax class per voxel (lowest class on ties).
pub fn argmax(probs: &[Vec<f32>]) -> Vec<u32> {
    let n = probs.first().map_or(0, Vec::len);
    (0..n)
        .map(|p| {
            let mut best = 0;
            for c in 1..probs.len() {
                if probs[c][p] > probs[best][p] {
                    best = c;
                }
            }
            best as u32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monai_starts() {
        assert_eq!(starts(45, 32, 0.5, false), [0, 13]);
        assert_eq!(starts(37, 16, 0.5, false), [0, 8, 16, 21]);
        assert_eq!(starts(32, 32, 0.5, false), [0]);
        assert_eq!(starts(100, 32, 0.0, false), [0, 32, 64, 68]);
    }

    #[test]
    fn nnunet_starts() {
        assert_eq!(starts(37, 16, 0.5, true), [0, 7, 14, 21]);
        assert_eq!(starts(41, 20, 0.5, true), [0, 7, 14, 21]);
        assert_eq!(starts(29, 24, 0.5, true), [0, 5]);
    }

    #[test]
    fn gaussian_is_not_normalised_and_clamped() {
        let m = importance_map([32, 32, 32], Blend::Gaussian);
        let max = m.iter().copied().fold(0.0f32, f32::max);
        assert!((max - 0.9768).abs() < 1e-3, "{max}");
        assert!(m.iter().all(|&v| v >= 1e-3));
    }
}
