//! Connected-component labelling on the GPU (wgpu compute shaders, WGSL).
//!
//! Why hand-written: no crate labels volumes on wgpu. The kernels are in
//! `shaders/ccl.wgsl`, which explains the algorithm (union-find with atomicMin
//! toward the smaller index, so the root is the first voxel; roots ranked by a
//! tile scan, so labels are numbered exactly as on the CPU).
//!
//! Volumes whose label buffer exceeds the adapter's storage-binding or buffer
//! limits (128 MiB on lavapipe) are cut into z-slabs. Each slab is labelled on
//! the GPU up to root indices; the CPU then unites roots across slab
//! boundaries and numbers components in storage order — the same contract,
//! so labels stay byte-identical to the CPU backend.
//!
//! The mask is uploaded as it is (one byte per voxel, four per u32 word): no
//! CPU packing pass, and a quarter of the size of u32 voxels.
//! Every GPU call runs inside validation and out-of-memory error scopes, so
//! failures come back as `Error::Gpu`.

use super::cpu::find_runs;
use super::{Components, Connectivity, LesionStats};
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Instant;
use wgpu::util::DeviceExt;

const INVALID: u32 = u32::MAX;
const TILE: u64 = 2048;

/// Knobs for tests and benchmarks.
#[derive(Debug, Clone, Copy, Default)]
pub struct GpuOptions {
    /// Largest slab in voxels (default: from the adapter's limits). Setting it
    /// beyond the limits forces a GPU validation error (used by tests).
    pub max_slab_voxels: Option<u64>,
}

/// Where GPU labelling spent its time.
#[derive(Debug, Clone, Default)]
pub struct GpuTimings {
    /// GPU execution of the kernels (timestamp queries when available, else
    /// wall time from submit to completion of the compute-only submission).
    pub kernel_ms: f64,
    pub kernel_from_timestamps: bool,
    pub upload_ms: f64,
    pub readback_ms: f64,
    /// CPU work after readback (slab stitching, lesion statistics).
    pub cpu_ms: f64,
    pub total_ms: f64,
    pub slabs: usize,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    nx: u32,
    ny: u32,
    nz: u32,
    n: u32,
    wg_x_vox: u32,
    wg_x_tile: u32,
    max_nonzero: u32,
    num_tiles: u32,
}

struct Pipelines {
    layout: wgpu::BindGroupLayout,
    init: wgpu::ComputePipeline,
    merge: wgpu::ComputePipeline,
    compress: wgpu::ComputePipeline,
    count_roots: wgpu::ComputePipeline,
    scan_tiles: wgpu::ComputePipeline,
    assign: wgpu::ComputePipeline,
    finalize: wgpu::ComputePipeline,
}

static PIPELINES: OnceLock<std::result::Result<Pipelines, String>> = OnceLock::new();

fn pipelines(ctx: &GpuContext) -> Result<&'static Pipelines> {
    PIPELINES
        .get_or_init(|| build_pipelines(ctx))
        .as_ref()
        .map_err(|e| Error::Gpu(e.clone()))
}

fn build_pipelines(ctx: &GpuContext) -> std::result::Result<Pipelines, String> {
    let d = &ctx.device;
    let scope = d.push_error_scope(wgpu::ErrorFilter::Validation);
    let module = d.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("ccl.wgsl"),
        source: wgpu::ShaderSource::Wgsl(include_str!("shaders/ccl.wgsl").into()),
    });
    let entry = |binding: u32, ty: wgpu::BufferBindingType| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    };
    let layout = d.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some("ccl"),
        entries: &[
            entry(0, wgpu::BufferBindingType::Uniform),
            entry(1, wgpu::BufferBindingType::Storage { read_only: true }),
            entry(2, wgpu::BufferBindingType::Storage { read_only: false }),
            entry(3, wgpu::BufferBindingType::Storage { read_only: false }),
        ],
    });
    let pl = d.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some("ccl"),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let make = |name: &str| {
        d.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(name),
            layout: Some(&pl),
            module: &module,
            entry_point: Some(name),
            compilation_options: Default::default(),
            cache: None,
        })
    };
    let p = Pipelines {
        init: make("init"),
        merge: make("merge"),
        compress: make("compress"),
        count_roots: make("count_roots"),
        scan_tiles: make("scan_tiles"),
        assign: make("assign"),
        finalize: make("finalize"),
        layout,
    };
    if let Some(e) = pollster::block_on(scope.pop()) {
        return Err(format!("shader or pipeline creation failed: {e}"));
    }
    Ok(p)
}

