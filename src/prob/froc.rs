//! Lesion-level detection metrics from scored candidates, as picai_eval 1.4.13
//! computes them: per-case lesion lists, FROC, precision-recall with AP,
//! case-level AUROC and the ranking score (AUROC + AP) / 2.
//!
//! Exactness notes (fixtures/froc/README.md cites the source of each):
//! - FROC thresholds are the distinct confidences (0 included when a lesion is
//!   missed), descending, unresampled; TP/FP counts and the rates TP/#lesions
//!   and FP/#cases are float32, and the lowest threshold's point is always
//!   replaced by (TP of the previous point, ∞ FP).
//! - AP is the uninterpolated step sum Σ (Rₖ − Rₖ₋₁)·Pₖ over distinct
//!   thresholds, with precision 0 at threshold 0 (missed lesions never add).
//! - A case's score is the maximum of its *detection map* (0 without
//!   candidates); AUROC is the Mann–Whitney statistic, ties counting ½.

use super::Candidate;
use crate::label::{self, Components, Connectivity, LesionStats};
use crate::matching::{self, Assignment, Criterion, OverlapTable};
use crate::metrics::quantile_sorted;

/// One entry of a case's lesion list: a GT lesion (detected with the
/// candidate's confidence, or missed with 0) or a false-positive candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LesionScore {
    pub is_lesion: bool,
    pub confidence: f64,
    /// IoU of the matched pair (0 for misses and false positives).
    pub overlap: f64,
}

/// What one case contributes to the curves.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseDetections {
    pub lesions: Vec<LesionScore>,
    /// The case has at least one GT lesion.
    pub target: bool,
    /// The case's score: the highest candidate confidence, 0 without candidates.
    pub score: f64,
}

/// Matches candidates to the 26-connected GT lesions of `gt` (IoU ≥ 0.1,
/// one-to-one Hungarian on IoU + 1): picai_eval's rules. With
/// `allow_unmatched_overlap` (picai's default), candidates that reach IoU 0.1
/// with some lesion but lose the assignment are neither TP nor FP.
pub fn case_detections(
    gt: &[u8],
    shape: [usize; 3],
    candidates: &[Candidate],
    allow_unmatched_overlap: bool,
) -> CaseDetections {
    let gt_comps = label::label(gt, shape, Connectivity::TwentySix);
    detections_against(&gt_comps, candidates, &Criterion::default(), allow_unmatched_overlap)
}

/// [`case_detections`] against already labelled GT lesions and any
/// qualifying rule (the assignment is always one-to-one: each lesion gets at
/// most one confidence).
pub fn detections_against(
    gt_comps: &Components,
    candidates: &[Candidate],
    criterion: &Criterion,
    allow_unmatched_overlap: bool,
) -> CaseDetections {
    let shape = gt_comps.shape;
    let mut labels = vec![0u32; gt_comps.labels.len()];
    let mut lesions = Vec::with_capacity(candidates.len());
    for (k, c) in candidates.iter().enumerate() {
        for &v in &c.voxels {
            labels[v as usize] = k as u32 + 1;
        }
        let mut stats = LesionStats::new();
        stats.voxels = c.voxels.len() as u64;
        lesions.push(stats);
    }
    let cand_comps = Components { shape, labels, lesions };
    let table = OverlapTable::build(gt_comps, &cand_comps);
    let m = matching::match_lesions(&table, criterion, Assignment::OneToOne);
    let conf = |p: u32| candidates[p as usize - 1].confidence as f64;
    let mut out = Vec::new();
    for &(g, p, _) in &m.matches {
        let inter = table.intersection(g, p);
        let union = table.gt_size(g) + table.pred_size(p) - inter;
        // picai's overlap value, with its epsilon and +1 − 1 round trip.
        let iou = ((inter as f64 + 1e-8) / (union as f64 + 1e-8) + 1.0) - 1.0;
        out.push(LesionScore {
            is_lesion: true,
            confidence: conf(p),
            overlap: iou,
        });
    }
    for matched in &m.gt_matched {
        if matched.is_empty() {
            out.push(LesionScore {
                is_lesion: true,
                confidence: 0.0,
                overlap: 0.0,
            });
        }
    }
    let qualifies = table.pred_qualifies(criterion);
    for (p, matched) in m.pred_matched.iter().enumerate() {
        if matched.is_empty() && !(allow_unmatched_overlap && qualifies[p]) {
            out.push(LesionScore {
                is_lesion: false,
                confidence: conf(p as u32 + 1),
                overlap: 0.0,
            });
        }
    }
    CaseDetections {
        lesions: out,
        target: gt_comps.count() > 0,
        score: candidates.iter().map(|c| c.confidence as f64).fold(0.0, f64::max),
    }
}

