//! Whole models and the sliding window against onnxruntime + a numpy
//! implementation of MONAI's sliding_window_inference (verified against MONAI
//! 1.6.1 itself; fixtures/onnx/sw/README.md). Two random-weight 3-D U-Nets:
//! a Keras-style NDHWC one (BatchNorm, ReLU, ConvTranspose, softmax inside)
//! and an nnU-Net-style NCDHW one (InstanceNorm, LeakyReLU, strided convs,
//! 1-channel logits). Probabilities must agree within 1e-4 on CPU and GPU.

mod common;

use lesioneval::infer::window::{
    Activation, Blend, BlendOn, Layout, Normalize, WindowConfig, foreground, sliding_window,
};
use lesioneval::infer::{Backend, Session};
use std::path::{Path, PathBuf};

fn fx(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/onnx").join(p)
}

fn backends() -> Vec<Backend> {
    let mut b = vec![Backend::Cpu];
    if common::gpu_available() {
        b.push(Backend::Gpu);
    }
    b
}

#[test]
fn unets_match_onnxruntime_on_a_batch_of_patches() {
    for backend in backends() {
        for m in ["keras_unet", "nnunet_like"] {
            let s = Session::load(&fx(&format!("models/{m}.onnx")), backend).unwrap();
            let x = common::read_npy(&fx(&format!("models/{m}.patch_in.npy")));
            let want = common::read_npy(&fx(&format!("models/{m}.patch_out.npy")));
            let got = s.run(&[&x]).unwrap();
            let d = common::max_abs_diff(&got, &want);
            assert!(d <= 1e-4, "{m} on {backend:?}: max |diff| {d}");
        }
    }
}

#[test]
fn keras_model_is_recognised_as_ending_in_softmax_and_bn_is_folded() {
    let s = Session::load(&fx("models/keras_unet.onnx"), Backend::Cpu).unwrap();
    assert!(s.model.ends_in_activation);
    assert!(
        !s.model.nodes.iter().any(|n| n.op_type == "BatchNormalization"),
        "every BN follows a conv and is folded"
    );
    let s = Session::load(&fx("models/nnunet_like.onnx"), Backend::Cpu).unwrap();
    assert!(!s.model.ends_in_activation);
}

#[derive(serde::Deserialize)]
struct SwCase {
    case: String,
    model: String,
    image: String,
    expected: String,
    patch: [usize; 3],
    overlap: f64,
    blend: String,
    blend_on: String,
    placement: String,
}

fn sw_cases() -> Vec<(SwCase, WindowConfig)> {
    let m: Vec<SwCase> = serde_json::from_str(&std::fs::read_to_string(fx("sw/manifest.json")).unwrap()).unwrap();
    m.into_iter()
        .map(|c| {
            let cfg = WindowConfig {
                patch: Some(c.patch),
                overlap: c.overlap,
                nnunet_steps: c.placement == "nnunet",
                blend: if c.blend == "gaussian" {
                    Blend::Gaussian
                } else {
                    Blend::Constant
                },
                blend_on: if c.blend_on == "logits" {
                    BlendOn::Logits
                } else {
                    BlendOn::Probs
                },
                activation: Activation::Auto,
                normalize: Normalize::ZScore,
                layout: Layout::Auto,
            };
            (c, cfg)
        })
        .collect()
}

/// Expected (X, Y, Z) C-order array to NIfTI storage order.
fn to_storage(t: &lesioneval::infer::Tensor) -> Vec<f32> {
    let [x, y, z] = [t.shape[0], t.shape[1], t.shape[2]];
    let mut v = vec![0.0; x * y * z];
    for i in 0..x {
        for j in 0..y {
            for k in 0..z {
                v[i + x * (j + y * k)] = t.data[(i * y + j) * z + k];
            }
        }
    }
    v
}

#[test]
fn sliding_window_matches_monai_semantics() {
    for backend in backends() {
        for (c, cfg) in sw_cases() {
            let s = Session::load(&fx(&format!("sw/{}", c.model)), backend).unwrap();
            let img = lesioneval::io::read_f32(&fx(&format!("sw/{}", c.image))).unwrap();
            let w = sliding_window(&s, std::slice::from_ref(&img.data), img.geometry.shape, &cfg).unwrap();
            let fg = foreground(&w.probs, None).unwrap();
            let want = to_storage(&common::read_npy(&fx(&format!("sw/{}", c.expected))));
            let d = fg.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(d <= 1e-4, "{} on {backend:?}: max |diff| {d}", c.case);
        }
    }
}

