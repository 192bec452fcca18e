//! Probability maps: reading them, and turning them into scored lesion
//! candidates the way picai_eval's `extract_lesion_candidates`
//! (report_guided_annotation 0.3.4) does.
//!
//! Every threshold and comparison is done in `f32`, as NumPy does on float32
//! maps (`max / 2.5` stays float32): reproducing picai's candidates exactly
//! depends on it (0.9 / 2.5 is 0.35999998 in f32). fixtures/froc/README.md
//! documents each rule with its source line; tests/candidates.rs checks every
//! mode against the committed fixtures.
//!
//! Modes (`--candidates`):
//! - `threshold:T` — components (26-connected) of `p ≥ T`, scored by their
//!   maximum. Unlike picai's float mode it keeps small components; add
//!   `min_voxels = 11` (picai's "more than 10 voxels") to reproduce picai.
//! - `dynamic-fast` — one pass at `max(p) / 2.5`, components of more than 10
//!   voxels.
//! - `dynamic` (picai's version 1) and `dynamic-v2` — iterative: take the
//!   map's maximum m, threshold at m / 2.5, take the best-scoring component of
//!   more than 10 voxels, accept it unless it overlaps or touches an accepted
//!   candidate, erase it from the working map, repeat until 5 candidates or
//!   m < 0.01. When no component survives a threshold, version 1 stops and
//!   version 2 erases everything above the threshold and goes on.

use crate::error::{Error, Result};
use crate::io::{self, Volume};
use crate::label::{self, Connectivity};
use std::path::Path;
use std::str::FromStr;

pub mod froc;
pub mod run;
pub mod summary;

/// How candidates are extracted from a probability map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CandidateMode {
    Threshold(f32),
    DynamicFast,
    /// picai's `'dynamic'` (version 1) or `'dynamic-v2'` (version 2).
    Dynamic {
        version: u8,
    },
}

impl FromStr for CandidateMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "dynamic-fast" => Ok(CandidateMode::DynamicFast),
            "dynamic" => Ok(CandidateMode::Dynamic { version: 1 }),
            "dynamic-v2" => Ok(CandidateMode::Dynamic { version: 2 }),
            _ => {
                let t = s.strip_prefix("threshold:").ok_or_else(|| {
                    format!("candidates must be threshold:T, dynamic-fast, dynamic or dynamic-v2, not {s:?}")
                })?;
                let t: f32 = t.parse().map_err(|_| format!("threshold {t:?} is not a number"))?;
                if !(t > 0.0 && t <= 1.0) {
                    return Err(format!("threshold {t} must be in (0, 1]"));
                }
                Ok(CandidateMode::Threshold(t))
            }
        }
    }
}

impl std::fmt::Display for CandidateMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CandidateMode::Threshold(t) => write!(f, "threshold:{t}"),
            CandidateMode::DynamicFast => f.write_str("dynamic-fast"),
            CandidateMode::Dynamic { version: 1 } => f.write_str("dynamic"),
            CandidateMode::Dynamic { .. } => f.write_str("dynamic-v2"),
        }
    }
}

/// The knobs of `extract_lesion_candidates`, with picai's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CandidateOptions {
    /// Keep components with at least this many voxels (picai: more than 10,
    /// i.e. 11). `threshold:T` uses `min_voxels_threshold` instead.
    pub min_voxels: u64,
    /// Minimum size for `threshold:T` (default 1: every component).
    pub min_voxels_threshold: u64,
    /// Dynamic modes stop after this many accepted candidates.
    pub max_candidates: usize,
    /// Threshold = maximum / factor.
    pub factor: f32,
    /// Dynamic modes stop when the remaining maximum is below this.
    pub stop_below: f32,
}

impl Default for CandidateOptions {
    fn default() -> Self {
        CandidateOptions {
            min_voxels: 11,
            min_voxels_threshold: 1,
            max_candidates: 5,
            factor: 2.5,
            stop_below: 0.01,
        }
    }
}

/// One lesion candidate: its score and its voxels (storage-order indices, sorted).
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub confidence: f32,
    pub voxels: Vec<u32>,
}

/// Reads a probability map (of a file with one 3-D map per class, `channel`);
/// values must be finite and within [0, 1].
pub fn read_probability(path: &Path, channel: Option<usize>) -> Result<Volume<f32>> {
    let vol = io::read_f32_channel(path, channel).map_err(|e| match io::volumes_in(path) {
        Ok(volumes) if channel.is_none() && volumes > 1 => Error::input(
            path,
            format!("holds {volumes} 3-D maps (one per class?): choose the one to score with --prob-channel K"),
        ),
        _ => e,
    })?;
    if let Some((idx, v)) = vol.data.iter().enumerate().find(|(_, v)| !(0.0..=1.0).contains(*v)) {
        let [nx, ny, _] = vol.geometry.shape;
        return Err(Error::input(
            path,
            format!(
                "probability {v} at voxel ({}, {}, {}) is not within [0, 1] (NaN included)",
                idx % nx,
                (idx / nx) % ny,
                idx / (nx * ny)
            ),
        ));
    }
    Ok(vol)
}

