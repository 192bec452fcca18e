//! Challenge presets: hand-computed rule clauses (anima, shifts, picai's
//! ignored predictions, correspondence classes) and equality with picai_eval
//! and panoptica on the committed fixture folders.

mod common;

use assert_cmd::Command;
use common::RawNifti;
use serde_json::Value;
use std::path::Path;

fn bin() -> Command {
    let mut c = Command::cargo_bin("lesioneval").unwrap();
    c.env("XDG_RUNTIME_DIR", std::env::temp_dir());
    c
}

const SHAPE: [usize; 3] = [24, 24, 1];

/// A 24×24×1 mask (1 mm voxels) with the given [x0, x1) × [y0, y1) rectangles set.
fn mask(rects: &[(usize, usize, usize, usize)]) -> Vec<u8> {
    let mut m = vec![0u8; SHAPE[0] * SHAPE[1]];
    for &(x0, x1, y0, y1) in rects {
        for y in y0..y1 {
            for x in x0..x1 {
                m[x + SHAPE[0] * y] = 1;
            }
        }
    }
    m
}

type Rects = &'static [(usize, usize, usize, usize)];

/// Writes gt/ and pred/ folders with one case per entry.
fn folders(dir: &Path, cases: &[(&str, Rects, Rects)]) -> (String, String) {
    let (g, p) = (dir.join("gt"), dir.join("pred"));
    std::fs::create_dir_all(&g).unwrap();
    std::fs::create_dir_all(&p).unwrap();
    for (name, gt, pred) in cases {
        std::fs::write(g.join(format!("{name}.nii")), RawNifti::u8(SHAPE, mask(gt)).bytes()).unwrap();
        std::fs::write(p.join(format!("{name}.nii")), RawNifti::u8(SHAPE, mask(pred)).bytes()).unwrap();
    }
    (g.display().to_string(), p.display().to_string())
}

fn score(gt: &str, pred: &str, extra: &[&str]) -> Value {
    let out = bin()
        .args(["score", "--device", "cpu", "--gt", gt, "--pred", pred, "--json", "-"])
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn case<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["case"] == name)
        .unwrap()
}

/// (tp, fp, fn, tp_pred) of a case.
fn counts(c: &Value) -> (u64, u64, u64, u64) {
    let n = |k: &str| c[k].as_u64().unwrap();
    (n("tp"), n("fp"), n("fn"), n("tp_pred"))
}

