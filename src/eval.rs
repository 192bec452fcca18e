//! Scoring: read → label → filter → overlap table → match → counts, for every
//! case of every model. The GT of a case is read and labelled once and shared
//! by all models; cases run in parallel (rayon) and results are gathered in
//! case order, so output never depends on scheduling.

use crate::dataset::{Case, Missing};
use crate::error::{Error, Result};
use crate::io::{self, Geometry};
use crate::label::{self, Components, Connectivity, Device, LesionStats};
use crate::matching::graph::{self, Correspondence, CorrespondenceCounts};
use crate::matching::{self, Assignment, Criterion, Measure, OverlapTable};
use crate::metrics::surface::{self, SegMetrics, SurfaceRule};
use crate::metrics::{self, Counts, Macro, Rates};
use crate::preset::Preset;
use crate::prob::run::ProbRecord;
use crate::prob::summary::DetectionSummary;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A minimum lesion size, in voxels or in mm³.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MinSize {
    Voxels(u64),
    /// Keep lesions of at least this volume.
    Mm3(f64),
    /// Keep lesions of more than this volume, as Anima does it: at least
    /// floor(X / voxel volume) + 1 voxels (`>3mm3`).
    AboveMm3(f64),
}

impl Default for MinSize {
    fn default() -> Self {
        MinSize::Voxels(0)
    }
}

impl MinSize {
    /// Smallest voxel count kept on a grid with this voxel volume.
    pub fn min_voxels(&self, voxel_volume: f64) -> u64 {
        match *self {
            MinSize::Voxels(n) => n,
            // voxels·vv ≥ X; the epsilon keeps 3 mm³ at 1 mm³ voxels at 3, not 4.
            MinSize::Mm3(x) => ((x / voxel_volume) - 1e-9).ceil().max(0.0) as u64,
            // Saturating: `>1e30mm3` keeps nothing, it must not wrap to keeping everything.
            MinSize::AboveMm3(x) => ((x / voxel_volume).floor().max(0.0) as u64).saturating_add(1),
        }
    }
}

impl std::str::FromStr for MinSize {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let t = s.trim();
        let (above, t) = match t.strip_prefix('>') {
            Some(rest) => (true, rest.trim()),
            None => (false, t),
        };
        if above && !t.ends_with("mm3") {
            return Err(format!("invalid size {s:?}: '>' goes with a volume, e.g. >3mm3"));
        }
        if let Some(v) = t.strip_suffix("mm3") {
            let x: f64 = v
                .trim()
                .parse()
                .map_err(|_| format!("invalid size {s:?} (expected N or Xmm3)"))?;
            if !x.is_finite() || x < 0.0 {
                return Err(format!("invalid size {s:?}: must be ≥ 0"));
            }
            return Ok(if above { MinSize::AboveMm3(x) } else { MinSize::Mm3(x) });
        }
        t.parse::<u64>()
            .map(MinSize::Voxels)
            .map_err(|_| format!("invalid size {s:?} (expected a voxel count N or a volume like 3mm3)"))
    }
}

impl std::fmt::Display for MinSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MinSize::Voxels(n) => write!(f, "{n}"),
            MinSize::Mm3(x) => write!(f, "{x}mm3"),
            MinSize::AboveMm3(x) => write!(f, ">{x}mm3"),
        }
    }
}

/// Label values evaluated together as one foreground (`--labels 1,2`, `--region WT=1,2,3`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    pub name: String,
    pub labels: Vec<u32>,
}

impl std::str::FromStr for Region {
    type Err = String;
    /// `NAME=1,2,3`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (name, list) = s
            .split_once('=')
            .ok_or_else(|| format!("region must be NAME=L1,L2,… (e.g. WT=1,2,3), not {s:?}"))?;
        let name = name.trim();
        if name.is_empty() || name.contains([':', ',', '/']) {
            return Err(format!(
                "region name {name:?} must be non-empty without ':', ',' or '/'"
            ));
        }
        Ok(Region {
            name: name.to_string(),
            labels: parse_labels(list)?,
        })
    }
}

