//! `lesioneval run` end to end: the blob-detector example reproduces the lesion
//! counts of examples/infer/README.md (FP lesions fall as overlap and gaussian
//! blending are switched on), and real spinal-cord MRI (SCT) goes through
//! infer → score in one command.

mod common;

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str], images: &Path, gt: &Path, out: &Path) -> serde_json::Value {
    assert_cmd::Command::cargo_bin("lesioneval")
        .unwrap()
        .arg("run")
        .arg("--model")
        .arg(root().join("examples/infer/blob_detector.onnx"))
        .arg("--images")
        .arg(images)
        .arg("--gt")
        .arg(gt)
        .arg("--out")
        .arg(out)
        .args(["--device", "cpu", "--bootstrap", "0"])
        .args(args)
        .assert()
        .success();
    serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap()
}

#[test]
fn example_fp_lesions_fall_with_overlap_and_gaussian_blending() {
    let dir = tempfile::tempdir().unwrap();
    let images = root().join("examples/infer/imagesTs");
    let gt = root().join("examples/infer/labelsTs");
    // (overlap, blend) → (TP, FP, FN), as in examples/infer/README.md and expected.json.
    for (overlap, blend, want) in [
        ("0", "constant", (39, 90, 0)),
        ("0.25", "constant", (39, 2, 0)),
        ("0.5", "gaussian", (39, 0, 0)),
    ] {
        let out = dir.path().join(format!("{overlap}-{blend}"));
        // --threads once: `run` infers, then scores, and builds the pool only once.
        let threads: &[&str] = if overlap == "0.5" { &["--threads", "2"] } else { &[] };
        let r = run(
            &[
                &["--patch", "48,48,48", "--overlap", overlap, "--blend", blend],
                threads,
            ]
            .concat(),
            &images,
            &gt,
            &out,
        );
        let t = &r["total"];
        let got = (
            t["tp"].as_u64().unwrap(),
            t["fp"].as_u64().unwrap(),
            t["fn"].as_u64().unwrap(),
        );
        assert_eq!(got, want, "overlap {overlap}, {blend}");
        assert_eq!(t["gt"], 39);
        // The probability maps are kept next to the tables and scored with FROC.
        assert!(out.join("probs/case_001.nii.gz").is_file());
        // …and the figures are drawn next to them.
        assert!(
            out.join("plots").read_dir().unwrap().count() > 0,
            "no figures in {}",
            out.display()
        );
        assert!(r["detection"]["froc"].is_array() || r["detection"].is_object());
    }
}

#[test]
fn runs_on_real_spinal_cord_mri() {
    let dir = tempfile::tempdir().unwrap();
    // t2_fake_lesion (99×99×29, one synthetic lesion) against its lesion mask, and plain t2 against
    // the cord segmentation: the short axis is padded up to the patch and cropped back.
    for (image, gt) in [
        ("t2_fake_lesion.nii.gz", "t2_fake_lesion_lesion_seg.nii.gz"),
        ("t2.nii.gz", "t2_seg-manual.nii.gz"),
    ] {
        let case = dir.path().join(image.trim_end_matches(".nii.gz"));
        std::fs::create_dir_all(case.join("img")).unwrap();
        std::fs::create_dir_all(case.join("gt")).unwrap();
        std::fs::copy(root().join("fixtures/sct").join(image), case.join("img/case.nii.gz")).unwrap();
        std::fs::copy(root().join("fixtures/sct").join(gt), case.join("gt/case.nii.gz")).unwrap();
        let r = run(
            &["--patch", "48,48,32"],
            &case.join("img"),
            &case.join("gt"),
            &case.join("out"),
        );
        let prob = lesioneval::io::read_f32(&case.join("out/probs/case.nii.gz")).unwrap();
        let img = lesioneval::io::read_f32(&case.join("img/case.nii.gz")).unwrap();
        assert!(prob.geometry.mismatch(&img.geometry, 1e-6).is_none(), "{image}");
        assert!(prob.data.iter().all(|p| (0.0..=1.0).contains(p)), "{image}");
        let t = &r["total"];
        assert_eq!(
            t["tp"].as_u64().unwrap() + t["fn"].as_u64().unwrap(),
            t["gt"].as_u64().unwrap()
        );
        if image == "t2_fake_lesion.nii.gz" {
            assert_eq!(t["gt"], 1);
            assert_eq!(t["tp"], 1, "the bright synthetic lesion is found");
        }
    }
}
