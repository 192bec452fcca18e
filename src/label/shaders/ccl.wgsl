// GPU connected-component labelling: union-find over the runs of foreground.
//
// The CPU scans the mask once for runs (maximal stretches of foreground along
// i), as its own labeller does, and uploads them: per run, start | last << 16
// (i of its first and last voxel), and per row (j, k) the index of its first
// run. Run ids follow storage order. One thread per row then sweeps its runs
// against the runs of the earlier rows that can touch them — (j-1, k),
// (j, k-1) and the diagonals (j-1, k-1), (j+1, k-1) — exactly like the CPU's
// merge, with x tolerance 0 (faces) or 1 (edges, corners) per connectivity.
// Union links the larger root under the smaller with atomicMin, so a
// component's root is its first run in storage order; `resolve` writes each
// run's root, and the CPU numbers components 1..N from that in one pass, which
// gives byte-identical labels to the CPU backend.
//
// Every loop checks on exit that it ended by its own condition, and if not
// sets the flag word L[nruns]: llvmpipe (lavapipe, the software adapter)
// ends all loops of an invocation after 65 535 iterations in total, which a
// row of thousands of noisy runs reaches; the host then refuses the result
// instead of returning labels with unions missing.

struct Params {
    ny: u32,
    nz: u32,
    nrows: u32,
    nruns: u32,
    // workgroups per dispatch row (grids are 2-D: at most 65535 per dimension)
    wg_x_row: u32,
    wg_x_run: u32,
    // connectivity: 6, 18 or 26
    conn: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
// Per run: start | last << 16.
@group(0) @binding(1) var<storage, read> runs: array<u32>;
// Per row: index of its first run; row_ptr[nrows] = nruns.
@group(0) @binding(2) var<storage, read> row_ptr: array<u32>;
// Union-find parent per run; after `resolve`, the root per run. One more
// word, L[nruns], is the flag of a loop cut short (zero-initialised).
@group(0) @binding(3) var<storage, read_write> L: array<atomic<u32>>;

fn cut_short() {
    atomicStore(&L[P.nruns], 1u);
}

fn find(x0: u32) -> u32 {
    var x = x0;
    var done = false;
    loop {
        let p = atomicLoad(&L[x]);
        if p == x {
            done = true;
            break;
        }
        // Path halving; parents only ever decrease, so atomicMin keeps that true.
        let gp = atomicLoad(&L[p]);
        atomicMin(&L[x], gp);
        x = p;
    }
    if !done {
        cut_short();
    }
    return x;
}

// Playne & Hawick style union: retry until the larger root was linked.
fn unite(a0: u32, b0: u32) {
    var a = find(a0);
    var b = find(b0);
    loop {
        if a == b {
            return;
        }
        if a < b {
            let t = a;
            a = b;
            b = t;
        }
        // a > b: link a under b. If a stopped being a root meanwhile, the edge
        // a -> old may be replaced; uniting old with b below restores it.
        let old = atomicMin(&L[a], b);
        if old == a {
            return;
        }
        a = find(old);
        b = find(b);
    }
    // Only reached when the loop was ended from outside (it leaves by return).
    cut_short();
}

@compute @workgroup_size(256)
fn init(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let r = (wid.y * P.wg_x_run + wid.x) * 256u + lid;
    if r < P.nruns {
        atomicStore(&L[r], r);
    }
}

// Unite the runs of row `cur` with the touching runs of row `prev`.
fn sweep(cur: u32, prev: u32, tol: u32) {
    var i = row_ptr[cur];
    let ie = row_ptr[cur + 1u];
    var j = row_ptr[prev];
    let je = row_ptr[prev + 1u];
    while i < ie && j < je {
        let a = runs[i];
        let b = runs[j];
        let a_start = a & 0xffffu;
        let a_last = a >> 16u;
        let b_start = b & 0xffffu;
        let b_last = b >> 16u;
        if a_start <= b_last + tol && b_start <= a_last + tol {
            unite(i, j);
        }
        if a_last <= b_last {
            i++;
        } else {
            j++;
        }
    }
    if i < ie && j < je {
        cut_short();
    }
}

@compute @workgroup_size(256)
fn merge(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = (wid.y * P.wg_x_row + wid.x) * 256u + lid;
    if row >= P.nrows || row_ptr[row] == row_ptr[row + 1u] {
        return;
    }
    let y = row % P.ny;
    let z = row / P.ny;
    let wide = select(0u, 1u, P.conn >= 18u); // faces-adjacent rows: diagonal contact in x
    let corner = select(0u, 1u, P.conn == 26u); // diagonal rows: corner contact in x
    if y > 0u {
        sweep(row, row - 1u, wide);
    }
    if z > 0u {
        sweep(row, row - P.ny, wide);
        if P.conn >= 18u {
            if y > 0u {
                sweep(row, row - P.ny - 1u, corner);
            }
            if y + 1u < P.ny {
                sweep(row, row - P.ny + 1u, corner);
            }
        }
    }
}

@compute @workgroup_size(256)
fn resolve(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let r = (wid.y * P.wg_x_run + wid.x) * 256u + lid;
    if r < P.nruns {
        atomicStore(&L[r], find(r));
    }
}