/// `1,2,3` → [1, 2, 3] (sorted, no duplicates, no 0: 0 is background).
pub fn parse_labels(list: &str) -> std::result::Result<Vec<u32>, String> {
    let mut labels = list
        .split(',')
        .map(|v| {
            v.trim()
                .parse::<u32>()
                .map_err(|_| format!("label {v:?} is not a whole number ≥ 1"))
        })
        .collect::<std::result::Result<Vec<u32>, String>>()?;
    if labels.contains(&0) {
        return Err("label 0 is background and cannot be evaluated".into());
    }
    labels.sort_unstable();
    labels.dedup();
    Ok(labels)
}

/// Every setting that changes a count.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalConfig {
    pub connectivity: Connectivity,
    pub criterion: Criterion,
    pub assignment: Assignment,
    pub min_size_gt: MinSize,
    pub min_size_pred: MinSize,
    pub geometry_tolerance: f64,
    pub missing: Missing,
    /// Where labelling runs; never changes a count (CPU and GPU labels are identical).
    pub device: Device,
    /// Unmatched predictions that qualify with some GT lesion are neither TP nor FP (picai).
    pub ignore_unmatched_overlap: bool,
    /// The challenge preset the rules came from, for its own per-case numbers.
    pub preset: Option<Preset>,
    /// Label regions scored separately (empty: every non-zero voxel is foreground).
    pub regions: Vec<Region>,
    /// The surface per-lesion HD95 and ASSD are measured on.
    pub surface: SurfaceRule,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            connectivity: Connectivity::TwentySix,
            criterion: Criterion::default(),
            assignment: Assignment::OneToOne,
            min_size_gt: MinSize::default(),
            min_size_pred: MinSize::default(),
            geometry_tolerance: 1e-3,
            missing: Missing::Error,
            device: Device::Cpu,
            ignore_unmatched_overlap: false,
            preset: None,
            regions: Vec::new(),
            surface: SurfaceRule::Voxels,
        }
    }
}

/// The config as written into results.json (and read back by `check` and `merge`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConfigRecord {
    pub connectivity: u8,
    #[serde(rename = "match")]
    pub match_rule: String,
    pub strict: bool,
    pub assign: String,
    pub min_size_gt: String,
    pub min_size_pred: String,
    pub geometry_tolerance_mm: f64,
    pub missing: Missing,
    /// `--unmatched-overlap ignore` (absent = count them as FP).
    #[serde(default, skip_serializing_if = "is_false")]
    pub ignore_unmatched_overlap: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<Region>,
    /// `surfels` when HD95/ASSD use DeepMind's surfels (absent = surface voxels).
    #[serde(default, skip_serializing_if = "is_voxels")]
    pub surface: SurfaceRule,
    /// Probability-map runs only (`score --prob`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prob: Option<ProbRecord>,
    /// Keys this version does not know (a later one wrote them): kept, so that
    /// `check` compares them too and `merge` writes them back.
    #[serde(flatten)]
    pub unknown: std::collections::BTreeMap<String, serde_json::Value>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_voxels(r: &SurfaceRule) -> bool {
    *r == SurfaceRule::Voxels
}

impl EvalConfig {
    pub fn record(&self) -> ConfigRecord {
        ConfigRecord {
            connectivity: self.connectivity.as_u8(),
            match_rule: self.criterion.to_string(),
            strict: self.criterion.strict,
            assign: self.assignment.to_string(),
            min_size_gt: self.min_size_gt.to_string(),
            min_size_pred: self.min_size_pred.to_string(),
            geometry_tolerance_mm: self.geometry_tolerance,
            missing: self.missing,
            ignore_unmatched_overlap: self.ignore_unmatched_overlap,
            preset: self.preset.map(|p| p.to_string()),
            regions: self.regions.clone(),
            surface: self.surface,
            prob: None,
            unknown: Default::default(),
        }
    }
}

/// Wall time spent per stage, summed over cases (and threads).
#[derive(Debug, Default)]
pub struct Timings {
    pub read: AtomicU64,
    pub label: AtomicU64,
    pub matching: AtomicU64,
    pub write: AtomicU64,
}

impl Timings {
    /// Runs `f`, adding its duration to `slot`.
    pub fn time<T>(slot: &AtomicU64, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        slot.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        out
    }

