//! CPU backend: every op written directly over row-major f32 tensors, parallel
//! over (batch, channel) planes with rayon.
//!
//! Why our own and not tract-onnx: these loops are also the direct reference
//! the GPU kernels are tested against, they share the load-time graph (BN
//! folding, fused activations) and the shape rules with the GPU backend, and
//! they keep the dependency tree small. Convolution is direct: for each output
//! channel and each (input channel, kernel offset) one scaled row is added to
//! the output rows it touches, so the innermost loop is a contiguous axpy the
//! compiler vectorises when the stride is 1.

use super::model::{
    Act, BinKind, ConvSpec, ConvTSpec, Coord, NearestMode, Op, Operand, PoolSpec, ResizeSpec, ResizeTarget,
};
use super::shape::{self, as5, window_geometry};
use super::tensor::{Tensor, broadcast_strides, strides};
use rayon::prelude::*;

/// Run one op on CPU tensors. `ins` are the node's runtime inputs in order.
pub fn run_op(op: &Op, ins: &[&Tensor]) -> Result<Tensor, String> {
    let shapes: Vec<&[usize]> = ins.iter().map(|t| t.shape.as_slice()).collect();
    let out_shape = shape::infer(op, &shapes)?;
    let x = ins[0];
    let data = match op {
        Op::Conv(c) => conv(c, x, &out_shape)?,
        Op::ConvTranspose(c) => conv_transpose(c, x, &out_shape)?,
        Op::Affine { scale, shift, act } => {
            let plane: usize = x.shape[2..].iter().product();
            let c = x.shape[1];
            let mut out = x.data.clone();
            out.par_chunks_mut(plane.max(1)).enumerate().for_each(|(i, p)| {
                let ch = i % c;
                p.iter_mut().for_each(|v| *v = act.apply(*v * scale[ch] + shift[ch]));
            });
            out
        }
        Op::InstanceNorm { scale, bias, eps, act } => {
            let plane: usize = x.shape[2..].iter().product();
            let c = x.shape[1];
            let mut out = x.data.clone();
            out.par_chunks_mut(plane.max(1)).enumerate().for_each(|(i, p)| {
                let ch = i % c;
                let (mean, var) = mean_var(p);
                let k = scale[ch] / (var + eps).sqrt();
                let b = bias[ch] - mean * k;
                p.iter_mut().for_each(|v| *v = act.apply(*v * k + b));
            });
            out
        }
        Op::Act(a) => x.data.par_iter().map(|&v| a.apply(v)).collect(),
        Op::PRelu { slope } => {
            let ss = broadcast_strides(&slope.shape, &x.shape);
            map_indexed(&x.shape, |i, off| {
                let v = x.data[i];
                if v < 0.0 { v * slope.data[off(&ss)] } else { v }
            })
        }
        Op::Softmax { axis, flatten } => {
            let a = shape::axis(*axis, x.shape.len())?;
            let (len, inner) = if *flatten {
                (x.shape[a..].iter().product::<usize>(), 1)
            } else {
                (x.shape[a], x.shape[a + 1..].iter().product::<usize>())
            };
            softmax(&x.data, len, inner)
        }
        Op::Pool(p) => pool(p, x, &out_shape)?,
        Op::Resize(r) => resize(r, x, &out_shape),
        Op::Concat { axis } => {
            let a = shape::axis(*axis, x.shape.len())?;
            let outer: usize = x.shape[..a].iter().product();
            let mut out = Vec::with_capacity(out_shape.iter().product());
            for o in 0..outer {
                for t in ins {
                    let chunk: usize = t.shape[a..].iter().product();
                    out.extend_from_slice(&t.data[o * chunk..(o + 1) * chunk]);
                }
            }
            out
        }
        Op::Binary { kind, b } => {
            let (bt, swapped) = match b {
                Operand::Value(_) => (ins[1], false),
                Operand::Const { t, swapped } => (t, *swapped),
            };
            binary(*kind, x, bt, swapped, &out_shape)
        }
        Op::Transpose { perm } => {
            let xs = strides(&x.shape);
            let ps: Vec<usize> = perm.iter().map(|&p| xs[p]).collect();
            map_indexed(&out_shape, |_, off| x.data[off(&ps)])
        }
        Op::Reshape { .. } | Op::Identity => x.data.clone(),
    };
    Ok(Tensor::new(out_shape, data))
}

/// Mean and population variance, accumulated in f64.
fn mean_var(p: &[f32]) -> (f32, f32) {
    let n = p.len().max(1) as f64;
    let mean = p.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = p.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n;
    (mean as f32, var as f32)
}

