//! Flags of `score --prob`: candidate extraction, detection rules and bootstrap.

use anyhow::{Result, bail};
use clap::Args;
use lesioneval::prob::run::{CandidateScore, ProbConfig};
use lesioneval::prob::summary::BootstrapSettings;
use lesioneval::prob::{CandidateMode, CandidateOptions};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ProbArgs {
    /// Probability map file or folder (float NIfTI in [0, 1]): adds lesion candidates, FROC, AP, AUROC and
    /// bootstrap intervals. Without --pred, lesion masks are the maps at p ≥ --threshold.
    #[arg(long, value_name = "PATH")]
    pub prob: Option<PathBuf>,
    /// Suffix removed from probability map file names to get case ids (e.g. _prob).
    #[arg(long)]
    pub prob_suffix: Option<String>,
    /// Maps with one 3-D volume per class (4-D, as MONAI saves a softmax; or 5-D vector images): score channel
    /// K, e.g. 1 for the lesion class of a two-class softmax.
    #[arg(long, value_name = "K", requires = "prob")]
    pub prob_channel: Option<usize>,
    /// Candidate extraction: threshold:T (every component of p ≥ T, no cap), or picai_eval's dynamic-fast, dynamic,
    /// dynamic-v2 (see docs/probabilities.md).
    #[arg(long, default_value = "threshold:0.1", value_name = "MODE")]
    pub candidates: CandidateMode,
    /// dynamic modes: stop after this many candidates per case (picai: 5, made for prostate; raise it for
    /// diseases with many lesions such as MS).
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub max_candidates: usize,
    /// dynamic and dynamic-fast: keep candidates of at least N voxels (picai: 11, i.e. more than 10); threshold:T
    /// keeps every component unless this is given.
    #[arg(long, value_name = "N")]
    pub candidate_min_voxels: Option<u64>,
    /// A candidate's confidence: max (picai) or mean probability over its voxels.
    #[arg(long = "score", default_value = "max", value_name = "max|mean")]
    pub candidate_score: CandidateScore,
    /// Without --pred: a voxel is lesion when p ≥ T (for the TP/FP/FN table; candidates are separate).
    #[arg(long, default_value_t = 0.5, value_name = "T")]
    pub threshold: f32,
    /// Count candidates that qualify with a lesion but lose the one-to-one assignment as FP (picai ignores them).
    #[arg(long)]
    pub count_unmatched_overlap: bool,
    /// Bootstrap resamples over cases for confidence intervals (0: none).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub bootstrap: usize,
    /// Seed of the bootstrap draws (same seed and cases → same intervals).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Coverage of the bootstrap intervals.
    #[arg(long, default_value_t = 0.95, value_name = "LEVEL")]
    pub ci_level: f64,
}

impl ProbArgs {
    /// The probability-run settings; `with_pred` says the masks come from --pred.
    pub fn config(&self, with_pred: bool) -> Result<ProbConfig> {
        if !(self.threshold > 0.0 && self.threshold <= 1.0) {
            bail!("--threshold must be in (0, 1], not {}", self.threshold);
        }
        if !(self.ci_level > 0.0 && self.ci_level < 1.0) {
            bail!("--ci-level must be in (0, 1), not {}", self.ci_level);
        }
        if self.max_candidates == 0 {
            bail!("--max-candidates must be at least 1");
        }
        let defaults = CandidateOptions::default();
        Ok(ProbConfig {
            mode: self.candidates,
            options: CandidateOptions {
                max_candidates: self.max_candidates,
                min_voxels: self.candidate_min_voxels.unwrap_or(defaults.min_voxels),
                min_voxels_threshold: self.candidate_min_voxels.unwrap_or(defaults.min_voxels_threshold),
                ..defaults
            },
            score: self.candidate_score,
            allow_unmatched_overlap: !self.count_unmatched_overlap,
            mask_threshold: (!with_pred).then_some(self.threshold),
            bootstrap: BootstrapSettings {
                resamples: self.bootstrap,
                seed: self.seed,
                level: self.ci_level,
            },
            channel: self.prob_channel,
        })
    }
}
