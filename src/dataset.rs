//! Pairing ground-truth and prediction files into cases.
//!
//! A case id is the file name minus `.nii.gz`/`.nii` and minus an optional
//! suffix (`--gt-suffix _seg`), so nnU-Net style names (`case_001.nii.gz` on
//! both sides) pair as they are. Folders are read non-recursively; hidden files
//! are ignored. Ids are sorted, so case order never depends on the file system.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What to do with a GT case that has no prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Missing {
    /// Refuse to score, listing every missing id.
    #[default]
    Error,
    /// Score it as an empty prediction (all GT lesions are FN).
    Empty,
}

impl std::str::FromStr for Missing {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "error" => Ok(Missing::Error),
            "empty" => Ok(Missing::Empty),
            _ => Err(format!("--missing must be error or empty, not {s:?}")),
        }
    }
}

/// One case: the GT file and, per model, its prediction (None = scored empty).
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub id: String,
    pub gt: PathBuf,
    pub preds: Vec<Option<PathBuf>>,
}

/// Cases plus what did not pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Pairing {
    pub cases: Vec<Case>,
    /// Per model: GT ids without a prediction (only with `Missing::Empty`).
    pub missing: Vec<Vec<String>>,
    /// Per model: prediction ids without a GT case (ignored, worth a warning).
    pub extra: Vec<Vec<String>>,
}

/// `name` without its `.nii.gz` or `.nii` extension, in any letter case
/// (`CASE.NII.GZ` from Windows tools), or None for other names.
fn nifti_stem(name: &str) -> Option<&str> {
    [".nii.gz", ".nii"].iter().find_map(|ext| {
        let cut = name.len().checked_sub(ext.len())?;
        let tail = name.get(cut..)?;
        tail.eq_ignore_ascii_case(ext).then(|| &name[..cut])
    })
}

/// The case id of a NIfTI path, or None if it is not a `.nii`/`.nii.gz` file.
pub fn case_id(path: &Path, suffix: Option<&str>) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let stem = nifti_stem(name)?;
    let stem = match suffix {
        Some(s) if !s.is_empty() && stem.len() > s.len() => stem.strip_suffix(s).unwrap_or(stem),
        _ => stem,
    };
    Some(stem.to_string())
}

/// Lists the NIfTI files of a folder (or the single file given) by case id.
pub fn list_cases(path: &Path, suffix: Option<&str>) -> Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    let meta = std::fs::metadata(path).map_err(|e| Error::input(path, format!("cannot open: {e}")))?;
    if meta.is_file() {
        let id =
            case_id(path, suffix).ok_or_else(|| Error::input(path, "not a NIfTI file (expected .nii or .nii.gz)"))?;
        out.insert(id, path.to_path_buf());
        return Ok(out);
    }
    let entries = std::fs::read_dir(path).map_err(|e| Error::input(path, format!("cannot list folder: {e}")))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::input(path, format!("cannot list folder: {e}")))?;
        let p = entry.path();
        let name = entry.file_name();
        let lossy = name.to_string_lossy();
        if lossy.starts_with('.') || nifti_stem(&lossy).is_none() {
            continue;
        }
        // A NIfTI name that cannot be a case id, or a link to nothing, would
        // otherwise be passed over in silence and show up as a missing case.
        if name.to_str().is_none() {
            return Err(Error::input(&p, "the file name is not valid UTF-8: rename the file"));
        }
        if !p.is_file() {
            if p.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) && !p.exists() {
                return Err(Error::input(&p, "is a link to a file that does not exist"));
            }
            continue;
        }
        if let Some(id) = case_id(&p, suffix)
            && let Some(prev) = out.insert(id.clone(), p.clone())
        {
            return Err(Error::Dataset(format!(
                "{}: case id {id:?} is given twice ({} and {})",
                path.display(),
                prev.display(),
                p.display()
            )));
        }
    }
    if out.is_empty() {
        return Err(Error::input(path, "no .nii or .nii.gz files in this folder"));
    }
    Ok(out)
}

