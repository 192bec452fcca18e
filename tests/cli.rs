//! The binary end to end: outputs, determinism, and every bad input named in
//! the core issue (exit code 2, a message naming the file, never a panic).

mod common;

use assert_cmd::Command;
use common::{RawNifti, entries, fixtures};
use std::path::{Path, PathBuf};

fn bin() -> Command {
    Command::cargo_bin("lesioneval").unwrap()
}

/// A GT folder with one good case, and a prediction folder whose case is `pred`.
fn pair_with(dir: &Path, pred: &RawNifti, name: &str) -> (PathBuf, PathBuf) {
    let (g, p) = (dir.join("gt"), dir.join("pred"));
    std::fs::create_dir_all(&g).unwrap();
    std::fs::create_dir_all(&p).unwrap();
    let mut mask = vec![0u8; 4 * 4 * 4];
    mask[5] = 1;
    RawNifti::u8([4, 4, 4], mask).write(&g.join(format!("case.{name}")));
    pred.write(&p.join(format!("case.{name}")));
    (g, p)
}

/// Runs `score` and asserts exit 2 with a message naming `file` and containing `needle`.
fn assert_bad(g: &Path, p: &Path, file: &str, needle: &str) {
    let out = bin()
        .arg("score")
        .arg("--gt")
        .arg(g)
        .arg("--pred")
        .arg(p)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(err.contains(file), "message should name {file}: {err}");
    assert!(
        err.to_lowercase().contains(&needle.to_lowercase()),
        "message should say {needle:?}: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.stdout.is_empty(), "no table on failure");
}

#[test]
fn nifti2_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let mut n = RawNifti::u8([4, 4, 4], vec![0; 64]);
    n.sizeof_hdr = 540;
    let (g, p) = pair_with(d.path(), &n, "nii");
    assert_bad(&g, &p, "pred/case.nii", "NIfTI-2");
}

#[test]
fn real_4d_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let mut n = RawNifti::u8([4, 4, 4], vec![0; 128]);
    n.dim = vec![4, 4, 4, 2];
    let (g, p) = pair_with(d.path(), &n, "nii.gz");
    assert_bad(&g, &p, "pred/case.nii.gz", "holds 2 3-D volumes");
}

#[test]
fn singleton_4d_is_accepted() {
    let d = tempfile::tempdir().unwrap();
    let mut mask = vec![0u8; 64];
    mask[5] = 1;
    let mut n = RawNifti::u8([4, 4, 4], mask);
    n.dim = vec![4, 4, 4, 1];
    let (g, p) = pair_with(d.path(), &n, "nii.gz");
    bin()
        .arg("score")
        .arg("--gt")
        .arg(&g)
        .arg("--pred")
        .arg(&p)
        .assert()
        .success();
}

#[test]
fn nan_and_inf_in_mask_are_refused() {
    for (v, word) in [(f32::NAN, "NaN"), (f32::INFINITY, "inf")] {
        let d = tempfile::tempdir().unwrap();
        let mut vals = vec![0f32; 64];
        vals[9] = v;
        let (g, p) = pair_with(d.path(), &RawNifti::f32([4, 4, 4], &vals), "nii");
        assert_bad(&g, &p, "pred/case.nii", word);
        assert_bad(&g, &p, "pred/case.nii", "voxel (1, 2, 0)");
    }
}

#[test]
fn unknown_dtype_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let mut n = RawNifti::u8([4, 4, 4], vec![0; 64 * 8]);
    n.datatype = 1792; // complex128
    n.bitpix = 128;
    let (g, p) = pair_with(d.path(), &n, "nii");
    assert_bad(&g, &p, "pred/case.nii", "unsupported NIfTI data type 1792");
}

#[test]
fn truncated_and_corrupt_gzip_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let (g, p) = pair_with(d.path(), &RawNifti::u8([16, 16, 16], vec![1; 4096]), "nii.gz");
    let f = p.join("case.nii.gz");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
    assert_bad(&g, &p, "pred/case.nii.gz", "gzip");
    let mut corrupt = bytes.clone();
    for b in corrupt[20..40].iter_mut() {
        *b ^= 0x5a;
    }
    std::fs::write(&f, &corrupt).unwrap();
    assert_bad(&g, &p, "pred/case.nii.gz", "gzip");
    std::fs::write(&f, b"this is not gzip").unwrap();
    assert_bad(&g, &p, "pred/case.nii.gz", "gzip");
}

