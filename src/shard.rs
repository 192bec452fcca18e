//! Sharded scoring: `--shard I/N` scores a subset of the cases, `merge`
//! rebuilds exactly what one unsharded run writes.
//!
//! **Assignment.** Case `id` belongs to shard `fnv1a64(id as UTF-8) mod N`
//! (FNV-1a, 64-bit, indices 0..N-1). It depends on the id alone, not on which
//! other cases exist, so adding a case never moves the others between shards,
//! and any machine computes the same split.
//!
//! **Partial files.** A shard's results.json is the unsharded layout plus
//! `"shard": {"index": I, "count": N}` and `"case_ids"` (every id of the
//! unsharded run, in its order), which lets `merge` detect missing shards and
//! restore the case order. Per-case counts and mean IoUs are all that totals
//! and macro means need; `merge` recomputes them with the scoring code itself
//! ([`crate::eval::model_result`]) in the unsharded case order, so every float
//! is bit-identical.

use crate::dataset::Pairing;
use crate::error::{Error, Result};
use crate::eval::{ConfigRecord, ModelResult};
use crate::results::{ResultsFile, config_differences};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

/// Shard `index` of `count` (0-based: 0..count-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSpec {
    pub index: u32,
    pub count: u32,
}

impl std::str::FromStr for ShardSpec {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("invalid shard {s:?}: expected I/N with 0 ≤ I < N, e.g. 0/4 (indices are 0-based)");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(ShardSpec { index, count })
    }
}

impl std::fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// FNV-1a, 64-bit: tiny, stable across platforms and Rust versions (unlike
/// std's `DefaultHasher`, whose output may change between releases).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl ShardSpec {
    /// The shard index a case id belongs to among `count` shards.
    pub fn index_of(case_id: &str, count: u32) -> u32 {
        (fnv1a64(case_id.as_bytes()) % u64::from(count.max(1))) as u32
    }

    /// Whether this shard scores `case_id`.
    pub fn owns(&self, case_id: &str) -> bool {
        Self::index_of(case_id, self.count) == self.index
    }
}

/// What a partial results file carries beyond the usual layout.
#[derive(Debug, Clone, PartialEq)]
pub struct Partial {
    pub shard: ShardSpec,
    /// Every case id of the unsharded run, in its order.
    pub case_ids: Vec<String>,
}

/// Keeps the cases (and missing-prediction ids) of one shard. Returns the
/// reduced pairing and the partial-file record naming the full case set.
pub fn select(pairing: Pairing, shard: ShardSpec) -> (Pairing, Partial) {
    let case_ids = pairing.cases.iter().map(|c| c.id.clone()).collect();
    let reduced = Pairing {
        cases: pairing.cases.into_iter().filter(|c| shard.owns(&c.id)).collect(),
        missing: pairing
            .missing
            .into_iter()
            .map(|ids| ids.into_iter().filter(|id| shard.owns(id)).collect())
            .collect(),
        extra: pairing.extra,
    };
    (reduced, Partial { shard, case_ids })
}

/// Results rebuilt from all shards of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    pub config: ConfigRecord,
    pub gt: String,
    /// `compare` output (several models) rather than `score` output.
    pub many: bool,
    pub models: Vec<ModelResult>,
    pub shard_count: u32,
}

impl Merged {
    /// results.json exactly as the unsharded run writes it.
    pub fn json(&self) -> String {
        if self.many {
            crate::report::compare_json(&self.models, &self.config, &self.gt, None)
        } else {
            crate::report::score_json(&self.models[0], &self.config, &self.gt, None)
        }
    }
}

fn shard_err(msg: String) -> Error {
    Error::Dataset(format!("cannot merge: {msg}"))
}

/// The shard a partial file holds; an error for a whole results file.
fn spec_of(p: &ResultsFile) -> Result<ShardSpec> {
    p.shard.ok_or_else(|| {
        shard_err(format!(
            "{} is not a partial results file (no \"shard\"): only output of score/compare --shard can be merged",
            p.path.display()
        ))
    })
}

