//! `lesioneval infer --model M --images DIR --out DIR` and the model flags `run` shares.

use super::common::progress;
use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use lesioneval::infer::pipeline::{self, CaseReport, ImageCase, InferConfig, MaskMode};
use lesioneval::infer::window::{Activation, Blend, BlendOn, Layout, Normalize, WindowConfig};
use lesioneval::infer::{Backend, Session};
use lesioneval::label::Device;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum BlendArg {
    Gaussian,
    Constant,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum BlendOnArg {
    Logits,
    Probs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ActivationArg {
    Auto,
    None,
    Sigmoid,
    Softmax,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LayoutArg {
    Auto,
    Ncdhw,
    Ndhwc,
}

/// Model and sliding-window flags shared by `infer` and `run`.
#[derive(Args, Debug)]
pub struct ModelArgs {
    /// ONNX model (a 3-D segmentation network; weights inside the file).
    #[arg(long, value_name = "ONNX")]
    pub model: PathBuf,
    /// Image file or folder; nnU-Net style `<case>_0000.nii.gz`, `<case>_0001…` are the channels of one case.
    #[arg(long, value_name = "PATH")]
    pub images: PathBuf,
    /// Patch (window) size I,J,K or one size for all axes (default: the model's fixed input size).
    #[arg(long, value_name = "I,J,K", value_parser = parse_patch)]
    pub patch: Option<[usize; 3]>,
    /// Fraction of a patch that neighbouring windows share (MONAI: starts every int(patch·(1−overlap)) voxels).
    #[arg(long, default_value_t = 0.5, value_name = "F")]
    pub overlap: f64,
    /// Window weights: gaussian (σ = patch/8, MONAI) or constant (plain mean).
    #[arg(long, value_enum, default_value = "gaussian")]
    pub blend: BlendArg,
    /// Blend the raw outputs and then apply the activation (logits, MONAI's order) or blend probabilities.
    #[arg(long, value_enum, default_value = "logits")]
    pub blend_on: BlendOnArg,
    /// nnU-Net's window placement (step (1 − overlap)·patch, nnU-Net's tile_step_size, starts spread evenly)
    /// instead of MONAI's.
    #[arg(long)]
    pub nnunet_steps: bool,
    /// Output activation: auto = none if the model ends in Sigmoid/Softmax, else sigmoid for 1 channel, softmax for more.
    #[arg(long, value_enum, default_value = "auto")]
    pub activation: ActivationArg,
    /// Foreground class K (default: 1 − background for ≥ 2 classes; the single channel otherwise).
    #[arg(long, value_name = "K")]
    pub class: Option<usize>,
    /// Intensity normalisation per channel: zscore (over the whole image), none, or fixed:MEAN,STD.
    #[arg(long, default_value = "zscore", value_name = "MODE", value_parser = parse_normalize)]
    pub normalize: Normalize,
    /// Channel position in the model's tensors: auto (NDHWC when the declared input's last axis is the channel
    /// count, e.g. Keras via tf2onnx), ncdhw, ndhwc.
    #[arg(long, value_enum, default_value = "auto")]
    pub layout: LayoutArg,
}

fn parse_patch(s: &str) -> std::result::Result<[usize; 3], String> {
    let v: Vec<usize> = s
        .split(',')
        .map(|x| {
            x.trim()
                .parse::<usize>()
                .map_err(|_| format!("--patch: {x:?} is not a whole number"))
        })
        .collect::<std::result::Result<_, _>>()?;
    match v.as_slice() {
        [a] if *a > 0 => Ok([*a; 3]),
        [a, b, c] if *a > 0 && *b > 0 && *c > 0 => Ok([*a, *b, *c]),
        _ => Err("--patch takes one or three positive sizes (96 or 96,96,64)".into()),
    }
}

fn parse_normalize(s: &str) -> std::result::Result<Normalize, String> {
    match s {
        "zscore" => Ok(Normalize::ZScore),
        "none" => Ok(Normalize::None),
        _ => {
            let bad = || format!("--normalize must be zscore, none or fixed:MEAN,STD, not {s:?}");
            let rest = s.strip_prefix("fixed:").ok_or_else(bad)?;
            let (m, sd) = rest.split_once(',').ok_or_else(bad)?;
            let mean: f64 = m.trim().parse().map_err(|_| bad())?;
            let std: f64 = sd.trim().parse().map_err(|_| bad())?;
            if !(std > 0.0 && std.is_finite() && mean.is_finite()) {
                return Err(format!("--normalize fixed: STD must be positive, got {std}"));
            }
            Ok(Normalize::Fixed { mean, std })
        }
    }
}

impl ModelArgs {
    pub fn window(&self) -> Result<WindowConfig> {
        if !(0.0..1.0).contains(&self.overlap) {
            bail!("--overlap must be in [0, 1), not {}", self.overlap);
        }
        Ok(WindowConfig {
            patch: self.patch,
            overlap: self.overlap,
            nnunet_steps: self.nnunet_steps,
            blend: match self.blend {
                BlendArg::Gaussian => Blend::Gaussian,
                BlendArg::Constant => Blend::Constant,
            },
            blend_on: match self.blend_on {
                BlendOnArg::Logits => BlendOn::Logits,
                BlendOnArg::Probs => BlendOn::Probs,
            },
            activation: match self.activation {
                ActivationArg::Auto => Activation::Auto,
                ActivationArg::None => Activation::None,
                ActivationArg::Sigmoid => Activation::Sigmoid,
                ActivationArg::Softmax => Activation::Softmax,
            },
            normalize: self.normalize,
            layout: match self.layout {
                LayoutArg::Auto => Layout::Auto,
                LayoutArg::Ncdhw => Layout::Ncdhw,
                LayoutArg::Ndhwc => Layout::Ndhwc,
            },
        })
    }

    /// Load the model and run every case into `out`; returns the per-case reports.
    pub fn infer_all(&self, device: Device, out: &Path, mask: MaskMode, timings: bool) -> Result<Vec<CaseReport>> {
        let cfg = InferConfig {
            window: self.window()?,
            class: self.class,
            mask,
        };
        let cases: Vec<ImageCase> = pipeline::list_images(&self.images)?;
        pipeline::check_destination(&self.images, &cases, out)?;
        let backend = pipeline::backend_for(device)?;
        let session = Session::load(&self.model, backend)?;
        if timings {
            let where_ = match backend {
                Backend::Cpu => format!("cpu ({} threads)", rayon::current_num_threads()),
                Backend::Gpu => lesioneval::gpu::context()?.describe(),
            };
            eprintln!("infer: {} on {where_}", self.model.display());
        }
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        let pb = progress(cases.len());
        let mut reports = Vec::new();
        for c in &cases {
            let r = pipeline::infer_case(&session, c, out, &cfg)?;
            if timings {
                pb.suspend(|| {
                    eprintln!(
                        "timing case={} shape={}x{}x{} windows={} batch={} infer={:.1}ms",
                        r.id,
                        r.shape[0],
                        r.shape[1],
                        r.shape[2],
                        r.windows,
                        r.batch,
                        r.seconds * 1e3
                    )
                });
            }
            reports.push(r);
            pb.inc(1);
        }
        pb.finish_and_clear();
        Ok(reports)
    }
}

#[derive(Args, Debug)]
pub struct InferArgs {
    #[command(flatten)]
    pub net: ModelArgs,
    /// Output folder: one float32 probability map <case>.nii.gz per case (the image's geometry).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Also write masks/<case>.nii.gz: foreground probability ≥ --threshold (or --argmax).
    #[arg(long)]
    pub save_mask: bool,
    /// Mask threshold on the foreground probability.
    #[arg(long, default_value_t = 0.5, value_name = "T")]
    pub threshold: f32,
    /// Masks hold the argmax class of each voxel instead of a thresholded foreground.
    #[arg(long, requires = "save_mask")]
    pub argmax: bool,
    /// Where to run the model: auto (a hardware GPU if present, else CPU), cpu, or gpu (any adapter).
    #[arg(long, default_value = "auto")]
    pub device: Device,
    /// Print per-case times on stderr.
    #[arg(long)]
    pub timings: bool,
    /// Worker threads of the CPU backend (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

pub fn run(a: InferArgs) -> Result<()> {
    if !(a.threshold > 0.0 && a.threshold <= 1.0) {
        bail!("--threshold must be in (0, 1], not {}", a.threshold);
    }
    if let Some(n) = a.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("cannot set --threads")?;
    }
    let mask = match (a.save_mask, a.argmax) {
        (false, _) => MaskMode::None,
        (true, false) => MaskMode::Threshold(a.threshold),
        (true, true) => MaskMode::Argmax,
    };
    let reports = a.net.infer_all(a.device, &a.out, mask, a.timings)?;
    let windows: usize = reports.iter().map(|r| r.windows).sum();
    super::common::say(&format!(
        "wrote {} probability maps ({windows} windows) to {}\n",
        reports.len(),
        a.out.display()
    ))
}
