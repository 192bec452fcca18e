//! GPU-only paths: slab stitching, volumes whose labels exceed 128 MiB, and
//! failure handling. Skipped without an adapter unless LESIONEVAL_REQUIRE_GPU=1.

mod common;

use common::{gpu_available, max_abs_diff, one_node_model, random_mask};
use lesioneval::infer::model::{Act, Op};
use lesioneval::infer::{Backend, Model, Session, Tensor};
use lesioneval::label::{Connectivity, GpuOptions, label_cpu, label_gpu_with};

#[test]
fn slabs_stitch_to_identical_labels() {
    if !gpu_available() {
        return;
    }
    let ctx = lesioneval::gpu::context().unwrap();
    // Slabs of 1, 2 and 3 slices: every boundary is a stitch.
    for (shape, density) in [
        ([23, 17, 13], 0.3),
        ([9, 31, 20], 0.55),
        ([16, 16, 16], 0.05),
        ([40, 7, 9], 1.0),
    ] {
        let mask = random_mask(shape, density, 11);
        for c in Connectivity::ALL {
            let cpu = label_cpu(&mask, shape, c);
            for slices in [1, 2, 3] {
                let opts = GpuOptions {
                    max_slab_planes: Some(slices),
                    ..GpuOptions::default()
                };
                let (gpu, t) = label_gpu_with(&ctx, &mask, shape, c, opts).unwrap();
                assert!(t.slabs > 1);
                assert!(gpu.labels == cpu.labels, "{shape:?} c{c} slab {slices}: labels differ");
                assert_eq!(gpu.lesions, cpu.lesions);
            }
        }
    }
}

/// Empty planes between lesions make empty slabs (skipped: wgpu refuses a
/// zero-sized binding), and a volume with an empty axis has no lesions.
#[test]
fn empty_slabs_and_empty_volumes() {
    if !gpu_available() {
        return;
    }
    let ctx = lesioneval::gpu::context().unwrap();
    let shape = [6, 5, 7];
    let mut mask = random_mask(shape, 0.4, 3);
    for z in [1, 2, 4, 6] {
        mask[z * 30..(z + 1) * 30].fill(0);
    }
    for c in Connectivity::ALL {
        let cpu = label_cpu(&mask, shape, c);
        for planes in [1, 2] {
            let opts = GpuOptions {
                max_slab_planes: Some(planes),
                ..GpuOptions::default()
            };
            let (gpu, _) = label_gpu_with(&ctx, &mask, shape, c, opts).unwrap();
            assert!(gpu.labels == cpu.labels, "c{c} slabs of {planes}: labels differ");
            assert_eq!(gpu.lesions, cpu.lesions);
        }
    }
    for shape in [[0, 4, 4], [4, 0, 4], [4, 4, 0]] {
        let (c, _) = label_gpu_with(&ctx, &[], shape, Connectivity::Six, GpuOptions::default()).unwrap();
        assert_eq!((c.count(), c.labels.len()), (0, 0), "{shape:?}");
    }
}

#[test]
fn labels_larger_than_128_mib() {
    if !gpu_available() {
        return;
    }
    let ctx = lesioneval::gpu::context().unwrap();
    // 36.9 M voxels: the u32 label volume is 141 MiB, over lavapipe's 128 MiB
    // binding cap. The GPU only ever holds per-run buffers, so this works in
    // one slab; splitting is exercised by the test above.
    let shape = [384, 384, 250];
    let mut mask = vec![0u8; shape.iter().product()];
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..400 {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let (cx, cy, cz) = ((s % 384) as i64, ((s >> 20) % 384) as i64, ((s >> 40) % 250) as i64);
        let r = 2 + (s >> 60) as i64 % 6;
        for z in (cz - r).max(0)..(cz + r + 1).min(250) {
            for y in (cy - r).max(0)..(cy + r + 1).min(384) {
                for x in (cx - r).max(0)..(cx + r + 1).min(384) {
                    if (x - cx).pow(2) + (y - cy).pow(2) + (z - cz).pow(2) <= r * r {
                        mask[(x + 384 * (y + 384 * z)) as usize] = 1;
                    }
                }
            }
        }
    }
    assert!(mask.len() * 4 > 128 << 20);
    let cpu = label_cpu(&mask, shape, Connectivity::TwentySix);
    let (gpu, t) = label_gpu_with(&ctx, &mask, shape, Connectivity::TwentySix, GpuOptions::default()).unwrap();
    eprintln!("{} slabs on {}", t.slabs, ctx.describe());
    assert!(gpu.labels == cpu.labels, "labels differ");
    assert_eq!(gpu.lesions, cpu.lesions);
    assert!(cpu.count() > 100);
}