#[test]
fn anima_rule_clauses() {
    let d = tempfile::tempdir().unwrap();
    let (gt, pred) = folders(
        d.path(),
        &[
            // GT 10×10; prediction of 10 voxels inside: coverage 10 % is not > α.
            ("alpha_10", &[(0, 10, 0, 10)], &[(0, 10, 0, 1)]),
            // 11 voxels inside: detected. The prediction itself is not: 89 % of the GT lesion
            // lies outside every prediction (> β).
            ("alpha_11", &[(0, 10, 0, 10)], &[(0, 10, 0, 1), (0, 1, 1, 2)]),
            // GT 10×5, prediction 10×10 sharing 40: 60 % of it outside (≤ β) → both detected.
            ("beta_pass", &[(0, 10, 0, 5)], &[(0, 10, 1, 11)]),
            // GT 10×5, prediction 5×20 sharing 25: 75 % outside (> β) → GT lesion missed; the
            // prediction is detected (50 % of the GT lesion is uncovered ≤ β).
            ("beta_fail", &[(0, 10, 0, 5)], &[(0, 5, 0, 20)]),
            // Lesions of 3 and 4 voxels (1 mm³ each): only the 4-voxel one is > 3 mm³.
            ("size", &[(0, 3, 0, 1), (10, 14, 10, 11)], &[]),
            // 5 voxels inside a 10×10 GT lesion: neither is detected; they overlap (IoU 0.05).
            ("low_iou", &[(0, 10, 0, 10)], &[(0, 5, 0, 1)]),
        ],
    );
    // --unmatched-overlap ignore leaves out an undetected prediction that overlaps a GT lesion at
    // all, whether the rule came from --preset anima or from --assign anima (whose unused --match
    // default, IoU ≥ 0.1, once decided it).
    for rule in [
        &["--preset", "anima"][..],
        &["--assign", "anima", "--connectivity", "6", "--min-size", ">3mm3"],
    ] {
        let doc = score(&gt, &pred, &[rule, &["--unmatched-overlap", "ignore"]].concat());
        let c = case(&doc, "low_iou");
        assert_eq!(
            (c["fp"].as_u64(), c["ignored"].as_u64()),
            (Some(0), Some(1)),
            "{rule:?}"
        );
    }
    let doc = score(&gt, &pred, &["--preset", "anima"]);
    assert_eq!(doc["config"]["preset"], "anima");
    assert_eq!(doc["config"]["connectivity"], 6);
    assert_eq!(doc["config"]["assign"], "anima:0.1,0.7,0.65");
    assert_eq!(doc["config"]["min_size_gt"], ">3mm3");
    assert_eq!(counts(case(&doc, "alpha_10")), (0, 1, 1, 0));
    assert_eq!(counts(case(&doc, "alpha_11")), (1, 1, 0, 0));
    assert_eq!(counts(case(&doc, "beta_pass")), (1, 0, 0, 1));
    assert_eq!(counts(case(&doc, "beta_fail")), (0, 0, 1, 1));
    assert_eq!(case(&doc, "size")["gt"], 1);
    let pm = |name: &str| case(&doc, name)["preset_metrics"].clone();
    assert_eq!(
        pm("beta_pass"),
        serde_json::json!({"f1": 1.0, "ppvl": 1.0, "sensl": 1.0})
    );
    assert_eq!(
        pm("beta_fail"),
        serde_json::json!({"f1": 0.0, "ppvl": 1.0, "sensl": 0.0})
    );
    // Nothing detected: Anima's F1 is NaN (null), not 0.
    assert_eq!(
        pm("alpha_10"),
        serde_json::json!({"f1": null, "ppvl": 0.0, "sensl": 0.0})
    );
    // α, β, γ are ordinary options: α = 0.05 detects the 10 % case.
    let loose = score(&gt, &pred, &["--preset", "anima", "--assign", "anima:0.05,0.7,0.65"]);
    assert_eq!(counts(case(&loose, "alpha_10")).0, 1);
}

#[test]
fn shifts_rule_clauses() {
    let d = tempfile::tempdir().unwrap();
    let (gt, pred) = folders(
        d.path(),
        &[
            // GT 11×4 split into two 5×4 predictions (IoU 20/44 = 0.45 each): 2 TP on the prediction side.
            ("split", &[(0, 11, 0, 4)], &[(0, 5, 0, 4), (6, 11, 0, 4)]),
            // Two 2×4 predictions (IoU 8/44 = 0.18 < 0.25 each): 2 FP, 1 FN.
            ("low_iou", &[(0, 11, 0, 4)], &[(0, 2, 0, 4), (9, 11, 0, 4)]),
            ("both_empty", &[], &[]),
            ("empty_gt", &[], &[(0, 3, 0, 3)]),
        ],
    );
    let doc = score(&gt, &pred, &["--preset", "shifts"]);
    let f1 = |name: &str| case(&doc, name)["preset_metrics"]["f1"].as_f64().unwrap();
    assert_eq!(counts(case(&doc, "split")), (1, 0, 0, 2));
    assert_eq!(f1("split"), 1.0);
    assert_eq!(counts(case(&doc, "low_iou")), (0, 2, 1, 0));
    assert_eq!(f1("low_iou"), 0.0);
    assert_eq!(f1("both_empty"), 1.0);
    assert_eq!(f1("empty_gt"), 0.0);
    assert_eq!(case(&doc, "split")["correspondence"]["split"], 1);
    assert_eq!(doc["preset_metrics_mean"]["f1"], 0.5);
    // Shifts' evaluation script: IoU 0.5 — the split halves no longer count.
    let strict = score(&gt, &pred, &["--preset", "shifts", "--match", "iou:0.5"]);
    assert_eq!(counts(case(&strict, "split")), (0, 2, 1, 0));
}

