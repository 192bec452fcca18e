//! 3-D connected-component labelling of binary masks, and per-lesion statistics.
//!
//! Contract shared by every backend (see `cpu` for the algorithm):
//! - voxels are in NIfTI storage order, index = i + nx·(j + ny·k);
//! - a voxel is foreground when its byte is non-zero;
//! - components are numbered 1..=N in the order of each component's first
//!   voxel in storage order (what cc3d gives on nibabel's Fortran-ordered
//!   arrays), so results are identical whatever the backend or thread count.

mod cpu;
mod gpu;
pub mod reference;
mod stats;

pub use cpu::{label_cpu, label_cpu_recycling, label_cpu_slabs, label_cpu_slabs_without_stats};
pub use gpu::{GpuOptions, GpuTimings, label_gpu, label_gpu_with};
pub use stats::LesionStats;

use crate::error::{Error, Result};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Which neighbours touch: faces (6), faces and edges (18), or also corners (26).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
pub enum Connectivity {
    Six,
    Eighteen,
    TwentySix,
}

impl Connectivity {
    pub const ALL: [Connectivity; 3] = [Connectivity::Six, Connectivity::Eighteen, Connectivity::TwentySix];

    pub fn as_u8(self) -> u8 {
        match self {
            Connectivity::Six => 6,
            Connectivity::Eighteen => 18,
            Connectivity::TwentySix => 26,
        }
    }

    /// Whether voxel offset (dx, dy, dz), each in -1..=1 and not all zero, is a neighbour.
    pub fn is_neighbour(self, d: [i32; 3]) -> bool {
        let nonzero = d.iter().filter(|&&v| v != 0).count();
        match self {
            Connectivity::Six => nonzero == 1,
            Connectivity::Eighteen => (1..=2).contains(&nonzero),
            Connectivity::TwentySix => nonzero >= 1,
        }
    }
}

impl From<Connectivity> for u8 {
    fn from(c: Connectivity) -> u8 {
        c.as_u8()
    }
}

impl TryFrom<u8> for Connectivity {
    type Error = String;
    fn try_from(v: u8) -> Result<Self, String> {
        match v {
            6 => Ok(Connectivity::Six),
            18 => Ok(Connectivity::Eighteen),
            26 => Ok(Connectivity::TwentySix),
            _ => Err(format!("connectivity must be 6, 18 or 26, not {v}")),
        }
    }
}

impl FromStr for Connectivity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let v: u8 = s
            .trim()
            .parse()
            .map_err(|_| format!("connectivity must be 6, 18 or 26, not {s:?}"))?;
        Connectivity::try_from(v)
    }
}

impl fmt::Display for Connectivity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_u8())
    }
}

/// A labelled volume: `labels[v]` is 0 for background or the lesion id 1..=count.
#[derive(Debug, Clone, PartialEq)]
pub struct Components {
    pub shape: [usize; 3],
    pub labels: Vec<u32>,
    /// `lesions[id - 1]` describes lesion `id`.
    pub lesions: Vec<LesionStats>,
}

impl Components {
    pub fn count(&self) -> u32 {
        self.lesions.len() as u32
    }

    /// Removes lesions with fewer than `min_voxels` voxels and renumbers the
    /// rest 1..=N in their original order (so numbering stays "first voxel in
    /// storage order").
    pub fn remove_smaller_than(&mut self, min_voxels: u64) {
        if min_voxels <= 1 || self.lesions.iter().all(|l| l.voxels >= min_voxels) {
            return;
        }
        let mut map = vec![0u32; self.lesions.len() + 1];
        let mut kept = Vec::new();
        for (i, l) in self.lesions.iter().enumerate() {
            if l.voxels >= min_voxels {
                kept.push(l.clone());
                map[i + 1] = kept.len() as u32;
            }
        }
        for v in self.labels.iter_mut().filter(|v| **v != 0) {
            *v = map[*v as usize];
        }
        self.lesions = kept;
    }

