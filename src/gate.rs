//! The CI regression gate: compare a results.json with a baseline under
//! configurable rules, and explain the verdict in Markdown.
//!
//! A rule limits how far one metric may move the wrong way, on the totals or
//! on every case: `max_drop f1 = 0.01` fails when F1 falls by more than 0.01
//! (absolute), `max_rise fp = "5%"` when FP grows by more than 5 % of the
//! baseline. Results scored with other settings, or on another case set, are
//! refused ([`Error::Incomparable`]) rather than compared.
//!
//! Defaults: total F1, recall and precision may drop by at most 0.01 and
//! total FP may rise by at most 5 %; no per-case rule.

use crate::error::{Error, Result};
use crate::metrics::{Counts, Macro, Rates};
use crate::results::{ModelRecord, ResultsFile, config_differences};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

/// Slack for float noise, so a drop of exactly the limit passes
/// (0.86 − 0.85 is 0.01000000000000001 in f64).
const EPS: f64 = 1e-9;

/// A number the gate can watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    Precision,
    Recall,
    F1,
    Dice,
    Tp,
    Fp,
    Fn,
    TpPred,
    Pred,
    MeanIou,
    MacroPrecision,
    MacroRecall,
    MacroF1,
    MacroDice,
}

impl Metric {
    pub const ALL: [Metric; 14] = [
        Metric::Precision,
        Metric::Recall,
        Metric::F1,
        Metric::Dice,
        Metric::Tp,
        Metric::Fp,
        Metric::Fn,
        Metric::TpPred,
        Metric::Pred,
        Metric::MeanIou,
        Metric::MacroPrecision,
        Metric::MacroRecall,
        Metric::MacroF1,
        Metric::MacroDice,
    ];

    /// The key used in flags, TOML and messages (results.json's names).
    pub fn name(self) -> &'static str {
        match self {
            Metric::Precision => "precision",
            Metric::Recall => "recall",
            Metric::F1 => "f1",
            Metric::Dice => "dice",
            Metric::Tp => "tp",
            Metric::Fp => "fp",
            Metric::Fn => "fn",
            Metric::TpPred => "tp_pred",
            Metric::Pred => "pred",
            Metric::MeanIou => "mean_iou",
            Metric::MacroPrecision => "macro_precision",
            Metric::MacroRecall => "macro_recall",
            Metric::MacroF1 => "macro_f1",
            Metric::MacroDice => "macro_dice",
        }
    }

    /// Counts print as integers, rates with four decimals.
    pub fn is_count(self) -> bool {
        matches!(
            self,
            Metric::Tp | Metric::Fp | Metric::Fn | Metric::TpPred | Metric::Pred
        )
    }

    fn is_macro(self) -> bool {
        matches!(
            self,
            Metric::MacroPrecision | Metric::MacroRecall | Metric::MacroF1 | Metric::MacroDice
        )
    }
}

impl std::str::FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Metric::ALL.into_iter().find(|m| m.name() == s.trim()).ok_or_else(|| {
            let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
            format!("unknown metric {s:?} (one of {})", names.join(", "))
        })
    }
}

/// Which way a metric must not move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    Drop,
    Rise,
}

/// Totals, or every case on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Total,
    PerCase,
}

/// How far a metric may move: absolute, or a fraction of the baseline value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    Abs(f64),
    /// 0.05 for "5%". A baseline of 0 allows no move at all.
    Rel(f64),
}

impl Limit {
    fn allowed(self, baseline: f64) -> f64 {
        match self {
            Limit::Abs(x) => x,
            Limit::Rel(f) => f * baseline.abs(),
        }
    }

