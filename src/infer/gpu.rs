//! GPU backend: every op as a WGSL compute kernel on the shared wgpu device
//! (`shaders/nn.wgsl` documents the kernels).
//!
//! Why hand-written: no maintained crate runs ONNX on wgpu with 3-D
//! convolutions. A whole forward pass (one batch of patches) is recorded into
//! one command encoder and submitted once; intermediate buffers come from a
//! size-keyed pool and go back to it after their last reader, so memory stays
//! at the live set, and wgpu orders the dispatches that share a buffer.
//! Weights are uploaded once per model. Every tensor must fit one storage
//! binding (`max_storage_buffer_binding_size`, 128 MiB on lavapipe), which
//! [`GpuModel::max_batch`] uses to choose how many patches run together.
//! Validation and out-of-memory errors are caught by error scopes and returned
//! as `Error::Gpu`.

use super::cpu::resize_tables;
use super::exec::{check_inputs, node_err, plan_shapes, use_counts};
use super::model::{Act, BinKind, Model, Op, Operand};
use super::shape::{self, as5, window_geometry};
use super::tensor::{Tensor, broadcast_strides, strides};
use crate::error::{Error, Result};
use crate::gpu::{GpuContext, SOFTWARE_LOOP_LIMIT, check_scopes, map_read};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use wgpu::util::DeviceExt;

struct Pipelines {
    layout: wgpu::BindGroupLayout,
    by_name: HashMap<&'static str, wgpu::ComputePipeline>,
}

const KERNELS: [&str; 11] = [
    "affine_act",
    "in_stats",
    "binary",
    "gather",
    "concat",
    "softmax",
    "pool",
    "resize",
    "conv_tiled",
    "conv_direct",
    "conv_transpose",
];

static PIPELINES: OnceLock<std::result::Result<Pipelines, String>> = OnceLock::new();

fn pipelines(ctx: &GpuContext) -> Result<&'static Pipelines> {
    PIPELINES
        .get_or_init(|| build_pipelines(ctx))
        .as_ref()
        .map_err(|e| Error::Gpu(e.clone()))
}

fn build_pipelines(ctx: &GpuContext) -> std::result::Result<Pipelines, String> {
    let (layout, p) = crate::gpu::build_pipelines(
        ctx,
        "nn.wgsl",
        include_str!("shaders/nn.wgsl"),
        &[true, true, true, false],
        &KERNELS,
    )?;
    Ok(Pipelines {
        layout,
        by_name: KERNELS.into_iter().zip(p).collect(),
    })
}

/// Weights of one node on the device.
#[derive(Default)]
struct NodeBufs {
    a: Option<wgpu::Buffer>,
    b: Option<wgpu::Buffer>,
}

/// A model whose weights live on the GPU.
pub struct GpuModel {
    ctx: Arc<GpuContext>,
    model: Arc<Model>,
    bufs: Vec<NodeBufs>,
    /// A 4-byte buffer bound where a kernel reads nothing.
    dummy: wgpu::Buffer,
}

/// A value on the device: its shape and buffer (shared by Reshape/Identity aliases).
#[derive(Clone)]
struct Value {
    shape: Vec<usize>,
    buf: Arc<wgpu::Buffer>,
}

fn act_code(a: Act) -> (u32, f32) {
    match a {
        Act::None => (0, 0.0),
        Act::Relu => (1, 0.0),
        Act::Leaky(al) => (2, al),
        Act::Sigmoid => (3, 0.0),
    }
}

/// On a software adapter, nodes whose kernel [`loop_trips`] estimates above
/// this are refused. The margin below the limit covers what the estimate
/// leaves out (the compiler's unrolling, bookkeeping trips): a 3³ Conv with
/// 1024 input channels is estimated at 61 k and was cut short on lavapipe;
/// one with 800 (48 k) was exact (tests/gpu.rs).
const SOFTWARE_TRIPS_ALLOWED: u64 = 49_152;

/// Whether a Conv runs as `conv_tiled` (input tile and weights in workgroup
/// memory), and the tile's input extent per axis (4×4×8 outputs).
fn conv_tiling(kernel: [usize; 3], strides: [usize; 3], dilations: [usize; 3]) -> (bool, [usize; 3]) {
    let ext: [usize; 3] = std::array::from_fn(|a| ([4, 4, 8][a] - 1) * strides[a] + (kernel[a] - 1) * dilations[a] + 1);
    let tiled = ext.iter().product::<usize>() <= 2048 && 8 * kernel.iter().product::<usize>() <= 1024;
    (tiled, ext)
}

