//! Flags shared by `score` and `compare`, validated into an `EvalConfig`.

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lesioneval::dataset::{Missing, Pairing};
use lesioneval::eval::{EvalConfig, MinSize, ModelResult, Region, Timings, parse_labels};
use lesioneval::label::{Connectivity, Device};
use lesioneval::matching::{Assignment, Criterion};
use lesioneval::preset::Preset;
use lesioneval::report::{self, Format};
use lesioneval::shard::{self, Partial, ShardSpec};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// What happens to unmatched predictions that qualify with a GT lesion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UnmatchedOverlap {
    Fp,
    Ignore,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Every rule of a challenge at once: picai, anima (MSSEG), shifts, panoptica or brats2023 (docs/presets.md). The
    /// options below override single rules.
    #[arg(long, value_name = "NAME")]
    pub preset: Option<Preset>,
    /// Voxel connectivity that joins voxels into one lesion: 6, 18 or 26 [default: 26].
    #[arg(long)]
    pub connectivity: Option<Connectivity>,
    /// When a (GT, predicted) pair qualifies: iou:T, dice:T, coverage:T (fraction of the GT lesion covered) or any
    /// [default: iou:0.1].
    #[arg(long = "match", value_name = "RULE")]
    pub match_rule: Option<Criterion>,
    /// Qualify at score > T instead of score ≥ T.
    #[arg(long)]
    pub strict: bool,
    /// one-to-one (Hungarian on score+1, as picai_eval), many-to-one (every qualifying pair counts), greedy or
    /// max-score (panoptica's matchers), anima[:ALPHA,BETA,GAMMA] (MSSEG's detection test) [default: one-to-one].
    #[arg(long, value_name = "RULE")]
    pub assign: Option<Assignment>,
    /// Remove lesions smaller than this on both sides: N voxels, Xmm3 (≥ X) or >Xmm3 (> X, Anima's rule) [default: 0].
    #[arg(long, value_name = "SIZE")]
    pub min_size: Option<MinSize>,
    /// Unmatched predictions that qualify with some GT lesion: fp (count them) or ignore (neither TP nor FP, as
    /// picai_eval does) [default: fp].
    #[arg(long, value_name = "fp|ignore")]
    pub unmatched_overlap: Option<UnmatchedOverlap>,
    /// Label maps: score each of these label values separately (e.g. 1,2,3).
    #[arg(long, value_name = "L1,L2,…")]
    pub labels: Option<String>,
    /// Label maps: score the union of these labels as one region named NAME (repeatable, e.g. --region WT=1,2,3).
    #[arg(long = "region", value_name = "NAME=L1,L2,…")]
    pub regions: Vec<Region>,
    /// BraTS' rule: merge GT lesions whose K-fold 18-connected dilations touch; a prediction hits a lesion that
    /// its dilation meets (sets --assign dilated:K; brats2023 uses 3).
    #[arg(long, value_name = "K")]
    pub dilation: Option<u32>,
    /// Surface for the per-lesion HD95 and ASSD: voxels (surface voxels, MONAI) or surfels (area-weighted surface
    /// elements, DeepMind surface-distance; brats2023 uses it) [default: voxels].
    #[arg(long, value_name = "voxels|surfels")]
    pub surface: Option<lesioneval::metrics::surface::SurfaceRule>,
    /// Override --min-size for ground-truth lesions.
    #[arg(long, value_name = "SIZE")]
    pub min_size_gt: Option<MinSize>,
    /// Override --min-size for predicted lesions.
    #[arg(long, value_name = "SIZE")]
    pub min_size_pred: Option<MinSize>,
    /// Largest spacing/affine difference (mm) accepted between GT and prediction.
    #[arg(long, default_value_t = 1e-3, value_name = "MM")]
    pub geometry_tolerance: f64,
    /// Suffix removed from GT file names to get case ids (e.g. _seg).
    #[arg(long)]
    pub gt_suffix: Option<String>,
    /// Suffix removed from prediction file names to get case ids.
    #[arg(long)]
    pub pred_suffix: Option<String>,
    /// A GT case without prediction: error (list them all) or empty (score as an empty prediction).
    #[arg(long, default_value = "error")]
    pub missing: Missing,
    /// Table printed on stdout: md, csv or latex.
    #[arg(long, default_value = "md")]
    pub format: Format,
    /// Write cases.csv, lesions.csv and results.json into this folder.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Write results.json here too ('-' = stdout, replacing the table).
    #[arg(long, value_name = "PATH")]
    pub json: Option<String>,
    /// Print per-stage times (read, label, match, write) on stderr.
    #[arg(long)]
    pub timings: bool,
    /// Where to label: auto (a hardware GPU if present, else CPU), cpu, or gpu (any adapter; errors if none).
    #[arg(long, default_value = "auto")]
    pub device: Device,
    /// Worker threads (default: all cores; RAYON_NUM_THREADS also works).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Score only shard I of N (0-based; a case's shard is FNV-1a-64 of its id mod N) and write a partial
    /// results file for `lesioneval merge`.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<ShardSpec>,
    /// Also draw the figures of `lesioneval plot` into this folder.
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
    #[command(flatten)]
    pub plot_style: super::plot::PlotStyle,
}

