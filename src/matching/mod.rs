//! Lesion matching: overlap table → criterion → assignment.
//!
//! A (GT lesion, predicted lesion) pair *qualifies* when its score under the
//! criterion reaches the threshold. The assignment then decides which
//! qualifying pairs count as matches:
//! - `one-to-one`: each lesion is matched at most once. Like picai_eval, we
//!   maximise Σ (score + 1) over the chosen pairs with the Hungarian algorithm
//!   (the +1 makes the number of matches dominate except in rare cases, see
//!   docs/metrics.md). The problem is solved independently on each connected
//!   component of the graph of qualifying pairs — the optimum decomposes, and
//!   most components are a single pair.
//! - `many-to-one`: every qualifying pair counts; a GT lesion is detected if
//!   any prediction qualifies, and a prediction is a TP if it qualifies with
//!   any GT lesion.
//! - `greedy`: pairs by descending score, each lesion at most once (panoptica's
//!   NaiveThresholdMatching); `max-score`: Hungarian on the score alone,
//!   maximising the summed score (panoptica's MaxBipartiteMatching).
//! - `anima`: not a pairing but Anima's per-lesion detection test on each
//!   side (`anima.rs`).

mod anima;
pub mod dilated;
pub mod graph;
mod overlap;

pub use overlap::OverlapTable;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What a pair is scored by.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Measure {
    /// |G∩P| / |G∪P|
    Iou,
    /// 2|G∩P| / (|G|+|P|)
    Dice,
    /// |G∩P| / |G|: the fraction of the GT lesion covered.
    Coverage,
    /// Any shared voxel (the score is the IoU, the threshold is ignored).
    Any,
}

/// A qualifying rule: `iou:0.1`, `dice:0.5`, `coverage:0.3`, `any`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Criterion {
    pub measure: Measure,
    pub threshold: f64,
    /// Qualify at score > threshold instead of ≥.
    pub strict: bool,
}

impl Default for Criterion {
    fn default() -> Self {
        Criterion {
            measure: Measure::Iou,
            threshold: 0.1,
            strict: false,
        }
    }
}

impl Criterion {
    /// The pair's score under this criterion (IoU for `any`).
    pub fn score(&self, gt_size: u64, pred_size: u64, inter: u64) -> f64 {
        let i = inter as f64;
        match self.measure {
            Measure::Iou | Measure::Any => i / (gt_size + pred_size - inter) as f64,
            Measure::Dice => 2.0 * i / (gt_size + pred_size) as f64,
            Measure::Coverage => i / gt_size as f64,
        }
    }

    pub fn qualifies(&self, score: f64, inter: u64) -> bool {
        if inter == 0 {
            return false;
        }
        match self.measure {
            Measure::Any => true,
            _ if self.strict => score > self.threshold,
            _ => score >= self.threshold,
        }
    }
}

impl FromStr for Criterion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("any") {
            return Ok(Criterion {
                measure: Measure::Any,
                threshold: 0.0,
                strict: false,
            });
        }
        let (name, t) = s
            .split_once(':')
            .ok_or_else(|| format!("expected iou:T, dice:T, coverage:T or any, got {s:?}"))?;
        let measure = match name.to_ascii_lowercase().as_str() {
            "iou" => Measure::Iou,
            "dice" => Measure::Dice,
            "coverage" => Measure::Coverage,
            _ => return Err(format!("unknown match measure {name:?} (iou, dice, coverage or any)")),
        };
        let threshold: f64 = t.parse().map_err(|_| format!("threshold {t:?} is not a number"))?;
        if !(0.0..=1.0).contains(&threshold) {
            return Err(format!("threshold {threshold} is outside [0, 1]"));
        }
        Ok(Criterion {
            measure,
            threshold,
            strict: false,
        })
    }
}

impl fmt::Display for Criterion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.measure {
            Measure::Any => write!(f, "any"),
            Measure::Iou => write!(f, "iou:{}", self.threshold),
            Measure::Dice => write!(f, "dice:{}", self.threshold),
            Measure::Coverage => write!(f, "coverage:{}", self.threshold),
        }
    }
}

