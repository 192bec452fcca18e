//! Write-to-temp-then-rename, so an interrupted or failed run never leaves a
//! half-written table or volume under the name the user asked for.
//!
//! A run that writes several files (the tables, results.json, `--json`, the
//! figures) does so inside [`all_or_nothing`]: every file goes to its
//! temporary name first, and only when all are written are they renamed
//! (and stale outputs removed). A failure on the fifth file then leaves the
//! first four, and whatever was there before, as they were.

use crate::error::{Error, Result};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What the open batch of this thread will do once all its files are written.
enum Pending {
    Rename { tmp: PathBuf, dest: PathBuf },
    Remove(PathBuf),
}

thread_local! {
    static BATCH: RefCell<Option<Vec<Pending>>> = const { RefCell::new(None) };
}

/// Runs `work`, holding back the renames of every [`write_atomically`] (and
/// the removals of [`remove_stale`]) it makes on this thread until it returns
/// Ok; on an error, every file it wrote is removed and nothing is replaced.
///
/// Inside another batch, `work`'s files join that batch: they are committed
/// (or undone) with it.
pub fn all_or_nothing<T, E: From<Error>>(
    work: impl FnOnce() -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    if BATCH.with(|b| b.borrow().is_some()) {
        return work();
    }
    BATCH.with(|b| *b.borrow_mut() = Some(Vec::new()));
    let outcome = work();
    let pending = BATCH.with(|b| b.borrow_mut().take()).unwrap_or_default();
    // A destination taken by a folder would fail its rename half-way through
    // the commit: found before the first rename instead.
    let blocked = pending.iter().find_map(|p| match p {
        Pending::Rename { dest, .. } if dest.is_dir() => Some(dest.clone()),
        _ => None,
    });
    let outcome = outcome.and_then(|v| match blocked {
        Some(dest) => Err(Error::input(dest, "is a folder, not a file that can be written").into()),
        None => Ok(v),
    });
    let mut pending = pending.into_iter();
    let outcome = outcome.and_then(|v| {
        for p in pending.by_ref() {
            match p {
                Pending::Rename { tmp, dest } => {
                    std::fs::rename(&tmp, &dest).map_err(|source| {
                        let _ = std::fs::remove_file(&tmp);
                        Error::Write { path: dest, source }
                    })?;
                }
                Pending::Remove(path) => remove(&path)?,
            }
        }
        Ok(v)
    });
    // What was not committed (an error before or during the commit) is undone.
    for p in pending {
        if let Pending::Rename { tmp, .. } = p {
            let _ = std::fs::remove_file(tmp);
        }
    }
    outcome
}

/// Removes `path` (an output of an earlier run that this run does not write),
/// at the commit of the open [`all_or_nothing`] batch, or now if there is none.
pub fn remove_stale(path: &Path) -> Result<()> {
    match queue(Pending::Remove(path.to_path_buf())) {
        None => Ok(()),
        Some(_) => remove(path),
    }
}

/// Hands `p` to this thread's open batch; gives it back when there is none.
fn queue(p: Pending) -> Option<Pending> {
    BATCH.with(|b| match b.borrow_mut().as_mut() {
        Some(v) => {
            v.push(p);
            None
        }
        None => Some(p),
    })
}

