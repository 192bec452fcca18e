//! NIfTI-1 reading and writing (`.nii`, `.nii.gz`) on top of the `nifti` crate.
//!
//! The crate parses the header and writes files; this module reads the byte
//! stream (see [`read_raw`] for why) and owns the policy: which data types we
//! accept, how scaling is applied, what counts as foreground, which geometry a
//! file has, and the error a user sees. Quirks of the format stay here:
//! - The voxels start at `vox_offset` (≥ 352 in a single file; a fractional
//!   offset is truncated, as nibabel does), whether or not extensions fill the gap.
//! - `scl_slope == 0` means "no scaling" (NIfTI-1 §scl_slope); otherwise
//!   value = raw·slope + inter (a non-finite inter with a real slope is an
//!   error, as in nibabel), and a mask voxel is foreground if that is ≠ 0.
//! - The affine is the sform when `sform_code > 0`, else the qform when
//!   `qform_code > 0`, else diag(pixdim) with the origin at voxel 0 (NIfTI-1's
//!   "method 1"; nibabel's `get_best_affine` takes sform, then qform too, but
//!   for neither it centres the origin and flips x, as ANALYZE did).
//! - The voxel size is pixdim[1..3]; where that is 0 or not finite beside a
//!   valid sform, the lengths of the sform's columns (nibabel reads such files).
//! - A file may hold several 3-D volumes one after another (dim[4..7], one
//!   axis above 1: frames, MONAI's channels, ITK's vector components); one is
//!   read ([`read_f32_channel`]), and where one is expected the rest must be 1.
//!   NIfTI-2 and .hdr/.img pairs are refused.
//! - A `.nii.gz` is inflated to its end (see [`super::gz`]).

use super::gz::GzMembers;
use super::sparse_mask::{all_zero, sparse_mask};
use super::{Geometry, Volume};
use crate::error::{Error, Result};
use nifti::NiftiHeader;
use std::io::Read;
use std::ops::Range;
use std::path::Path;

/// The header a volume came with, kept so derived outputs keep its geometry.
#[derive(Debug, Clone)]
pub struct Header(pub(crate) NiftiHeader);

impl Header {
    /// A minimal header for a volume built in memory (axis-aligned, origin 0,
    /// or the given geometry's affine as sform and qform code 0).
    pub fn from_geometry(g: &Geometry) -> Self {
        let mut h = NiftiHeader::default();
        h.pixdim[1..4].copy_from_slice(&g.spacing.map(|s| s as f32));
        h.srow_x = g.affine[0].map(|v| v as f32);
        h.srow_y = g.affine[1].map(|v| v as f32);
        h.srow_z = g.affine[2].map(|v| v as f32);
        h.sform_code = 2;
        h.qform_code = 0;
        h.xyzt_units = 2; // millimetres
        Header(h)
    }
}

/// Raw voxel data of a file after header validation.
struct Raw {
    header: NiftiHeader,
    geometry: Geometry,
    bytes: Vec<u8>,
    dtype: DType,
    big_endian: bool,
    scale: Option<(f64, f64)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum DType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
}

impl DType {
    fn from_code(code: i16) -> Option<Self> {
        Some(match code {
            2 => DType::U8,
            256 => DType::I8,
            512 => DType::U16,
            4 => DType::I16,
            768 => DType::U32,
            8 => DType::I32,
            1280 => DType::U64,
            1024 => DType::I64,
            16 => DType::F32,
            64 => DType::F64,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            DType::U8 | DType::I8 => 1,
            DType::U16 | DType::I16 => 2,
            DType::U32 | DType::I32 | DType::F32 => 4,
            DType::U64 | DType::I64 | DType::F64 => 8,
        }
    }

    fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }
}

fn dtype_name(code: i16) -> &'static str {
    match code {
        0 => "unknown (0)",
        1 => "binary (1 bit)",
        32 => "complex64",
        128 => "RGB24",
        1536 => "float128",
        1792 => "complex128",
        2048 => "complex256",
        2304 => "RGBA32",
        _ => "unrecognised code",
    }
}

/// Reads a mask: every voxel whose (scaled) value is non-zero is foreground (1).
/// NaN or infinite values are an error: a mask with them is corrupt, and
/// silently calling them foreground or background would change lesion counts.
/// So is a fractional value: that is a probability map, and every voxel above
/// 0 would become a lesion voxel (the map's faint background included).
pub fn read_mask(path: &Path) -> Result<Volume<u8>> {
    let raw = read_raw(path, Pick::Only)?;
    let whole = |v: f64| {
        if whole_number(v) {
            Ok(u8::from(v != 0.0))
        } else {
            Err(())
        }
    };
    let data = match plain_mask(&raw) {
        Some(data) => data,
        None => decode(
            &raw,
            path,
            "a mask holds whole numbers (a probability map? score it with --prob, or threshold it first)",
            whole,
            |v| Ok(u8::from(v != 0)),
        )?,
    };
    Ok(Volume {
        data,
        geometry: raw.geometry,
        header: Header(raw.header),
    })
}