/// How qualifying pairs become matches.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Assignment {
    /// Hungarian on score + 1: most matches first, then the most overlap (picai_eval).
    #[default]
    OneToOne,
    /// Every qualifying pair counts, on both sides (Shifts' lesion F1 counts this way).
    ManyToOne,
    /// Pairs by descending score, each lesion matched at most once (panoptica's NaiveThresholdMatching).
    Greedy,
    /// Hungarian maximising the summed score of qualifying pairs (panoptica's MaxBipartiteMatching).
    MaxScore,
    /// Anima's (MSSEG) detection test with α, β, γ (the private `anima` module).
    Anima { alpha: f64, beta: f64, gamma: f64 },
    /// BraTS 2023: GT lesions merged by touching K-fold dilations, a prediction
    /// hits a lesion when it meets its dilation; see [`dilated`].
    Dilated { iterations: u32 },
}

/// Anima's defaults (animaSegPerfAnalyzer's command line): α 0.10, β 0.70, γ 0.65.
pub const ANIMA_DEFAULT: Assignment = Assignment::Anima {
    alpha: 0.1,
    beta: 0.7,
    gamma: 0.65,
};

impl FromStr for Assignment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "one-to-one" => Ok(Assignment::OneToOne),
            "many-to-one" => Ok(Assignment::ManyToOne),
            "greedy" => Ok(Assignment::Greedy),
            "max-score" => Ok(Assignment::MaxScore),
            "anima" => Ok(ANIMA_DEFAULT),
            _ if s.starts_with("dilated:") => {
                let k = &s["dilated:".len()..];
                match k.parse::<u32>() {
                    Ok(iterations) if iterations <= 20 => Ok(Assignment::Dilated { iterations }),
                    _ => Err(format!("dilated:K needs a whole number K from 0 to 20, not {k:?}")),
                }
            }
            _ => {
                let Some(params) = s.strip_prefix("anima:") else {
                    return Err(format!(
                        "assignment must be one-to-one, many-to-one, greedy, max-score, anima[:ALPHA,BETA,GAMMA] or dilated:K, not {s:?}"
                    ));
                };
                let v: Vec<f64> = params
                    .split(',')
                    .map(|x| x.trim().parse::<f64>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| format!("anima:ALPHA,BETA,GAMMA needs three numbers, not {params:?}"))?;
                match v[..] {
                    [alpha, beta, gamma] if [alpha, beta, gamma].iter().all(|x| *x > 0.0 && *x <= 1.0) => {
                        Ok(Assignment::Anima { alpha, beta, gamma })
                    }
                    _ => Err(format!(
                        "anima:ALPHA,BETA,GAMMA needs three numbers in (0, 1], not {params:?}"
                    )),
                }
            }
        }
    }
}

impl fmt::Display for Assignment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Assignment::OneToOne => f.write_str("one-to-one"),
            Assignment::ManyToOne => f.write_str("many-to-one"),
            Assignment::Greedy => f.write_str("greedy"),
            Assignment::MaxScore => f.write_str("max-score"),
            Assignment::Anima { alpha, beta, gamma } => write!(f, "anima:{alpha},{beta},{gamma}"),
            Assignment::Dilated { iterations } => write!(f, "dilated:{iterations}"),
        }
    }
}

/// The outcome of matching one case.
#[derive(Debug, Clone, PartialEq)]
pub struct Matching {
    /// Matched pairs (gt, pred, score), sorted by (gt, pred).
    pub matches: Vec<(u32, u32, f64)>,
    /// Per GT lesion (index id − 1): the best IoU with any predicted lesion (0 if none overlaps).
    pub gt_best_iou: Vec<f64>,
    pub pred_best_iou: Vec<f64>,
    /// Per GT lesion: matched prediction ids.
    pub gt_matched: Vec<Vec<u32>>,
    pub pred_matched: Vec<Vec<u32>>,
}

impl Matching {
    /// GT lesions detected (matched at least once).
    pub fn tp(&self) -> u64 {
        self.gt_matched.iter().filter(|m| !m.is_empty()).count() as u64
    }

