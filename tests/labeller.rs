//! The labeller suite: every backend must equal the BFS reference (property
//! tests over random shapes, densities and all connectivities) and cc3d's
//! committed labels (same numbering).

mod common;

use common::{Backend, assert_same_as_reference, fixtures, random_mask};
use lesioneval::io;
use lesioneval::label::{Components, Connectivity, label_cpu, label_cpu_recycling, label_cpu_slabs, label_gpu};
use proptest::prelude::*;
use serde::Deserialize;
use std::collections::BTreeMap;

fn gpu(mask: &[u8], shape: [usize; 3], c: Connectivity) -> Components {
    label_gpu(mask, shape, c).unwrap_or_else(|e| panic!("GPU labelling failed on {shape:?} c{c}: {e}"))
}

/// The CPU labeller cut into three z-slabs even on tiny volumes (clamped to
/// one per plane), so every case also tests slab stitching and the merging of
/// statistics of components that cross slabs.
fn cpu_slabs(mask: &[u8], shape: [usize; 3], c: Connectivity) -> Components {
    label_cpu_slabs(mask, shape, c, 3)
}

/// One slab per plane: every plane boundary is a stitch.
fn cpu_plane_slabs(mask: &[u8], shape: [usize; 3], c: Connectivity) -> Components {
    label_cpu_slabs(mask, shape, c, usize::MAX)
}

/// Writing into the labels of a dense earlier result of the same size (its
/// lesions' boxes are cleared first), as a folder run reuses a buffer.
fn cpu_recycling(mask: &[u8], shape: [usize; 3], c: Connectivity) -> Components {
    let n = mask.len();
    let dense = random_mask([n, 1, 1], 0.7, 99);
    let previous = label_cpu(&dense, [n, 1, 1], Connectivity::Six);
    label_cpu_recycling(mask, shape, c, previous)
}

/// The same, from an earlier result without statistics (nothing tells where
/// its labels are, so the whole volume is cleared).
fn cpu_recycling_bare(mask: &[u8], shape: [usize; 3], c: Connectivity) -> Components {
    let n = mask.len();
    let dense = random_mask([n, 1, 1], 0.7, 99);
    let previous = lesioneval::label::label_cpu_slabs_without_stats(&dense, [n, 1, 1], Connectivity::Six, 1);
    label_cpu_recycling(mask, shape, c, previous)
}

/// Every backend the suite runs against: the GPU joins when an adapter exists
/// (CI installs lavapipe and sets LESIONEVAL_REQUIRE_GPU=1, making its absence a failure).
fn backends() -> Vec<(&'static str, Backend)> {
    let mut b: Vec<(&'static str, Backend)> = vec![
        ("cpu", label_cpu),
        ("cpu_slabs", cpu_slabs),
        ("cpu_plane_slabs", cpu_plane_slabs),
        ("cpu_recycling", cpu_recycling),
        ("cpu_recycling_bare", cpu_recycling_bare),
    ];
    if common::gpu_available() {
        b.push(("gpu", gpu));
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 120, ..ProptestConfig::default() })]

    #[test]
    fn backends_equal_bfs_reference(
        nx in 1usize..14, ny in 1usize..14, nz in 1usize..10,
        density in prop_oneof![Just(0.0), Just(1.0), 0.0f64..1.0],
        seed in any::<u64>(),
    ) {
        let shape = [nx, ny, nz];
        let mask = random_mask(shape, density, seed);
        for (_, backend) in backends() {
            for c in Connectivity::ALL {
                assert_same_as_reference(backend, &mask, shape, c);
            }
        }
    }
}

#[test]
fn long_rows_and_thin_volumes() {
    // Rows longer than the 8-byte skip, runs at row ends, 1-voxel-thick volumes, and noisy rows
    // of 16+ runs (the CPU writer's dense-row path when they share one label, run by run when not).
    // Rows of 8+ runs after a row of one label take the CPU union's bit-map test: [300, 9, 8] at
    // 0.93 has runs longer than 64 voxels (windows over several words), [150, 12, 10] at 0.6
    // a bit map with a tail word. Noisy rows facing a row of several labels find their exactly
    // overlapping runs (6-conn; 18-conn's diagonals) from the rows' common foreground bits:
    // [520, 5, 4] at 0.35 and [130, 7, 6] at 0.8 give pairs in every word, runs across words.
    for (shape, d) in [
        ([520, 5, 4], 0.35),
        ([130, 7, 6], 0.8),
        ([200, 4, 3], 0.5),
        ([256, 6, 5], 0.7),
        ([300, 9, 8], 0.93),
        ([150, 12, 10], 0.6),
        ([64, 16, 16], 0.55),
        ([67, 3, 2], 0.3),
        ([1, 40, 30], 0.5),
        ([50, 1, 20], 0.4),
        ([33, 33, 1], 0.6),
        ([129, 2, 2], 0.97),
    ] {
        let mask = random_mask(shape, d, 7);
        for (_, backend) in backends() {
            for c in Connectivity::ALL {
                assert_same_as_reference(backend, &mask, shape, c);
            }
        }
    }
}