/// A finite whole number, give or take float32 scaling noise (a stored 255
/// with `scl_slope` 1/255 in float32 is 1.0000000591): a probability map has
/// values far from whole numbers, which is what a mask must not hold.
fn whole_number(v: f64) -> bool {
    v.is_finite() && (v - v.round()).abs() <= 1e-6 * v.abs().max(1.0)
}

/// Reads a label map: every voxel must hold a whole number in 0..=u32::MAX.
pub fn read_labels(path: &Path) -> Result<Volume<u32>> {
    let raw = read_raw(path, Pick::Only)?;
    let data = decode(
        &raw,
        path,
        "a label map holds whole numbers from 0 to 4294967295",
        |v| {
            if v >= 0.0 && v <= u32::MAX as f64 && v.fract() == 0.0 {
                Ok(v as u32)
            } else {
                Err(())
            }
        },
        |v| u32::try_from(v).map_err(|_| ()),
    )?;
    Ok(Volume {
        data,
        geometry: raw.geometry,
        header: Header(raw.header),
    })
}

/// Reads any supported data type as f32 after scaling (probability maps, images).
/// Non-finite values are returned as they are; callers decide what they mean.
pub fn read_f32(path: &Path) -> Result<Volume<f32>> {
    read_f32_channel(path, None)
}

/// [`read_f32`] of one channel of a file that holds several 3-D volumes one
/// after another (4-D, or 5-D with one axis past the third above 1): MONAI's
/// multi-channel outputs (one channel per class), frames of a time series.
/// `None` reads a 3-D file (or one whose extra axes are all 1).
pub fn read_f32_channel(path: &Path, channel: Option<usize>) -> Result<Volume<f32>> {
    let raw = read_raw(path, channel.map_or(Pick::Only, Pick::One))?;
    let data = decode_any(&raw, |v| v as f32);
    Ok(Volume {
        data,
        geometry: raw.geometry,
        header: Header(raw.header),
    })
}

/// Every 3-D volume of a file, in order (one for a 3-D file): the channels of
/// a multi-modal image as the Medical Segmentation Decathlon ships them (4-D,
/// modalities in dim[4]). The file is read once.
pub fn read_f32_volumes(path: &Path) -> Result<Vec<Volume<f32>>> {
    let mut raw = read_raw(path, Pick::All)?;
    let volume_bytes = raw.geometry.len() * raw.dtype.size();
    let count = raw.bytes.len() / volume_bytes;
    let mut volumes = Vec::with_capacity(count);
    // Split from the end, so that each volume's bytes are moved out once.
    for c in (0..count).rev() {
        let one = Raw {
            bytes: raw.bytes.split_off(c * volume_bytes),
            header: raw.header.clone(),
            geometry: raw.geometry.clone(),
            ..raw
        };
        volumes.push(Volume {
            data: decode_any(&one, |v| v as f32),
            geometry: one.geometry,
            header: Header(one.header),
        });
    }
    volumes.reverse();
    Ok(volumes)
}

/// Writes a label volume with the smallest unsigned type that holds `max_label`
/// (u8, u16 or u32), keeping the reference header's geometry. Written to a
/// temporary name and renamed.
pub fn write_labels(
    path: &Path,
    labels: &[u32],
    max_label: u32,
    reference: &Header,
    geometry: &Geometry,
) -> Result<()> {
    check_volume_path(path)?;
    let mut header = reference.0.clone();
    header.scl_slope = 1.0;
    header.scl_inter = 0.0;
    header.cal_min = 0.0;
    header.cal_max = max_label as f32;
    header.intent_code = 1002; // NIFTI_INTENT_LABEL
    header.dim = [3, 1, 1, 1, 1, 1, 1, 1];
    let shape = geometry.shape;
    let compress = path.to_string_lossy().ends_with(".gz");
    super::write_atomically(path, |tmp| {
        let opts = nifti::writer::WriterOptions::new(tmp)
            .reference_header(&header)
            .compress(compress);
        let fshape = ndarray::ShapeBuilder::f((shape[0], shape[1], shape[2]));
        let res = if max_label <= u8::MAX as u32 {
            let v: Vec<u8> = labels.iter().map(|&l| l as u8).collect();
            opts.write_nifti(
                &ndarray::Array3::from_shape_vec(fshape, v).map_err(|e| Error::input(path, e.to_string()))?,
            )
        } else if max_label <= u16::MAX as u32 {
            let v: Vec<u16> = labels.iter().map(|&l| l as u16).collect();
            opts.write_nifti(
                &ndarray::Array3::from_shape_vec(fshape, v).map_err(|e| Error::input(path, e.to_string()))?,
            )
        } else {
            opts.write_nifti(
                &ndarray::Array3::from_shape_vec(fshape, labels.to_vec())
                    .map_err(|e| Error::input(path, e.to_string()))?,
            )
        };
        res.map_err(|e| write_error(path, e))
    })
}

