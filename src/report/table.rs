//! Rendering a small table as Markdown (padded, for terminals), CSV or LaTeX
//! (booktabs, for papers).

use crate::eval::ModelResult;
use crate::matching::graph::CorrespondenceCounts;
use crate::metrics::{Counts, Rates};

/// Output flavour for tables printed to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Md,
    Csv,
    Latex,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "md" | "markdown" => Ok(Format::Md),
            "csv" => Ok(Format::Csv),
            "latex" | "tex" => Ok(Format::Latex),
            _ => Err(format!("format must be md, csv or latex, not {s:?}")),
        }
    }
}

/// A header, rows of cells (None = undefined value) and which columns are numeric.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    pub numeric: Vec<bool>,
}

impl Table {
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Md => self.markdown(),
            Format::Csv => self.csv(),
            Format::Latex => self.latex(),
        }
    }

    fn cell(c: &Option<String>, missing: &str) -> String {
        c.clone().unwrap_or_else(|| missing.to_string())
    }

    fn markdown(&self) -> String {
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(|c| md_escape(&Self::cell(c, "–"))).collect())
            .collect();
        let mut width: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &cells {
            for (w, c) in width.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count()).max(3);
            }
        }
        let pad = |s: &str, w: usize, right: bool| {
            let n = w.saturating_sub(s.chars().count());
            if right {
                format!("{}{s}", " ".repeat(n))
            } else {
                format!("{s}{}", " ".repeat(n))
            }
        };
        let line = |r: &[String]| {
            let parts: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(i, c)| pad(c, width[i], self.numeric[i]))
                .collect();
            format!("| {} |\n", parts.join(" | "))
        };
        let mut out = line(&self.header);
        let rule: Vec<String> = width
            .iter()
            .zip(&self.numeric)
            .map(|(&w, &num)| {
                if num {
                    format!("{}:", "-".repeat(w - 1))
                } else {
                    "-".repeat(w)
                }
            })
            .collect();
        out.push_str(&format!("| {} |\n", rule.join(" | ")));
        for r in &cells {
            out.push_str(&line(r));
        }
        out
    }

    fn csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        // Writing to memory cannot fail.
        let _ = w.write_record(&self.header);
        for r in &self.rows {
            let _ = w.write_record(r.iter().map(|c| Self::cell(c, "")));
        }
        String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
    }

    fn latex(&self) -> String {
        let esc = |s: &str| {
            let mut o = String::new();
            for ch in s.chars() {
                match ch {
                    '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                        o.push('\\');
                        o.push(ch);
                    }
                    '~' => o.push_str("\\textasciitilde{}"),
                    '^' => o.push_str("\\textasciicircum{}"),
                    '\\' => o.push_str("\\textbackslash{}"),
                    _ => o.push(ch),
                }
            }
            o
        };
        let spec: String = self.numeric.iter().map(|&n| if n { 'r' } else { 'l' }).collect();
        let mut out = format!("\\begin{{tabular}}{{{spec}}}\n\\toprule\n");
        let h: Vec<String> = self.header.iter().map(|c| esc(c)).collect();
        out.push_str(&format!("{} \\\\\n\\midrule\n", h.join(" & ")));
        for r in &self.rows {
            let cells: Vec<String> = r.iter().map(|c| esc(&Self::cell(c, "--"))).collect();
            out.push_str(&format!("{} \\\\\n", cells.join(" & ")));
        }
        out.push_str("\\bottomrule\n\\end{tabular}\n");
        out
    }
}

fn f4(v: Option<f64>) -> Option<String> {
    v.map(|x| format!("{x:.4}"))
}

fn n(v: u64) -> Option<String> {
    Some(v.to_string())
}

fn count_cells(c: &Counts, r: &Rates, g: &CorrespondenceCounts) -> Vec<Option<String>> {
    vec![
        n(c.gt),
        n(c.pred),
        n(c.tp),
        n(c.fp),
        n(c.fn_),
        n(g.one_to_one),
        n(g.split),
        n(g.merge),
        n(g.complex),
        f4(r.precision),
        f4(r.recall),
        f4(r.f1),
        f4(r.dice),
    ]
}