    /// Parses `0.02`, `3`, `5%`; `off`/`none` (→ None) removes a rule.
    pub fn parse(s: &str) -> std::result::Result<Option<Limit>, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("off") || t.eq_ignore_ascii_case("none") {
            return Ok(None);
        }
        let (num, rel) = match t.strip_suffix('%') {
            Some(n) => (n.trim(), true),
            None => (t, false),
        };
        let v: f64 = num
            .parse()
            .map_err(|_| format!("invalid limit {s:?} (expected a number like 0.02, a percentage like 5%, or off)"))?;
        if !v.is_finite() || v < 0.0 {
            return Err(format!("invalid limit {s:?}: must be a finite number ≥ 0"));
        }
        Ok(Some(if rel { Limit::Rel(v / 100.0) } else { Limit::Abs(v) }))
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Limit::Abs(x) => write!(f, "{x}"),
            Limit::Rel(x) => write!(f, "{} %", crate::report::percent(*x)),
        }
    }
}

/// The rule set: at most one limit per (scope, direction, metric).
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    limits: BTreeMap<(Scope, Direction, Metric), Limit>,
}

impl Default for Rules {
    fn default() -> Self {
        let mut limits = BTreeMap::new();
        for m in [Metric::F1, Metric::Recall, Metric::Precision] {
            limits.insert((Scope::Total, Direction::Drop, m), Limit::Abs(0.01));
        }
        limits.insert((Scope::Total, Direction::Rise, Metric::Fp), Limit::Rel(0.05));
        Rules { limits }
    }
}

/// The TOML rules file (`<baseline stem>.gate.toml` or `--rules`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesToml {
    #[serde(default)]
    max_drop: BTreeMap<String, TomlLimit>,
    #[serde(default)]
    max_rise: BTreeMap<String, TomlLimit>,
    #[serde(default)]
    per_case_max_drop: BTreeMap<String, TomlLimit>,
    #[serde(default)]
    per_case_max_rise: BTreeMap<String, TomlLimit>,
    #[serde(default)]
    allow_case_changes: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TomlLimit {
    Num(f64),
    Text(String),
}

impl Rules {
    /// No rules at all (every metric is only reported).
    pub fn none() -> Self {
        Rules {
            limits: BTreeMap::new(),
        }
    }

    /// Sets (or with `off`, removes) one rule from `METRIC=LIMIT`.
    pub fn set(&mut self, scope: Scope, dir: Direction, spec: &str) -> std::result::Result<(), String> {
        let (m, l) = spec
            .split_once('=')
            .ok_or_else(|| format!("invalid rule {spec:?}: expected METRIC=LIMIT, e.g. f1=0.02 or fp=10%"))?;
        self.set_parsed(scope, dir, m, Limit::parse(l)?)
    }

    fn set_parsed(
        &mut self,
        scope: Scope,
        dir: Direction,
        metric: &str,
        limit: Option<Limit>,
    ) -> std::result::Result<(), String> {
        let metric: Metric = metric.parse()?;
        if scope == Scope::PerCase && metric.is_macro() {
            return Err(format!("{} has no per-case value", metric.name()));
        }
        match limit {
            Some(l) => self.limits.insert((scope, dir, metric), l),
            None => self.limits.remove(&(scope, dir, metric)),
        };
        Ok(())
    }

    /// Applies a TOML rules file over these rules (per metric; `"off"` removes
    /// one). Returns its `allow_case_changes` if it sets it.
    pub fn apply_toml(&mut self, text: &str, path: &Path) -> Result<Option<bool>> {
        let bad = |msg: String| Error::input(path, msg);
        let doc: RulesToml = toml::from_str(text).map_err(|e| bad(format!("invalid rules file: {e}")))?;
        let tables = [
            (Scope::Total, Direction::Drop, &doc.max_drop, "max_drop"),
            (Scope::Total, Direction::Rise, &doc.max_rise, "max_rise"),
            (
                Scope::PerCase,
                Direction::Drop,
                &doc.per_case_max_drop,
                "per_case_max_drop",
            ),
            (
                Scope::PerCase,
                Direction::Rise,
                &doc.per_case_max_rise,
                "per_case_max_rise",
            ),
        ];
        for (scope, dir, table, name) in tables {
            for (metric, v) in table {
                let limit = match v {
                    TomlLimit::Num(x) => Limit::parse(&x.to_string()),
                    TomlLimit::Text(s) => Limit::parse(s),
                };
                limit
                    .and_then(|l| self.set_parsed(scope, dir, metric, l))
                    .map_err(|e| bad(format!("[{name}] {metric}: {e}")))?;
            }
        }
        Ok(doc.allow_case_changes)
    }