#[test]
fn truncated_uncompressed_data_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let (g, p) = pair_with(d.path(), &RawNifti::u8([4, 4, 4], vec![0; 30]), "nii");
    assert_bad(&g, &p, "pred/case.nii", "");
}

#[test]
fn geometry_mismatch_names_both_files() {
    let d = tempfile::tempdir().unwrap();
    let (g, p) = pair_with(d.path(), &RawNifti::u8([4, 4, 5], vec![0; 80]), "nii");
    assert_bad(&g, &p, "gt/case.nii", "shape 4×4×4 vs 4×4×5");
    assert_bad(&g, &p, "pred/case.nii", "geometry mismatch");
    let d = tempfile::tempdir().unwrap();
    let mut n = RawNifti::u8([4, 4, 4], vec![0; 64]);
    n.pixdim = [1.0, 1.0, 1.01];
    let (g, p) = pair_with(d.path(), &n, "nii");
    assert_bad(&g, &p, "pred/case.nii", "spacing");
    // Within a generous tolerance the same pair is accepted.
    bin()
        .args(["score", "--geometry-tolerance", "0.1", "--gt"])
        .arg(&g)
        .arg("--pred")
        .arg(&p)
        .assert()
        .success();
}

#[test]
fn missing_predictions_listed_or_scored_empty() {
    let d = tempfile::tempdir().unwrap();
    let (g, p) = (d.path().join("gt"), d.path().join("pred"));
    std::fs::create_dir_all(&g).unwrap();
    std::fs::create_dir_all(&p).unwrap();
    let mut m = vec![0u8; 64];
    m[0] = 1;
    for id in ["a", "b", "c"] {
        RawNifti::u8([4, 4, 4], m.clone()).write(&g.join(format!("{id}.nii.gz")));
    }
    RawNifti::u8([4, 4, 4], m.clone()).write(&p.join("b.nii.gz"));
    RawNifti::u8([4, 4, 4], m.clone()).write(&p.join("zzz.nii.gz"));
    let out = bin()
        .arg("score")
        .arg("--gt")
        .arg(&g)
        .arg("--pred")
        .arg(&p)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("2 of 3 ground-truth cases have no prediction: a, c"),
        "{err}"
    );
    let out = bin()
        .args(["score", "--missing", "empty", "--json", "-", "--gt"])
        .arg(&g)
        .arg("--pred")
        .arg(&p)
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning") && err.contains("zzz"), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["missing"], serde_json::json!(["a", "c"]));
    assert_eq!(v["total"]["fn"], 2);
    assert_eq!(v["total"]["tp"], 1);
}