/// Lesion- and case-level detection metrics over all cases.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectionMetrics {
    pub num_cases: usize,
    pub num_lesions: usize,
    /// FROC operating points, from the highest threshold down.
    pub thresholds: Vec<f64>,
    pub lesion_tp: Vec<f64>,
    pub lesion_fp: Vec<f64>,
    /// Sensitivity (NaN without GT lesions).
    pub lesion_tpr: Vec<f64>,
    /// Mean false positives per case.
    pub lesion_fpr: Vec<f64>,
    pub ap: f64,
    /// Case-level AUROC (NaN when all cases are positive or all negative).
    pub auroc: f64,
    /// picai ranking score (AUROC + AP) / 2.
    pub score: f64,
}

/// False positives per case at which CPM averages the sensitivity.
pub const CPM_FP_RATES: [f64; 7] = [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0];

impl DetectionMetrics {
    /// Sensitivity at `fp_per_case` (step function: the last point with FPR ≤ x; 0 if none, as
    /// picai_eval, also without GT lesions, where every point's sensitivity is NaN).
    pub fn sensitivity_at(&self, fp_per_case: f64) -> f64 {
        let min = self.lesion_fpr.iter().copied().fold(f64::INFINITY, f64::min);
        if min > fp_per_case {
            return 0.0;
        }
        self.lesion_fpr
            .iter()
            .rposition(|&f| f <= fp_per_case)
            .map_or(0.0, |i| self.lesion_tpr[i])
    }

    /// Competition performance metric: mean sensitivity at 1/8 … 8 FP per case.
    pub fn cpm(&self) -> f64 {
        CPM_FP_RATES.iter().map(|&x| self.sensitivity_at(x)).sum::<f64>() / CPM_FP_RATES.len() as f64
    }
}

/// Computes FROC, AP, AUROC and the ranking score from per-case detections.
pub fn detection_metrics(cases: &[CaseDetections]) -> DetectionMetrics {
    let entries: Vec<LesionScore> = cases.iter().flat_map(|c| c.lesions.iter().copied()).collect();
    let num_lesions = entries.iter().filter(|e| e.is_lesion).count();
    let num_cases = cases.len();
    let (thresholds, cum_tp, cum_fp) = cumulative_counts(&entries);

    let (tp, fp, f32_rates): (Vec<f64>, Vec<f64>, bool) = if thresholds.len() >= 2 {
        // picai keeps these counts in float32 arrays.
        let mut tp: Vec<f64> = cum_tp.iter().map(|&c| c as f32 as f64).collect();
        let mut fp: Vec<f64> = cum_fp.iter().map(|&c| c as f32 as f64).collect();
        let n = tp.len();
        tp[n - 1] = tp[n - 2];
        fp[n - 1] = f64::INFINITY;
        (tp, fp, true)
    } else {
        // Fewer than two distinct confidences: picai_eval 1.4.13 gives this
        // two-point curve, even when its one threshold found lesions.
        (vec![0.0, 0.0], vec![0.0, f64::INFINITY], false)
    };
    let rate = |x: f64, d: usize| {
        if f32_rates {
            (x as f32 / d as f32) as f64
        } else {
            x / d as f64
        }
    };
    let lesion_tpr = tp
        .iter()
        .map(|&x| {
            if num_lesions == 0 {
                f64::NAN
            } else {
                rate(x, num_lesions)
            }
        })
        .collect();
    let lesion_fpr = fp.iter().map(|&x| rate(x, num_cases)).collect();

    let ap = average_precision(&thresholds, &cum_tp, &cum_fp, num_lesions);
    let auroc = mann_whitney_auc(cases);
    DetectionMetrics {
        num_cases,
        num_lesions,
        thresholds,
        lesion_tp: tp,
        lesion_fp: fp,
        lesion_tpr,
        lesion_fpr,
        ap,
        auroc,
        score: (auroc + ap) / 2.0,
    }
}

/// Distinct confidences (descending) with the number of lesion and non-lesion
/// entries at or above each: one sort, one sweep.
fn cumulative_counts(entries: &[LesionScore]) -> (Vec<f64>, Vec<u64>, Vec<u64>) {
    let mut sorted: Vec<&LesionScore> = entries.iter().collect();
    sorted.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    let (mut thresholds, mut cum_tp, mut cum_fp) = (Vec::new(), Vec::new(), Vec::new());
    let (mut tp, mut fp) = (0u64, 0u64);
    for (i, e) in sorted.iter().enumerate() {
        if e.is_lesion {
            tp += 1;
        } else {
            fp += 1;
        }
        // Close a threshold after the last entry with this confidence.
        if sorted.get(i + 1).is_none_or(|n| n.confidence != e.confidence) {
            thresholds.push(e.confidence);
            cum_tp.push(tp);
            cum_fp.push(fp);
        }
    }
    (thresholds, cum_tp, cum_fp)
}