    fn of(&self, scope: Scope) -> impl Iterator<Item = (Direction, Metric, Limit)> + '_ {
        self.limits
            .iter()
            .filter(move |((s, _, _), _)| *s == scope)
            .map(|((_, d, m), l)| (*d, *m, *l))
    }

    /// One line per rule, e.g. `max drop f1 0.01` (for the report).
    pub fn describe(&self) -> Vec<String> {
        self.limits
            .iter()
            .map(|((s, d, m), l)| {
                let scope = if *s == Scope::PerCase { "per-case " } else { "" };
                let dir = if *d == Direction::Drop { "drop" } else { "rise" };
                format!("{scope}max {dir} {} {l}", m.name())
            })
            .collect()
    }
}

/// How `check` runs, besides the rules.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Options {
    pub rules: Rules,
    /// Compare the common cases when the case sets differ, instead of refusing.
    pub allow_case_changes: bool,
    /// Which model of a `compare` results file.
    pub model: Option<String>,
}

/// The numbers of one side: totals (with macro means) or one case.
#[derive(Debug, Clone, Copy)]
struct Values {
    counts: Counts,
    rates: Rates,
    macro_avg: Macro,
    mean_iou: Option<f64>,
}

impl Values {
    fn get(&self, m: Metric) -> Option<f64> {
        let (c, r, a) = (&self.counts, &self.rates, &self.macro_avg);
        match m {
            Metric::Precision => r.precision,
            Metric::Recall => r.recall,
            Metric::F1 => r.f1,
            Metric::Dice => r.dice,
            Metric::Tp => Some(c.tp as f64),
            Metric::Fp => Some(c.fp as f64),
            Metric::Fn => Some(c.fn_ as f64),
            Metric::TpPred => Some(c.tp_pred as f64),
            Metric::Pred => Some(c.pred as f64),
            Metric::MeanIou => self.mean_iou,
            Metric::MacroPrecision => a.precision,
            Metric::MacroRecall => a.recall,
            Metric::MacroF1 => a.f1,
            Metric::MacroDice => a.dice,
        }
    }
}

/// Pass, fail, or not checked (no rule, or the value is undefined on a side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    NotChecked,
}

/// One row of the totals table.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    pub metric: Metric,
    pub baseline: Option<f64>,
    pub current: Option<f64>,
    pub rules: Vec<(Direction, Limit)>,
    pub verdict: Verdict,
}

/// A rule that tripped.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// None for totals.
    pub case: Option<String>,
    pub metric: Metric,
    pub direction: Direction,
    pub baseline: f64,
    pub current: f64,
    pub limit: Limit,
}

impl Failure {
    /// `f1 dropped by 0.0184 (0.8684 → 0.85, limit 0.01)`.
    pub fn message(&self) -> String {
        let moved = (self.current - self.baseline).abs();
        let verb = if self.direction == Direction::Drop {
            "dropped"
        } else {
            "rose"
        };
        let by = match self.limit {
            Limit::Rel(_) if self.baseline != 0.0 => format!("{:.1} %", 100.0 * moved / self.baseline.abs()),
            _ => fmt_value(self.metric, moved),
        };
        let scope = self.case.as_ref().map(|c| format!("case {c}: ")).unwrap_or_default();
        format!(
            "{scope}{} {verb} by {by} ({} → {}, limit {})",
            self.metric.name(),
            fmt_value(self.metric, self.baseline),
            fmt_value(self.metric, self.current),
            self.limit
        )
    }
}