    fn ms(slot: &AtomicU64) -> f64 {
        slot.load(Ordering::Relaxed) as f64 / 1e6
    }

    /// `timing read=1.234ms label=… match=… write=…` (one line, for humans and scripts).
    pub fn line(&self) -> String {
        format!(
            "timing read={:.3}ms label={:.3}ms match={:.3}ms write={:.3}ms",
            Self::ms(&self.read),
            Self::ms(&self.label),
            Self::ms(&self.matching),
            Self::ms(&self.write)
        )
    }
}

/// Lesion status in the lesion table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status {
    TP,
    FP,
    FN,
    /// An unmatched prediction left out of the counts (`--unmatched-overlap ignore`).
    Ignored,
}

/// One lesion of either side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LesionRow {
    pub side: &'static str,
    pub id: u32,
    pub voxels: u64,
    pub volume_mm3: f64,
    pub centroid_vox: [f64; 3],
    pub centroid_mm: [f64; 3],
    pub bbox_min: [usize; 3],
    pub bbox_max: [usize; 3],
    pub status: Status,
    pub matched: Vec<u32>,
    pub best_iou: f64,
    /// Its class in the correspondence graph (one-to-one, split, merge, complex, none).
    pub correspondence: Correspondence,
    /// Share of its voxels covered by any lesion of the other side (Anima's α compares this).
    pub covered: f64,
    /// Matched lesions: Dice, IoU, HD95 and ASSD against the union of its matches.
    pub seg: Option<SegMetrics>,
}

/// Results of one case for one model.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseResult {
    pub case: String,
    pub counts: Counts,
    pub rates: Rates,
    pub mean_iou: Option<f64>,
    pub missing_prediction: bool,
    pub lesions: Vec<LesionRow>,
    /// Size and outcome of each GT lesion (written to results.json for the size plots).
    pub gt_lesions: Vec<GtLesion>,
    /// Components of the correspondence graph by class.
    pub correspondence: CorrespondenceCounts,
    /// The preset's own per-case numbers (empty without a preset that has some).
    pub preset_metrics: BTreeMap<String, Option<f64>>,
}

/// One GT lesion's volume and whether it was detected.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GtLesion {
    pub mm3: f64,
    pub tp: bool,
}

/// Results of one model over all cases.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelResult {
    pub name: String,
    pub pred: String,
    pub cases: Vec<CaseResult>,
    pub total: Counts,
    pub total_rates: Rates,
    pub macro_avg: Macro,
    pub missing: Vec<String>,
    /// Probability-map runs only: FROC, AP, AUROC and their per-case lesion lists.
    pub detection: Option<DetectionSummary>,
    /// Correspondence classes summed over cases.
    pub correspondence: CorrespondenceCounts,
    /// Mean of each preset metric over the cases where it is defined.
    pub preset_metrics_mean: BTreeMap<String, Option<f64>>,
    /// The label region these results are for (multi-class runs).
    pub region: Option<Region>,
}

/// A labelled, size-filtered mask.
pub struct Labelled {
    pub components: Components,
    pub geometry: Geometry,
    /// BraTS' merged GT lesions, computed once per GT however many models use it.
    merged: std::sync::OnceLock<matching::dilated::Merged>,
}

impl Labelled {
    pub fn new(components: Components, geometry: Geometry) -> Self {
        Labelled {
            components,
            geometry,
            merged: std::sync::OnceLock::new(),
        }
    }
}

impl Labelled {
    /// No lesions, on `geometry`'s grid (a missing prediction).
    pub fn empty(geometry: &Geometry) -> Self {
        Labelled::new(
            Components {
                shape: geometry.shape,
                labels: vec![0; geometry.len()],
                lesions: Vec::new(),
            },
            geometry.clone(),
        )
    }
}

/// Reads and labels one mask on the CPU, removing lesions below `min_size`.
pub fn read_and_label(
    path: &Path,
    connectivity: Connectivity,
    min_size: MinSize,
    timings: &Timings,
) -> Result<Labelled> {
    let vol = Timings::time(&timings.read, || io::read_mask(path))?;
    label_volume(
        &vol.data,
        &vol.geometry,
        connectivity,
        min_size,
        Device::Cpu,
        timings,
        path,
    )
}