#[test]
fn bad_usage_exits_2() {
    for args in [
        vec!["score", "--gt", "x", "--pred", "y", "--match", "iou:1.5"],
        vec!["score", "--gt", "x", "--pred", "y", "--connectivity", "8"],
        vec!["score", "--gt", "x", "--pred", "y", "--min-size", "3cm"],
        vec!["score", "--gt", "x"],
        vec!["frobnicate"],
    ] {
        bin().args(&args).assert().code(2);
    }
    let out = bin()
        .args(["score", "--gt", "/nonexistent/gt", "--pred", "/nonexistent/p"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/gt"));
}

#[test]
fn empty_folder_and_duplicate_ids_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let (g, p) = (d.path().join("gt"), d.path().join("pred"));
    std::fs::create_dir_all(&g).unwrap();
    std::fs::create_dir_all(&p).unwrap();
    assert_bad(&g, &p, "gt", "no .nii or .nii.gz files");
    RawNifti::u8([2, 2, 2], vec![0; 8]).write(&g.join("a.nii"));
    RawNifti::u8([2, 2, 2], vec![0; 8]).write(&g.join("a.nii.gz"));
    assert_bad(&g, &p, "gt", "given twice");
}

#[test]
fn outputs_are_complete_and_byte_identical() {
    let sct = fixtures().join("picai/sct");
    let run = |dir: &Path| {
        bin()
            .args(["score", "--out"])
            .arg(dir)
            .arg("--gt")
            .arg(sct.join("gt"))
            .arg("--pred")
            .arg(sct.join("pred"))
            .assert()
            .success()
            .get_output()
            .stdout
            .clone()
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (sa, sb) = (run(a.path()), run(b.path()));
    assert_eq!(sa, sb);
    for f in ["cases.csv", "lesions.csv", "results.json"] {
        let (x, y) = (
            std::fs::read(a.path().join(f)).unwrap(),
            std::fs::read(b.path().join(f)).unwrap(),
        );
        assert!(x == y, "{f} differs between runs");
    }
    let names = entries(a.path());
    assert_eq!(names.len(), 3, "no temp files left: {names:?}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(a.path().join("results.json")).unwrap()).unwrap();
    for key in [
        "schema_version",
        "tool_version",
        "config",
        "cases",
        "total",
        "macro",
        "missing",
    ] {
        assert!(v.get(key).is_some(), "results.json lacks {key}");
    }
    for key in [
        "case",
        "gt",
        "pred",
        "tp",
        "fp",
        "fn",
        "tp_pred",
        "precision",
        "recall",
        "f1",
        "dice",
    ] {
        assert!(v["cases"][0].get(key).is_some(), "case lacks {key}");
    }
    for key in ["gt", "pred", "tp", "fp", "fn", "tp_pred", "precision", "recall", "f1"] {
        assert!(v["total"].get(key).is_some(), "total lacks {key}");
    }
    assert_eq!(v["config"]["connectivity"], 26);
    assert_eq!(v["config"]["match"], "iou:0.1");
    assert_eq!(v["config"]["assign"], "one-to-one");
    let lesions = std::fs::read_to_string(a.path().join("lesions.csv")).unwrap();
    // rootlets: 5 GT + 21 predicted lesions, cords: 1 + 1 each.
    assert_eq!(lesions.lines().count(), 1 + 5 + 21 + 2 + 2);
    assert!(lesions.starts_with("case,side,id,voxels,volume_mm3,"));
    let table = String::from_utf8(sa).unwrap();
    assert!(
        table.contains("| rootlets      |   5 |   21 |   4 |  17 |   1 |"),
        "{table}"
    );
}

#[test]
fn formats_and_timings() {
    let sct = fixtures().join("picai/sct");
    let out = bin()
        .args(["score", "--format", "latex", "--timings", "--gt"])
        .arg(sct.join("gt"))
        .arg("--pred")
        .arg(sct.join("pred"))
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.starts_with("\\begin{tabular}") && s.contains("\\midrule"), "{s}");
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("timing read=") && e.contains("label=") && e.contains("match=") && e.contains("write="));
    let out = bin()
        .args(["score", "--format", "csv", "--gt"])
        .arg(sct.join("gt"))
        .arg("--pred")
        .arg(sct.join("pred"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .starts_with("Case,GT,Pred,TP,FP,FN,1:1,Split,Merge,Complex,Precision,Recall,F1,Dice\n")
    );
}

#[test]
fn compare_shares_gt_and_names_models() {
    let sct = fixtures().join("sct");
    let d = tempfile::tempdir().unwrap();
    let (g, a, b) = (d.path().join("gt"), d.path().join("m3d"), d.path().join("m2d"));
    for f in [&g, &a, &b] {
        std::fs::create_dir_all(f).unwrap();
    }
    std::fs::copy(sct.join("t2_seg-manual.nii.gz"), g.join("cord.nii.gz")).unwrap();
    std::fs::copy(sct.join("t2_seg-deepseg_sc-3d.nii.gz"), a.join("cord.nii.gz")).unwrap();
    std::fs::copy(sct.join("t2_seg-deepseg_sc-2d.nii.gz"), b.join("cord.nii.gz")).unwrap();
    let out = bin()
        .args(["compare", "--name", "3-D model", "--name", "2-D model", "--out"])
        .arg(d.path().join("report"))
        .arg("--gt")
        .arg(&g)
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.starts_with("| No. | Model     |  TP |  FP |  FN |  GT | Split | Merge | Precision | Recall |"),
        "{s}"
    );
    assert!(
        s.contains("|   1 | 3-D model |") && s.contains("|   2 | 2-D model |"),
        "{s}"
    );
    let summary = std::fs::read_to_string(d.path().join("report/summary.csv")).unwrap();
    assert_eq!(summary.lines().count(), 3);
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("report/results.json")).unwrap()).unwrap();
    assert_eq!(v["models"].as_array().unwrap().len(), 2);
    assert_eq!(v["models"][1]["name"], "2-D model");
    bin()
        .args(["compare", "--name", "only-one", "--gt"])
        .arg(&g)
        .arg(&a)
        .arg(&b)
        .assert()
        .code(2);
    // `check --model` picks a model by name, so two models may not share one.
    let o = bin()
        .args(["compare", "--name", "same", "--name", "same", "--gt"])
        .arg(&g)
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("two models are named \"same\""));
}