/// Per-case movement, for "the cases that regressed most".
#[derive(Debug, Clone, PartialEq)]
pub struct CaseDelta {
    pub case: String,
    pub f1_baseline: Option<f64>,
    pub f1_current: Option<f64>,
    pub fp_delta: i64,
    pub fn_delta: i64,
}

impl CaseDelta {
    fn f1_delta(&self) -> f64 {
        match (self.f1_baseline, self.f1_current) {
            (Some(b), Some(c)) => c - b,
            _ => 0.0,
        }
    }
}

/// Everything `check` found.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub rows: Vec<MetricRow>,
    pub failures: Vec<Failure>,
    /// Cases that got worse, worst first (at most [`Outcome::WORST`]).
    pub worst_cases: Vec<CaseDelta>,
    /// In current only / in baseline only.
    pub new_cases: Vec<String>,
    pub missing_cases: Vec<String>,
    pub compared_cases: usize,
    /// Totals were recomputed over the common cases (case sets differ).
    pub recomputed_totals: bool,
    pub rule_lines: Vec<String>,
}

impl Outcome {
    pub const WORST: usize = 10;

    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Metrics always shown in the report, in this order; others appear when a
/// rule watches them.
const SHOWN: [Metric; 9] = [
    Metric::F1,
    Metric::Recall,
    Metric::Precision,
    Metric::Dice,
    Metric::Tp,
    Metric::Fp,
    Metric::Fn,
    Metric::MacroF1,
    Metric::MeanIou,
];

fn total_values(m: &ModelRecord, common: Option<&BTreeSet<&str>>) -> Values {
    match common {
        None => Values {
            counts: m.total.counts,
            rates: m.total.rates,
            macro_avg: m.macro_avg,
            mean_iou: m.macro_avg.mean_iou,
        },
        // Same code as a scoring run, restricted to the cases both sides have.
        Some(ids) => {
            let cases = m
                .cases
                .iter()
                .filter(|c| ids.contains(c.case.as_str()))
                .map(|c| c.to_case_result())
                .collect();
            let r = crate::eval::model_result(String::new(), String::new(), cases, Vec::new());
            Values {
                counts: r.total,
                rates: r.total_rates,
                macro_avg: r.macro_avg,
                mean_iou: r.macro_avg.mean_iou,
            }
        }
    }
}

fn check_rule(dir: Direction, limit: Limit, b: f64, c: f64) -> bool {
    let worse = match dir {
        Direction::Drop => b - c,
        Direction::Rise => c - b,
    };
    worse <= limit.allowed(b) + EPS
}

/// Refuses what must not be compared: partial files, different settings,
/// different case sets (unless allowed).
fn ensure_comparable(baseline: &ResultsFile, current: &ResultsFile) -> Result<()> {
    for f in [baseline, current] {
        if let Some(s) = f.shard {
            return Err(Error::Incomparable(format!(
                "{} is shard {s} of a sharded run: merge the shards first (lesioneval merge)",
                f.path.display()
            )));
        }
    }
    let diffs = config_differences(&baseline.config, &current.config);
    if !diffs.is_empty() {
        let list: Vec<String> = diffs
            .iter()
            .map(|(k, b, c)| format!("{k} (baseline {b}, current {c})"))
            .collect();
        return Err(Error::Incomparable(format!(
            "cannot compare: baseline and current were scored with different settings: {}. \
             Score with the baseline's settings, or accept the new ones with --update-baseline",
            list.join("; ")
        )));
    }
    Ok(())
}

/// Compares `current` with `baseline` under `opts`.
pub fn compare(baseline: &ResultsFile, current: &ResultsFile, opts: &Options) -> Result<Outcome> {
    ensure_comparable(baseline, current)?;
    let (bm, cm) = (
        baseline.model(opts.model.as_deref())?,
        current.model(opts.model.as_deref())?,
    );
    let b_ids: BTreeSet<&str> = bm.cases.iter().map(|c| c.case.as_str()).collect();
    let c_ids: BTreeSet<&str> = cm.cases.iter().map(|c| c.case.as_str()).collect();
    let missing_cases: Vec<String> = b_ids.difference(&c_ids).map(|s| s.to_string()).collect();
    let new_cases: Vec<String> = c_ids.difference(&b_ids).map(|s| s.to_string()).collect();
    let same_cases = missing_cases.is_empty() && new_cases.is_empty();
    if !same_cases && !opts.allow_case_changes {
        let mut parts = Vec::new();
        if !missing_cases.is_empty() {
            parts.push(format!("missing from current: {}", missing_cases.join(", ")));
        }
        if !new_cases.is_empty() {
            parts.push(format!("new in current: {}", new_cases.join(", ")));
        }
        return Err(Error::Incomparable(format!(
            "cannot compare: the case sets differ ({}). Use --allow-case-changes to compare the common cases",
            parts.join("; ")
        )));
    }
    let common: BTreeSet<&str> = b_ids.intersection(&c_ids).copied().collect();
    // No common case would compare two empty totals, which are equal: a pass
    // that checked nothing.
    if common.is_empty() && !(b_ids.is_empty() && c_ids.is_empty()) {
        return Err(Error::Incomparable(format!(
            "cannot compare: baseline and current share no case (baseline {}, current {} cases)",
            b_ids.len(),
            c_ids.len()
        )));
    }
    let restrict = (!same_cases).then_some(&common);
    let (bv, cv) = (total_values(bm, restrict), total_values(cm, restrict));

    let mut failures = Vec::new();
    let mut rows: Vec<MetricRow> = Vec::new();
    let mut metrics: Vec<Metric> = SHOWN.to_vec();
    for (_, m, _) in opts.rules.of(Scope::Total) {
        if !metrics.contains(&m) {
            metrics.push(m);
        }
    }
    for metric in metrics {
        let (b, c) = (bv.get(metric), cv.get(metric));
        let rules: Vec<(Direction, Limit)> = opts
            .rules
            .of(Scope::Total)
            .filter(|(_, m, _)| *m == metric)
            .map(|(d, _, l)| (d, l))
            .collect();
        let mut verdict = Verdict::NotChecked;
        if let (Some(b), Some(c)) = (b, c) {
            for &(d, l) in &rules {
                if check_rule(d, l, b, c) {
                    if verdict == Verdict::NotChecked {
                        verdict = Verdict::Pass;
                    }
                } else {
                    verdict = Verdict::Fail;
                    failures.push(Failure {
                        case: None,
                        metric,
                        direction: d,
                        baseline: b,
                        current: c,
                        limit: l,
                    });
                }
            }
        }
        rows.push(MetricRow {
            metric,
            baseline: b,
            current: c,
            rules,
            verdict,
        });
    }

    let by_id = |m: &'_ ModelRecord| -> BTreeMap<String, Values> {
        m.cases
            .iter()
            .map(|c| {
                let r = c.to_case_result();
                let v = Values {
                    counts: r.counts,
                    rates: r.rates,
                    macro_avg: Macro::default(),
                    mean_iou: r.mean_iou,
                };
                (r.case, v)
            })
            .collect()
    };
    let (bc, cc) = (by_id(bm), by_id(cm));
    let mut deltas = Vec::new();
    // Per-case rules run in the current file's case order, so messages are stable.
    for case in cm.cases.iter().map(|c| c.case.as_str()).filter(|c| common.contains(c)) {
        let (Some(b), Some(c)) = (bc.get(case), cc.get(case)) else {
            continue;
        };
        for (d, metric, l) in opts.rules.of(Scope::PerCase) {
            if let (Some(bx), Some(cx)) = (b.get(metric), c.get(metric))
                && !check_rule(d, l, bx, cx)
            {
                failures.push(Failure {
                    case: Some(case.to_string()),
                    metric,
                    direction: d,
                    baseline: bx,
                    current: cx,
                    limit: l,
                });
            }
        }
        deltas.push(CaseDelta {
            case: case.to_string(),
            f1_baseline: b.rates.f1,
            f1_current: c.rates.f1,
            fp_delta: c.counts.fp as i64 - b.counts.fp as i64,
            fn_delta: c.counts.fn_ as i64 - b.counts.fn_ as i64,
        });
    }
    deltas.retain(|d| d.f1_delta() < -EPS || d.fp_delta > 0 || d.fn_delta > 0);
    // Worst F1 drop first; then most new FP, then most new FN; then by id.
    deltas.sort_by(|a, b| {
        a.f1_delta()
            .total_cmp(&b.f1_delta())
            .then(b.fp_delta.cmp(&a.fp_delta))
            .then(b.fn_delta.cmp(&a.fn_delta))
            .then(a.case.cmp(&b.case))
    });
    deltas.truncate(Outcome::WORST);