    /// Predicted lesions matched at least once.
    pub fn tp_pred(&self) -> u64 {
        self.pred_matched.iter().filter(|m| !m.is_empty()).count() as u64
    }

    /// Mean Dice of matched pairs.
    pub fn mean_dice(&self, table: &OverlapTable) -> Option<f64> {
        if self.matches.is_empty() {
            return None;
        }
        let sum: f64 = self
            .matches
            .iter()
            .map(|&(g, p, _)| 2.0 * table.intersection(g, p) as f64 / (table.gt_size(g) + table.pred_size(p)) as f64)
            .sum();
        Some(sum / self.matches.len() as f64)
    }

    /// Mean IoU of matched pairs.
    pub fn mean_iou(&self, table: &OverlapTable) -> Option<f64> {
        if self.matches.is_empty() {
            return None;
        }
        let sum: f64 = self
            .matches
            .iter()
            .map(|&(g, p, _)| table.iou(g, p, table.intersection(g, p)))
            .sum();
        Some(sum / self.matches.len() as f64)
    }
}

/// Scale that turns (score + 1) ∈ [1, 2] into exact integer weights for the
/// Hungarian solver (which needs a totally ordered weight type).
const WEIGHT_SCALE: f64 = (1u64 << 40) as f64;

/// Matches lesions of one case.
pub fn match_lesions(table: &OverlapTable, criterion: &Criterion, assignment: Assignment) -> Matching {
    let (ng, np) = (table.gt_sizes.len(), table.pred_sizes.len());
    let mut gt_best_iou = vec![0.0f64; ng];
    let mut pred_best_iou = vec![0.0f64; np];
    let mut qualifying = Vec::new();
    for &(g, p, inter) in &table.pairs {
        let (gs, ps) = (table.gt_size(g), table.pred_size(p));
        let iou = table.iou(g, p, inter);
        gt_best_iou[g as usize - 1] = gt_best_iou[g as usize - 1].max(iou);
        pred_best_iou[p as usize - 1] = pred_best_iou[p as usize - 1].max(iou);
        let score = criterion.score(gs, ps, inter);
        if criterion.qualifies(score, inter) {
            qualifying.push((g, p, score));
        }
    }
    let matches = match assignment {
        Assignment::ManyToOne => qualifying,
        Assignment::OneToOne => assign_one_to_one(&qualifying, ng, np, true),
        Assignment::MaxScore => assign_one_to_one(&qualifying, ng, np, false),
        Assignment::Greedy => assign_greedy(qualifying),
        Assignment::Anima { alpha, beta, gamma } => {
            return anima::detect(table, alpha, beta, gamma, gt_best_iou, pred_best_iou);
        }
        // The caller passes the table of dilated GT lesions: every touching pair is a hit.
        Assignment::Dilated { .. } => table
            .pairs
            .iter()
            .map(|&(g, p, i)| (g, p, table.iou(g, p, i)))
            .collect(),
    };
    let mut gt_matched = vec![Vec::new(); ng];
    let mut pred_matched = vec![Vec::new(); np];
    for &(g, p, _) in &matches {
        gt_matched[g as usize - 1].push(p);
        pred_matched[p as usize - 1].push(g);
    }
    Matching {
        matches,
        gt_best_iou,
        pred_best_iou,
        gt_matched,
        pred_matched,
    }
}

/// Pairs in descending score (ties: lower prediction id, then lower GT id),
/// taken when neither lesion is matched yet.
fn assign_greedy(mut qualifying: Vec<(u32, u32, f64)>) -> Vec<(u32, u32, f64)> {
    qualifying.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.1.cmp(&b.1)).then(a.0.cmp(&b.0)));
    let mut used_g = std::collections::HashSet::new();
    let mut used_p = std::collections::HashSet::new();
    let mut out: Vec<(u32, u32, f64)> = qualifying
        .into_iter()
        .filter(|&(g, p, _)| {
            if used_g.contains(&g) || used_p.contains(&p) {
                return false;
            }
            used_g.insert(g);
            used_p.insert(p);
            true
        })
        .collect();
    out.sort_by_key(|&(g, p, _)| (g, p));
    out
}