/// Labels a mask read from `source` (named in errors).
pub(crate) fn label_volume(
    data: &[u8],
    geometry: &Geometry,
    connectivity: Connectivity,
    min_size: MinSize,
    device: Device,
    timings: &Timings,
    source: &Path,
) -> Result<Labelled> {
    let mut components = Timings::time(&timings.label, || {
        label::label_file(data, geometry.shape, connectivity, device, source)
    })?;
    components.remove_smaller_than(min_size.min_voxels(geometry.voxel_volume()));
    Ok(Labelled::new(components, geometry.clone()))
}

/// Scores one case given labelled GT and prediction.
pub fn score_case(
    case: &str,
    gt: &Labelled,
    pred: &Labelled,
    config: &EvalConfig,
    missing_prediction: bool,
) -> CaseResult {
    if let Assignment::Dilated { iterations } = config.assignment {
        return score_case_dilated(case, gt, pred, config, missing_prediction, iterations);
    }
    let table = OverlapTable::build(&gt.components, &pred.components);
    let m = matching::match_lesions(&table, &config.criterion, config.assignment);
    let (tp, tp_pred) = (m.tp(), m.tp_pred());
    let graph = graph::correspondence(&table);
    // Unmatched predictions that qualify with some GT lesion (picai's rule leaves them out).
    let mut ignored_pred = vec![false; pred.components.lesions.len()];
    if config.ignore_unmatched_overlap {
        // Anima's test does not use --match; "qualifies with some GT lesion"
        // is then any overlap, as under --preset anima, whatever --match says.
        let qualify = match config.assignment {
            Assignment::Anima { .. } => Criterion {
                measure: Measure::Any,
                threshold: 0.0,
                strict: false,
            },
            _ => config.criterion,
        };
        for (p, q) in table.pred_qualifies(&qualify).into_iter().enumerate() {
            ignored_pred[p] = q && m.pred_matched[p].is_empty();
        }
    }
    let ignored = ignored_pred.iter().filter(|&&b| b).count() as u64;
    let counts = Counts {
        gt: gt.components.count() as u64,
        pred: pred.components.count() as u64,
        tp,
        fp: pred.components.count() as u64 - tp_pred - ignored,
        fn_: gt.components.count() as u64 - tp,
        tp_pred,
        ignored,
        gt_voxels: gt.components.foreground(),
        pred_voxels: pred.components.foreground(),
        intersection_voxels: table.total_intersection(),
    };
    let mut lesions = Vec::with_capacity(gt.components.lesions.len() + pred.components.lesions.len());
    let sides = [
        (
            "gt",
            &gt.components,
            &gt.geometry,
            &m.gt_matched,
            &m.gt_best_iou,
            Status::FN,
            &graph.gt,
        ),
        (
            "pred",
            &pred.components,
            &pred.geometry,
            &m.pred_matched,
            &m.pred_best_iou,
            Status::FP,
            &graph.pred,
        ),
    ];
    // Voxels of each lesion covered by the other side.
    let mut gt_cov = vec![0u64; gt.components.lesions.len()];
    let mut pred_cov = vec![0u64; pred.components.lesions.len()];
    for &(g, p, inter) in &table.pairs {
        gt_cov[g as usize - 1] += inter;
        pred_cov[p as usize - 1] += inter;
    }
    let spacing = gt.geometry.spacing;
    for (side, comps, geom, matched, best, miss, classes) in sides {
        let (own, other, cov) = if side == "gt" {
            (&gt.components, &pred.components, &gt_cov)
        } else {
            (&pred.components, &gt.components, &pred_cov)
        };
        for (i, l) in comps.lesions.iter().enumerate() {
            let seg = (!matched[i].is_empty())
                .then(|| seg_against(own, i as u32 + 1, other, &matched[i], spacing, config.surface));
            let status = if !matched[i].is_empty() {
                Status::TP
            } else if side == "pred" && ignored_pred[i] {
                Status::Ignored
            } else {
                miss
            };
            lesions.push(lesion_row(
                side,
                i,
                l,
                geom,
                status,
                &matched[i],
                best[i],
                classes[i],
                cov[i],
                seg,
            ));
        }
    }
    let gt_lesions = lesions
        .iter()
        .filter(|l| l.side == "gt")
        .map(|l| GtLesion {
            mm3: l.volume_mm3,
            tp: l.status == Status::TP,
        })
        .collect();
    let mean_iou = m.mean_iou(&table);
    let preset_metrics = match config.preset {
        Some(p) => p.case_metrics(&counts, mean_iou, m.mean_dice(&table)),
        None => BTreeMap::new(),
    };
    CaseResult {
        case: case.to_string(),
        counts,
        rates: counts.rates(),
        mean_iou,
        missing_prediction,
        lesions,
        gt_lesions,
        correspondence: graph.counts,
        preset_metrics,
    }
}