/// Combines the partial results of every shard of one run. Errors on a file
/// that is not a partial, on mismatched settings (naming them), on a shard
/// given twice or missing, and on a case found in two shards or in none.
pub fn merge(parts: &[ResultsFile]) -> Result<Merged> {
    let first = parts
        .first()
        .ok_or_else(|| shard_err("no partial results given".into()))?;
    let count = spec_of(first)?.count;
    let case_ids = first
        .case_ids
        .as_ref()
        .ok_or_else(|| shard_err(format!("{} has no \"case_ids\"", first.path.display())))?;
    let mut by_index: BTreeMap<u32, &PathBuf> = BTreeMap::new();
    for p in parts {
        let spec = spec_of(p)?;
        if p.tool_version != crate::TOOL_VERSION {
            return Err(shard_err(format!(
                "{} was written by lesioneval {}; merge with that same version (this is {})",
                p.path.display(),
                p.tool_version,
                crate::TOOL_VERSION
            )));
        }
        let versus = |what: &str, a: &str, b: &str| {
            shard_err(format!(
                "{what} differs: {a:?} in {} vs {b:?} in {}",
                first.path.display(),
                p.path.display()
            ))
        };
        let diffs = config_differences(&first.config, &p.config);
        if !diffs.is_empty() {
            let list: Vec<String> = diffs.iter().map(|(k, a, b)| format!("{k}: {a} vs {b}")).collect();
            return Err(Error::Incomparable(format!(
                "cannot merge {} and {}: settings differ: {}",
                first.path.display(),
                p.path.display(),
                list.join("; ")
            )));
        }
        if p.gt != first.gt {
            return Err(versus("gt", &first.gt, &p.gt));
        }
        if spec.count != count {
            return Err(versus("shard count", &count.to_string(), &spec.count.to_string()));
        }
        if p.many != first.many || p.models.len() != first.models.len() {
            return Err(shard_err(format!(
                "{} and {} come from different commands or model lists",
                first.path.display(),
                p.path.display()
            )));
        }
        for (a, b) in first.models.iter().zip(&p.models) {
            if a.name != b.name || a.pred != b.pred || a.region != b.region {
                return Err(versus("model", &a.pred, &b.pred));
            }
        }
        if p.case_ids.as_ref() != Some(case_ids) {
            return Err(shard_err(format!(
                "{} and {} list different case sets (\"case_ids\"): they are not shards of one run",
                first.path.display(),
                p.path.display()
            )));
        }
        if let Some(prev) = by_index.insert(spec.index, &p.path) {
            return Err(shard_err(format!(
                "shard {spec} is given twice ({} and {})",
                prev.display(),
                p.path.display()
            )));
        }
    }
    let absent: Vec<String> = (0..count)
        .filter(|i| !by_index.contains_key(i))
        .map(|i| format!("{i}/{count}"))
        .collect();
    if !absent.is_empty() {
        return Err(shard_err(format!("missing shard(s) {}", absent.join(", "))));
    }

    let known: HashSet<&str> = case_ids.iter().map(String::as_str).collect();
    let mut models = Vec::with_capacity(first.models.len());
    for m in 0..first.models.len() {
        let mut found: HashMap<&str, (&PathBuf, crate::eval::CaseResult)> = HashMap::new();
        let mut missing: HashSet<&str> = HashSet::new();
        for p in parts {
            let spec = spec_of(p)?;
            let rec = &p.models[m];
            for c in &rec.cases {
                place(&mut found, &known, spec, &p.path, "case", &c.case, c.to_case_result())?;
            }
            missing.extend(rec.missing.iter().map(String::as_str));
        }
        let lost: Vec<&str> = case_ids
            .iter()
            .map(String::as_str)
            .filter(|id| !found.contains_key(id))
            .collect();
        if !lost.is_empty() {
            return Err(shard_err(format!(
                "{} case(s) are in no partial file: {}",
                lost.len(),
                lost.join(", ")
            )));
        }
        // Unsharded order: the order of `case_ids`, for cases and missing ids alike.
        let cases = case_ids
            .iter()
            .filter_map(|id| found.remove(id.as_str()).map(|(_, c)| c))
            .collect();
        let missing = case_ids
            .iter()
            .filter(|id| missing.contains(id.as_str()))
            .cloned()
            .collect();
        let rec = &first.models[m];
        let name = rec.name.clone().unwrap_or_else(|| rec.pred.clone());
        let mut model = crate::eval::model_result(name, rec.pred.clone(), cases, missing);
        model.region = rec
            .region
            .as_ref()
            .and_then(|r| first.config.regions.iter().find(|c| &c.name == r).cloned());
        model.detection = merge_detection(parts, m, case_ids, &known, &first.config)?;
        models.push(model);
    }
    Ok(Merged {
        config: first.config.clone(),
        gt: first.gt.clone(),
        many: first.many,
        models,
        shard_count: count,
    })
}

/// Files the record of case `id` from partial file `path` (shard `spec`) in
/// `found`; an error when the case is not in the run, belongs to another
/// shard, or is already filed. `what` names the record in the error.
fn place<'a, T>(
    found: &mut HashMap<&'a str, (&'a PathBuf, T)>,
    known: &HashSet<&str>,
    spec: ShardSpec,
    path: &'a PathBuf,
    what: &str,
    id: &'a str,
    record: T,
) -> Result<()> {
    if !known.contains(id) || !spec.owns(id) {
        return Err(shard_err(format!(
            "{}: {what} {id:?} does not belong to shard {spec}",
            path.display()
        )));
    }
    if let Some((prev, _)) = found.insert(id, (path, record)) {
        return Err(shard_err(format!(
            "{what} {id:?} is in two partial files ({} and {})",
            prev.display(),
            path.display()
        )));
    }
    Ok(())
}