/// Maximum-weight one-to-one assignment with weights score + 1 (`plus_one`:
/// most matches first) or score, solved per connected component of the
/// qualifying-pair graph.
fn assign_one_to_one(qualifying: &[(u32, u32, f64)], ng: usize, np: usize, plus_one: bool) -> Vec<(u32, u32, f64)> {
    // Union-find over nodes: GT g → g-1, pred p → ng + p-1.
    let mut parent: Vec<usize> = (0..ng + np).collect();
    fn find(parent: &mut [usize], mut a: usize) -> usize {
        while parent[a] != a {
            parent[a] = parent[parent[a]];
            a = parent[a];
        }
        a
    }
    for &(g, p, _) in qualifying {
        let (a, b) = (
            find(&mut parent, g as usize - 1),
            find(&mut parent, ng + p as usize - 1),
        );
        if a != b {
            parent[a.max(b)] = a.min(b);
        }
    }
    // Group pairs by component root; BTreeMap keeps component order deterministic.
    let mut groups: std::collections::BTreeMap<usize, Vec<(u32, u32, f64)>> = Default::default();
    for &pair in qualifying {
        let root = find(&mut parent, pair.0 as usize - 1);
        groups.entry(root).or_default().push(pair);
    }
    let mut out = Vec::new();
    for pairs in groups.into_values() {
        if pairs.len() == 1 {
            out.push(pairs[0]);
            continue;
        }
        out.extend(hungarian(&pairs, plus_one));
    }
    out.sort_by_key(|&(g, p, _)| (g, p));
    out
}