/// Writes a float32 volume (probability maps), keeping the reference header's
/// geometry; no scaling. Written to a temporary name and renamed.
pub fn write_f32(path: &Path, values: &[f32], reference: &Header, geometry: &Geometry) -> Result<()> {
    check_volume_path(path)?;
    let mut header = reference.0.clone();
    header.scl_slope = 1.0;
    header.scl_inter = 0.0;
    header.cal_min = 0.0;
    header.cal_max = 0.0;
    header.intent_code = 0;
    header.dim = [3, 1, 1, 1, 1, 1, 1, 1];
    let shape = geometry.shape;
    let compress = path.to_string_lossy().ends_with(".gz");
    super::write_atomically(path, |tmp| {
        let fshape = ndarray::ShapeBuilder::f((shape[0], shape[1], shape[2]));
        let arr =
            ndarray::Array3::from_shape_vec(fshape, values.to_vec()).map_err(|e| Error::input(path, e.to_string()))?;
        nifti::writer::WriterOptions::new(tmp)
            .reference_header(&header)
            .compress(compress)
            .write_nifti(&arr)
            .map_err(|e| write_error(path, e))
    })
}

/// Refuses an output name the NIfTI writer would change (it appends `.nii` to
/// any other name, so the file would not land where asked) and an existing folder.
fn check_volume_path(path: &Path) -> Result<()> {
    let name = path.to_string_lossy();
    if !(name.ends_with(".nii.gz") || name.ends_with(".nii")) {
        return Err(Error::input(
            path,
            "volumes are written as .nii or .nii.gz (lower case); give the output one of those extensions",
        ));
    }
    if path.is_dir() {
        return Err(Error::input(
            path,
            "is a folder; give a file name ending in .nii or .nii.gz",
        ));
    }
    Ok(())
}

fn write_error(path: &Path, e: nifti::NiftiError) -> Error {
    Error::Write {
        path: path.to_path_buf(),
        source: into_io(e),
    }
}

/// The crate's error as an I/O error, its own one where it wraps one (the
/// crate's message for that variant is the inner error's debug output).
fn into_io(e: nifti::NiftiError) -> std::io::Error {
    match e {
        nifti::NiftiError::Io(io) => io,
        other => std::io::Error::other(other.to_string()),
    }
}

/// `.nii.gz` (true) or `.nii` (false), in any letter case (`CASE.NII.GZ`
/// from Windows tools); None for other names.
fn nifti_kind(path: &Path) -> Option<bool> {
    let name = path.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".nii.gz") {
        Some(true)
    } else {
        name.ends_with(".nii").then_some(false)
    }
}

/// Where the voxels of a file are, from its header.
struct Layout {
    dtype: DType,
    shape: [usize; 3],
    /// 3-D volumes one after another (channels or frames); 1 for a 3-D file.
    volumes: usize,
    /// Bytes of one volume.
    volume_bytes: u64,
    /// Byte where the first volume starts.
    offset: u64,
}

impl Layout {
    fn of(path: &Path, header: &NiftiHeader) -> Result<Layout> {
        let dtype =
            DType::from_code(header.datatype).ok_or_else(|| Error::input(path, unsupported_dtype(header.datatype)))?;
        let (shape, volumes) = shape_of(path, header)?;
        let n: usize = shape.iter().product();
        if n > u32::MAX as usize {
            // Labels and run indices are u32: refuse rather than wrap.
            return Err(Error::input(
                path,
                format!("volume of {n} voxels is larger than 2^32 - 1"),
            ));
        }
        let offset = header.vox_offset;
        // Beyond 2^48 bytes no file is real, and offsets stay far from overflow.
        if !(352.0..=2f32.powi(48)).contains(&offset) {
            return Err(Error::input(
                path,
                format!("invalid vox_offset {offset}: the voxels of a .nii file start at byte 352 or later"),
            ));
        }
        Ok(Layout {
            dtype,
            shape,
            volumes,
            volume_bytes: (n * dtype.size()) as u64,
            // A fractional offset is truncated, as nibabel does.
            offset: offset as u64,
        })
    }

