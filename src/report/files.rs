//! results.json, cases.csv, lesions.csv and summary.csv.
//!
//! Numbers in files keep full precision (Rust's shortest round-trip form), so
//! the same input always gives byte-identical files; only the stdout tables round.

use crate::error::{Error, Result};
use crate::eval::{CaseResult, ConfigRecord, GtLesion, ModelResult};
use crate::matching::graph::CorrespondenceCounts;
use crate::metrics::{Counts, Macro, Rates};
use crate::prob::summary::DetectionSummary;
use crate::shard::{Partial, ShardSpec};
use serde::Serialize;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

/// Writes `content` to `path` atomically.
pub fn write_text(path: &Path, content: &str) -> Result<()> {
    crate::io::write_atomically(path, |tmp| {
        std::fs::write(tmp, content).map_err(|source| Error::Write {
            path: path.to_path_buf(),
            source,
        })
    })
}

/// The counts and rates that a case and a total share, in results.json's key order.
#[derive(Serialize)]
struct Tally<'a> {
    gt: u64,
    pred: u64,
    tp: u64,
    fp: u64,
    #[serde(rename = "fn")]
    fn_: u64,
    tp_pred: u64,
    ignored: u64,
    #[serde(flatten)]
    rates: &'a Rates,
}

/// The voxel counts that a case and a total share.
#[derive(Serialize)]
struct Voxels {
    gt_voxels: u64,
    pred_voxels: u64,
    intersection_voxels: u64,
}

fn tally<'a>(k: &Counts, rates: &'a Rates) -> (Tally<'a>, Voxels) {
    let tally = Tally {
        gt: k.gt,
        pred: k.pred,
        tp: k.tp,
        fp: k.fp,
        fn_: k.fn_,
        tp_pred: k.tp_pred,
        ignored: k.ignored,
        rates,
    };
    let voxels = Voxels {
        gt_voxels: k.gt_voxels,
        pred_voxels: k.pred_voxels,
        intersection_voxels: k.intersection_voxels,
    };
    (tally, voxels)
}

#[derive(Serialize)]
struct CaseJson<'a> {
    case: &'a str,
    #[serde(flatten)]
    tally: Tally<'a>,
    mean_iou: Option<f64>,
    #[serde(flatten)]
    voxels: Voxels,
    missing_prediction: bool,
    correspondence: CorrespondenceCounts,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    preset_metrics: &'a BTreeMap<String, Option<f64>>,
    gt_lesions: &'a [GtLesion],
}

#[derive(Serialize)]
struct TotalJson<'a> {
    #[serde(flatten)]
    tally: Tally<'a>,
    #[serde(flatten)]
    voxels: Voxels,
    correspondence: CorrespondenceCounts,
}

fn total_json(m: &ModelResult) -> TotalJson<'_> {
    let (tally, voxels) = tally(&m.total, &m.total_rates);
    TotalJson {
        tally,
        voxels,
        correspondence: m.correspondence,
    }
}

fn case_json(c: &CaseResult) -> CaseJson<'_> {
    let (tally, voxels) = tally(&c.counts, &c.rates);
    CaseJson {
        case: &c.case,
        tally,
        mean_iou: c.mean_iou,
        voxels,
        missing_prediction: c.missing_prediction,
        correspondence: c.correspondence,
        preset_metrics: &c.preset_metrics,
        gt_lesions: &c.gt_lesions,
    }
}

#[derive(Serialize)]
struct ModelJson<'a> {
    name: &'a str,
    pred: &'a str,
    /// Multi-class runs: the label region, and its label values.
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<&'a [u32]>,
    cases: Vec<CaseJson<'a>>,
    total: TotalJson<'a>,
    #[serde(rename = "macro")]
    macro_avg: &'a Macro,
    missing: &'a [String],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    preset_metrics_mean: &'a BTreeMap<String, Option<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detection: Option<&'a DetectionSummary>,
}