#[test]
fn infer_cli_writes_the_expected_probability_map_and_mask() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    std::fs::copy(
        fx("sw/nnunet_gauss_o50.image.nii.gz"),
        images.join("case_a_0000.nii.gz"),
    )
    .unwrap();
    let out = dir.path().join("probs");
    let run = |out: &Path| {
        assert_cmd::Command::cargo_bin("lesioneval")
            .unwrap()
            .args(["infer", "--model"])
            .arg(fx("models/nnunet_like.onnx"))
            .arg("--images")
            .arg(&images)
            .arg("--out")
            .arg(out)
            .args([
                "--patch",
                "16,24,20",
                "--overlap",
                "0.5",
                "--device",
                "cpu",
                "--save-mask",
            ])
            .assert()
            .success();
    };
    run(&out);
    let prob = lesioneval::io::read_f32(&out.join("case_a.nii.gz")).unwrap();
    let img = lesioneval::io::read_f32(&images.join("case_a_0000.nii.gz")).unwrap();
    assert!(prob.geometry.mismatch(&img.geometry, 1e-6).is_none());
    let want = to_storage(&common::read_npy(&fx("sw/nnunet_gauss_o50.prob.npy")));
    let d = prob
        .data
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(d <= 1e-4, "max |diff| {d}");
    let mask = lesioneval::io::read_mask(&out.join("masks/case_a.nii.gz")).unwrap();
    assert!(mask.data.iter().zip(&prob.data).all(|(&m, &p)| (m == 1) == (p >= 0.5)));
    // Same input → byte-identical output.
    let again = dir.path().join("again");
    run(&again);
    for f in ["case_a.nii.gz", "masks/case_a.nii.gz"] {
        assert_eq!(
            std::fs::read(out.join(f)).unwrap(),
            std::fs::read(again.join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn bad_models_and_options_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.onnx");
    std::fs::write(&junk, b"\x0a\xff\xff\xff").unwrap();
    let e = Session::load(&junk, Backend::Cpu).err().unwrap().to_string();
    assert!(
        e.contains("junk.onnx") && e.contains("not a readable ONNX model"),
        "{e}"
    );
    // The static-size Keras model refuses a different patch; the dynamic one needs one.
    let img = lesioneval::io::read_f32(&fx("sw/keras_gauss_o50.image.nii.gz")).unwrap();
    let s = Session::load(&fx("models/keras_unet.onnx"), Backend::Cpu).unwrap();
    let cfg = WindowConfig {
        patch: Some([16, 16, 16]),
        ..WindowConfig::default()
    };
    let e = sliding_window(&s, std::slice::from_ref(&img.data), img.geometry.shape, &cfg)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("differs from the model's fixed input size"), "{e}");
    let s = Session::load(&fx("models/nnunet_like.onnx"), Backend::Cpu).unwrap();
    let e = sliding_window(
        &s,
        std::slice::from_ref(&img.data),
        img.geometry.shape,
        &WindowConfig::default(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("give --patch"), "{e}");
    // Two channels for a one-channel model.
    let e = sliding_window(&s, &[img.data.clone(), img.data.clone()], img.geometry.shape, &cfg)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("1 input channels, 2 image files"), "{e}");
}

#[test]
fn cpu_and_gpu_agree_on_the_unets() {
    if !common::gpu_available() {
        return;
    }
    for m in ["keras_unet", "nnunet_like"] {
        let x = common::read_npy(&fx(&format!("models/{m}.patch_in.npy")));
        let cpu = Session::load(&fx(&format!("models/{m}.onnx")), Backend::Cpu)
            .unwrap()
            .run(&[&x])
            .unwrap();
        let gpu = Session::load(&fx(&format!("models/{m}.onnx")), Backend::Gpu)
            .unwrap()
            .run(&[&x])
            .unwrap();
        let d = common::max_abs_diff(&cpu, &gpu);
        assert!(d <= 1e-4, "{m}: CPU vs GPU max |diff| {d}");
    }
}

/// The GPU batch of windows comes from the adapter's binding limit: as many windows as let the
/// largest intermediate tensor fit one storage binding (at most 16), and a patch whose largest
/// tensor alone is over the limit is refused with the sizes.
#[test]
fn gpu_batch_is_chosen_from_the_binding_limit() {
    if !common::gpu_available() {
        return;
    }
    let ctx = lesioneval::gpu::context().unwrap();
    let limit = ctx
        .limits
        .max_storage_buffer_binding_size
        .min(ctx.limits.max_buffer_size);
    let s = Session::load(&fx("models/nnunet_like.onnx"), Backend::Gpu).unwrap();
    // nnunet_like's largest tensor is the 16-channel concatenation at full resolution.
    let p = 32usize;
    let largest = (16 * p * p * p * 4) as u64;
    assert_eq!(
        s.max_batch(&[1, 1, p, p, p]).unwrap() as u64,
        (limit / largest).clamp(1, 16)
    );
    // A patch too large for one binding: side n with 16·n³·4 bytes > limit.
    let n = (((limit / 64) as f64).cbrt().ceil() as usize + 8) & !3;
    let e = s.max_batch(&[1, 1, n, n, n]).err().unwrap().to_string();
    assert!(e.contains("binds at most") && e.contains("smaller --patch"), "{e}");
}

/// Several input channels (nnU-Net `_0000`, `_0001` files) reach the model in file order: a 1×1×1
/// conv with weights (1, 2) must return ch0 + 2·ch1 exactly, window by window.
#[test]
fn channels_are_stacked_in_order() {
    let model = common::one_node_model(common::conv_op(vec![1.0, 2.0], vec![0.0], 2, 1, 0), 2);
    let shape = [13, 9, 7];
    let n: usize = shape.iter().product();
    let a: Vec<f32> = (0..n).map(|i| (i % 17) as f32).collect();
    let b: Vec<f32> = (0..n).map(|i| (i % 5) as f32 * 0.5).collect();
    let cfg = WindowConfig {
        patch: Some([8, 8, 8]),
        overlap: 0.25,
        blend: Blend::Constant,
        activation: Activation::None,
        normalize: Normalize::None,
        ..WindowConfig::default()
    };
    for backend in backends() {
        let s = Session::from_model(Path::new("synthetic.onnx"), model.clone(), backend).unwrap();
        let w = sliding_window(&s, &[a.clone(), b.clone()], shape, &cfg).unwrap();
        for i in 0..n {
            assert!(
                (w.probs[0][i] - (a[i] + 2.0 * b[i])).abs() < 1e-5,
                "{backend:?} voxel {i}"
            );
        }
    }
}

/// A 4-D image (the Medical Segmentation Decathlon's multi-modal files) gives the same channels,
/// in the same order, as its volumes written as nnU-Net `_0000`, `_0001` files.
#[test]
fn a_4d_image_holds_its_channels() {
    use common::RawNifti;
    use lesioneval::infer::pipeline::{ImageCase, read_case};
    let d = tempfile::tempdir().unwrap();
    let shape = [5, 4, 3];
    let chans: Vec<Vec<f32>> = (0..2)
        .map(|c| (0..60).map(|i| (i * (c + 2)) as f32).collect())
        .collect();
    let files: Vec<PathBuf> = (0..2)
        .map(|c| {
            let p = d.path().join(format!("case_000{c}.nii.gz"));
            RawNifti::f32(shape, &chans[c]).write(&p);
            p
        })
        .collect();
    let mut four = RawNifti::f32(shape, &chans.concat());
    four.dim = vec![5, 4, 3, 2];
    let p4 = d.path().join("case.nii.gz");
    four.write(&p4);
    let data = |case: ImageCase| -> Vec<Vec<f32>> { read_case(&case).unwrap().into_iter().map(|v| v.data).collect() };
    let split = data(ImageCase {
        id: "case".into(),
        channels: files,
    });
    let stacked = data(ImageCase {
        id: "case".into(),
        channels: vec![p4],
    });
    assert_eq!(split, chans);
    assert_eq!(stacked, chans);
}

/// Settings that would make inference abort or quietly give nonsense are errors:
/// nnU-Net placement near overlap 1 (more windows than positions), and a model
/// that computes NaN (here a NaN scale, as a negative BatchNorm variance gives).
#[test]
fn runaway_windows_and_nan_outputs_are_errors() {
    use lesioneval::infer::model::{Act, Op};
    use lesioneval::infer::pipeline::{ImageCase, InferConfig, MaskMode, infer_case};
    let image = fx("sw/keras_gauss_o50.image.nii.gz");
    let img = lesioneval::io::read_f32(&image).unwrap();
    let s = Session::load(&fx("models/nnunet_like.onnx"), Backend::Cpu).unwrap();
    let cfg = WindowConfig {
        patch: Some([16, 16, 16]),
        overlap: 0.99999,
        nnunet_steps: true,
        ..WindowConfig::default()
    };
    let e = sliding_window(&s, std::slice::from_ref(&img.data), img.geometry.shape, &cfg)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("lower --overlap") && e.contains("windows on an image"),
        "{e}"
    );

    let nan = Op::Affine {
        scale: vec![f32::NAN],
        shift: vec![0.0],
        act: Act::None,
    };
    let path = Path::new("nan_scale.onnx");
    let s = Session::from_model(path, common::one_node_model(nan, 1), Backend::Cpu).unwrap();
    let case = ImageCase {
        id: "case_7".into(),
        channels: vec![image],
    };
    let out = tempfile::tempdir().unwrap();
    let cfg = InferConfig {
        window: WindowConfig {
            patch: Some([8, 8, 8]),
            ..WindowConfig::default()
        },
        class: None,
        mask: MaskMode::Threshold(0.5),
    };
    let e = infer_case(&s, &case, out.path(), &cfg).err().unwrap().to_string();
    assert!(
        e.contains("nan_scale.onnx") && e.contains("non-finite probability for case case_7"),
        "{e}"
    );
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0, "nothing written");

    // 2.1 M output channels over a 45×38×20 image: 7.2·10¹⁰ blended values (268 GiB),
    // refused (such an allocation used to abort the process).
    let c_out = 2_100_000;
    let conv = common::conv_op(vec![1.0; c_out], vec![0.0; c_out], 1, 1, 0);
    let wide = Path::new("wide.onnx");
    let s = Session::from_model(wide, common::one_node_model(conv, 1), Backend::Cpu).unwrap();
    let cfg = WindowConfig {
        patch: Some([1, 1, 1]),
        ..WindowConfig::default()
    };
    let e = sliding_window(&s, std::slice::from_ref(&img.data), img.geometry.shape, &cfg)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("wide.onnx") && e.contains("2100000 output channels"), "{e}");
}

