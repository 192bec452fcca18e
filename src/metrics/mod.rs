//! Lesion counts and rates per case, and their micro and macro totals.
//!
//! Definitions (docs/metrics.md has worked examples):
//! - `tp` = GT lesions detected, `fn` = gt − tp, `fp` = predicted lesions
//!   matched to nothing, `tp_pred` = predicted lesions matched (= tp in one-to-one);
//! - precision = tp_pred / (pred − ignored), recall = tp / gt, both `None` when the
//!   denominator is 0;
//! - F1 = harmonic mean of precision and recall; 1 when both sides are empty,
//!   0 when exactly one side is empty or both rates are 0;
//! - Dice = voxel Dice of the binarised (size-filtered) masks; 1 when both are empty.

pub mod surface;
pub mod surfels;

/// NumPy's default (linear) percentile of sorted values, `q` in [0, 1]; NaN for none.
pub(crate) fn quantile_sorted(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let pos = q * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

use serde::{Deserialize, Serialize};

/// Counts and voxel tallies of one case (or a sum of cases).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub gt: u64,
    pub pred: u64,
    pub tp: u64,
    pub fp: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
    pub tp_pred: u64,
    /// Predictions that are neither TP nor FP: unmatched but qualifying with
    /// some GT lesion, under `--unmatched-overlap ignore` (picai's default).
    #[serde(default)]
    pub ignored: u64,
    pub gt_voxels: u64,
    pub pred_voxels: u64,
    pub intersection_voxels: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.gt += o.gt;
        self.pred += o.pred;
        self.tp += o.tp;
        self.fp += o.fp;
        self.fn_ += o.fn_;
        self.tp_pred += o.tp_pred;
        self.ignored += o.ignored;
        self.gt_voxels += o.gt_voxels;
        self.pred_voxels += o.pred_voxels;
        self.intersection_voxels += o.intersection_voxels;
    }
}

/// Rates derived from [`Counts`]; `None` where undefined (JSON `null`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub f1: Option<f64>,
    pub dice: Option<f64>,
}

impl Counts {
    pub fn rates(&self) -> Rates {
        let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
        // saturating: counts read back from a (possibly edited) results.json must not underflow.
        let precision = ratio(self.tp_pred, self.pred.saturating_sub(self.ignored));
        let recall = ratio(self.tp, self.gt);
        let f1 = match (precision, recall) {
            (Some(p), Some(r)) if p + r > 0.0 => 2.0 * p * r / (p + r),
            (Some(_), Some(_)) => 0.0,
            (None, None) => 1.0,
            _ => 0.0,
        };
        let denom = self.gt_voxels + self.pred_voxels;
        let dice = if denom == 0 {
            1.0
        } else {
            2.0 * self.intersection_voxels as f64 / denom as f64
        };
        Rates {
            precision,
            recall,
            f1: Some(f1),
            dice: Some(dice),
        }
    }
}

/// Mean of per-case rates, each over the cases where it is defined.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Macro {
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub f1: Option<f64>,
    pub dice: Option<f64>,
    pub mean_iou: Option<f64>,
}

/// Macro averages over cases given their rates and mean IoUs.
pub fn macro_average<'a>(cases: impl IntoIterator<Item = (&'a Rates, Option<f64>)>) -> Macro {
    #[derive(Default)]
    struct Acc(f64, u64);
    impl Acc {
        fn add(&mut self, v: Option<f64>) {
            if let Some(v) = v {
                self.0 += v;
                self.1 += 1;
            }
        }
        fn mean(&self) -> Option<f64> {
            (self.1 > 0).then(|| self.0 / self.1 as f64)
        }
    }
    let (mut p, mut r, mut f, mut d, mut m) = Default::default();
    let (p, r, f, d, m): (&mut Acc, &mut Acc, &mut Acc, &mut Acc, &mut Acc) = (&mut p, &mut r, &mut f, &mut d, &mut m);
    for (rates, miou) in cases {
        p.add(rates.precision);
        r.add(rates.recall);
        f.add(rates.f1);
        d.add(rates.dice);
        m.add(miou);
    }
    Macro {
        precision: p.mean(),
        recall: r.mean(),
        f1: f.mean(),
        dice: d.mean(),
        mean_iou: m.mean(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(gt: u64, pred: u64, tp: u64, tp_pred: u64) -> Counts {
        Counts {
            gt,
            pred,
            tp,
            fp: pred - tp_pred,
            fn_: gt - tp,
            tp_pred,
            ..Default::default()
        }
    }

    #[test]
    fn empty_cases_are_defined() {
        let r = counts(0, 0, 0, 0).rates();
        assert_eq!(
            (r.precision, r.recall, r.f1, r.dice),
            (None, None, Some(1.0), Some(1.0))
        );
        let r = counts(0, 3, 0, 0).rates();
        assert_eq!((r.precision, r.recall, r.f1), (Some(0.0), None, Some(0.0)));
        let r = counts(2, 0, 0, 0).rates();
        assert_eq!((r.precision, r.recall, r.f1), (None, Some(0.0), Some(0.0)));
    }

    #[test]
    fn f1_is_harmonic_mean() {
        // 31 TP, 382 FP, 26 FN: precision 31/413, recall 31/57.
        let r = counts(57, 413, 31, 31).rates();
        let (p, rc) = (31.0 / 413.0, 31.0 / 57.0);
        assert!((r.f1.unwrap() - 2.0 * p * rc / (p + rc)).abs() < 1e-15);
    }

    #[test]
    fn macro_skips_undefined() {
        let a = counts(0, 0, 0, 0).rates();
        let b = counts(2, 2, 1, 1).rates();
        let m = macro_average([(&a, None), (&b, Some(0.5))]);
        assert_eq!(m.precision, Some(0.5));
        assert_eq!(m.f1, Some(0.75));
        assert_eq!(m.mean_iou, Some(0.5));
    }
}