impl EvalArgs {
    /// Output paths that cannot be written, found before any scoring rather
    /// than after it.
    pub fn check_destinations(&self) -> Result<()> {
        if self.plots.is_some() && self.shard.is_some() {
            // One shard's FROC and counts would read as the whole cohort's.
            anyhow::bail!("--plots needs the whole case set: merge the shards, then run lesioneval plot");
        }
        for (flag, dir) in [("--out", &self.out), ("--plots", &self.plots)] {
            if let Some(d) = dir
                && d.exists()
                && !d.is_dir()
            {
                anyhow::bail!("{flag} {}: is a file; {flag} names a folder", d.display());
            }
        }
        if let Some(p) = self.json.as_deref().filter(|p| *p != "-").map(Path::new) {
            if p.is_dir() {
                anyhow::bail!(
                    "--json {}: is a folder; --json names a file (or - for stdout)",
                    p.display()
                );
            }
            // --out and --plots are created by the run: a --json inside them is fine.
            let made = |d: &Path| [&self.out, &self.plots].iter().any(|o| o.as_deref() == Some(d));
            if let Some(parent) = p.parent().filter(|d| !d.as_os_str().is_empty())
                && !parent.is_dir()
                && !made(parent)
            {
                anyhow::bail!("--json {}: the folder {} does not exist", p.display(), parent.display());
            }
        }
        Ok(())
    }

    pub fn config(&self) -> Result<EvalConfig> {
        self.check_destinations()?;
        if !(self.geometry_tolerance >= 0.0 && self.geometry_tolerance.is_finite()) {
            anyhow::bail!("--geometry-tolerance must be a finite number ≥ 0");
        }
        let base = self.preset.map(Preset::rules).unwrap_or_default();
        if self.dilation.is_some() && self.assign.is_some() {
            anyhow::bail!("--dilation sets the assignment: give --dilation or --assign, not both");
        }
        let assignment = match self.dilation {
            Some(k) if k > 20 => anyhow::bail!("--dilation must be at most 20"),
            Some(iterations) => Assignment::Dilated { iterations },
            None => self.assign.unwrap_or(base.assignment),
        };
        // Options that the chosen assignment would silently not use are refused.
        let unused_match = self.match_rule.is_some() || self.strict;
        match assignment {
            Assignment::Dilated { .. } if unused_match || self.unmatched_overlap.is_some() => anyhow::bail!(
                "--match, --strict and --unmatched-overlap have no effect with BraTS' dilated matching \
                 (a prediction hits a lesion when it meets its dilation)"
            ),
            Assignment::Anima { .. } if unused_match => {
                anyhow::bail!("--match and --strict have no effect with --assign anima (its α/β/γ test decides)")
            }
            _ => {}
        }
        if self.plots.is_some() && !(1..=1200).contains(&self.plot_style.dpi) {
            anyhow::bail!("--dpi must be between 1 and 1200, not {}", self.plot_style.dpi);
        }
        let mut regions = self.regions()?;
        if regions.is_empty() {
            regions = base.regions.clone();
        }
        let mut criterion = self.match_rule.unwrap_or(base.criterion);
        criterion.strict |= self.strict;
        let min_size = self.min_size.unwrap_or(base.min_size);
        Ok(EvalConfig {
            connectivity: self.connectivity.unwrap_or(base.connectivity),
            criterion,
            assignment,
            min_size_gt: self
                .min_size_gt
                .or(self.min_size)
                .unwrap_or(base.min_size_gt.unwrap_or(min_size)),
            min_size_pred: self.min_size_pred.unwrap_or(min_size),
            ignore_unmatched_overlap: self
                .unmatched_overlap
                .map_or(base.ignore_unmatched_overlap, |u| u == UnmatchedOverlap::Ignore),
            preset: self.preset,
            surface: self.surface.unwrap_or(base.surface),
            regions,
            geometry_tolerance: self.geometry_tolerance,
            missing: self.missing,
            // Resolve once up front: a missing GPU with --device gpu fails before any work.
            device: self.device.resolve()?,
        })
    }