/// Build a tensor of `shape` where element `i` is `f(i, off)` and `off(strides)`
/// gives the offset of element i's multi-index under other strides.
fn map_indexed(shape: &[usize], f: impl Fn(usize, &dyn Fn(&[usize]) -> usize) -> f32 + Sync) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let os = strides(shape);
    (0..n)
        .into_par_iter()
        .map(|i| {
            let off = |s: &[usize]| -> usize {
                let mut rem = i;
                let mut o = 0;
                for (k, &st) in os.iter().enumerate() {
                    let idx = rem / st;
                    rem %= st;
                    o += idx * s[k];
                }
                o
            };
            f(i, &off)
        })
        .collect()
}

fn binary(kind: BinKind, a: &Tensor, b: &Tensor, swapped: bool, out: &[usize]) -> Vec<f32> {
    let f = |x: f32, y: f32| if swapped { kind.apply(y, x) } else { kind.apply(x, y) };
    if a.shape == b.shape {
        return a.data.par_iter().zip(&b.data).map(|(&x, &y)| f(x, y)).collect();
    }
    let sa = broadcast_strides(&a.shape, out);
    let sb = broadcast_strides(&b.shape, out);
    map_indexed(out, |_, off| f(a.data[off(&sa)], b.data[off(&sb)]))
}

/// Softmax over `len` elements `inner` apart, for every (outer, inner) position.
fn softmax(x: &[f32], len: usize, inner: usize) -> Vec<f32> {
    let mut out = x.to_vec();
    out.par_chunks_mut((len * inner).max(1)).for_each(|block| {
        for i in 0..inner {
            let m = (0..len).map(|k| block[k * inner + i]).fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0f32;
            for k in 0..len {
                let e = (block[k * inner + i] - m).exp();
                block[k * inner + i] = e;
                sum += e;
            }
            for k in 0..len {
                block[k * inner + i] /= sum;
            }
        }
    });
    out
}

