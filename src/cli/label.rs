//! `lesioneval label MASK --out LABELS [--stats CSV]`

use anyhow::{Result, bail};
use clap::Args;
use lesioneval::eval::MinSize;
use lesioneval::label::{self, Connectivity, Device, GpuTimings};
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
    /// Print stage times on stderr: `timing read=…ms label=…ms stats=…ms write=…ms` (with --repeat,
    /// `label` is the median and a second line `timing label_each_ms=…` lists every repetition).
    #[arg(long)]
    pub timings: bool,
    /// Where to label: auto (a hardware GPU if present, else CPU), cpu, or gpu.
    #[arg(long, default_value = "auto")]
    pub device: Device,
    /// Label this many times and report the median label time (for benchmarks).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub repeat: usize,
    /// With --repeat: each repetition writes into the previous one's label volume, as `score` and
    /// `compare` do from one case of a folder to the next (CPU labelling only; labels are the same).
    #[arg(long, requires = "repeat")]
    pub recycle: bool,
    /// With --repeat: label this many times first, untimed, so that the timed repetitions see the
    /// process in its steady state, as a benchmark's warm-up: a fresh process's first few label
    /// volumes are new memory from the kernel, later ones memory the allocator got back.
    #[arg(long, default_value_t = 0, value_name = "N", requires = "repeat")]
    pub warmup: usize,
}

pub fn run(a: LabelArgs) -> Result<()> {
    if a.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    let t0 = Instant::now();
    let vol = io::read_mask(&a.mask)?;
    let read_ms = ms(t0);

    let device = a.device.resolve()?;
    let mut times = Vec::with_capacity(a.repeat);
    let mut gpu_times: Vec<GpuTimings> = Vec::new();
    let mut comps = None;
    for rep in 0..a.warmup + a.repeat {
        // Only the CPU labeller writes into a handed-back volume; on the GPU it would just be kept.
        if a.recycle
            && device == Device::Cpu
            && let Some(previous) = comps.take()
        {
            label::recycle(previous);
        }
        let t = Instant::now();
        let (c, g) = label::label_timed(&vol.data, vol.geometry.shape, a.connectivity, device)?;
        if rep >= a.warmup {
            times.push(ms(t));
            gpu_times.extend(g);
        }
        comps = Some(c);
    }
    // Every repetition in run order, kept before `median` sorts them (printed with --timings).
    let each_ms =
        (a.timings && times.len() > 1).then(|| times.iter().map(|t| format!("{t:.3}")).collect::<Vec<_>>().join(","));
    let label_ms = median(&mut times);
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
    // Both outputs or neither.
    io::all_or_nothing(|| {
        if let Some(out) = &a.out {
            io::write_labels(out, &comps.labels, comps.count(), &vol.header, &vol.geometry)?;
        }
        if let (Some(path), Some(csv)) = (&a.stats, &stats_csv) {
            report::write_text(path, csv)?;
        }
        Ok::<(), lesioneval::Error>(())
    })?;
    let write_ms = ms(t);

    super::common::say(&format!(
        "{}: {} lesions ({}-connectivity), {} foreground voxels\n",
        a.mask.display(),
        comps.count(),
        a.connectivity,
        comps.foreground()
    ))?;
    if a.timings {
        let mut line =
            format!("timing read={read_ms:.3}ms label={label_ms:.3}ms stats={stats_ms:.3}ms write={write_ms:.3}ms");
        if !gpu_times.is_empty() {
            let med = |f: fn(&GpuTimings) -> f64| median(&mut gpu_times.iter().map(f).collect::<Vec<_>>());
            let (k, up, rb, cpu) = (
                med(|t| t.kernel_ms),
                med(|t| t.upload_ms),
                med(|t| t.readback_ms),
                med(|t| t.cpu_ms),
            );
            let g = &gpu_times[0];
            let clock = if g.kernel_from_timestamps { "timestamps" } else { "wall" };
            line += &format!(
                " device=gpu kernel={k:.3}ms upload={up:.3}ms readback={rb:.3}ms gpu_cpu_side={cpu:.3}ms slabs={} kernel_clock={clock}",
                g.slabs
            );
        } else {
            line += " device=cpu";
        }
        eprintln!("{line}");
        if let Some(each_ms) = each_ms {
            // A fresh process's first labellings are slower (memory from the kernel).
            eprintln!("timing label_each_ms={each_ms}");
        }
    }
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}
