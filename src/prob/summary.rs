//! The detection results of a probability-map run as they are written to
//! (and read back from) results.json: the per-case lesion lists that every
//! number is computed from, the FROC and precision–recall operating points,
//! the summary metrics and their bootstrap intervals.
//!
//! The per-case lists are kept so that `merge` can rebuild a sharded run's
//! curves and intervals exactly, and `plot` can draw them without rescoring.
//! JSON has no NaN or ∞: such values are written as `null` (an undefined
//! metric, or the FROC's last false-positive count, which picai sets to ∞).

use super::froc::{self, BootstrapCi, CaseDetections, DetectionMetrics, LesionScore};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One GT lesion (hit or missed) or false-positive candidate of a case.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LesionRecord {
    /// True for a GT lesion, false for a false-positive candidate.
    pub lesion: bool,
    /// The matched candidate's confidence (0 for a missed lesion).
    pub confidence: f64,
    /// IoU of the matched pair (0 for misses and false positives).
    pub iou: f64,
}

/// What one case contributes to the curves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseRecord {
    pub case: String,
    /// The case has at least one GT lesion.
    pub target: bool,
    /// Case-level score: the highest candidate confidence (0 without candidates).
    pub score: f64,
    pub lesions: Vec<LesionRecord>,
}

impl CaseRecord {
    pub fn new(case: &str, d: &CaseDetections) -> Self {
        CaseRecord {
            case: case.to_string(),
            target: d.target,
            score: d.score,
            lesions: d
                .lesions
                .iter()
                .map(|l| LesionRecord {
                    lesion: l.is_lesion,
                    confidence: l.confidence,
                    iou: l.overlap,
                })
                .collect(),
        }
    }

    pub fn detections(&self) -> CaseDetections {
        CaseDetections {
            lesions: self
                .lesions
                .iter()
                .map(|l| LesionScore {
                    is_lesion: l.lesion,
                    confidence: l.confidence,
                    overlap: l.iou,
                })
                .collect(),
            target: self.target,
            score: self.score,
        }
    }
}

/// One FROC operating point (picai's `lesion_TPR`/`lesion_FPR`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FrocPoint {
    pub threshold: f64,
    pub tp: f64,
    /// `null` = ∞ (the last point, as picai sets it).
    #[serde(with = "nullable")]
    pub fp: f64,
    #[serde(with = "nullable")]
    pub sensitivity: f64,
    #[serde(with = "nullable")]
    pub fp_per_case: f64,
}

/// Lesion counts when candidates with confidence ≥ `threshold` are kept.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    pub threshold: f64,
    pub tp: u64,
    pub fp: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
    #[serde(with = "nullable")]
    pub precision: f64,
    #[serde(with = "nullable")]
    pub recall: f64,
    #[serde(with = "nullable")]
    pub f1: f64,
}

/// Sensitivity at one false-positive rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SensitivityAt {
    pub fp_per_case: f64,
    #[serde(with = "nullable")]
    pub sensitivity: f64,
}

/// A percentile interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    #[serde(with = "nullable")]
    pub low: f64,
    #[serde(with = "nullable")]
    pub high: f64,
}

impl From<(f64, f64)> for Interval {
    fn from((low, high): (f64, f64)) -> Self {
        Interval { low, high }
    }
}

/// Bootstrap intervals over cases, including a FROC band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootstrapRecord {
    pub resamples: usize,
    pub seed: u64,
    pub level: f64,
    pub ap: Interval,
    pub auroc: Interval,
    pub ranking_score: Interval,
    pub cpm: Interval,
    /// Sensitivity interval at each of `froc_band_fp_per_case`.
    pub froc_band_fp_per_case: Vec<f64>,
    pub froc_band: Vec<Interval>,
}

impl From<&BootstrapCi> for BootstrapRecord {
    fn from(b: &BootstrapCi) -> Self {
        BootstrapRecord {
            resamples: b.resamples,
            seed: b.seed,
            level: b.level,
            ap: b.ap.into(),
            auroc: b.auroc.into(),
            ranking_score: b.score.into(),
            cpm: b.cpm.into(),
            froc_band_fp_per_case: b.froc_grid.clone(),
            froc_band: b.froc_band.iter().map(|&i| i.into()).collect(),
        }
    }
}

/// Everything a probability-map run reports about detection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionSummary {
    pub num_cases: usize,
    pub num_lesions: usize,
    #[serde(with = "nullable")]
    pub ap: f64,
    #[serde(with = "nullable")]
    pub auroc: f64,
    /// picai's ranking score (AUROC + AP) / 2.
    #[serde(with = "nullable")]
    pub ranking_score: f64,
    /// Mean sensitivity at 1/8 … 8 false positives per case.
    #[serde(with = "nullable")]
    pub cpm: f64,
    pub sensitivity_at: Vec<SensitivityAt>,
    /// The operating point with the highest F1 (the highest threshold among ties).
    pub best_f1: Option<OperatingPoint>,
    pub bootstrap: Option<BootstrapRecord>,
    /// FROC points, highest threshold first.
    pub froc: Vec<FrocPoint>,
    /// TP/FP/FN, precision, recall and F1 at each distinct candidate confidence, highest first.
    pub operating_points: Vec<OperatingPoint>,
    pub cases: Vec<CaseRecord>,
}

/// Bootstrap settings (0 resamples: no intervals).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BootstrapSettings {
    pub resamples: usize,
    pub seed: u64,
    pub level: f64,
}