/// Cost of a missed lesion or a false positive in BraTS' lesion-wise HD95 (mm).
pub const BRATS_MISS_HD95: f64 = 374.0;

/// BraTS 2023 lesion-wise scoring (`--assign dilated:K`, see `matching::dilated`):
/// counts on merged GT lesions, plus the lesion-wise Dice and HD95 as preset metrics.
fn score_case_dilated(
    case: &str,
    gt: &Labelled,
    pred: &Labelled,
    config: &EvalConfig,
    missing_prediction: bool,
    iterations: u32,
) -> CaseResult {
    let shape = gt.geometry.shape;
    // The iterations are fixed for a run, so the GT's merge is shared by every model.
    let merged = gt.merged.get_or_init(|| {
        let mask: Vec<u8> = gt.components.labels.iter().map(|&l| u8::from(l != 0)).collect();
        matching::dilated::merge(&mask, shape, iterations)
    });
    let min_voxels = config.min_size_gt.min_voxels(gt.geometry.voxel_volume());
    let kept: Vec<bool> = merged.lesions.lesions.iter().map(|l| l.voxels >= min_voxels).collect();
    let hits_table = OverlapTable::build(&merged.dilated, &pred.components);
    let table = OverlapTable::build(&merged.lesions, &pred.components);
    let (ng, np) = (merged.lesions.lesions.len(), pred.components.lesions.len());
    let mut gt_hits = vec![Vec::new(); ng];
    let mut pred_hits = vec![Vec::new(); np];
    for &(g, p, _) in &hits_table.pairs {
        gt_hits[g as usize - 1].push(p);
        pred_hits[p as usize - 1].push(g);
    }
    let pred_status: Vec<Status> = pred_hits
        .iter()
        .map(|h| {
            if h.iter().any(|&g| kept[g as usize - 1]) {
                Status::TP
            } else if h.is_empty() {
                Status::FP
            } else {
                Status::Ignored
            }
        })
        .collect();
    let count = |st: Status| pred_status.iter().filter(|&&s| s == st).count() as u64;
    let (tp_pred, fp, ignored) = (count(Status::TP), count(Status::FP), count(Status::Ignored));
    let n_kept = kept.iter().filter(|&&k| k).count() as u64;
    let tp = (0..ng).filter(|&g| kept[g] && !gt_hits[g].is_empty()).count() as u64;
    let counts = Counts {
        gt: n_kept,
        pred: np as u64,
        tp,
        fp,
        fn_: n_kept - tp,
        tp_pred,
        ignored,
        // The voxel Dice, like the counts, sees only the kept (large enough) GT lesions.
        gt_voxels: (0..ng)
            .filter(|&g| kept[g])
            .map(|g| merged.lesions.lesions[g].voxels)
            .sum(),
        pred_voxels: pred.components.foreground(),
        intersection_voxels: table
            .pairs
            .iter()
            .filter(|&&(g, _, _)| kept[g as usize - 1])
            .map(|&(_, _, i)| i)
            .sum(),
    };
    let graph = graph::correspondence(&table);
    let spacing = gt.geometry.spacing;
    let seg_of = |own: &Components, id: u32, other: &Components, with: &[u32]| {
        seg_against(own, id, other, with, spacing, config.surface)
    };
    let mut best = (vec![0.0f64; ng], vec![0.0f64; np]);
    let mut cov = (vec![0u64; ng], vec![0u64; np]);
    for &(g, p, inter) in &table.pairs {
        let iou = table.iou(g, p, inter);
        let (gi, pi) = (g as usize - 1, p as usize - 1);
        best.0[gi] = best.0[gi].max(iou);
        best.1[pi] = best.1[pi].max(iou);
        cov.0[gi] += inter;
        cov.1[pi] += inter;
    }
    let mut lesions = Vec::with_capacity(ng + np);
    let (mut dice_sum, mut hd_sum) = (0.0, 0.0);
    let mut iou_sum = (0.0, 0usize);
    let mut gt_lesions = Vec::new();
    for (i, l) in merged.lesions.lesions.iter().enumerate() {
        let hits = &gt_hits[i];
        let seg = (!hits.is_empty()).then(|| seg_of(&merged.lesions, i as u32 + 1, &pred.components, hits));
        if kept[i] {
            match &seg {
                Some(m) => {
                    dice_sum += m.dice;
                    hd_sum += m.hd95_mm;
                    iou_sum = (iou_sum.0 + m.iou, iou_sum.1 + 1);
                }
                None => hd_sum += BRATS_MISS_HD95,
            }
            gt_lesions.push(GtLesion {
                mm3: l.volume_mm3(&gt.geometry),
                tp: !hits.is_empty(),
            });
        }
        let status = match (kept[i], hits.is_empty()) {
            (false, _) => Status::Ignored,
            (true, true) => Status::FN,
            (true, false) => Status::TP,
        };
        lesions.push(lesion_row(
            "gt",
            i,
            l,
            &gt.geometry,
            status,
            hits,
            best.0[i],
            graph.gt[i],
            cov.0[i],
            seg,
        ));
    }
    for (i, l) in pred.components.lesions.iter().enumerate() {
        let hits = &pred_hits[i];
        let seg = (!hits.is_empty()).then(|| seg_of(&pred.components, i as u32 + 1, &merged.lesions, hits));
        lesions.push(lesion_row(
            "pred",
            i,
            l,
            &pred.geometry,
            pred_status[i],
            hits,
            best.1[i],
            graph.pred[i],
            cov.1[i],
            seg,
        ));
    }
    // Lesion-wise Dice and HD95: kept GT lesions and FPs in the denominator; nothing to score → 1 and 0.
    let denom = (n_kept + fp) as f64;
    let (lw_dice, lw_hd95) = if denom == 0.0 {
        (1.0, 0.0)
    } else {
        (dice_sum / denom, (hd_sum + BRATS_MISS_HD95 * fp as f64) / denom)
    };
    let mut preset_metrics = BTreeMap::new();
    preset_metrics.insert("lesion_wise_dice".to_string(), Some(lw_dice));
    preset_metrics.insert("lesion_wise_hd95".to_string(), Some(lw_hd95));
    CaseResult {
        case: case.to_string(),
        counts,
        rates: counts.rates(),
        mean_iou: (iou_sum.1 > 0).then(|| iou_sum.0 / iou_sum.1 as f64),
        missing_prediction,
        lesions,
        gt_lesions,
        correspondence: graph.counts,
        preset_metrics,
    }
}