    /// Bytes of all volumes.
    fn data_bytes(&self) -> Option<u64> {
        self.volume_bytes.checked_mul(self.volumes as u64)
    }

    fn truncated(&self, path: &Path, got: u64) -> Error {
        let n = self.volume_bytes / self.dtype.size() as u64;
        let what = match self.volumes {
            1 => format!("{n} voxels of {} bytes", self.dtype.size()),
            v => format!("{v} volumes of {n} voxels of {} bytes", self.dtype.size()),
        };
        let want = self.data_bytes().unwrap_or(u64::MAX);
        Error::input(
            path,
            format!(
                "truncated data: {got} of {want} bytes ({what}) from byte {}",
                self.offset
            ),
        )
    }
}

/// Reads and checks the 348-byte header at the start of `src`.
fn read_header(path: &Path, src: &mut impl Read, gz: bool) -> Result<NiftiHeader> {
    let mut head = [0u8; 348];
    if let Err(e) = src.read_exact(&mut head) {
        // A small gzip file named .nii is shorter than a header: say what it is.
        let msg = if !gz && head.starts_with(&[0x1f, 0x8b]) {
            not_nifti1(i32::from_le_bytes([head[0], head[1], head[2], head[3]]))
        } else {
            stream_error(&e, gz, "in the header")
        };
        return Err(Error::input(path, msg));
    }
    let sizeof_hdr = i32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let little = sizeof_hdr == 348;
    if !little && sizeof_hdr.swap_bytes() != 348 {
        return Err(Error::input(path, not_nifti1(sizeof_hdr)));
    }
    // The crate takes the byte order from dim[0] (1..=7 when read right);
    // sizeof_hdr has told it already, so a bad dim[0] is reported as such.
    let dim0 = match little {
        true => i16::from_le_bytes([head[40], head[41]]),
        false => i16::from_be_bytes([head[40], head[41]]),
    };
    if !(1..=7).contains(&dim0) {
        return Err(Error::input(
            path,
            format!("invalid number of dimensions dim[0] = {dim0} (must be 1 to 7)"),
        ));
    }
    let header = NiftiHeader::from_reader(&head[..])
        .map_err(|e| Error::input(path, format!("invalid NIfTI-1 header: {}", into_io(e))))?;
    if &header.magic != b"n+1\0" {
        return Err(Error::input(
            path,
            format!(
                "header magic {:?} is not a single-file NIfTI-1 (\"n+1\"); .hdr/.img pairs are not supported",
                String::from_utf8_lossy(&header.magic).trim_end_matches('\0')
            ),
        ));
    }
    Ok(header)
}

/// A file's byte stream, positioned after its header.
enum Source {
    Plain(std::fs::File),
    Gz(Box<GzMembers<std::io::BufReader<std::fs::File>>>),
}

/// Opens a `.nii` or `.nii.gz` and reads its header and voxel layout; `meta`
/// is the file's (a `.nii`'s length bounds its voxels).
fn open(path: &Path) -> Result<(Source, std::fs::Metadata, NiftiHeader, Layout)> {
    let meta = std::fs::metadata(path).map_err(|e| Error::input(path, format!("cannot open: {e}")))?;
    if !meta.is_file() {
        return Err(Error::input(path, "not a regular file"));
    }
    let gz = nifti_kind(path).ok_or_else(|| Error::input(path, "not a NIfTI file (expected .nii or .nii.gz)"))?;
    let file = std::fs::File::open(path).map_err(|e| Error::input(path, format!("cannot open: {e}")))?;
    let (src, header) = if gz {
        let mut src = GzMembers::new(std::io::BufReader::with_capacity(1 << 16, file));
        let header = read_header(path, &mut src, gz)?;
        (Source::Gz(Box::new(src)), header)
    } else {
        let header = read_header(path, &mut std::io::BufReader::new(&file), gz)?;
        (Source::Plain(file), header)
    };
    let layout = Layout::of(path, &header)?;
    Ok((src, meta, header, layout))
}

/// How many 3-D volumes (channels or frames) a file holds, from its header.
pub fn volumes_in(path: &Path) -> Result<usize> {
    Ok(open(path)?.3.volumes)
}