/// Labels `mask` on the shared GPU context.
pub fn label_gpu(mask: &[u8], shape: [usize; 3], connectivity: Connectivity) -> Result<Components> {
    let ctx = crate::gpu::context()?;
    label_gpu_with(&ctx, mask, shape, connectivity, GpuOptions::default()).map(|(c, _)| c)
}

/// Labels `mask` on `ctx`, returning the components and where time went.
pub fn label_gpu_with(
    ctx: &GpuContext,
    mask: &[u8],
    shape: [usize; 3],
    connectivity: Connectivity,
    opts: GpuOptions,
) -> Result<(Components, GpuTimings)> {
    let t_total = Instant::now();
    let [nx, ny, nz] = shape;
    let n = nx * ny * nz;
    if mask.len() != n {
        return Err(Error::Config(format!(
            "mask length {} does not match shape {shape:?}",
            mask.len()
        )));
    }
    let mut timings = GpuTimings::default();
    let mut labels = vec![0u32; n];
    if n == 0 {
        return Ok((
            Components {
                shape,
                labels,
                lesions: Vec::new(),
            },
            timings,
        ));
    }
    let pipes = pipelines(ctx)?;
    let plane = (nx * ny) as u64;
    // Label buffer (4 bytes/voxel) must fit one binding and one buffer; indices
    // and the label FLAG bit need n < 2^31.
    let by_limits = ctx
        .limits
        .max_storage_buffer_binding_size
        .min(ctx.limits.max_buffer_size)
        / 4;
    let max_voxels = opts.max_slab_voxels.unwrap_or(by_limits.min((1 << 31) - 1));
    if plane > max_voxels {
        return Err(Error::Gpu(format!(
            "one {nx}×{ny} slice ({plane} voxels) exceeds the GPU's buffer limit of {max_voxels} voxels"
        )));
    }
    let slab_depth = ((max_voxels / plane) as usize).min(nz).max(1);
    let slabs: Vec<(usize, usize)> = (0..nz)
        .step_by(slab_depth)
        .map(|z0| (z0, (z0 + slab_depth).min(nz)))
        .collect();
    timings.slabs = slabs.len();
    let single = slabs.len() == 1;
    let mut count = 0u32;
    for &(z0, z1) in &slabs {
        let base = z0 * nx * ny;
        let len = (z1 - z0) * nx * ny;
        let out = &mut labels[base..base + len];
        count = run_slab(
            ctx,
            pipes,
            &mask[base..base + len],
            [nx, ny, z1 - z0],
            connectivity,
            single,
            out,
            &mut timings,
        )?;
        if !single {
            // Local root index → global root index.
            for v in out.iter_mut().filter(|v| **v != INVALID) {
                *v += base as u32;
            }
        }
    }
    let t_cpu = Instant::now();
    if !single {
        count = stitch_and_number(&mut labels, shape, &slabs, connectivity);
    }
    let lesions = stats_from_labels(mask, &labels, shape, count);
    timings.cpu_ms = ms(t_cpu);
    timings.total_ms = ms(t_total);
    Ok((Components { shape, labels, lesions }, timings))
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Labels one slab. With `number`, `out` receives final labels and the count is
/// returned; otherwise `out` receives local root indices (INVALID = background).
#[allow(clippy::too_many_arguments)]
fn run_slab(
    ctx: &GpuContext,
    p: &Pipelines,
    mask: &[u8],
    [nx, ny, nz]: [usize; 3],
    connectivity: Connectivity,
    number: bool,
    out: &mut [u32],
    timings: &mut GpuTimings,
) -> Result<u32> {
    let d = &ctx.device;
    let n = (nx * ny * nz) as u64;
    let max_dim = ctx.limits.max_compute_workgroups_per_dimension.max(1) as u64;
    let grid = |groups: u64| -> (u32, u32) {
        let x = groups.clamp(1, max_dim);
        (x as u32, groups.div_ceil(x) as u32)
    };
    let (vx, vy) = grid(n.div_ceil(256));
    let num_tiles = n.div_ceil(TILE);
    let (tx, ty) = grid(num_tiles);
    let params = Params {
        nx: nx as u32,
        ny: ny as u32,
        nz: nz as u32,
        n: n as u32,
        wg_x_vox: vx,
        wg_x_tile: tx,
        max_nonzero: match connectivity {
            Connectivity::Six => 1,
            Connectivity::Eighteen => 2,
            Connectivity::TwentySix => 3,
        },
        num_tiles: num_tiles as u32,
    };

    let oom = d.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = d.push_error_scope(wgpu::ErrorFilter::Validation);
    let t_up = Instant::now();
    let param_buf = d.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("params"),
        contents: bytemuck::bytes_of(&params),
        usage: wgpu::BufferUsages::UNIFORM,
    });
    let mask_size = n.div_ceil(4) * 4;
    let mask_buf = d.create_buffer(&wgpu::BufferDescriptor {
        label: Some("mask"),
        size: mask_size,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let aligned = (n / 4 * 4) as usize;
    if aligned > 0 {
        ctx.queue.write_buffer(&mask_buf, 0, &mask[..aligned]);
    }
    if aligned < mask.len() {
        let mut tail = [0u8; 4];
        tail[..mask.len() - aligned].copy_from_slice(&mask[aligned..]);
        ctx.queue.write_buffer(&mask_buf, aligned as u64, &tail);
    }
    let label_buf = d.create_buffer(&wgpu::BufferDescriptor {
        label: Some("labels"),
        size: n * 4,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let tiles_buf = d.create_buffer(&wgpu::BufferDescriptor {
        label: Some("tiles"),
        size: (num_tiles + 1) * 4,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let readback = d.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback"),
        size: n * 4 + 4,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let bind = d.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("ccl"),
        layout: &p.layout,
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: param_buf.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: mask_buf.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: label_buf.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 3,
                resource: tiles_buf.as_entire_binding(),
            },
        ],
    });
    let queries = ctx.timestamps.then(|| {
        let set = d.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("ccl-time"),
            ty: wgpu::QueryType::Timestamp,
            count: 2,
        });
        let resolve = d.create_buffer(&wgpu::BufferDescriptor {
            label: Some("ts-resolve"),
            size: 16,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let read = d.create_buffer(&wgpu::BufferDescriptor {
            label: Some("ts-read"),
            size: 16,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        (set, resolve, read)
    });
    // Make sure the upload has landed before timing the kernels.
    ctx.queue.submit([]);
    wait(d)?;
    timings.upload_ms += ms(t_up);
    check_scopes(validation, oom, "allocating GPU buffers")?;

    let oom = d.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = d.push_error_scope(wgpu::ErrorFilter::Validation);

    let mut enc = d.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("ccl") });
    {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("ccl"),
            timestamp_writes: queries.as_ref().map(|(set, _, _)| wgpu::ComputePassTimestampWrites {
                query_set: set,
                beginning_of_pass_write_index: Some(0),
                end_of_pass_write_index: Some(1),
            }),
        });
        pass.set_bind_group(0, &bind, &[]);
        let mut run = |pipe: &wgpu::ComputePipeline, (x, y): (u32, u32)| {
            pass.set_pipeline(pipe);
            pass.dispatch_workgroups(x, y, 1);
        };
        run(&p.init, (vx, vy));
        run(&p.merge, (vx, vy));
        run(&p.compress, (vx, vy));
        if number {
            run(&p.count_roots, (tx, ty));
            run(&p.scan_tiles, (1, 1));
            run(&p.assign, (tx, ty));
            run(&p.finalize, (vx, vy));
        }
    }
    if let Some((set, resolve, read)) = &queries {
        enc.resolve_query_set(set, 0..2, resolve, 0);
        enc.copy_buffer_to_buffer(resolve, 0, read, 0, 16);
    }
    let t_k = Instant::now();
    ctx.queue.submit([enc.finish()]);
    wait(d)?;
    let kernel_wall = ms(t_k);

    let t_rb = Instant::now();
    let mut enc = d.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("readback"),
    });
    enc.copy_buffer_to_buffer(&label_buf, 0, &readback, 0, n * 4);
    enc.copy_buffer_to_buffer(&tiles_buf, num_tiles * 4, &readback, n * 4, 4);
    ctx.queue.submit([enc.finish()]);
    let data = map_read::<u32>(d, &readback);
    check_scopes(validation, oom, "running the labelling kernels")?;
    let words = data?;
    out.copy_from_slice(&words[..n as usize]);
    let count = words[n as usize];
    drop(words);
    timings.readback_ms += ms(t_rb);

    match queries.as_ref().map(|(_, _, read)| map_read::<u64>(d, read)) {
        Some(Ok(t)) => {
            let ns = t[1].saturating_sub(t[0]) as f64 * ctx.queue.get_timestamp_period() as f64;
            timings.kernel_ms += ns / 1e6;
            timings.kernel_from_timestamps = true;
        }
        _ => timings.kernel_ms += kernel_wall,
    }
    Ok(if number { count } else { 0 })
}

