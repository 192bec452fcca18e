//! BraTS 2023 lesion-wise numbers equal the reference computed with DeepMind's surface-distance
//! (fixtures/brats, made by scripts/crosscheck_brats.py): the surfel area table at several spacings,
//! and counts, lesion-wise Dice and HD95 per case and region, and every kept GT lesion's Dice and HD95.

use assert_cmd::Command;
use serde_json::Value;
use std::collections::BTreeMap;

fn load(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The numbers of a JSON array, through `get` (as_f64, as_u64).
fn numbers<T>(v: &Value, get: impl Fn(&Value) -> Option<T>) -> Vec<T> {
    v.as_array().unwrap().iter().map(|x| get(x).unwrap()).collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[test]
fn surfel_area_table_equals_deepminds() {
    let doc = load("fixtures/brats/surfel_areas.json");
    let tables = doc["tables"].as_array().unwrap();
    assert!(tables.len() >= 5);
    for t in tables {
        let sp = numbers(&t["spacing"], Value::as_f64);
        let ours = lesioneval::metrics::surfels::area_table([sp[0], sp[1], sp[2]]);
        for (code, want) in t["areas"].as_array().unwrap().iter().enumerate() {
            let want = want.as_f64().unwrap();
            assert!(
                (ours[code] - want).abs() <= 1e-12 * want.max(1.0),
                "spacing {sp:?}, code {code}: {} vs DeepMind {want}",
                ours[code]
            );
        }
    }
}

#[test]
fn brats2023_preset_equals_the_brats_lesion_wise_reference() {
    let expected = load("fixtures/brats/expected.json");
    let out = tempfile::tempdir().unwrap();
    let run = Command::cargo_bin("lesioneval")
        .unwrap()
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .args(["score", "--device", "cpu", "--preset", "brats2023"])
        .args(["--gt", "fixtures/brats/cases/gt", "--pred", "fixtures/brats/cases/pred"])
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let doc = load(out.path().join("results.json").to_str().unwrap());
    assert_eq!(doc["config"]["surface"], "surfels");

    // Per case and region: counts and the two lesion-wise averages.
    let mut checked = 0;
    for m in doc["models"].as_array().unwrap() {
        let region = m["region"].as_str().unwrap();
        for c in m["cases"].as_array().unwrap() {
            let name = c["case"].as_str().unwrap();
            let e = &expected["cases"][name]["regions"][region];
            let at = format!("{name} {region}");
            assert_eq!(c["tp"], e["num_tp"], "{at}: TP");
            assert_eq!(c["fn"], e["num_fn"], "{at}: FN");
            assert_eq!(c["fp"], e["num_fp"], "{at}: FP");
            for k in ["lesion_wise_dice", "lesion_wise_hd95"] {
                let (ours, want) = (c["preset_metrics"][k].as_f64().unwrap(), e[k].as_f64().unwrap());
                assert!(close(ours, want), "{at}: {k} {ours} vs BraTS {want}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 3 * expected["cases"].as_object().unwrap().len());

    // Per kept GT lesion (ours: ids by first voxel; the reference: sorted by first voxel in
    // i-fastest order): detected or not, size, Dice and HD95.
    let mut rows: BTreeMap<(String, String), Vec<csv::StringRecord>> = BTreeMap::new();
    let mut rd = csv::Reader::from_path(out.path().join("lesions.csv")).unwrap();
    let h = rd.headers().unwrap().clone();
    let col = |name: &str| h.iter().position(|c| c == name).unwrap();
    let (model, case, side, status) = (col("model"), col("case"), col("side"), col("status"));
    for r in rd.records() {
        let r = r.unwrap();
        if &r[side] == "gt" && &r[status] != "Ignored" {
            let region = r[model].rsplit(':').next().unwrap().to_string();
            rows.entry((r[case].to_string(), region)).or_default().push(r);
        }
    }
    let mut lesions = 0;
    for (name, c) in expected["cases"].as_object().unwrap() {
        for (region, e) in c["regions"].as_object().unwrap() {
            let mut kept = e["kept_lesions"].as_array().unwrap().clone();
            let first = |l: &Value| -> Vec<u64> {
                let v = numbers(&l["first_voxel"], Value::as_u64);
                vec![v[2], v[1], v[0]]
            };
            kept.sort_by_key(first);
            let ours = rows.remove(&(name.clone(), region.clone())).unwrap_or_default();
            assert_eq!(ours.len(), kept.len(), "{name} {region}: kept GT lesions");
            for (r, l) in ours.iter().zip(&kept) {
                let at = format!("{name} {region} GT lesion {}", &r[col("id")]);
                assert_eq!(
                    r[col("voxels")].parse::<u64>().unwrap(),
                    l["voxels"].as_u64().unwrap(),
                    "{at}"
                );
                let detected = l["detected"].as_bool().unwrap();
                assert_eq!(&r[status] == "TP", detected, "{at}: detected");
                if detected {
                    let dice: f64 = r[col("dice")].parse().unwrap();
                    let hd: f64 = r[col("hd95_mm")].parse().unwrap();
                    assert!(
                        close(dice, l["dice"].as_f64().unwrap()),
                        "{at}: Dice {dice} vs {}",
                        l["dice"]
                    );
                    assert!(
                        close(hd, l["hd95"].as_f64().unwrap()),
                        "{at}: HD95 {hd} vs {}",
                        l["hd95"]
                    );
                }
                lesions += 1;
            }
        }
    }
    assert!(
        rows.is_empty(),
        "lesions the reference does not have: {:?}",
        rows.keys()
    );
    assert!(lesions >= 60, "{lesions}");
}

#[test]
fn surface_rule_is_an_ordinary_option() {
    // --surface voxels under the preset gives MONAI-style HD95, which differs from BraTS' on these
    // cases; the config records only the non-default rule.
    let run = |extra: &[&str]| -> Value {
        let out = Command::cargo_bin("lesioneval")
            .unwrap()
            .env("XDG_RUNTIME_DIR", std::env::temp_dir())
            .args(["score", "--device", "cpu", "--json", "-"])
            .args(["--gt", "fixtures/brats/cases/gt/shifted.nii.gz"])
            .args(["--pred", "fixtures/brats/cases/pred/shifted.nii.gz"])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let voxels = run(&["--preset", "brats2023", "--surface", "voxels", "--region", "WT=1,2,3"]);
    assert!(voxels["config"].get("surface").is_none());
    let surfels = run(&["--preset", "brats2023", "--region", "WT=1,2,3"]);
    let hd = |d: &Value| {
        d["models"][0]["cases"][0]["preset_metrics"]["lesion_wise_hd95"]
            .as_f64()
            .unwrap()
    };
    assert_ne!(hd(&voxels), hd(&surfels));
    let plain = run(&["--surface", "surfels", "--match", "any"]);
    assert_eq!(plain["config"]["surface"], "surfels");
    let bad = Command::cargo_bin("lesioneval")
        .unwrap()
        .args(["score", "--gt", "x", "--pred", "y", "--surface", "mesh"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("voxels or surfels"));
}
