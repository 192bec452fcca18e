//! 3-D connected-component labelling of binary masks, and per-lesion statistics.
//!
//! Contract shared by every backend (see `cpu` for the algorithm):
//! - voxels are in NIfTI storage order, index = i + nx·(j + ny·k);
//! - a voxel is foreground when its byte is non-zero;
//! - components are numbered 1..=N in the order of each component's first
//!   voxel in storage order (what cc3d gives on nibabel's Fortran-ordered
//!   arrays), so results are identical whatever the backend or thread count.

mod cpu;
pub mod reference;
mod stats;

pub use cpu::label_cpu;
pub use stats::LesionStats;

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

/// Labels `mask` (non-zero = foreground) with the default CPU backend.
pub fn label(mask: &[u8], shape: [usize; 3], connectivity: Connectivity) -> Components {
    label_cpu(mask, shape, connectivity)
}
