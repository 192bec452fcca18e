//! Anima's lesion detection test (MSSEG; animaSegPerfAnalyzer,
//! `SegPerfCAnalyzer::getTruePositiveLesions`), reproduced as its source does it.
//!
//! For each lesion r of the side being scored ("rows"; GT for sensitivity,
//! prediction for PPV) against the lesions c of the other side ("columns"):
//! 1. α: the share of r covered by any column lesion must be **> α**;
//! 2. the columns overlapping r are walked in decreasing overlap (ties: lower
//!    id first — Anima's `std::sort` leaves tie order unspecified); for each,
//!    the share of that column lesion lying outside every row lesion must be
//!    **≤ β**, else r is not detected; the walk stops once the summed overlaps
//!    reach **γ** of r's covered voxels, or after `rows + 1` steps (Anima's
//!    loop bound, which can end the walk early; r is then detected).
//!
//! The test runs on the overlap table and on its transpose; a detected GT
//! lesion is a TP, a detected prediction a TP on the prediction side.

use super::{Matching, OverlapTable};

/// Runs the test both ways; matched lists hold every overlapping lesion of a detected one.
pub(super) fn detect(
    table: &OverlapTable,
    alpha: f64,
    beta: f64,
    gamma: f64,
    gt_best_iou: Vec<f64>,
    pred_best_iou: Vec<f64>,
) -> Matching {
    let (ng, np) = (table.gt_sizes.len(), table.pred_sizes.len());
    let pairs: Vec<(u32, u32, u64)> = table.pairs.clone();
    let transposed: Vec<(u32, u32, u64)> = pairs.iter().map(|&(g, p, i)| (p, g, i)).collect();
    let gt_ok = detected(&table.gt_sizes, &table.pred_sizes, &pairs, alpha, beta, gamma);
    let pred_ok = detected(&table.pred_sizes, &table.gt_sizes, &transposed, alpha, beta, gamma);
    let mut gt_matched = vec![Vec::new(); ng];
    let mut pred_matched = vec![Vec::new(); np];
    let mut matches = Vec::new();
    for &(g, p, inter) in &pairs {
        let (gi, pi) = (g as usize - 1, p as usize - 1);
        if gt_ok[gi] {
            gt_matched[gi].push(p);
        }
        if pred_ok[pi] {
            pred_matched[pi].push(g);
        }
        if gt_ok[gi] && pred_ok[pi] {
            matches.push((g, p, table.iou(g, p, inter)));
        }
    }
    Matching {
        matches,
        gt_best_iou,
        pred_best_iou,
        gt_matched,
        pred_matched,
    }
}

/// Which row lesions pass the test. `pairs` are (row id, column id, shared voxels).
fn detected(
    row_sizes: &[u64],
    col_sizes: &[u64],
    pairs: &[(u32, u32, u64)],
    alpha: f64,
    beta: f64,
    gamma: f64,
) -> Vec<bool> {
    let mut col_inside = vec![0u64; col_sizes.len()];
    let mut per_row: Vec<Vec<(u32, u64)>> = vec![Vec::new(); row_sizes.len()];
    for &(r, c, inter) in pairs {
        col_inside[c as usize - 1] += inter;
        per_row[r as usize - 1].push((c, inter));
    }
    // Anima's loop bound: the number of row labels including background.
    let bound = row_sizes.len() + 1;
    per_row
        .iter_mut()
        .enumerate()
        .map(|(r, cands)| {
            let covered: u64 = cands.iter().map(|c| c.1).sum();
            if covered == 0 || covered as f64 / row_sizes[r] as f64 <= alpha {
                return false;
            }
            cands.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let mut share = 0.0;
            for &(c, inter) in cands.iter().take(bound) {
                if share >= gamma {
                    break;
                }
                let size = col_sizes[c as usize - 1];
                let outside = (size - col_inside[c as usize - 1]) as f64 / size as f64;
                if outside > beta {
                    return false;
                }
                share += inter as f64 / covered as f64;
            }
            true
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(row_sizes: &[u64], col_sizes: &[u64], pairs: &[(u32, u32, u64)]) -> Vec<bool> {
        detected(row_sizes, col_sizes, pairs, 0.1, 0.7, 0.65)
    }

    #[test]
    fn alpha_is_strict() {
        // GT lesion of 100 voxels covered 10 (= α) → not detected; 11 → detected.
        assert_eq!(rows(&[100], &[10], &[(1, 1, 10)]), vec![false]);
        assert_eq!(rows(&[100], &[11], &[(1, 1, 11)]), vec![true]);
    }

    #[test]
    fn beta_rejects_a_prediction_mostly_outside() {
        // The prediction (100 voxels) puts 40 inside the lesion: 60 % outside ≤ 70 % → detected.
        assert_eq!(rows(&[50], &[100], &[(1, 1, 40)]), vec![true]);
        // 25 inside: 75 % outside > β → not detected although α holds (25/50 covered).
        assert_eq!(rows(&[50], &[100], &[(1, 1, 25)]), vec![false]);
    }

    #[test]
    fn gamma_stops_the_walk_before_a_bad_prediction() {
        // Lesion of 100 voxels covered by A (70 shared, clean) and B (10 shared, 90 % outside):
        // after A the share is 70/80 = 0.875 ≥ γ, so B is never checked → detected.
        assert_eq!(
            rows(&[100, 5], &[70, 100], &[(1, 1, 70), (1, 2, 10)]),
            vec![true, false]
        );
        // With A sharing only 40 of 80 covered voxels (0.5 < γ), B (80 % outside) is checked and fails β.
        assert_eq!(rows(&[100], &[40, 200], &[(1, 1, 40), (1, 2, 40)]), vec![false]);
    }

    #[test]
    fn loop_bound_ends_the_walk_early() {
        // One row lesion → bound 2: only the two largest overlaps are checked. Shares after
        // them: 0.3 + 0.3 = 0.6 < γ, so without the bound the third (25 of its 1000 voxels
        // inside: fails β) would be checked and the lesion rejected.
        let pairs = [(1, 1, 30), (1, 2, 30), (1, 3, 25), (1, 4, 15)];
        assert_eq!(rows(&[200], &[30, 30, 1000, 15], &pairs), vec![true]);
        // With two row lesions the bound is 3 and the third is checked.
        let pairs = [(1, 1, 30), (1, 2, 30), (1, 3, 25), (1, 4, 15), (2, 4, 1)];
        assert!(!rows(&[200, 5], &[30, 30, 1000, 16], &pairs)[0]);
    }
}
