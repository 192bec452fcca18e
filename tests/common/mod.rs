//! Shared test helpers: the backend-agnostic labeller suite and a hand-rolled
//! NIfTI-1 writer for building deliberately broken files.
#![allow(dead_code)]

pub mod onnx;

use lesioneval::label::{Components, Connectivity, reference::label_bfs};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The names in `dir`, sorted.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Repository root (for fixtures).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixtures() -> PathBuf {
    root().join("fixtures")
}

/// A labelling backend under test.
pub type Backend = fn(&[u8], [usize; 3], Connectivity) -> Components;

/// Asserts `backend` gives exactly the reference labels and statistics.
pub fn assert_same_as_reference(backend: Backend, mask: &[u8], shape: [usize; 3], c: Connectivity) {
    let got = backend(mask, shape, c);
    let want = label_bfs(mask, shape, c);
    assert_eq!(
        got.count(),
        want.count(),
        "component count, shape {shape:?}, connectivity {c}"
    );
    assert!(
        got.labels == want.labels,
        "labels differ, shape {shape:?}, connectivity {c}"
    );
    assert_eq!(got.lesions, want.lesions, "lesion statistics differ");
}

/// Deterministic pseudo-random mask (xorshift), density in [0, 1].
pub fn random_mask(shape: [usize; 3], density: f64, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let n: usize = shape.iter().product();
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            u8::from(((s >> 11) as f64 / (1u64 << 53) as f64) < density)
        })
        .collect()
}

/// Fields of a NIfTI-1 file we vary in tests.
pub struct RawNifti {
    pub dim: Vec<u16>,
    pub datatype: i16,
    pub bitpix: i16,
    pub pixdim: [f32; 3],
    pub scl_slope: f32,
    pub scl_inter: f32,
    pub sizeof_hdr: i32,
    pub data: Vec<u8>,
}

impl RawNifti {
    pub fn u8(shape: [usize; 3], data: Vec<u8>) -> Self {
        RawNifti {
            dim: shape.iter().map(|&d| d as u16).collect(),
            datatype: 2,
            bitpix: 8,
            pixdim: [1.0, 1.0, 1.0],
            scl_slope: 1.0,
            scl_inter: 0.0,
            sizeof_hdr: 348,
            data,
        }
    }

    pub fn f32(shape: [usize; 3], values: &[f32]) -> Self {
        let mut r = Self::u8(shape, values.iter().flat_map(|v| v.to_le_bytes()).collect());
        r.datatype = 16;
        r.bitpix = 32;
        r
    }

    /// The bytes of a single-file NIfTI-1 (little endian), header + data.
    pub fn bytes(&self) -> Vec<u8> {
        let mut h = vec![0u8; 352];
        let put = |h: &mut Vec<u8>, off: usize, b: &[u8]| h[off..off + b.len()].copy_from_slice(b);
        put(&mut h, 0, &self.sizeof_hdr.to_le_bytes());
        put(&mut h, 40, &(self.dim.len() as i16).to_le_bytes());
        for (i, d) in self.dim.iter().enumerate() {
            put(&mut h, 42 + 2 * i, &(*d as i16).to_le_bytes());
        }
        put(&mut h, 70, &self.datatype.to_le_bytes());
        put(&mut h, 72, &self.bitpix.to_le_bytes());
        put(&mut h, 76, &1f32.to_le_bytes());
        for (i, p) in self.pixdim.iter().enumerate() {
            put(&mut h, 80 + 4 * i, &p.to_le_bytes());
        }
        put(&mut h, 108, &352f32.to_le_bytes());
        put(&mut h, 112, &self.scl_slope.to_le_bytes());
        put(&mut h, 116, &self.scl_inter.to_le_bytes());
        put(&mut h, 123, &[2u8]); // mm
        put(&mut h, 344, b"n+1\0");
        h.extend_from_slice(&self.data);
        h
    }

    /// Writes `.nii` or gzip-compressed `.nii.gz` depending on the name.
    pub fn write(&self, path: &Path) {
        let bytes = self.bytes();
        if path.to_string_lossy().ends_with(".gz") {
            let f = std::fs::File::create(path).unwrap();
            let mut enc = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
            enc.write_all(&bytes).unwrap();
            enc.finish().unwrap();
        } else {
            std::fs::write(path, bytes).unwrap();
        }
    }
}

/// Whether GPU tests can run. Without an adapter they are skipped with a note,
/// unless LESIONEVAL_REQUIRE_GPU=1 (CI), where that is a test failure.
pub fn gpu_available() -> bool {
    match lesioneval::gpu::context() {
        Ok(_) => true,
        Err(e) => {
            if std::env::var("LESIONEVAL_REQUIRE_GPU").is_ok_and(|v| v == "1") {
                panic!("LESIONEVAL_REQUIRE_GPU=1 but no GPU: {e}");
            }
            eprintln!("skipping GPU backend: {e}");
            false
        }
    }
}

/// Read a little-endian float32, C-order `.npy` file (what the ONNX fixture scripts write).
pub fn read_npy(path: &std::path::Path) -> lesioneval::infer::Tensor {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&b[..6], b"\x93NUMPY", "{}", path.display());
    let (hlen, start) = if b[6] == 1 {
        (u16::from_le_bytes([b[8], b[9]]) as usize, 10)
    } else {
        (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
    };
    let header = std::str::from_utf8(&b[start..start + hlen]).unwrap();
    assert!(header.contains("'descr': '<f4'"), "{}: {header}", path.display());
    assert!(header.contains("'fortran_order': False"), "{}", path.display());
    let shape_txt = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let shape: Vec<usize> = shape_txt
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let data: Vec<f32> = b[start + hlen..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(data.len(), shape.iter().product::<usize>(), "{}", path.display());
    lesioneval::infer::Tensor::new(shape, data)
}

/// Largest absolute difference; panics on a shape mismatch.
pub fn max_abs_diff(a: &lesioneval::infer::Tensor, b: &lesioneval::infer::Tensor) -> f32 {
    assert_eq!(a.shape, b.shape);
    a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A 3-D Conv of `kernel`³ voxels with stride and dilation 1, `pad` voxels on
/// every side and no activation; `bias.len()` output channels.
pub fn conv_op(
    weight: Vec<f32>,
    bias: Vec<f32>,
    c_in: usize,
    kernel: usize,
    pad: usize,
) -> lesioneval::infer::model::Op {
    use lesioneval::infer::model::{Act, ConvSpec, Op, Pads};
    Op::Conv(Box::new(ConvSpec {
        weight: weight.into(),
        c_out: bias.len(),
        bias,
        c_in,
        kernel: [kernel; 3],
        strides: [1; 3],
        dilations: [1; 3],
        pads: Pads::Explicit {
            begin: [pad; 3],
            end: [pad; 3],
        },
        rank: 3,
        act: Act::None,
    }))
}

/// A model of one node, `op`, reading input `x` of `channels` channels (any
/// batch and spatial size) and writing `y`.
pub fn one_node_model(op: lesioneval::infer::model::Op, channels: usize) -> lesioneval::infer::Model {
    use lesioneval::infer::model::{ModelInput, Node};
    lesioneval::infer::Model {
        inputs: vec![ModelInput {
            name: "x".into(),
            dims: vec![None, Some(channels), None, None, None],
        }],
        output: "y".into(),
        nodes: vec![Node {
            name: "n".into(),
            op_type: "Test".into(),
            inputs: vec!["x".into()],
            output: "y".into(),
            op,
        }],
        ends_in_activation: false,
        opset: 13,
    }
}
