//! `lesioneval run --model M --images DIR --gt DIR --out DIR`: infer, then score
//! the probability maps as `score --prob` does (tables, FROC), and draw the
//! figures into `<out>/plots` (or `--plots DIR`).

use super::check::GateArgs;
use super::common::EvalArgs;
use super::infer::ModelArgs;
use super::prob::ProbArgs;
use super::score::{self, ScoreArgs};
use anyhow::{Result, bail};
use clap::Args;
use lesioneval::infer::pipeline::MaskMode;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub net: ModelArgs,
    /// Ground-truth mask file or folder (case ids as the images', without the _0000 channel suffix).
    #[arg(long)]
    pub gt: PathBuf,
    #[command(flatten)]
    pub eval: EvalArgs,
    #[command(flatten)]
    pub prob: ProbArgs,
    /// Then gate the results against this baseline results.json with its rules file (<stem>.gate.toml next to
    /// it) or the default rules (exit 1 on a regression); `lesioneval check` takes per-metric limits.
    #[arg(long, value_name = "PATH")]
    pub baseline: Option<PathBuf>,
}

pub fn run(mut a: RunArgs) -> Result<ExitCode> {
    let Some(out) = a.eval.out.clone() else {
        bail!("run needs --out DIR: the probability maps go to DIR/probs, the tables next to them");
    };
    if a.prob.prob.is_some() || a.prob.prob_channel.is_some() {
        bail!(
            "run writes the probability maps itself (into --out DIR/probs, 3-D, of --class); drop --prob and --prob-channel"
        );
    }
    if a.eval.shard.is_some() {
        bail!("--shard is not supported by run; infer all cases, then score the shards");
    }
    // Settings and destinations are checked before the model runs, not after.
    a.eval.config()?;
    a.eval.init_threads()?;
    // A run is a report: figures go to <out>/plots unless --plots says elsewhere.
    if a.eval.plots.is_none() {
        a.eval.plots = Some(out.join("plots"));
    }
    let probs = out.join("probs");
    a.net.infer_all(a.eval.device, &probs, MaskMode::None, a.eval.timings)?;
    let mut prob = a.prob;
    prob.prob = Some(probs);
    score::run(ScoreArgs {
        gt: a.gt,
        pred: None,
        eval: a.eval,
        prob,
        baseline: a.baseline,
        gate: GateArgs::default(),
    })
}
