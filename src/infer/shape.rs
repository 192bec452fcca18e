//! Output shapes of every op, shared by the CPU and GPU backends so both agree
//! on sizes and reject the same inputs.

use super::model::{Op, Pads, ResizeTarget};
use super::tensor::broadcast;

/// [n, c, d, h, w] of a 4-D (2-D image) or 5-D tensor for an op with `rank` spatial axes.
pub fn as5(shape: &[usize], rank: usize) -> Result<[usize; 5], String> {
    match (rank, shape) {
        (3, &[n, c, d, h, w]) => Ok([n, c, d, h, w]),
        (2, &[n, c, h, w]) => Ok([n, c, 1, h, w]),
        _ => Err(format!(
            "expects a {}-D input (N, C and {rank} spatial axes), got shape {shape:?}",
            rank + 2
        )),
    }
}

fn from5(s: [usize; 5], rank: usize) -> Vec<usize> {
    if rank == 2 {
        vec![s[0], s[1], s[3], s[4]]
    } else {
        s.to_vec()
    }
}

/// Normalise a possibly negative axis.
pub fn axis(a: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    if a < -r || a >= r {
        return Err(format!("axis {a} is out of range for a {rank}-D tensor"));
    }
    Ok(if a < 0 { (a + r) as usize } else { a as usize })
}

/// Softmax runs over `len` values `inner` apart: one axis (opset ≥ 13) or,
/// with `flatten` (older opsets), all axes from `axis` on as one.
pub fn softmax_extent(a: i64, flatten: bool, shape: &[usize]) -> Result<(usize, usize), String> {
    let a = axis(a, shape.len())?;
    Ok(if flatten {
        (shape[a..].iter().product(), 1)
    } else {
        (shape[a], shape[a + 1..].iter().product())
    })
}

/// Output spatial size of a window op; None when the window does not fit.
fn windows(size: usize, pb: usize, pe: usize, k: usize, s: usize, d: usize) -> Option<usize> {
    let span = (k - 1) * d + 1;
    let padded = size + pb + pe;
    (padded >= span).then(|| (padded - span) / s + 1)
}

/// Spatial geometry of a conv or pool on a given input: (pad begin, output [d, h, w]).
pub fn window_geometry(
    input: [usize; 5],
    kernel: [usize; 3],
    strides: [usize; 3],
    dil: [usize; 3],
    pads: &Pads,
) -> Result<([usize; 3], [usize; 3]), String> {
    let size = [input[2], input[3], input[4]];
    let (pb, pe) = pads.resolve(size, kernel, strides, dil);
    let mut out = [0; 3];
    for a in 0..3 {
        out[a] = windows(size[a], pb[a], pe[a], kernel[a], strides[a], dil[a])
            .ok_or_else(|| format!("the kernel does not fit the input of spatial size {size:?}"))?;
    }
    Ok((pb, out))
}

/// Largest tensor (elements) any op may produce: keeps a crafted model from
/// asking for absurd allocations, and GPU indices within 31 bits.
pub const MAX_ELEMENTS: usize = 1 << 31;

/// The permutation of a Transpose: its `perm`, or reversed axes when none was given.
pub fn transpose_perm(perm: &[usize], rank: usize) -> Vec<usize> {
    if perm.is_empty() {
        (0..rank).rev().collect()
    } else {
        perm.to_vec()
    }
}

/// Output shape of `op` for inputs of the given shapes: never an empty axis,
/// never more than [`MAX_ELEMENTS`] values.
pub fn infer(op: &Op, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
    let out = infer_unchecked(op, ins)?;
    let n = out
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS);
    match n {
        _ if out.contains(&0) => Err(format!("the output shape {out:?} has an empty axis")),
        None => Err(format!("the output shape {out:?} is too large")),
        Some(_) => Ok(out),
    }
}

