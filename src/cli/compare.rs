//! `lesioneval compare --gt GT PRED_A PRED_B ...`

use super::common::{EvalArgs, evaluate_with_progress, warn_extra};
use anyhow::{Result, bail};
use clap::Args;
use lesioneval::{dataset, report};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Ground-truth mask file or folder (labelled once, shared by all models).
    #[arg(long)]
    pub gt: PathBuf,
    /// One prediction file or folder per model.
    #[arg(required = true, value_name = "PRED")]
    pub preds: Vec<PathBuf>,
    /// Model names, in the order of the predictions (default: folder names).
    #[arg(long = "name", value_name = "NAME")]
    pub names: Vec<String>,
    #[command(flatten)]
    pub eval: EvalArgs,
}

pub fn run(mut a: CompareArgs) -> Result<()> {
    let config = a.eval.config()?;
    if !a.names.is_empty() && a.names.len() != a.preds.len() {
        bail!(
            "{} --name values for {} prediction folders; give one per folder or none",
            a.names.len(),
            a.preds.len()
        );
    }
    let names = if a.names.is_empty() {
        default_names(&a.preds)
    } else {
        a.names.clone()
    };
    // `check --model NAME` and `plot` pick a model by its name.
    if let Some(dup) = names
        .iter()
        .enumerate()
        .find_map(|(i, n)| names[..i].contains(n).then_some(n))
    {
        bail!("two models are named {dup:?}; give each a distinct --name");
    }
    a.eval.init_threads()?;
    let pairing = dataset::pair(
        &a.gt,
        &a.preds,
        a.eval.gt_suffix.as_deref(),
        a.eval.pred_suffix.as_deref(),
        config.missing,
    )?;
    for (p, extra) in a.preds.iter().zip(&pairing.extra) {
        warn_extra(p, extra);
    }
    let (pairing, partial) = a.eval.apply_shard(pairing);
    let paths: Vec<String> = a.preds.iter().map(|p| p.display().to_string()).collect();
    let (models, timings) = evaluate_with_progress(&pairing.cases, &names, &paths, &pairing.missing, &config)?;
    let json = report::compare_json(&models, &config.record(), &a.gt.display().to_string(), partial.as_ref());
    a.eval.emit(
        &a.eval.render(&report::compare_table(&models)),
        &models,
        &json,
        &timings,
    )
}

/// Folder (or file) names; the full path where two names collide.
fn default_names(preds: &[PathBuf]) -> Vec<String> {
    let short: Vec<String> = preds
        .iter()
        .map(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            dataset::case_id(p, None).unwrap_or(name)
        })
        .collect();
    short
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if s.is_empty() || short.iter().filter(|t| *t == s).count() > 1 {
                preds[i].display().to_string()
            } else {
                s.clone()
            }
        })
        .collect()
}
