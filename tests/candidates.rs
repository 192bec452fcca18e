//! Probability-map candidates equal report_guided_annotation 0.3.4's
//! `extract_lesion_candidates` on the committed fixtures (scripts/crosscheck_froc.py).

mod common;

use lesioneval::prob::{self, CandidateMode, CandidateOptions};
use serde_json::Value;

#[test]
fn candidates_equal_report_guided_annotation() {
    let dir = common::fixtures().join("froc");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("candidates.json")).unwrap()).unwrap();
    let cases = doc["cases"].as_object().unwrap();
    assert!(cases.len() >= 16);
    let mut checked = 0;
    for (name, case) in cases {
        let p = prob::read_probability(&dir.join(format!("cases/prob/{name}.nii.gz")), None).unwrap();
        for (mode_name, mode) in case["modes"].as_object().unwrap() {
            let (m, opts) = match mode_name.as_str() {
                "0.5" => (
                    CandidateMode::Threshold(0.5),
                    // picai's float mode keeps components of more than 10 voxels.
                    CandidateOptions {
                        min_voxels_threshold: 11,
                        ..CandidateOptions::default()
                    },
                ),
                other => (other.parse().unwrap(), CandidateOptions::default()),
            };
            let mut got: Vec<(f64, Vec<u32>)> = prob::extract(&p.data, p.geometry.shape, m, &opts)
                .into_iter()
                .map(|c| (c.confidence as f64, c.voxels))
                .collect();
            let mut want: Vec<(f64, Vec<u32>)> = mode["candidates"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    let idx = c["fortran_indices"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_u64().unwrap() as u32);
                    (c["confidence"].as_f64().unwrap(), idx.collect())
                })
                .collect();
            if !matches!(m, CandidateMode::Dynamic { .. }) {
                // Static modes: picai numbers by first voxel in C order, we in storage order.
                got.sort_by_key(|c| c.1[0]);
                want.sort_by_key(|c| c.1[0]);
            }
            assert_eq!(got, want, "{name} {mode_name}");
            checked += 1;
        }
    }
    assert!(checked >= 64, "{checked}");
}

#[test]
fn probabilities_outside_unit_interval_are_refused() {
    let d = tempfile::tempdir().unwrap();
    for (v, word) in [(1.5f32, "1.5"), (-0.1, "-0.1"), (f32::NAN, "NaN")] {
        let mut vals = vec![0f32; 8];
        vals[3] = v;
        let p = d.path().join("p.nii");
        common::RawNifti::f32([2, 2, 2], &vals).write(&p);
        let err = prob::read_probability(&p, None).unwrap_err().to_string();
        assert!(
            err.contains("p.nii") && err.contains(word) && err.contains("(1, 1, 0)"),
            "{err}"
        );
    }
}

use lesioneval::prob::froc::{self, CaseDetections, DetectionMetrics, LesionScore};

fn num(v: &Value) -> f64 {
    match v {
        Value::String(s) if s == "inf" => f64::INFINITY,
        Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
        Value::String(s) if s == "nan" => f64::NAN,
        _ => v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")),
    }
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= tol
}

fn assert_vec(name: &str, got: &[f64], want: &Value, tol: f64) {
    let want: Vec<f64> = want.as_array().unwrap().iter().map(num).collect();
    assert_eq!(got.len(), want.len(), "{name}: length");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(close(*g, *w, tol), "{name}[{i}]: got {g}, want {w}");
    }
}

