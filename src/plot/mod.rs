//! Publication figures from results.json files (`lesioneval plot`, and
//! `score/compare --plots`, which go through the same files).
//!
//! Figures (file stems are fixed, so scripts can rely on them):
//! - `counts` — grouped TP/FP/FN bars, one group per model;
//! - `lesion_counts` — GT vs predicted lesion count per case, identity line;
//! - `sensitivity_by_size` — share of GT lesions detected per volume bin (mm³);
//! - `froc` — sensitivity vs false positives per case (log₂ axis), bootstrap
//!   band when the run has one (probability-map runs only);
//! - `pr` — precision vs recall, AP in the legend (probability-map runs only);
//! - `thresholds_<model>` — TP and FP (left axis) and F1 (right axis) vs the
//!   candidate threshold, best-F1 threshold marked (probability-map runs only).
//!
//! Every figure is drawn once per format by the same code: SVG at 100 px per
//! inch, PNG at `--dpi` (sizes, fonts and lines scale with it, and the PNG
//! records the resolution in its pHYs chunk). Text is rendered with the
//! embedded DejaVu Sans (assets/fonts, free licence) through plotters'
//! `ab_glyph` backend, so no system font or fontconfig is needed. Colours are
//! the Okabe–Ito palette (distinguishable with colour-vision deficiencies),
//! and markers differ per model as well.

mod figures;

use crate::error::{Error, Result};
use crate::results::{ModelRecord, ResultsFile};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Once;

/// Output file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Svg,
    Png,
}

impl ImageFormat {
    fn ext(self) -> &'static str {
        match self {
            ImageFormat::Svg => "svg",
            ImageFormat::Png => "png",
        }
    }
}

/// `svg`, `png` or both, comma-separated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formats(pub Vec<ImageFormat>);

impl FromStr for Formats {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let f = match part.to_ascii_lowercase().as_str() {
                "svg" => ImageFormat::Svg,
                "png" => ImageFormat::Png,
                _ => return Err(format!("plot format must be svg or png, not {part:?}")),
            };
            if !out.contains(&f) {
                out.push(f);
            }
        }
        if out.is_empty() {
            return Err("give at least one plot format (svg, png)".into());
        }
        Ok(Formats(out))
    }
}

/// How GT lesions are binned by volume.
#[derive(Debug, Clone, PartialEq)]
pub enum SizeBins {
    /// This many bins holding about equal numbers of lesions.
    Quantile(usize),
    /// Bin edges in mm³, increasing; lesions outside them are not shown.
    Edges(Vec<f64>),
}

impl FromStr for SizeBins {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if let Some(n) = s.strip_prefix("quantile:") {
            let n: usize = n.parse().map_err(|_| format!("quantile:{n}: not a whole number"))?;
            if !(1..=20).contains(&n) {
                return Err("quantile:N needs 1 ≤ N ≤ 20".into());
            }
            return Ok(SizeBins::Quantile(n));
        }
        let edges: Vec<f64> = s
            .split(',')
            .map(|e| match e.trim() {
                "inf" => Ok(f64::INFINITY),
                t => t
                    .parse::<f64>()
                    .map_err(|_| format!("size bin edge {t:?} is not a number")),
            })
            .collect::<std::result::Result<_, _>>()?;
        if edges.len() < 2
            || edges
                .windows(2)
                .any(|w| w[0].partial_cmp(&w[1]) != Some(std::cmp::Ordering::Less))
            || edges[0] < 0.0
        {
            return Err(
                "size bins must be quantile:N or at least two increasing edges ≥ 0 in mm³, e.g. 0,10,100,inf".into(),
            );
        }
        Ok(SizeBins::Edges(edges))
    }
}

/// Plot settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotOptions {
    pub formats: Formats,
    /// PNG resolution (the figures are 6.4 × 4.8 in).
    pub dpi: u32,
    pub size_bins: SizeBins,
}

impl Default for PlotOptions {
    fn default() -> Self {
        PlotOptions {
            formats: Formats(vec![ImageFormat::Svg, ImageFormat::Png]),
            dpi: 300,
            size_bins: SizeBins::Quantile(4),
        }
    }
}