/// Per-case table for one model, with the micro total and macro mean rows.
pub fn cases_table(m: &ModelResult) -> Table {
    let mut header: Vec<String> = [
        "Case",
        "GT",
        "Pred",
        "TP",
        "FP",
        "FN",
        "1:1",
        "Split",
        "Merge",
        "Complex",
        "Precision",
        "Recall",
        "F1",
        "Dice",
    ]
    .map(String::from)
    .to_vec();
    let preset_keys: Vec<&String> = m.preset_metrics_mean.keys().collect();
    header.extend(preset_keys.iter().map(|k| preset_column(k)));
    let mut rows = Vec::new();
    for c in &m.cases {
        let mut row = vec![Some(c.case.clone())];
        row.extend(count_cells(&c.counts, &c.rates, &c.correspondence));
        row.extend(
            preset_keys
                .iter()
                .map(|k| f4(c.preset_metrics.get(*k).copied().flatten())),
        );
        rows.push(row);
    }
    let mut total = vec![Some("total (micro)".to_string())];
    total.extend(count_cells(&m.total, &m.total_rates, &m.correspondence));
    total.extend(preset_keys.iter().map(|_| None));
    rows.push(total);
    let a = &m.macro_avg;
    let mut mac = vec![Some("mean (macro)".to_string())];
    mac.extend(std::iter::repeat_n(None, 9));
    mac.extend([f4(a.precision), f4(a.recall), f4(a.f1), f4(a.dice)]);
    mac.extend(preset_keys.iter().map(|k| f4(m.preset_metrics_mean[*k])));
    rows.push(mac);
    Table {
        numeric: header.iter().enumerate().map(|(i, _)| i > 0).collect(),
        header,
        rows,
    }
}

/// Per-case tables of several label regions of one model, one after the
/// other, with the region in the first column.
pub fn region_cases_table(models: &[ModelResult]) -> Table {
    let mut out = Table::default();
    for m in models {
        let t = cases_table(m);
        if out.header.is_empty() {
            out.header = std::iter::once("Region".to_string()).chain(t.header).collect();
            out.numeric = std::iter::once(false).chain(t.numeric).collect();
        }
        let region = m.region.as_ref().map(|r| r.name.clone());
        out.rows.extend(
            t.rows
                .into_iter()
                .map(|r| std::iter::once(region.clone()).chain(r).collect()),
        );
    }
    out
}

/// Column title of a preset metric, e.g. `rq` → `RQ (panoptica)`.
fn preset_column(key: &str) -> String {
    let name = match key {
        "sensl" => "SensL",
        "ppvl" => "PPVL",
        "f1" => "F1",
        "rq" => "RQ",
        "sq" => "SQ",
        "sq_dsc" => "SQ-DSC",
        "pq" => "PQ",
        "pq_dsc" => "PQ-DSC",
        other => other,
    };
    format!("{name} (preset)")
}

/// The table researchers put in papers: one row per model, micro totals.
pub fn compare_table(models: &[ModelResult]) -> Table {
    let mut header: Vec<String> = [
        "No.",
        "Model",
        "TP",
        "FP",
        "FN",
        "GT",
        "Split",
        "Merge",
        "Precision",
        "Recall",
        "F1",
        "Dice",
    ]
    .map(String::from)
    .to_vec();
    // Preset metrics are macro means over cases (the challenges average per case).
    let preset_keys: Vec<String> = models
        .first()
        .map(|m| m.preset_metrics_mean.keys().cloned().collect())
        .unwrap_or_default();
    header.extend(preset_keys.iter().map(|k| format!("{} mean", preset_column(k))));
    let with_region = models.iter().any(|m| m.region.is_some());
    if with_region {
        header.insert(2, "Region".into());
    }
    let rows = models
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let (c, r) = (&m.total, &m.total_rates);
            let mut row = vec![
                n(i as u64 + 1),
                Some(m.name.clone()),
                n(c.tp),
                n(c.fp),
                n(c.fn_),
                n(c.gt),
                n(m.correspondence.split),
                n(m.correspondence.merge),
                f4(r.precision),
                f4(r.recall),
                f4(r.f1),
                f4(r.dice),
            ];
            row.extend(
                preset_keys
                    .iter()
                    .map(|k| f4(m.preset_metrics_mean.get(k).copied().flatten())),
            );
            if with_region {
                row.insert(2, m.region.as_ref().map(|r| r.name.clone()));
            }
            row
        })
        .collect();
    Table {
        numeric: header
            .iter()
            .enumerate()
            .map(|(i, _)| i != 1 && !(with_region && i == 2))
            .collect(),
        header,
        rows,
    }
}