/// The JSON document of a `score` run (one model) or a `compare` run (several).
#[derive(Serialize)]
pub struct ResultsJson<'a> {
    schema_version: u32,
    tool_version: &'static str,
    config: &'a ConfigRecord,
    gt: &'a str,
    /// Partial (`--shard`) files only; see `crate::shard`.
    #[serde(skip_serializing_if = "Option::is_none")]
    shard: Option<ShardSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    case_ids: Option<&'a [String]>,
    #[serde(flatten)]
    body: Body<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Body<'a> {
    Single {
        pred: &'a str,
        cases: Vec<CaseJson<'a>>,
        total: Box<TotalJson<'a>>,
        #[serde(rename = "macro")]
        macro_avg: &'a Macro,
        missing: &'a [String],
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        preset_metrics_mean: &'a BTreeMap<String, Option<f64>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        detection: Option<&'a DetectionSummary>,
    },
    Many {
        models: Vec<ModelJson<'a>>,
    },
}

/// results.json of `score`: keys `schema_version`, `tool_version`, `config`,
/// `gt`, `pred`, `cases`, `total`, `macro`, `missing` (plus `shard` and
/// `case_ids` in a partial file).
pub fn score_json(m: &ModelResult, config: &ConfigRecord, gt: &str, partial: Option<&Partial>) -> String {
    let doc = ResultsJson {
        schema_version: crate::SCHEMA_VERSION,
        tool_version: crate::TOOL_VERSION,
        config,
        gt,
        shard: partial.map(|p| p.shard),
        case_ids: partial.map(|p| p.case_ids.as_slice()),
        body: Body::Single {
            pred: &m.pred,
            cases: m.cases.iter().map(case_json).collect(),
            total: Box::new(total_json(m)),
            macro_avg: &m.macro_avg,
            missing: &m.missing,
            preset_metrics_mean: &m.preset_metrics_mean,
            detection: m.detection.as_ref(),
        },
    };
    to_pretty(&doc)
}

/// results.json of `compare`: like `score`, with one entry per model under `models`.
pub fn compare_json(models: &[ModelResult], config: &ConfigRecord, gt: &str, partial: Option<&Partial>) -> String {
    let doc = ResultsJson {
        schema_version: crate::SCHEMA_VERSION,
        tool_version: crate::TOOL_VERSION,
        config,
        gt,
        shard: partial.map(|p| p.shard),
        case_ids: partial.map(|p| p.case_ids.as_slice()),
        body: Body::Many {
            models: models
                .iter()
                .map(|m| ModelJson {
                    name: &m.name,
                    pred: &m.pred,
                    region: m.region.as_ref().map(|r| r.name.as_str()),
                    labels: m.region.as_ref().map(|r| r.labels.as_slice()),
                    cases: m.cases.iter().map(case_json).collect(),
                    total: total_json(m),
                    macro_avg: &m.macro_avg,
                    missing: &m.missing,
                    preset_metrics_mean: &m.preset_metrics_mean,
                    detection: m.detection.as_ref(),
                })
                .collect(),
        },
    };
    to_pretty(&doc)
}

