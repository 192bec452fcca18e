//! One shared wgpu device for the whole process.
//!
//! Created lazily on first use with the adapter's own limits (the defaults cap
//! storage bindings at 128 MiB even on GPUs that allow far more). Backends come
//! from `WGPU_BACKEND` when set (CI uses `vulkan` on Mesa's lavapipe). The
//! default uncaptured-error handler panics; we replace it so that GPU errors
//! surface through error scopes as `Error::Gpu`, never as panics.

use crate::error::{Error, Result};
use std::sync::{Arc, OnceLock};

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