/// Extracts candidates from `prob` (storage order, `shape`). Static modes
/// return candidates in order of their first voxel; dynamic modes in
/// extraction order.
pub fn extract(prob: &[f32], shape: [usize; 3], mode: CandidateMode, opts: &CandidateOptions) -> Vec<Candidate> {
    let max = prob.iter().copied().fold(0.0f32, f32::max);
    match mode {
        CandidateMode::Threshold(t) => components_at(prob, shape, t, opts.min_voxels_threshold),
        CandidateMode::DynamicFast => components_at(prob, shape, max / opts.factor, opts.min_voxels),
        CandidateMode::Dynamic { version } => dynamic(prob, shape, version, opts),
    }
}

/// Components of `w ≥ thr` (and `w ≠ 0`) with at least `min_voxels` voxels,
/// each scored by its maximum.
fn components_at(w: &[f32], shape: [usize; 3], thr: f32, min_voxels: u64) -> Vec<Candidate> {
    let mask: Vec<u8> = w.iter().map(|&v| u8::from(v >= thr && v != 0.0)).collect();
    let comps = label::label(&mask, shape, Connectivity::TwentySix);
    let mut members: Vec<Vec<u32>> = comps
        .lesions
        .iter()
        .map(|l| Vec::with_capacity(l.voxels as usize))
        .collect();
    for (v, &l) in comps.labels.iter().enumerate() {
        if l != 0 {
            members[l as usize - 1].push(v as u32);
        }
    }
    members
        .into_iter()
        .filter(|m| m.len() as u64 >= min_voxels)
        .map(|voxels| Candidate {
            confidence: voxels.iter().map(|&v| w[v as usize]).fold(0.0f32, f32::max),
            voxels,
        })
        .collect()
}

fn dynamic(prob: &[f32], shape: [usize; 3], version: u8, opts: &CandidateOptions) -> Vec<Candidate> {
    let [nx, ny, nz] = shape;
    let mut work = prob.to_vec();
    // Accepted candidates dilated by the 3×3×3 cube: a component touching it is skipped.
    let mut near = vec![false; work.len()];
    let mut accepted: Vec<Candidate> = Vec::new();
    while accepted.len() < opts.max_candidates {
        let m = work.iter().copied().fold(0.0f32, f32::max);
        if m < opts.stop_below {
            break;
        }
        let thr = m / opts.factor;
        let comps = components_at(&work, shape, thr, opts.min_voxels);
        let Some(best) = comps.iter().map(|c| c.confidence).reduce(f32::max) else {
            if version == 1 {
                // Version 1 treats the whole volume as the next "candidate": it
                // touches any accepted one (or is the empty 0.0 candidate) and
                // the working map becomes empty, so extraction ends.
                break;
            }
            work.iter_mut().filter(|v| **v > thr).for_each(|v| *v = 0.0);
            continue;
        };
        // Ties: the component whose first voxel in C order (k fastest) comes first.
        let c_order_first = |c: &Candidate| {
            c.voxels
                .iter()
                .map(|&v| {
                    let v = v as usize;
                    (v % nx, (v / nx) % ny, v / (nx * ny))
                })
                .min()
        };
        let chosen = comps
            .iter()
            .filter(|c| c.confidence == best)
            .min_by_key(|c| c_order_first(c))
            .cloned()
            .unwrap_or_else(|| Candidate {
                confidence: best,
                voxels: Vec::new(),
            });
        let touches = chosen.voxels.iter().any(|&v| near[v as usize]);
        for &v in &chosen.voxels {
            work[v as usize] = 0.0;
        }
        if touches {
            continue;
        }
        for &v in &chosen.voxels {
            let v = v as usize;
            let (x, y, z) = (v % nx, (v / nx) % ny, v / (nx * ny));
            for zz in z.saturating_sub(1)..(z + 2).min(nz) {
                for yy in y.saturating_sub(1)..(y + 2).min(ny) {
                    for xx in x.saturating_sub(1)..(x + 2).min(nx) {
                        near[xx + nx * (yy + ny * zz)] = true;
                    }
                }
            }
        }
        accepted.push(chosen);
    }
    accepted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print() {
        for s in ["dynamic", "dynamic-v2", "dynamic-fast", "threshold:0.5"] {
            assert_eq!(s.parse::<CandidateMode>().unwrap().to_string(), s);
        }
        assert!("threshold:0".parse::<CandidateMode>().is_err());
        assert!("threshold:x".parse::<CandidateMode>().is_err());
        assert!("fast".parse::<CandidateMode>().is_err());
    }

    #[test]
    fn threshold_scores_components_by_their_maximum() {
        // Row of 6: 0.6 0.9 0 0.5 0.2 0.7 at threshold 0.5 → {0.6, 0.9} and {0.5}, {0.7}.
        let p = [0.6, 0.9, 0.0, 0.5, 0.2, 0.7];
        let c = extract(
            &p,
            [6, 1, 1],
            CandidateMode::Threshold(0.5),
            &CandidateOptions::default(),
        );
        let got: Vec<(f32, Vec<u32>)> = c.into_iter().map(|c| (c.confidence, c.voxels)).collect();
        assert_eq!(got, vec![(0.9, vec![0, 1]), (0.5, vec![3]), (0.7, vec![5])]);
    }
}