/// Loop trips one invocation of a node's kernel makes, counted as llvmpipe
/// does (each loop entered also makes one trip that leaves it), for the
/// kernels whose loops grow with the model: the convolutions, with their
/// input channels. The others loop over a window, a rank or the channels of
/// a Softmax, or (instance norm) at most 2 × 2¹⁴ trips for any tensor a
/// 128 MiB binding holds.
fn loop_trips(op: &Op) -> Option<u64> {
    let nest = |[kz, ky, kx]: [usize; 3]| (kz + 1 + kz * (ky + 1) + kz * ky * (kx + 1)) as u64;
    match op {
        Op::Conv(c) => {
            let (tiled, ext) = conv_tiling(c.kernel, c.strides, c.dilations);
            let ksz = c.kernel.iter().product::<usize>();
            let loads = if tiled {
                (ext.iter().product::<usize>().div_ceil(128) + 1 + (8 * ksz).div_ceil(128) + 1) as u64
            } else {
                0
            };
            Some(c.c_in as u64 * (loads + nest(c.kernel) + 1) + 20)
        }
        Op::ConvTranspose(c) => {
            let ksz = c.kernel.iter().product::<usize>() as u64;
            Some(nest(c.kernel) + ksz * (c.c_in as u64 + 1) + 20)
        }
        _ => None,
    }
}