    /// `--labels` (one region per label, named by its value) then `--region`s, in the order given.
    pub fn regions(&self) -> Result<Vec<Region>> {
        let mut out: Vec<Region> = Vec::new();
        if let Some(list) = &self.labels {
            for l in parse_labels(list).map_err(|e| anyhow::anyhow!("--labels: {e}"))? {
                out.push(Region {
                    name: l.to_string(),
                    labels: vec![l],
                });
            }
        }
        out.extend(self.regions.iter().cloned());
        for (i, r) in out.iter().enumerate() {
            if out[..i].iter().any(|o| o.name == r.name) {
                anyhow::bail!("region {:?} is given twice", r.name);
            }
        }
        Ok(out)
    }

    /// Keeps this run's shard of the cases (all of them without --shard).
    pub fn apply_shard(&self, pairing: Pairing) -> (Pairing, Option<Partial>) {
        match self.shard {
            Some(s) => {
                let (p, partial) = shard::select(pairing, s);
                if p.cases.is_empty() {
                    eprintln!("warning: shard {s} holds none of the {} cases", partial.case_ids.len());
                }
                (p, Some(partial))
            }
            None => (pairing, None),
        }
    }

    /// Builds the global thread pool for --threads, once: `run` calls this
    /// before inference and `score` again, and rayon refuses a second build.
    pub fn init_threads(&mut self) -> Result<()> {
        if let Some(n) = self.threads.take() {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build_global()
                .context("cannot start the thread pool")?;
        }
        Ok(())
    }

    /// Prints `table` (unless JSON goes to stdout), writes --out and --json.
    pub fn emit(&self, table: &str, models: &[ModelResult], json: &str, timings: &Timings) -> Result<()> {
        if self.json.as_deref() != Some("-") {
            say(table)?;
        }
        // All of --out, --json and --plots, or none of them (io::all_or_nothing).
        Timings::time(&timings.write, || -> Result<()> {
            lesioneval::io::all_or_nothing(|| self.write_all(models, json))
        })?;
        // Printed once the files are in place: a failed run prints no results.
        if self.json.as_deref() == Some("-") {
            say(json)?;
        }
        if self.timings {
            eprintln!("{}", timings.line());
        }
        Ok(())
    }

    fn write_all(&self, models: &[ModelResult], json: &str) -> Result<()> {
        if let Some(dir) = &self.out {
            report::write_outputs(dir, models, json)?;
        }
        if let Some(p) = self.json.as_deref().filter(|p| *p != "-") {
            report::write_text(Path::new(p), json)?;
        }
        if let Some(dir) = &self.plots {
            // Drawn from the JSON just written, so they equal `lesioneval plot` on it.
            let label = self
                .out
                .as_ref()
                .map_or(PathBuf::from("(this run)"), |d| d.join("results.json"));
            let file = lesioneval::results::parse(json, &label)?;
            super::plot::draw(std::slice::from_ref(&file), dir, &self.plot_style)?;
        }
        Ok(())
    }

    pub fn render(&self, t: &report::Table) -> String {
        t.render(self.format)
    }
}

/// A progress bar on stderr when it is a terminal, hidden otherwise.
pub fn progress(len: usize) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let pb = ProgressBar::with_draw_target(Some(len as u64), target);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} cases {elapsed_precise} (eta {eta})") {
        pb.set_style(style);
    }
    pb
}

/// Scores every case of every model with a progress bar; returns the results and stage times.
pub fn evaluate_with_progress(
    cases: &[lesioneval::dataset::Case],
    names: &[String],
    paths: &[String],
    missing: &[Vec<String>],
    config: &EvalConfig,
) -> Result<(Vec<ModelResult>, Timings)> {
    let timings = Timings::default();
    let pb = progress(cases.len());
    let models = lesioneval::eval::evaluate(cases, names, paths, missing, config, &timings, &|| pb.inc(1))?;
    pb.finish_and_clear();
    Ok((models, timings))
}

/// Warnings for predictions that match no GT case.
pub fn warn_extra(pred: &Path, extra: &[String]) {
    if !extra.is_empty() {
        eprintln!(
            "warning: {}: {} predictions have no ground truth and are ignored: {}",
            pred.display(),
            extra.len(),
            extra.join(", ")
        );
    }
}

/// Writes `text` on stdout. A reader that went away (`| head`) is not an
/// error: what is left to do (the files under --out) still gets done, where
/// `print!` would panic.
pub fn say(text: &str) -> Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("cannot write to stdout"))
        }
        _ => Ok(()),
    }
}