#[test]
fn picai_preset_leaves_losing_overlapping_predictions_out() {
    let d = tempfile::tempdir().unwrap();
    let (gt, pred) = folders(d.path(), &[("split", &[(0, 11, 0, 4)], &[(0, 5, 0, 4), (6, 11, 0, 4)])]);
    let plain = score(&gt, &pred, &[]);
    let picai = score(&gt, &pred, &["--preset", "picai"]);
    assert_eq!(counts(case(&plain, "split")), (1, 1, 0, 1));
    assert_eq!(counts(case(&picai, "split")), (1, 0, 0, 1));
    assert_eq!(case(&picai, "split")["ignored"], 1);
    assert_eq!(case(&picai, "split")["precision"], 1.0);
    assert_eq!(picai["config"]["ignore_unmatched_overlap"], true);
    // The option alone does the same; and lesions.csv names the decision.
    let out = d.path().join("out");
    bin()
        .args([
            "score",
            "--device",
            "cpu",
            "--gt",
            &gt,
            "--pred",
            &pred,
            "--unmatched-overlap",
            "ignore",
            "--out",
        ])
        .arg(&out)
        .assert()
        .success();
    let lesions = std::fs::read_to_string(out.join("lesions.csv")).unwrap();
    assert!(
        lesions
            .lines()
            .next()
            .unwrap()
            .ends_with(",status,matched,best_iou,correspondence,covered,dice,iou,hd95_mm,assd_mm")
    );
    assert!(lesions.contains(",Ignored,,"), "{lesions}");
    assert_eq!(
        lesions.matches(",split").count(),
        3,
        "GT lesion and both halves are in a split"
    );
}

#[test]
fn presets_work_with_compare_and_are_refused_when_unknown() {
    let ex = common::root().join("examples/data");
    let out = bin()
        .args([
            "compare",
            "--device",
            "cpu",
            "--preset",
            "panoptica",
            "--json",
            "-",
            "--gt",
        ])
        .arg(ex.join("labelsTs"))
        .arg(ex.join("dice_loss"))
        .arg(ex.join("focal_loss"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["config"]["preset"], "panoptica");
    assert_eq!(doc["config"]["assign"], "max-score");
    for m in doc["models"].as_array().unwrap() {
        let rq = m["preset_metrics_mean"]["rq"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&rq));
    }
    let o = bin()
        .args(["score", "--gt", "a", "--pred", "b", "--preset", "isles"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("preset must be"));
}

/// Expected value from the crosscheck files: a number, or "nan" (= our null).
fn expected_f64(v: &Value) -> Option<f64> {
    match v {
        Value::String(s) if s == "nan" => None,
        _ => Some(v.as_f64().unwrap()),
    }
}

fn suite_dirs(doc: &Value) -> Vec<(String, String, String)> {
    doc["suite_dirs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(suite, dir)| {
            let d = common::root().join(dir.as_str().unwrap());
            (
                suite.clone(),
                d.join("gt").display().to_string(),
                d.join("pred").display().to_string(),
            )
        })
        .collect()
}