/// Reads header and voxel bytes (of the volumes `pick` names).
/// The byte stream is read here rather than by the crate, which parses the
/// header only: the voxels start at `vox_offset` (the crate reads them right
/// after the header when a file has no extensions), and a `.nii.gz` is
/// inflated to its end, so that every gzip member's CRC and length are
/// checked (bit rot in a mask would otherwise be scored) and blocked gzip
/// (several members, as bgzip writes) is read whole.
fn read_raw(path: &Path, pick: Pick) -> Result<Raw> {
    let (src, meta, header, layout) = open(path)?;
    let range = pick_volumes(path, &layout, pick)?;
    let before = range.start as u64 * layout.volume_bytes;
    let len = range.len() as u64 * layout.volume_bytes;
    let bytes = match src {
        Source::Gz(mut src) => {
            let fail = |e: std::io::Error, what: &str| Error::input(path, stream_error(&e, true, what));
            let whole = layout.data_bytes().ok_or_else(|| layout.truncated(path, 0))?;
            // Deflate packs at most 1032 bytes into one: a header that declares
            // more than that is a cut-short or corrupt file, said before any
            // allocation (a 300-byte file could otherwise ask for 34 GB).
            if whole / DEFLATE_MAX_RATIO > meta.len() {
                return Err(Error::input(
                    path,
                    format!(
                        "truncated or corrupt: the header declares {whole} bytes of voxels, more than this \
                         {}-byte gzip file can hold",
                        meta.len()
                    ),
                ));
            }
            // Extensions and padding up to the voxels, and the volumes before those read.
            let skip = layout.offset - 348 + before;
            let skipped = std::io::copy(&mut (&mut src).take(skip), &mut std::io::sink())
                .map_err(|e| fail(e, "before the voxels read"))?;
            if skipped < skip {
                return Err(layout.truncated(path, skipped.saturating_sub(layout.offset - 348)));
            }
            let bytes = read_volumes(path, &mut src, &layout, len, &fail)?;
            // Inflate to the end: the checksums are only checked there.
            let rest = std::io::copy(&mut src, &mut std::io::sink())
                .map_err(|e| fail(e, "after the voxels, where the checksums are"))?;
            let got = before + len + rest;
            if got < whole {
                return Err(layout.truncated(path, got));
            }
            bytes
        }
        Source::Plain(mut file) => {
            let fail = |e: std::io::Error, what: &str| Error::input(path, stream_error(&e, false, what));
            // Every volume must be there, though not all may be read; known before
            // reading, so a short file allocates nothing.
            let end = layout.data_bytes().and_then(|b| b.checked_add(layout.offset));
            if end.is_none_or(|end| meta.len() < end) {
                return Err(layout.truncated(path, meta.len().saturating_sub(layout.offset)));
            }
            std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(layout.offset + before))
                .map_err(|e| fail(e, "in the voxel data"))?;
            read_volumes(path, &mut file, &layout, len, &fail)?
        }
    };

    let mut geometry = Geometry {
        shape: layout.shape,
        spacing: [1, 2, 3].map(|a| f64::from(header.pixdim[a]).abs()),
        affine: affine_of(&header),
    };
    let usable = |s: &[f64; 3]| s.iter().all(|s| s.is_finite() && *s > 0.0);
    if !usable(&geometry.spacing) && header.sform_code > 0 {
        // Some converters leave pixdim 0 beside a valid sform (nibabel reads
        // such files): the voxel size is then the length of its columns.
        let a = &geometry.affine;
        let columns = [0, 1, 2].map(|c| (0..3).map(|r| a[r][c] * a[r][c]).sum::<f64>().sqrt());
        if usable(&columns) {
            geometry.spacing = columns;
        }
    }
    if !usable(&geometry.spacing) {
        return Err(Error::input(
            path,
            format!("invalid voxel spacing {:?}", geometry.spacing),
        ));
    }
    if geometry.affine.iter().flatten().any(|v| !v.is_finite()) {
        return Err(Error::input(
            path,
            format!(
                "the affine (voxel to world) holds a NaN or infinity: {:?}",
                geometry.affine
            ),
        ));
    }
    let (slope, inter) = (f64::from(header.scl_slope), f64::from(header.scl_inter));
    if slope != 0.0 && slope.is_finite() && !inter.is_finite() {
        // nibabel refuses this too ("valid slope but invalid intercept"): no value is known.
        return Err(Error::input(
            path,
            format!("scl_slope is {slope} but scl_inter is {inter}: the voxel values cannot be scaled"),
        ));
    }
    let scale = if slope == 0.0 || !slope.is_finite() || (slope == 1.0 && inter == 0.0) {
        None
    } else {
        Some((slope, inter))
    };
    let big_endian = header.endianness == nifti::Endianness::Big;
    Ok(Raw {
        header,
        geometry,
        bytes,
        dtype: layout.dtype,
        big_endian,
        scale,
    })
}