/// Pairs a GT file/folder with one or more prediction files/folders.
pub fn pair(
    gt: &Path,
    preds: &[PathBuf],
    gt_suffix: Option<&str>,
    pred_suffix: Option<&str>,
    missing: Missing,
) -> Result<Pairing> {
    let gt_cases = list_cases(gt, gt_suffix)?;
    let single_gt_file = gt.is_file();
    let mut per_model = Vec::new();
    let mut missing_ids = Vec::new();
    let mut extra_ids = Vec::new();
    let mut errors = Vec::new();
    for pred in preds {
        let mut cases = list_cases(pred, pred_suffix)?;
        // A single GT file scored against a single prediction file pairs by position.
        if single_gt_file && pred.is_file() {
            let (gid, _) = gt_cases.iter().next().expect("one GT case");
            let p = cases.pop_first().map(|(_, p)| p).expect("one prediction");
            cases.insert(gid.clone(), p);
        }
        let miss: Vec<String> = gt_cases.keys().filter(|id| !cases.contains_key(*id)).cloned().collect();
        let extra: Vec<String> = cases.keys().filter(|id| !gt_cases.contains_key(*id)).cloned().collect();
        if !miss.is_empty() && missing == Missing::Error {
            errors.push(format!(
                "{}: {} of {} ground-truth cases have no prediction: {} (use --missing empty to score them as empty predictions)",
                pred.display(),
                miss.len(),
                gt_cases.len(),
                miss.join(", ")
            ));
        }
        missing_ids.push(miss);
        extra_ids.push(extra);
        per_model.push(cases);
    }
    if !errors.is_empty() {
        return Err(Error::Dataset(errors.join("\n")));
    }
    let cases = gt_cases
        .into_iter()
        .map(|(id, gt_path)| {
            let preds = per_model.iter().map(|m| m.get(&id).cloned()).collect();
            Case { id, gt: gt_path, preds }
        })
        .collect();
    Ok(Pairing {
        cases,
        missing: missing_ids,
        extra: extra_ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_strip_extension_and_suffix() {
        assert_eq!(case_id(Path::new("a/case_001.nii.gz"), None).unwrap(), "case_001");
        assert_eq!(
            case_id(Path::new("case_001_seg.nii"), Some("_seg")).unwrap(),
            "case_001"
        );
        assert_eq!(case_id(Path::new("_seg.nii"), Some("_seg")).unwrap(), "_seg");
        assert!(case_id(Path::new("notes.txt"), None).is_none());
        // Extensions in any letter case; the id keeps its own.
        assert_eq!(case_id(Path::new("Case_7.NII.GZ"), None).unwrap(), "Case_7");
        assert_eq!(case_id(Path::new("b.Nii"), None).unwrap(), "b");
        assert!(case_id(Path::new("x.gz"), None).is_none());
    }

    #[test]
    fn missing_predictions_are_listed() {
        let d = tempfile::tempdir().unwrap();
        let (g, p) = (d.path().join("gt"), d.path().join("pred"));
        std::fs::create_dir_all(&g).unwrap();
        std::fs::create_dir_all(&p).unwrap();
        for id in ["a", "b", "c"] {
            std::fs::write(g.join(format!("{id}.nii.gz")), b"").unwrap();
        }
        std::fs::write(p.join("b.nii.gz"), b"").unwrap();
        std::fs::write(p.join("z.nii.gz"), b"").unwrap();
        let err = pair(&g, std::slice::from_ref(&p), None, None, Missing::Error)
            .unwrap_err()
            .to_string();
        assert!(err.contains("2 of 3") && err.contains("a, c"), "{err}");
        let ok = pair(&g, &[p], None, None, Missing::Empty).unwrap();
        assert_eq!(ok.missing, vec![vec!["a".to_string(), "c".to_string()]]);
        assert_eq!(ok.extra, vec![vec!["z".to_string()]]);
        assert_eq!(ok.cases.len(), 3);
        assert!(ok.cases[0].preds[0].is_none());
    }

    #[test]
    fn unreadable_names_and_broken_links_are_named() {
        use std::os::unix::ffi::OsStrExt;
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.nii.gz"), b"").unwrap();
        std::fs::write(d.path().join("notes.txt"), b"").unwrap();
        assert_eq!(list_cases(d.path(), None).unwrap().len(), 1);
        let bad = d.path().join(std::ffi::OsStr::from_bytes(b"b\xff.nii.gz"));
        std::fs::write(&bad, b"").unwrap();
        let e = list_cases(d.path(), None).unwrap_err().to_string();
        assert!(e.contains("not valid UTF-8"), "{e}");
        std::fs::remove_file(&bad).unwrap();
        std::os::unix::fs::symlink(d.path().join("gone.nii.gz"), d.path().join("c.nii.gz")).unwrap();
        let e = list_cases(d.path(), None).unwrap_err().to_string();
        assert!(e.contains("c.nii.gz") && e.contains("does not exist"), "{e}");
    }
}