#[test]
fn impossible_buffer_is_an_error_not_a_panic() {
    if !gpu_available() {
        return;
    }
    let ctx = lesioneval::gpu::context().unwrap();
    let shape = [64, 64, 64];
    let mask = random_mask(shape, 0.1, 3);
    // A plane with more runs than the (pretended) limit is refused before any GPU call …
    let tiny = GpuOptions {
        max_slab_runs: Some(1),
        ..GpuOptions::default()
    };
    let err = label_gpu_with(&ctx, &mask, shape, Connectivity::Six, tiny)
        .unwrap_err()
        .to_string();
    assert!(err.contains("more than the GPU's buffer limit"), "{err}");
    // … and a buffer beyond the device's real limit (forced) comes back as the
    // GPU's validation error, not a panic.
    let forced = GpuOptions {
        oversize_buffer: true,
        ..GpuOptions::default()
    };
    let err = label_gpu_with(&ctx, &mask, shape, Connectivity::Six, forced)
        .unwrap_err()
        .to_string();
    assert!(err.contains("GPU") && err.contains("validation error"), "{err}");
    // The context still works afterwards.
    let (ok, _) = label_gpu_with(&ctx, &mask, shape, Connectivity::Six, GpuOptions::default()).unwrap();
    assert_eq!(ok.labels, label_cpu(&mask, shape, Connectivity::Six).labels);
}

/// Rows of thousands of noisy runs: a hardware GPU must give the CPU's labels.
/// llvmpipe (lavapipe) stops all loops of a shader invocation after 65 535
/// iterations in total, which these rows reach; that must come back as an
/// error, never as labels with unions missing (which it did before the
/// kernels flagged a loop cut short).
#[test]
fn long_noisy_rows_are_exact_or_refused() {
    if !gpu_available() {
        return;
    }
    let ctx = lesioneval::gpu::context().unwrap();
    let mut refused = 0;
    for nx in [4096, 16_384, 65_535] {
        let shape = [nx, 3, 2];
        let mask = random_mask(shape, 0.5, 11);
        for c in Connectivity::ALL {
            let cpu = label_cpu(&mask, shape, c);
            match label_gpu_with(&ctx, &mask, shape, c, GpuOptions::default()) {
                Ok((gpu, _)) => {
                    assert!(gpu.labels == cpu.labels, "labels differ, {shape:?} c{c}");
                    assert_eq!(gpu.lesions, cpu.lesions);
                }
                Err(e) => {
                    let e = e.to_string();
                    assert!(!ctx.is_hardware(), "{shape:?} c{c} on {}: {e}", ctx.describe());
                    assert!(e.contains("ended a labelling loop"), "{e}");
                    refused += 1;
                }
            }
        }
    }
    eprintln!("{refused} of 9 refused on {}", ctx.describe());
    if !ctx.is_hardware() {
        // What this test guards: on the software adapter the cut does happen.
        assert!(refused > 0, "no loop was cut short on {}", ctx.describe());
    }
}

/// `n` pseudo-random values in [-scale, scale] (xorshift).
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s % 2001) as f32 / 1000.0 - 1.0) * scale
        })
        .collect()
}

/// Runs `model` on `x` on the CPU and the GPU: the GPU's error if it fails, else panics unless the outputs agree.
fn gpu_matches_cpu(model: Model, x: &Tensor) -> Result<(), String> {
    let path = std::path::Path::new("test.onnx");
    let cpu = Session::from_model(path, model.clone(), Backend::Cpu)
        .and_then(|s| s.run(&[x]))
        .unwrap();
    let gpu = Session::from_model(path, model, Backend::Gpu)
        .and_then(|s| s.run(&[x]))
        .map_err(|e| e.to_string())?;
    let scale = cpu.data.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let d = max_abs_diff(&cpu, &gpu);
    assert!(d <= 1e-5 * scale, "max |GPU - CPU| {d} (scale {scale})");
    Ok(())
}

/// llvmpipe ends all loops of a shader invocation after 65 535 trips, silently.
/// Instance norm over a 224³ plane (one trip per element and thread before)
/// came out wrong there; it now reads eight elements per trip. Convolutions
/// loop with their input channels: 800 are exact on any adapter, and 1024
/// (cut short on llvmpipe) are refused on a software adapter.
#[test]
fn inference_kernels_within_software_loop_limits() {
    if !gpu_available() {
        return;
    }
    let ctx = lesioneval::gpu::context().unwrap();
    let s = 224;
    let norm = Op::InstanceNorm {
        scale: vec![1.5],
        bias: vec![0.2],
        eps: 1e-5,
        act: Act::None,
    };
    let x = Tensor::new(vec![1, 1, s, s, s], values(s * s * s, 11, 3.0));
    gpu_matches_cpu(one_node_model(norm, 1), &x).unwrap();

    for cin in [800, 1024] {
        let conv = common::conv_op(values(8 * cin * 27, 3, 0.05), vec![0.1; 8], cin, 3, 1);
        let x = Tensor::new(vec![1, cin, 10, 9, 8], values(cin * 720, 7, 1.0));
        match gpu_matches_cpu(one_node_model(conv, cin), &x) {
            Ok(()) => assert!(
                cin == 800 || ctx.is_hardware(),
                "{cin} channels ran on {}",
                ctx.describe()
            ),
            Err(e) => {
                assert!(cin == 1024 && !ctx.is_hardware(), "{cin} channels: {e}");
                assert!(e.contains("node 'n'") && e.contains("--device cpu"), "{e}");
            }
        }
    }
}