/// A sentence for an I/O error met `place` in a file ("in the header").
fn stream_error(e: &std::io::Error, gz: bool, place: &str) -> String {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof if gz => format!("truncated gzip stream: cut short {place}"),
        std::io::ErrorKind::UnexpectedEof => format!("truncated file: cut short {place}"),
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData if gz => {
            format!("corrupt gzip data {place}: {e}")
        }
        _ => format!("cannot read the file ({place}): {e}"),
    }
}

/// Which of a file's 3-D volumes to read.
#[derive(Clone, Copy)]
enum Pick {
    /// The only one (extra axes of size 1).
    Only,
    /// One channel or frame.
    One(usize),
    All,
}

/// The volumes to read, as a range of their indices.
fn pick_volumes(path: &Path, layout: &Layout, pick: Pick) -> Result<Range<usize>> {
    let volumes = layout.volumes;
    match pick {
        Pick::All => Ok(0..volumes),
        Pick::One(c) if c < volumes => Ok(c..c + 1),
        Pick::One(c) => Err(Error::input(
            path,
            format!("has {volumes} channel(s) (0..{volumes}); channel {c} was asked for"),
        )),
        Pick::Only if volumes == 1 => Ok(0..1),
        Pick::Only => Err(Error::input(
            path,
            format!("holds {volumes} 3-D volumes (channels or frames); one 3-D volume is expected here"),
        )),
    }
}

/// The most that deflate can expand (RFC 1951: a 258-byte match per 2 bits, ~1032:1).
const DEFLATE_MAX_RATIO: u64 = 1032;

/// Reads `len` bytes of voxels from `src`.
fn read_volumes(
    path: &Path,
    src: &mut impl Read,
    layout: &Layout,
    len: u64,
    fail: &impl Fn(std::io::Error, &str) -> Error,
) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(len as usize)
        .map_err(|_| Error::input(path, format!("cannot allocate {len} bytes for the voxels")))?;
    src.take(len)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(e, "in the voxel data"))?;
    if (bytes.len() as u64) < len {
        return Err(layout.truncated(path, bytes.len() as u64));
    }
    Ok(bytes)
}

/// The spatial shape, and how many 3-D volumes follow one another in the file:
/// the product of dim[4..] (time frames, or MONAI's channels in dim[4], or the
/// vector components ITK writes in dim[5]), of which one may exceed 1.
fn shape_of(path: &Path, h: &NiftiHeader) -> Result<([usize; 3], usize)> {
    // The file holds dim[] as signed 16-bit integers; the crate keeps the bits as u16.
    let dim = h.dim.map(|d| d as i16);
    let ndim = dim[0];
    if !(1..=7).contains(&ndim) {
        return Err(Error::input(
            path,
            format!("invalid number of dimensions dim[0] = {ndim} (must be 1 to 7)"),
        ));
    }
    let dims = &dim[1..=ndim as usize];
    if let Some(a) = dims.iter().position(|&d| d <= 0) {
        return Err(Error::input(
            path,
            format!(
                "dim[{}] = {} (dimensions must be positive): dim = {dims:?}",
                a + 1,
                dims[a]
            ),
        ));
    }
    let dims: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
    let extra = dims.get(3..).unwrap_or(&[]);
    if extra.iter().filter(|&&d| d > 1).count() > 1 {
        return Err(Error::input(
            path,
            format!(
                "{ndim}-D volume (dim = {dims:?}); only 3-D volumes and one axis of channels or frames are supported"
            ),
        ));
    }
    let mut shape = [1usize; 3];
    for (s, &d) in shape.iter_mut().zip(&dims) {
        *s = d;
    }
    Ok((shape, extra.iter().product()))
}

