//! Connected-component labelling on the GPU (wgpu compute shaders, WGSL).
//!
//! Why hand-written: no crate labels volumes on wgpu. The split of work:
//! the CPU scans the mask for runs of foreground (a streaming pass it needs
//! anyway to write the output), the GPU does the union-find over runs — one
//! thread per row sweeping the touching rows, union by atomicMin toward the
//! smaller run id — and returns each run's root; the CPU numbers components in
//! storage order from the roots and writes the label volume. The numbering is
//! the CPU backend's, so labels are byte-identical. `shaders/ccl.wgsl` explains
//! the kernels.
//!
//! What crosses the bus is compact: 4 bytes per run and per row up, 4 bytes
//! per run down — for a sparse 512³ lesion mask about 1 MiB each way instead of
//! 512 MiB of u32 labels. Runs beyond the adapter's buffer limits (128 MiB
//! bindings on lavapipe) are split into z-slabs whose roots the CPU unites
//! across slab boundaries before numbering. Every GPU call runs inside
//! validation and out-of-memory error scopes, so failures are `Error::Gpu`.

use super::cpu::{Runs, components_from_runs, find_runs, label_cpu, neighbour_rows, touching_runs};
use super::{Components, Connectivity};
use crate::error::{Error, Result};
use crate::gpu::{GpuContext, SOFTWARE_LOOP_LIMIT, check_scopes, map_read, wait};
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Instant;
use wgpu::util::DeviceExt;

/// Knobs for tests and benchmarks.
#[derive(Debug, Clone, Copy, Default)]
pub struct GpuOptions {
    /// Most runs per slab (default: what the adapter's buffer limits allow).
    pub max_slab_runs: Option<u64>,
    /// Most z-planes per slab (default: no cap); tests use it to force stitching.
    pub max_slab_planes: Option<usize>,
    /// Fault injection for tests: request a buffer one word over the device's
    /// limit, which the GPU must reject with a validation error.
    pub oversize_buffer: bool,
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
    /// CPU work: finding runs, slab stitching, numbering, writing labels and statistics.
    pub cpu_ms: f64,
    pub total_ms: f64,
    pub slabs: usize,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    ny: u32,
    nz: u32,
    nrows: u32,
    nruns: u32,
    wg_x_row: u32,
    wg_x_run: u32,
    conn: u32,
    _pad: u32,
}

struct Pipelines {
    layout: wgpu::BindGroupLayout,
    init: wgpu::ComputePipeline,
    merge: wgpu::ComputePipeline,
    resolve: wgpu::ComputePipeline,
}

static PIPELINES: OnceLock<std::result::Result<Pipelines, String>> = OnceLock::new();

fn pipelines(ctx: &GpuContext) -> Result<&'static Pipelines> {
    PIPELINES
        .get_or_init(|| build_pipelines(ctx))
        .as_ref()
        .map_err(|e| Error::Gpu(e.clone()))
}

