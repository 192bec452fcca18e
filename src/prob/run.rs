//! Scoring a folder of probability maps: per case, the usual lesion counts
//! (from `--pred` masks, or from the map thresholded at `mask_threshold`)
//! plus candidate extraction and the lesion list behind FROC/AP/AUROC.
//!
//! Detection uses the run's own GT lesions (its connectivity and GT minimum
//! size) and qualifying rule, always with one-to-one assignment; with the
//! defaults (26-connectivity, IoU ≥ 0.1) these are picai_eval's rules.

use super::summary::{self, BootstrapSettings, CaseRecord};
use super::{CandidateMode, CandidateOptions, froc};
use crate::dataset::Case;
use crate::error::Result;
use crate::eval::{self, CaseResult, EvalConfig, Labelled, ModelResult, Timings};
use crate::io::{self, Volume};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// How a candidate's confidence is computed from its voxels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CandidateScore {
    /// The highest probability in the candidate (picai's rule).
    #[default]
    Max,
    /// The mean probability over the candidate's voxels.
    Mean,
}

impl FromStr for CandidateScore {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "max" => Ok(CandidateScore::Max),
            "mean" => Ok(CandidateScore::Mean),
            _ => Err(format!("candidate score must be max or mean, not {s:?}")),
        }
    }
}

impl std::fmt::Display for CandidateScore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CandidateScore::Max => "max",
            CandidateScore::Mean => "mean",
        })
    }
}

/// Settings of a probability-map run.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbConfig {
    pub mode: CandidateMode,
    pub options: CandidateOptions,
    pub score: CandidateScore,
    /// picai's `allow_unmatched_candidates_with_minimal_overlap` (default true).
    pub allow_unmatched_overlap: bool,
    /// Without `--pred`: the lesion masks are `p ≥ mask_threshold`.
    pub mask_threshold: Option<f32>,
    pub bootstrap: BootstrapSettings,
    /// Maps with several 3-D volumes (one per class): the one scored.
    pub channel: Option<usize>,
}

/// The settings as recorded in results.json's `config.prob`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbRecord {
    pub candidates: String,
    pub candidate_score: String,
    pub max_candidates: usize,
    /// Minimum candidate size in voxels (of the mode in use).
    pub candidate_min_voxels: u64,
    pub allow_unmatched_overlap: bool,
    /// `null` when the masks came from `--pred`.
    pub mask_threshold: Option<f32>,
    pub bootstrap: usize,
    pub seed: u64,
    pub ci_level: f64,
    /// `--prob-channel`; absent for 3-D maps (and in files written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<usize>,
}

impl ProbConfig {
    pub fn record(&self) -> ProbRecord {
        ProbRecord {
            candidates: self.mode.to_string(),
            candidate_score: self.score.to_string(),
            max_candidates: self.options.max_candidates,
            candidate_min_voxels: match self.mode {
                CandidateMode::Threshold(_) => self.options.min_voxels_threshold,
                _ => self.options.min_voxels,
            },
            allow_unmatched_overlap: self.allow_unmatched_overlap,
            mask_threshold: self.mask_threshold,
            bootstrap: self.bootstrap.resamples,
            seed: self.bootstrap.seed,
            ci_level: self.bootstrap.level,
            channel: self.channel,
        }
    }
}

impl ProbRecord {
    pub fn bootstrap_settings(&self) -> BootstrapSettings {
        BootstrapSettings {
            resamples: self.bootstrap,
            seed: self.seed,
            level: self.ci_level,
        }
    }
}

