//! `lesioneval plot results.json [more.json ...] --out figures/`

use anyhow::{Result, bail};
use clap::Args;
use lesioneval::plot::{self, Formats, PlotOptions, SizeBins};
use lesioneval::results::{self, ResultsFile};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct PlotArgs {
    /// results.json files of score or compare (or their --out folders); their models are overlaid.
    #[arg(required = true, value_name = "RESULTS")]
    pub results: Vec<PathBuf>,
    /// Folder for the figures.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// File formats: svg, png or svg,png.
    #[arg(long, default_value = "svg,png", value_name = "LIST")]
    pub format: Formats,
    /// PNG resolution in dots per inch (figures are 6.4 × 4.8 in).
    #[arg(long, default_value_t = 300)]
    pub dpi: u32,
    /// GT lesion volume bins of the size figure: quantile:N or edges in mm³ (e.g. 0,10,100,inf).
    #[arg(long, default_value = "quantile:4", value_name = "BINS")]
    pub size_bins: SizeBins,
}

/// Figure settings of `score/compare --plots` (`--plot-format`: `--format` is the table's there).
#[derive(Args, Debug, Clone)]
pub struct PlotStyle {
    /// File formats: svg, png or svg,png.
    #[arg(long = "plot-format", default_value = "svg,png", value_name = "LIST")]
    pub formats: Formats,
    /// PNG resolution in dots per inch (figures are 6.4 × 4.8 in).
    #[arg(long, default_value_t = 300)]
    pub dpi: u32,
    /// GT lesion volume bins of the size figure: quantile:N or edges in mm³ (e.g. 0,10,100,inf).
    #[arg(long, default_value = "quantile:4", value_name = "BINS")]
    pub size_bins: SizeBins,
}

impl PlotStyle {
    pub fn options(&self) -> PlotOptions {
        PlotOptions {
            formats: self.formats.clone(),
            dpi: self.dpi,
            size_bins: self.size_bins.clone(),
        }
    }
}

/// Draws the figures and says where they went.
pub fn draw(files: &[ResultsFile], out: &std::path::Path, style: &PlotStyle) -> Result<()> {
    let written = lesioneval::io::all_or_nothing(|| plot::plot_all(files, out, &style.options()))?;
    eprintln!("wrote {} figure file(s) to {}", written.len(), out.display());
    Ok(())
}

pub fn run(a: PlotArgs) -> Result<()> {
    let mut files = Vec::with_capacity(a.results.len());
    for p in &a.results {
        let json = if p.is_dir() { p.join("results.json") } else { p.clone() };
        let file = results::read(&json)?;
        if let Some(s) = file.shard {
            bail!(
                "{} is shard {s} of a sharded run: merge the shards first (lesioneval merge)",
                json.display()
            );
        }
        files.push(file);
    }
    let style = PlotStyle {
        formats: a.format,
        dpi: a.dpi,
        size_bins: a.size_bins,
    };
    draw(&files, &a.out, &style)
}
