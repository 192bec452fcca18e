//! `lesioneval check` (and `score --baseline`): exit 0 pass, 1 regression with
//! the metric named, 2 when the two results cannot be compared.

mod common;

use assert_cmd::Command;
use common::root;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn bin() -> Command {
    Command::cargo_bin("lesioneval").unwrap()
}

/// The committed example baseline (dice_loss on examples/data).
fn baseline() -> Value {
    let text = std::fs::read_to_string(root().join("examples/ci/baseline.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn write(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string_pretty(v).unwrap()).unwrap();
    p
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn check(base: &Path, cur: &Path, extra: &[&str]) -> Run {
    let out = bin()
        .arg("check")
        .arg("--baseline")
        .arg(base)
        .arg(cur)
        .args(extra)
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .unwrap();
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    r
}

/// Baseline and a copy changed by `edit`, written into a fresh folder.
fn pair(edit: impl FnOnce(&mut Value)) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let b = baseline();
    let mut c = b.clone();
    edit(&mut c);
    let (bp, cp) = (
        write(d.path(), "baseline.json", &b),
        write(d.path(), "results.json", &c),
    );
    (d, bp, cp)
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

#[test]
fn identical_results_pass() {
    let (_d, b, c) = pair(|_| {});
    let r = check(&b, &c, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("## lesioneval check: ✅ pass"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("| f1 | 0.8456 | 0.8456 | = 0 | max drop 0.01 | ✅ pass |"),
        "{}",
        r.stdout
    );
    assert!(r.stderr.contains("check: pass"), "{}", r.stderr);
}

#[test]
fn each_default_rule_trips_and_names_its_metric() {
    type Edit = fn(&mut Value);
    let cases: [(&str, Edit, &str); 4] = [
        (
            "f1",
            |v| v["total"]["f1"] = json!(f(&v["total"]["f1"]) - 0.02),
            "f1 dropped by 0.0200",
        ),
        (
            "recall",
            |v| v["total"]["recall"] = json!(f(&v["total"]["recall"]) - 0.011),
            "recall dropped",
        ),
        (
            "precision",
            |v| v["total"]["precision"] = json!(f(&v["total"]["precision"]) - 0.5),
            "precision dropped",
        ),
        // 11 → 12 FP is +9.1 %, over the 5 % default.
        ("fp", |v| v["total"]["fp"] = json!(12), "fp rose by 9.1 %"),
    ];
    for (metric, edit, msg) in cases {
        let (_d, b, c) = pair(edit);
        let r = check(&b, &c, &[]);
        assert_eq!(r.code, 1, "{metric}: {}", r.stderr);
        assert!(
            r.stdout.contains(msg) && r.stderr.contains(msg),
            "{metric}: {}\n{}",
            r.stdout,
            r.stderr
        );
        assert!(r.stdout.contains("❌ regression"), "{}", r.stdout);
        let row = r
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {metric} |")))
            .unwrap();
        assert!(row.ends_with("❌ FAIL |"), "{row}");
    }
}

#[test]
fn a_drop_of_exactly_the_limit_passes() {
    let (_d, b, c) = pair(|v| v["total"]["f1"] = json!(f(&v["total"]["f1"]) - 0.01));
    assert_eq!(check(&b, &c, &[]).code, 0);
}

#[test]
fn flags_change_and_add_rules() {
    let (_d, b, c) = pair(|v| {
        v["total"]["f1"] = json!(f(&v["total"]["f1"]) - 0.02);
        v["total"]["fp"] = json!(12);
    });
    assert_eq!(check(&b, &c, &[]).code, 1);
    let r = check(&b, &c, &["--max-drop", "f1=0.03", "--max-rise", "fp=30%"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let r = check(&b, &c, &["--max-drop", "f1=off", "--max-rise", "fp=1"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    // A new rule on a metric that no default watches.
    let (_d, b, c) = pair(|v| v["total"]["fn"] = json!(18));
    assert_eq!(check(&b, &c, &[]).code, 0);
    let r = check(&b, &c, &["--max-rise", "fn=2"]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("fn rose by 6 (12 → 18, limit 2)"), "{}", r.stdout);
    // Bad rule syntax is bad usage.
    let r = check(&b, &c, &["--max-drop", "f2=0.1"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("unknown metric \"f2\""), "{}", r.stderr);
}

#[test]
fn per_case_rule_names_case_and_metric() {
    let (_d, b, c) = pair(|v| {
        v["cases"][1]["tp"] = json!(1);
        v["cases"][1]["fn"] = json!(2);
        v["cases"][1]["tp_pred"] = json!(1);
        v["cases"][1]["fp"] = json!(3);
    });
    let r = check(&b, &c, &["--per-case-max-drop", "f1=0.2", "--max-drop", "f1=off"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("case ms_002: f1 dropped by 0.2857"), "{}", r.stdout);
    assert!(r.stdout.contains("### Cases that regressed most"), "{}", r.stdout);
    assert!(
        r.stdout.contains("| ms_002 | 0.5714 | 0.2857 | ▼ 0.2857 | +1 | +1 |"),
        "{}",
        r.stdout
    );
    let r = check(&b, &c, &["--per-case-max-rise", "fp=0", "--max-drop", "f1=off"]);
    assert!(r.stdout.contains("case ms_002: fp rose by 1"), "{}", r.stdout);
}

#[test]
fn rules_file_next_to_baseline_and_explicit() {
    let (d, b, c) = pair(|v| v["total"]["f1"] = json!(f(&v["total"]["f1"]) - 0.02));
    assert_eq!(check(&b, &c, &[]).code, 1);
    std::fs::write(d.path().join("baseline.gate.toml"), "[max_drop]\nf1 = 0.05\n").unwrap();
    let r = check(&b, &c, &[]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("max drop f1 0.05"), "{}", r.stdout);
    // Flags override the file.
    assert_eq!(check(&b, &c, &["--max-drop", "f1=0.01"]).code, 1);
    let strict = d.path().join("strict.toml");
    std::fs::write(&strict, "[max_drop]\nf1 = \"1%\"\n").unwrap();
    assert_eq!(check(&b, &c, &["--rules", strict.to_str().unwrap()]).code, 1);
    std::fs::write(&strict, "[max_drop]\nf1 = \"lots\"\n").unwrap();
    let r = check(&b, &c, &["--rules", strict.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("strict.toml") && r.stderr.contains("f1"),
        "{}",
        r.stderr
    );
}

#[test]
fn config_mismatch_exits_2_naming_the_setting() {
    let (_d, b, c) = pair(|v| v["config"]["connectivity"] = json!(6));
    let r = check(&b, &c, &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("different settings: connectivity (baseline 26, current 6)"),
        "{}",
        r.stderr
    );
    // The report, verdict included, is printed on stdout as for a pass or a regression.
    assert!(r.stdout.contains("⚠️ cannot compare"), "{}", r.stdout);
    // A setting this version does not know (a later one wrote it) is compared too.
    let (_d, b, c) = pair(|v| v["config"]["dilation_rule"] = json!("new-thing"));
    let r = check(&b, &c, &[]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stderr
            .contains("dilation_rule (baseline absent, current \"new-thing\")"),
        "{}",
        r.stderr
    );
    let (_d, b, c) = pair(|v| {
        v["config"]["match"] = json!("dice:0.1");
        v["config"]["preset"] = json!("picai");
    });
    let r = check(&b, &c, &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("match (baseline \"iou:0.1\", current \"dice:0.1\")"),
        "{}",
        r.stderr
    );
}

#[test]
fn real_run_with_other_connectivity_is_refused() {
    let out = bin()
        .current_dir(root())
        .args([
            "score",
            "--gt",
            "examples/data/labelsTs",
            "--pred",
            "examples/data/dice_loss",
            "--connectivity",
            "6",
            "--baseline",
            "examples/ci/baseline.json",
        ])
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("connectivity (baseline 26, current 6)"));
}

#[test]
fn score_with_baseline_gates() {
    let run = |pred: &str| {
        bin()
            .current_dir(root())
            .args(["score", "--gt", "examples/data/labelsTs", "--pred", pred])
            .args(["--baseline", "examples/ci/baseline.json"])
            .env_remove("GITHUB_STEP_SUMMARY")
            .output()
            .unwrap()
    };
    let ok = run("examples/data/dice_loss");
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
    let bad = run("examples/data/focal_loss");
    assert_eq!(bad.status.code(), Some(1));
    let s = String::from_utf8_lossy(&bad.stdout);
    assert!(s.contains("| total (micro) |"), "the score table comes first: {s}");
    assert!(s.contains("precision dropped") && s.contains("fp rose"), "{s}");
    // Gate flags without a baseline are a usage error.
    bin()
        .current_dir(root())
        .args([
            "score",
            "--gt",
            "examples/data/labelsTs",
            "--pred",
            "examples/data/dice_loss",
        ])
        .args(["--max-drop", "f1=0.1"])
        .assert()
        .code(2);
}

/// A baseline inside --out is read before the new results replace it: the
/// gate compares the old run with the new one, not the new one with itself.
#[test]
fn baseline_inside_out_is_read_before_it_is_replaced() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let score = |pred: &str, baseline: bool| {
        let mut c = bin();
        c.current_dir(root())
            .args(["score", "--gt", "examples/data/labelsTs", "--pred", pred, "--out"])
            .arg(&out)
            .env_remove("GITHUB_STEP_SUMMARY");
        if baseline {
            c.arg("--baseline").arg(out.join("results.json"));
        }
        c.output().unwrap()
    };
    assert!(score("examples/data/dice_loss", false).status.success());
    let r = score("examples/data/focal_loss", true);
    assert_eq!(r.status.code(), Some(1), "{}", String::from_utf8_lossy(&r.stdout));
    assert!(String::from_utf8_lossy(&r.stdout).contains("fp rose"));
}

#[test]
fn corrupt_future_and_missing_files_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let b = write(d.path(), "baseline.json", &baseline());
    let corrupt = d.path().join("corrupt.json");
    std::fs::write(&corrupt, "{\"schema_version\": 1, \"cases\": [").unwrap();
    let r = check(&b, &corrupt, &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("corrupt.json") && r.stderr.contains("bad JSON"),
        "{}",
        r.stderr
    );
    let mut future = baseline();
    future["schema_version"] = json!(2);
    let fp = write(d.path(), "future.json", &future);
    let r = check(&b, &fp, &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("schema_version 2") && r.stderr.contains("upgrade"),
        "{}",
        r.stderr
    );
    // A future baseline is refused the same way.
    assert_eq!(check(&fp, &b, &[]).code, 2);
    let mut wrong = baseline();
    wrong["total"] = json!("many");
    let wp = write(d.path(), "wrong.json", &wrong);
    let r = check(&b, &wp, &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("wrong.json") && r.stderr.contains("not a valid results file"),
        "{}",
        r.stderr
    );
    let r = check(&b, &d.path().join("absent.json"), &[]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("absent.json"), "{}", r.stderr);
    let r = check(&d.path().join("absent.json"), &b, &[]);
    assert_eq!(r.code, 2);
}

#[test]
fn released_schema_versions_are_read() {
    // Frozen files of every released schema; never regenerate them.
    let v1 = root().join("fixtures/results/schema_v1_score.json");
    assert_eq!(check(&v1, &v1, &[]).code, 0);
    let cmp = root().join("fixtures/results/schema_v1_compare.json");
    let r = check(&cmp, &cmp, &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("holds 2 models (dice_loss, focal_loss)"),
        "{}",
        r.stderr
    );
    assert_eq!(check(&cmp, &cmp, &["--model", "focal_loss"]).code, 0);
    // The dice_loss model of a compare run gates against the score baseline.
    let r = check(&v1, &cmp, &["--model", "dice_loss"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn case_set_changes_exit_2_unless_allowed() {
    let (_d, b, c) = pair(|v| {
        let cases = v["cases"].as_array_mut().unwrap();
        cases.remove(2);
        let mut extra = cases[0].clone();
        extra["case"] = json!("ms_new");
        cases.push(extra);
    });
    let r = check(&b, &c, &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("missing from current: ms_003; new in current: ms_new"),
        "{}",
        r.stderr
    );
    let r = check(&b, &c, &["--allow-case-changes"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stdout.contains("7 case(s) compared (totals recomputed"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("- new (current only, not compared): ms_new"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("- missing (baseline only, not compared): ms_003"),
        "{}",
        r.stdout
    );
    // No case in common: nothing would be compared, so it is not a pass.
    let (_d, b, c) = pair(|v| {
        for case in v["cases"].as_array_mut().unwrap() {
            let id = format!("x_{}", case["case"].as_str().unwrap());
            case["case"] = json!(id);
        }
    });
    let r = check(&b, &c, &["--allow-case-changes"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("share no case"), "{}", r.stderr);
}

#[test]
fn report_step_summary_and_update_baseline() {
    let (d, b, c) = pair(|v| v["total"]["fp"] = json!(20));
    let summary = d.path().join("summary.md");
    std::fs::write(&summary, "earlier step\n").unwrap();
    let report = d.path().join("gate.md");
    let out = bin()
        .arg("check")
        .arg("--baseline")
        .arg(&b)
        .arg(&c)
        .arg("--report")
        .arg(&report)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(md.contains("❌ regression") && md.contains("fp rose"), "{md}");
    let s = std::fs::read_to_string(&summary).unwrap();
    assert!(s.starts_with("earlier step\n") && s.contains(&md), "{s}");
    // Cannot compare: the summary says so too.
    let (_d2, b2, c2) = pair(|v| v["config"]["strict"] = json!(true));
    let out = bin()
        .arg("check")
        .arg("--baseline")
        .arg(&b2)
        .arg(&c2)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(std::fs::read_to_string(&summary).unwrap().contains("cannot compare"));
    // --update-baseline accepts the new results, byte for byte, and passes.
    let r = check(&b, &c, &["--update-baseline"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("baseline updated"), "{}", r.stderr);
    assert_eq!(std::fs::read(&b).unwrap(), std::fs::read(&c).unwrap());
    assert_eq!(check(&b, &c, &[]).code, 0);
    // ... also when the old one is not comparable, or absent.
    assert_eq!(check(&b2, &c2, &["--update-baseline"]).code, 0);
    assert_eq!(std::fs::read(&b2).unwrap(), std::fs::read(&c2).unwrap());
    let fresh = d.path().join("new/baseline.json");
    std::fs::create_dir_all(fresh.parent().unwrap()).unwrap();
    assert_eq!(check(&fresh, &c, &["--update-baseline"]).code, 0);
    assert!(fresh.is_file());
    let leftovers: Vec<_> = std::fs::read_dir(d.path().join("new")).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temp files left");
}