fn infer_unchecked(op: &Op, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
    let x = ins[0];
    match op {
        Op::Conv(c) => {
            let s = as5(x, c.rank)?;
            if s[1] != c.c_in {
                return Err(format!("input has {} channels, the weights expect {}", s[1], c.c_in));
            }
            let (_, o) = window_geometry(s, c.kernel, c.strides, c.dilations, &c.pads)?;
            Ok(from5([s[0], c.c_out, o[0], o[1], o[2]], c.rank))
        }
        Op::ConvTranspose(c) => {
            let s = as5(x, c.rank)?;
            if s[1] != c.c_in {
                return Err(format!("input has {} channels, the weights expect {}", s[1], c.c_in));
            }
            if s[2..].contains(&0) {
                return Err(format!("input of shape {x:?} has an empty spatial axis"));
            }
            let mut o = [0; 3];
            for a in 0..3 {
                let full = (s[2 + a] - 1) * c.strides[a] + (c.kernel[a] - 1) * c.dilations[a] + 1 + c.output_padding[a];
                o[a] = full
                    .checked_sub(c.pad_begin[a] + c.pad_end[a])
                    .filter(|&v| v > 0)
                    .ok_or("the padding removes the whole output")?;
            }
            Ok(from5([s[0], c.c_out, o[0], o[1], o[2]], c.rank))
        }
        Op::Affine { scale, .. } | Op::InstanceNorm { scale, .. } => {
            if x.len() < 3 || x[1] != scale.len() {
                return Err(format!(
                    "input of shape {x:?} does not have {} channels on axis 1",
                    scale.len()
                ));
            }
            Ok(x.to_vec())
        }
        Op::Act(_) | Op::Identity => Ok(x.to_vec()),
        Op::PRelu { slope } => match broadcast(x, &slope.shape) {
            Some(b) if b == x => Ok(x.to_vec()),
            _ => Err(format!("slope of shape {:?} does not broadcast to {x:?}", slope.shape)),
        },
        Op::Softmax { axis: a, .. } => {
            axis(*a, x.len())?;
            Ok(x.to_vec())
        }
        Op::Pool(p) => {
            let s = as5(x, p.rank)?;
            let (_, o) = window_geometry(s, p.kernel, p.strides, [1; 3], &p.pads)?;
            Ok(from5([s[0], s[1], o[0], o[1], o[2]], p.rank))
        }
        Op::Resize(r) => {
            let n = x.len();
            if n == 0 || n > 6 || x.contains(&0) {
                return Err(format!(
                    "Resize takes a tensor of 1 to 6 non-empty axes, got shape {x:?}"
                ));
            }
            match &r.target {
                ResizeTarget::Scales(sc) if sc.len() == n => {
                    if sc.iter().any(|&v| !(v > 0.0 && v.is_finite())) {
                        return Err(format!("scales {sc:?} must be positive"));
                    }
                    // In f32, as onnxruntime computes it (scale 0.7 on 10 gives 7).
                    Ok(x.iter()
                        .zip(sc)
                        .map(|(&d, &s)| (s * d as f32).min(MAX_ELEMENTS as f32) as usize)
                        .collect())
                }
                ResizeTarget::Sizes(sz) if sz.len() == n => Ok(sz.clone()),
                _ => Err(format!(
                    "scales/sizes do not have one value per axis of the {n}-D input"
                )),
            }
        }
        Op::Concat { axis: a } => {
            let a = axis(*a, x.len())?;
            let mut out = x.to_vec();
            for s in &ins[1..] {
                if s.len() != x.len() || (0..x.len()).any(|i| i != a && s[i] != x[i]) {
                    return Err(format!("cannot concatenate shapes {x:?} and {s:?} on axis {a}"));
                }
                out[a] += s[a];
            }
            Ok(out)
        }
        Op::Binary { b, .. } => {
            let bs: &[usize] = match b {
                super::model::Operand::Value(_) => ins[1],
                super::model::Operand::Const { t, .. } => &t.shape,
            };
            broadcast(x, bs).ok_or_else(|| format!("shapes {x:?} and {bs:?} do not broadcast"))
        }
        Op::Transpose { perm } => {
            let perm = &transpose_perm(perm, x.len());
            if perm.len() != x.len() {
                return Err(format!("perm {perm:?} does not fit a {}-D input", x.len()));
            }
            Ok(perm.iter().map(|&p| x[p]).collect())
        }
        Op::Reshape { shape, allowzero } => {
            let total: usize = x.iter().product();
            let mut out = Vec::with_capacity(shape.len());
            let mut infer_at = None;
            for (i, &d) in shape.iter().enumerate() {
                match d {
                    -1 if infer_at.is_none() => {
                        infer_at = Some(i);
                        out.push(1);
                    }
                    0 if !allowzero => out.push(*x.get(i).ok_or("shape copies an axis the input lacks")?),
                    d if d >= 0 => out.push(d as usize),
                    _ => return Err(format!("invalid target shape {shape:?}")),
                }
            }
            let known = out
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .ok_or("target shape overflows")?;
            if let Some(i) = infer_at {
                if known == 0 || !total.is_multiple_of(known) {
                    return Err(format!("cannot reshape {x:?} to {shape:?}"));
                }
                out[i] = total / known;
            }
            if out.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) != Some(total) {
                return Err(format!("cannot reshape {x:?} to {shape:?}"));
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infer::model::{Act, ConvTSpec};

    /// An empty axis (a folded constant can have one) is an error, not an
    /// underflow of `size − 1` (a panic in debug builds).
    #[test]
    fn conv_transpose_of_an_empty_axis_is_an_error() {
        let op = Op::ConvTranspose(Box::new(ConvTSpec {
            weight: std::sync::Arc::new(vec![1.0; 8]),
            bias: vec![0.0],
            c_in: 1,
            c_out: 1,
            kernel: [2; 3],
            strides: [2; 3],
            dilations: [1; 3],
            pad_begin: [0; 3],
            pad_end: [0; 3],
            output_padding: [0; 3],
            rank: 3,
            act: Act::None,
        }));
        let e = infer(&op, &[&[1, 1, 0, 4, 4]]).unwrap_err();
        assert!(e.contains("empty spatial axis"), "{e}");
        assert_eq!(infer(&op, &[&[1, 1, 2, 4, 4]]).unwrap(), vec![1, 1, 4, 8, 8]);
    }
}