/// Scores one model given as probability maps. Each case's `preds` holds
/// `[prob]`, or `[pred, prob]` when `mask_threshold` is None (masks from
/// `--pred`); a None path is scored as empty (`--missing empty`).
/// The model is named by `pred` (the path given), as `score` names it.
pub fn evaluate(
    cases: &[Case],
    pred: String,
    missing: Vec<String>,
    config: &EvalConfig,
    prob: &ProbConfig,
    timings: &Timings,
    on_case: &(dyn Fn() + Sync),
) -> Result<ModelResult> {
    let per_case: Vec<Result<(CaseResult, CaseRecord)>> = cases
        .par_iter()
        .map(|case| {
            let out = evaluate_case(case, config, prob, timings);
            on_case();
            out
        })
        .collect();
    let mut results = Vec::with_capacity(cases.len());
    let mut records = Vec::with_capacity(cases.len());
    for r in per_case {
        let (c, d) = r?;
        results.push(c);
        records.push(d);
    }
    let mut model = eval::model_result(pred.clone(), pred, results, missing);
    model.detection = Some(summary::summarise(records, prob.bootstrap));
    Ok(model)
}

fn evaluate_case(
    case: &Case,
    config: &EvalConfig,
    prob: &ProbConfig,
    timings: &Timings,
) -> Result<(CaseResult, CaseRecord)> {
    let gt_vol = Timings::time(&timings.read, || io::read_mask(&case.gt))?;
    let gt = eval::label_volume(
        &gt_vol.data,
        &gt_vol.geometry,
        config.connectivity,
        config.min_size_gt,
        config.device,
        timings,
        &case.gt,
    )?;
    drop(gt_vol);
    let prob_path = case.preds.last().and_then(|p| p.as_ref());
    let map = match prob_path {
        Some(p) => {
            let v = Timings::time(&timings.read, || super::read_probability(p, prob.channel))?;
            eval::same_grid(&case.gt, &gt.geometry, p, &v.geometry, config.geometry_tolerance)?;
            Some(v)
        }
        None => None,
    };
    let (pred, mask_missing) = match prob.mask_threshold {
        Some(t) => match &map {
            Some(v) => (threshold_mask(v, t, config, timings, prob_path)?, false),
            None => (Labelled::empty(&gt.geometry), true),
        },
        None => match case.preds.first().and_then(|p| p.as_ref()) {
            Some(p) => {
                let vol = Timings::time(&timings.read, || io::read_mask(p))?;
                eval::same_grid(&case.gt, &gt.geometry, p, &vol.geometry, config.geometry_tolerance)?;
                let l = eval::label_volume(
                    &vol.data,
                    &vol.geometry,
                    config.connectivity,
                    config.min_size_pred,
                    config.device,
                    timings,
                    p,
                )?;
                (l, false)
            }
            None => (Labelled::empty(&gt.geometry), true),
        },
    };
    // Missing the map (no candidates) counts as missing too, not only missing the mask.
    let missing = mask_missing || map.is_none();
    let result = Timings::time(&timings.matching, || {
        eval::score_case(&case.id, &gt, &pred, config, missing)
    });
    let detections = Timings::time(&timings.matching, || {
        let mut candidates = match &map {
            Some(v) => super::extract(&v.data, v.geometry.shape, prob.mode, &prob.options),
            None => Vec::new(),
        };
        if let (CandidateScore::Mean, Some(v)) = (prob.score, &map) {
            for c in &mut candidates {
                let sum: f64 = c.voxels.iter().map(|&i| v.data[i as usize] as f64).sum();
                c.confidence = (sum / c.voxels.len().max(1) as f64) as f32;
            }
        }
        froc::detections_against(
            &gt.components,
            &candidates,
            &config.criterion,
            prob.allow_unmatched_overlap,
        )
    });
    Ok((result, CaseRecord::new(&case.id, &detections)))
}

fn threshold_mask(
    v: &Volume<f32>,
    t: f32,
    config: &EvalConfig,
    timings: &Timings,
    source: Option<&PathBuf>,
) -> Result<Labelled> {
    let mask: Vec<u8> = v.data.iter().map(|&p| u8::from(p >= t)).collect();
    eval::label_volume(
        &mask,
        &v.geometry,
        config.connectivity,
        config.min_size_pred,
        config.device,
        timings,
        source.map_or(Path::new("(probability map)"), |p| p.as_path()),
    )
}
