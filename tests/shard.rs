//! `--shard I/N` + `merge` give byte-identical files to one unsharded run, and
//! merge refuses anything that is not exactly one run's complete set of shards.

mod common;

use assert_cmd::Command;
use common::{fixtures, root};
use std::path::{Path, PathBuf};

fn bin() -> Command {
    Command::cargo_bin("lesioneval").unwrap()
}

fn run_ok(args: &[&str], extra: &[&Path]) {
    let out = bin().args(args).args(extra).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn same_files(a: &Path, b: &Path, names: &[&str]) {
    for f in names {
        let (x, y) = (std::fs::read(a.join(f)).unwrap(), std::fs::read(b.join(f)).unwrap());
        assert!(x == y, "{f} differs between the unsharded run and the merge");
    }
}

/// Scores `cmd_args` once unsharded and as `n` shards, merges the shard
/// folders (and the shard JSON files), and asserts identical outputs.
fn assert_shards_merge_exactly(cmd_args: &[&str], n: u32, files: &[&str]) {
    let d = tempfile::tempdir().unwrap();
    let full = d.path().join("full");
    run_ok(cmd_args, &[Path::new("--out"), &full]);
    let mut parts: Vec<PathBuf> = Vec::new();
    for i in 0..n {
        let part = d.path().join(format!("part-{i}"));
        let spec = format!("{i}/{n}");
        run_ok(
            cmd_args,
            &[Path::new("--shard"), Path::new(&spec), Path::new("--out"), &part],
        );
        parts.push(part);
    }
    let merged = d.path().join("merged");
    let mut args: Vec<&Path> = parts.iter().map(PathBuf::as_path).collect();
    args.extend([Path::new("--out"), &merged]);
    run_ok(&["merge"], &args);
    same_files(&full, &merged, files);
    // JSON-only merge to a .json file.
    let json_parts: Vec<PathBuf> = parts.iter().map(|p| p.join("results.json")).collect();
    let out = d.path().join("results.json");
    let mut args: Vec<&Path> = json_parts.iter().map(PathBuf::as_path).collect();
    args.extend([Path::new("--out"), &out]);
    run_ok(&["merge"], &args);
    assert!(std::fs::read(&out).unwrap() == std::fs::read(full.join("results.json")).unwrap());
}

#[test]
fn score_fixture_folder_three_shards_merge_byte_identical() {
    let syn = fixtures().join("picai/synthetic");
    let (g, p) = (syn.join("gt"), syn.join("pred"));
    let args = ["score", "--gt", g.to_str().unwrap(), "--pred", p.to_str().unwrap()];
    assert_shards_merge_exactly(&args, 3, &["results.json", "cases.csv", "lesions.csv"]);
}

#[test]
fn probability_run_shards_merge_byte_identical() {
    // Curves and bootstrap intervals are rebuilt from the per-case lesion lists in unsharded order.
    let dir = fixtures().join("froc/cases");
    let (gt, prob) = (dir.join("gt"), dir.join("prob"));
    let args = [
        "score",
        "--gt",
        gt.to_str().unwrap(),
        "--prob",
        prob.to_str().unwrap(),
        "--bootstrap",
        "50",
        "--seed",
        "3",
    ];
    assert_shards_merge_exactly(
        &args,
        3,
        &[
            "results.json",
            "cases.csv",
            "lesions.csv",
            "detection.csv",
            "froc.csv",
            "thresholds.csv",
            "candidates.csv",
        ],
    );
}

#[test]
fn region_runs_merge_byte_identical() {
    // Two models × two regions: four entries whose CSV rows are keyed by `model:region`.
    let syn = fixtures().join("picai/synthetic");
    let (g, p) = (syn.join("gt"), syn.join("pred"));
    let (g, p) = (g.to_str().unwrap(), p.to_str().unwrap());
    let args = [
        "compare", "--gt", g, p, p, "--name", "a", "--name", "b", "--labels", "1", "--region", "all=1,2",
    ];
    assert_shards_merge_exactly(&args, 3, &["results.json", "cases.csv", "lesions.csv", "summary.csv"]);
}

#[test]
fn compare_with_an_empty_shard_merges_byte_identical() {
    // 3 cases over 3 shards: FNV-1a puts two in shard 0 and none in shard 2.
    let data = root().join("examples/data");
    let paths: Vec<String> = ["labelsTs", "dice_loss", "focal_loss"]
        .iter()
        .map(|f| data.join(f).display().to_string())
        .collect();
    let args = ["compare", "--gt", &paths[0], &paths[1], &paths[2]];
    assert_shards_merge_exactly(&args, 3, &["results.json", "cases.csv", "lesions.csv", "summary.csv"]);
}

#[test]
fn missing_predictions_merge_in_case_order() {
    let syn = fixtures().join("picai/synthetic");
    let d = tempfile::tempdir().unwrap();
    let pred = d.path().join("pred");
    std::fs::create_dir_all(&pred).unwrap();
    // Keep every third prediction: the rest are scored empty and listed as missing.
    let mut names: Vec<_> = std::fs::read_dir(syn.join("pred"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for p in names.iter().step_by(3) {
        std::fs::copy(p, pred.join(p.file_name().unwrap())).unwrap();
    }
    let g = syn.join("gt");
    let args = [
        "score",
        "--missing",
        "empty",
        "--gt",
        g.to_str().unwrap(),
        "--pred",
        pred.to_str().unwrap(),
    ];
    assert_shards_merge_exactly(&args, 4, &["results.json", "cases.csv", "lesions.csv"]);
}

/// Three partial JSON files of the fixture run, plus a differently configured shard 0.
fn partials(d: &Path) -> Vec<PathBuf> {
    let syn = fixtures().join("picai/synthetic");
    let mut out = Vec::new();
    for (i, extra) in [(0, ""), (1, ""), (2, ""), (0, "6")] {
        let p = d.join(format!("part-{i}{extra}.json"));
        let mut cmd = bin();
        cmd.arg("score")
            .arg("--gt")
            .arg(syn.join("gt"))
            .arg("--pred")
            .arg(syn.join("pred"))
            .arg("--shard")
            .arg(format!("{i}/3"))
            .arg("--json")
            .arg(&p);
        if !extra.is_empty() {
            cmd.args(["--connectivity", extra]);
        }
        assert!(cmd.output().unwrap().status.success());
        out.push(p);
    }
    out
}

fn merge_err(parts: &[&Path], out: &Path) -> String {
    let o = bin().arg("merge").args(parts).arg("--out").arg(out).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(!out.exists(), "nothing written on error");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn merge_refuses_missing_overlapping_and_mismatched_shards() {
    let d = tempfile::tempdir().unwrap();
    let p = partials(d.path());
    let out = d.path().join("merged.json");
    let e = merge_err(&[&p[0], &p[1]], &out);
    assert!(e.contains("missing shard(s) 2/3"), "{e}");
    let e = merge_err(&[&p[0], &p[1], &p[2], &p[0]], &out);
    assert!(e.contains("shard 0/3 is given twice"), "{e}");
    let e = merge_err(&[&p[3], &p[1], &p[2]], &out);
    assert!(e.contains("settings differ: connectivity: 6 vs 26"), "{e}");
    // An unsharded results file is not a partial.
    let whole = d.path().join("whole.json");
    let syn = fixtures().join("picai/synthetic");
    bin()
        .arg("score")
        .arg("--gt")
        .arg(syn.join("gt"))
        .arg("--pred")
        .arg(syn.join("pred"))
        .arg("--json")
        .arg(&whole)
        .assert()
        .success();
    let e = merge_err(&[&whole, &p[1], &p[2]], &out);
    assert!(e.contains("not a partial results file"), "{e}");
    // A partial is not a baseline-comparable result either.
    let o = bin()
        .arg("check")
        .arg("--baseline")
        .arg(&whole)
        .arg(&p[1])
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("merge the shards first"));
    // Nor is it plotted as if it were the cohort, by plot or by --plots.
    let figs = d.path().join("figs");
    let o = bin().arg("plot").arg(&p[1]).arg("--out").arg(&figs).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("part-1.json is shard 1/3") && e.contains("merge the shards first"),
        "{e}"
    );
    let o = bin()
        .arg("score")
        .arg("--gt")
        .arg(syn.join("gt"))
        .arg("--pred")
        .arg(syn.join("pred"))
        .args(["--shard", "1/3", "--plots"])
        .arg(&figs)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--plots needs the whole case set"));
    assert!(!figs.exists(), "refused before anything is written");
    // Partial files carry the shard and the full case list.
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p[1]).unwrap()).unwrap();
    assert_eq!(v["shard"], serde_json::json!({"index": 1, "count": 3}));
    assert_eq!(v["case_ids"].as_array().unwrap().len(), 34);
    bin()
        .args(["score", "--gt", "x", "--pred", "y", "--shard", "3/3"])
        .assert()
        .code(2);
}