/// Probability-map runs: the shards' per-case lesion lists in unsharded case
/// order, and every curve and interval recomputed from them (the bootstrap
/// draws depend on that order, so they come out as an unsharded run's).
fn merge_detection(
    parts: &[ResultsFile],
    m: usize,
    case_ids: &[String],
    known: &HashSet<&str>,
    config: &crate::eval::ConfigRecord,
) -> Result<Option<crate::prob::summary::DetectionSummary>> {
    let Some(prob) = &config.prob else {
        return Ok(None);
    };
    let mut found: HashMap<&str, (&PathBuf, &crate::prob::summary::CaseRecord)> = HashMap::new();
    for p in parts {
        let spec = spec_of(p)?;
        let det = p.models[m].detection.as_ref().ok_or_else(|| {
            shard_err(format!(
                "{} has no \"detection\" though its config names probability maps",
                p.path.display()
            ))
        })?;
        // The same checks as the case records: an edited or mixed-up file
        // must not have one shard's lesion list silently replace another's.
        for c in &det.cases {
            place(&mut found, known, spec, &p.path, "detection record of case", &c.case, c)?;
        }
    }
    let mut cases = Vec::with_capacity(case_ids.len());
    for id in case_ids {
        let c = found
            .get(id.as_str())
            .ok_or_else(|| shard_err(format!("case {id:?} has no detection record in any partial file")))?;
        cases.push(c.1.clone());
    }
    Ok(Some(crate::prob::summary::summarise(cases, prob.bootstrap_settings())))
}

/// Merges the shards' lesions.csv texts: rows regrouped by (model, case) in
/// the merged order, which is what the unsharded run writes.
pub fn merge_lesions_csv(merged: &Merged, parts: &[(PathBuf, String)]) -> Result<String> {
    let many = crate::report::with_model_column(&merged.models);
    let mut header: Option<csv::StringRecord> = None;
    let mut rows: HashMap<(String, String), Vec<csv::StringRecord>> = HashMap::new();
    for (path, text) in parts {
        let bad = |e: csv::Error| Error::input(path, format!("cannot read lesions.csv: {e}"));
        let mut r = csv::ReaderBuilder::new().has_headers(true).from_reader(text.as_bytes());
        let h = r.headers().map_err(bad)?.clone();
        match &header {
            Some(prev) if *prev != h => {
                return Err(Error::input(path, "lesions.csv header differs from the other shards'"));
            }
            Some(_) => {}
            None => header = Some(h),
        }
        for rec in r.records() {
            let rec = rec.map_err(bad)?;
            let key = if many {
                (
                    rec.get(0).unwrap_or("").to_string(),
                    rec.get(1).unwrap_or("").to_string(),
                )
            } else {
                (String::new(), rec.get(0).unwrap_or("").to_string())
            };
            rows.entry(key).or_default().push(rec);
        }
    }
    let header = header.ok_or_else(|| shard_err("no lesions.csv given".into()))?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let write_err = |e: csv::Error| shard_err(format!("cannot build lesions.csv: {e}"));
    w.write_record(&header).map_err(write_err)?;
    for m in &merged.models {
        for c in &m.cases {
            let model = if many {
                crate::report::model_label(m)
            } else {
                String::new()
            };
            for rec in rows.remove(&(model, c.case.clone())).unwrap_or_default() {
                w.write_record(&rec).map_err(write_err)?;
            }
        }
    }
    // Name the first unknown case in sorted order, so the message does not depend on hashing.
    if let Some((model, case)) = rows.into_keys().min() {
        return Err(shard_err(format!(
            "lesions.csv has rows for an unknown case {case:?}{}",
            if model.is_empty() {
                String::new()
            } else {
                format!(" of model {model:?}")
            }
        )));
    }
    let bytes = w
        .into_inner()
        .map_err(|e| shard_err(format!("cannot build lesions.csv: {e}")))?;
    String::from_utf8(bytes).map_err(|e| shard_err(format!("lesions.csv is not UTF-8: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_reference_values() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn spec_parses_and_partitions() {
        assert_eq!("1/3".parse::<ShardSpec>().unwrap(), ShardSpec { index: 1, count: 3 });
        for bad in ["3/3", "0/0", "1", "a/2", "-1/2"] {
            assert!(bad.parse::<ShardSpec>().is_err(), "{bad}");
        }
        // Every id lands in exactly one shard.
        for id in ["ms_001", "ms_002", "case 7", "ü"] {
            let owners = (0..5).filter(|&i| ShardSpec { index: i, count: 5 }.owns(id)).count();
            assert_eq!(owners, 1, "{id}");
        }
    }
}