/// Pops a validation and an out-of-memory scope, turning a captured error into `Error::Gpu`.
fn check_scopes(validation: wgpu::ErrorScopeGuard, oom: wgpu::ErrorScopeGuard, what: &str) -> Result<()> {
    if let Some(e) = pollster::block_on(validation.pop()) {
        return Err(Error::Gpu(format!("validation error while {what}: {e}")));
    }
    if let Some(e) = pollster::block_on(oom.pop()) {
        return Err(Error::Gpu(format!("out of GPU memory while {what}: {e}")));
    }
    Ok(())
}

fn wait(d: &wgpu::Device) -> Result<()> {
    d.poll(wgpu::PollType::Wait {
        submission_index: None,
        timeout: None,
    })
    .map(|_| ())
    .map_err(|e| Error::Gpu(format!("device lost or timed out: {e}")))
}

/// Maps a MAP_READ buffer and returns its contents as `T`s (one copy).
fn map_read<T: bytemuck::Pod>(d: &wgpu::Device, buf: &wgpu::Buffer) -> Result<Vec<T>> {
    let (tx, rx) = std::sync::mpsc::channel();
    buf.slice(..).map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    wait(d)?;
    rx.recv()
        .map_err(|e| Error::Gpu(format!("buffer mapping never completed: {e}")))?
        .map_err(|e| Error::Gpu(format!("cannot map GPU buffer: {e}")))?;
    let out = {
        let view = buf
            .slice(..)
            .get_mapped_range()
            .map_err(|e| Error::Gpu(format!("cannot read GPU buffer: {e}")))?;
        bytemuck::pod_collect_to_vec::<u8, T>(&view)
    };
    buf.unmap();
    Ok(out)
}