fn hungarian(pairs: &[(u32, u32, f64)], plus_one: bool) -> Vec<(u32, u32, f64)> {
    let offset = if plus_one { 1.0 } else { 0.0 };
    let mut gts: Vec<u32> = pairs.iter().map(|p| p.0).collect();
    let mut preds: Vec<u32> = pairs.iter().map(|p| p.1).collect();
    gts.sort_unstable();
    gts.dedup();
    preds.sort_unstable();
    preds.dedup();
    // kuhn_munkres needs rows <= columns: put the smaller side on rows.
    let gt_rows = gts.len() <= preds.len();
    let (nr, nc) = if gt_rows {
        (gts.len(), preds.len())
    } else {
        (preds.len(), gts.len())
    };
    let mut w = pathfinding::matrix::Matrix::new(nr, nc, 0i64);
    for &(g, p, s) in pairs {
        let gi = gts.binary_search(&g).unwrap_or_default();
        let pi = preds.binary_search(&p).unwrap_or_default();
        let (r, c) = if gt_rows { (gi, pi) } else { (pi, gi) };
        // A qualifying pair always weighs more than 0 (scores are > 0 when voxels are shared).
        w[(r, c)] = (((s + offset) * WEIGHT_SCALE).round() as i64).max(1);
    }
    let (_, assign) = pathfinding::kuhn_munkres::kuhn_munkres(&w);
    let score_of: std::collections::HashMap<(u32, u32), f64> = pairs.iter().map(|&(g, p, s)| ((g, p), s)).collect();
    let mut out = Vec::new();
    for (r, &c) in assign.iter().enumerate() {
        if w[(r, c)] == 0 {
            continue; // assigned to a non-qualifying cell: no match
        }
        let (g, p) = if gt_rows {
            (gts[r], preds[c])
        } else {
            (gts[c], preds[r])
        };
        out.push((g, p, score_of[&(g, p)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Equal-weight alternatives go to the lower label ids in these patterns
    /// (the design asks ties to break by label id; the solver's order gives
    /// it here, see docs/metrics.md): a GT lesion split into two equal halves
    /// is matched to the first half, two GT halves of one prediction likewise.
    #[test]
    fn one_to_one_ties_go_to_the_lower_ids() {
        assert_eq!(
            assign_one_to_one(&[(1, 1, 0.5), (1, 2, 0.5)], 1, 2, true),
            [(1, 1, 0.5)]
        );
        assert_eq!(
            assign_one_to_one(&[(1, 2, 0.5), (1, 1, 0.5)], 1, 2, true),
            [(1, 1, 0.5)]
        );
        assert_eq!(
            assign_one_to_one(&[(1, 1, 0.5), (2, 1, 0.5)], 2, 1, true),
            [(1, 1, 0.5)]
        );
        assert_eq!(
            assign_one_to_one(&[(2, 1, 0.5), (1, 1, 0.5)], 2, 1, true),
            [(1, 1, 0.5)]
        );
        let square = [(1, 1, 0.3), (1, 2, 0.3), (2, 1, 0.3), (2, 2, 0.3)];
        assert_eq!(assign_one_to_one(&square, 2, 2, true), [(1, 1, 0.3), (2, 2, 0.3)]);
        let wide = [(1, 1, 0.2), (1, 2, 0.2), (1, 3, 0.2), (2, 2, 0.2), (2, 3, 0.2)];
        assert_eq!(assign_one_to_one(&wide, 2, 3, true), [(1, 1, 0.2), (2, 2, 0.2)]);
    }

    fn table(gt: &[u64], pred: &[u64], pairs: &[(u32, u32, u64)]) -> OverlapTable {
        OverlapTable {
            gt_sizes: gt.to_vec(),
            pred_sizes: pred.to_vec(),
            pairs: pairs.to_vec(),
        }
    }

    #[test]
    fn parse_criteria() {
        assert_eq!("iou:0.1".parse::<Criterion>().unwrap(), Criterion::default());
        assert_eq!("any".parse::<Criterion>().unwrap().measure, Measure::Any);
        assert!("iou:2".parse::<Criterion>().is_err());
        assert!("foo:0.1".parse::<Criterion>().is_err());
        assert!("iou".parse::<Criterion>().is_err());
    }

    #[test]
    fn threshold_is_inclusive_unless_strict() {
        // IoU exactly 0.1: 1 shared voxel, union 10.
        let t = table(&[5], &[6], &[(1, 1, 1)]);
        let mut c = Criterion::default();
        assert_eq!(match_lesions(&t, &c, Assignment::OneToOne).tp(), 1);
        c.strict = true;
        assert_eq!(match_lesions(&t, &c, Assignment::OneToOne).tp(), 0);
    }

    #[test]
    fn one_to_one_resolves_competition() {
        // GT1 overlaps P1 (IoU .5) and P2 (.3); GT2 overlaps only P1 (.2).
        // Best assignment: GT1-P2, GT2-P1 (two matches beat one better one).
        let t = table(&[10, 10], &[10, 10], &[(1, 1, 6), (1, 2, 4), (2, 1, 3)]);
        let m = match_lesions(&t, &Criterion::default(), Assignment::OneToOne);
        let pairs: Vec<(u32, u32)> = m.matches.iter().map(|&(g, p, _)| (g, p)).collect();
        assert_eq!(pairs, vec![(1, 2), (2, 1)]);
        assert_eq!((m.tp(), m.tp_pred()), (2, 2));
    }

    #[test]
    fn many_to_one_counts_every_qualifying_prediction() {
        // One GT lesion split into two predictions, both qualifying.
        let t = table(&[20], &[8, 8], &[(1, 1, 8), (1, 2, 8)]);
        let one = match_lesions(&t, &Criterion::default(), Assignment::OneToOne);
        assert_eq!((one.tp(), one.tp_pred()), (1, 1));
        let many = match_lesions(&t, &Criterion::default(), Assignment::ManyToOne);
        assert_eq!((many.tp(), many.tp_pred()), (1, 2));
    }

    #[test]
    fn coverage_and_dice_scores() {
        let c: Criterion = "coverage:0.5".parse().unwrap();
        assert_eq!(c.score(10, 100, 5), 0.5);
        let d: Criterion = "dice:0.5".parse().unwrap();
        assert_eq!(d.score(10, 10, 5), 0.5);
    }
}
