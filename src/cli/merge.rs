//! `lesioneval merge part-*.json --out results.json`: rebuild an unsharded run
//! from the partial results of `score/compare --shard I/N`.

use anyhow::{Context, Result};
use clap::Args;
use lesioneval::{report, results, shard};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Partial results: results.json files, or the --out folders of the shard runs (then lesions.csv merges too).
    #[arg(required = true, value_name = "PART")]
    pub parts: Vec<PathBuf>,
    /// A .json file for the merged results.json, or a folder for results.json, cases.csv (summary.csv) and
    /// lesions.csv (when every part is a folder that has one).
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
}

pub fn run(a: MergeArgs) -> Result<()> {
    let mut files = Vec::with_capacity(a.parts.len());
    let mut lesions = Vec::new();
    for p in &a.parts {
        let json = if p.is_dir() { p.join("results.json") } else { p.clone() };
        files.push(results::read(&json)?);
        let csv = p.join("lesions.csv");
        if p.is_dir() && csv.is_file() {
            let text = std::fs::read_to_string(&csv).with_context(|| format!("cannot read {}", csv.display()))?;
            lesions.push((csv, text));
        }
    }
    let merged = shard::merge(&files)?;
    let json = merged.json();
    let cases = merged.models.first().map_or(0, |m| m.cases.len());
    if a.out.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
        report::write_text(&a.out, &json)?;
    } else {
        let lesions_csv = if lesions.len() == a.parts.len() {
            Some(shard::merge_lesions_csv(&merged, &lesions)?)
        } else {
            eprintln!(
                "note: lesions.csv not written: give the shards' --out folders (each with lesions.csv) to merge it"
            );
            None
        };
        lesioneval::io::all_or_nothing(|| report::write_tables(&a.out, &merged.models, &json, lesions_csv.as_deref()))?;
    }
    eprintln!(
        "merged {} shard(s), {cases} case(s) → {}",
        merged.shard_count,
        a.out.display()
    );
    Ok(())
}