fn assert_metrics(name: &str, m: &DetectionMetrics, want: &Value) {
    assert_eq!(m.num_lesions as u64, want["num_lesions"].as_u64().unwrap(), "{name}");
    assert_eq!(m.num_cases as u64, want["num_cases"].as_u64().unwrap(), "{name}");
    assert_vec(&format!("{name} lesion_TPR"), &m.lesion_tpr, &want["lesion_TPR"], 0.0);
    assert_vec(&format!("{name} lesion_FPR"), &m.lesion_fpr, &want["lesion_FPR"], 0.0);
    for (key, got) in [("AP", m.ap), ("auroc", m.auroc), ("score", m.score)] {
        assert!(
            close(got, num(&want[key]), 1e-9),
            "{name} {key}: got {got}, want {}",
            want[key]
        );
    }
    for (x, w) in want["sensitivity_at_fp_per_case"].as_object().unwrap() {
        let got = m.sensitivity_at(x.parse().unwrap());
        assert!(
            close(got, num(w), 0.0),
            "{name} sensitivity at {x}: got {got}, want {w}"
        );
    }
    assert!(close(m.cpm(), num(&want["cpm_derived"]), 1e-12), "{name} cpm");
}

fn y_list(v: &Value) -> Vec<LesionScore> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| LesionScore {
            is_lesion: e[0].as_u64().unwrap() == 1,
            confidence: num(&e[1]),
            overlap: num(&e[2]),
        })
        .collect()
}

fn sorted(mut v: Vec<LesionScore>) -> Vec<LesionScore> {
    v.sort_by(|a, b| {
        (a.is_lesion, a.confidence, a.overlap)
            .partial_cmp(&(b.is_lesion, b.confidence, b.overlap))
            .unwrap()
    });
    v
}

#[test]
fn detection_metrics_equal_picai_eval() {
    let dir = common::fixtures().join("froc");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap();
    let order: Vec<&str> = doc["case_order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let inputs: Vec<_> = order
        .iter()
        .map(|name| {
            let gt = lesioneval::io::read_mask(&dir.join(format!("cases/gt/{name}.nii.gz"))).unwrap();
            let p = prob::read_probability(&dir.join(format!("cases/prob/{name}.nii.gz")), None).unwrap();
            (gt, p)
        })
        .collect();
    let runs = doc["runs"].as_object().unwrap();
    assert_eq!(runs.len(), 6);
    for (run_name, run) in runs {
        let (mode, opts) = match run["mode"].as_str().unwrap() {
            "0.5" => (
                CandidateMode::Threshold(0.5),
                CandidateOptions {
                    min_voxels_threshold: 11,
                    ..CandidateOptions::default()
                },
            ),
            m => (m.parse().unwrap(), CandidateOptions::default()),
        };
        let allow = run["allow_unmatched_candidates_with_minimal_overlap"]
            .as_bool()
            .unwrap();
        let cases: Vec<CaseDetections> = inputs
            .iter()
            .map(|(gt, p)| {
                let c = prob::extract(&p.data, p.geometry.shape, mode, &opts);
                froc::case_detections(&gt.data, gt.geometry.shape, &c, allow)
            })
            .collect();
        for (i, c) in cases.iter().enumerate() {
            let want = sorted(y_list(&run["y_list"][i]));
            let got = sorted(c.lesions.clone());
            assert_eq!(
                got.len(),
                want.len(),
                "{run_name} {}: y_list {got:?} vs {want:?}",
                order[i]
            );
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    g.is_lesion == w.is_lesion && g.confidence == w.confidence && close(g.overlap, w.overlap, 1e-12),
                    "{run_name} {}: {g:?} vs {w:?}",
                    order[i]
                );
            }
            assert_eq!(c.score, num(&run["case_pred"][i]), "{run_name} {} case_pred", order[i]);
            assert_eq!(c.target, run["case_target"][i].as_u64().unwrap() == 1);
        }
        assert_metrics(run_name, &froc::detection_metrics(&cases), run);
    }
}

#[test]
fn detection_metric_edge_cases_equal_picai_eval() {
    let dir = common::fixtures().join("froc");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap();
    for (name, e) in doc["edge_cases"].as_object().unwrap() {
        let n = e["num_cases"].as_u64().unwrap() as usize;
        let cases: Vec<CaseDetections> = (0..n)
            .map(|i| CaseDetections {
                lesions: y_list(&e["y_list"][i]),
                target: e["case_target"][i].as_u64().unwrap() == 1,
                score: num(&e["case_pred"][i]),
            })
            .collect();
        assert_metrics(name, &froc::detection_metrics(&cases), e);
    }
}
