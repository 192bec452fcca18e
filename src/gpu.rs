//! One shared wgpu device for the whole process.
//!
//! Created lazily on first use with the adapter's own limits (the defaults cap
//! storage bindings at 128 MiB even on GPUs that allow far more). Backends come
//! from `WGPU_BACKEND` when set (CI uses `vulkan` on Mesa's lavapipe). The
//! default uncaptured-error handler panics; we replace it so that GPU errors
//! surface through error scopes as `Error::Gpu`, never as panics.

use crate::error::{Error, Result};
use std::sync::{Arc, OnceLock};

/// llvmpipe (lavapipe, Mesa's software Vulkan) ends all loops of a shader
/// invocation once they have made this many trips in total, without an error,
/// so a kernel that loops longer writes wrong numbers. Hardware drivers have
/// no such limit. The labelling kernels detect the cut (`label::gpu`); the
/// inference kernels stay under it or are refused (`infer::gpu`).
pub const SOFTWARE_LOOP_LIMIT: u64 = 65_535;

/// A device, its queue and what we learned about the adapter.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    /// Timestamp queries are available (kernel times are then measured on the GPU).
    pub timestamps: bool,
}

impl GpuContext {
    /// Whether the adapter is a real GPU (not a software rasteriser like lavapipe).
    pub fn is_hardware(&self) -> bool {
        matches!(
            self.info.device_type,
            wgpu::DeviceType::DiscreteGpu | wgpu::DeviceType::IntegratedGpu | wgpu::DeviceType::VirtualGpu
        )
    }

    /// `NVIDIA H100 (Vulkan, discrete)`
    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {:?})",
            self.info.name, self.info.backend, self.info.device_type
        )
    }
}

static CONTEXT: OnceLock<std::result::Result<Arc<GpuContext>, String>> = OnceLock::new();

/// The process-wide GPU context, created on first call.
pub fn context() -> Result<Arc<GpuContext>> {
    CONTEXT
        .get_or_init(|| create().map(Arc::new))
        .clone()
        .map_err(Error::Gpu)
}

fn create() -> std::result::Result<GpuContext, String> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        force_fallback_adapter: false,
        compatible_surface: None,
        // Bucketing limits hides hardware detail from untrusted web content; we want the real limits.
        apply_limit_buckets: false,
    }))
    .map_err(|e| format!("no GPU adapter: {e}"))?;
    let limits = adapter.limits();
    let timestamps = adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
    let required_features = if timestamps {
        wgpu::Features::TIMESTAMP_QUERY
    } else {
        wgpu::Features::empty()
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("lesioneval"),
        required_features,
        required_limits: limits.clone(),
        ..Default::default()
    }))
    .map_err(|e| format!("cannot open GPU device {}: {e}", adapter.get_info().name))?;
    device.on_uncaptured_error(Arc::new(|e: wgpu::Error| {
        eprintln!("warning: uncaptured GPU error: {e}");
    }));
    Ok(GpuContext {
        device,
        queue,
        info: adapter.get_info(),
        limits,
        timestamps,
    })
}

/// Pops a validation and an out-of-memory scope, turning a captured error into `Error::Gpu`.
pub(crate) fn check_scopes(validation: wgpu::ErrorScopeGuard, oom: wgpu::ErrorScopeGuard, what: &str) -> Result<()> {
    if let Some(e) = pollster::block_on(validation.pop()) {
        return Err(Error::Gpu(format!("validation error while {what}: {e}")));
    }
    if let Some(e) = pollster::block_on(oom.pop()) {
        return Err(Error::Gpu(format!("out of GPU memory while {what}: {e}")));
    }
    Ok(())
}

pub(crate) fn wait(d: &wgpu::Device) -> Result<()> {
    d.poll(wgpu::PollType::Wait {
        submission_index: None,
        timeout: None,
    })
    .map(|_| ())
    .map_err(|e| Error::Gpu(format!("device lost or timed out: {e}")))
}

/// Maps a MAP_READ buffer and returns its contents as `T`s (one copy).
pub(crate) fn map_read<T: bytemuck::Pod>(d: &wgpu::Device, buf: &wgpu::Buffer) -> Result<Vec<T>> {
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

/// Compute pipelines for the entry points `names` of one WGSL module, all
/// sharing one bind group layout: binding 0 uniform, then `read_only` storage
/// buffers (true = read-only) in order. Shader errors come back as text.
pub(crate) fn build_pipelines(
    ctx: &GpuContext,
    label: &str,
    source: &'static str,
    read_only: &[bool],
    names: &[&'static str],
) -> std::result::Result<(wgpu::BindGroupLayout, Vec<wgpu::ComputePipeline>), String> {
    let d = &ctx.device;
    let scope = d.push_error_scope(wgpu::ErrorFilter::Validation);
    let module = d.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(source.into()),
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
    let mut entries = vec![entry(0, wgpu::BufferBindingType::Uniform)];
    for (i, &ro) in read_only.iter().enumerate() {
        entries.push(entry(i as u32 + 1, wgpu::BufferBindingType::Storage { read_only: ro }));
    }
    let layout = d.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(label),
        entries: &entries,
    });
    let pl = d.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(label),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let pipelines = names
        .iter()
        .map(|&name| {
            d.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(name),
                layout: Some(&pl),
                module: &module,
                entry_point: Some(name),
                compilation_options: Default::default(),
                cache: None,
            })
        })
        .collect();
    if let Some(e) = pollster::block_on(scope.pop()) {
        return Err(format!("{label}: shader or pipeline creation failed: {e}"));
    }
    Ok((layout, pipelines))
}
