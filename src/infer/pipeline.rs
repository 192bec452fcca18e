//! Folder-level inference: group image files into cases (nnU-Net's `_0000`,
//! `_0001` channel suffixes), run the sliding window on each, and write a
//! float32 probability map per case (`<out>/<case>.nii.gz`, the image's
//! geometry and header) plus, optionally, a mask (`<out>/masks/<case>.nii.gz`).
//! Outputs are written atomically; the same inputs give byte-identical files.

use super::exec::{Backend, Session};
use super::window::{WindowConfig, argmax, foreground, sliding_window};
use crate::error::{Error, Result};
use crate::io::{self, Volume};
use crate::label::Device;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One case: its id and one image file per input channel, in channel order.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageCase {
    pub id: String,
    pub channels: Vec<PathBuf>,
}

/// What mask to write next to the probability map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaskMode {
    None,
    /// Foreground probability ≥ T → 1.
    Threshold(f32),
    /// Class index of the largest probability.
    Argmax,
}

#[derive(Debug, Clone)]
pub struct InferConfig {
    pub window: WindowConfig,
    /// Foreground class (None: the single channel, or 1 − background).
    pub class: Option<usize>,
    pub mask: MaskMode,
}

/// Per-case facts for the log and the timings.
#[derive(Debug, Clone)]
pub struct CaseReport {
    pub id: String,
    pub shape: [usize; 3],
    pub windows: usize,
    pub batch: usize,
    pub seconds: f64,
}

/// Split `stem_0000` into (`stem`, 0).
fn channel_suffix(stem: &str) -> Option<(&str, usize)> {
    let (base, digits) = stem.rsplit_once('_')?;
    (digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_digit()) && !base.is_empty())
        .then(|| (base, digits.parse().expect("four digits")))
}

/// Cases of an image folder (or a single file). Files named `<case>_<NNNN>`
/// are channels NNNN of `<case>` and must be numbered 0000, 0001, … without gaps.
pub fn list_images(path: &Path) -> Result<Vec<ImageCase>> {
    let files = crate::dataset::list_cases(path, None)?;
    let mut grouped: BTreeMap<String, BTreeMap<usize, PathBuf>> = BTreeMap::new();
    let mut plain: BTreeMap<String, PathBuf> = BTreeMap::new();
    for (stem, file) in files {
        match channel_suffix(&stem) {
            Some((base, ch)) => {
                grouped.entry(base.to_string()).or_default().insert(ch, file);
            }
            None => {
                plain.insert(stem, file);
            }
        }
    }
    let mut cases = Vec::new();
    for (id, chans) in grouped {
        if plain.contains_key(&id) {
            return Err(Error::input(
                path,
                format!("case {id} has both {id}.nii(.gz) and channel files {id}_NNNN"),
            ));
        }
        if let Some((i, _)) = chans.keys().enumerate().find(|(i, c)| i != *c) {
            return Err(Error::input(
                path,
                format!("case {id}: channel file {id}_{i:04} is missing"),
            ));
        }
        cases.push(ImageCase {
            id,
            channels: chans.into_values().collect(),
        });
    }
    cases.extend(plain.into_iter().map(|(id, f)| ImageCase { id, channels: vec![f] }));
    cases.sort_by(|a, b| a.id.cmp(&b.id));
    if cases.is_empty() {
        return Err(Error::input(path, "no NIfTI images found"));
    }
    Ok(cases)
}

