//! `lesioneval score --gt GT --pred PRED [--baseline baseline.json]`

use super::check::{GateArgs, gate};
use super::common::{EvalArgs, evaluate_with_progress, warn_extra};
use anyhow::{Result, bail};
use clap::Args;
use lesioneval::{dataset, report, results};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
    /// Then gate the results against this baseline results.json, as `lesioneval check` does (exit 1 on a regression).
    #[arg(long, value_name = "PATH")]
    pub baseline: Option<PathBuf>,
    #[command(flatten)]
    pub gate: GateArgs,
}

pub fn run(a: ScoreArgs) -> Result<ExitCode> {
    let config = a.eval.config()?;
    if a.baseline.is_some() && a.eval.shard.is_some() {
        bail!("--baseline needs the whole case set: merge the shards, then run lesioneval check");
    }
    if a.baseline.is_some() && a.eval.json.as_deref() == Some("-") {
        bail!("--json - and --baseline both print on stdout: write the JSON to a file instead");
    }
    a.eval.init_threads()?;
    let pairing = dataset::pair(
        &a.gt,
        std::slice::from_ref(&a.pred),
        a.eval.gt_suffix.as_deref(),
        a.eval.pred_suffix.as_deref(),
        config.missing,
    )?;
    warn_extra(&a.pred, &pairing.extra[0]);
    let (pairing, partial) = a.eval.apply_shard(pairing);
    let pred_name = a.pred.display().to_string();
    let (models, timings) = evaluate_with_progress(
        &pairing.cases,
        std::slice::from_ref(&pred_name),
        std::slice::from_ref(&pred_name),
        &pairing.missing,
        &config,
    )?;
    let m = &models[0];
    let json = report::score_json(m, &config.record(), &a.gt.display().to_string(), partial.as_ref());
    a.eval
        .emit(&a.eval.render(&report::cases_table(m)), &models, &json, &timings)?;
    let Some(baseline) = &a.baseline else {
        return Ok(ExitCode::SUCCESS);
    };
    // Name the current results by the file they went to, if any.
    let label = match (&a.eval.out, a.eval.json.as_deref()) {
        (Some(dir), _) => dir.join("results.json"),
        (None, Some(p)) if p != "-" => PathBuf::from(p),
        _ => PathBuf::from("(this run)"),
    };
    let current = results::parse(&json, Path::new(&label))?;
    gate(&a.gate, baseline, &current, &json)
}