/// Removes a file; one that is already gone is fine.
fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Write {
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Calls `write` with a temporary path in the same folder as `dest` (same
/// file-system, so the rename is atomic), then renames it to `dest`. The
/// temporary name keeps `dest`'s extension (`.nii.gz` stays `.nii.gz`) because
/// some writers pick the format from it. On error the temporary file is removed.
///
/// A `dest` that exists and is not a regular file (`/dev/null`, `/dev/stdout`, a
/// FIFO) is written directly: renaming over it would replace the device with a
/// regular file (as root, for everyone). A symlink keeps pointing where it did:
/// the file it resolves to is the one replaced.
pub fn write_atomically<F>(dest: &Path, write: F) -> Result<()>
where
    F: FnOnce(&Path) -> Result<()>,
{
    if std::fs::metadata(dest).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        return write(dest);
    }
    let resolved;
    let dest = if std::fs::symlink_metadata(dest).is_ok_and(|m| m.file_type().is_symlink()) {
        resolved = std::fs::canonicalize(dest).map_err(|source| Error::Write {
            path: dest.to_path_buf(),
            source,
        })?;
        resolved.as_path()
    } else {
        dest
    };
    let tmp = temp_path(dest);
    let written = write(&tmp);
    // Inside all_or_nothing the rename waits for the batch's commit.
    if written.is_ok()
        && queue(Pending::Rename {
            tmp: tmp.clone(),
            dest: dest.to_path_buf(),
        })
        .is_none()
    {
        return Ok(());
    }
    let outcome = written.and_then(|()| {
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
    // Keep a double extension such as `.nii.gz` intact at the end of the name
    // (the first dot after the first character: `.x.nii.gz` is `.x` + `.nii.gz`).
    let (stem, ext) = match name.char_indices().skip(1).find(|&(_, c)| c == '.') {
        None => (name.as_str(), ""),
        Some((i, _)) => name.split_at(i),
    };
    // No dot between stem and marker: writers that re-derive the extension
    // (nifti's does) must see exactly `ext`.
    // The counter keeps two temporaries of one destination (written twice in
    // one batch) apart.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let tmp_name = format!(".{stem}-tmp{}-{n}{ext}", std::process::id());
    dest.with_file_name(tmp_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_name_of_a_dot_file_keeps_its_extension() {
        let p = temp_path(Path::new("/a/.x.nii.gz"));
        let s = p.to_string_lossy();
        assert!(s.starts_with("/a/..x-tmp") && s.ends_with(".nii.gz"), "{s}");
        let p = temp_path(Path::new("/a/.hidden"));
        assert!(p.to_string_lossy().starts_with("/a/..hidden-tmp"), "{}", p.display());
    }

    #[test]
    fn temp_name_keeps_double_extension() {
        let p = temp_path(Path::new("/a/b/case_01.nii.gz"));
        let s = p.to_string_lossy();
        assert!(s.starts_with("/a/b/.case_01-tmp"), "{s}");
        assert!(s.ends_with(".nii.gz"), "{s}");
    }

    #[cfg(unix)]
    #[test]
    fn special_files_and_symlinks_are_not_replaced() {
        use std::os::unix::fs::FileTypeExt;
        let write = |p: &Path| {
            std::fs::write(p, "x").map_err(|source| Error::Write {
                path: p.to_path_buf(),
                source,
            })
        };
        // A FIFO (as /dev/null, /dev/stdout: not a regular file) is written into, not replaced.
        // (A FIFO of our own, not the machine's /dev/null, so that a regression breaks nothing.)
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("out.csv");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let reader = fifo.clone();
            // Detached: if a regression replaced the FIFO this reader would wait forever.
            std::thread::spawn(move || std::fs::read(reader));
            write_atomically(&fifo, write).unwrap();
            assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
        }
        // A symlink stays a symlink; the file it points at gets the new content.
        let dir = tempfile::tempdir().unwrap();
        let (file, link) = (dir.path().join("real.csv"), dir.path().join("link.csv"));
        std::fs::write(&file, "old").unwrap();
        std::os::unix::fs::symlink(&file, &link).unwrap();
        write_atomically(&link, |p| {
            std::fs::write(p, "new").map_err(|source| Error::Write {
                path: p.to_path_buf(),
                source,
            })
        })
        .unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "new");
    }

    #[test]
    fn a_batch_replaces_all_its_files_or_none() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, old) = (
            dir.path().join("a.csv"),
            dir.path().join("b.csv"),
            dir.path().join("old.csv"),
        );
        for p in [&a, &b, &old] {
            std::fs::write(p, "before").unwrap();
        }
        let put = |p: &Path, text: &'static str| {
            write_atomically(p, |tmp| {
                std::fs::write(tmp, text).map_err(|source| Error::Write {
                    path: tmp.to_path_buf(),
                    source,
                })
            })
        };
        // The second file fails: the first is not replaced, the stale one not removed.
        let r = all_or_nothing(|| {
            put(&a, "new")?;
            remove_stale(&old)?;
            assert_eq!(std::fs::read_to_string(&a).unwrap(), "before", "not before the commit");
            Err::<(), _>(Error::Config("boom".into()))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3, "no temporaries left");
        for p in [&a, &b, &old] {
            assert_eq!(std::fs::read_to_string(p).unwrap(), "before");
        }
        // All succeed: all replaced, the stale one gone; one destination written twice is fine.
        all_or_nothing(|| {
            put(&a, "new")?;
            put(&b, "first")?;
            put(&b, "second")?;
            remove_stale(&old)
        })
        .unwrap();
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "new");
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "second");
        assert!(!old.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
        // A nested batch joins the outer one, and a destination that is a folder
        // is found before any rename: nothing is replaced.
        let blocked = dir.path().join("c.csv");
        std::fs::create_dir(&blocked).unwrap();
        let r = all_or_nothing(|| {
            all_or_nothing(|| put(&a, "newer"))?;
            put(&blocked, "x")
        });
        assert!(r.unwrap_err().to_string().contains("is a folder"));
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3, "no temporaries left");
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
