//! `lesioneval label MASK --out LABELS [--stats CSV]`

use anyhow::{Result, bail};
use clap::Args;
use lesioneval::eval::MinSize;
use lesioneval::label::{self, Connectivity};
use lesioneval::{io, report};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct LabelArgs {
    /// Binary mask (.nii or .nii.gz); every non-zero voxel is foreground.
    pub mask: PathBuf,
    /// Write the label volume here (.nii.gz compresses); labels 1..N by first voxel in storage order.
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// Write per-lesion statistics (voxels, mm³, centroid, bounding box) as CSV.
    #[arg(long, value_name = "CSV")]
    pub stats: Option<PathBuf>,
    /// Voxel connectivity: 6, 18 or 26.
    #[arg(long, default_value = "26")]
    pub connectivity: Connectivity,
    /// Remove lesions smaller than N voxels or Xmm3.
    #[arg(long, default_value = "0", value_name = "SIZE")]
    pub min_size: MinSize,
    /// Print stage times on stderr: `timing read=…ms label=…ms stats=…ms write=…ms`.
    #[arg(long)]
    pub timings: bool,
    /// Label this many times and report the median label time (for benchmarks).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub repeat: usize,
}

pub fn run(a: LabelArgs) -> Result<()> {
    if a.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    let t0 = Instant::now();
    let vol = io::read_mask(&a.mask)?;
    let read_ms = ms(t0);

    let mut times = Vec::with_capacity(a.repeat);
    let mut comps = None;
    for _ in 0..a.repeat {
        let t = Instant::now();
        let c = label::label(&vol.data, vol.geometry.shape, a.connectivity);
        times.push(ms(t));
        comps = Some(c);
    }
    times.sort_by(f64::total_cmp);
    let label_ms = times[times.len() / 2];
    let Some(mut comps) = comps else {
        bail!("nothing labelled")
    };

    let t = Instant::now();
    comps.remove_smaller_than(a.min_size.min_voxels(vol.geometry.voxel_volume()));
    let stats_csv = a
        .stats
        .as_ref()
        .map(|_| report::lesion_stats_csv(&comps.lesions, &vol.geometry));
    let stats_ms = ms(t);

    let t = Instant::now();
    if let Some(out) = &a.out {
        io::write_labels(out, &comps.labels, comps.count(), &vol.header, &vol.geometry)?;
    }
    if let (Some(path), Some(csv)) = (&a.stats, &stats_csv) {
        report::write_text(path, csv)?;
    }
    let write_ms = ms(t);

    println!(
        "{}: {} lesions ({}-connectivity), {} foreground voxels",
        a.mask.display(),
        comps.count(),
        a.connectivity,
        comps.foreground()
    );
    if a.timings {
        eprintln!("timing read={read_ms:.3}ms label={label_ms:.3}ms stats={stats_ms:.3}ms write={write_ms:.3}ms");
    }
    Ok(())
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}
