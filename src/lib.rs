//! lesioneval: lesion-wise evaluation of 3-D segmentation models.
//!
//! Data flow (one direction): [`io`] reads NIfTI volumes → [`label`] splits
//! masks into connected components → [`matching`] builds one overlap table per
//! case and assigns matches → [`metrics`] counts TP/FP/FN and rates →
//! [`report`] writes tables. [`eval`] drives it over folders ([`dataset`]).
//! [`infer`] runs an ONNX segmentation model over images (sliding window,
//! CPU or wgpu) to make the probability maps that are then scored.
//! Around a run: [`shard`] splits the cases over machines and merges the
//! parts back; [`results`] reads results.json; [`gate`] compares it with a
//! baseline for CI.
//!
//! ```no_run
//! use lesioneval::{eval, label::Connectivity};
//! let t = eval::Timings::default();
//! let gt = eval::read_and_label("gt.nii.gz".as_ref(), Connectivity::TwentySix, Default::default(), &t)?;
//! let pred = eval::read_and_label("pred.nii.gz".as_ref(), Connectivity::TwentySix, Default::default(), &t)?;
//! let r = eval::score_case("case", &gt, &pred, &eval::EvalConfig::default(), false);
//! println!("TP {} FP {} FN {}", r.counts.tp, r.counts.fp, r.counts.fn_);
//! # Ok::<(), lesioneval::Error>(())
//! ```

pub mod dataset;
pub mod error;
pub mod eval;
pub mod gate;
pub mod gpu;
pub mod infer;
pub mod io;
pub mod label;
pub mod matching;
pub mod metrics;
mod pages;
pub mod plot;
pub mod preset;
pub mod prob;
pub mod report;
pub mod results;
pub mod shard;

pub use error::{Error, Result};

/// Version written into every results file.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");
/// results.json layout version; bump on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;