/// Dice, IoU, HD95 and ASSD of lesion `id` of `own` against the union of lesions `with` of
/// `other`, on the crop of their bounding boxes.
fn seg_against(
    own: &Components,
    id: u32,
    other: &Components,
    with: &[u32],
    spacing: [f64; 3],
    rule: SurfaceRule,
) -> SegMetrics {
    let l = &own.lesions[id as usize - 1];
    let (mut lo, mut hi) = (l.bbox_min, l.bbox_max);
    for &o in with {
        let ol = &other.lesions[o as usize - 1];
        for k in 0..3 {
            lo[k] = lo[k].min(ol.bbox_min[k]);
            hi[k] = hi[k].max(ol.bbox_max[k]);
        }
    }
    surface::compare(
        own.shape,
        spacing,
        lo,
        hi,
        rule,
        |v| own.labels[v] == id,
        |v| other.labels[v] != 0 && with.contains(&other.labels[v]),
    )
}

#[allow(clippy::too_many_arguments)]
fn lesion_row(
    side: &'static str,
    i: usize,
    l: &LesionStats,
    geom: &Geometry,
    status: Status,
    matched: &[u32],
    best_iou: f64,
    correspondence: Correspondence,
    covered: u64,
    seg: Option<SegMetrics>,
) -> LesionRow {
    LesionRow {
        side,
        id: i as u32 + 1,
        voxels: l.voxels,
        volume_mm3: l.volume_mm3(geom),
        centroid_vox: l.centroid(),
        centroid_mm: l.centroid_mm(geom),
        bbox_min: l.bbox_min,
        bbox_max: l.bbox_max,
        status,
        matched: matched.to_vec(),
        best_iou,
        correspondence,
        covered: covered as f64 / l.voxels as f64,
        seg,
    }
}

