//! Reading results.json back (for `check` and `merge`).
//!
//! Every schema version this project has released is accepted: so far that is
//! only version 1, and unknown keys are ignored so that additive changes stay
//! readable. A file from a newer lesioneval is refused with a message that says
//! so, rather than being half understood.

use crate::error::{Error, Result};
use crate::eval::{CaseResult, ConfigRecord, GtLesion};
use crate::matching::graph::CorrespondenceCounts;
use crate::metrics::{Counts, Macro, Rates};
use crate::prob::summary::DetectionSummary;
use crate::shard::ShardSpec;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One case as written in results.json.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CaseRecord {
    pub case: String,
    #[serde(flatten)]
    pub counts: Counts,
    #[serde(flatten)]
    pub rates: Rates,
    #[serde(default)]
    pub mean_iou: Option<f64>,
    #[serde(default)]
    pub missing_prediction: bool,
    /// Size and outcome of each GT lesion (absent in files of lesioneval ≤ 0.1 without it).
    #[serde(default)]
    pub gt_lesions: Vec<GtLesion>,
    #[serde(default)]
    pub correspondence: CorrespondenceCounts,
    #[serde(default)]
    pub preset_metrics: BTreeMap<String, Option<f64>>,
}

impl CaseRecord {
    /// The in-memory case result (without lesions: results.json has none).
    /// Rates are recomputed from the counts, which gives the very floats the
    /// scoring run wrote.
    pub fn to_case_result(&self) -> CaseResult {
        CaseResult {
            case: self.case.clone(),
            counts: self.counts,
            rates: self.counts.rates(),
            mean_iou: self.mean_iou,
            missing_prediction: self.missing_prediction,
            lesions: Vec::new(),
            gt_lesions: self.gt_lesions.clone(),
            correspondence: self.correspondence,
            preset_metrics: self.preset_metrics.clone(),
        }
    }
}

/// Micro totals as written in results.json.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct TotalRecord {
    #[serde(flatten)]
    pub counts: Counts,
    #[serde(flatten)]
    pub rates: Rates,
}

/// One model's results: the whole file of `score`, one `models` entry of `compare`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ModelRecord {
    /// `compare` names its models; `score` results have no name.
    #[serde(default)]
    pub name: Option<String>,
    pub pred: String,
    /// Multi-class runs: the label region of this entry.
    #[serde(default)]
    pub region: Option<String>,
    pub cases: Vec<CaseRecord>,
    pub total: TotalRecord,
    #[serde(rename = "macro")]
    pub macro_avg: Macro,
    #[serde(default)]
    pub missing: Vec<String>,
    /// Probability-map runs only.
    #[serde(default)]
    pub detection: Option<DetectionSummary>,
}

/// A parsed results.json of `score` or `compare`, whole or one shard of it.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultsFile {
    pub path: PathBuf,
    pub schema_version: u32,
    pub tool_version: String,
    pub config: ConfigRecord,
    pub gt: String,
    /// Set in the partial files written with `--shard`.
    pub shard: Option<ShardSpec>,
    /// Partial files only: every case id of the unsharded run, in its order.
    pub case_ids: Option<Vec<String>>,
    /// True for `compare` output (models under `"models"`), even with one model.
    pub many: bool,
    pub models: Vec<ModelRecord>,
}

#[derive(Deserialize)]
struct Raw {
    tool_version: String,
    config: ConfigRecord,
    gt: String,
    #[serde(default)]
    shard: Option<ShardSpec>,
    #[serde(default)]
    case_ids: Option<Vec<String>>,
    #[serde(default)]
    models: Option<Vec<ModelRecord>>,
}

/// Reads and checks a results file.
pub fn read(path: &Path) -> Result<ResultsFile> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::input(path, format!("cannot read: {e}")))?;
    parse(&text, path)
}