/// Three Convs reading one initializer hold one copy of it (a crafted model
/// that shares a large weight across many nodes cannot multiply its memory),
/// and each backend computes the same as with three copies (on the GPU the
/// shared weight is uploaded once, by pointer).
#[test]
fn nodes_that_share_an_initializer_share_one_copy() {
    use common::onnx::{model, node, tensor, value};
    use lesioneval::infer::model::Op;
    let w: Vec<f32> = (0..27).map(|i| (i as f32 - 13.0) / 40.0).collect();
    let convs = |shared: bool| {
        let name = |k: usize| if shared { "w".to_string() } else { format!("w{k}") };
        let nodes = (0..3)
            .map(|k| {
                let x = if k == 0 { "x".to_string() } else { format!("h{k}") };
                let y = if k == 2 { "y".to_string() } else { format!("h{}", k + 1) };
                let pads = common::onnx::attr_ints("pads", &[1; 6]);
                node("Conv", &format!("c{k}"), &[&x, &name(k)], &y, vec![pads])
            })
            .collect();
        let inits = (0..if shared { 1 } else { 3 })
            .map(|k| tensor(&name(k), &[1, 1, 3, 3, 3], &w))
            .collect();
        let io = |n: &str| value(n, &[Some(1), Some(1), None, None, None]);
        model(13, nodes, inits, vec![io("x")], vec![io("y")])
    };
    let dir = tempfile::tempdir().unwrap();
    let (one, three) = (dir.path().join("shared.onnx"), dir.path().join("copies.onnx"));
    std::fs::write(&one, convs(true)).unwrap();
    std::fs::write(&three, convs(false)).unwrap();
    let x = lesioneval::infer::Tensor::new(vec![1, 1, 6, 5, 4], (0..120).map(|i| (i % 7) as f32).collect());
    for backend in backends() {
        let s = Session::load(&one, backend).unwrap();
        let weights: Vec<_> = s
            .model
            .nodes
            .iter()
            .map(|n| match &n.op {
                Op::Conv(c) => c.weight.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(weights.len(), 3);
        assert!(weights.iter().all(|w| std::sync::Arc::ptr_eq(w, &weights[0])));
        // The three nodes and this test's clones; no copy is held anywhere else.
        assert_eq!(std::sync::Arc::strong_count(&weights[0]), 6);
        let copies = Session::load(&three, backend).unwrap();
        let (a, b) = (s.run(&[&x]).unwrap(), copies.run(&[&x]).unwrap());
        assert_eq!(a, b, "{backend:?}");
    }
}

/// A shape that fails late in the graph is an error naming the model and the
/// node on both backends (that no op runs first is counted by the unit test
/// `a_late_shape_error_stops_the_run_before_any_op`).
#[test]
fn a_late_shape_error_is_found_before_the_model_runs() {
    use common::onnx::{model, node, tensor_i64, value};
    let nodes = vec![
        node("Resize", "big", &["x", "", "", "sizes"], "r", vec![]),
        node(
            "Concat",
            "join",
            &["r", "x"],
            "y",
            vec![common::onnx::attr_int("axis", 1)],
        ),
    ];
    let inits = vec![tensor_i64("sizes", &[1, 1, 1024, 1024, 1024])];
    let io = |n: &str| value(n, &[Some(1), Some(1), None, None, None]);
    let bytes = model(13, nodes, inits, vec![io("x")], vec![io("y")]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("late.onnx");
    std::fs::write(&path, bytes).unwrap();
    let x = lesioneval::infer::Tensor::new(vec![1, 1, 2, 2, 2], vec![1.0; 8]);
    for backend in backends() {
        let s = Session::load(&path, backend).unwrap();
        let e = s.run(&[&x]).err().unwrap().to_string();
        assert!(
            e.contains("late.onnx") && e.contains("node 'join' (Concat)"),
            "{backend:?}: {e}"
        );
    }
}
