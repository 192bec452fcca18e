//! The figures themselves. Each one is a small struct holding what it shows;
//! `draw` lays it out on any plotters backend (see `super::render`).

use super::{DrawResult, Figure, Scale, Series, SizeBins};
use plotters::chart::MeshStyle;
use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Okabe & Ito's colour-blind-safe palette (blue, vermillion, bluish green,
/// reddish purple, orange, sky blue, yellow, black).
const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(240, 228, 66),
    RGBColor(0, 0, 0),
];
const TP_COLOUR: RGBColor = RGBColor(0, 158, 115);
const FP_COLOUR: RGBColor = RGBColor(213, 94, 0);
const FN_COLOUR: RGBColor = RGBColor(0, 114, 178);
const GRID: RGBColor = RGBColor(220, 220, 220);

fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn font(s: Scale, size: f64) -> TextStyle<'static> {
    TextStyle::from(("sans-serif", s.f(size)).into_font())
}

/// The mesh (grid, tick labels, axis titles) styled alike in every figure; callers add axes specifics.
fn styled_mesh<'a, 'b, X, Y, DB>(
    chart: &'b mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    s: Scale,
    label_size: f64,
) -> MeshStyle<'a, 'b, X, Y, DB>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    DB: DrawingBackend,
{
    let mut mesh = chart.configure_mesh();
    mesh.label_style(font(s, label_size))
        .axis_desc_style(font(s, 15.0))
        .light_line_style(GRID.mix(0.4))
        .max_light_lines(2)
        .bold_line_style(GRID);
    mesh
}

/// Title, margins and label areas shared by every figure.
fn chart_builder<'a, 'b, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    s: Scale,
    title: &str,
    right_axis: bool,
) -> ChartBuilder<'a, 'b, DB> {
    let mut b = ChartBuilder::on(root);
    b.caption(title, font(s, 19.0))
        .margin(s.px(12.0))
        .x_label_area_size(s.px(46.0))
        .y_label_area_size(s.px(58.0));
    if right_axis {
        b.right_y_label_area_size(s.px(50.0));
    }
    b
}

fn legend<'a, DB, CT>(chart: &mut ChartContext<'a, DB, CT>, s: Scale, pos: SeriesLabelPosition) -> DrawResult<DB>
where
    DB: DrawingBackend + 'a,
    CT: plotters::coord::CoordTranslate,
{
    chart
        .configure_series_labels()
        .position(pos)
        .label_font(font(s, 13.0))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .margin(s.px(8.0))
        .legend_area_size(s.px(26.0))
        .draw()
}

fn line_legend(c: RGBColor, s: Scale) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    let w = s.i(18.0);
    let sw = s.px(2.0);
    move |(x, y)| PathElement::new(vec![(x, y), (x + w, y)], c.stroke_width(sw))
}

fn box_legend(c: RGBColor, s: Scale) -> impl Fn((i32, i32)) -> Rectangle<(i32, i32)> {
    let h = s.i(5.0);
    move |(x, y)| Rectangle::new([(x, y - h), (x + 2 * h, y + h)], c.filled())
}

/// Labels for categories at integer x positions 0..n.
fn category_label(names: &[String]) -> impl Fn(&f64) -> String + '_ {
    move |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
            names[i as usize].clone()
        } else {
            String::new()
        }
    }
}

/// Tick labels of a count axis: whole numbers only.
fn whole(v: &f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        String::new()
    }
}

/// A short number for axis and bin labels: 0.5, 3.2, 12, 1250.
fn short(v: f64) -> String {
    if v.is_infinite() {
        "∞".into()
    } else if v.abs() < 10.0 && v.fract() != 0.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// Grouped TP/FP/FN bars per model (the compare table as a figure).
pub struct Counts<'a> {
    pub series: &'a [Series<'a>],
}