    /// Number of foreground voxels.
    pub fn foreground(&self) -> u64 {
        self.lesions.iter().map(|l| l.voxels).sum()
    }
}

/// Labels `mask` (non-zero = foreground) with the CPU backend, reusing a
/// volume handed back with [`recycle`] on this thread when one has the size.
pub fn label(mask: &[u8], shape: [usize; 3], connectivity: Connectivity) -> Components {
    let n = shape.iter().product();
    match take_recycled(n) {
        Some(previous) => label_cpu_recycling(mask, shape, connectivity, previous),
        None => label_cpu(mask, shape, connectivity),
    }
}

thread_local! {
    /// Label volumes handed back for reuse (at most [`RECYCLE_KEEP`] per thread).
    static RECYCLED: std::cell::RefCell<Vec<Components>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// How many finished label volumes one thread keeps for reuse: a case holds a
/// GT and a prediction at once, so two cover a folder run.
const RECYCLE_KEEP: usize = 2;

/// Hands a labelled volume that is no longer needed back, so that the next
/// CPU labelling of a volume with as many voxels on this thread writes into
/// it instead of page-faulting a fresh allocation (2–3× faster on a 512³
/// volume, docs/benchmarks.md). Results are identical either way. The kept
/// volumes stay allocated until the thread ends or they are reused.
pub fn recycle(c: Components) {
    RECYCLED.with(|r| {
        let mut r = r.borrow_mut();
        if r.len() < RECYCLE_KEEP {
            r.push(c);
        }
    });
}

fn take_recycled(n: usize) -> Option<Components> {
    RECYCLED.with(|r| {
        let mut r = r.borrow_mut();
        let i = r.iter().position(|c| c.labels.len() == n)?;
        Some(r.swap_remove(i))
    })
}

/// Where labelling runs (`--device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// A hardware GPU when there is one, else the CPU (saying why, once).
    /// GPU failures fall back to the CPU with a warning.
    #[default]
    Auto,
    Cpu,
    /// The GPU (any adapter, software ones included); failures are errors.
    Gpu,
}

impl FromStr for Device {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Device::Auto),
            "cpu" => Ok(Device::Cpu),
            "gpu" => Ok(Device::Gpu),
            _ => Err(format!("device must be auto, cpu or gpu, not {s:?}")),
        }
    }
}

impl Device {
    /// Checks the device up front: `gpu` fails without an adapter, and `auto`
    /// becomes `cpu` unless there is a hardware adapter. A resolved `auto`
    /// stays `auto` (the GPU, with the CPU as fallback on a GPU failure), so
    /// that the fallback still happens when volumes are labelled. Prints one
    /// line on stderr (once per process) when `auto` picks the CPU.
    pub fn resolve(self) -> Result<Device> {
        match self {
            Device::Cpu => Ok(Device::Cpu),
            Device::Gpu => crate::gpu::context().map(|_| Device::Gpu),
            Device::Auto => match crate::gpu::context() {
                Ok(ctx) if ctx.is_hardware() || pretend_hardware() => Ok(Device::Auto),
                Ok(ctx) => {
                    note_once(&format!(
                        "note: only a software GPU adapter ({}); labelling on the CPU",
                        ctx.describe()
                    ));
                    Ok(Device::Cpu)
                }
                Err(e) => {
                    note_once(&format!("note: {e}; labelling on the CPU"));
                    Ok(Device::Cpu)
                }
            },
        }
    }
}

#[cfg(not(test))]
fn pretend_hardware() -> bool {
    false
}

// Lets unit tests take the `auto` GPU path on a software adapter (CI has no other).
#[cfg(test)]
thread_local! {
    static PRETEND_HARDWARE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[cfg(test)]
fn pretend_hardware() -> bool {
    PRETEND_HARDWARE.with(|p| p.get())
}

fn note_once(msg: &str) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| eprintln!("{msg}"));
}

