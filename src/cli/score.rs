//! `lesioneval score --gt GT --pred PRED [--baseline baseline.json]`

use super::check::{Baseline, GateArgs, gate};
use super::common::{EvalArgs, evaluate_with_progress, progress, warn_extra};
use super::prob::ProbArgs;
use anyhow::{Result, bail};
use clap::Args;
use lesioneval::eval::Timings;
use lesioneval::{dataset, report, results};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// Ground-truth mask file or folder of masks.
    #[arg(long)]
    pub gt: PathBuf,
    /// Predicted mask file or folder of masks (optional with --prob).
    #[arg(long, required_unless_present = "prob")]
    pub pred: Option<PathBuf>,
    #[command(flatten)]
    pub eval: EvalArgs,
    #[command(flatten)]
    pub prob: ProbArgs,
    /// Then gate the results against this baseline results.json, as `lesioneval check` does (exit 1 on a regression).
    #[arg(long, value_name = "PATH")]
    pub baseline: Option<PathBuf>,
    #[command(flatten)]
    pub gate: GateArgs,
}

pub fn run(mut a: ScoreArgs) -> Result<ExitCode> {
    let config = a.eval.config()?;
    if a.baseline.is_some() && a.eval.shard.is_some() {
        bail!("--baseline needs the whole case set: merge the shards, then run lesioneval check");
    }
    if a.baseline.is_some() && a.eval.json.as_deref() == Some("-") {
        bail!("--json - and --baseline both print on stdout: write the JSON to a file instead");
    }
    // Read before anything is written: the baseline may lie in --out.
    let baseline = a.baseline.as_ref().map(|b| Baseline::read(&a.gate, b)).transpose()?;
    a.eval.init_threads()?;
    // Each case's inputs: [pred], [prob] or [pred, prob].
    let mut inputs: Vec<(&PathBuf, Option<&str>)> = Vec::new();
    if let Some(pred) = &a.pred {
        inputs.push((pred, a.eval.pred_suffix.as_deref()));
    }
    if let Some(prob) = &a.prob.prob {
        inputs.push((prob, a.prob.prob_suffix.as_deref()));
    }
    let mut pairing: Option<dataset::Pairing> = None;
    for (path, suffix) in &inputs {
        let p = dataset::pair(
            &a.gt,
            std::slice::from_ref(*path),
            a.eval.gt_suffix.as_deref(),
            *suffix,
            config.missing,
        )?;
        warn_extra(path, &p.extra[0]);
        pairing = Some(match pairing {
            None => p,
            // Both pairings list the same GT cases in the same order.
            Some(mut first) => {
                for (c, other) in first.cases.iter_mut().zip(p.cases) {
                    c.preds.extend(other.preds);
                }
                first
            }
        });
    }
    let Some(pairing) = pairing else {
        bail!("give --pred, --prob or both");
    };
    let (pairing, partial) = a.eval.apply_shard(pairing);
    // A case missing its mask or its map (`--missing empty`) is listed once, in case order.
    let missing: Vec<String> = pairing
        .cases
        .iter()
        .filter(|c| c.preds.iter().any(Option::is_none))
        .map(|c| c.id.clone())
        .collect();
    let pred_name = inputs[0].0.display().to_string();
    if a.prob.prob.is_some() && matches!(config.assignment, lesioneval::matching::Assignment::Dilated { .. }) {
        bail!("--prob with BraTS' dilated matching (--preset brats2023, --dilation) is not supported");
    }
    if a.prob.prob.is_some() && !config.regions.is_empty() {
        bail!("--prob with --labels/--region is not supported: probability maps are scored as one foreground");
    }
    let (models, timings, record) = match &a.prob.prob {
        None => {
            let (models, timings) = evaluate_with_progress(
                &pairing.cases,
                std::slice::from_ref(&pred_name),
                std::slice::from_ref(&pred_name),
                std::slice::from_ref(&missing),
                &config,
            )?;
            (models, timings, config.record())
        }
        Some(_) => {
            let prob = a.prob.config(a.pred.is_some())?;
            let timings = Timings::default();
            let pb = progress(pairing.cases.len());
            let model = lesioneval::prob::run::evaluate(
                &pairing.cases,
                pred_name.clone(),
                missing,
                &config,
                &prob,
                &timings,
                &|| pb.inc(1),
            )?;
            pb.finish_and_clear();
            let mut record = config.record();
            record.prob = Some(prob.record());
            (vec![model], timings, record)
        }
    };
    let m = &models[0];
    let gt_name = a.gt.display().to_string();
    // With label regions there is one result per region: written like compare's, one entry each.
    let (json, mut table) = if config.regions.is_empty() {
        (
            report::score_json(m, &record, &gt_name, partial.as_ref()),
            a.eval.render(&report::cases_table(m)),
        )
    } else {
        (
            report::compare_json(&models, &record, &gt_name, partial.as_ref()),
            a.eval.render(&report::region_cases_table(&models)),
        )
    };
    // CSV on stdout stays one table (its rows would not share columns): the
    // detection table is in detection.csv under --out, and in the JSON.
    if let Some(d) = &m.detection
        && a.eval.format != report::Format::Csv
    {
        table.push('\n');
        table.push_str(&a.eval.render(&report::detection_table(d)));
    }
    a.eval.emit(&table, &models, &json, &timings)?;
    let Some(baseline) = baseline else {
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
