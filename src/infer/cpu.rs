//! CPU backend: every op written directly over row-major f32 tensors, parallel
//! over (batch, channel) planes with rayon.
//!
//! Why our own and not tract-onnx: these loops are also the direct reference
//! the GPU kernels are tested against, they share the load-time graph (BN
//! folding, fused activations) and the shape rules with the GPU backend, and
//! they keep the dependency tree small. Convolution is im2col + GEMM: blocks of
//! ~4096 output voxels gather the input each kernel tap reads into a column
//! matrix (zeros for padding) and multiply it by the [c_out, c_in·k] weights
//! with `matrixmultiply`'s sgemm, blocks in parallel; bias and the fused
//! activation are applied when the blocks are written out.

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
            let (len, inner) = shape::softmax_extent(*axis, *flatten, &x.shape)?;
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
            let (bs, bd, swapped): (&[usize], &[f32], bool) = match b {
                Operand::Value(_) => (&ins[1].shape, &ins[1].data, false),
                Operand::Const { t, swapped } => (&t.shape, &t.data, *swapped),
            };
            binary(*kind, x, (bs, bd), swapped, &out_shape)
        }
        Op::Transpose { perm } => {
            let perm = shape::transpose_perm(perm, x.shape.len());
            let xs = strides(&x.shape);
            let ps: Vec<usize> = perm.iter().map(|&p| xs[p]).collect();
            map_indexed(&out_shape, |_, off| x.data[off(&ps)])
        }
        Op::Reshape { .. } | Op::Identity => x.data.clone(),
    };
    Ok(Tensor::new(out_shape, data))
}