impl GpuModel {
    pub fn new(model: Arc<Model>) -> Result<GpuModel> {
        let ctx = crate::gpu::context()?;
        pipelines(&ctx)?;
        if !ctx.is_hardware() {
            for n in &model.nodes {
                if let Some(trips) = loop_trips(&n.op).filter(|&t| t > SOFTWARE_TRIPS_ALLOWED) {
                    return Err(Error::Gpu(node_err(
                        n,
                        format!(
                            "its GPU kernel loops about {trips} times per thread, and the software adapter {} \
                             ends a shader's loops after {SOFTWARE_LOOP_LIMIT} without an error, which would give \
                             wrong outputs; run the model on the CPU (--device cpu or auto)",
                            ctx.describe()
                        ),
                    )));
                }
            }
        }
        let d = &ctx.device;
        let oom = d.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = d.push_error_scope(wgpu::ErrorFilter::Validation);
        let up = |data: &[f32]| {
            let data = if data.is_empty() { &[0.0f32][..] } else { data };
            d.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("weights"),
                contents: bytemuck::cast_slice(data),
                usage: wgpu::BufferUsages::STORAGE,
            })
        };
        // A constant several nodes read (one initializer) is uploaded once.
        let mut uploaded: HashMap<*const Vec<f32>, wgpu::Buffer> = HashMap::new();
        let mut up_shared =
            |data: &Arc<Vec<f32>>| uploaded.entry(Arc::as_ptr(data)).or_insert_with(|| up(data)).clone();
        let bufs = model
            .nodes
            .iter()
            .map(|n| match &n.op {
                Op::Conv(c) => NodeBufs {
                    a: Some(up_shared(&c.weight)),
                    b: Some(up(&c.bias)),
                },
                Op::ConvTranspose(c) => NodeBufs {
                    a: Some(up_shared(&c.weight)),
                    b: Some(up(&c.bias)),
                },
                Op::Affine { scale, shift, .. } => NodeBufs {
                    a: Some(up(scale)),
                    b: Some(up(shift)),
                },
                Op::InstanceNorm { scale, bias, .. } => NodeBufs {
                    a: Some(up(scale)),
                    b: Some(up(bias)),
                },
                Op::PRelu { slope } => NodeBufs {
                    a: Some(up_shared(&slope.data)),
                    b: None,
                },
                Op::Binary {
                    b: Operand::Const { t, .. },
                    ..
                } => NodeBufs {
                    a: Some(up_shared(&t.data)),
                    b: None,
                },
                _ => NodeBufs::default(),
            })
            .collect();
        let dummy = up(&[0.0]);
        check_scopes(validation, oom, "uploading the model's weights")?;
        Ok(GpuModel {
            ctx,
            model,
            bufs,
            dummy,
        })
    }

    /// How many patches (batch entries) run in one call: as many as let the
    /// largest tensor fit one storage binding, at most 16; 1 when the model
    /// fixes its batch size or does not accept a larger one.
    pub fn max_batch(&self, batch1: &[usize]) -> Result<usize> {
        let s = plan_shapes(&self.model, &[batch1]).map_err(Error::Config)?;
        let largest = s.values().map(|v| v.iter().product::<usize>() * 4).max().unwrap_or(4) as u64;
        let limit = self
            .ctx
            .limits
            .max_storage_buffer_binding_size
            .min(self.ctx.limits.max_buffer_size);
        if largest > limit {
            return Err(Error::Gpu(format!(
                "one patch needs a {} MiB tensor but the adapter binds at most {} MiB; use a smaller --patch",
                largest >> 20,
                limit >> 20
            )));
        }
        let b = ((limit / largest) as usize).clamp(1, 16);
        if b == 1 || self.model.inputs[0].dims.first() == Some(&Some(1)) {
            return Ok(1);
        }
        let mut shape = batch1.to_vec();
        shape[0] = b;
        Ok(if plan_shapes(&self.model, &[&shape]).is_ok() {
            b
        } else {
            1
        })
    }

    /// Run the model on `input` and read the output back.
    pub fn run(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        check_inputs(&self.model, inputs.iter().map(|t| t.shape.as_slice())).map_err(Error::Config)?;
        let in_shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape.as_slice()).collect();
        let shapes = plan_shapes(&self.model, &in_shapes).map_err(Error::Config)?;
        let limit = self
            .ctx
            .limits
            .max_storage_buffer_binding_size
            .min(self.ctx.limits.max_buffer_size);
        if let Some((name, s)) = shapes
            .iter()
            .find(|(_, s)| (s.iter().product::<usize>() * 4) as u64 > limit)
        {
            return Err(Error::Gpu(format!(
                "value '{name}' of shape {s:?} exceeds the adapter's {} MiB binding limit; use a smaller batch or patch",
                limit >> 20
            )));
        }
        let d = &self.ctx.device;
        let p = pipelines(&self.ctx)?;
        let oom = d.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = d.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut rec = Recorder {
            d,
            p,
            enc: d.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("forward") }),
            pool: HashMap::new(),
            dummy: &self.dummy,
        };
        let mut left = use_counts(&self.model);
        let mut values: HashMap<&str, Value> = HashMap::new();
        for (i, t) in self.model.inputs.iter().zip(inputs) {
            let buf = Arc::new(d.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("input"),
                contents: bytemuck::cast_slice(if t.data.is_empty() { &[0.0f32][..] } else { &t.data }),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            }));
            values.insert(
                i.name.as_str(),
                Value {
                    shape: t.shape.clone(),
                    buf,
                },
            );
        }
        for (ni, n) in self.model.nodes.iter().enumerate() {
            let ins: Vec<&Value> = n.inputs.iter().map(|i| &values[i.as_str()]).collect();
            let out_shape = shapes[&n.output].clone();
            let out = rec
                .node(&n.op, &self.bufs[ni], &ins, out_shape)
                .map_err(|e| Error::Config(node_err(n, e)))?;
            for i in &n.inputs {
                if let Some(c) = left.get_mut(i.as_str()) {
                    *c -= 1;
                    if *c == 0
                        && let Some(v) = values.remove(i.as_str())
                    {
                        rec.release(v);
                    }
                }
            }
            values.insert(n.output.as_str(), out);
        }
        let out = values
            .remove(self.model.output.as_str())
            .ok_or_else(|| Error::Gpu("the output was not computed".into()))?;
        let bytes = (out.shape.iter().product::<usize>() * 4).max(4) as u64;
        let readback = d.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        rec.enc.copy_buffer_to_buffer(&out.buf, 0, &readback, 0, bytes);
        self.ctx.queue.submit([rec.enc.finish()]);
        let data = map_read::<f32>(d, &readback);
        check_scopes(validation, oom, "running the model")?;
        let mut data = data?;
        data.truncate(out.shape.iter().product());
        Ok(Tensor::new(out.shape, data))
    }
}

struct Recorder<'a> {
    d: &'a wgpu::Device,
    p: &'a Pipelines,
    enc: wgpu::CommandEncoder,
    pool: HashMap<u64, Vec<Arc<wgpu::Buffer>>>,
    dummy: &'a wgpu::Buffer,
}

fn groups(n: usize, per: usize) -> (u32, u32) {
    let g = n.div_ceil(per).max(1);
    let x = g.min(65535);
    (x as u32, g.div_ceil(x) as u32)
}

/// Sizes passed to the kernels, which index in i32 in places.
fn u(v: usize) -> std::result::Result<u32, String> {
    u32::try_from(v)
        .ok()
        .filter(|&x| x <= i32::MAX as u32)
        .ok_or_else(|| format!("size {v} exceeds the GPU kernels' 31-bit indexing"))
}

