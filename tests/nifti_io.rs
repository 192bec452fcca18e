//! NIfTI reading: every supported data type, scaling, and the geometry written back.

mod common;

use common::RawNifti;
use lesioneval::io;

fn typed(datatype: i16, bitpix: i16, bytes: Vec<u8>) -> RawNifti {
    let mut r = RawNifti::u8([4, 1, 1], bytes);
    r.datatype = datatype;
    r.bitpix = bitpix;
    r
}

#[test]
fn every_supported_dtype_reads_as_a_mask() {
    // Values 0, 1, -3 (or 3 for unsigned), 0: foreground = non-zero. Wider types hold a value
    // whose low bytes are zero instead of the 1 (only a high byte makes it foreground).
    let cases: Vec<(&str, RawNifti)> = vec![
        ("uint8", typed(2, 8, vec![0, 1, 3, 0])),
        (
            "int8",
            typed(256, 8, [0i8, 1, -3, 0].iter().map(|v| *v as u8).collect()),
        ),
        (
            "uint16",
            typed(
                512,
                16,
                [0u16, 256, 3, 0].iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
        ),
        (
            "int16",
            typed(4, 16, [0i16, 1, -3, 0].iter().flat_map(|v| v.to_le_bytes()).collect()),
        ),
        (
            "uint32",
            typed(768, 32, [0u32, 1, 3, 0].iter().flat_map(|v| v.to_le_bytes()).collect()),
        ),
        (
            "int32",
            typed(
                8,
                32,
                [0i32, 1 << 24, -3, 0].iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
        ),
        (
            "uint64",
            typed(
                1280,
                64,
                [0u64, 1 << 40, 3, 0].iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
        ),
        (
            "int64",
            typed(
                1024,
                64,
                [0i64, 1, -3, 0].iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
        ),
        (
            "float32",
            typed(
                16,
                32,
                [0f32, 2.0, -3.0, 0.0].iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
        ),
        (
            "float64",
            typed(
                64,
                64,
                [0f64, 2.0, -3.0, -0.0].iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
        ),
    ];
    let d = tempfile::tempdir().unwrap();
    for (name, raw) in cases {
        for ext in ["nii", "nii.gz"] {
            let p = d.path().join(format!("{name}.{ext}"));
            raw.write(&p);
            let m = io::read_mask(&p).unwrap_or_else(|e| panic!("{name}.{ext}: {e}"));
            assert_eq!(m.data, vec![0, 1, 1, 0], "{name}.{ext}");
            assert_eq!(m.geometry.shape, [4, 1, 1]);
        }
    }
}

/// The reader fills a mask page by page and skips all-background pages
/// (io::sparse_mask): a volume of several pages, with foreground on page
/// edges, in one page's middle, at the last voxel, and whole empty pages,
/// reads the same in every data type as a plain per-voxel test.
#[test]
fn masks_of_many_pages_read_the_same_in_every_dtype() {
    let shape = [97, 61, 5];
    let n = shape.iter().product::<usize>();
    let fg: Vec<bool> = (0..n)
        .map(|i| matches!(i, 0 | 4095 | 4096 | 8191 | 9000..=9040) || i % 4099 == 7 || i + 1 == n)
        .collect();
    // Background is 0 (and -0.0 for floats, which is background too).
    let pick = |i: usize, on: f64| {
        if fg[i] {
            on
        } else if i.is_multiple_of(3) {
            -0.0
        } else {
            0.0
        }
    };
    let cases: Vec<(&str, i16, i16, Vec<u8>)> = vec![
        ("uint8", 2, 8, (0..n).map(|i| pick(i, 200.0) as u8).collect()),
        (
            "int16",
            4,
            16,
            (0..n).flat_map(|i| (pick(i, -2.0) as i16).to_le_bytes()).collect(),
        ),
        (
            "uint32",
            768,
            32,
            (0..n).flat_map(|i| (pick(i, 65536.0) as u32).to_le_bytes()).collect(),
        ),
        (
            "int64",
            1024,
            64,
            (0..n).flat_map(|i| (pick(i, -1.0) as i64).to_le_bytes()).collect(),
        ),
        (
            "float32",
            16,
            32,
            (0..n).flat_map(|i| (pick(i, 2.0) as f32).to_le_bytes()).collect(),
        ),
        (
            "float64",
            64,
            64,
            (0..n).flat_map(|i| pick(i, -4.0).to_le_bytes()).collect(),
        ),
    ];
    let want: Vec<u8> = fg.iter().map(|&f| u8::from(f)).collect();
    let d = tempfile::tempdir().unwrap();
    for (name, datatype, bitpix, bytes) in cases {
        let mut raw = RawNifti::u8(shape, bytes);
        raw.datatype = datatype;
        raw.bitpix = bitpix;
        let p = d.path().join(format!("{name}.nii.gz"));
        raw.write(&p);
        let m = io::read_mask(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(m.data, want, "{name}");
    }
}

#[test]
fn scaling_is_applied_before_thresholding() {
    let d = tempfile::tempdir().unwrap();
    // raw 0, 1, 2, 3 with slope 2, inter -2 → -2, 0, 2, 4: voxel 1 becomes background.
    let mut r = typed(4, 16, [0i16, 1, 2, 3].iter().flat_map(|v| v.to_le_bytes()).collect());
    r.scl_slope = 2.0;
    r.scl_inter = -2.0;
    let p = d.path().join("scaled.nii");
    r.write(&p);
    assert_eq!(io::read_mask(&p).unwrap().data, vec![1, 0, 1, 1]);
    assert_eq!(io::read_f32(&p).unwrap().data, vec![-2.0, 0.0, 2.0, 4.0]);
    // A mask stored as 0/255 with slope 1/255: float32 makes that 1.0000000591, still a mask.
    let mut r255 = typed(2, 8, vec![0, 255, 255, 0]);
    r255.scl_slope = 1.0 / 255.0;
    r255.write(&p);
    assert_eq!(io::read_mask(&p).unwrap().data, vec![0, 1, 1, 0]);
    // slope 0 means "no scaling" (NIfTI-1).
    r.scl_slope = 0.0;
    r.write(&p);
    assert_eq!(io::read_mask(&p).unwrap().data, vec![0, 1, 1, 1]);
}

/// A fractional value is a probability map read as a mask: every voxel above
/// 0 (its faint background too) would be foreground, so it is refused, named.
#[test]
fn fractional_mask_values_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let floats = |v: [f32; 4]| typed(16, 32, v.iter().flat_map(|v| v.to_le_bytes()).collect());
    let mut scaled = typed(4, 16, [0i16, 1, 2, 3].iter().flat_map(|v| v.to_le_bytes()).collect());
    scaled.scl_slope = 0.5;
    for (name, raw, value) in [
        ("prob.nii", floats([0.0, 1.0, 0.25, 0.0]), "0.25"),
        ("prob.nii.gz", floats([0.0, 0.75, 0.0, 0.0]), "0.75"),
        ("scaled.nii", scaled, "0.5"),
    ] {
        let p = d.path().join(name);
        raw.write(&p);
        let e = io::read_mask(&p).expect_err(name).to_string();
        assert!(e.contains(name) && e.contains(value) && e.contains("--prob"), "{e}");
    }
}

#[test]
fn labels_keep_the_input_geometry() {
    // The SCT mask has a real qform/sform (0.8 mm, oblique origin).
    let src = common::fixtures().join("sct/t2_fake_lesion_lesion_seg.nii.gz");
    let m = io::read_mask(&src).unwrap();
    let c = lesioneval::label::label(&m.data, m.geometry.shape, lesioneval::label::Connectivity::TwentySix);
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("labels.nii.gz");
    io::write_labels(&out, &c.labels, c.count(), &m.header, &m.geometry).unwrap();
    let back = io::read_labels(&out).unwrap();
    assert_eq!(back.geometry, m.geometry);
    assert_eq!(back.data, c.labels);
    // World centroid goes through the affine.
    let l = &c.lesions[0];
    let w = l.centroid_mm(&m.geometry);
    let v = l.centroid();
    let a = &m.geometry.affine;
    for r in 0..3 {
        let expect = a[r][0] * v[0] + a[r][1] * v[1] + a[r][2] * v[2] + a[r][3];
        assert!((w[r] - expect).abs() < 1e-9);
    }
    assert!((l.volume_mm3(&m.geometry) - l.voxels as f64 * m.geometry.voxel_volume()).abs() < 1e-9);
}

/// A mask with lesion voxels spread over its bytes, and its file bytes.
fn sample() -> (Vec<u8>, Vec<u8>) {
    let data: Vec<u8> = (0..512).map(|i| u8::from(i % 7 == 0 || i % 11 == 3)).collect();
    let bytes = RawNifti::u8([8, 8, 8], data.clone()).bytes();
    (data, bytes)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// The error text of reading `bytes` as a file named `name`.
fn read_error(name: &str, bytes: &[u8]) -> String {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    let e = io::read_mask(&p).expect_err("must be refused").to_string();
    assert!(e.contains(name), "the message names the file: {e}");
    e
}

#[test]
fn voxels_start_at_vox_offset_even_without_extensions() {
    // vox_offset 1024 and no extension (extender byte 0): bytes 352..1024 are
    // padding, which must not be read as voxels.
    let (data, mut bytes) = sample();
    bytes[108..112].copy_from_slice(&1024f32.to_le_bytes());
    bytes.splice(352..352, std::iter::repeat_n(0xffu8, 1024 - 352));
    let d = tempfile::tempdir().unwrap();
    // Zero padding after the gzip stream is accepted, as gzip -t and nibabel accept it.
    let mut padded_gz = gzip(&bytes);
    padded_gz.extend([0u8; 512]);
    for (name, file) in [
        ("pad.nii", bytes.clone()),
        ("pad.nii.gz", gzip(&bytes)),
        ("zeros.nii.gz", padded_gz),
    ] {
        let p = d.path().join(name);
        std::fs::write(&p, file).unwrap();
        assert_eq!(io::read_mask(&p).unwrap().data, data, "{name}");
    }
}

#[test]
fn vox_offset_inside_the_header_is_refused() {
    let (_, mut bytes) = sample();
    for bad in [0.0f32, 10.0, -100.0, f32::NAN] {
        bytes[108..112].copy_from_slice(&bad.to_le_bytes());
        let e = read_error("offset.nii", &bytes);
        assert!(e.contains("vox_offset"), "{e}");
    }
}

#[test]
fn gzip_checksums_are_checked() {
    let (_, bytes) = sample();
    let mut gz = gzip(&bytes);
    let crc = gz.len() - 8;
    gz[crc] ^= 1;
    let e = read_error("crc.nii.gz", &gz);
    assert!(e.contains("corrupt gzip") && e.contains("checksum"), "{e}");
}

#[test]
fn misnamed_cut_and_unscalable_files_are_named() {
    let (_, bytes) = sample();
    // A gzip file named .nii.
    let e = read_error("zipped.nii", &gzip(&bytes));
    assert!(e.contains("gzip-compressed") && e.contains(".nii.gz"), "{e}");
    // A tiny .nii.gz whose header declares 34 GB of voxels: said before any allocation.
    let mut huge = bytes.clone();
    for (at, v) in [(42, 32767i16), (44, 32767), (46, 4), (70, 64), (72, 64)] {
        huge[at..at + 2].copy_from_slice(&v.to_le_bytes()); // dim[1..3], datatype, bitpix
    }
    let e = read_error("huge.nii.gz", &gzip(&huge));
    assert!(e.contains("truncated or corrupt") && !e.contains("allocate"), "{e}");
    // A real slope with a NaN intercept: no value is known (nibabel refuses it too).
    let mut nan_inter = bytes;
    nan_inter[112..116].copy_from_slice(&2f32.to_le_bytes()); // scl_slope
    nan_inter[116..120].copy_from_slice(&f32::NAN.to_le_bytes()); // scl_inter
    let e = read_error("inter.nii", &nan_inter);
    assert!(e.contains("scl_inter is NaN"), "{e}");
}

/// pixdim 0 beside a valid sform (some converters write that; nibabel reads it): the voxel
/// size is the length of the sform's columns. Without an sform it stays an error.
#[test]
fn zero_pixdim_takes_the_sform_voxel_size() {
    let (data, mut bytes) = sample();
    for a in 1..4 {
        bytes[76 + 4 * a..80 + 4 * a].copy_from_slice(&0f32.to_le_bytes()); // pixdim[1..3]
    }
    let e = read_error("nopixdim.nii", &bytes);
    assert!(e.contains("invalid voxel spacing"), "{e}");
    bytes[254..256].copy_from_slice(&1i16.to_le_bytes()); // sform_code
    // Rows (0, 0.5, 0, 1), (0.7, 0, 0, 2), (0, 0, 2, 3): axes swapped, sizes 0.7, 0.5, 2.
    for (row, vals) in [[0.0f32, 0.5, 0.0, 1.0], [0.7, 0.0, 0.0, 2.0], [0.0, 0.0, 2.0, 3.0]]
        .iter()
        .enumerate()
    {
        for (k, v) in vals.iter().enumerate() {
            let at = 280 + 16 * row + 4 * k;
            bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
        }
    }
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("sform.nii");
    std::fs::write(&p, &bytes).unwrap();
    let m = io::read_mask(&p).unwrap();
    assert_eq!(m.data, data);
    let want = [0.7, 0.5, 2.0];
    for (got, want) in m.geometry.spacing.iter().zip(want) {
        assert!((got - want).abs() < 1e-6, "{:?}", m.geometry.spacing);
    }
}

#[test]
fn multi_member_gzip_is_read_whole() {
    // Blocked gzip (bgzip, pigz -i) is several gzip members back to back.
    let (data, bytes) = sample();
    let mut gz = gzip(&bytes[..400]);
    gz.extend(gzip(&bytes[400..]));
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("members.nii.gz");
    std::fs::write(&p, gz).unwrap();
    assert_eq!(io::read_mask(&p).unwrap().data, data);
}

#[test]
fn bad_dimensions_and_affines_are_named() {
    let (_, bytes) = sample();
    let mut neg = bytes.clone();
    neg[42..44].copy_from_slice(&(-8i16).to_le_bytes());
    let e = read_error("neg.nii", &neg);
    assert!(e.contains("dim[1] = -8"), "{e}");
    let mut zero = bytes.clone();
    zero[44..46].copy_from_slice(&0i16.to_le_bytes());
    let e = read_error("zero.nii", &zero);
    assert!(e.contains("dim[2] = 0"), "{e}");
    let mut pair = bytes.clone();
    pair[344..348].copy_from_slice(b"ni1\0");
    let e = read_error("pair.nii", &pair);
    assert!(e.contains("ni1"), "{e}");
    // A NaN in the sform would put NaN into every world coordinate written.
    let mut nan = bytes;
    nan[254..256].copy_from_slice(&1i16.to_le_bytes()); // sform_code
    nan[280..284].copy_from_slice(&f32::NAN.to_le_bytes()); // srow_x[0]
    let e = read_error("nan.nii", &nan);
    assert!(e.contains("NaN"), "{e}");
}

#[test]
fn one_channel_of_a_4d_or_5d_file_is_read() {
    let d = tempfile::tempdir().unwrap();
    let channels: Vec<f32> = (0..3 * 8).map(|i| i as f32).collect();
    // 2×2×2 voxels, three channels: along dim[4] (MONAI) or dim[5] (ITK vectors).
    for (dims, name) in [(vec![2u16, 2, 2, 3], "c4.nii"), (vec![2, 2, 2, 1, 3], "c5.nii.gz")] {
        let mut r = RawNifti::f32([2, 2, 2], &channels);
        r.dim = dims;
        let p = d.path().join(name);
        r.write(&p);
        for c in 0..3 {
            let v = io::read_f32_channel(&p, Some(c)).unwrap();
            assert_eq!(v.geometry.shape, [2, 2, 2]);
            assert_eq!(v.data, channels[8 * c..8 * (c + 1)], "{name} channel {c}");
        }
        let e = io::read_f32_channel(&p, Some(3)).unwrap_err().to_string();
        assert!(e.contains("has 3 channel(s)"), "{e}");
        let e = io::read_f32(&p).unwrap_err().to_string();
        assert!(e.contains("holds 3 3-D volumes"), "{e}");
        let all: Vec<Vec<f32>> = io::read_f32_volumes(&p).unwrap().into_iter().map(|v| v.data).collect();
        assert_eq!(all.concat(), channels, "{name}: every volume, in order");
        assert_eq!(all.len(), 3);
    }
    // A file missing its last channel is truncated, though channel 0 is whole.
    let mut r = RawNifti::f32([2, 2, 2], &channels[..16]);
    r.dim = vec![2, 2, 2, 3];
    for name in ["short.nii", "short.nii.gz"] {
        let p = d.path().join(name);
        r.write(&p);
        let e = io::read_f32_channel(&p, Some(0)).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{name}: {e}");
    }
    // Two axes beyond the third above 1: which is the channel is not known.
    let mut r = RawNifti::f32([2, 2, 2], &channels[..16]);
    r.dim = vec![2, 2, 2, 2, 2];
    let p = d.path().join("two_axes.nii");
    r.write(&p);
    let e = io::read_f32_channel(&p, Some(0)).unwrap_err().to_string();
    assert!(e.contains("one axis of channels"), "{e}");
}