/// Multi-slab path: `labels` holds global root indices per slab (INVALID =
/// background). Unites roots across slab boundaries (larger under smaller),
/// then numbers components in storage order in place. Returns N.
fn stitch_and_number(labels: &mut [u32], [nx, ny, _]: [usize; 3], slabs: &[(usize, usize)], c: Connectivity) -> u32 {
    let mut parent: HashMap<u32, u32> = HashMap::new();
    fn find(p: &mut HashMap<u32, u32>, mut a: u32) -> u32 {
        while let Some(&b) = p.get(&a) {
            if b == a {
                break;
            }
            a = b;
        }
        a
    }
    let plane = nx * ny;
    for &(z0, _) in slabs.iter().skip(1) {
        for y in 0..ny {
            for x in 0..nx {
                let v = z0 * plane + y * nx + x;
                if labels[v] == INVALID {
                    continue;
                }
                for dy in -1i64..=1 {
                    for dx in -1i64..=1 {
                        if !c.is_neighbour([dx as i32, dy as i32, -1]) {
                            continue;
                        }
                        let (qx, qy) = (x as i64 + dx, y as i64 + dy);
                        if qx < 0 || qy < 0 || qx >= nx as i64 || qy >= ny as i64 {
                            continue;
                        }
                        let q = (z0 - 1) * plane + qy as usize * nx + qx as usize;
                        if labels[q] == INVALID {
                            continue;
                        }
                        let (a, b) = (find(&mut parent, labels[v]), find(&mut parent, labels[q]));
                        if a != b {
                            parent.insert(a.max(b), a.min(b));
                        }
                    }
                }
            }
        }
    }
    // Roots are first voxels (smallest index), so a root is numbered before
    // any voxel that refers to it.
    let mut next = 0u32;
    for v in 0..labels.len() {
        let r = labels[v];
        if r == INVALID {
            labels[v] = 0;
            continue;
        }
        let root = if parent.is_empty() { r } else { find(&mut parent, r) };
        if root as usize == v {
            next += 1;
            labels[v] = next;
        } else {
            labels[v] = labels[root as usize];
        }
    }
    next
}

/// Lesion statistics from the mask's runs: one label read per run.
fn stats_from_labels(mask: &[u8], labels: &[u32], [nx, ny, nz]: [usize; 3], count: u32) -> Vec<LesionStats> {
    let mut lesions = vec![LesionStats::new(); count as usize];
    let runs = find_runs(mask, nx, ny * nz);
    for row in 0..ny * nz {
        let (y, z) = (row % ny, row / ny);
        let span = runs.row_ptr[row] as usize..runs.row_ptr[row + 1] as usize;
        for (&s, &e) in runs.start[span.clone()].iter().zip(&runs.end[span]) {
            let l = labels[row * nx + s as usize];
            if let Some(stats) = (l as usize).checked_sub(1).and_then(|i| lesions.get_mut(i)) {
                stats.add_run(s as usize, e as usize, y, z);
            }
        }
    }
    lesions
}