/// Σ (Rₖ − Rₖ₋₁)·Pₖ over distinct thresholds (descending), precision 0 at threshold 0.
fn average_precision(thresholds: &[f64], cum_tp: &[u64], cum_fp: &[u64], num_lesions: usize) -> f64 {
    let mut ap = 0.0;
    let mut prev_recall = 0.0;
    for ((&t, &tps), &fps) in thresholds.iter().zip(cum_tp).zip(cum_fp) {
        let recall = if num_lesions == 0 {
            1.0
        } else {
            tps as f64 / num_lesions as f64
        };
        let precision = if t == 0.0 { 0.0 } else { tps as f64 / (tps + fps) as f64 };
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
    }
    ap
}

/// P(score of a positive case > score of a negative case), ties counting ½,
/// from average ranks (one sort).
fn mann_whitney_auc(cases: &[CaseDetections]) -> f64 {
    let npos = cases.iter().filter(|c| c.target).count();
    let nneg = cases.len() - npos;
    if npos == 0 || nneg == 0 {
        return f64::NAN;
    }
    let mut scored: Vec<(f64, bool)> = cases.iter().map(|c| (c.score, c.target)).collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < scored.len() {
        let j = (i..scored.len())
            .find(|&j| scored[j].0 != scored[i].0)
            .unwrap_or(scored.len());
        let avg_rank = (i + 1 + j) as f64 / 2.0; // ranks i+1 ..= j share their mean
        rank_sum_pos += avg_rank * scored[i..j].iter().filter(|s| s.1).count() as f64;
        i = j;
    }
    let u = rank_sum_pos - (npos * (npos + 1)) as f64 / 2.0;
    u / (npos * nneg) as f64
}

/// Percentile confidence intervals from resampling cases with replacement.
#[derive(Debug, Clone, PartialEq)]
pub struct BootstrapCi {
    pub resamples: usize,
    pub seed: u64,
    /// Central coverage, e.g. 0.95.
    pub level: f64,
    /// (low, high) for AP, AUROC, ranking score and CPM; NaN when no resample defined the value.
    pub ap: (f64, f64),
    pub auroc: (f64, f64),
    pub score: (f64, f64),
    pub cpm: (f64, f64),
    /// False positives per case at which the FROC band is given ([`froc_band_grid`]).
    pub froc_grid: Vec<f64>,
    /// Sensitivity interval at each `froc_grid` rate.
    pub froc_band: Vec<(f64, f64)>,
}

/// 2^(k/4) for k = −16 … 16: 1/16 to 16 false positives per case, four points per doubling.
pub fn froc_band_grid() -> Vec<f64> {
    (-16..=16).map(|k| 2f64.powf(k as f64 / 4.0)).collect()
}

/// SplitMix64: a tiny, well-known generator; fixed here so a seed gives the
/// same intervals on every platform and release.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (Lemire's multiply-shift; the bias is below 2⁻³² for realistic n).
    fn below(&mut self, n: usize) -> usize {
        (((self.next() >> 32) * n as u64) >> 32) as usize
    }
}

/// Bootstraps AP, AUROC, score and CPM over cases: `resamples` draws of as many
/// cases with replacement, percentile interval at `level` (linear
/// interpolation between order statistics, as numpy's default percentile).
pub fn bootstrap(cases: &[CaseDetections], resamples: usize, seed: u64, level: f64) -> BootstrapCi {
    let mut rng = SplitMix64(seed);
    let mut samples: [Vec<f64>; 4] = Default::default();
    let grid = froc_band_grid();
    let mut band: Vec<Vec<f64>> = vec![Vec::with_capacity(resamples); grid.len()];
    let mut draw = Vec::with_capacity(cases.len());
    for _ in 0..resamples {
        draw.clear();
        draw.extend((0..cases.len()).map(|_| cases[rng.below(cases.len())].clone()));
        let m = detection_metrics(&draw);
        // Without lesions AP is 0 by convention (as picai reports it) and CPM
        // is 0 or NaN depending on the FP rates; neither is a measurement, so
        // such a resample is left out of both intervals.
        let (ap, cpm) = if m.num_lesions == 0 {
            (f64::NAN, f64::NAN)
        } else {
            (m.ap, m.cpm())
        };
        for (s, v) in samples.iter_mut().zip([ap, m.auroc, m.score, cpm]) {
            if !v.is_nan() {
                s.push(v);
            }
        }
        if m.num_lesions > 0 {
            for (b, &x) in band.iter_mut().zip(&grid) {
                b.push(m.sensitivity_at(x));
            }
        }
    }
    let [ap, auroc, score, cpm] = samples.map(|mut s| percentile_interval(&mut s, level));
    let froc_band = band.iter_mut().map(|b| percentile_interval(b, level)).collect();
    BootstrapCi {
        resamples,
        seed,
        level,
        ap,
        auroc,
        score,
        cpm,
        froc_grid: grid,
        froc_band,
    }
}