fn conv(c: &ConvSpec, x: &Tensor, out_shape: &[usize]) -> Result<Vec<f32>, String> {
    let s = as5(&x.shape, c.rank)?;
    let (pb, o) = window_geometry(s, c.kernel, c.strides, c.dilations, &c.pads)?;
    let [_, cin, d, h, w] = s;
    let plane_in = d * h * w;
    let plane_out = o[0] * o[1] * o[2];
    let [kd, kh, kw] = c.kernel;
    let ksz = kd * kh * kw;
    let mut out = vec![0.0f32; out_shape.iter().product()];
    out.par_chunks_mut(plane_out.max(1)).enumerate().for_each(|(idx, dst)| {
        let (b, oc) = (idx / c.c_out, idx % c.c_out);
        dst.fill(c.bias[oc]);
        // Valid output range along one axis for kernel tap `k`: input = o·s − pad + k·dil ∈ [0, size).
        let range = |a: usize, k: usize, size: usize| -> (usize, usize) {
            let off = (k * c.dilations[a]) as isize - pb[a] as isize;
            let st = c.strides[a] as isize;
            let lo = if off >= 0 { 0 } else { ((-off) + st - 1) / st } as usize;
            let hi_num = size as isize - 1 - off;
            let hi = if hi_num < 0 { 0 } else { (hi_num / st + 1) as usize };
            (lo.min(o[a]), hi.min(o[a]))
        };
        for ic in 0..cin {
            let src = &x.data[(b * cin + ic) * plane_in..][..plane_in];
            let wbase = (oc * cin + ic) * ksz;
            for zk in 0..kd {
                let (z0, z1) = range(0, zk, d);
                for yk in 0..kh {
                    let (y0, y1) = range(1, yk, h);
                    for xk in 0..kw {
                        let (x0, x1) = range(2, xk, w);
                        let wt = c.weight[wbase + (zk * kh + yk) * kw + xk];
                        if x0 >= x1 || wt == 0.0 {
                            continue;
                        }
                        for oz in z0..z1 {
                            let iz = oz * c.strides[0] + zk * c.dilations[0] - pb[0];
                            for oy in y0..y1 {
                                let iy = oy * c.strides[1] + yk * c.dilations[1] - pb[1];
                                let drow = &mut dst[(oz * o[1] + oy) * o[2]..][..o[2]];
                                let srow = &src[(iz * h + iy) * w..][..w];
                                let ix0 = x0 * c.strides[2] + xk * c.dilations[2] - pb[2];
                                if c.strides[2] == 1 {
                                    for (dv, sv) in drow[x0..x1].iter_mut().zip(&srow[ix0..ix0 + (x1 - x0)]) {
                                        *dv += wt * sv;
                                    }
                                } else {
                                    for (k, dv) in drow[x0..x1].iter_mut().enumerate() {
                                        *dv += wt * srow[ix0 + k * c.strides[2]];
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if c.act != Act::None {
            dst.iter_mut().for_each(|v| *v = c.act.apply(*v));
        }
    });
    Ok(out)
}

fn conv_transpose(c: &ConvTSpec, x: &Tensor, out_shape: &[usize]) -> Result<Vec<f32>, String> {
    let s = as5(&x.shape, c.rank)?;
    let [_, cin, d, h, w] = s;
    let o5 = as5(out_shape, c.rank)?;
    let o = [o5[2], o5[3], o5[4]];
    let plane_in = d * h * w;
    let plane_out = o[0] * o[1] * o[2];
    let [kd, kh, kw] = c.kernel;
    let ksz = kd * kh * kw;
    let mut out = vec![0.0f32; out_shape.iter().product()];
    out.par_chunks_mut(plane_out.max(1)).enumerate().for_each(|(idx, dst)| {
        let (b, oc) = (idx / c.c_out, idx % c.c_out);
        dst.fill(c.bias[oc]);
        // Output = input·s + k·dil − pad_begin; keep the ones inside [0, out).
        let pos = |a: usize, i: usize, k: usize| -> Option<usize> {
            let v = (i * c.strides[a] + k * c.dilations[a]) as isize - c.pad_begin[a] as isize;
            (v >= 0 && (v as usize) < o[a]).then_some(v as usize)
        };
        for ic in 0..cin {
            let src = &x.data[(b * cin + ic) * plane_in..][..plane_in];
            let wbase = (ic * c.c_out + oc) * ksz;
            for zk in 0..kd {
                for yk in 0..kh {
                    for xk in 0..kw {
                        let wt = c.weight[wbase + (zk * kh + yk) * kw + xk];
                        for iz in 0..d {
                            let Some(oz) = pos(0, iz, zk) else { continue };
                            for iy in 0..h {
                                let Some(oy) = pos(1, iy, yk) else { continue };
                                let srow = &src[(iz * h + iy) * w..][..w];
                                let drow = &mut dst[(oz * o[1] + oy) * o[2]..][..o[2]];
                                for (ix, &sv) in srow.iter().enumerate() {
                                    if let Some(ox) = pos(2, ix, xk) {
                                        drow[ox] += wt * sv;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if c.act != Act::None {
            dst.iter_mut().for_each(|v| *v = c.act.apply(*v));
        }
    });
    Ok(out)
}

fn pool(p: &PoolSpec, x: &Tensor, out_shape: &[usize]) -> Result<Vec<f32>, String> {
    let s = as5(&x.shape, p.rank)?;
    let (pb, o) = window_geometry(s, p.kernel, p.strides, [1; 3], &p.pads)?;
    let [_, _, d, h, w] = s;
    let size = [d, h, w];
    let plane_in = d * h * w;
    let plane_out = o[0] * o[1] * o[2];
    let mut out = vec![0.0f32; out_shape.iter().product()];
    out.par_chunks_mut(plane_out.max(1)).enumerate().for_each(|(idx, dst)| {
        let src = &x.data[idx * plane_in..][..plane_in];
        for oz in 0..o[0] {
            for oy in 0..o[1] {
                for ox in 0..o[2] {
                    let oi = [oz, oy, ox];
                    let (mut lo, mut hi) = ([0usize; 3], [0usize; 3]);
                    for a in 0..3 {
                        let start = (oi[a] * p.strides[a]) as isize - pb[a] as isize;
                        lo[a] = start.max(0) as usize;
                        hi[a] = ((start + p.kernel[a] as isize).max(0) as usize).min(size[a]);
                    }
                    let (mut m, mut sum, mut cnt) = (f32::NEG_INFINITY, 0.0f32, 0usize);
                    for z in lo[0]..hi[0] {
                        for y in lo[1]..hi[1] {
                            for xx in lo[2]..hi[2] {
                                let v = src[(z * h + y) * w + xx];
                                m = m.max(v);
                                sum += v;
                                cnt += 1;
                            }
                        }
                    }
                    dst[(oz * o[1] + oy) * o[2] + ox] = if p.max {
                        m
                    } else {
                        let div = if p.count_include_pad {
                            pool_count_with_pads(oi, p, pb, size)
                        } else {
                            cnt
                        };
                        sum / div.max(1) as f32
                    };
                }
            }
        }
    });
    Ok(out)
}

/// Window size counting padded positions (the window clipped to the padded input).
pub fn pool_count_with_pads(oi: [usize; 3], p: &PoolSpec, pb: [usize; 3], size: [usize; 3]) -> usize {
    let (_, pe) = p.pads.resolve(size, p.kernel, p.strides, [1; 3]);
    (0..3)
        .map(|a| {
            let start = (oi[a] * p.strides[a]) as isize - pb[a] as isize;
            let end = (start + p.kernel[a] as isize).min((size[a] + pe[a]) as isize);
            (end - start) as usize
        })
        .product()
}

/// Per axis: for each output index, the two source indices and the weight of the second.
pub fn resize_tables(r: &ResizeSpec, inp: &[usize], out: &[usize]) -> Vec<(Vec<u32>, Vec<u32>, Vec<f32>)> {
    (0..inp.len())
        .map(|a| {
            let (n_in, n_out) = (inp[a], out[a]);
            let scale = match &r.target {
                ResizeTarget::Scales(s) => s[a],
                ResizeTarget::Sizes(_) => n_out as f32 / n_in as f32,
            };
            let (mut i0, mut i1, mut wt) = (
                Vec::with_capacity(n_out),
                Vec::with_capacity(n_out),
                Vec::with_capacity(n_out),
            );
            for o in 0..n_out {
                let of = o as f32;
                let xin = match r.coord {
                    Coord::HalfPixel => (of + 0.5) / scale - 0.5,
                    Coord::PytorchHalfPixel => {
                        if n_out > 1 {
                            (of + 0.5) / scale - 0.5
                        } else {
                            0.0
                        }
                    }
                    Coord::AlignCorners => {
                        if n_out == 1 {
                            0.0
                        } else {
                            of * (n_in as f32 - 1.0) / (n_out as f32 - 1.0)
                        }
                    }
                    Coord::Asymmetric => of / scale,
                };
                let last = (n_in - 1) as f32;
                if r.linear {
                    let xc = xin.clamp(0.0, last);
                    let lo = xc.floor();
                    let lo_i = (lo as usize).min(n_in - 1);
                    i0.push(lo_i as u32);
                    i1.push((lo_i + 1).min(n_in - 1) as u32);
                    wt.push(xc - lo_i as f32);
                } else {
                    let fl = xin.floor();
                    let frac = xin - fl;
                    let v = match r.nearest {
                        NearestMode::Floor => fl,
                        NearestMode::Ceil => xin.ceil(),
                        NearestMode::RoundPreferFloor => {
                            if frac == 0.5 {
                                fl
                            } else {
                                xin.round()
                            }
                        }
                        NearestMode::RoundPreferCeil => {
                            if frac == 0.5 {
                                fl + 1.0
                            } else {
                                xin.round()
                            }
                        }
                    };
                    let idx = v.clamp(0.0, last) as u32;
                    i0.push(idx);
                    i1.push(idx);
                    wt.push(0.0);
                }
            }
            (i0, i1, wt)
        })
        .collect()
}

fn resize(r: &ResizeSpec, x: &Tensor, out_shape: &[usize]) -> Vec<f32> {
    let tables = resize_tables(r, &x.shape, out_shape);
    let xs = strides(&x.shape);
    let os = strides(out_shape);
    let n: usize = out_shape.iter().product();
    let rank = out_shape.len();
    (0..n)
        .into_par_iter()
        .map(|i| {
            // Sum over the 2^rank corners; axes with weight 0 contribute one corner only.
            let mut idx = [0usize; 8];
            let mut rem = i;
            for a in 0..rank {
                idx[a] = rem / os[a];
                rem %= os[a];
            }
            let mut acc = 0.0f32;
            for corner in 0..(1usize << rank) {
                let mut wgt = 1.0f32;
                let mut off = 0;
                for a in 0..rank {
                    let (t0, t1, tw) = &tables[a];
                    let o = idx[a];
                    let hi = corner >> a & 1 == 1;
                    let w = if hi { tw[o] } else { 1.0 - tw[o] };
                    if w == 0.0 {
                        wgt = 0.0;
                        break;
                    }
                    wgt *= w;
                    off += (if hi { t1[o] } else { t0[o] }) as usize * xs[a];
                }
                if wgt != 0.0 {
                    acc += wgt * x.data[off];
                }
            }
            acc
        })
        .collect()
}