impl Recorder<'_> {
    fn alloc(&mut self, shape: Vec<usize>) -> Value {
        let bytes = (shape.iter().product::<usize>() * 4).max(4) as u64;
        let buf = match self.pool.get_mut(&bytes).and_then(Vec::pop) {
            Some(b) => b,
            None => Arc::new(self.d.create_buffer(&wgpu::BufferDescriptor {
                label: Some("value"),
                size: bytes,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            })),
        };
        Value { shape, buf }
    }

    fn release(&mut self, v: Value) {
        if Arc::strong_count(&v.buf) == 1 {
            self.pool.entry(v.buf.size()).or_default().push(v.buf);
        }
    }

    /// One kernel launch: reads `x` (and the optional `a`, `b`), writes `y`.
    #[allow(clippy::too_many_arguments)]
    fn dispatch(
        &mut self,
        kernel: &str,
        params: &[u32],
        x: &wgpu::Buffer,
        a: Option<&wgpu::Buffer>,
        b: Option<&wgpu::Buffer>,
        y: &wgpu::Buffer,
        wg: (u32, u32),
    ) {
        let mut pv = [0u32; 64];
        pv[..params.len()].copy_from_slice(params);
        let pbuf = self.d.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(kernel),
            contents: bytemuck::cast_slice(&pv),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let bg = self.d.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel),
            layout: &self.p.layout,
            entries: &[
                bind(0, &pbuf),
                bind(1, x),
                bind(2, a.unwrap_or(self.dummy)),
                bind(3, b.unwrap_or(self.dummy)),
                bind(4, y),
            ],
        });
        let mut pass = self.enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(kernel),
            timestamp_writes: None,
        });
        pass.set_pipeline(&self.p.by_name[kernel]);
        pass.set_bind_group(0, &bg, &[]);
        pass.dispatch_workgroups(wg.0, wg.1, 1);
    }

    fn node(
        &mut self,
        op: &Op,
        w: &NodeBufs,
        ins: &[&Value],
        out_shape: Vec<usize>,
    ) -> std::result::Result<Value, String> {
        let x = ins[0];
        let n_out: usize = out_shape.iter().product();
        u(n_out)?;
        u(x.shape.iter().product())?;
        let f = |v: f32| v.to_bits();
        Ok(match op {
            Op::Reshape { .. } | Op::Identity => Value {
                shape: out_shape,
                buf: x.buf.clone(),
            },
            Op::Conv(c) => {
                let s = as5(&x.shape, c.rank)?;
                let (pb, o) = window_geometry(s, c.kernel, c.strides, c.dilations, &c.pads)?;
                let y = self.alloc(out_shape);
                let nocb = c.c_out.div_ceil(8);
                let (tiled, ext) = conv_tiling(c.kernel, c.strides, c.dilations);
                let tiles = [o[2].div_ceil(8), o[1].div_ceil(4), o[0].div_ceil(4)];
                let geom = ConvGeom {
                    input: s,
                    c_out: c.c_out,
                    out: o,
                    kernel: c.kernel,
                    strides: c.strides,
                    dilations: c.dilations,
                    pad_begin: pb,
                };
                let mut prm = conv_params(&geom, c.act)?;
                prm.extend(tiles.iter().chain(&ext).map(|&v| v as u32));
                let (kernel, wg) = if tiled {
                    ("conv_tiled", groups(tiles.iter().product::<usize>() * nocb * s[0], 1))
                } else {
                    ("conv_direct", groups(o.iter().product::<usize>() * nocb * s[0], 64))
                };
                self.dispatch(kernel, &prm, &x.buf, w.a.as_ref(), w.b.as_ref(), &y.buf, wg);
                y
            }
            Op::ConvTranspose(c) => {
                let s = as5(&x.shape, c.rank)?;
                let o5 = as5(&out_shape, c.rank)?;
                let y = self.alloc(out_shape);
                let o = [o5[2], o5[3], o5[4]];
                let geom = ConvGeom {
                    input: s,
                    c_out: c.c_out,
                    out: o,
                    kernel: c.kernel,
                    strides: c.strides,
                    dilations: c.dilations,
                    pad_begin: c.pad_begin,
                };
                let prm = conv_params(&geom, c.act)?;
                let wg = groups(o.iter().product::<usize>() * c.c_out.div_ceil(8) * s[0], 64);
                self.dispatch("conv_transpose", &prm, &x.buf, w.a.as_ref(), w.b.as_ref(), &y.buf, wg);
                y
            }
            Op::Affine { scale, act, .. } => {
                let plane: usize = x.shape[2..].iter().product();
                let y = self.alloc(out_shape);
                let (act, alpha) = act_code(*act);
                let prm = [u(n_out)?, u(plane.max(1))?, u(scale.len())?, 1, act, f(alpha), 0];
                self.dispatch(
                    "affine_act",
                    &prm,
                    &x.buf,
                    w.a.as_ref(),
                    w.b.as_ref(),
                    &y.buf,
                    groups(n_out, 64),
                );
                y
            }
            Op::InstanceNorm { eps, act, scale, .. } => {
                let plane: usize = x.shape[2..].iter().product();
                let ninst = x.shape[0] * x.shape[1];
                let stats = self.alloc(vec![2 * ninst]);
                let prm = [u(plane.max(1))?, u(ninst)?, u(scale.len())?, f(*eps)];
                self.dispatch(
                    "in_stats",
                    &prm,
                    &x.buf,
                    w.a.as_ref(),
                    w.b.as_ref(),
                    &stats.buf,
                    groups(ninst, 1),
                );
                let y = self.alloc(out_shape);
                let (act, alpha) = act_code(*act);
                let prm = [
                    u(n_out)?,
                    u(plane.max(1))?,
                    u(scale.len())?,
                    2,
                    act,
                    f(alpha),
                    u(ninst)?,
                ];
                self.dispatch(
                    "affine_act",
                    &prm,
                    &x.buf,
                    Some(&stats.buf),
                    None,
                    &y.buf,
                    groups(n_out, 64),
                );
                self.release(stats);
                y
            }
            Op::Act(a) => {
                let y = self.alloc(out_shape);
                let (act, alpha) = act_code(*a);
                let prm = [u(n_out)?, 1, 1, 0, act, f(alpha), 0];
                self.dispatch("affine_act", &prm, &x.buf, None, None, &y.buf, groups(n_out, 64));
                y
            }
            Op::PRelu { slope } => self.binary(4, false, x, &slope.shape, w.a.as_ref(), out_shape)?,
            Op::Binary { kind, b } => {
                let code = match kind {
                    BinKind::Add => 0,
                    BinKind::Sub => 1,
                    BinKind::Mul => 2,
                    BinKind::Div => 3,
                };
                match b {
                    Operand::Value(_) => {
                        let bv = ins[1];
                        let bbuf = bv.buf.clone();
                        self.binary(code, false, x, &bv.shape.clone(), Some(&bbuf), out_shape)?
                    }
                    Operand::Const { t, swapped } => {
                        self.binary(code, *swapped, x, &t.shape, w.a.as_ref(), out_shape)?
                    }
                }
            }
            Op::Softmax { axis, flatten } => {
                let (len, inner) = shape::softmax_extent(*axis, *flatten, &x.shape)?;
                let count = n_out / len.max(1);
                let y = self.alloc(out_shape);
                self.dispatch(
                    "softmax",
                    &[u(count)?, u(len)?, u(inner)?],
                    &x.buf,
                    None,
                    None,
                    &y.buf,
                    groups(count, 64),
                );
                y
            }
            Op::Pool(pl) => {
                let s = as5(&x.shape, pl.rank)?;
                let (pb, o) = window_geometry(s, pl.kernel, pl.strides, [1; 3], &pl.pads)?;
                let (_, pe) = pl.pads.resolve([s[2], s[3], s[4]], pl.kernel, pl.strides, [1; 3]);
                let y = self.alloc(out_shape);
                let mut prm = vec![u(n_out)?, u(s[2])?, u(s[3])?, u(s[4])?, u(o[0])?, u(o[1])?, u(o[2])?];
                prm.extend(
                    pl.kernel
                        .iter()
                        .chain(&pl.strides)
                        .chain(&pb)
                        .chain(&pe)
                        .map(|&v| v as u32),
                );
                prm.extend([u32::from(pl.max), u32::from(pl.count_include_pad)]);
                self.dispatch("pool", &prm, &x.buf, None, None, &y.buf, groups(n_out, 64));
                y
            }
            Op::Resize(r) => {
                if x.shape.len() > 6 {
                    return Err("Resize supports at most 6 axes".into());
                }
                let tables = resize_tables(r, &x.shape, &out_shape);
                let mut packed: Vec<f32> = Vec::new();
                let mut offs = Vec::new();
                for (i0, i1, wt) in &tables {
                    offs.push(u(packed.len())?);
                    for o in 0..i0.len() {
                        packed.extend([f32::from_bits(i0[o]), f32::from_bits(i1[o]), wt[o]]);
                    }
                }
                let tbuf = self.d.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("resize-tables"),
                    contents: bytemuck::cast_slice(&packed),
                    usage: wgpu::BufferUsages::STORAGE,
                });
                let mut prm = vec![u(n_out)?, x.shape.len() as u32];
                prm.extend(pad6(&out_shape));
                prm.extend(pad6(&strides(&x.shape)));
                prm.extend(offs.iter().copied().chain(std::iter::repeat(0)).take(6));
                let y = self.alloc(out_shape);
                self.dispatch("resize", &prm, &x.buf, None, Some(&tbuf), &y.buf, groups(n_out, 64));
                y
            }
            Op::Concat { axis } => {
                let a = shape::axis(*axis, x.shape.len())?;
                let chunk_out: usize = out_shape[a..].iter().product();
                let y = self.alloc(out_shape);
                let mut offset = 0;
                for t in ins {
                    let n: usize = t.shape.iter().product();
                    let chunk_in: usize = t.shape[a..].iter().product();
                    if n > 0 {
                        let prm = [u(n)?, u(chunk_in)?, u(chunk_out)?, u(offset)?];
                        self.dispatch("concat", &prm, &t.buf, None, None, &y.buf, groups(n, 64));
                    }
                    offset += chunk_in;
                }
                y
            }
            Op::Transpose { perm } => {
                let perm = &shape::transpose_perm(perm, x.shape.len());
                if perm.len() > 6 {
                    return Err("Transpose supports at most 6 axes".into());
                }
                let xs = strides(&x.shape);
                let ps: Vec<usize> = perm.iter().map(|&p| xs[p]).collect();
                let mut prm = vec![u(n_out)?, perm.len() as u32];
                prm.extend(pad6(&out_shape));
                prm.extend(pad6(&ps));
                let y = self.alloc(out_shape);
                self.dispatch("gather", &prm, &x.buf, None, None, &y.buf, groups(n_out, 64));
                y
            }
        })
    }

    fn binary(
        &mut self,
        code: u32,
        swapped: bool,
        x: &Value,
        b_shape: &[usize],
        b: Option<&wgpu::Buffer>,
        out_shape: Vec<usize>,
    ) -> std::result::Result<Value, String> {
        if out_shape.len() > 6 {
            return Err("broadcasting supports at most 6 axes".into());
        }
        let n_out: usize = out_shape.iter().product();
        let mut prm = vec![u(n_out)?, out_shape.len() as u32, code, u32::from(swapped)];
        prm.extend(pad6(&out_shape));
        prm.extend(pad6(&broadcast_strides(&x.shape, &out_shape)));
        prm.extend(pad6(&broadcast_strides(b_shape, &out_shape)));
        let y = self.alloc(out_shape);
        self.dispatch("binary", &prm, &x.buf, b, None, &y.buf, groups(n_out, 64));
        Ok(y)
    }
}

