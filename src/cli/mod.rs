//! Command-line front end. Each subcommand's file parses its flags into the
//! library's config, calls the library and prints; no scoring logic lives here.
//! Exit codes: 0 success, 1 a `check` regression, 2 bad usage or bad input
//! (clap uses 2 for usage).

mod check;
mod common;
mod compare;
mod infer;
mod label;
mod merge;
mod plot;
mod prob;
mod run;
mod score;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "lesioneval",
    version,
    about = "Lesion-wise evaluation of 3-D segmentation models: connected components, lesion matching, TP/FP/FN tables",
    after_help = "Docs: README.md, docs/metrics.md, docs/inference.md, docs/gallery.md, docs/ci.md, docs/cluster.md. Exit codes: 0 ok, 1 regression (check), 2 bad usage, bad input or results that cannot be compared."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score one model: per-case and total lesion counts (TP/FP/FN/GT) and rates.
    Score(Box<score::ScoreArgs>),
    /// Score several models against one ground truth: one row per model.
    Compare(Box<compare::CompareArgs>),
    /// Label the connected components (lesions) of one mask and report their statistics.
    Label(label::LabelArgs),
    /// CI gate: compare results.json with a baseline; exit 0 pass, 1 regression, 2 cannot compare.
    Check(check::CheckArgs),
    /// Combine the partial results of `score/compare --shard I/N` into what one unsharded run writes.
    Merge(merge::MergeArgs),
    /// Figures (FROC, PR, TP/FP/F1 vs threshold, sensitivity by lesion size, TP/FP/FN bars, lesion counts)
    /// from one or more results.json files.
    Plot(plot::PlotArgs),
    /// Run an ONNX segmentation model over images (sliding window, blended overlapping patches) and write
    /// probability maps.
    Infer(Box<infer::InferArgs>),
    /// Infer, then score the probability maps against the ground truth (tables, FROC, plots) in one go.
    // `run` writes the probability maps itself, and its report needs a folder.
    #[command(
        mut_arg("prob", |a| a.hide(true)),
        mut_arg("prob_suffix", |a| a.hide(true)),
        mut_arg("prob_channel", |a| a.hide(true)),
        mut_arg("out", |a| a.required(true).help("Write the probability maps (probs/), cases.csv, lesions.csv, results.json and the figures (plots/) into this folder")),
    )]
    Run(Box<run::RunArgs>),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Score(a) => score::run(*a),
        Command::Compare(a) => compare::run(*a).map(|()| ExitCode::SUCCESS),
        Command::Label(a) => label::run(a).map(|()| ExitCode::SUCCESS),
        Command::Check(a) => check::run(a),
        Command::Merge(a) => merge::run(a).map(|()| ExitCode::SUCCESS),
        Command::Plot(a) => plot::run(a).map(|()| ExitCode::SUCCESS),
        Command::Infer(a) => infer::run(*a).map(|()| ExitCode::SUCCESS),
        Command::Run(a) => run::run(*a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