/// Scores every case of every model. `names[m]`/`pred_paths[m]` describe model
/// m; `missing[m]` lists the ids scored as empty. `on_case` is called after
/// each case (for progress bars).
pub fn evaluate(
    cases: &[Case],
    names: &[String],
    pred_paths: &[String],
    missing: &[Vec<String>],
    config: &EvalConfig,
    timings: &Timings,
    on_case: &(dyn Fn() + Sync),
) -> Result<Vec<ModelResult>> {
    let per_case: Vec<Result<Vec<CaseResult>>> = cases
        .par_iter()
        .map(|case| {
            let out = evaluate_case(case, config, timings);
            on_case();
            out
        })
        .collect();
    // One result per (region, model), region-major: all models of the first region, then the next.
    let regions: Vec<Option<&Region>> = if config.regions.is_empty() {
        vec![None]
    } else {
        config.regions.iter().map(Some).collect()
    };
    let slots = regions.len() * names.len();
    let mut by_slot: Vec<Vec<CaseResult>> = vec![Vec::with_capacity(cases.len()); slots];
    for res in per_case {
        for (k, r) in res?.into_iter().enumerate() {
            by_slot[k].push(r);
        }
    }
    Ok(by_slot
        .into_iter()
        .enumerate()
        .map(|(k, cases)| {
            let (r, m) = (k / names.len(), k % names.len());
            let mut res = model_result(
                names[m].clone(),
                pred_paths[m].clone(),
                cases,
                missing.get(m).cloned().unwrap_or_default(),
            );
            res.region = regions[r].cloned();
            res
        })
        .collect())
}

/// Micro totals and macro means of one model's cases, summed in the given case
/// order. `merge` rebuilds sharded results through this same function, so the
/// floats come out bit-identical to an unsharded run.
pub fn model_result(name: String, pred: String, cases: Vec<CaseResult>, missing: Vec<String>) -> ModelResult {
    let mut total = Counts::default();
    let mut correspondence = CorrespondenceCounts::default();
    // Sum and count of each preset metric where it is defined.
    let mut preset: BTreeMap<String, (f64, u64)> = BTreeMap::new();
    for c in &cases {
        total += c.counts;
        correspondence += c.correspondence;
        for (k, v) in &c.preset_metrics {
            let e = preset.entry(k.clone()).or_default();
            if let Some(v) = v {
                e.0 += v;
                e.1 += 1;
            }
        }
    }
    let preset_metrics_mean = preset
        .into_iter()
        .map(|(k, (sum, n))| (k, (n > 0).then(|| sum / n as f64)))
        .collect();
    let macro_avg = metrics::macro_average(cases.iter().map(|c| (&c.rates, c.mean_iou)));
    ModelResult {
        name,
        pred,
        total_rates: total.rates(),
        total,
        macro_avg,
        cases,
        missing,
        detection: None,
        correspondence,
        preset_metrics_mean,
        region: None,
    }
}

/// Errors unless `other` (read from `path`) lies on the GT's grid.
pub(crate) fn same_grid(gt_path: &Path, gt: &Geometry, path: &Path, other: &Geometry, tolerance: f64) -> Result<()> {
    match gt.mismatch(other, tolerance) {
        Some(detail) => Err(Error::Geometry {
            gt: gt_path.to_path_buf(),
            pred: path.to_path_buf(),
            detail,
        }),
        None => Ok(()),
    }
}