/// Mean and population variance (two passes): f32 sums over chunks of 256,
/// which vectorise, added up in f64.
fn mean_var(p: &[f32]) -> (f32, f32) {
    let n = p.len().max(1) as f64;
    let sum: f64 = p.chunks(256).map(|c| f64::from(c.iter().sum::<f32>())).sum();
    let mean = (sum / n) as f32;
    let sq: f64 = p
        .chunks(256)
        .map(|c| f64::from(c.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>()))
        .sum();
    (mean, (sq / n) as f32)
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

/// `b` is (shape, values): a computed value or a shared constant.
fn binary(kind: BinKind, a: &Tensor, (b_shape, b): (&[usize], &[f32]), swapped: bool, out: &[usize]) -> Vec<f32> {
    let f = |x: f32, y: f32| if swapped { kind.apply(y, x) } else { kind.apply(x, y) };
    if a.shape == b_shape {
        return a.data.par_iter().zip(b).map(|(&x, &y)| f(x, y)).collect();
    }
    let sa = broadcast_strides(&a.shape, out);
    let sb = broadcast_strides(b_shape, out);
    map_indexed(out, |_, off| f(a.data[off(&sa)], b[off(&sb)]))
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

/// Output rows (along W) per im2col block: enough columns for an efficient
/// GEMM, small enough that a block's column matrix stays in cache-sized tiles.
const BLOCK_COLUMNS: usize = 512;

fn conv(c: &ConvSpec, x: &Tensor, out_shape: &[usize]) -> Result<Vec<f32>, String> {
    let s = as5(&x.shape, c.rank)?;
    let (pb, o) = window_geometry(s, c.kernel, c.strides, c.dilations, &c.pads)?;
    let [n, cin, d, h, w] = s;
    let plane_in = d * h * w;
    let plane_out = o[0] * o[1] * o[2];
    let [kd, kh, kw] = c.kernel;
    let ksz = kd * kh * kw;
    let krows = cin * ksz;
    // Blocks of whole output rows (oz, oy), for every batch entry.
    let rows = o[0] * o[1];
    let per_block = (BLOCK_COLUMNS / o[2].max(1)).clamp(1, rows.max(1));
    let nblocks = rows.div_ceil(per_block);
    let blocks: Vec<(usize, usize, Vec<f32>)> = (0..n * nblocks)
        .into_par_iter()
        .map(|t| {
            let (b, blk) = (t / nblocks, t % nblocks);
            let r0 = blk * per_block;
            let r1 = (r0 + per_block).min(rows);
            let ncols = (r1 - r0) * o[2];
            // Column matrix [cin·k, ncols]: row (ic, tap) holds the input each output reads through that tap.
            let mut col = vec![0.0f32; krows * ncols];
            for ic in 0..cin {
                let src = &x.data[(b * cin + ic) * plane_in..][..plane_in];
                for zk in 0..kd {
                    for yk in 0..kh {
                        for xk in 0..kw {
                            let row = ((ic * kd + zk) * kh + yk) * kw + xk;
                            let dst = &mut col[row * ncols..][..ncols];
                            for r in r0..r1 {
                                let (oz, oy) = (r / o[1], r % o[1]);
                                let iz = (oz * c.strides[0] + zk * c.dilations[0]) as isize - pb[0] as isize;
                                let iy = (oy * c.strides[1] + yk * c.dilations[1]) as isize - pb[1] as isize;
                                if iz < 0 || iz >= d as isize || iy < 0 || iy >= h as isize {
                                    continue;
                                }
                                let srow = &src[(iz as usize * h + iy as usize) * w..][..w];
                                let drow = &mut dst[(r - r0) * o[2]..][..o[2]];
                                let off = (xk * c.dilations[2]) as isize - pb[2] as isize;
                                if c.strides[2] == 1 {
                                    // ix = ox + off: one contiguous copy of the valid part.
                                    let lo = (-off).max(0) as usize;
                                    let hi = ((w as isize - off).max(0) as usize).min(o[2]);
                                    if lo < hi {
                                        let s0 = (lo as isize + off) as usize;
                                        drow[lo..hi].copy_from_slice(&srow[s0..s0 + (hi - lo)]);
                                    }
                                } else {
                                    for (ox, v) in drow.iter_mut().enumerate() {
                                        let ix = (ox * c.strides[2]) as isize + off;
                                        if ix >= 0 && (ix as usize) < w {
                                            *v = srow[ix as usize];
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            let mut out = vec![0.0f32; c.c_out * ncols];
            // SAFETY: the slices hold exactly m·k, k·n and m·n elements with the row-major
            // strides passed, so every index sgemm forms is in bounds.
            unsafe {
                matrixmultiply::sgemm(
                    c.c_out,
                    krows,
                    ncols,
                    1.0,
                    c.weight.as_ptr(),
                    krows as isize,
                    1,
                    col.as_ptr(),
                    ncols as isize,
                    1,
                    0.0,
                    out.as_mut_ptr(),
                    ncols as isize,
                    1,
                );
            }
            (b, r0 * o[2], out)
        })
        .collect();
    let mut out = vec![0.0f32; out_shape.iter().product()];
    for (b, start, blk) in blocks {
        let ncols = blk.len() / c.c_out;
        for oc in 0..c.c_out {
            let dst = &mut out[(b * c.c_out + oc) * plane_out + start..][..ncols];
            for (dv, &v) in dst.iter_mut().zip(&blk[oc * ncols..(oc + 1) * ncols]) {
                *dv = c.act.apply(v + c.bias[oc]);
            }
        }
    }
    Ok(out)
}

fn conv_transpose(c: &ConvTSpec, x: &Tensor, out_shape: &[usize]) -> Result<Vec<f32>, String> {
    let s = as5(&x.shape, c.rank)?;
    let [n, cin, d, h, w] = s;
    let o5 = as5(out_shape, c.rank)?;
    let o = [o5[2], o5[3], o5[4]];
    let plane_in = d * h * w;
    let plane_out = o[0] * o[1] * o[2];
    let [kd, kh, kw] = c.kernel;
    let ksz = kd * kh * kw;
    let mrows = c.c_out * ksz;
    // GEMM: [c_out·k, c_in] (the weights [c_in, c_out·k] read transposed) × [c_in, voxels]
    // gives, for every input voxel, what it adds through each tap; col2im then adds
    // those into the output (serially, as taps of neighbouring voxels can overlap).
    let rows = d * h;
    let per_block = (BLOCK_COLUMNS / w.max(1)).clamp(1, rows.max(1));
    let nblocks = rows.div_ceil(per_block);
    let blocks: Vec<(usize, usize, usize, Vec<f32>)> = (0..n * nblocks)
        .into_par_iter()
        .map(|t| {
            let (b, blk) = (t / nblocks, t % nblocks);
            let r0 = blk * per_block;
            let r1 = (r0 + per_block).min(rows);
            let ncols = (r1 - r0) * w;
            let mut xin = vec![0.0f32; cin * ncols];
            for ic in 0..cin {
                xin[ic * ncols..(ic + 1) * ncols]
                    .copy_from_slice(&x.data[(b * cin + ic) * plane_in + r0 * w..][..ncols]);
            }
            let mut col = vec![0.0f32; mrows * ncols];
            // SAFETY: a is the [c_in, c_out·k] weight matrix read with strides (1, c_out·k)
            // as its transpose; all extents match the slices' lengths.
            unsafe {
                matrixmultiply::sgemm(
                    mrows,
                    cin,
                    ncols,
                    1.0,
                    c.weight.as_ptr(),
                    1,
                    mrows as isize,
                    xin.as_ptr(),
                    ncols as isize,
                    1,
                    0.0,
                    col.as_mut_ptr(),
                    ncols as isize,
                    1,
                );
            }
            (b, r0, r1, col)
        })
        .collect();
    let mut out = vec![0.0f32; out_shape.iter().product()];
    for b in 0..n {
        for oc in 0..c.c_out {
            out[(b * c.c_out + oc) * plane_out..][..plane_out].fill(c.bias[oc]);
        }
    }
    // Output = input·s + k·dil − pad_begin along each axis.
    let pos = |a: usize, i: usize, k: usize| -> Option<usize> {
        let v = (i * c.strides[a] + k * c.dilations[a]) as isize - c.pad_begin[a] as isize;
        (v >= 0 && (v as usize) < o[a]).then_some(v as usize)
    };
    for (b, r0, r1, col) in blocks {
        let ncols = (r1 - r0) * w;
        for oc in 0..c.c_out {
            let dst = &mut out[(b * c.c_out + oc) * plane_out..][..plane_out];
            for zk in 0..kd {
                for yk in 0..kh {
                    for xk in 0..kw {
                        let row = &col[((oc * kd + zk) * kh + yk) * kw * ncols + xk * ncols..][..ncols];
                        for r in r0..r1 {
                            let (iz, iy) = (r / h, r % h);
                            let (Some(oz), Some(oy)) = (pos(0, iz, zk), pos(1, iy, yk)) else {
                                continue;
                            };
                            let drow = &mut dst[(oz * o[1] + oy) * o[2]..][..o[2]];
                            for (ix, &v) in row[(r - r0) * w..][..w].iter().enumerate() {
                                if let Some(ox) = pos(2, ix, xk) {
                                    drow[ox] += v;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    if c.act != Act::None {
        out.par_iter_mut().for_each(|v| *v = c.act.apply(*v));
    }
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
                    // f32::MIN, not −∞, for a window wholly in the padding (as onnxruntime).
                    let (mut m, mut sum, mut cnt) = (f32::MIN, 0.0f32, 0usize);
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
fn pool_count_with_pads(oi: [usize; 3], p: &PoolSpec, pb: [usize; 3], size: [usize; 3]) -> usize {
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
                        NearestMode::Simple if scale < 1.0 => xin.ceil(),
                        NearestMode::Simple | NearestMode::Floor => fl,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Resize-10's nearest rounding as onnxruntime has it (upsamplebase.h,
    /// `GetNearestPixelFromOriginal`, SIMPLE): ceil along a shrinking axis,
    /// truncation along a growing one, with asymmetric coordinates.
    #[test]
    fn resize_10_nearest_rounds_as_onnxruntime() {
        let r = |scale: f32| ResizeSpec {
            linear: false,
            coord: Coord::Asymmetric,
            nearest: NearestMode::Simple,
            target: ResizeTarget::Scales(vec![scale]),
        };
        // 8 → 6 at 0.75: sources o/0.75 = 0, 1.33, 2.67, 4, 5.33, 6.67.
        let t = resize_tables(&r(0.75), &[8], &[6]);
        assert_eq!(t[0].0, vec![0, 2, 3, 4, 6, 7]);
        // 3 → 6 at 2: o/2 truncated.
        let t = resize_tables(&r(2.0), &[3], &[6]);
        assert_eq!(t[0].0, vec![0, 0, 1, 1, 2, 2]);
        // 5 → 2 at 0.4: ceil(2.5) = 3.
        let t = resize_tables(&r(0.4), &[5], &[2]);
        assert_eq!(t[0].0, vec![0, 3]);
    }
}