impl Figure for Counts<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, s: Scale) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let n = self.series.len().max(1);
        let values: Vec<[u64; 3]> = self
            .series
            .iter()
            .map(|m| {
                [
                    m.model.total.counts.tp,
                    m.model.total.counts.fp,
                    m.model.total.counts.fn_,
                ]
            })
            .collect();
        let ymax = values.iter().flatten().copied().max().unwrap_or(0).max(1) as f64 * 1.15;
        let names: Vec<String> = self.series.iter().map(|m| m.name.clone()).collect();
        let mut chart = chart_builder(root, s, "Lesion detection per model", false)
            .build_cartesian_2d(-0.5f64..n as f64 - 0.5, 0f64..ymax)?;
        let label = category_label(&names);
        styled_mesh(&mut chart, s, 14.0)
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&label)
            .y_label_formatter(&whole)
            .y_desc("Lesions")
            .draw()?;
        let width = 0.8 / 3.0;
        let cats = [("TP", TP_COLOUR), ("FP", FP_COLOUR), ("FN", FN_COLOUR)];
        for (k, (cat, c)) in cats.into_iter().enumerate() {
            let bars = values.iter().enumerate().map(move |(i, v)| {
                let x0 = i as f64 - 0.4 + k as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width * 0.92, v[k] as f64)], c.filled())
            });
            chart.draw_series(bars)?.label(cat).legend(box_legend(c, s));
            let value_style = font(s, 12.0).pos(Pos::new(HPos::Center, VPos::Bottom));
            chart.draw_series(values.iter().enumerate().map(|(i, v)| {
                let xc = i as f64 - 0.4 + (k as f64 + 0.46) * width;
                Text::new(v[k].to_string(), (xc, v[k] as f64), value_style.clone())
            }))?;
        }
        legend(&mut chart, s, SeriesLabelPosition::UpperRight)
    }
}

/// GT vs predicted lesion count per case, one marker shape and colour per model.
pub struct LesionCounts<'a> {
    pub series: &'a [Series<'a>],
}

impl Figure for LesionCounts<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, s: Scale) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let max = self
            .series
            .iter()
            .flat_map(|m| m.model.cases.iter().map(|c| c.counts.gt.max(c.counts.pred)))
            .max()
            .unwrap_or(0)
            .max(1) as f64;
        let top = max * 1.08 + 0.5;
        let mut chart = chart_builder(root, s, "Lesions per case: ground truth vs prediction", false)
            .build_cartesian_2d(-0.5f64..top, -0.5f64..top)?;
        styled_mesh(&mut chart, s, 14.0)
            .x_label_formatter(&whole)
            .y_label_formatter(&whole)
            .x_desc("GT lesions per case")
            .y_desc("Predicted lesions per case")
            .draw()?;
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, 0.0), (top, top)],
                s.px(6.0),
                s.px(4.0),
                BLACK.mix(0.6).stroke_width(s.px(1.0)),
            ))?
            .label("identity")
            .legend(line_legend(RGBColor(110, 110, 110), s));
        let r = s.i(4.0);
        let sw = s.px(1.5);
        for (i, m) in self.series.iter().enumerate() {
            let c = colour(m.index);
            let pts = m
                .model
                .cases
                .iter()
                .map(|cs| (cs.counts.gt as f64, cs.counts.pred as f64));
            let anno = match i % 3 {
                0 => chart.draw_series(pts.map(|p| Circle::new(p, r, c.mix(0.8).stroke_width(sw))))?,
                1 => chart.draw_series(pts.map(|p| TriangleMarker::new(p, r + 1, c.mix(0.8).stroke_width(sw))))?,
                _ => chart.draw_series(pts.map(|p| Cross::new(p, r, c.mix(0.9).stroke_width(sw))))?,
            };
            let shape = i % 3;
            anno.label(m.name.clone()).legend(move |(x, y)| {
                let x = x + r * 2;
                let e: DynElement<'static, DB, (i32, i32)> = match shape {
                    0 => Circle::new((x, y), r, c.stroke_width(sw)).into_dyn(),
                    1 => TriangleMarker::new((x, y), r + 1, c.stroke_width(sw)).into_dyn(),
                    _ => Cross::new((x, y), r, c.stroke_width(sw)).into_dyn(),
                };
                e
            });
        }
        legend(&mut chart, s, SeriesLabelPosition::UpperLeft)
    }
}

