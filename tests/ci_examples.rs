//! The CI examples in examples/ci are valid YAML, and the `lesioneval` commands
//! of the GitHub workflow pass when run as written on the bundled example data
//! (so the committed baseline stays in step with the scorer: if this fails after
//! a deliberate change to scoring, refresh it with
//! `lesioneval score --gt examples/data/labelsTs --pred examples/data/dice_loss --json examples/ci/baseline.json`).

mod common;

use common::root;
use serde_norway::Value;
use std::path::Path;

/// Every line of every `run:` (GitHub steps) or `script:` (GitLab jobs) entry.
fn commands(doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut push = |text: &str| out.extend(text.lines().map(|l| l.trim().to_string()));
    if let Some(jobs) = doc.get("jobs").and_then(Value::as_mapping) {
        for job in jobs.values() {
            for step in job.get("steps").and_then(Value::as_sequence).into_iter().flatten() {
                if let Some(run) = step.get("run").and_then(Value::as_str) {
                    push(run);
                }
            }
        }
    }
    if let Some(map) = doc.as_mapping() {
        for job in map.values() {
            for line in job.get("script").and_then(Value::as_sequence).into_iter().flatten() {
                if let Some(s) = line.as_str() {
                    push(s);
                }
            }
        }
    }
    out
}

fn load(name: &str) -> Value {
    let text = std::fs::read_to_string(root().join("examples/ci").join(name)).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{name} is not valid YAML: {e}"))
}

fn lesioneval_lines(doc: &Value) -> Vec<String> {
    commands(doc)
        .into_iter()
        .filter(|l| l.starts_with("lesioneval "))
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

#[test]
fn github_workflow_commands_run_and_pass() {
    let doc = load("github-actions.yml");
    assert!(
        doc.get("on").is_some() && doc.get("jobs").is_some(),
        "a workflow needs on: and jobs:"
    );
    let all = commands(&doc);
    assert!(
        all.iter().any(|l| l.starts_with("cargo install")),
        "the workflow installs lesioneval: {all:?}"
    );
    let lines = lesioneval_lines(&doc);
    assert!(lines.iter().any(|l| l.starts_with("lesioneval score ")), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("lesioneval check ")), "{lines:?}");
    // A copy of examples/ stands in for the user's repository, so outputs land in a temp dir.
    let d = tempfile::tempdir().unwrap();
    copy_dir(&root().join("examples"), &d.path().join("examples"));
    let exe = Path::new(env!("CARGO_BIN_EXE_lesioneval"));
    let bin_dir = exe.parent().unwrap();
    let path = std::env::join_paths(
        std::iter::once(bin_dir.to_path_buf())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();
    let summary = d.path().join("step-summary.md");
    for line in &lines {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(line)
            .current_dir(d.path())
            .env("PATH", &path)
            .env("GITHUB_STEP_SUMMARY", &summary)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "`{line}` failed ({:?}): {}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let s = std::fs::read_to_string(&summary).unwrap();
    assert!(s.contains("## lesioneval check: ✅ pass"), "{s}");
    assert!(d.path().join("report/gate.md").is_file());
}

#[test]
fn gitlab_job_is_valid_and_runs_the_same_commands() {
    let gitlab = load("gitlab-ci.yml");
    let github = load("github-actions.yml");
    assert_eq!(lesioneval_lines(&gitlab), lesioneval_lines(&github));
}