/// Geometry shared by the convolution kernels' parameter block.
struct ConvGeom {
    input: [usize; 5],
    c_out: usize,
    out: [usize; 3],
    kernel: [usize; 3],
    strides: [usize; 3],
    dilations: [usize; 3],
    pad_begin: [usize; 3],
}

/// Parameters 0..=23 of the conv kernels (layout in nn.wgsl): sizes, window, activation, channel blocks.
fn conv_params(g: &ConvGeom, act: Act) -> std::result::Result<Vec<u32>, String> {
    let mut prm = Vec::with_capacity(30);
    for v in g.input.iter().chain([&g.c_out]).chain(&g.out) {
        prm.push(u(*v)?);
    }
    prm.extend(
        g.kernel
            .iter()
            .chain(&g.strides)
            .chain(&g.dilations)
            .chain(&g.pad_begin)
            .map(|&v| v as u32),
    );
    let (code, alpha) = act_code(act);
    prm.extend([code, alpha.to_bits(), g.c_out.div_ceil(8) as u32]);
    Ok(prm)
}

fn bind(binding: u32, buf: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: buf.as_entire_binding(),
    }
}

fn pad6(v: &[usize]) -> impl Iterator<Item = u32> + '_ {
    v.iter().map(|&x| x as u32).chain(std::iter::repeat(0)).take(6)
}