/// Share of GT lesions detected (mask-based TP) per lesion-volume bin.
pub struct SizeSensitivity<'a> {
    series: &'a [Series<'a>],
    edges: Vec<f64>,
}

impl<'a> SizeSensitivity<'a> {
    /// None when no model carries per-lesion volumes. Quantile bins pool the
    /// GT lesions of every series (they differ between label regions).
    pub fn new(series: &'a [Series<'a>], bins: &SizeBins) -> Option<Self> {
        let mut volumes: Vec<f64> = series
            .iter()
            .flat_map(|s| s.model.cases.iter())
            .flat_map(|c| c.gt_lesions.iter().map(|l| l.mm3))
            .collect();
        if volumes.is_empty() {
            return None;
        }
        volumes.sort_by(f64::total_cmp);
        let edges = match bins {
            SizeBins::Edges(e) => e.clone(),
            SizeBins::Quantile(q) => {
                let n = volumes.len();
                let mut e: Vec<f64> = (0..=*q).map(|k| volumes[((k * n) / q).min(n - 1)]).collect();
                e[0] = volumes[0];
                e[*q] = volumes[n - 1];
                e.dedup();
                if e.len() == 1 {
                    e.push(e[0]);
                }
                e
            }
        };
        Some(SizeSensitivity { series, edges })
    }

    /// Bin of a volume: [e_k, e_k+1), the last bin closed; None outside.
    fn bin(&self, v: f64) -> Option<usize> {
        let nb = self.edges.len() - 1;
        if v < self.edges[0] || v > self.edges[nb] {
            return None;
        }
        Some((0..nb).rev().find(|&k| v >= self.edges[k]).unwrap_or(0))
    }
}

impl Figure for SizeSensitivity<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, s: Scale) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let nb = self.edges.len() - 1;
        let nm = self.series.len();
        // [model][bin] → (detected, lesions)
        let counts: Vec<Vec<(u64, u64)>> = self
            .series
            .iter()
            .map(|m| {
                let mut c = vec![(0u64, 0u64); nb];
                for l in m.model.cases.iter().flat_map(|cs| &cs.gt_lesions) {
                    if let Some(b) = self.bin(l.mm3) {
                        c[b].1 += 1;
                        c[b].0 += u64::from(l.tp);
                    }
                }
                c
            })
            .collect();
        let names: Vec<String> = (0..nb)
            .map(|b| {
                let (lo, hi) = (self.edges[b], self.edges[b + 1]);
                let range = if self.edges.len() == 2 && lo == hi {
                    short(lo)
                } else {
                    format!("{}–{}", short(lo), short(hi))
                };
                // n when every series has the same GT lesions in the bin (one ground truth).
                let n = counts.first().map(|c| c[b].1);
                match n {
                    Some(n) if counts.iter().all(|c| c[b].1 == n) => format!("{range} (n={n})"),
                    _ => range,
                }
            })
            .collect();
        let mut chart = chart_builder(root, s, "Detection sensitivity by lesion size", false)
            .build_cartesian_2d(-0.5f64..nb as f64 - 0.5, 0f64..1.12)?;
        let label = category_label(&names);
        styled_mesh(&mut chart, s, 13.0)
            .disable_x_mesh()
            .x_labels(nb)
            .x_label_formatter(&label)
            .y_label_formatter(&|y| format!("{:.0}%", y * 100.0))
            .x_desc("GT lesion volume (mm³)")
            .y_desc("GT lesions detected")
            .draw()?;
        let width = 0.8 / nm.max(1) as f64;
        for (i, m) in self.series.iter().enumerate() {
            let c = colour(m.index);
            let bars = counts[i]
                .iter()
                .enumerate()
                .filter(|(_, (_, n))| *n > 0)
                .map(|(b, &(d, n))| {
                    let x0 = b as f64 - 0.4 + i as f64 * width;
                    Rectangle::new([(x0, 0.0), (x0 + width * 0.92, d as f64 / n as f64)], c.filled())
                });
            chart.draw_series(bars)?.label(m.name.clone()).legend(box_legend(c, s));
        }
        legend(&mut chart, s, SeriesLabelPosition::UpperLeft)
    }
}