/// NIfTI qform: quaternion (b, c, d) plus offsets, pixdim scaling, qfac = pixdim[0].
fn affine_of(h: &NiftiHeader) -> [[f64; 4]; 3] {
    let f = |v: f32| f64::from(v);
    if h.sform_code > 0 {
        return [h.srow_x.map(f), h.srow_y.map(f), h.srow_z.map(f)];
    }
    let (dx, dy, dz) = (f(h.pixdim[1]).abs(), f(h.pixdim[2]).abs(), f(h.pixdim[3]).abs());
    if h.qform_code > 0 {
        let (b, c, d) = (f(h.quatern_b), f(h.quatern_c), f(h.quatern_d));
        let a2 = 1.0 - (b * b + c * c + d * d);
        let (a, b, c, d) = if a2 < 1e-7 {
            // Rounding made the quaternion slightly non-unit: renormalise (a = 0).
            let n = (b * b + c * c + d * d).sqrt();
            (0.0, b / n, c / n, d / n)
        } else {
            (a2.sqrt(), b, c, d)
        };
        let qfac = if h.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
        let r = [
            [
                a * a + b * b - c * c - d * d,
                2.0 * (b * c - a * d),
                2.0 * (b * d + a * c),
            ],
            [
                2.0 * (b * c + a * d),
                a * a + c * c - b * b - d * d,
                2.0 * (c * d - a * b),
            ],
            [
                2.0 * (b * d - a * c),
                2.0 * (c * d + a * b),
                a * a + d * d - c * c - b * b,
            ],
        ];
        let off = [f(h.quatern_x), f(h.quatern_y), f(h.quatern_z)];
        let mut m = [[0.0; 4]; 3];
        for i in 0..3 {
            m[i] = [r[i][0] * dx, r[i][1] * dy, r[i][2] * dz * qfac, off[i]];
        }
        return m;
    }
    [[dx, 0.0, 0.0, 0.0], [0.0, dy, 0.0, 0.0], [0.0, 0.0, dz, 0.0]]
}

fn unsupported_dtype(code: i16) -> String {
    format!(
        "unsupported NIfTI data type {code} ({}); supported: uint8, int8, uint16, int16, uint32, int32, uint64, int64, float32, float64",
        dtype_name(code)
    )
}

fn not_nifti1(sizeof_hdr: i32) -> String {
    if sizeof_hdr.to_le_bytes().starts_with(&[0x1f, 0x8b]) {
        "gzip-compressed, but not named .nii.gz: rename it to .nii.gz".to_string()
    } else if sizeof_hdr == 540 || sizeof_hdr.swap_bytes() == 540 {
        "NIfTI-2 files are not supported; convert to NIfTI-1 (e.g. nibabel.Nifti1Image)".to_string()
    } else {
        format!("not a NIfTI-1 file (header size {sizeof_hdr}, expected 348)")
    }
}

/// Iterator over the voxel values of `$raw` read as `$t` (file byte order),
/// mapped by `$f`: all of them, or those of the voxel range `$at`.
macro_rules! values {
    ($raw:expr, $t:ty, $f:expr) => {
        values!($raw, $t, 0..$raw.geometry.len(), $f)
    };
    ($raw:expr, $t:ty, $at:expr, $f:expr) => {{
        const S: usize = std::mem::size_of::<$t>();
        let at: std::ops::Range<usize> = $at;
        let be = $raw.big_endian;
        $raw.bytes[at.start * S..at.end * S].chunks_exact(S).map(move |c| {
            let a: [u8; S] = c.try_into().expect("chunk size");
            let v = if be {
                <$t>::from_be_bytes(a)
            } else {
                <$t>::from_le_bytes(a)
            };
            $f(v)
        })
    }};
}

/// Decodes to `T`; floats (and scaled integers) go through `on_float`, which
/// may reject values; unscaled integers go through the cheaper `on_int`.
fn decode<T>(
    raw: &Raw,
    path: &Path,
    rule: &str,
    on_float: impl Fn(f64) -> Result<T, ()>,
    on_int: impl Fn(i128) -> Result<T, ()>,
) -> Result<Vec<T>> {
    let at = |idx: usize| {
        let [nx, ny, _] = raw.geometry.shape;
        format!("voxel ({}, {}, {})", idx % nx, (idx / nx) % ny, idx / (nx * ny))
    };
    if raw.dtype.is_float() || raw.scale.is_some() {
        // decode_any applies scl_slope/scl_inter.
        let vals: Vec<f64> = decode_any(raw, |v| v);
        let mut out = Vec::with_capacity(vals.len());
        for (idx, v) in vals.into_iter().enumerate() {
            if !v.is_finite() {
                let msg = format!("non-finite value {v} at {}; a mask must hold finite numbers", at(idx));
                return Err(Error::input(path, msg));
            }
            out.push(
                on_float(v).map_err(|()| Error::input(path, format!("invalid value {v} at {}: {rule}", at(idx))))?,
            );
        }
        return Ok(out);
    }
    // Collecting an iterator of Results into Result<Vec> allocates only the output.
    let check = |(idx, v): (usize, i128)| {
        on_int(v).map_err(|()| Error::input(path, format!("invalid value {v} at {}: {rule}", at(idx))))
    };
    match raw.dtype {
        DType::U8 => raw.bytes[..raw.geometry.len()]
            .iter()
            .map(|&b| b as i128)
            .enumerate()
            .map(check)
            .collect(),
        DType::I8 => values!(raw, i8, i128::from).enumerate().map(check).collect(),
        DType::U16 => values!(raw, u16, i128::from).enumerate().map(check).collect(),
        DType::I16 => values!(raw, i16, i128::from).enumerate().map(check).collect(),
        DType::U32 => values!(raw, u32, i128::from).enumerate().map(check).collect(),
        DType::I32 => values!(raw, i32, i128::from).enumerate().map(check).collect(),
        DType::U64 => values!(raw, u64, i128::from).enumerate().map(check).collect(),
        DType::I64 => values!(raw, i64, i128::from).enumerate().map(check).collect(),
        DType::F32 | DType::F64 => unreachable!("floats are decoded above"),
    }
}

