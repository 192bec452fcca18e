//! `score --prob` end to end: detection metrics equal picai_eval 1.4.13 on the
//! committed fixtures (scripts/crosscheck_froc.py), outputs are complete and
//! byte-identical across runs, bad maps fail cleanly, and every figure renders.

mod common;

use assert_cmd::Command;
use common::{RawNifti, fixtures, root};
use serde_json::Value;
use std::path::Path;

fn bin() -> Command {
    let mut c = Command::cargo_bin("lesioneval").unwrap();
    c.env("XDG_RUNTIME_DIR", std::env::temp_dir());
    c
}

fn froc_dirs() -> (String, String) {
    let d = fixtures().join("froc/cases");
    (d.join("gt").display().to_string(), d.join("prob").display().to_string())
}

fn json_of(args: &[&str]) -> Value {
    let out = bin()
        .args(args)
        .args(["--json", "-", "--device", "cpu"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// picai's numbers: "inf"/"nan" strings, or plain numbers.
fn num(v: &Value) -> f64 {
    match v {
        Value::String(s) if s == "inf" => f64::INFINITY,
        Value::String(s) if s == "nan" => f64::NAN,
        Value::Null => f64::NAN,
        _ => v.as_f64().unwrap(),
    }
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= tol
}

#[test]
fn score_prob_equals_picai_eval_end_to_end() {
    let (gt, prob) = froc_dirs();
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("froc/metrics.json")).unwrap()).unwrap();
    let runs = doc["runs"].as_object().unwrap();
    assert_eq!(runs.len(), 6);
    for (name, want) in runs {
        let mut args = vec!["score", "--gt", &gt, "--prob", &prob, "--bootstrap", "0"];
        match want["mode"].as_str().unwrap() {
            // picai's float threshold keeps components of more than 10 voxels.
            "0.5" => args.extend(["--candidates", "threshold:0.5", "--candidate-min-voxels", "11"]),
            m => args.extend(["--candidates", m]),
        }
        if !want["allow_unmatched_candidates_with_minimal_overlap"]
            .as_bool()
            .unwrap()
        {
            args.push("--count-unmatched-overlap");
        }
        let got = json_of(&args);
        let d = &got["detection"];
        assert_eq!(d["num_lesions"], want["num_lesions"], "{name}");
        assert_eq!(d["num_cases"], want["num_cases"], "{name}");
        let froc = d["froc"].as_array().unwrap();
        let tpr = want["lesion_TPR"].as_array().unwrap();
        let fpr = want["lesion_FPR"].as_array().unwrap();
        assert_eq!(froc.len(), tpr.len(), "{name}: FROC points");
        for (i, p) in froc.iter().enumerate() {
            assert!(close(num(&p["sensitivity"]), num(&tpr[i]), 0.0), "{name} TPR[{i}]");
            // JSON null = ∞ (picai's last point).
            let f = num(&p["fp_per_case"]);
            let f = if f.is_nan() { f64::INFINITY } else { f };
            assert!(close(f, num(&fpr[i]), 0.0), "{name} FPR[{i}]: {f} vs {}", fpr[i]);
        }
        for (ours, theirs) in [
            ("ap", "AP"),
            ("auroc", "auroc"),
            ("ranking_score", "score"),
            ("cpm", "cpm_derived"),
        ] {
            let (g, w) = (num(&d[ours]), num(&want[theirs]));
            assert!(close(g, w, 1e-9), "{name} {ours}: {g} vs {w}");
        }
        for s in d["sensitivity_at"].as_array().unwrap() {
            let x = s["fp_per_case"].as_f64().unwrap();
            let w = &want["sensitivity_at_fp_per_case"][format!("{x:?}")];
            assert!(close(num(&s["sensitivity"]), num(w), 0.0), "{name} sensitivity at {x}");
        }
        assert_eq!(got["config"]["prob"]["bootstrap"], 0);
    }
}

#[test]
fn prob_outputs_are_complete_and_reproducible() {
    let (gt, prob) = froc_dirs();
    let d = tempfile::tempdir().unwrap();
    let run = |out: &Path, seed: &str| {
        let o = bin()
            .args([
                "score",
                "--gt",
                &gt,
                "--prob",
                &prob,
                "--device",
                "cpu",
                "--bootstrap",
                "200",
            ])
            .args(["--seed", seed, "--out"])
            .arg(out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let (a, b, c) = (d.path().join("a"), d.path().join("b"), d.path().join("c"));
    let table = run(&a, "7");
    assert!(table.contains("| AP ") && table.contains("CI 95%"), "{table}");
    run(&b, "7");
    run(&c, "8");
    let files = [
        "results.json",
        "cases.csv",
        "lesions.csv",
        "detection.csv",
        "froc.csv",
        "thresholds.csv",
        "candidates.csv",
    ];
    for f in files {
        let x = std::fs::read(a.join(f)).unwrap();
        assert!(!x.is_empty(), "{f} is empty");
        assert!(
            x == std::fs::read(b.join(f)).unwrap(),
            "{f} differs between two identical runs"
        );
    }
    // Another seed draws other resamples: the intervals change, the point estimates do not.
    let read = |p: &Path| -> Value { serde_json::from_slice(&std::fs::read(p.join("results.json")).unwrap()).unwrap() };
    let (ja, jc) = (read(&a), read(&c));
    assert_eq!(ja["detection"]["ap"], jc["detection"]["ap"]);
    assert_ne!(ja["detection"]["bootstrap"]["ap"], jc["detection"]["bootstrap"]["ap"]);
    let band = ja["detection"]["bootstrap"]["froc_band"].as_array().unwrap();
    assert_eq!(band.len(), 33);
    // thresholds.csv: one row per operating point, F1 as in the JSON's best_f1.
    let best = &ja["detection"]["best_f1"];
    let csv = std::fs::read_to_string(a.join("thresholds.csv")).unwrap();
    assert!(csv.starts_with("threshold,tp,fp,fn,precision,recall,f1\n"));
    let best_row = format!(
        "{},{},{},{},",
        best["threshold"].as_f64().unwrap(),
        best["tp"],
        best["fp"],
        best["fn"]
    );
    assert!(csv.contains(&best_row), "{best_row} not in thresholds.csv");
}

#[test]
fn masks_from_pred_or_from_the_thresholded_map() {
    // The example maps are ≥ 0.5 exactly on the model's mask, so both routes give the same lesion table.
    let ex = root().join("examples/data");
    let gt = ex.join("labelsTs").display().to_string();
    let pred = ex.join("focal_loss").display().to_string();
    let prob = ex.join("focal_loss_prob").display().to_string();
    let with_pred = json_of(&[
        "score",
        "--gt",
        &gt,
        "--pred",
        &pred,
        "--prob",
        &prob,
        "--bootstrap",
        "0",
    ]);
    let from_map = json_of(&["score", "--gt", &gt, "--prob", &prob, "--bootstrap", "0"]);
    let masks_only = json_of(&["score", "--gt", &gt, "--pred", &pred]);
    assert_eq!(with_pred["total"], masks_only["total"]);
    assert_eq!(from_map["total"], masks_only["total"]);
    assert_eq!(with_pred["detection"], from_map["detection"]);
    assert_eq!(from_map["config"]["prob"]["mask_threshold"], 0.5);
    assert_eq!(with_pred["config"]["prob"]["mask_threshold"], Value::Null);
    assert!(masks_only["config"].get("prob").is_none());
    // Mean scoring changes confidences, never which lesions there are.
    let mean = json_of(&[
        "score",
        "--gt",
        &gt,
        "--prob",
        &prob,
        "--bootstrap",
        "0",
        "--score",
        "mean",
    ]);
    assert_eq!(mean["detection"]["num_lesions"], from_map["detection"]["num_lesions"]);
    assert_ne!(mean["detection"]["ap"], from_map["detection"]["ap"]);
    // CSV on stdout is one table: every record has the header's fields.
    let out = bin()
        .args([
            "score",
            "--gt",
            &gt,
            "--prob",
            &prob,
            "--bootstrap",
            "0",
            "--format",
            "csv",
        ])
        .args(["--device", "cpu"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut r = csv::Reader::from_reader(out.stdout.as_slice());
    let fields = r.headers().unwrap().len();
    let rows: Vec<_> = r.records().map(|x| x.unwrap()).collect();
    assert!(rows.len() >= 8 && rows.iter().all(|x| x.len() == fields), "{rows:?}");
}

#[test]
fn bad_probability_maps_fail_with_the_file_named() {
    let d = tempfile::tempdir().unwrap();
    let (gt_dir, prob_dir) = (d.path().join("gt"), d.path().join("prob"));
    std::fs::create_dir_all(&gt_dir).unwrap();
    std::fs::create_dir_all(&prob_dir).unwrap();
    let shape = [4, 4, 2];
    let mut mask = vec![0u8; 32];
    mask[5] = 1;
    std::fs::write(gt_dir.join("a.nii"), RawNifti::u8(shape, mask).bytes()).unwrap();
    let out = d.path().join("out");
    for (what, value, expect) in [
        ("above one", 1.5f32, "not within [0, 1]"),
        ("NaN", f32::NAN, "not within [0, 1]"),
        ("negative", -0.1, "not within [0, 1]"),
    ] {
        let mut p = vec![0f32; 32];
        p[9] = value;
        std::fs::write(prob_dir.join("a.nii"), RawNifti::f32(shape, &p).bytes()).unwrap();
        let o = bin()
            .args(["score", "--device", "cpu", "--gt"])
            .arg(&gt_dir)
            .arg("--prob")
            .arg(&prob_dir)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{what}: {e}");
        assert!(e.contains("a.nii") && e.contains(expect), "{what}: {e}");
        assert!(!e.contains("panicked"), "{e}");
        assert!(!out.exists(), "{what}: no output may be written");
    }
    // A map on another grid than its GT.
    std::fs::write(prob_dir.join("a.nii"), RawNifti::f32([4, 4, 3], &[0.0; 48]).bytes()).unwrap();
    let o = bin()
        .args(["score", "--device", "cpu", "--gt"])
        .arg(&gt_dir)
        .arg("--prob")
        .arg(&prob_dir)
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("a.nii") && e.contains("shape"), "{e}");
    // Neither --pred nor --prob.
    let o = bin().args(["score", "--gt"]).arg(&gt_dir).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}

/// A PNG's size and how many distinct colours it uses.
fn png_stats(path: &Path) -> (u32, u32, usize, f64) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let px = &buf[..info.buffer_size()];
    let mut colours: Vec<[u8; 3]> = px.chunks(3).map(|c| [c[0], c[1], c[2]]).collect();
    let non_white = colours.iter().filter(|c| **c != [255, 255, 255]).count() as f64 / colours.len() as f64;
    colours.sort_unstable();
    colours.dedup();
    (info.width, info.height, colours.len(), non_white)
}

#[test]
fn every_figure_renders_as_svg_and_png_without_system_fonts() {
    let ex = root().join("examples/data");
    let d = tempfile::tempdir().unwrap();
    let gt = ex.join("labelsTs");
    let mut results = Vec::new();
    for m in ["dice_loss", "focal_loss"] {
        let out = d.path().join(m);
        let o = bin()
            .args(["score", "--device", "cpu", "--bootstrap", "100", "--gt"])
            .arg(&gt)
            .arg("--pred")
            .arg(ex.join(m))
            .arg("--prob")
            .arg(ex.join(format!("{m}_prob")))
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        results.push(out.join("results.json"));
    }
    let figs = d.path().join("figs");
    // No fontconfig, no font path: the font is embedded.
    let o = bin()
        .env("FONTCONFIG_FILE", "/nonexistent")
        .arg("plot")
        .args(&results)
        .args(["--dpi", "120", "--out"])
        .arg(&figs)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stems = [
        "counts",
        "lesion_counts",
        "sensitivity_by_size",
        "froc",
        "pr",
        "thresholds_dice_loss",
        "thresholds_focal_loss",
    ];
    for stem in stems {
        let svg = std::fs::read_to_string(figs.join(format!("{stem}.svg"))).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{stem}.svg"
        );
        assert!(svg.matches("<text").count() >= 8, "{stem}.svg has too little text");
        assert!(svg.len() > 4000, "{stem}.svg is trivial");
        let (w, h, colours, non_white) = png_stats(&figs.join(format!("{stem}.png")));
        assert_eq!((w, h), (768, 576), "{stem}.png size at 120 dpi");
        assert!(colours > 16, "{stem}.png uses {colours} colours");
        assert!(non_white > 0.02, "{stem}.png is nearly blank ({non_white})");
    }
    let mut names: Vec<String> = std::fs::read_dir(&figs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2 * stems.len(), "{names:?}");
    // The same figures again are byte-identical.
    let again = d.path().join("again");
    bin()
        .arg("plot")
        .args(&results)
        .args(["--dpi", "120", "--out"])
        .arg(&again)
        .assert()
        .success();
    for n in &names {
        assert!(
            std::fs::read(figs.join(n)).unwrap() == std::fs::read(again.join(n)).unwrap(),
            "{n}"
        );
    }
}

#[test]
fn plots_of_mask_only_runs_and_the_plots_flag() {
    let ex = root().join("examples/data");
    let d = tempfile::tempdir().unwrap();
    let figs = d.path().join("figs");
    // The folder holds an earlier probability-map run's figures, in PNG as
    // well, and two files of the user's; another folder has no `counts`.
    let user = d.path().join("user");
    for dir in [&figs, &user] {
        std::fs::create_dir_all(dir).unwrap();
        for name in [
            "froc.svg",
            "pr.png",
            "thresholds_old.svg",
            "notes.txt",
            "froc_notes.svg",
        ] {
            std::fs::write(dir.join(name), "x").unwrap();
        }
    }
    std::fs::write(figs.join("counts.png"), "x").unwrap();
    let list = common::entries;
    for dir in [&figs, &user] {
        let o = bin()
            .args(["compare", "--device", "cpu", "--gt"])
            .arg(ex.join("labelsTs"))
            .arg(ex.join("dice_loss"))
            .arg(ex.join("tversky_loss"))
            .args(["--plot-format", "svg", "--size-bins", "0,50,200,inf", "--plots"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // A model keeps its colour where only some models are drawn: the
    // probability-map run, second of two, is vermillion in FROC and PR too.
    let mixed = d.path().join("mixed");
    let prob_run = d.path().join("prob_run");
    let o = bin()
        .args(["score", "--device", "cpu", "--bootstrap", "0", "--gt"])
        .arg(ex.join("labelsTs"))
        .arg("--prob")
        .arg(ex.join("dice_loss_prob"))
        .arg("--out")
        .arg(&prob_run)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let masks_run = d.path().join("masks.json");
    let o = bin()
        .args(["score", "--device", "cpu", "--gt"])
        .arg(ex.join("labelsTs"))
        .arg("--pred")
        .arg(ex.join("tversky_loss"))
        .arg("--json")
        .arg(&masks_run)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = bin()
        .arg("plot")
        .arg(&masks_run)
        .arg(&prob_run)
        .args(["--format", "svg", "--out"])
        .arg(&mixed)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for fig in ["lesion_counts", "froc", "pr"] {
        let svg = std::fs::read_to_string(mixed.join(format!("{fig}.svg"))).unwrap();
        assert!(svg.contains("#D55E00"), "{fig}: the second model's vermillion");
        if fig != "lesion_counts" {
            assert!(!svg.contains("#0072B2"), "{fig}: the first model's blue is not reused");
        }
    }
    // No probability maps: no FROC, PR or threshold figures, and the earlier
    // run's are gone; the user's files stay.
    assert_eq!(
        list(&figs),
        [
            "counts.svg",
            "froc_notes.svg",
            "lesion_counts.svg",
            "notes.txt",
            "sensitivity_by_size.svg"
        ]
    );
    // Not a figure folder before: nothing is removed.
    assert_eq!(
        list(&user),
        [
            "counts.svg",
            "froc.svg",
            "froc_notes.svg",
            "lesion_counts.svg",
            "notes.txt",
            "pr.png",
            "sensitivity_by_size.svg",
            "thresholds_old.svg"
        ]
    );
    let size = std::fs::read_to_string(figs.join("sensitivity_by_size.svg")).unwrap();
    assert!(
        size.contains("50–200") && size.contains("200–∞"),
        "user bins label the axis"
    );
    // Bad options are refused before any work.
    let o = bin()
        .args(["plot", "x.json", "--out", "f", "--format", "jpg"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = bin()
        .arg("plot")
        .arg(d.path().join("missing.json"))
        .args(["--out"])
        .arg(&figs)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing.json"));
}

#[test]
fn a_missing_map_is_reported_missing() {
    // --pred has every case, --prob lacks one: with --missing empty that case is listed as
    // missing and scored without candidates.
    let ex = root().join("examples/data");
    let d = tempfile::tempdir().unwrap();
    let probs = d.path().join("probs");
    std::fs::create_dir_all(&probs).unwrap();
    for e in std::fs::read_dir(ex.join("dice_loss_prob")).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "ms_003.nii.gz" {
            std::fs::copy(e.path(), probs.join(e.file_name())).unwrap();
        }
    }
    let gt = ex.join("labelsTs").display().to_string();
    let pred = ex.join("dice_loss").display().to_string();
    let prob = probs.display().to_string();
    let o = bin()
        .args([
            "score",
            "--device",
            "cpu",
            "--gt",
            &gt,
            "--pred",
            &pred,
            "--prob",
            &prob,
            "--bootstrap",
            "0",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "a missing map is an error by default");
    assert!(String::from_utf8_lossy(&o.stderr).contains("ms_003"));
    let doc = json_of(&[
        "score",
        "--gt",
        &gt,
        "--pred",
        &pred,
        "--prob",
        &prob,
        "--bootstrap",
        "0",
        "--missing",
        "empty",
    ]);
    assert_eq!(doc["missing"], serde_json::json!(["ms_003"]));
    let c = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["case"] == "ms_003")
        .unwrap();
    assert_eq!(c["missing_prediction"], true);
    let det = doc["detection"]["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["case"] == "ms_003")
        .unwrap();
    assert_eq!(det["score"], 0.0);
}

/// `path`'s 3-D float32 map p as a 4-D file holding 1 − p and p (a two-class softmax, as MONAI saves it).
fn as_two_channels(path: &Path, out: &Path) {
    use std::io::{Read, Write};
    let mut bytes = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    let at = |o: usize| i16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    assert_eq!(at(70), 16, "float32 maps");
    let n = at(42) * at(44) * at(46);
    let start = f32::from_le_bytes(bytes[108..112].try_into().unwrap()) as usize;
    let p = bytes[start..start + 4 * n].to_vec();
    let mut file = bytes[..start].to_vec();
    file[40..42].copy_from_slice(&4i16.to_le_bytes());
    file[48..50].copy_from_slice(&2i16.to_le_bytes());
    for c in p.chunks_exact(4) {
        file.extend((1.0 - f32::from_le_bytes(c.try_into().unwrap())).to_le_bytes());
    }
    file.extend(&p);
    let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(out).unwrap(), flate2::Compression::fast());
    enc.write_all(&file).unwrap();
    enc.finish().unwrap();
}

#[test]
fn a_channel_of_a_multi_class_map_scores_as_that_map() {
    let (gt, prob) = froc_dirs();
    let d = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&prob).unwrap() {
        let e = e.unwrap();
        as_two_channels(&e.path(), &d.path().join(e.file_name()));
    }
    let four = d.path().display().to_string();
    let mut want = json_of(&["score", "--gt", &gt, "--prob", &prob, "--bootstrap", "0"]);
    let mut got = json_of(&[
        "score",
        "--gt",
        &gt,
        "--prob",
        &four,
        "--prob-channel",
        "1",
        "--bootstrap",
        "0",
    ]);
    assert_eq!(got["config"]["prob"]["channel"], 1, "recorded");
    for doc in [&mut want, &mut got] {
        doc["config"]["prob"].as_object_mut().unwrap().remove("channel");
        doc.as_object_mut().unwrap().remove("pred");
    }
    assert_eq!(got, want, "channel 1 scores as the 3-D map it holds");
    // Without a channel, or with one the file lacks, the file is named and the fix said.
    for (extra, needle) in [(None, "--prob-channel"), (Some("2"), "has 2 channel(s)")] {
        let mut c = bin();
        c.args(["score", "--gt", &gt, "--prob", &four, "--device", "cpu"]);
        if let Some(k) = extra {
            c.args(["--prob-channel", k]);
        }
        let o = c.output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(".nii.gz") && err.contains(needle), "{err}");
    }
}