/// x position on the FROC's log₂ axis, clamped to its ends (0 FP → left end).
fn froc_x(fp: f64) -> f64 {
    if fp <= 0.0 {
        FROC_X.0
    } else {
        fp.log2().clamp(FROC_X.0, FROC_X.1)
    }
}

const FROC_X: (f64, f64) = (-4.0, 4.0);

/// FROC curves with bootstrap bands.
pub struct Froc<'a> {
    pub series: &'a [&'a Series<'a>],
}

impl Figure for Froc<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, s: Scale) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let mut chart = chart_builder(root, s, "FROC", false).build_cartesian_2d(FROC_X.0..FROC_X.1, 0f64..1.02)?;
        let pow2 = |x: &f64| {
            let k = x.round() as i32;
            if k >= 0 {
                format!("{}", 1u32 << k)
            } else {
                format!("1/{}", 1u32 << -k)
            }
        };
        styled_mesh(&mut chart, s, 14.0)
            .x_labels(9)
            .x_label_formatter(&pow2)
            .x_desc("False positives per case (log scale)")
            .y_desc("Lesion sensitivity")
            .draw()?;
        for m in self.series {
            let Some(d) = &m.model.detection else { continue };
            let c = colour(m.index);
            if let Some(b) = &d.bootstrap {
                let upper = b.froc_band_fp_per_case.iter().zip(&b.froc_band);
                let mut poly: Vec<(f64, f64)> = upper
                    .clone()
                    .filter(|(_, iv)| iv.high.is_finite())
                    .map(|(&x, iv)| (froc_x(x), iv.high))
                    .collect();
                poly.extend(
                    upper
                        .rev()
                        .filter(|(_, iv)| iv.low.is_finite())
                        .map(|(&x, iv)| (froc_x(x), iv.low)),
                );
                if poly.len() > 2 {
                    chart.draw_series(std::iter::once(Polygon::new(poly, c.mix(0.18).filled())))?;
                }
            }
            // Step function: 0 below the first operating point, then each point's sensitivity.
            let mut path = vec![(FROC_X.0, 0.0)];
            let mut last = 0.0;
            for p in d
                .froc
                .iter()
                .filter(|p| p.fp_per_case.is_finite() && p.sensitivity.is_finite())
            {
                let x = froc_x(p.fp_per_case);
                path.push((x, last));
                path.push((x, p.sensitivity));
                last = p.sensitivity;
            }
            path.push((FROC_X.1, last));
            if path.len() > 3 && path[1].0 == FROC_X.0 {
                // The first point has (almost) no FPs: start the curve at its height, not with a rise at the edge.
                path.drain(..2);
            }
            chart
                .draw_series(LineSeries::new(path, c.stroke_width(s.px(2.0))))?
                .label(format!("{} (CPM {})", m.name, fmt_metric(d.cpm)))
                .legend(line_legend(c, s));
        }
        legend(&mut chart, s, SeriesLabelPosition::LowerRight)
    }
}

fn fmt_metric(v: f64) -> String {
    if v.is_finite() { format!("{v:.3}") } else { "n/a".into() }
}

/// Precision–recall curves (step form, as AP sums them).
pub struct PrCurve<'a> {
    pub series: &'a [&'a Series<'a>],
}

impl Figure for PrCurve<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, s: Scale) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let mut chart = chart_builder(root, s, "Precision–recall (lesion level)", false)
            .build_cartesian_2d(0f64..1.0, 0f64..1.04)?;
        styled_mesh(&mut chart, s, 14.0)
            .x_desc("Recall (lesion sensitivity)")
            .y_desc("Precision")
            .draw()?;
        for m in self.series {
            let Some(d) = &m.model.detection else { continue };
            let c = colour(m.index);
            let mut path = Vec::new();
            let mut prev_recall = 0.0;
            for p in d.operating_points.iter().filter(|p| p.recall.is_finite()) {
                path.push((prev_recall, p.precision));
                path.push((p.recall, p.precision));
                prev_recall = p.recall;
            }
            chart
                .draw_series(LineSeries::new(path, c.stroke_width(s.px(2.0))))?
                .label(format!("{} (AP {})", m.name, fmt_metric(d.ap)))
                .legend(line_legend(c, s));
        }
        legend(&mut chart, s, SeriesLabelPosition::LowerLeft)
    }
}