/// Rows far longer than any medical volume's, with runs that end at the
/// row's end, on the CPU paths (the GPU packs x in 16 bits and refuses rows
/// over 65 536 voxels; tests/gpu.rs has its own long-row test).
#[test]
fn very_long_rows() {
    for (nx, d) in [(65_535, 0.5), (65_536, 0.97), (70_001, 0.5)] {
        let shape = [nx, 3, 2];
        let mask = random_mask(shape, d, 11);
        for (_, backend) in backends().into_iter().filter(|(name, _)| name.starts_with("cpu")) {
            for c in Connectivity::ALL {
                assert_same_as_reference(backend, &mask, shape, c);
            }
        }
    }
}

#[derive(Deserialize)]
struct Manifest {
    tool: String,
    cases: Vec<CclCase>,
}

#[derive(Deserialize)]
struct CclCase {
    name: String,
    input: String,
    labels: BTreeMap<String, String>,
    count: BTreeMap<String, u32>,
    sizes: BTreeMap<String, Vec<u64>>,
}

#[test]
fn labels_equal_cc3d_fixtures() {
    let dir = fixtures().join("ccl");
    let manifest: Manifest =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert!(manifest.tool.contains("connected-components-3d 4.1.1"));
    assert!(manifest.cases.len() >= 20);
    let mut checked = 0;
    for case in &manifest.cases {
        let mask = io::read_mask(&dir.join(&case.input)).unwrap();
        for (conn, path) in &case.labels {
            let c: Connectivity = conn.parse().unwrap();
            let want = io::read_labels(&dir.join(path)).unwrap();
            for (name, backend) in backends() {
                let got = backend(&mask.data, mask.geometry.shape, c);
                assert_eq!(got.count(), case.count[conn], "{} c{conn} {name}: count", case.name);
                assert!(
                    got.labels == want.data,
                    "{} c{conn} {name}: labels differ from cc3d",
                    case.name
                );
                let sizes: Vec<u64> = got.lesions.iter().map(|l| l.voxels).collect();
                assert_eq!(sizes, case.sizes[conn], "{} c{conn} {name}: sizes", case.name);
                checked += 1;
            }
        }
    }
    assert!(checked >= 60, "only {checked} label volumes checked");
}

#[test]
fn rootlets_component_counts() {
    // DESIGN.md: the model output has ~21 components at 26-conn, the manual one 5.
    let m = io::read_mask(&fixtures().join("sct/t2_seg-deepseg_rootlets.nii.gz")).unwrap();
    assert_eq!(
        label_cpu(&m.data, m.geometry.shape, Connectivity::TwentySix).count(),
        21
    );
    let g = io::read_mask(&fixtures().join("sct/t2_seg-deepseg_rootlets-manual.nii.gz")).unwrap();
    assert_eq!(label_cpu(&g.data, g.geometry.shape, Connectivity::TwentySix).count(), 5);
}

/// A label volume of 32 MiB or more is fresh memory, whose pages the CPU writer maps ahead of its
/// writes: whole pieces where most rows hold foreground, and stretches of consecutive foreground
/// rows elsewhere (widened to whole pages, clamped at the volume's end); 2 MiB regions that are
/// solid or have a quarter of their pages under lesions get huge pages. Known boxes, one of them
/// filling whole planes, one covering 39 % of the rows of 14 planes, and one ending at the last
/// voxel, must come out with exact labels and statistics whatever the slab split.
#[test]
fn large_sparse_volume_with_known_boxes() {
    let shape = [256usize, 256, 130];
    let [nx, ny, nz] = shape;
    // (x, y, z) half-open ranges, in the order of their first voxel in storage order.
    let boxes = [
        ([5, 20], [10, 40], [2, 5]),
        ([100, 103], [100, 101], [2, 3]),
        ([0, 200], [0, 100], [10, 24]),
        ([0, 10], [0, 256], [50, 80]),
        ([250, 256], [200, 256], [100, 130]),
        ([0, 1], [0, 5], [129, 130]),
    ];
    let mut mask = vec![0u8; nx * ny * nz];
    for (x, y, z) in &boxes {
        for k in z[0]..z[1] {
            for j in y[0]..y[1] {
                mask[x[0] + nx * (j + ny * k)..x[1] + nx * (j + ny * k)].fill(1);
            }
        }
    }
    for c in [Connectivity::Six, Connectivity::TwentySix] {
        for comps in [label_cpu(&mask, shape, c), label_cpu_slabs(&mask, shape, c, 7)] {
            assert_eq!(comps.count() as usize, boxes.len(), "c{c}");
            for (id, (x, y, z)) in boxes.iter().enumerate() {
                let l = &comps.lesions[id];
                assert_eq!(
                    l.voxels as usize,
                    (x[1] - x[0]) * (y[1] - y[0]) * (z[1] - z[0]),
                    "box {id} c{c}"
                );
                assert_eq!(l.bbox_min, [x[0], y[0], z[0]], "box {id} c{c}");
                assert_eq!(l.bbox_max, [x[1] - 1, y[1] - 1, z[1] - 1], "box {id} c{c}");
                for k in z[0]..z[1] {
                    for j in y[0]..y[1] {
                        let row = nx * (j + ny * k);
                        assert!(
                            comps.labels[row + x[0]..row + x[1]]
                                .iter()
                                .all(|&v| v as usize == id + 1)
                        );
                    }
                }
            }
            let foreground = comps.labels.iter().filter(|&&v| v != 0).count();
            assert_eq!(foreground, mask.iter().filter(|&&v| v != 0).count(), "c{c}");
        }
    }
}