/// Detection records are checked like case records: one moved into another
/// shard's file is an error, not a silent replacement of that shard's.
#[test]
fn merge_checks_detection_records() {
    let d = tempfile::tempdir().unwrap();
    let dir = fixtures().join("froc/cases");
    let mut parts = Vec::new();
    for i in 0..2 {
        let p = d.path().join(format!("part-{i}.json"));
        let spec = format!("{i}/2");
        run_ok(
            &["score", "--bootstrap", "0", "--shard", &spec, "--gt"],
            &[
                &dir.join("gt"),
                Path::new("--prob"),
                &dir.join("prob"),
                Path::new("--json"),
                &p,
            ],
        );
        parts.push(p);
    }
    let read = |p: &Path| -> serde_json::Value { serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap() };
    let (mut a, b) = (read(&parts[0]), read(&parts[1]));
    let stray = b["detection"]["cases"][0].clone();
    let case = stray["case"].as_str().unwrap().to_string();
    a["detection"]["cases"].as_array_mut().unwrap().push(stray);
    let edited = d.path().join("edited.json");
    std::fs::write(&edited, serde_json::to_vec(&a).unwrap()).unwrap();
    let out = d.path().join("merged.json");
    let e = merge_err(&[&edited, &parts[1]], &out);
    assert!(
        e.contains("edited.json")
            && e.contains(&format!(
                "detection record of case {case:?} does not belong to shard 0/2"
            )),
        "{e}"
    );
}