#[test]
fn picai_preset_equals_picai_eval() {
    let path = common::fixtures().join("picai/expected_crosscheck.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut checked = 0;
    for (run, flags) in [
        ("allow_unmatched=True", &["--preset", "picai"][..]),
        ("allow_unmatched=False", &[][..]),
    ] {
        for (suite, gt, pred) in suite_dirs(&doc) {
            let ours = score(&gt, &pred, flags);
            let want = doc["runs"][run][&suite].as_object().unwrap();
            assert_eq!(ours["cases"].as_array().unwrap().len(), want.len(), "{run} {suite}");
            for (name, w) in want {
                let c = case(&ours, name);
                for k in ["gt", "pred", "tp", "fp", "fn", "ignored"] {
                    assert_eq!(c[k], w[k], "{run} {suite}/{name}: {k}");
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 90, "{checked} cases checked");
}

#[test]
fn panoptica_preset_equals_panoptica() {
    let path = common::fixtures().join("panoptica/expected.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut checked = 0;
    for (matcher, flags) in [
        ("max-bipartite", &["--preset", "panoptica"][..]),
        ("greedy", &["--preset", "panoptica", "--assign", "greedy"][..]),
    ] {
        for (suite, gt, pred) in suite_dirs(&doc) {
            let ours = score(&gt, &pred, flags);
            for (name, results) in doc["suites"][&suite].as_object().unwrap() {
                let (c, w) = (case(&ours, name), &results[matcher]);
                assert_eq!(c["gt"], w["num_ref_instances"], "{matcher} {suite}/{name}");
                assert_eq!(c["pred"], w["num_pred_instances"], "{matcher} {suite}/{name}");
                for k in ["tp", "fp", "fn"] {
                    assert_eq!(c[k], w[k], "{matcher} {suite}/{name}: {k}");
                }
                for k in ["rq", "sq", "sq_dsc", "pq", "pq_dsc"] {
                    let got = c["preset_metrics"][k].as_f64();
                    let want = expected_f64(&w[k]);
                    let same = match (got, want) {
                        (Some(a), Some(b)) => (a - b).abs() <= 1e-12,
                        (None, None) => true,
                        _ => false,
                    };
                    assert!(same, "{matcher} {suite}/{name} {k}: got {got:?}, want {want:?}");
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 70, "{checked} cases checked");
}

#[test]
fn labels_are_scored_separately_as_panoptica_does_per_label() {
    let path = common::fixtures().join("panoptica/expected.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let per_label = doc["suites"]["spine"]["spine"]["per_label"].as_object().unwrap();
    let mut labels: Vec<u32> = per_label.keys().map(|k| k.parse().unwrap()).collect();
    labels.sort_unstable();
    let list = labels.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    let dir = common::fixtures().join("panoptica/spine");
    let (gt, pred) = (
        dir.join("gt").display().to_string(),
        dir.join("pred").display().to_string(),
    );
    let ours = score(&gt, &pred, &["--preset", "panoptica", "--labels", &list]);
    let models = ours["models"].as_array().unwrap();
    assert_eq!(models.len(), labels.len(), "one result per label, in label order");
    for (m, l) in models.iter().zip(&labels) {
        assert_eq!(m["region"], l.to_string());
        assert_eq!(m["labels"], serde_json::json!([l]));
        let (c, w) = (&m["cases"][0], &per_label[&l.to_string()]["max-bipartite"]);
        for k in ["tp", "fp", "fn"] {
            assert_eq!(c[k], w[k], "label {l}: {k}");
        }
        assert_eq!(c["gt"], w["num_ref_instances"], "label {l}");
        for k in ["rq", "sq", "pq"] {
            let (got, want) = (c["preset_metrics"][k].as_f64(), expected_f64(&w[k]));
            assert!(
                match (got, want) {
                    (Some(a), Some(b)) => (a - b).abs() <= 1e-12,
                    (None, None) => true,
                    _ => false,
                },
                "label {l} {k}: {got:?} vs {want:?}"
            );
        }
    }
    assert_eq!(ours["config"]["regions"].as_array().unwrap().len(), labels.len());
}

#[test]
fn regions_union_their_labels() {
    // A label map with labels 1 (left square) and 2 (right square, touching 1) and 3 (far away).
    let d = tempfile::tempdir().unwrap();
    let (g, p) = (d.path().join("gt"), d.path().join("pred"));
    std::fs::create_dir_all(&g).unwrap();
    std::fs::create_dir_all(&p).unwrap();
    let mut labels = vec![0u8; SHAPE[0] * SHAPE[1]];
    for y in 0..4 {
        for x in 0..4 {
            labels[x + SHAPE[0] * y] = 1;
            labels[x + 4 + SHAPE[0] * y] = 2;
            labels[x + 16 + SHAPE[0] * (y + 16)] = 3;
        }
    }
    std::fs::write(g.join("a.nii"), RawNifti::u8(SHAPE, labels.clone()).bytes()).unwrap();
    // The prediction misses label 3 and calls the whole left block label 1.
    let pred: Vec<u8> = labels
        .iter()
        .map(|&l| {
            if l == 3 {
                0
            } else if l > 0 {
                1
            } else {
                0
            }
        })
        .collect();
    std::fs::write(p.join("a.nii"), RawNifti::u8(SHAPE, pred).bytes()).unwrap();
    let (gt, pr) = (g.display().to_string(), p.display().to_string());
    let doc = score(
        &gt,
        &pr,
        &["--region", "WT=1,2,3", "--region", "TC=1,3", "--labels", "2"],
    );
    let by_region: Vec<(String, (u64, u64, u64, u64))> = doc["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["region"].as_str().unwrap().to_string(), counts(&m["cases"][0])))
        .collect();
    assert_eq!(
        by_region,
        vec![
            // --labels come first: label 2 alone is not predicted.
            ("2".into(), (0, 0, 1, 0)),
            // WT: the 8×4 block matches, label 3 is missed.
            ("WT".into(), (1, 0, 1, 1)),
            // TC: GT label 1 (4×4) vs the predicted 8×4 block (IoU 0.5) and label 3 missed.
            ("TC".into(), (1, 0, 1, 1)),
        ]
    );
    // A region name twice, or label 0, is refused.
    let o = bin()
        .args([
            "score", "--gt", &gt, "--pred", &pr, "--region", "A=1", "--region", "A=2",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = bin()
        .args(["score", "--gt", &gt, "--pred", &pr, "--labels", "0,1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

/// A 40×40×1 mask with rectangles, for the BraTS cases (1 mm voxels: 50 mm³ = 50 voxels).
fn big(rects: &[(usize, usize, usize, usize)]) -> Vec<u8> {
    let mut m = vec![0u8; 1600];
    for &(x0, x1, y0, y1) in rects {
        for y in y0..y1 {
            for x in x0..x1 {
                m[x + 40 * y] = 1;
            }
        }
    }
    m
}

#[test]
fn brats2023_rule_clauses() {
    let d = tempfile::tempdir().unwrap();
    let (g, p) = (d.path().join("gt"), d.path().join("pred"));
    std::fs::create_dir_all(&g).unwrap();
    std::fs::create_dir_all(&p).unwrap();
    let cases: [(&str, Rects, Rects); 6] = [
        // Two 8×8 GT squares 5 voxels apart: their 3-fold dilations meet → one lesion.
        ("merge", &[(0, 8, 0, 8), (13, 21, 0, 8)], &[(0, 8, 0, 8)]),
        // A prediction 2 voxels beside the lesion touches its dilation: TP with Dice 0.
        ("near_hit", &[(0, 8, 0, 8)], &[(10, 14, 0, 4)]),
        // Far away: an FP, and the lesion is an FN.
        ("far_fp", &[(0, 8, 0, 8)], &[(20, 24, 0, 4)]),
        // A 7×7 GT lesion (49 mm³ ≤ 50) is left out; the prediction on it is neither TP nor FP.
        ("small_gt", &[(0, 7, 0, 7)], &[(0, 7, 0, 7)]),
        ("both_empty", &[], &[]),
        // One lesion split into two predictions: both TP, Dice against their union.
        ("split", &[(0, 10, 0, 10)], &[(0, 4, 0, 10), (6, 10, 0, 10)]),
    ];
    for (name, gt, pred) in cases {
        std::fs::write(
            g.join(format!("{name}.nii")),
            RawNifti::u8([40, 40, 1], big(gt)).bytes(),
        )
        .unwrap();
        std::fs::write(
            p.join(format!("{name}.nii")),
            RawNifti::u8([40, 40, 1], big(pred)).bytes(),
        )
        .unwrap();
    }
    let (gt, pr) = (g.display().to_string(), p.display().to_string());
    let doc = score(&gt, &pr, &["--preset", "brats2023", "--region", "all=1"]);
    assert_eq!(doc["config"]["assign"], "dilated:3");
    assert_eq!(doc["config"]["min_size_gt"], ">50mm3");
    let m = &doc["models"][0];
    let c = |name: &str| {
        m["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["case"] == name)
            .unwrap()
            .clone()
    };
    let lw = |name: &str, k: &str| c(name)["preset_metrics"][k].as_f64().unwrap();
    assert_eq!(c("merge")["gt"], 1);
    assert_eq!(counts(&c("merge")), (1, 0, 0, 1));
    assert!((lw("merge", "lesion_wise_dice") - 2.0 * 64.0 / 192.0).abs() < 1e-12);
    assert_eq!(counts(&c("near_hit")), (1, 0, 0, 1));
    assert_eq!(lw("near_hit", "lesion_wise_dice"), 0.0);
    assert!(lw("near_hit", "lesion_wise_hd95") > 0.0 && lw("near_hit", "lesion_wise_hd95") < 374.0);
    assert_eq!(counts(&c("far_fp")), (0, 1, 1, 0));
    assert_eq!(lw("far_fp", "lesion_wise_dice"), 0.0);
    assert_eq!(lw("far_fp", "lesion_wise_hd95"), 374.0);
    assert_eq!(
        (c("small_gt")["gt"].as_u64(), c("small_gt")["ignored"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(counts(&c("small_gt")), (0, 0, 0, 0));
    assert_eq!(lw("small_gt", "lesion_wise_dice"), 1.0, "nothing to score: Dice 1");
    assert_eq!(lw("small_gt", "lesion_wise_hd95"), 0.0);
    assert_eq!(lw("both_empty", "lesion_wise_dice"), 1.0);
    assert_eq!(counts(&c("split")), (1, 0, 0, 2));
    assert!((lw("split", "lesion_wise_dice") - 160.0 / 180.0).abs() < 1e-12);
    // Without --region the preset scores WT, TC and ET.
    let regions = score(&gt, &pr, &["--preset", "brats2023"]);
    let names: Vec<&str> = regions["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["region"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["WT", "TC", "ET"]);
    // --dilation is the ordinary option: with 1 iteration the two squares stay apart.
    let k1 = score(
        &gt,
        &pr,
        &["--preset", "brats2023", "--region", "all=1", "--dilation", "1"],
    );
    let merge = k1["models"][0]["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["case"] == "merge")
        .unwrap()
        .clone();
    assert_eq!(counts(&merge), (1, 0, 1, 1));
}

#[test]
fn rule_specific_edges() {
    let d = tempfile::tempdir().unwrap();
    let (g, p) = (d.path().join("gt"), d.path().join("pred"));
    std::fs::create_dir_all(&g).unwrap();
    std::fs::create_dir_all(&p).unwrap();
    // BraTS: a 49 mm³ GT lesion and an empty prediction: nothing to count, voxel Dice 1 too.
    std::fs::write(
        g.join("small.nii"),
        RawNifti::u8([40, 40, 1], big(&[(0, 7, 0, 7)])).bytes(),
    )
    .unwrap();
    std::fs::write(p.join("small.nii"), RawNifti::u8([40, 40, 1], big(&[])).bytes()).unwrap();
    let (gt, pr) = (g.display().to_string(), p.display().to_string());
    let doc = score(&gt, &pr, &["--preset", "brats2023", "--region", "all=1"]);
    let c = &doc["models"][0]["cases"][0];
    assert_eq!((c["gt"].as_u64(), c["dice"].as_f64()), (Some(0), Some(1.0)), "{c}");
    // Options the rule would not use are refused rather than silently ignored.
    for extra in [
        &["--match", "iou:0.5"][..],
        &["--strict"],
        &["--unmatched-overlap", "ignore"],
    ] {
        let o = bin()
            .args(["score", "--gt", &gt, "--pred", &pr, "--preset", "brats2023"])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{extra:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("no effect"));
    }
    let o = bin()
        .args([
            "score", "--gt", &gt, "--pred", &pr, "--assign", "anima", "--match", "iou:0.2",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    // One region still names itself in the CSVs' model column.
    let out = d.path().join("out");
    bin()
        .args([
            "score", "--device", "cpu", "--gt", &gt, "--pred", &pr, "--labels", "1", "--out",
        ])
        .arg(&out)
        .assert()
        .success();
    let cases = std::fs::read_to_string(out.join("cases.csv")).unwrap();
    assert!(
        cases.starts_with("model,case,") && cases.contains(":1,small,"),
        "{cases}"
    );
}
