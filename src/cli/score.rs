//! `lesioneval score --gt GT --pred PRED`

use super::common::{EvalArgs, progress, warn_extra};
use anyhow::Result;
use clap::Args;
use lesioneval::{dataset, eval, report};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// Ground-truth mask file or folder of masks.
    #[arg(long)]
    pub gt: PathBuf,
    /// Predicted mask file or folder of masks.
    #[arg(long)]
    pub pred: PathBuf,
    #[command(flatten)]
    pub eval: EvalArgs,
}

pub fn run(a: ScoreArgs) -> Result<()> {
    let config = a.eval.config()?;
    a.eval.init_threads()?;
    let pairing = dataset::pair(
        &a.gt,
        std::slice::from_ref(&a.pred),
        a.eval.gt_suffix.as_deref(),
        a.eval.pred_suffix.as_deref(),
        config.missing,
    )?;
    warn_extra(&a.pred, &pairing.extra[0]);
    let timings = eval::Timings::default();
    let pb = progress(pairing.cases.len());
    let pred_name = a.pred.display().to_string();
    let models = eval::evaluate(
        &pairing.cases,
        std::slice::from_ref(&pred_name),
        std::slice::from_ref(&pred_name),
        &pairing.missing,
        &config,
        &timings,
        &|| pb.inc(1),
    )?;
    pb.finish_and_clear();
    let m = &models[0];
    let json = report::score_json(m, &config.record(), &a.gt.display().to_string());
    a.eval
        .emit(&a.eval.render(&report::cases_table(m)), &models, &json, &timings)
}