fn evaluate_case(case: &Case, config: &EvalConfig, timings: &Timings) -> Result<Vec<CaseResult>> {
    let gt_masks = Timings::time(&timings.read, || read_region_masks(&case.gt, &config.regions))?;
    let mut gts = Vec::with_capacity(gt_masks.len());
    for (data, geometry) in &gt_masks {
        // BraTS' rule drops small GT lesions only after merging them (in score_case).
        let min_gt = match config.assignment {
            Assignment::Dilated { .. } => MinSize::Voxels(0),
            _ => config.min_size_gt,
        };
        gts.push(label_volume(
            data,
            geometry,
            config.connectivity,
            min_gt,
            config.device,
            timings,
            &case.gt,
        )?);
    }
    let geometry = gt_masks[0].1.clone();
    drop(gt_masks);
    // preds[m][r]: model m's labelled mask of region r (None = scored as empty).
    let mut preds: Vec<Option<Vec<Labelled>>> = Vec::with_capacity(case.preds.len());
    for pred_path in &case.preds {
        preds.push(match pred_path {
            Some(p) => {
                let masks = Timings::time(&timings.read, || read_region_masks(p, &config.regions))?;
                same_grid(&case.gt, &geometry, p, &masks[0].1, config.geometry_tolerance)?;
                let mut labelled = Vec::with_capacity(masks.len());
                for (data, g) in &masks {
                    labelled.push(label_volume(
                        data,
                        g,
                        config.connectivity,
                        config.min_size_pred,
                        config.device,
                        timings,
                        p,
                    )?);
                }
                Some(labelled)
            }
            None => None,
        });
    }
    let empty = Labelled::empty(&geometry);
    let mut out = Vec::with_capacity(gts.len() * preds.len());
    for (r, gt) in gts.iter().enumerate() {
        for pred in &preds {
            let (p, missing) = match pred {
                Some(v) => (&v[r], false),
                None => (&empty, true),
            };
            out.push(Timings::time(&timings.matching, || {
                score_case(&case.id, gt, p, config, missing)
            }));
        }
    }
    // The label volumes are done with: the next case on this thread writes into them.
    for l in gts.into_iter().chain(preds.into_iter().flatten().flatten()) {
        label::recycle(l.components);
    }
    Ok(out)
}

/// The binary masks of a file: one per region, or one of every non-zero voxel without regions.
pub(crate) fn read_region_masks(path: &Path, regions: &[Region]) -> Result<Vec<(Vec<u8>, Geometry)>> {
    if regions.is_empty() {
        let v = io::read_mask(path)?;
        return Ok(vec![(v.data, v.geometry)]);
    }
    let v = io::read_labels(path)?;
    Ok(regions
        .iter()
        .map(|r| {
            let data = v
                .data
                .iter()
                .map(|l| u8::from(r.labels.binary_search(l).is_ok()))
                .collect();
            (data, v.geometry.clone())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_size_parses_and_converts() {
        assert_eq!("5".parse::<MinSize>().unwrap(), MinSize::Voxels(5));
        assert_eq!("3mm3".parse::<MinSize>().unwrap(), MinSize::Mm3(3.0));
        assert!("-3mm3".parse::<MinSize>().is_err());
        assert!("abc".parse::<MinSize>().is_err());
        assert_eq!(MinSize::Mm3(3.0).min_voxels(1.0), 3);
        assert_eq!(MinSize::Mm3(3.0).min_voxels(0.512), 6); // 5.86 → 6 voxels
        assert_eq!(MinSize::Mm3(0.0).min_voxels(0.5), 0);
        // Anima: strictly more than 3 mm³.
        assert_eq!(">3mm3".parse::<MinSize>().unwrap(), MinSize::AboveMm3(3.0));
        assert_eq!(MinSize::AboveMm3(3.0).min_voxels(1.0), 4);
        assert_eq!(MinSize::AboveMm3(3.0).min_voxels(0.512), 6);
        assert!(">3".parse::<MinSize>().is_err());
    }
}