fn to_pretty<T: Serialize>(v: &T) -> String {
    // Serialising plain structs of numbers and strings cannot fail.
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

fn csv_string(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(header);
    for r in rows {
        let _ = w.write_record(&r);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

fn cases_csv(models: &[ModelResult], with_model: bool) -> String {
    let mut header = vec![
        "case",
        "gt",
        "pred",
        "tp",
        "fp",
        "fn",
        "tp_pred",
        "ignored",
        "precision",
        "recall",
        "f1",
        "dice",
        "mean_iou",
        "gt_voxels",
        "pred_voxels",
        "intersection_voxels",
        "missing_prediction",
        "one_to_one",
        "split",
        "merge",
        "complex",
    ];
    // The preset's own numbers, one column each (the same keys in every case).
    let preset_keys: Vec<String> = models
        .first()
        .and_then(|m| m.cases.first())
        .map(|c| c.preset_metrics.keys().cloned().collect())
        .unwrap_or_default();
    let preset_header: Vec<String> = preset_keys.iter().map(|k| format!("preset_{k}")).collect();
    header.extend(preset_header.iter().map(String::as_str));
    let preset_keys = &preset_keys;
    if with_model {
        header.insert(0, "model");
    }
    let rows = models.iter().flat_map(|m| {
        m.cases.iter().map(move |c| {
            let (k, r) = (&c.counts, &c.rates);
            let mut row = vec![
                c.case.clone(),
                k.gt.to_string(),
                k.pred.to_string(),
                k.tp.to_string(),
                k.fp.to_string(),
                k.fn_.to_string(),
                k.tp_pred.to_string(),
                k.ignored.to_string(),
                opt(r.precision),
                opt(r.recall),
                opt(r.f1),
                opt(r.dice),
                opt(c.mean_iou),
                k.gt_voxels.to_string(),
                k.pred_voxels.to_string(),
                k.intersection_voxels.to_string(),
                c.missing_prediction.to_string(),
                c.correspondence.one_to_one.to_string(),
                c.correspondence.split.to_string(),
                c.correspondence.merge.to_string(),
                c.correspondence.complex.to_string(),
            ];
            row.extend(
                preset_keys
                    .iter()
                    .map(|k| opt(c.preset_metrics.get(k).copied().flatten())),
            );
            if with_model {
                row.insert(0, model_label(m));
            }
            row
        })
    });
    csv_string(&header, rows)
}

/// Where a lesion is: centroid (voxel, then world mm) and inclusive bounding box.
const POSITION_COLUMNS: [&str; 12] = [
    "centroid_i",
    "centroid_j",
    "centroid_k",
    "centroid_x_mm",
    "centroid_y_mm",
    "centroid_z_mm",
    "bbox_i0",
    "bbox_j0",
    "bbox_k0",
    "bbox_i1",
    "bbox_j1",
    "bbox_k1",
];

/// The cells of [`POSITION_COLUMNS`].
fn position_cells(vox: [f64; 3], mm: [f64; 3], bbox_min: [usize; 3], bbox_max: [usize; 3]) -> Vec<String> {
    let mut cells: Vec<String> = vox.iter().chain(&mm).map(|v| v.to_string()).collect();
    cells.extend(bbox_min.iter().chain(&bbox_max).map(|v| v.to_string()));
    cells
}

fn lesions_csv(models: &[ModelResult], with_model: bool) -> String {
    let mut header = vec!["case", "side", "id", "voxels", "volume_mm3"];
    header.extend(POSITION_COLUMNS);
    header.extend([
        "status",
        "matched",
        "best_iou",
        "correspondence",
        "covered",
        "dice",
        "iou",
        "hd95_mm",
        "assd_mm",
    ]);
    if with_model {
        header.insert(0, "model");
    }
    let rows = models.iter().flat_map(|m| {
        m.cases.iter().flat_map(move |c| {
            c.lesions.iter().map(move |l| {
                let mut row = vec![
                    c.case.clone(),
                    l.side.to_string(),
                    l.id.to_string(),
                    l.voxels.to_string(),
                ];
                row.push(l.volume_mm3.to_string());
                row.extend(position_cells(l.centroid_vox, l.centroid_mm, l.bbox_min, l.bbox_max));
                row.push(format!("{:?}", l.status));
                row.push(l.matched.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(";"));
                row.push(l.best_iou.to_string());
                row.push(l.correspondence.as_str().to_string());
                row.push(l.covered.to_string());
                match &l.seg {
                    Some(m) => row.extend([m.dice, m.iou, m.hd95_mm, m.assd_mm].map(|v| v.to_string())),
                    None => row.extend(std::iter::repeat_n(String::new(), 4)),
                }
                if with_model {
                    row.insert(0, model_label(m));
                }
                row
            })
        })
    });
    csv_string(&header, rows)
}

fn summary_csv(models: &[ModelResult]) -> String {
    let header = [
        "no",
        "model",
        "pred",
        "tp",
        "fp",
        "fn",
        "gt",
        "pred_lesions",
        "tp_pred",
        "ignored",
        "split",
        "merge",
        "complex",
        "precision",
        "recall",
        "f1",
        "dice",
        "macro_precision",
        "macro_recall",
        "macro_f1",
        "macro_dice",
    ];
    let rows = models.iter().enumerate().map(|(i, m)| {
        let (c, r, a) = (&m.total, &m.total_rates, &m.macro_avg);
        vec![
            (i + 1).to_string(),
            model_label(m),
            m.pred.clone(),
            c.tp.to_string(),
            c.fp.to_string(),
            c.fn_.to_string(),
            c.gt.to_string(),
            c.pred.to_string(),
            c.tp_pred.to_string(),
            c.ignored.to_string(),
            m.correspondence.split.to_string(),
            m.correspondence.merge.to_string(),
            m.correspondence.complex.to_string(),
            opt(r.precision),
            opt(r.recall),
            opt(r.f1),
            opt(r.dice),
            opt(a.precision),
            opt(a.recall),
            opt(a.f1),
            opt(a.dice),
        ]
    });
    csv_string(&header, rows)
}

/// Writes `cases.csv`, `lesions.csv` (and `summary.csv` for several models)
/// plus `results.json` (the given JSON text) into `dir`.
pub fn write_outputs(dir: &Path, models: &[ModelResult], json: &str) -> Result<()> {
    let lesions = lesions_csv(models, with_model_column(models));
    write_tables(dir, models, json, Some(&lesions))
}

/// Like [`write_outputs`], with lesions.csv given as text (`merge` has no
/// lesion rows in memory, only the shards' files), or not written when None.
pub fn write_tables(dir: &Path, models: &[ModelResult], json: &str, lesions_csv: Option<&str>) -> Result<()> {
    let many = with_model_column(models);
    // Each table is made just before it is written, so only one is held at a time.
    type Make<'a> = Box<dyn Fn() -> Cow<'a, str> + 'a>;
    let mut files: Vec<(&str, Make)> = vec![("cases.csv", Box::new(|| cases_csv(models, many).into()))];
    if let Some(lesions) = lesions_csv {
        files.push(("lesions.csv", Box::new(move || lesions.into())));
    }
    if many {
        files.push(("summary.csv", Box::new(|| summary_csv(models).into())));
    }
    if models.iter().any(|m| m.detection.is_some()) {
        files.push(("detection.csv", Box::new(|| detection_csv(models).into())));
        files.push(("froc.csv", Box::new(|| froc_csv(models, many).into())));
        files.push(("thresholds.csv", Box::new(|| thresholds_csv(models, many).into())));
        files.push(("candidates.csv", Box::new(|| candidates_csv(models, many).into())));
    }
    files.push(("results.json", Box::new(|| json.into())));
    // Every name checked before the first file is written, so that a name
    // taken by a folder fails the run before it leaves a mix of new and old files.
    if let Some((name, _)) = files.iter().find(|(name, _)| dir.join(name).is_dir()) {
        return Err(Error::input(
            dir.join(name),
            "is a folder, not a file the report can be written to",
        ));
    }
    std::fs::create_dir_all(dir).map_err(|source| Error::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    // A report folder reused by another kind of run (compare, then merge
    // without lesions; --prob, then masks only) must not keep the earlier
    // run's tables beside this one's. Only a folder that holds a report
    // (results.json) is tidied: other files of these names are the user's.
    let was_report = dir.join("results.json").is_file();
    for (name, make) in &files {
        write_text(&dir.join(name), &make())?;
    }
    for name in OUTPUT_NAMES {
        if was_report && !files.iter().any(|(n, _)| *n == name) && dir.join(name).is_file() {
            crate::io::remove_stale(&dir.join(name))?;
        }
    }
    Ok(())
}

/// Every table `--out` can hold.
const OUTPUT_NAMES: [&str; 8] = [
    "cases.csv",
    "lesions.csv",
    "summary.csv",
    "detection.csv",
    "froc.csv",
    "thresholds.csv",
    "candidates.csv",
    "results.json",
];

/// A float cell: empty for NaN/∞ (undefined), as JSON's null.
fn num(v: f64) -> String {
    if v.is_finite() { v.to_string() } else { String::new() }
}

fn with_detection(models: &[ModelResult]) -> impl Iterator<Item = (&ModelResult, &DetectionSummary)> {
    models.iter().filter_map(|m| m.detection.as_ref().map(|d| (m, d)))
}

/// One row per model: AP, AUROC, ranking score, CPM, sensitivities, best F1 and intervals.
fn detection_csv(models: &[ModelResult]) -> String {
    let mut header: Vec<String> = ["model", "cases", "lesions", "ap", "auroc", "ranking_score", "cpm"]
        .map(String::from)
        .to_vec();
    header.extend(
        crate::prob::froc::CPM_FP_RATES
            .iter()
            .map(|x| format!("sensitivity_at_{x}_fp")),
    );
    header.extend(
        [
            "best_f1",
            "best_f1_threshold",
            "best_f1_precision",
            "best_f1_recall",
            "ci_level",
            "ap_low",
            "ap_high",
            "auroc_low",
            "auroc_high",
            "ranking_score_low",
            "ranking_score_high",
            "cpm_low",
            "cpm_high",
        ]
        .map(String::from),
    );
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let rows = with_detection(models).map(|(m, d)| {
        let mut row = vec![
            model_label(m),
            d.num_cases.to_string(),
            d.num_lesions.to_string(),
            num(d.ap),
            num(d.auroc),
            num(d.ranking_score),
            num(d.cpm),
        ];
        row.extend(d.sensitivity_at.iter().map(|s| num(s.sensitivity)));
        match &d.best_f1 {
            Some(b) => row.extend([num(b.f1), num(b.threshold), num(b.precision), num(b.recall)]),
            None => row.extend(vec![String::new(); 4]),
        }
        match &d.bootstrap {
            Some(b) => {
                row.push(num(b.level));
                for i in [b.ap, b.auroc, b.ranking_score, b.cpm] {
                    row.extend([num(i.low), num(i.high)]);
                }
            }
            None => row.extend(vec![String::new(); 9]),
        }
        row
    });
    csv_string(&header, rows)
}

/// A CSV of per-model detection rows: `rows_of` gives one model's rows, and
/// with several models (or regions) each row starts with the model's label.
fn detection_rows_csv(
    models: &[ModelResult],
    many: bool,
    columns: &[&str],
    rows_of: impl Fn(&DetectionSummary) -> Vec<Vec<String>>,
) -> String {
    let mut header = columns.to_vec();
    if many {
        header.insert(0, "model");
    }
    let rows = with_detection(models).flat_map(|(m, d)| {
        rows_of(d).into_iter().map(move |mut row| {
            if many {
                row.insert(0, model_label(m));
            }
            row
        })
    });
    csv_string(&header, rows)
}

fn froc_csv(models: &[ModelResult], many: bool) -> String {
    let columns = ["threshold", "tp", "fp", "sensitivity", "fp_per_case"];
    detection_rows_csv(models, many, &columns, |d| {
        d.froc
            .iter()
            .map(|p| {
                [p.threshold, p.tp, p.fp, p.sensitivity, p.fp_per_case]
                    .map(num)
                    .to_vec()
            })
            .collect()
    })
}

fn thresholds_csv(models: &[ModelResult], many: bool) -> String {
    let columns = ["threshold", "tp", "fp", "fn", "precision", "recall", "f1"];
    detection_rows_csv(models, many, &columns, |d| {
        d.operating_points
            .iter()
            .map(|p| {
                vec![
                    num(p.threshold),
                    p.tp.to_string(),
                    p.fp.to_string(),
                    p.fn_.to_string(),
                    num(p.precision),
                    num(p.recall),
                    num(p.f1),
                ]
            })
            .collect()
    })
}

/// Every entry of every case's lesion list: GT lesions (hit or missed) and false-positive candidates.
fn candidates_csv(models: &[ModelResult], many: bool) -> String {
    detection_rows_csv(models, many, &["case", "kind", "confidence", "iou"], |d| {
        d.cases
            .iter()
            .flat_map(|c| {
                c.lesions.iter().map(|l| {
                    let kind = match (l.lesion, l.confidence > 0.0) {
                        (true, true) => "tp",
                        (true, false) => "fn",
                        (false, _) => "fp",
                    };
                    vec![c.case.clone(), kind.to_string(), num(l.confidence), num(l.iou)]
                })
            })
            .collect()
    })
}

/// The `label --stats` table: one row per lesion of one labelled volume.
pub fn lesion_stats_csv(lesions: &[crate::label::LesionStats], g: &crate::io::Geometry) -> String {
    let mut header = vec!["id", "voxels", "volume_mm3"];
    header.extend(POSITION_COLUMNS);
    let rows = lesions.iter().enumerate().map(|(i, l)| {
        let mut row = vec![(i + 1).to_string(), l.voxels.to_string(), l.volume_mm3(g).to_string()];
        row.extend(position_cells(l.centroid(), l.centroid_mm(g), l.bbox_min, l.bbox_max));
        row
    });
    csv_string(&header, rows)
}

/// The CSV files have a `model` column with several models, or with label regions.
pub fn with_model_column(models: &[ModelResult]) -> bool {
    models.len() > 1 || models.iter().any(|m| m.region.is_some())
}

/// The model column of the CSV files: the name, and `:region` in multi-class runs.
pub fn model_label(m: &ModelResult) -> String {
    match &m.region {
        Some(r) => format!("{}:{}", m.name, r.name),
        None => m.name.clone(),
    }
}
