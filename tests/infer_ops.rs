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
