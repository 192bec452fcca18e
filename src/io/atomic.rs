//! Write-to-temp-then-rename, so an interrupted or failed run never leaves a
//! half-written table or volume under the name the user asked for.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Calls `write` with a temporary path in the same folder as `dest` (same
/// file-system, so the rename is atomic), then renames it to `dest`. The
/// temporary name keeps `dest`'s extension (`.nii.gz` stays `.nii.gz`) because
/// some writers pick the format from it. On error the temporary file is removed.
pub fn write_atomically<F>(dest: &Path, write: F) -> Result<()>
where
    F: FnOnce(&Path) -> Result<()>,
{
    let tmp = temp_path(dest);
    let outcome = write(&tmp).and_then(|()| {
        std::fs::rename(&tmp, dest).map_err(|source| Error::Write {
            path: dest.to_path_buf(),
            source,
        })
    });
    if outcome.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    outcome
}

fn temp_path(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".to_string());
    // Keep a double extension such as `.nii.gz` intact at the end of the name.
    let (stem, ext) = match name.find('.') {
        Some(0) | None => (name.as_str(), ""),
        Some(i) => name.split_at(i),
    };
    // No dot between stem and marker: writers that re-derive the extension
    // (nifti's does) must see exactly `ext`.
    let tmp_name = format!(".{stem}-tmp{}{ext}", std::process::id());
    dest.with_file_name(tmp_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_name_keeps_double_extension() {
        let p = temp_path(Path::new("/a/b/case_01.nii.gz"));
        let s = p.to_string_lossy();
        assert!(s.starts_with("/a/b/.case_01-tmp"), "{s}");
        assert!(s.ends_with(".nii.gz"), "{s}");
    }

    #[test]
    fn failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.csv");
        let r = write_atomically(&dest, |tmp| {
            std::fs::write(tmp, "half").unwrap();
            Err(Error::Config("boom".into()))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
