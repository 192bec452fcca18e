//! The lesion correspondence graph: GT and predicted lesions as nodes, an
//! edge for every pair that shares voxels (the overlap table's pairs). Each
//! connected component with an edge is one of
//! - one-to-one: one GT lesion, one prediction;
//! - split: one GT lesion, several predictions;
//! - merge: several GT lesions, one prediction;
//! - complex: several of both.
//!
//! Lesions without any overlap are `none`. The classes do not depend on the
//! matching rule: they explain why tools that count TPs differently disagree
//! (one split GT lesion is 1 TP under one-to-one matching, 2 under Shifts').

use super::OverlapTable;
use petgraph::unionfind::UnionFind;
use serde::{Deserialize, Serialize};

/// A lesion's correspondence class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Correspondence {
    None,
    OneToOne,
    Split,
    Merge,
    Complex,
}

impl Correspondence {
    pub fn as_str(self) -> &'static str {
        match self {
            Correspondence::None => "none",
            Correspondence::OneToOne => "one-to-one",
            Correspondence::Split => "split",
            Correspondence::Merge => "merge",
            Correspondence::Complex => "complex",
        }
    }
}

/// Number of graph components of each class in a case (or a sum of cases).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorrespondenceCounts {
    pub one_to_one: u64,
    pub split: u64,
    pub merge: u64,
    pub complex: u64,
}

impl std::ops::AddAssign for CorrespondenceCounts {
    fn add_assign(&mut self, o: Self) {
        self.one_to_one += o.one_to_one;
        self.split += o.split;
        self.merge += o.merge;
        self.complex += o.complex;
    }
}

/// Classes of every GT lesion and every prediction, and the per-class component counts.
pub struct Graph {
    pub gt: Vec<Correspondence>,
    pub pred: Vec<Correspondence>,
    pub counts: CorrespondenceCounts,
}

/// Builds the graph from the overlap table (GT node g−1, prediction node ng+p−1).
pub fn correspondence(table: &OverlapTable) -> Graph {
    let (ng, np) = (table.gt_sizes.len(), table.pred_sizes.len());
    let mut uf = UnionFind::<usize>::new(ng + np);
    for &(g, p, _) in &table.pairs {
        uf.union(g as usize - 1, ng + p as usize - 1);
    }
    // Per component root: (GT lesions, predictions, has an edge).
    let mut sizes = vec![(0u32, 0u32, false); ng + np];
    for i in 0..ng + np {
        let r = uf.find(i);
        if i < ng {
            sizes[r].0 += 1;
        } else {
            sizes[r].1 += 1;
        }
    }
    for &(g, _, _) in &table.pairs {
        let r = uf.find(g as usize - 1);
        sizes[r].2 = true;
    }
    let class = |(gs, ps, edge): (u32, u32, bool)| match (edge, gs, ps) {
        (false, _, _) => Correspondence::None,
        (true, 1, 1) => Correspondence::OneToOne,
        (true, 1, _) => Correspondence::Split,
        (true, _, 1) => Correspondence::Merge,
        _ => Correspondence::Complex,
    };
    let mut counts = CorrespondenceCounts::default();
    for (i, &s) in sizes.iter().enumerate() {
        if uf.find(i) != i {
            continue;
        }
        match class(s) {
            Correspondence::OneToOne => counts.one_to_one += 1,
            Correspondence::Split => counts.split += 1,
            Correspondence::Merge => counts.merge += 1,
            Correspondence::Complex => counts.complex += 1,
            Correspondence::None => {}
        }
    }
    let of = |i: usize| class(sizes[uf.find(i)]);
    Graph {
        gt: (0..ng).map(of).collect(),
        pred: (ng..ng + np).map(of).collect(),
        counts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_by_hand() {
        // GT 1 ↔ P 1 (one-to-one); GT 2 ↔ P 2, P 3 (split); GT 3, GT 4 ↔ P 4 (merge);
        // GT 5, 6 ↔ P 5, 6 crossing (complex); GT 7 and P 7 touch nothing.
        let t = OverlapTable {
            gt_sizes: vec![5; 7],
            pred_sizes: vec![5; 7],
            pairs: vec![
                (1, 1, 3),
                (2, 2, 2),
                (2, 3, 2),
                (3, 4, 1),
                (4, 4, 1),
                (5, 5, 1),
                (5, 6, 1),
                (6, 6, 1),
            ],
        };
        let g = correspondence(&t);
        use Correspondence::*;
        assert_eq!(g.gt, vec![OneToOne, Split, Merge, Merge, Complex, Complex, None]);
        assert_eq!(g.pred, vec![OneToOne, Split, Split, Merge, Complex, Complex, None]);
        assert_eq!(
            g.counts,
            CorrespondenceCounts {
                one_to_one: 1,
                split: 1,
                merge: 1,
                complex: 1
            }
        );
    }
}