#[test]
fn label_writes_labels_and_stats() {
    let d = tempfile::tempdir().unwrap();
    let src = fixtures().join("sct/t2_seg-deepseg_rootlets.nii.gz");
    let (out, stats) = (d.path().join("lab.nii.gz"), d.path().join("stats.csv"));
    let o = bin()
        .arg("label")
        .arg(&src)
        .arg("--out")
        .arg(&out)
        .arg("--stats")
        .arg(&stats)
        .args(["--timings", "--repeat", "3", "--warmup", "2"])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("21 lesions (26-connectivity)"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("timing read="));
    // One time per timed repetition (the warm-up ones are not listed).
    let each = err
        .lines()
        .find_map(|l| l.strip_prefix("timing label_each_ms="))
        .unwrap();
    assert_eq!(each.split(',').count(), 3, "{err}");
    let labels = lesioneval::io::read_labels(&out).unwrap();
    let input = lesioneval::io::read_mask(&src).unwrap();
    assert_eq!(labels.geometry, input.geometry, "geometry kept");
    assert_eq!(labels.data.iter().max(), Some(&21));
    let csv = std::fs::read_to_string(&stats).unwrap();
    assert_eq!(csv.lines().count(), 22);
    // Uncompressed output too, same labels.
    let plain = d.path().join("lab.nii");
    bin().arg("label").arg(&src).arg("--out").arg(&plain).assert().success();
    assert_eq!(lesioneval::io::read_labels(&plain).unwrap().data, labels.data);
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 3, "no temp files left");
    // Repetitions that write into the previous one's label volume give the same labels and statistics.
    let (rc_out, rc_stats) = (d.path().join("rc.nii.gz"), d.path().join("rc.csv"));
    bin()
        .arg("label")
        .arg(&src)
        .arg("--out")
        .arg(&rc_out)
        .arg("--stats")
        .arg(&rc_stats)
        .args(["--repeat", "3", "--recycle", "--device", "cpu"])
        .assert()
        .success();
    assert_eq!(std::fs::read(&rc_out).unwrap(), std::fs::read(&out).unwrap());
    assert_eq!(std::fs::read_to_string(&rc_stats).unwrap(), csv);
    bin().arg("label").arg(&src).arg("--recycle").assert().code(2);
    // --min-size removes small lesions and renumbers.
    let o = bin()
        .arg("label")
        .arg(&src)
        .args(["--min-size", "20"])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(!s.contains(" 21 lesions"), "{s}");
}

#[test]
fn label_out_must_be_a_nifti_file_name() {
    // The NIfTI writer would append `.nii` to any other name: refused before
    // anything is written, and nothing (no temporary file) is left behind.
    let d = tempfile::tempdir().unwrap();
    let src = fixtures().join("sct/t2_seg-deepseg_rootlets.nii.gz");
    let folder = d.path().join("folder.nii.gz");
    std::fs::create_dir(&folder).unwrap();
    for (out, needle) in [("labels.txt", ".nii or .nii.gz"), ("folder.nii.gz", "is a folder")] {
        let o = bin()
            .arg("label")
            .arg(&src)
            .arg("--out")
            .arg(d.path().join(out))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(out) && err.contains(needle), "{err}");
    }
    assert_eq!(entries(d.path()), ["folder.nii.gz"], "nothing else written");
}