/// Refuses an output folder whose files would replace the images: the images
/// folder itself, or (for a single image file) its folder when the map would
/// take the image's name. Checked before any model is loaded.
pub fn check_destination(images: &Path, cases: &[ImageCase], out: &Path) -> Result<()> {
    let same = |a: &Path, b: &Path| match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if images.is_dir() && same(images, out) {
        return Err(Error::input(
            out,
            "is the images folder: the probability maps would be written among (or over) the images; \
             give --out another folder",
        ));
    }
    for case in cases {
        let outputs = [
            out.join(format!("{}.nii.gz", case.id)),
            out.join("masks").join(format!("{}.nii.gz", case.id)),
        ];
        for (o, c) in outputs.iter().flat_map(|o| case.channels.iter().map(move |c| (o, c))) {
            if same(o, c) {
                return Err(Error::input(
                    c,
                    format!(
                        "would be overwritten by the probability map or mask {}; give --out another folder",
                        o.display()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Resolve `auto|cpu|gpu` to a backend: auto takes a hardware GPU when there is one.
pub fn backend_for(device: Device) -> Result<Backend> {
    Ok(match device {
        Device::Cpu => Backend::Cpu,
        Device::Gpu => {
            crate::gpu::context()?;
            Backend::Gpu
        }
        Device::Auto => match crate::gpu::context() {
            Ok(c) if c.is_hardware() => Backend::Gpu,
            _ => Backend::Cpu,
        },
    })
}

/// Read a case's channels; they must share one voxel grid. A case of one
/// file may hold its channels as the volumes of a 4-D file (the Medical
/// Segmentation Decathlon's multi-modal images).
pub fn read_case(case: &ImageCase) -> Result<Vec<Volume<f32>>> {
    let (vols, paths): (Vec<Volume<f32>>, Vec<PathBuf>) = match case.channels.as_slice() {
        [one] => {
            let vols = io::read_f32_volumes(one)?;
            let paths = vec![one.clone(); vols.len()];
            (vols, paths)
        }
        files => (
            files.iter().map(|p| io::read_f32(p)).collect::<Result<_>>()?,
            files.to_vec(),
        ),
    };
    for (v, p) in vols.iter().zip(&paths).skip(1) {
        if let Some(d) = vols[0].geometry.mismatch(&v.geometry, 1e-4) {
            return Err(Error::Geometry {
                gt: paths[0].clone(),
                pred: p.clone(),
                detail: d,
            });
        }
    }
    for (v, p) in vols.iter().zip(&paths) {
        if v.data.iter().any(|x| !x.is_finite()) {
            return Err(Error::input(p, "the image holds NaN or infinite values"));
        }
    }
    Ok(vols)
}

/// Infer one case and write its outputs into `out`.
pub fn infer_case(session: &Session, case: &ImageCase, out: &Path, cfg: &InferConfig) -> Result<CaseReport> {
    let t = Instant::now();
    let vols = read_case(case)?;
    let shape = vols[0].geometry.shape;
    let channels: Vec<Vec<f32>> = vols.iter().map(|v| v.data.clone()).collect();
    let w = sliding_window(session, &channels, shape, &cfg.window)?;
    let prob = foreground(&w.probs, cfg.class)?;
    // A model that computes NaN (a negative BatchNorm variance, an overflow)
    // would give a NaN map and an empty mask: say so instead of writing them.
    if let Some(i) = w.probs.iter().flatten().position(|p| !p.is_finite()) {
        let [nx, ny, _] = shape;
        let v = i % (nx * ny * shape[2]);
        return Err(Error::input(
            &session.path,
            format!(
                "computed a non-finite probability for case {} (class {}, voxel ({}, {}, {})): check the model's weights",
                case.id,
                i / (nx * ny * shape[2]),
                v % nx,
                (v / nx) % ny,
                v / (nx * ny)
            ),
        ));
    }
    let reference = &vols[0];
    io::write_f32(
        &out.join(format!("{}.nii.gz", case.id)),
        &prob,
        &reference.header,
        &reference.geometry,
    )?;
    let mask: Option<Vec<u32>> = match cfg.mask {
        MaskMode::None => None,
        MaskMode::Threshold(th) => Some(prob.iter().map(|&p| u32::from(p >= th)).collect()),
        MaskMode::Argmax => Some(argmax(&w.probs)),
    };
    if let Some(m) = mask {
        let dir = out.join("masks");
        std::fs::create_dir_all(&dir).map_err(|source| Error::Write {
            path: dir.clone(),
            source,
        })?;
        let max = m.iter().copied().max().unwrap_or(0);
        io::write_labels(
            &dir.join(format!("{}.nii.gz", case.id)),
            &m,
            max,
            &reference.header,
            &reference.geometry,
        )?;
    }
    Ok(CaseReport {
        id: case.id.clone(),
        shape,
        windows: w.windows,
        batch: w.batch,
        seconds: t.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, names: &[&str]) {
        for n in names {
            std::fs::write(dir.join(n), b"").unwrap();
        }
    }

    #[test]
    fn channel_files_group_into_cases() {
        let d = tempfile::tempdir().unwrap();
        touch(d.path(), &["b_0001.nii.gz", "b_0000.nii.gz", "a.nii.gz", "c_0000.nii"]);
        let cases = list_images(d.path()).unwrap();
        let ids: Vec<_> = cases.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        let b = &cases[1].channels;
        assert!(b[0].ends_with("b_0000.nii.gz") && b[1].ends_with("b_0001.nii.gz"));
    }

    #[test]
    fn gaps_and_mixed_names_are_errors() {
        let d = tempfile::tempdir().unwrap();
        touch(d.path(), &["b_0000.nii.gz", "b_0002.nii.gz"]);
        let e = list_images(d.path()).unwrap_err().to_string();
        assert!(e.contains("b_0001 is missing"), "{e}");
        let d = tempfile::tempdir().unwrap();
        touch(d.path(), &["b_0000.nii.gz", "b.nii.gz"]);
        let e = list_images(d.path()).unwrap_err().to_string();
        assert!(e.contains("both"), "{e}");
    }
}