/// The mask of an unscaled volume in one plain compare per voxel, which the
/// compiler vectorises: `decode`'s per-voxel error plumbing made reading a
/// 512³ mask several times slower than decompressing it. `None` when the data
/// are scaled, or floats with a NaN, infinity or fraction (then `decode` finds the first
/// one for the error message).
fn plain_mask(raw: &Raw) -> Option<Vec<u8>> {
    if raw.scale.is_some() {
        return None;
    }
    // Zero has the same bytes in either byte order, so integers need no swap.
    fn nonzero<const S: usize>(bytes: &[u8], out: &mut [u8]) {
        for (o, c) in out.iter_mut().zip(bytes.chunks_exact(S)) {
            *o = u8::from(c.iter().fold(0, |a, &b| a | b) != 0);
        }
    }
    let n = raw.geometry.len();
    let bytes = |at: Range<usize>, s: usize| &raw.bytes[at.start * s..at.end * s];
    // Written page by page, leaving the pages of all-zero bytes untouched
    // (io::sparse_mask); -0.0 is background too but simply gets written.
    // Float values other than 0 and 1 are noted on the way (masks almost
    // never hold any); then every value must be a whole number, or the
    // checked path names the first that is not (NaN, ∞, a probability).
    let size = raw.dtype.size();
    let mut other = false;
    let mask = sparse_mask(
        n,
        |at| all_zero(bytes(at, size)),
        |at, out| match raw.dtype {
            DType::U8 | DType::I8 => {
                for (o, &b) in out.iter_mut().zip(bytes(at, 1)) {
                    *o = u8::from(b != 0);
                }
            }
            DType::U16 | DType::I16 => nonzero::<2>(bytes(at, 2), out),
            DType::U32 | DType::I32 => nonzero::<4>(bytes(at, 4), out),
            DType::U64 | DType::I64 => nonzero::<8>(bytes(at, 8), out),
            DType::F32 => {
                for (o, v) in out.iter_mut().zip(values!(raw, f32, at, |v: f32| v)) {
                    *o = u8::from(v != 0.0);
                    other |= v != 0.0 && v != 1.0;
                }
            }
            DType::F64 => {
                for (o, v) in out.iter_mut().zip(values!(raw, f64, at, |v: f64| v)) {
                    *o = u8::from(v != 0.0);
                    other |= v != 0.0 && v != 1.0;
                }
            }
        },
    );
    let whole = !other
        || match raw.dtype {
            DType::F32 => values!(raw, f32, |v: f32| whole_number(f64::from(v))).all(|f| f),
            DType::F64 => values!(raw, f64, whole_number).all(|f| f),
            _ => true,
        };
    whole.then_some(mask)
}

/// Decodes every value as f64 (with scaling) and maps it.
fn decode_any<T>(raw: &Raw, f: impl Fn(f64) -> T) -> Vec<T> {
    let g = |v: f64| match raw.scale {
        Some((s, i)) => f(v * s + i),
        None => f(v),
    };
    match raw.dtype {
        DType::U8 => raw.bytes[..raw.geometry.len()].iter().map(|&b| g(b as f64)).collect(),
        DType::I8 => values!(raw, i8, |v: i8| g(v as f64)).collect(),
        DType::U16 => values!(raw, u16, |v: u16| g(v as f64)).collect(),
        DType::I16 => values!(raw, i16, |v: i16| g(v as f64)).collect(),
        DType::U32 => values!(raw, u32, |v: u32| g(v as f64)).collect(),
        DType::I32 => values!(raw, i32, |v: i32| g(v as f64)).collect(),
        DType::U64 => values!(raw, u64, |v: u64| g(v as f64)).collect(),
        DType::I64 => values!(raw, i64, |v: i64| g(v as f64)).collect(),
        DType::F32 => values!(raw, f32, |v: f32| g(v as f64)).collect(),
        DType::F64 => values!(raw, f64, g).collect(),
    }
}