#[test]
fn min_size_filters_both_sides() {
    let sct = fixtures().join("picai/sct");
    let out = bin()
        .args(["score", "--json", "-", "--min-size-pred", "10mm3", "--gt"])
        .arg(sct.join("gt"))
        .arg("--pred")
        .arg(sct.join("pred"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rootlets = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["case"] == "rootlets")
        .unwrap();
    assert!(rootlets["pred"].as_u64().unwrap() < 21);
    assert_eq!(rootlets["gt"], 5);
    assert_eq!(v["config"]["min_size_pred"], "10mm3");
}

#[test]
fn readme_example_table() {
    // Counts cross-checked with scipy.ndimage.label + IoU ≥ 0.1 one-to-one matching
    // (scripts/make_example_data.py prints the same reference table).
    let d = common::root().join("examples/data");
    let out = bin()
        .args(["compare", "--gt"])
        .arg(d.join("labelsTs"))
        .arg(d.join("dice_loss"))
        .arg(d.join("focal_loss"))
        .arg(d.join("tversky_loss"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).unwrap();
    let readme = std::fs::read_to_string(common::root().join("README.md")).unwrap();
    for row in s.lines().skip(2) {
        assert!(readme.contains(row), "README table is stale; row: {row}");
    }
    assert!(s.contains(
        "|   2 | focal_loss   |  67 |  73 |   8 |  75 |     2 |     0 |    0.4786 | 0.8933 | 0.6233 | 0.8651 |"
    ));
}

#[test]
fn device_gpu_without_adapter_exits_2_and_auto_falls_back() {
    // No Metal on Linux (and no adapter of any kind there): a clean "no adapter".
    let mask = fixtures().join("sct/t2_seg-deepseg_rootlets.nii.gz");
    let out = bin()
        .env("WGPU_BACKEND", "metal")
        .args(["label", "--device", "gpu"])
        .arg(&mask)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if cfg!(target_os = "macos") {
        return;
    }
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("GPU") && err.contains("adapter"), "{err}");
    let out = bin()
        .env("WGPU_BACKEND", "metal")
        .args(["label", "--device", "auto", "--timings"])
        .arg(&mask)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("labelling on the CPU") && err.contains("device=cpu"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("21 lesions"));
}

#[test]
fn score_on_gpu_equals_cpu() {
    if !common::gpu_available() {
        return;
    }
    let d = common::root().join("examples/data");
    let run = |device: &str| {
        let out = bin()
            .args(["score", "--json", "-", "--device", device, "--gt"])
            .arg(d.join("labelsTs"))
            .arg("--pred")
            .arg(d.join("focal_loss"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    assert!(run("gpu") == run("cpu"), "GPU and CPU results differ");
}

#[test]
fn a_report_name_taken_by_a_folder_fails_before_any_file_is_written() {
    let sct = fixtures().join("picai/sct");
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("report");
    std::fs::create_dir_all(out.join("lesions.csv")).unwrap();
    let o = bin()
        .arg("score")
        .arg("--gt")
        .arg(sct.join("gt"))
        .arg("--pred")
        .arg(sct.join("pred"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("lesions.csv") && err.contains("is a folder"), "{err}");
    assert_eq!(entries(&out), ["lesions.csv"], "no other file written");
}

/// A reader that goes away (`lesioneval compare … | head -1`) ends neither in a
/// panic nor before the files under --out are written.
#[test]
fn closed_stdout_is_not_a_panic_and_outputs_are_written() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("report");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("lesioneval"))
        .current_dir(common::root())
        .args(["compare", "--gt", "examples/data/labelsTs"])
        .args(["examples/data/dice_loss", "examples/data/focal_loss", "--out"])
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read end before the table is printed (scoring takes far longer than this).
    drop(child.stdout.take());
    let res = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(res.status.code(), Some(0), "{stderr}");
    assert!(out.join("results.json").is_file());
}

/// Outputs are all written or none: a --json path that cannot be written is
/// found before scoring, a figure that cannot be written keeps the tables
/// from being replaced, and a reused --out folder loses the earlier run's
/// tables that this run does not write.
#[test]
fn outputs_are_written_all_or_none_and_stale_tables_go() {
    let d = tempfile::tempdir().unwrap();
    let score = |extra: &[&str]| {
        bin()
            .current_dir(common::root())
            .args(["score", "--device", "cpu", "--gt", "examples/data/labelsTs"])
            .args(extra)
            .output()
            .unwrap()
    };
    let p = |rel: &str| d.path().join(rel).display().to_string();
    let r = score(&[
        "--pred",
        "examples/data/dice_loss",
        "--out",
        &p("a"),
        "--json",
        &p("nodir/r.json"),
    ]);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("does not exist"));
    assert!(!d.path().join("a").exists());

    // A --json inside the --out folder that the run creates is fine.
    let r = score(&[
        "--pred",
        "examples/data/dice_loss",
        "--out",
        &p("j"),
        "--json",
        &p("j/copy.json"),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(d.path().join("j/copy.json").is_file());

    // A figure written late in the run is blocked by a folder: no figure, no table.
    std::fs::create_dir_all(d.path().join("plots/lesion_counts.svg")).unwrap();
    let r = score(&[
        "--pred",
        "examples/data/dice_loss",
        "--out",
        &p("b"),
        "--plots",
        &p("plots"),
    ]);
    assert_eq!(r.status.code(), Some(2));
    assert!(!d.path().join("plots/counts.svg").exists());
    // … and with --json - nothing is printed either.
    let r = score(&[
        "--pred",
        "examples/data/dice_loss",
        "--json",
        "-",
        "--plots",
        &p("plots"),
    ]);
    assert_eq!(r.status.code(), Some(2));
    assert!(r.stdout.is_empty(), "{}", String::from_utf8_lossy(&r.stdout));
    let left: Vec<String> = match std::fs::read_dir(d.path().join("b")) {
        Ok(it) => it
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    assert!(left.is_empty(), "{left:?}");

    let r = score(&[
        "--prob",
        "examples/data/dice_loss_prob",
        "--bootstrap",
        "0",
        "--out",
        &p("c"),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(d.path().join("c/detection.csv").is_file());
    let r = score(&["--pred", "examples/data/dice_loss", "--out", &p("c")]);
    assert!(r.status.success());
    for gone in ["detection.csv", "froc.csv", "thresholds.csv", "candidates.csv"] {
        assert!(!d.path().join("c").join(gone).exists(), "{gone}");
    }
    assert!(d.path().join("c/cases.csv").is_file());
    // A folder that holds no report keeps its own files of those names.
    let own = d.path().join("own");
    std::fs::create_dir_all(&own).unwrap();
    std::fs::write(own.join("thresholds.csv"), "mine").unwrap();
    let r = score(&["--pred", "examples/data/dice_loss", "--out", &p("own")]);
    assert!(r.status.success());
    assert_eq!(std::fs::read_to_string(own.join("thresholds.csv")).unwrap(), "mine");
}

/// Files named `.NII.GZ` or `.Nii` (Windows tools) are cases like any other:
/// read, paired by id, never passed over as if missing.
#[test]
fn upper_case_extensions_are_nifti_files() {
    let d = tempfile::tempdir().unwrap();
    let ex = common::root().join("examples/data");
    let (g, p) = (d.path().join("gt"), d.path().join("pred"));
    std::fs::create_dir_all(&g).unwrap();
    std::fs::create_dir_all(&p).unwrap();
    std::fs::copy(ex.join("labelsTs/ms_001.nii.gz"), g.join("ms_001.nii.gz")).unwrap();
    std::fs::copy(ex.join("dice_loss/ms_001.nii.gz"), p.join("ms_001.NII.GZ")).unwrap();
    let score_csv = |gt: &Path, pred: &Path| {
        let o = bin()
            .args(["score", "--device", "cpu", "--format", "csv", "--gt"])
            .arg(gt)
            .arg("--pred")
            .arg(pred)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let upper = score_csv(&g, &p);
    let lower = score_csv(&ex.join("labelsTs/ms_001.nii.gz"), &ex.join("dice_loss/ms_001.nii.gz"));
    assert_eq!(upper, lower, "the same case, the same row");
}
