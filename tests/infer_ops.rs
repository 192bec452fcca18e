//! Every ONNX operator we support, on the CPU and the GPU, against onnxruntime.
//! Fixtures: fixtures/onnx/ops (scripts/make_onnx_fixtures.py), one small model
//! per case with odd sizes so borders and padding matter.

mod common;

use lesioneval::infer::{Backend, Session};
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/onnx/ops")
}

#[derive(serde::Deserialize)]
struct Case {
    case: String,
    model: String,
    inputs: Vec<String>,
    output: String,
    op: String,
}

fn cases() -> Vec<Case> {
    serde_json::from_str(&std::fs::read_to_string(dir().join("manifest.json")).unwrap()).unwrap()
}

fn check(backend: Backend) {
    let mut ops = std::collections::BTreeSet::new();
    let mut failures = Vec::new();
    for c in cases() {
        let s = Session::load(&dir().join(&c.model), backend).unwrap_or_else(|e| panic!("{}: {e}", c.case));
        let ins: Vec<_> = c.inputs.iter().map(|f| common::read_npy(&dir().join(f))).collect();
        let refs: Vec<_> = ins.iter().collect();
        let want = common::read_npy(&dir().join(&c.output));
        let got = s.run(&refs).unwrap_or_else(|e| panic!("{}: {e}", c.case));
        if got.shape != want.shape {
            failures.push(format!("{}: shape {:?} != {:?}", c.case, got.shape, want.shape));
            continue;
        }
        let scale = want.data.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        let d = common::max_abs_diff(&got, &want);
        if d > 1e-5 * scale {
            failures.push(format!("{}: max |diff| {d:e} (scale {scale})", c.case));
        }
        ops.insert(c.op);
    }
    assert!(failures.is_empty(), "{backend:?}:\n{}", failures.join("\n"));
    for op in [
        "Conv",
        "ConvTranspose",
        "BatchNormalization",
        "InstanceNormalization",
        "Relu",
        "LeakyRelu",
        "PRelu",
        "Sigmoid",
        "Softmax",
        "MaxPool",
        "AveragePool",
        "Resize",
        "Upsample",
        "Concat",
        "Add",
        "Mul",
        "Transpose",
        "Reshape",
        "Identity",
        "Dropout",
        "Constant",
    ] {
        assert!(ops.contains(op), "no fixture exercises {op}: {ops:?}");
    }
}

#[test]
fn every_op_on_cpu_matches_onnxruntime() {
    check(Backend::Cpu);
}

#[test]
fn every_op_on_gpu_matches_onnxruntime() {
    if !common::gpu_available() {
        return;
    }
    check(Backend::Gpu);
}

#[derive(serde::Deserialize)]
struct ErrorCase {
    file: String,
    must_contain: Vec<String>,
}

/// Unsupported operators, attributes and files are refused with the file, the node, the operator
/// and the attribute named (fixtures/onnx/errors, scripts/make_onnx_error_fixtures.py).
#[test]
fn unsupported_models_are_refused_with_node_op_and_attribute() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/onnx/errors");
    let cases: Vec<ErrorCase> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert!(cases.len() >= 7);
    for c in cases {
        let e = Session::load(&dir.join(&c.file), Backend::Cpu)
            .err()
            .unwrap_or_else(|| panic!("{} loaded", c.file))
            .to_string();
        assert!(e.contains(&c.file), "{e}");
        for m in &c.must_contain {
            assert!(e.contains(m.as_str()), "{}: {e:?} lacks {m:?}", c.file);
        }
    }
    // Through the CLI: exit code 2, the message on stderr, nothing written.
    let out = tempfile::tempdir().unwrap();
    let images = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/onnx/sw/nnunet_gauss_o50.image.nii.gz");
    let res = assert_cmd::Command::cargo_bin("lesioneval")
        .unwrap()
        .args(["infer", "--device", "cpu", "--patch", "8", "--model"])
        .arg(dir.join("grouped_conv.onnx"))
        .arg("--images")
        .arg(&images)
        .arg("--out")
        .arg(out.path().join("probs"))
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&res.get_output().stderr).to_string();
    assert!(
        stderr.contains("grouped_conv.onnx") && stderr.contains("attribute group"),
        "{stderr}"
    );
    assert!(!out.path().join("probs").exists());
}

/// `infer --out` pointing at the images: refused before anything is written,
/// and the image is left as it was.
#[test]
fn output_folder_that_would_replace_the_images_is_refused() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let d = tempfile::tempdir().unwrap();
    let image = d.path().join("case1.nii.gz");
    std::fs::copy(root.join("fixtures/onnx/sw/nnunet_gauss_o50.image.nii.gz"), &image).unwrap();
    let before = std::fs::read(&image).unwrap();
    for images in [d.path(), image.as_path()] {
        let res = assert_cmd::Command::cargo_bin("lesioneval")
            .unwrap()
            .args(["infer", "--device", "cpu", "--patch", "8", "--model"])
            .arg(root.join("fixtures/onnx/models/nnunet_like.onnx"))
            .arg("--images")
            .arg(images)
            .arg("--out")
            .arg(d.path())
            .assert()
            .code(2);
        let stderr = String::from_utf8_lossy(&res.get_output().stderr).to_string();
        assert!(stderr.contains("give --out another folder"), "{stderr}");
    }
    assert_eq!(std::fs::read(&image).unwrap(), before);
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
}