/// Labels on `device` (resolved with [`Device::resolve`]). With `Auto`, a GPU
/// failure falls back to the CPU with a warning; with `Gpu` it is an error.
pub fn label_on(mask: &[u8], shape: [usize; 3], connectivity: Connectivity, device: Device) -> Result<Components> {
    label_timed(mask, shape, connectivity, device).map(|(c, _)| c)
}

/// [`label_on`] for the mask read from `source`: a GPU error, and the
/// warning of a fallback, name the file (one case among hundreds).
pub fn label_file(
    mask: &[u8],
    shape: [usize; 3],
    connectivity: Connectivity,
    device: Device,
    source: &std::path::Path,
) -> Result<Components> {
    label_from(mask, shape, connectivity, device, Some(source)).map(|(c, _)| c)
}

/// Like [`label_on`], also returning the GPU's timings when the GPU ran.
pub fn label_timed(
    mask: &[u8],
    shape: [usize; 3],
    connectivity: Connectivity,
    device: Device,
) -> Result<(Components, Option<GpuTimings>)> {
    label_from(mask, shape, connectivity, device, None)
}

fn label_from(
    mask: &[u8],
    shape: [usize; 3],
    connectivity: Connectivity,
    device: Device,
    source: Option<&std::path::Path>,
) -> Result<(Components, Option<GpuTimings>)> {
    if device.resolve()? == Device::Cpu {
        return Ok((label(mask, shape, connectivity), None));
    }
    let gpu =
        crate::gpu::context().and_then(|ctx| label_gpu_with(&ctx, mask, shape, connectivity, GpuOptions::default()));
    match gpu {
        Ok((c, t)) => Ok((c, Some(t))),
        // Only a GPU failure falls back: a bad shape would fail on the CPU too.
        Err(e @ Error::Gpu(_)) if device == Device::Auto => {
            match source {
                Some(p) => eprintln!("warning: {}: {e}; labelling it on the CPU", p.display()),
                None => eprintln!("warning: {e}; labelling this volume on the CPU"),
            }
            Ok((label_cpu(mask, shape, connectivity), None))
        }
        Err(e) => Err(match source {
            Some(p) => e.in_file(p),
            None => e,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `auto` with a (here pretended) hardware GPU: a volume the GPU cannot
    /// label (rows over 65 536 voxels) falls back to the CPU; `gpu` fails.
    #[test]
    fn auto_falls_back_to_the_cpu_when_the_gpu_fails() {
        if crate::gpu::context().is_err() {
            // CI installs lavapipe and sets this: there the test must run.
            assert!(
                std::env::var_os("LESIONEVAL_REQUIRE_GPU").is_none(),
                "LESIONEVAL_REQUIRE_GPU is set but there is no GPU adapter"
            );
            eprintln!("no GPU adapter: the fallback needs one to fail");
            return;
        }
        PRETEND_HARDWARE.with(|p| p.set(true));
        let device = Device::Auto.resolve().unwrap();
        assert_eq!(device, Device::Auto);
        let shape = [(1 << 16) + 3, 1, 1];
        let mut mask = vec![0u8; shape[0]];
        mask[1] = 1;
        mask[(1 << 16) + 1] = 1;
        let (c, gpu) = label_timed(&mask, shape, Connectivity::TwentySix, device).unwrap();
        assert!(gpu.is_none(), "labelled on the CPU");
        assert_eq!(c.count(), 2);
        assert!(label_timed(&mask, shape, Connectivity::TwentySix, Device::Gpu).is_err());
        // Labelling a file's mask, the error names the file.
        let source = std::path::Path::new("cases/case_7.nii.gz");
        let e = label_file(&mask, shape, Connectivity::TwentySix, Device::Gpu, source)
            .unwrap_err()
            .to_string();
        assert!(e.contains("case_7.nii.gz") && e.contains("rows of 65539 voxels"), "{e}");
        // A shape error is not a GPU failure: no fallback, the error itself.
        let e = label_timed(&mask, [3, 3, 3], Connectivity::Six, device).unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{e}");
        PRETEND_HARDWARE.with(|p| p.set(false));
    }
}
