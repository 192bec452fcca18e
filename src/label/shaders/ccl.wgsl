// GPU connected-component labelling (union-find), numbering identical to the CPU.
//
// L[v] holds, per voxel v (storage order, i fastest):
//   background: INVALID; foreground: a parent index, or after `assign`, a root's
//   label with FLAG set; after `finalize`, the final label (0 = background).
// Union links the larger root under the smaller (atomicMin), so a component's
// root is its smallest index = its first voxel in storage order. Ranking the
// roots in index order (tile counts + exclusive scan + in-tile scan) then gives
// labels 1..N in exactly the CPU's order.

struct Params {
    nx: u32,
    ny: u32,
    nz: u32,
    n: u32,
    // workgroups per dispatch row, for per-voxel kernels and per-tile kernels
    wg_x_vox: u32,
    wg_x_tile: u32,
    // largest number of non-zero offsets of a neighbour: 1 (6-conn), 2 (18), 3 (26)
    max_nonzero: u32,
    num_tiles: u32,
}

const INVALID: u32 = 0xffffffffu;
const FLAG: u32 = 0x80000000u;
const TILE: u32 = 2048u; // voxels per tile = 256 threads x 8 rounds

@group(0) @binding(0) var<uniform> P: Params;
// 4 mask voxels per word (the mask bytes as uploaded); non-zero byte = foreground.
@group(0) @binding(1) var<storage, read> mask: array<u32>;
@group(0) @binding(2) var<storage, read_write> L: array<atomic<u32>>;
// per-tile root counts, then exclusive offsets; tiles[num_tiles] = total.
@group(0) @binding(3) var<storage, read_write> tiles: array<u32>;

var<workgroup> sh: array<u32, 256>;

fn voxel_id(wid: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * P.wg_x_vox + wid.x) * 256u + lid;
}

fn tile_id(wid: vec3<u32>) -> u32 {
    return wid.y * P.wg_x_tile + wid.x;
}

fn is_fg(v: u32) -> bool {
    return ((mask[v >> 2u] >> ((v & 3u) * 8u)) & 0xffu) != 0u;
}

fn find(x0: u32) -> u32 {
    var x = x0;
    loop {
        let p = atomicLoad(&L[x]);
        if p == x {
            break;
        }
        x = p;
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
}

@compute @workgroup_size(256)
fn init(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let v = voxel_id(wid, lid);
    if v >= P.n {
        return;
    }
    atomicStore(&L[v], select(INVALID, v, is_fg(v)));
}

@compute @workgroup_size(256)
fn merge(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let v = voxel_id(wid, lid);
    if v >= P.n || !is_fg(v) {
        return;
    }
    let x = i32(v % P.nx);
    let y = i32((v / P.nx) % P.ny);
    let z = i32(v / (P.nx * P.ny));
    // Backward neighbours only (earlier in storage order): each edge once.
    for (var dz = -1; dz <= 0; dz++) {
        for (var dy = -1; dy <= 1; dy++) {
            for (var dx = -1; dx <= 1; dx++) {
                let backward = dz < 0 || (dz == 0 && (dy < 0 || (dy == 0 && dx < 0)));
                let nonzero = u32(dx != 0) + u32(dy != 0) + u32(dz != 0);
                if !backward || nonzero > P.max_nonzero {
                    continue;
                }
                let qx = x + dx;
                let qy = y + dy;
                let qz = z + dz;
                if qx < 0 || qy < 0 || qz < 0 || qx >= i32(P.nx) || qy >= i32(P.ny) {
                    continue;
                }
                let q = u32(qx) + P.nx * (u32(qy) + P.ny * u32(qz));
                if is_fg(q) {
                    unite(v, q);
                }
            }
        }
    }
}

@compute @workgroup_size(256)
fn compress(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let v = voxel_id(wid, lid);
    if v >= P.n {
        return;
    }
    if atomicLoad(&L[v]) != INVALID {
        atomicStore(&L[v], find(v));
    }
}

fn is_root(v: u32) -> u32 {
    if v < P.n && atomicLoad(&L[v]) == v {
        return 1u;
    }
    return 0u;
}

// Inclusive scan of sh[0..256] (Hillis-Steele); all threads must call it.
fn scan_inclusive(lid: u32) {
    for (var off = 1u; off < 256u; off <<= 1u) {
        let t = select(0u, sh[max(lid, off) - off], lid >= off);
        workgroupBarrier();
        sh[lid] += t;
        workgroupBarrier();
    }
}

@compute @workgroup_size(256)
fn count_roots(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let tile = tile_id(wid);
    if tile >= P.num_tiles {
        return;
    }
    var c = 0u;
    for (var i = 0u; i < 8u; i++) {
        c += is_root(tile * TILE + i * 256u + lid);
    }
    sh[lid] = c;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if lid < s {
            sh[lid] += sh[lid + s];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        tiles[tile] = sh[0];
    }
}

// One workgroup: exclusive scan of the tile counts, total in tiles[num_tiles].
@compute @workgroup_size(256)
fn scan_tiles(@builtin(local_invocation_index) lid: u32) {
    let per = (P.num_tiles + 255u) / 256u;
    let start = lid * per;
    var s = 0u;
    for (var i = 0u; i < per; i++) {
        if start + i < P.num_tiles {
            s += tiles[start + i];
        }
    }
    sh[lid] = s;
    workgroupBarrier();
    scan_inclusive(lid);
    var run = sh[lid] - s;
    for (var i = 0u; i < per; i++) {
        let t = start + i;
        if t < P.num_tiles {
            let c = tiles[t];
            tiles[t] = run;
            run += c;
        }
    }
    if lid == 255u {
        tiles[P.num_tiles] = sh[255];
    }
}

@compute @workgroup_size(256)
fn assign(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let tile = tile_id(wid);
    if tile >= P.num_tiles {
        return;
    }
    var run = tiles[tile];
    for (var i = 0u; i < 8u; i++) {
        let v = tile * TILE + i * 256u + lid;
        let r = is_root(v);
        sh[lid] = r;
        workgroupBarrier();
        scan_inclusive(lid);
        if r == 1u {
            atomicStore(&L[v], (run + sh[lid]) | FLAG);
        }
        run += sh[255];
        workgroupBarrier();
    }
}

@compute @workgroup_size(256)
fn finalize(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let v = voxel_id(wid, lid);
    if v >= P.n {
        return;
    }
    let x = atomicLoad(&L[v]);
    if x == INVALID {
        atomicStore(&L[v], 0u);
    } else if (x & FLAG) != 0u {
        atomicStore(&L[v], x & ~FLAG);
    } else {
        // Only roots are read here, and a root's entry is its label with or
        // without FLAG (it may already be finalized): mask it either way.
        atomicStore(&L[v], atomicLoad(&L[x]) & ~FLAG);
    }
}