/// One model to draw, with the name shown in legends.
pub struct Series<'a> {
    pub name: String,
    pub model: &'a ModelRecord,
    /// Position among all models drawn: picks the colour, so a model keeps
    /// its colour in figures that show only some of the models (FROC, PR).
    pub index: usize,
}

/// The models of all files, named by their `compare` name or their
/// prediction folder; repeated names get " (2)", " (3)", ….
pub fn series(files: &[ResultsFile]) -> Vec<Series<'_>> {
    let mut out: Vec<Series> = Vec::new();
    for f in files {
        for m in &f.models {
            let mut base = m.name.clone().unwrap_or_else(|| {
                let p = Path::new(&m.pred);
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| m.pred.clone())
            });
            if let Some(r) = &m.region {
                base = format!("{base} [{r}]");
            }
            let mut name = base.clone();
            let mut k = 2;
            while out.iter().any(|s| s.name == name) {
                name = format!("{base} ({k})");
                k += 1;
            }
            out.push(Series {
                name,
                model: m,
                index: out.len(),
            });
        }
    }
    out
}

/// Draws every figure the files support into `out`; returns the files written, in order.
pub fn plot_all(files: &[ResultsFile], out: &Path, opts: &PlotOptions) -> Result<Vec<PathBuf>> {
    if opts.dpi == 0 || opts.dpi > 1200 {
        return Err(Error::Config(format!(
            "--dpi must be between 1 and 1200, not {}",
            opts.dpi
        )));
    }
    std::fs::create_dir_all(out).map_err(|source| Error::Write {
        path: out.to_path_buf(),
        source,
    })?;
    // A figure folder reused by another run (probability maps, then masks
    // only; svg+png, then svg) must not keep the earlier run's figures beside
    // this one's. `counts` is drawn by every run, so only a folder that
    // already holds it is tidied: files of other names are the user's.
    let was_figures = ["counts.svg", "counts.png"].iter().any(|n| out.join(n).is_file());
    let all = series(files);
    let mut written = Vec::new();
    written.extend(render(out, "counts", opts, &figures::Counts { series: &all })?);
    written.extend(render(
        out,
        "lesion_counts",
        opts,
        &figures::LesionCounts { series: &all },
    )?);
    if let Some(fig) = figures::SizeSensitivity::new(&all, &opts.size_bins) {
        written.extend(render(out, "sensitivity_by_size", opts, &fig)?);
    }
    let detected: Vec<&Series> = all.iter().filter(|s| s.model.detection.is_some()).collect();
    if !detected.is_empty() {
        written.extend(render(out, "froc", opts, &figures::Froc { series: &detected })?);
        written.extend(render(out, "pr", opts, &figures::PrCurve { series: &detected })?);
        let mut stems: Vec<String> = Vec::new();
        for s in &detected {
            // Distinct names can share a slug ("a b", "a_b"): number the repeats.
            let base = format!("thresholds_{}", slug(&s.name));
            let mut stem = base.clone();
            let mut k = 2;
            while stems.contains(&stem) {
                stem = format!("{base}_{k}");
                k += 1;
            }
            written.extend(render(out, &stem, opts, &figures::Thresholds { series: s })?);
            stems.push(stem);
        }
    }
    if was_figures {
        for stale in stale_figures(out, &written)? {
            crate::io::remove_stale(&stale)?;
        }
    }
    Ok(written)
}

/// Stems of the figures [`plot_all`] draws (`thresholds_<model>` by prefix).
const FIGURE_STEMS: [&str; 5] = ["counts", "lesion_counts", "sensitivity_by_size", "froc", "pr"];

/// The figure files in `dir` (by [`FIGURE_STEMS`], `thresholds_*`, and an
/// extension this tool writes) that are not in `written`, sorted.
fn stale_figures(dir: &Path, written: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::input(dir, format!("cannot list: {e}")))?;
    let mut stale = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::input(dir, format!("cannot list: {e}")))?;
        let path = entry.path();
        let name = entry.file_name();
        let Some((stem, ext)) = name.to_str().and_then(|n| n.rsplit_once('.')) else {
            continue;
        };
        let ours = [ImageFormat::Svg, ImageFormat::Png].iter().any(|f| f.ext() == ext)
            && (FIGURE_STEMS.contains(&stem) || stem.starts_with("thresholds_"));
        if ours && path.is_file() && !written.contains(&path) {
            stale.push(path);
        }
    }
    stale.sort();
    Ok(stale)
}