/// Parses results.json text; `path` is only used in messages.
pub fn parse(text: &str, path: &Path) -> Result<ResultsFile> {
    let bad = |msg: String| Error::input(path, msg);
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(format!("not a valid results file (bad JSON: {e})")))?;
    // The version is checked before anything else, so a newer file gets this
    // message and not a confusing "missing field" one.
    let version = value
        .get("schema_version")
        .ok_or_else(|| bad("not a lesioneval results file (no \"schema_version\")".into()))?;
    let schema_version = version
        .as_u64()
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| bad(format!("\"schema_version\" must be a whole number, not {version}")))?;
    if schema_version > crate::SCHEMA_VERSION {
        return Err(bad(format!(
            "written with results schema_version {schema_version}, but this lesioneval ({}) reads versions up to {}: \
             upgrade lesioneval to read it",
            crate::TOOL_VERSION,
            crate::SCHEMA_VERSION
        )));
    }
    if schema_version == 0 {
        return Err(bad("\"schema_version\" 0 was never released".into()));
    }
    let raw: Raw = serde_json::from_value(value.clone()).map_err(|e| {
        bad(format!(
            "not a valid results file (schema_version {schema_version}): {e}"
        ))
    })?;
    let (many, models) = match raw.models {
        Some(models) => (true, models),
        None => {
            let single: ModelRecord = serde_json::from_value(value).map_err(|e| {
                bad(format!(
                    "not a valid results file (schema_version {schema_version}): {e}"
                ))
            })?;
            (false, vec![single])
        }
    };
    Ok(ResultsFile {
        path: path.to_path_buf(),
        schema_version,
        tool_version: raw.tool_version,
        config: raw.config,
        gt: raw.gt,
        shard: raw.shard,
        case_ids: raw.case_ids,
        many,
        models,
    })
}

impl ModelRecord {
    /// Name (or prediction path) and, in multi-class runs, `:region`.
    pub fn label(&self) -> String {
        let base = self.name.clone().unwrap_or_else(|| self.pred.clone());
        match &self.region {
            Some(r) => format!("{base}:{r}"),
            None => base,
        }
    }
}

impl ResultsFile {
    /// The model to work on: `name` if given (in `compare` output), else the only one there is.
    pub fn model(&self, name: Option<&str>) -> Result<&ModelRecord> {
        let names = || {
            self.models
                .iter()
                .map(ModelRecord::label)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match name {
            // `score` output holds one unnamed model: --model picks from `compare` output only.
            _ if !self.many && self.models.len() == 1 => Ok(&self.models[0]),
            Some(n) => self
                .models
                .iter()
                .find(|m| m.label() == n || (m.region.is_none() && (m.name.as_deref() == Some(n) || m.pred == n)))
                .ok_or_else(|| Error::input(&self.path, format!("no model named {n:?} (models: {})", names()))),
            None if self.models.len() == 1 => Ok(&self.models[0]),
            None => Err(Error::input(
                &self.path,
                format!(
                    "holds {} models ({}); pick one with --model NAME",
                    self.models.len(),
                    names()
                ),
            )),
        }
    }
}

/// The settings that differ between two configs, as `key: a vs b` lines, key
/// by key (a key present on one side only shows as `absent` on the other).
pub fn config_differences(a: &ConfigRecord, b: &ConfigRecord) -> Vec<(String, String, String)> {
    let to_map = |c: &ConfigRecord| match serde_json::to_value(c) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let (ma, mb) = (to_map(a), to_map(b));
    let mut keys: Vec<&String> = ma.keys().chain(mb.keys()).collect();
    keys.sort();
    keys.dedup();
    let show = |v: Option<&serde_json::Value>| v.map_or_else(|| "absent".to_string(), |v| v.to_string());
    keys.into_iter()
        .filter(|k| ma.get(*k) != mb.get(*k))
        .map(|k| (k.clone(), show(ma.get(k)), show(mb.get(k))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::EvalConfig;

    #[test]
    fn future_and_missing_schema_are_refused() {
        let p = Path::new("r.json");
        let err = parse(r#"{"schema_version": 99}"#, p).unwrap_err().to_string();
        assert!(err.contains("schema_version 99") && err.contains("upgrade"), "{err}");
        let err = parse(r#"{"cases": []}"#, p).unwrap_err().to_string();
        assert!(err.contains("no \"schema_version\""), "{err}");
        let err = parse("{", p).unwrap_err().to_string();
        assert!(err.contains("bad JSON"), "{err}");
    }

    #[test]
    fn config_differences_name_the_key() {
        let a = EvalConfig::default().record();
        let mut b = a.clone();
        b.connectivity = 6;
        assert_eq!(
            config_differences(&a, &b),
            vec![("connectivity".to_string(), "26".to_string(), "6".to_string())]
        );
        assert!(config_differences(&a, &a).is_empty());
    }
}