fn percentile_interval(v: &mut [f64], level: f64) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    (quantile_sorted(v, tail), quantile_sorted(v, 1.0 - tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(is_lesion: bool, confidence: f64) -> LesionScore {
        LesionScore {
            is_lesion,
            confidence,
            overlap: 0.0,
        }
    }

    /// Case A: two GT lesions, one found at 0.9, one missed, one FP at 0.6.
    /// Case B: no lesion, one FP at 0.8.
    fn example() -> Vec<CaseDetections> {
        vec![
            CaseDetections {
                lesions: vec![entry(true, 0.9), entry(true, 0.0), entry(false, 0.6)],
                target: true,
                score: 0.9,
            },
            CaseDetections {
                lesions: vec![entry(false, 0.8)],
                target: false,
                score: 0.8,
            },
        ]
    }

    #[test]
    fn froc_points_and_cpm_by_hand() {
        let m = detection_metrics(&example());
        // Thresholds 0.9, 0.8, 0.6, 0: TP 1, 1, 1, (2 → replaced by 1); FP 0, 1, 2, (∞).
        assert_eq!(m.thresholds, vec![0.9, 0.8, 0.6, 0.0]);
        assert_eq!(m.lesion_tp, vec![1.0, 1.0, 1.0, 1.0]);
        assert_eq!(m.lesion_fp, vec![0.0, 1.0, 2.0, f64::INFINITY]);
        assert_eq!(m.lesion_tpr, vec![0.5; 4]);
        assert_eq!(m.lesion_fpr, vec![0.0, 0.5, 1.0, f64::INFINITY]);
        assert_eq!(m.sensitivity_at(0.125), 0.5);
        assert_eq!(m.cpm(), 0.5);
        // AP: recall reaches 0.5 at precision 1 and never grows; the miss adds nothing.
        assert_eq!(m.ap, 0.5);
        // The lesion case outranks the empty one.
        assert_eq!(m.auroc, 1.0);
        assert_eq!(m.score, 0.75);
    }

    #[test]
    fn sensitivity_is_zero_below_the_first_operating_point() {
        let mut cases = example();
        cases[0].lesions[0].confidence = 0.5; // now the FPs come first
        let m = detection_metrics(&cases);
        assert_eq!(m.lesion_fpr[0], 0.5);
        assert_eq!(m.sensitivity_at(0.25), 0.0);
    }

    /// Resamples without a lesion are left out of the AP and CPM intervals.
    #[test]
    fn resamples_without_lesions_do_not_count_for_ap_or_cpm() {
        // One lesion found, one missed: AP and CPM are 0.5 whenever the case is drawn.
        let mut cases = vec![CaseDetections {
            lesions: vec![entry(true, 0.9), entry(true, 0.0)],
            target: true,
            score: 0.9,
        }];
        for _ in 0..9 {
            cases.push(CaseDetections {
                lesions: vec![],
                target: false,
                score: 0.0,
            });
        }
        let ci = bootstrap(&cases, 500, 1, 0.95);
        assert_eq!((ci.ap, ci.cpm), ((0.5, 0.5), (0.5, 0.5)));
    }

    #[test]
    fn bootstrap_is_reproducible_with_a_seed() {
        let mut cases = example();
        cases.extend(example());
        cases[2].lesions[0].confidence = 0.7;
        cases[2].score = 0.7;
        let a = bootstrap(&cases, 200, 7, 0.95);
        let b = bootstrap(&cases, 200, 7, 0.95);
        assert_eq!(a, b);
        assert!(a.ap.0 <= a.ap.1 && a.auroc.0 <= a.auroc.1);
        assert_ne!(bootstrap(&cases, 200, 8, 0.95), a, "another seed draws other resamples");
    }
}