/// Both axes of the threshold figure run this far above their data, so the legend has a free band on top.
const HEADROOM: f64 = 1.45;

/// TP and FP counts and F1 against the candidate threshold, for one model.
pub struct Thresholds<'a> {
    pub series: &'a Series<'a>,
}

impl Figure for Thresholds<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, s: Scale) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let Some(d) = &self.series.model.detection else {
            return Ok(());
        };
        // Ascending thresholds; the counts hold on (previous threshold, this one].
        let mut pts: Vec<_> = d.operating_points.clone();
        pts.reverse();
        let ymax = pts
            .iter()
            .map(|p| p.tp.max(p.fp))
            .max()
            .unwrap_or(0)
            .max(d.num_lesions as u64)
            .max(1) as f64
            * HEADROOM;
        let title = format!("TP, FP and F1 vs threshold — {}", self.series.name);
        let mut chart = chart_builder(root, s, &title, true)
            .build_cartesian_2d(0f64..1.0, 0f64..ymax)?
            .set_secondary_coord(0f64..1.0, 0f64..HEADROOM);
        styled_mesh(&mut chart, s, 14.0)
            .x_desc("Candidate threshold (confidence ≥ t)")
            .y_label_formatter(&whole)
            .y_desc("Lesions")
            .draw()?;
        chart
            .configure_secondary_axes()
            .y_label_formatter(&|v| {
                if *v <= 1.0 + 1e-9 {
                    format!("{v:.1}")
                } else {
                    String::new()
                }
            })
            .y_desc("F1")
            .label_style(font(s, 14.0))
            .axis_desc_style(font(s, 15.0))
            .draw()?;
        let step = |value: &dyn Fn(&crate::prob::summary::OperatingPoint) -> f64, after: f64| {
            let mut path = Vec::new();
            let mut prev_t = 0.0;
            for p in &pts {
                let v = value(p);
                path.push((prev_t, v));
                path.push((p.threshold, v));
                prev_t = p.threshold;
            }
            path.push((prev_t, after));
            path.push((1.0, after));
            path
        };
        let sw = s.px(2.0);
        chart
            .draw_series(LineSeries::new(step(&|p| p.tp as f64, 0.0), TP_COLOUR.stroke_width(sw)))?
            .label("TP")
            .legend(line_legend(TP_COLOUR, s));
        chart
            .draw_series(LineSeries::new(step(&|p| p.fp as f64, 0.0), FP_COLOUR.stroke_width(sw)))?
            .label("FP")
            .legend(line_legend(FP_COLOUR, s));
        let f1_path: Vec<(f64, f64)> = step(&|p| if p.f1.is_finite() { p.f1 } else { 0.0 }, 0.0);
        chart
            .draw_secondary_series(LineSeries::new(f1_path, FN_COLOUR.stroke_width(sw)))?
            .label("F1 (right axis)")
            .legend(line_legend(FN_COLOUR, s));
        if let Some(b) = &d.best_f1 {
            chart
                .draw_secondary_series(DashedLineSeries::new(
                    vec![(b.threshold, 0.0), (b.threshold, 1.0)],
                    s.px(5.0),
                    s.px(4.0),
                    BLACK.mix(0.6).stroke_width(s.px(1.0)),
                ))?
                .label(format!("best F1 {:.3} at t = {:.3}", b.f1, b.threshold))
                .legend(line_legend(RGBColor(110, 110, 110), s));
        }
        legend(&mut chart, s, SeriesLabelPosition::UpperMiddle)
    }
}
