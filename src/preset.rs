//! Challenge presets: every rule of a public evaluation at once, and the
//! challenge's own per-case numbers. Each rule is also an ordinary option;
//! docs/presets.md gives each preset's source and the test that checks it.
//!
//! | preset | connectivity | pair rule | assignment | minimum size | unmatched overlap |
//! |---|---|---|---|---|---|
//! | `picai` | 26 | IoU ≥ 0.1 | one-to-one (Hungarian on IoU + 1) | none | ignored |
//! | `anima` | 6 | – | Anima's α/β/γ test (0.1, 0.7, 0.65) | > 3 mm³ both sides | FP |
//! | `shifts` | 6 | IoU ≥ 0.25 | many-to-one (each side counted alone) | none | FP |
//! | `panoptica` | 26 | IoU ≥ 0.5 | max-score (Hungarian on IoU) | none | FP |
//! | `brats2023` | 26 | touches the 3-fold dilated GT lesion | dilated:3 (GT lesions merged) | GT > 50 mm³ | – |
//!
//! `brats2023` also scores the regions WT = {1,2,3}, TC = {1,3}, ET = {3} unless
//! `--labels`/`--region` are given.

use crate::eval::{EvalConfig, MinSize, Region};
use crate::label::Connectivity;
use crate::matching::{ANIMA_DEFAULT, Assignment, Criterion, Measure};
use crate::metrics::Counts;
use crate::metrics::surface::SurfaceRule;
use std::collections::BTreeMap;
use std::str::FromStr;

/// A challenge's rule set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Picai,
    Anima,
    Shifts,
    Panoptica,
    Brats2023,
}

impl FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "picai" => Ok(Preset::Picai),
            "anima" | "msseg" => Ok(Preset::Anima),
            "shifts" => Ok(Preset::Shifts),
            "panoptica" => Ok(Preset::Panoptica),
            "brats2023" | "brats" => Ok(Preset::Brats2023),
            _ => Err(format!(
                "preset must be picai, anima, shifts, panoptica or brats2023, not {s:?}"
            )),
        }
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Preset::Picai => "picai",
            Preset::Anima => "anima",
            Preset::Shifts => "shifts",
            Preset::Panoptica => "panoptica",
            Preset::Brats2023 => "brats2023",
        })
    }
}

/// The settings a preset stands for; an explicit option overrides each.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub connectivity: Connectivity,
    pub criterion: Criterion,
    pub assignment: Assignment,
    pub min_size: MinSize,
    /// GT-only minimum size, where it differs from `min_size`.
    pub min_size_gt: Option<MinSize>,
    pub ignore_unmatched_overlap: bool,
    /// Label regions scored when none are given.
    pub regions: Vec<Region>,
    /// The surface HD95 and ASSD are measured on.
    pub surface: SurfaceRule,
}

impl Default for Rules {
    /// lesioneval's own defaults (picai's counts, but unmatched overlapping predictions are FP).
    fn default() -> Self {
        let c = EvalConfig::default();
        Rules {
            connectivity: c.connectivity,
            criterion: c.criterion,
            assignment: c.assignment,
            min_size: MinSize::default(),
            min_size_gt: None,
            ignore_unmatched_overlap: false,
            regions: Vec::new(),
            surface: c.surface,
        }
    }
}

fn iou(t: f64) -> Criterion {
    Criterion {
        measure: Measure::Iou,
        threshold: t,
        strict: false,
    }
}

impl Preset {
    pub fn rules(self) -> Rules {
        match self {
            Preset::Picai => Rules {
                ignore_unmatched_overlap: true,
                ..Rules::default()
            },
            Preset::Anima => Rules {
                connectivity: Connectivity::Six,
                criterion: Criterion {
                    measure: Measure::Any,
                    threshold: 0.0,
                    strict: false,
                },
                assignment: ANIMA_DEFAULT,
                min_size: MinSize::AboveMm3(3.0),
                ..Rules::default()
            },
            Preset::Shifts => Rules {
                connectivity: Connectivity::Six,
                criterion: iou(0.25),
                assignment: Assignment::ManyToOne,
                ..Rules::default()
            },
            Preset::Panoptica => Rules {
                criterion: iou(0.5),
                assignment: Assignment::MaxScore,
                ..Rules::default()
            },
            Preset::Brats2023 => Rules {
                criterion: Criterion {
                    measure: Measure::Any,
                    threshold: 0.0,
                    strict: false,
                },
                assignment: Assignment::Dilated { iterations: 3 },
                min_size_gt: Some(MinSize::AboveMm3(50.0)),
                regions: [("WT", vec![1, 2, 3]), ("TC", vec![1, 3]), ("ET", vec![3])]
                    .into_iter()
                    .map(|(name, labels)| Region {
                        name: name.into(),
                        labels,
                    })
                    .collect(),
                // BraTS' HD95 is DeepMind surface-distance's area-weighted robust Hausdorff.
                surface: SurfaceRule::Surfels,
                ..Rules::default()
            },
        }
    }

    /// The challenge's own per-case numbers, with its conventions for empty
    /// cases (`None` = the tool's NaN). `mean_iou`/`mean_dice` are over the matched pairs.
    pub fn case_metrics(
        self,
        c: &Counts,
        mean_iou: Option<f64>,
        mean_dice: Option<f64>,
    ) -> BTreeMap<String, Option<f64>> {
        let mut m = BTreeMap::new();
        let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
        match self {
            // The lesion-wise Dice and HD95 come with the counts (eval::score_case_dilated).
            Preset::Picai | Preset::Brats2023 => {}
            Preset::Anima => {
                // animaSegPerfAnalyzer: SensL = TP_gt/#GT, PPVL = TP_test/#test, F1 from both; 0/0 is NaN.
                let sens = ratio(c.tp, c.gt);
                let ppv = ratio(c.tp_pred, c.pred);
                let f1 = match (sens, ppv) {
                    (Some(s), Some(p)) if s + p > 0.0 => Some(2.0 * p * s / (p + s)),
                    _ => None,
                };
                m.insert("sensl".into(), sens);
                m.insert("ppvl".into(), ppv);
                m.insert("f1".into(), f1);
            }
            Preset::Shifts => {
                // mswml lesion_f1_score: TP counted on the prediction side; both empty → 1.
                let (tp, fp, fn_) = (c.tp_pred as f64, c.fp as f64, c.fn_ as f64);
                let denom = tp + 0.5 * (fp + fn_);
                m.insert("f1".into(), Some(if denom == 0.0 { 1.0 } else { tp / denom }));
            }
            Preset::Panoptica => {
                // RQ = F1 of instances; SQ = mean IoU (SQ-DSC mean Dice) of matched pairs;
                // both empty → NaN; no TP otherwise → 0.
                let (rq, sq, sq_dsc) = if c.gt == 0 && c.pred == 0 {
                    (None, None, None)
                } else if c.tp == 0 {
                    (Some(0.0), Some(0.0), Some(0.0))
                } else {
                    let (tp, fp, fn_) = (c.tp as f64, c.fp as f64, c.fn_ as f64);
                    (Some(tp / (tp + 0.5 * fp + 0.5 * fn_)), mean_iou, mean_dice)
                };
                let prod = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a * b);
                m.insert("rq".into(), rq);
                m.insert("sq".into(), sq);
                m.insert("sq_dsc".into(), sq_dsc);
                m.insert("pq".into(), prod(sq, rq));
                m.insert("pq_dsc".into(), prod(sq_dsc, rq));
            }
        }
        m
    }
}
