//! `lesioneval check --baseline baseline.json results.json`: the CI gate.
//! Exit 0 pass, 1 regression, 2 cannot compare (bad file, other settings or case set).

use anyhow::{Context, Result, bail};
use clap::Args;
use lesioneval::gate::{self, Direction, Rules, Scope};
use lesioneval::report;
use lesioneval::results::{self, ResultsFile};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The baseline results.json (e.g. committed next to the CI config).
    #[arg(long, value_name = "PATH")]
    pub baseline: PathBuf,
    /// The current results.json.
    #[arg(value_name = "RESULTS")]
    pub results: PathBuf,
    #[command(flatten)]
    pub gate: GateArgs,
}

/// Gate options shared by `check` and `score --baseline`.
#[derive(Args, Debug, Default)]
pub struct GateArgs {
    /// Rules file (TOML). Default: <baseline stem>.gate.toml next to the baseline, if it exists.
    #[arg(long, value_name = "PATH", requires = "baseline")]
    pub rules: Option<PathBuf>,
    /// Largest allowed drop of a total: METRIC=LIMIT (0.02 absolute, 2% of the baseline, off). Repeatable.
    #[arg(long, value_name = "METRIC=LIMIT", requires = "baseline")]
    pub max_drop: Vec<String>,
    /// Largest allowed rise of a total, e.g. fp=10% or fn=3. Repeatable.
    #[arg(long, value_name = "METRIC=LIMIT", requires = "baseline")]
    pub max_rise: Vec<String>,
    /// Largest allowed drop in any single case, e.g. f1=0.2. Repeatable.
    #[arg(long, value_name = "METRIC=LIMIT", requires = "baseline")]
    pub per_case_max_drop: Vec<String>,
    /// Largest allowed rise in any single case, e.g. fp=3. Repeatable.
    #[arg(long, value_name = "METRIC=LIMIT", requires = "baseline")]
    pub per_case_max_rise: Vec<String>,
    /// When the case sets differ, compare the common cases (listing new and missing ones) instead of exiting 2.
    #[arg(long, requires = "baseline")]
    pub allow_case_changes: bool,
    /// Which model of a `compare` results file to gate (by name or prediction path).
    #[arg(long, value_name = "NAME", requires = "baseline")]
    pub model: Option<String>,
    /// Also write the Markdown report to this file (it is always printed, and appended to $GITHUB_STEP_SUMMARY).
    #[arg(long, value_name = "PATH", requires = "baseline")]
    pub report: Option<PathBuf>,
    /// Write the current results as the new baseline (atomically) and exit 0, after reporting the comparison.
    #[arg(long, requires = "baseline")]
    pub update_baseline: bool,
}

pub fn run(a: CheckArgs) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&a.results).with_context(|| format!("cannot read {}", a.results.display()))?;
    let current = results::parse(&text, &a.results)?;
    let baseline = Baseline::read(&a.gate, &a.baseline)?;
    gate(&a.gate, baseline, &current, &text)
}

/// The baseline side of a gate: its rules and its file, read before the
/// current results are written. A baseline inside `--out` (or at `--json`)
/// would otherwise be replaced by the current results first, and the gate
/// would compare them with themselves.
pub struct Baseline {
    path: PathBuf,
    opts: gate::Options,
    /// None when `--update-baseline` is to create it.
    file: Option<lesioneval::Result<ResultsFile>>,
}

impl Baseline {
    pub fn read(g: &GateArgs, path: &Path) -> Result<Baseline> {
        let opts = options(g, path)?;
        let file = (!g.update_baseline || path.exists()).then(|| results::read(path));
        Ok(Baseline {
            path: path.to_path_buf(),
            opts,
            file,
        })
    }
}

/// The rules: defaults, then the rules file, then the flags (each per metric).
fn options(g: &GateArgs, baseline: &Path) -> Result<gate::Options> {
    let mut rules = Rules::default();
    let mut allow = None;
    let file = match &g.rules {
        Some(p) => Some(p.clone()),
        None => {
            let stem = baseline.file_stem().map(|s| s.to_string_lossy().into_owned());
            stem.map(|s| baseline.with_file_name(format!("{s}.gate.toml")))
                .filter(|p| p.is_file())
        }
    };
    if let Some(p) = &file {
        let text = std::fs::read_to_string(p).with_context(|| format!("cannot read rules file {}", p.display()))?;
        allow = rules.apply_toml(&text, p)?;
    }
    let flags = [
        (Scope::Total, Direction::Drop, &g.max_drop, "--max-drop"),
        (Scope::Total, Direction::Rise, &g.max_rise, "--max-rise"),
        (
            Scope::PerCase,
            Direction::Drop,
            &g.per_case_max_drop,
            "--per-case-max-drop",
        ),
        (
            Scope::PerCase,
            Direction::Rise,
            &g.per_case_max_rise,
            "--per-case-max-rise",
        ),
    ];
    for (scope, dir, specs, flag) in flags {
        for spec in specs {
            if let Err(e) = rules.set(scope, dir, spec) {
                bail!("{flag} {spec}: {e}");
            }
        }
    }
    Ok(gate::Options {
        rules,
        allow_case_changes: g.allow_case_changes || allow.unwrap_or(false),
        model: g.model.clone(),
    })
}

/// Compares `current` (whose file text is `current_text`) with the baseline,
/// prints and files the report, and returns the exit code.
pub fn gate(g: &GateArgs, b: Baseline, current: &ResultsFile, current_text: &str) -> Result<ExitCode> {
    let baseline = b.path.as_path();
    if let Some(s) = current.shard {
        bail!(
            "{} is shard {s} of a sharded run: merge the shards first (lesioneval merge)",
            current.path.display()
        );
    }
    let Some(file) = b.file else {
        report::write_text(baseline, current_text)?;
        eprintln!("baseline created: {}", baseline.display());
        return Ok(ExitCode::SUCCESS);
    };
    let compared = file.and_then(|f| gate::compare(&f, current, &b.opts));
    let outcome = match compared {
        Ok(o) => o,
        Err(e) if g.update_baseline => {
            eprintln!("note: the old baseline was not comparable ({e})");
            report::write_text(baseline, current_text)?;
            eprintln!("baseline updated: {}", baseline.display());
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => {
            let md = format!("## lesioneval check: ⚠️ cannot compare\n\n{e}\n");
            super::common::say(&md)?;
            file_report(g, &md)?;
            return Err(e.into());
        }
    };
    let md = outcome.markdown(&baseline.display().to_string(), &current.path.display().to_string());
    super::common::say(&md)?;
    file_report(g, &md)?;
    eprintln!("{}", outcome.summary_line());
    if g.update_baseline {
        report::write_text(baseline, current_text)?;
        eprintln!("baseline updated: {}", baseline.display());
        return Ok(ExitCode::SUCCESS);
    }
    Ok(if outcome.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Writes the report to --report and appends it to $GITHUB_STEP_SUMMARY.
fn file_report(g: &GateArgs, md: &str) -> Result<()> {
    if let Some(p) = &g.report {
        report::write_text(p, md)?;
    }
    if let Some(p) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .with_context(|| format!("cannot open GITHUB_STEP_SUMMARY {}", p.display()))?;
        writeln!(f, "{md}").with_context(|| format!("cannot write GITHUB_STEP_SUMMARY {}", p.display()))?;
    }
    Ok(())
}