/// Detection metrics of a probability-map run: one row per metric, with the
/// bootstrap interval when there is one.
pub fn detection_table(d: &crate::prob::summary::DetectionSummary) -> Table {
    let fin = |v: f64| if v.is_finite() { Some(format!("{v:.4}")) } else { None };
    let ci = |i: Option<crate::prob::summary::Interval>| match i {
        Some(i) if i.low.is_finite() && i.high.is_finite() => Some(format!("{:.4} – {:.4}", i.low, i.high)),
        _ => None,
    };
    let b = d.bootstrap.as_ref();
    let level = b.map_or(String::new(), |b| format!(" {}%", crate::report::percent(b.level)));
    let mut rows = vec![
        vec![Some("AP".into()), fin(d.ap), ci(b.map(|b| b.ap))],
        vec![Some("AUROC (case level)".into()), fin(d.auroc), ci(b.map(|b| b.auroc))],
        vec![
            Some("Ranking score (AUROC+AP)/2".into()),
            fin(d.ranking_score),
            ci(b.map(|b| b.ranking_score)),
        ],
        vec![Some("CPM (1/8–8 FP/case)".into()), fin(d.cpm), ci(b.map(|b| b.cpm))],
    ];
    for s in &d.sensitivity_at {
        rows.push(vec![
            Some(format!("Sensitivity at {} FP/case", s.fp_per_case)),
            fin(s.sensitivity),
            None,
        ]);
    }
    if let Some(p) = &d.best_f1 {
        rows.push(vec![
            Some(format!(
                "Best F1 (threshold {:.4}: TP {}, FP {}, FN {})",
                p.threshold, p.tp, p.fp, p.fn_
            )),
            fin(p.f1),
            None,
        ]);
    }
    Table {
        header: vec![
            format!("Detection ({} cases, {} lesions)", d.num_cases, d.num_lesions),
            "Value".into(),
            format!("CI{level}"),
        ],
        rows,
        numeric: vec![false, true, true],
    }
}

/// `frac` × 100 without the float noise of the product (0.57 → "57", not
/// "56.99999999999999"; 0.025 → "2.5").
pub fn percent(frac: f64) -> String {
    let s = format!("{:.9}", frac * 100.0);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A Markdown table cell: `|` would start a column and a line break a row,
/// so case and model names holding them are escaped (`\|`, a space).
pub fn md_escape(s: &str) -> String {
    if !s.contains(['|', '\n', '\r']) {
        return s.to_string();
    }
    s.replace('|', "\\|").replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Table {
        Table {
            header: vec!["Model".into(), "TP".into()],
            rows: vec![
                vec![Some("dice_loss".into()), Some("31".into())],
                vec![Some("a&b".into()), None],
            ],
            numeric: vec![false, true],
        }
    }

    #[test]
    fn renders_all_formats() {
        let md = t().render(Format::Md);
        assert!(
            md.starts_with("| Model     |  TP |\n| --------- | --: |\n| dice_loss |  31 |"),
            "{md}"
        );
        assert!(md.contains("|   – |"));
        assert_eq!(t().render(Format::Csv), "Model,TP\ndice_loss,31\na&b,\n");
        let tex = t().render(Format::Latex);
        assert!(
            tex.contains("dice\\_loss & 31 \\\\") && tex.contains("a\\&b & -- \\\\"),
            "{tex}"
        );
    }

    #[test]
    fn percentages_print_without_float_noise() {
        assert_eq!(percent(0.57), "57");
        assert_eq!(percent(0.07), "7");
        assert_eq!(percent(0.025), "2.5");
        assert_eq!(percent(0.95), "95");
    }

    #[test]
    fn markdown_cells_keep_their_column_and_row() {
        let mut t = t();
        t.rows[0][0] = Some("p|b\nx".into());
        let md = t.render(Format::Md);
        assert!(md.contains("| p\\|b x |  31 |"), "{md}");
        assert_eq!(md.lines().count(), 4);
    }
}