/// Computes the summary from per-case lesion lists, in the given case order
/// (the bootstrap draws depend on it, so `merge` passes the unsharded order).
pub fn summarise(cases: Vec<CaseRecord>, boot: BootstrapSettings) -> DetectionSummary {
    let detections: Vec<CaseDetections> = cases.iter().map(CaseRecord::detections).collect();
    let m = froc::detection_metrics(&detections);
    let operating_points = operating_points(&detections, m.num_lesions);
    let best_f1 = operating_points
        .iter()
        .filter(|p| !p.f1.is_nan())
        .fold(None::<&OperatingPoint>, |best, p| match best {
            Some(b) if b.f1 >= p.f1 => Some(b),
            _ => Some(p),
        })
        .copied();
    let bootstrap = (boot.resamples > 0)
        .then(|| BootstrapRecord::from(&froc::bootstrap(&detections, boot.resamples, boot.seed, boot.level)));
    DetectionSummary {
        num_cases: m.num_cases,
        num_lesions: m.num_lesions,
        ap: m.ap,
        auroc: m.auroc,
        ranking_score: m.score,
        cpm: m.cpm(),
        sensitivity_at: froc::CPM_FP_RATES
            .iter()
            .map(|&x| SensitivityAt {
                fp_per_case: x,
                sensitivity: m.sensitivity_at(x),
            })
            .collect(),
        best_f1,
        bootstrap,
        froc: froc_points(&m),
        operating_points,
        cases,
    }
}

fn froc_points(m: &DetectionMetrics) -> Vec<FrocPoint> {
    (0..m.lesion_tp.len())
        .map(|i| FrocPoint {
            // picai's two-point curve for "nothing detected" has no thresholds.
            threshold: m.thresholds.get(i).copied().unwrap_or(0.0),
            tp: m.lesion_tp[i],
            fp: m.lesion_fp[i],
            sensitivity: m.lesion_tpr[i],
            fp_per_case: m.lesion_fpr[i],
        })
        .collect()
}

/// One point per distinct positive confidence: candidates at or above it are
/// kept. The matching was done once with every candidate (picai's rule), so a
/// lesion is a TP at threshold t when its matched candidate's confidence ≥ t.
fn operating_points(cases: &[CaseDetections], num_lesions: usize) -> Vec<OperatingPoint> {
    let mut entries: Vec<&LesionScore> = cases
        .iter()
        .flat_map(|c| &c.lesions)
        .filter(|l| l.confidence > 0.0)
        .collect();
    entries.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    let (mut tp, mut fp) = (0u64, 0u64);
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if e.is_lesion {
            tp += 1;
        } else {
            fp += 1;
        }
        if entries.get(i + 1).is_some_and(|n| n.confidence == e.confidence) {
            continue;
        }
        let fn_ = num_lesions as u64 - tp;
        let precision = tp as f64 / (tp + fp) as f64;
        let recall = if num_lesions == 0 {
            f64::NAN
        } else {
            tp as f64 / num_lesions as f64
        };
        let f1 = if tp + fp + fn_ == 0 {
            f64::NAN
        } else {
            2.0 * tp as f64 / (2 * tp + fp + fn_) as f64
        };
        out.push(OperatingPoint {
            threshold: e.confidence,
            tp,
            fp,
            fn_,
            precision,
            recall,
            f1,
        });
    }
    out
}

/// `f64` fields that may be NaN or ∞: written as `null`, read back as NaN.
pub mod nullable {
    use super::*;

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(case: &str, target: bool, lesions: &[(bool, f64)]) -> CaseRecord {
        CaseRecord {
            case: case.into(),
            target,
            score: lesions.iter().map(|l| l.1).fold(0.0, f64::max),
            lesions: lesions
                .iter()
                .map(|&(lesion, confidence)| LesionRecord {
                    lesion,
                    confidence,
                    iou: 0.0,
                })
                .collect(),
        }
    }

    #[test]
    fn operating_points_and_best_f1_by_hand() {
        // Lesions hit at 0.9 and 0.6, one missed; FPs at 0.8 and 0.6.
        let cases = vec![
            rec("a", true, &[(true, 0.9), (true, 0.0), (false, 0.6)]),
            rec("b", true, &[(true, 0.6), (false, 0.8)]),
        ];
        let s = summarise(
            cases,
            BootstrapSettings {
                resamples: 0,
                seed: 0,
                level: 0.95,
            },
        );
        let pts: Vec<(f64, u64, u64, u64)> = s
            .operating_points
            .iter()
            .map(|p| (p.threshold, p.tp, p.fp, p.fn_))
            .collect();
        assert_eq!(pts, vec![(0.9, 1, 0, 2), (0.8, 1, 1, 2), (0.6, 2, 2, 1)]);
        // F1: 2/5, 2/6, 4/7 → the lowest threshold wins.
        let best = s.best_f1.unwrap();
        assert_eq!((best.threshold, best.f1), (0.6, 4.0 / 7.0));
        assert_eq!(s.operating_points[0].precision, 1.0);
        assert_eq!(s.operating_points[2].recall, 2.0 / 3.0);
        assert!(s.bootstrap.is_none());
    }

    #[test]
    fn non_finite_numbers_round_trip_through_null() {
        let p = FrocPoint {
            threshold: 0.0,
            tp: 1.0,
            fp: f64::INFINITY,
            sensitivity: 0.5,
            fp_per_case: f64::INFINITY,
        };
        let text = serde_json::to_string(&p).unwrap();
        assert_eq!(
            text,
            r#"{"threshold":0.0,"tp":1.0,"fp":null,"sensitivity":0.5,"fp_per_case":null}"#
        );
        let back: FrocPoint = serde_json::from_str(&text).unwrap();
        assert!(back.fp.is_nan() && back.sensitivity == 0.5);
    }
}