    Ok(Outcome {
        rows,
        failures,
        worst_cases: deltas,
        new_cases,
        missing_cases,
        compared_cases: common.len(),
        recomputed_totals: !same_cases,
        rule_lines: opts.rules.describe(),
    })
}

fn fmt_value(m: Metric, v: f64) -> String {
    if m.is_count() {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.4}")
    }
}

fn fmt_opt(m: Metric, v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), |v| fmt_value(m, v))
}

/// `▲ 0.0120`, `▼ 3 (−9.1 %)`, `= 0`.
fn fmt_delta(m: Metric, b: Option<f64>, c: Option<f64>) -> String {
    let (Some(b), Some(c)) = (b, c) else {
        return "–".to_string();
    };
    let d = c - b;
    let shown = fmt_value(m, d.abs());
    if d.abs() <= EPS || shown.trim_start_matches(['0', '.']).is_empty() {
        return "= 0".to_string();
    }
    let arrow = if d > 0.0 { "▲" } else { "▼" };
    if m.is_count() && b != 0.0 {
        let sign = if d > 0.0 { "+" } else { "−" };
        format!("{arrow} {shown} ({sign}{:.1} %)", 100.0 * d.abs() / b.abs())
    } else {
        format!("{arrow} {shown}")
    }
}

impl Outcome {
    /// The Markdown report: verdict, totals table, failures, worst cases, case set.
    pub fn markdown(&self, baseline: &str, current: &str) -> String {
        let mut s = String::new();
        let verdict = if self.passed() { "✅ pass" } else { "❌ regression" };
        let _ = writeln!(s, "## lesioneval check: {verdict}\n");
        let _ = writeln!(
            s,
            "Baseline `{baseline}` vs current `{current}`: {} case(s) compared{}.\n",
            self.compared_cases,
            if self.recomputed_totals {
                " (totals recomputed over the cases both files have)"
            } else {
                ""
            }
        );
        let _ = writeln!(s, "| Metric | Baseline | Current | Delta | Rule | Result |");
        let _ = writeln!(s, "| --- | --: | --: | --: | --- | --- |");
        for r in &self.rows {
            let rule = if r.rules.is_empty() {
                "–".to_string()
            } else {
                r.rules
                    .iter()
                    .map(|(d, l)| {
                        let dir = if *d == Direction::Drop { "drop" } else { "rise" };
                        format!("max {dir} {l}")
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let result = match r.verdict {
                Verdict::Pass => "✅ pass",
                Verdict::Fail => "❌ FAIL",
                Verdict::NotChecked => "–",
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {rule} | {result} |",
                r.metric.name(),
                fmt_opt(r.metric, r.baseline),
                fmt_opt(r.metric, r.current),
                fmt_delta(r.metric, r.baseline, r.current)
            );
        }
        if !self.failures.is_empty() {
            let _ = writeln!(s, "\n### Regressions\n");
            for f in &self.failures {
                let _ = writeln!(s, "- {}", f.message());
            }
        }
        if !self.worst_cases.is_empty() {
            let _ = writeln!(s, "\n### Cases that regressed most\n");
            let _ = writeln!(s, "| Case | F1 baseline | F1 current | ΔF1 | ΔFP | ΔFN |");
            let _ = writeln!(s, "| --- | --: | --: | --: | --: | --: |");
            for d in &self.worst_cases {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {:+} | {:+} |",
                    crate::report::md_escape(&d.case),
                    fmt_opt(Metric::F1, d.f1_baseline),
                    fmt_opt(Metric::F1, d.f1_current),
                    fmt_delta(Metric::F1, d.f1_baseline, d.f1_current),
                    d.fp_delta,
                    d.fn_delta
                );
            }
        }
        if !self.new_cases.is_empty() || !self.missing_cases.is_empty() {
            let _ = writeln!(s, "\n### Case set changed\n");
            if !self.new_cases.is_empty() {
                let _ = writeln!(s, "- new (current only, not compared): {}", self.new_cases.join(", "));
            }
            if !self.missing_cases.is_empty() {
                let _ = writeln!(
                    s,
                    "- missing (baseline only, not compared): {}",
                    self.missing_cases.join(", ")
                );
            }
        }
        let rules = if self.rule_lines.is_empty() {
            "none".to_string()
        } else {
            self.rule_lines.join("; ")
        };
        let _ = writeln!(s, "\nRules: {rules}.");
        s
    }

    /// One line for logs: `check: pass (…)` or `check: REGRESSION: f1 dropped …`.
    pub fn summary_line(&self) -> String {
        if self.passed() {
            format!(
                "check: pass ({} rule(s), {} case(s))",
                self.rule_lines.len(),
                self.compared_cases
            )
        } else {
            let msgs: Vec<String> = self.failures.iter().map(Failure::message).collect();
            format!("check: REGRESSION: {}", msgs.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse() {
        assert_eq!(Limit::parse("0.02").unwrap(), Some(Limit::Abs(0.02)));
        assert_eq!(Limit::parse("5%").unwrap(), Some(Limit::Rel(0.05)));
        assert_eq!(Limit::parse("off").unwrap(), None);
        assert!(Limit::parse("-1").is_err());
        assert!(Limit::parse("abc").is_err());
    }

    #[test]
    fn exact_limit_passes_and_relative_zero_allows_nothing() {
        assert!(check_rule(Direction::Drop, Limit::Abs(0.01), 0.86, 0.85));
        assert!(!check_rule(Direction::Drop, Limit::Abs(0.01), 0.86, 0.849));
        assert!(check_rule(Direction::Rise, Limit::Rel(0.05), 20.0, 21.0));
        assert!(!check_rule(Direction::Rise, Limit::Rel(0.05), 20.0, 22.0));
        assert!(!check_rule(Direction::Rise, Limit::Rel(0.05), 0.0, 1.0));
    }

    #[test]
    fn toml_overrides_per_metric() {
        let mut r = Rules::default();
        let allow = r
            .apply_toml(
                "allow_case_changes = true\n[max_drop]\nf1 = 0.02\nprecision = \"off\"\n[per_case_max_rise]\nfp = 3\n",
                Path::new("x.gate.toml"),
            )
            .unwrap();
        assert_eq!(allow, Some(true));
        let d = r.describe();
        assert!(d.contains(&"max drop f1 0.02".to_string()), "{d:?}");
        assert!(d.contains(&"max drop recall 0.01".to_string()), "{d:?}");
        assert!(!d.iter().any(|l| l.contains("precision")), "{d:?}");
        assert!(d.contains(&"per-case max rise fp 3".to_string()), "{d:?}");
        let err = r
            .apply_toml("[max_drop]\nf2 = 0.1\n", Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("f2"), "{err}");
        assert!(r.apply_toml("maxdrop = 1\n", Path::new("x.toml")).is_err());
        assert!(r.set(Scope::PerCase, Direction::Drop, "macro_f1=0.1").is_err());
    }
}