/// A file-name-safe form of a model name.
fn slug(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "model".into() } else { s }
}

/// Lengths in SVG pixels (100 per inch), scaled for the output resolution.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scale(f64);

impl Scale {
    pub(crate) fn px(self, v: f64) -> u32 {
        (v * self.0).round().max(1.0) as u32
    }
    pub(crate) fn f(self, v: f64) -> f64 {
        v * self.0
    }
    pub(crate) fn i(self, v: f64) -> i32 {
        (v * self.0).round() as i32
    }
}

/// A figure that can draw itself on any plotters backend.
pub(crate) trait Figure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, s: Scale) -> DrawResult<DB>;
}

pub(crate) type DrawResult<DB> = std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

const WIDTH_IN: f64 = 6.4;
const HEIGHT_IN: f64 = 4.8;
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

fn register_font() -> Result<()> {
    static ONCE: Once = Once::new();
    let mut ok = true;
    ONCE.call_once(|| {
        ok = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok();
    });
    if ok {
        Ok(())
    } else {
        Err(Error::Config("the embedded plot font could not be loaded".into()))
    }
}

fn render<F: Figure>(dir: &Path, stem: &str, opts: &PlotOptions, fig: &F) -> Result<Vec<PathBuf>> {
    register_font()?;
    let mut written = Vec::new();
    for &format in &opts.formats.0 {
        let path = dir.join(format!("{stem}.{}", format.ext()));
        let fail = |msg: String| Error::Write {
            path: path.clone(),
            source: std::io::Error::other(msg),
        };
        match format {
            ImageFormat::Svg => {
                let (w, h) = ((WIDTH_IN * 100.0) as u32, (HEIGHT_IN * 100.0) as u32);
                let mut svg = String::new();
                {
                    let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
                    fig.draw(&root, Scale(1.0)).map_err(|e| fail(e.to_string()))?;
                    root.present().map_err(|e| fail(e.to_string()))?;
                }
                crate::report::write_text(&path, &svg)?;
            }
            ImageFormat::Png => {
                let dpi = opts.dpi as f64;
                let (w, h) = ((WIDTH_IN * dpi).round() as u32, (HEIGHT_IN * dpi).round() as u32);
                let mut rgb = vec![255u8; w as usize * h as usize * 3];
                {
                    let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
                    fig.draw(&root, Scale(dpi / 100.0)).map_err(|e| fail(e.to_string()))?;
                    root.present().map_err(|e| fail(e.to_string()))?;
                }
                write_png(&path, w, h, opts.dpi, &rgb)?;
            }
        }
        written.push(path);
    }
    Ok(written)
}

fn write_png(path: &Path, w: u32, h: u32, dpi: u32, rgb: &[u8]) -> Result<()> {
    crate::io::write_atomically(path, |tmp| {
        let err = |msg: String| Error::Write {
            path: path.to_path_buf(),
            source: std::io::Error::other(msg),
        };
        let file = std::fs::File::create(tmp).map_err(|source| Error::Write {
            path: path.to_path_buf(),
            source,
        })?;
        let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let ppm = (dpi as f64 / 0.0254).round() as u32;
        enc.set_pixel_dims(Some(png::PixelDimensions {
            xppu: ppm,
            yppu: ppm,
            unit: png::Unit::Meter,
        }));
        let mut writer = enc.write_header().map_err(|e| err(e.to_string()))?;
        writer.write_image_data(rgb).map_err(|e| err(e.to_string()))?;
        writer.finish().map_err(|e| err(e.to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse() {
        assert_eq!(
            "svg, png,svg".parse::<Formats>().unwrap(),
            Formats(vec![ImageFormat::Svg, ImageFormat::Png])
        );
        assert!("jpg".parse::<Formats>().is_err());
        assert_eq!("quantile:3".parse::<SizeBins>().unwrap(), SizeBins::Quantile(3));
        assert_eq!(
            "0,10,inf".parse::<SizeBins>().unwrap(),
            SizeBins::Edges(vec![0.0, 10.0, f64::INFINITY])
        );
        assert!("10,5".parse::<SizeBins>().is_err());
        assert!("quantile:0".parse::<SizeBins>().is_err());
        assert_eq!(slug("dice loss/v2"), "dice_loss_v2");
    }
}
