//! Command-line front end. Each subcommand's file parses its flags into the
//! library's config, calls the library and prints; no scoring logic lives here.
//! Exit codes: 0 success, 2 bad usage or bad input (clap uses 2 for usage).

mod common;
mod compare;
mod label;
mod score;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "lesioneval",
    version,
    about = "Lesion-wise evaluation of 3-D segmentation models: connected components, lesion matching, TP/FP/FN tables",
    after_help = "Docs: README.md and docs/metrics.md. Exit codes: 0 ok, 2 bad usage or bad input."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score one model: per-case and total lesion counts (TP/FP/FN/GT) and rates.
    Score(score::ScoreArgs),
    /// Score several models against one ground truth: one row per model.
    Compare(compare::CompareArgs),
    /// Label the connected components (lesions) of one mask and report their statistics.
    Label(label::LabelArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Score(a) => score::run(a),
        Command::Compare(a) => compare::run(a),
        Command::Label(a) => label::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
