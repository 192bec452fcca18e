//! A deliberately plain breadth-first labeller, used as the reference the fast
//! backends are tested against. Scanning voxels in storage order and flooding
//! each new component gives the numbering contract directly.

use super::{Components, Connectivity, LesionStats};
use std::collections::VecDeque;

/// Labels `mask` by breadth-first flood fill (slow; for tests).
pub fn label_bfs(mask: &[u8], shape: [usize; 3], connectivity: Connectivity) -> Components {
    let [nx, ny, nz] = shape;
    let n = nx * ny * nz;
    assert_eq!(mask.len(), n);
    let mut offsets = Vec::new();
    for dz in -1..=1 {
        for dy in -1..=1 {
            for dx in -1..=1 {
                if connectivity.is_neighbour([dx, dy, dz]) {
                    offsets.push([dx, dy, dz]);
                }
            }
        }
    }
    let mut labels = vec![0u32; n];
    let mut lesions: Vec<LesionStats> = Vec::new();
    let mut queue = VecDeque::new();
    for start in 0..n {
        if mask[start] == 0 || labels[start] != 0 {
            continue;
        }
        let id = lesions.len() as u32 + 1;
        let mut stats = LesionStats::new();
        labels[start] = id;
        queue.push_back(start);
        while let Some(v) = queue.pop_front() {
            let (x, y, z) = (v % nx, (v / nx) % ny, v / (nx * ny));
            stats.add_run(x, x + 1, y, z);
            for d in &offsets {
                let (qx, qy, qz) = (x as i64 + d[0] as i64, y as i64 + d[1] as i64, z as i64 + d[2] as i64);
                if qx < 0 || qy < 0 || qz < 0 || qx >= nx as i64 || qy >= ny as i64 || qz >= nz as i64 {
                    continue;
                }
                let q = qx as usize + nx * (qy as usize + ny * qz as usize);
                if mask[q] != 0 && labels[q] == 0 {
                    labels[q] = id;
                    queue.push_back(q);
                }
            }
        }
        lesions.push(stats);
    }
    Components { shape, labels, lesions }
}
