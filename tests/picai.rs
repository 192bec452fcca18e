//! `score` with defaults must give picai_eval's per-case TP/FP/FN (binary
//! prediction as detection map, allow_unmatched_candidates_with_minimal_overlap
//! = False) on the committed reference fixtures (scripts/make_picai_fixtures.py).

mod common;

use assert_cmd::Command;
use common::fixtures;
use lesioneval::{dataset, eval};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
struct Expected {
    tool: String,
    cases: BTreeMap<String, Counts>,
}

#[derive(Deserialize, Debug, PartialEq)]
struct Counts {
    gt: u64,
    pred: u64,
    tp: u64,
    fp: u64,
    #[serde(rename = "fn")]
    fn_: u64,
}

fn check_suite(suite: &str, min_cases: usize) {
    let dir = fixtures().join("picai").join(suite);
    let expected: Expected =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    assert_eq!(expected.tool, "picai_eval 1.4.13");
    assert!(expected.cases.len() >= min_cases);
    let pairing = dataset::pair(
        &dir.join("gt"),
        &[dir.join("pred")],
        None,
        None,
        dataset::Missing::Error,
    )
    .unwrap();
    let models = eval::evaluate(
        &pairing.cases,
        &["m".into()],
        &["pred".into()],
        &pairing.missing,
        &eval::EvalConfig::default(),
        &eval::Timings::default(),
        &|| {},
    )
    .unwrap();
    assert_eq!(models[0].cases.len(), expected.cases.len());
    for c in &models[0].cases {
        let k = &c.counts;
        let got = Counts {
            gt: k.gt,
            pred: k.pred,
            tp: k.tp,
            fp: k.fp,
            fn_: k.fn_,
        };
        assert_eq!(&got, &expected.cases[&c.case], "{suite}/{}", c.case);
        assert_eq!(k.tp, k.tp_pred, "one-to-one: tp == tp_pred");
    }
}

#[test]
fn picai_own_test_cases() {
    check_suite("picai_tests", 10);
}

#[test]
fn picai_synthetic_cases() {
    check_suite("synthetic", 20);
}

#[test]
fn picai_sct_real_masks() {
    check_suite("sct", 3);
}

#[test]
fn binary_json_matches_picai_on_sct() {
    let dir = fixtures().join("picai/sct");
    let out = Command::cargo_bin("lesioneval")
        .unwrap()
        .args(["score", "--json", "-", "--gt"])
        .arg(dir.join("gt"))
        .arg("--pred")
        .arg(dir.join("pred"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected: Expected =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    for case in v["cases"].as_array().unwrap() {
        let e = &expected.cases[case["case"].as_str().unwrap()];
        assert_eq!(case["tp"], e.tp);
        assert_eq!(case["fp"], e.fp);
        assert_eq!(case["fn"], e.fn_);
    }
}