fn build_pipelines(ctx: &GpuContext) -> std::result::Result<Pipelines, String> {
    let (layout, mut p) = crate::gpu::build_pipelines(
        ctx,
        "ccl.wgsl",
        include_str!("shaders/ccl.wgsl"),
        &[true, true, false],
        &["init", "merge", "resolve"],
    )?;
    let (resolve, merge, init) = (p.remove(2), p.remove(1), p.remove(0));
    Ok(Pipelines {
        init,
        merge,
        resolve,
        layout,
    })
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
    let n = nx.checked_mul(ny).and_then(|p| p.checked_mul(nz));
    if n != Some(mask.len()) {
        return Err(Error::Config(format!(
            "mask length {} does not match shape {shape:?}",
            mask.len()
        )));
    }
    // Run indices and labels are u32, as on the CPU.
    if mask.len() > u32::MAX as usize {
        return Err(Error::Config(format!(
            "a volume of shape {shape:?} has more than 2^32 - 1 voxels"
        )));
    }
    if mask.is_empty() {
        return Ok((label_cpu(mask, shape, connectivity), GpuTimings::default()));
    }
    if nx > 1 << 16 {
        return Err(Error::Gpu(format!(
            "rows of {nx} voxels: the GPU path packs x in 16 bits (at most 65536)"
        )));
    }
    let mut timings = GpuTimings::default();
    let t_cpu = Instant::now();
    let rows = ny * nz;
    let runs = find_runs(mask, nx, rows);
    let nruns = runs.start.len();
    if nruns == 0 {
        timings.cpu_ms = ms(t_cpu);
        return Ok((components_from_runs(&runs, &[], shape, 0), timings));
    }
    // start | last << 16; last = end - 1 < 65536.
    let packed: Vec<u32> = runs
        .start
        .iter()
        .zip(&runs.end)
        .map(|(&s, &e)| s | ((e - 1) << 16))
        .collect();
    timings.cpu_ms += ms(t_cpu);

    let pipes = pipelines(ctx)?;
    let by_limits = ctx
        .limits
        .max_storage_buffer_binding_size
        .min(ctx.limits.max_buffer_size)
        / 4
        - 1;
    let max_runs = opts.max_slab_runs.unwrap_or(by_limits.min((1 << 31) - 1)).max(1);
    let max_planes = opts.max_slab_planes.unwrap_or(nz).max(1);
    let slabs = plan_slabs(
        &runs,
        ny,
        nz,
        max_runs,
        max_planes.min((by_limits as usize / ny.max(1)).max(1)),
    )?;
    timings.slabs = slabs.len();

    let mut roots = vec![0u32; nruns];
    for &(z0, z1) in &slabs {
        let (r0, r1) = (runs.row_ptr[z0 * ny] as usize, runs.row_ptr[z1 * ny] as usize);
        if r0 == r1 {
            // Empty planes: nothing to label, and wgpu refuses zero-sized bindings.
            continue;
        }
        let row_ptr: Vec<u32> = runs.row_ptr[z0 * ny..=z1 * ny].iter().map(|&p| p - r0 as u32).collect();
        let local = run_slab(
            ctx,
            pipes,
            &packed[r0..r1],
            &row_ptr,
            [ny, z1 - z0],
            connectivity,
            opts,
            &mut timings,
        )?;
        for (g, l) in roots[r0..r1].iter_mut().zip(local) {
            *g = l + r0 as u32;
        }
    }

    let t_cpu = Instant::now();
    let stitched = (slabs.len() > 1).then(|| stitch(&runs, &roots, [ny, nz], &slabs, connectivity));
    // A root is its component's first run, so it is numbered before its members.
    let mut labels = vec![0u32; nruns];
    let mut next = 0u32;
    for r in 0..nruns {
        let mut root = roots[r];
        if let Some(parent) = &stitched {
            root = find_in(parent, root);
        }
        if root as usize == r {
            next += 1;
            labels[r] = next;
        } else {
            labels[r] = labels[root as usize];
        }
    }
    let components = components_from_runs(&runs, &labels, shape, next);
    timings.cpu_ms += ms(t_cpu);
    timings.total_ms = ms(t_total);
    Ok((components, timings))
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Groups whole z-planes into slabs of at most `max_runs` runs and `max_planes` planes.
fn plan_slabs(runs: &Runs, ny: usize, nz: usize, max_runs: u64, max_planes: usize) -> Result<Vec<(usize, usize)>> {
    let plane_runs = |z: usize| (runs.row_ptr[(z + 1) * ny] - runs.row_ptr[z * ny]) as u64;
    let mut slabs = Vec::new();
    let mut z0 = 0;
    while z0 < nz {
        if plane_runs(z0) > max_runs {
            return Err(Error::Gpu(format!(
                "plane k = {z0} has {} runs, more than the GPU's buffer limit of {max_runs}",
                plane_runs(z0)
            )));
        }
        let (mut z1, mut total) = (z0, 0u64);
        while z1 < nz && z1 - z0 < max_planes && total + plane_runs(z1) <= max_runs {
            total += plane_runs(z1);
            z1 += 1;
        }
        slabs.push((z0, z1));
        z0 = z1;
    }
    Ok(slabs)
}

/// Unions per-slab roots across slab boundaries (larger under smaller run id).
fn stitch(
    runs: &Runs,
    roots: &[u32],
    [ny, _]: [usize; 2],
    slabs: &[(usize, usize)],
    c: Connectivity,
) -> HashMap<u32, u32> {
    let mut parent: HashMap<u32, u32> = HashMap::new();
    for &(z0, _) in slabs.iter().skip(1) {
        for y in 0..ny {
            let row = y + ny * z0;
            // Only the neighbour rows in the previous plane cross the boundary.
            for &(dy, dz, tol) in neighbour_rows(c).iter().filter(|n| n.1 == -1) {
                let py = y as isize + dy;
                if py < 0 || py >= ny as isize {
                    continue;
                }
                let prow = py as usize + ny * (z0 as isize + dz) as usize;
                touching_runs(runs, row, prow, tol, |i, j| {
                    let (a, b) = (find_in(&parent, roots[i]), find_in(&parent, roots[j]));
                    if a != b {
                        parent.insert(a.max(b), a.min(b));
                    }
                });
            }
        }
    }
    parent
}

fn find_in(parent: &HashMap<u32, u32>, mut a: u32) -> u32 {
    while let Some(&b) = parent.get(&a) {
        a = b;
    }
    a
}

/// Runs the union-find kernels on one slab and returns each run's root (local ids).
#[allow(clippy::too_many_arguments)]
fn run_slab(
    ctx: &GpuContext,
    p: &Pipelines,
    packed: &[u32],
    row_ptr: &[u32],
    [ny, nz]: [usize; 2],
    connectivity: Connectivity,
    opts: GpuOptions,
    timings: &mut GpuTimings,
) -> Result<Vec<u32>> {
    let d = &ctx.device;
    let nruns = packed.len() as u64;
    let nrows = (row_ptr.len() - 1) as u64;
    let max_dim = ctx.limits.max_compute_workgroups_per_dimension.max(1) as u64;
    let grid = |threads: u64| -> (u32, u32) {
        let groups = threads.div_ceil(256);
        let x = groups.clamp(1, max_dim);
        (x as u32, groups.div_ceil(x) as u32)
    };
    let (rx, ry) = grid(nrows);
    let (ux, uy) = grid(nruns);
    let params = Params {
        ny: ny as u32,
        nz: nz as u32,
        nrows: nrows as u32,
        nruns: nruns as u32,
        wg_x_row: rx,
        wg_x_run: ux,
        conn: connectivity.as_u8() as u32,
        _pad: 0,
    };

    let oom = d.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = d.push_error_scope(wgpu::ErrorFilter::Validation);
    let t_up = Instant::now();
    let storage = |label: &str, data: &[u32]| {
        d.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::cast_slice(data),
            usage: wgpu::BufferUsages::STORAGE,
        })
    };
    let param_buf = d.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("params"),
        contents: bytemuck::bytes_of(&params),
        usage: wgpu::BufferUsages::UNIFORM,
    });
    let runs_buf = storage("runs", packed);
    let rows_buf = storage("row_ptr", row_ptr);
    // One word per run, then the flag of a loop cut short (ccl.wgsl).
    let l_size = if opts.oversize_buffer {
        ctx.limits.max_buffer_size + 4
    } else {
        (nruns + 1) * 4
    };
    let l_buf = d.create_buffer(&wgpu::BufferDescriptor {
        label: Some("parents"),
        size: l_size,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let readback = d.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback"),
        size: (nruns + 1) * 4,
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
                resource: runs_buf.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: rows_buf.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 3,
                resource: l_buf.as_entire_binding(),
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
        for (pipe, (x, y)) in [(&p.init, (ux, uy)), (&p.merge, (rx, ry)), (&p.resolve, (ux, uy))] {
            pass.set_pipeline(pipe);
            pass.dispatch_workgroups(x, y, 1);
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
    enc.copy_buffer_to_buffer(&l_buf, 0, &readback, 0, (nruns + 1) * 4);
    ctx.queue.submit([enc.finish()]);
    let roots = map_read::<u32>(d, &readback);
    check_scopes(validation, oom, "running the labelling kernels")?;
    let mut roots = roots?;
    timings.readback_ms += ms(t_rb);
    if roots.pop() != Some(0) {
        return Err(Error::Gpu(format!(
            "the adapter {} ended a labelling loop before it finished, so unions would be missing; \
             software adapters (llvmpipe) stop a shader's loops after {SOFTWARE_LOOP_LIMIT} iterations, \
             which rows of thousands of runs reach (label on the CPU: --device cpu or auto)",
            ctx.describe()
        )));
    }

    match queries.as_ref().map(|(_, _, read)| map_read::<u64>(d, read)) {
        Some(Ok(t)) => {
            let ns = t[1].saturating_sub(t[0]) as f64 * ctx.queue.get_timestamp_period() as f64;
            timings.kernel_ms += ns / 1e6;
            timings.kernel_from_timestamps = true;
        }
        _ => timings.kernel_ms += kernel_wall,
    }
    Ok(roots)
}
