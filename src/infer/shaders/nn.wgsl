// Neural-network kernels for lesioneval's ONNX runner (see src/infer/gpu.rs).
//
// Every kernel has the same five bindings: a uniform block of 64 u32 parameters
// (floats passed as bits), three read-only float buffers (X = the op's input;
// A, B = weights/second operand/tables) and the output Y. Tensors are
// row-major; 5-D ones are [n, c, d, h, w]. 1-D workloads are dispatched as a
// 2-D grid of 64-thread workgroups (at most 65535 per dimension) and
// linearised with `linear_group`.

struct Params { v: array<vec4<u32>, 16> }

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> A: array<f32>;
@group(0) @binding(3) var<storage, read> B: array<f32>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;

fn p(i: u32) -> u32 { return P.v[i / 4u][i % 4u]; }
fn pf(i: u32) -> f32 { return bitcast<f32>(p(i)); }

fn linear_group(wid: vec3<u32>, nwg: vec3<u32>) -> u32 { return wid.y * nwg.x + wid.x; }

fn sigmoid(x: f32) -> f32 {
    if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
    let e = exp(x);
    return e / (1.0 + e);
}

// act: 0 none, 1 relu, 2 leaky (alpha), 3 sigmoid
fn activate(x: f32, act: u32, alpha: f32) -> f32 {
    switch act {
        case 1u: { return max(x, 0.0); }
        case 2u: { return select(x, alpha * x, x < 0.0); }
        case 3u: { return sigmoid(x); }
        default: { return x; }
    }
}

// ---- element-wise activation with optional per-channel / per-instance affine
// P: n, plane, channels, mode (0 none, 1 per channel A/B, 2 per instance A[i], A[ninst+i]), act, alpha, ninst
@compute @workgroup_size(64)
fn affine_act(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = linear_group(wid, nwg) * 64u + li;
    if (i >= p(0u)) { return; }
    var v = X[i];
    let inst = i / p(1u);
    let mode = p(3u);
    if (mode == 1u) {
        let c = inst % p(2u);
        v = v * A[c] + B[c];
    } else if (mode == 2u) {
        v = v * A[inst] + A[p(6u) + inst];
    }
    Y[i] = activate(v, p(4u), pf(5u));
}

// ---- instance-norm statistics, two passes over the plane (mean, then the
// mean squared deviation), one 256-thread workgroup per (n, c).
// P: plane, ninst, channels, eps. Writes Y[inst] = scale/sqrt(var+eps), Y[ninst+inst] = bias - mean*that.
//
// Each thread reads elements li, li + 256, li + 512, … in that order, eight per
// trip of the outer loop (the inner loop has a constant count and is
// unrolled): llvmpipe ends all loops of an invocation after 65 535 trips in
// total, without an error, and one trip per element made a 1-channel plane of
// 224³ come out wrong there. Eight per trip stays under that limit for any
// plane a 128 MiB binding (lavapipe's) holds; the sums are the same, in the
// same order.
var<workgroup> red: array<f32, 256>;

fn reduce_sum(li: u32) -> f32 {
    var s = 128u;
    loop {
        if (s == 0u) { break; }
        if (li < s) { red[li] = red[li] + red[li + s]; }
        workgroupBarrier();
        s = s / 2u;
    }
    let total = red[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(256)
fn in_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let inst = linear_group(wid, nwg);
    if (inst >= p(1u)) { return; }
    let plane = p(0u);
    let base = inst * plane;
    var s = 0.0;
    for (var k0 = li; k0 < plane; k0 += 2048u) {
        for (var u = 0u; u < 8u; u++) {
            let k = k0 + u * 256u;
            if (k < plane) { s += X[base + k]; }
        }
    }
    red[li] = s;
    workgroupBarrier();
    let mean = reduce_sum(li) / f32(plane);
    var q = 0.0;
    for (var k0 = li; k0 < plane; k0 += 2048u) {
        for (var u = 0u; u < 8u; u++) {
            let k = k0 + u * 256u;
            if (k < plane) { let d = X[base + k] - mean; q += d * d; }
        }
    }
    red[li] = q;
    workgroupBarrier();
    let var_ = reduce_sum(li) / f32(plane);
    if (li == 0u) {
        let c = inst % p(2u);
        let k = A[c] / sqrt(var_ + pf(3u));
        Y[inst] = k;
        Y[p(1u) + inst] = B[c] - mean * k;
    }
}

// ---- broadcasting binary op / PRelu. P: n, rank, op, swapped, shape[6] @4, sa[6] @10, sb[6] @16
// op: 0 add, 1 sub, 2 mul, 3 div, 4 prelu (A = slope)
@compute @workgroup_size(64)
fn binary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = linear_group(wid, nwg) * 64u + li;
    if (i >= p(0u)) { return; }
    let rank = p(1u);
    var rem = i;
    var oa = 0u;
    var ob = 0u;
    for (var k = 0u; k < rank; k++) {
        let ax = rank - 1u - k;
        let dim = p(4u + ax);
        let idx = rem % dim;
        rem = rem / dim;
        oa += idx * p(10u + ax);
        ob += idx * p(16u + ax);
    }
    var a = X[oa];
    var b = A[ob];
    if (p(3u) == 1u) { let t = a; a = b; b = t; }
    var r: f32;
    switch p(2u) {
        case 0u: { r = a + b; }
        case 1u: { r = a - b; }
        case 2u: { r = a * b; }
        case 3u: { r = a / b; }
        default: { r = select(a, a * b, a < 0.0); }
    }
    Y[i] = r;
}

// ---- strided gather (Transpose). P: n, rank, shape[6] @2, in-strides[6] @8
@compute @workgroup_size(64)
fn gather(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = linear_group(wid, nwg) * 64u + li;
    if (i >= p(0u)) { return; }
    let rank = p(1u);
    var rem = i;
    var o = 0u;
    for (var k = 0u; k < rank; k++) {
        let ax = rank - 1u - k;
        let dim = p(2u + ax);
        o += (rem % dim) * p(8u + ax);
        rem = rem / dim;
    }
    Y[i] = X[o];
}

// ---- copy into a slice of a larger tensor (Concat). P: n, chunk_in, chunk_out, offset
@compute @workgroup_size(64)
fn concat(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = linear_group(wid, nwg) * 64u + li;
    if (i >= p(0u)) { return; }
    let ci = p(1u);
    Y[(i / ci) * p(2u) + p(3u) + i % ci] = X[i];
}

// ---- softmax over `len` values `inner` apart. P: count (= outer*inner), len, inner
@compute @workgroup_size(64)
fn softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = linear_group(wid, nwg) * 64u + li;
    if (t >= p(0u)) { return; }
    let len = p(1u);
    let inner = p(2u);
    let base = (t / inner) * len * inner + t % inner;
    var m = -3.4028235e38;
    for (var k = 0u; k < len; k++) { m = max(m, X[base + k * inner]); }
    var s = 0.0;
    for (var k = 0u; k < len; k++) { s += exp(X[base + k * inner] - m); }
    for (var k = 0u; k < len; k++) { Y[base + k * inner] = exp(X[base + k * inner] - m) / s; }
}

// ---- max / average pool. P: n_out, D,H,W @1, Do,Ho,Wo @4, k @7, s @10, pad-begin @13, pad-end @16, max @19, include_pad @20
@compute @workgroup_size(64)
fn pool(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = linear_group(wid, nwg) * 64u + li;
    if (i >= p(0u)) { return; }
    let size = vec3<i32>(i32(p(1u)), i32(p(2u)), i32(p(3u)));
    let osz = vec3<u32>(p(4u), p(5u), p(6u));
    let ox = i % osz.z;
    let oy = (i / osz.z) % osz.y;
    let oz = (i / (osz.z * osz.y)) % osz.x;
    let plane = i / (osz.x * osz.y * osz.z);
    let k = vec3<i32>(i32(p(7u)), i32(p(8u)), i32(p(9u)));
    let st = vec3<i32>(i32(p(10u)), i32(p(11u)), i32(p(12u)));
    let pb = vec3<i32>(i32(p(13u)), i32(p(14u)), i32(p(15u)));
    let pe = vec3<i32>(i32(p(16u)), i32(p(17u)), i32(p(18u)));
    let start = vec3<i32>(i32(oz), i32(oy), i32(ox)) * st - pb;
    let lo = max(start, vec3<i32>(0));
    let hi = min(start + k, size);
    let base = plane * u32(size.x * size.y * size.z);
    var m = -3.4028235e38;
    var s = 0.0;
    for (var z = lo.x; z < hi.x; z++) {
        for (var y = lo.y; y < hi.y; y++) {
            for (var x = lo.z; x < hi.z; x++) {
                let v = X[base + u32((z * size.y + y) * size.z + x)];
                m = max(m, v);
                s += v;
            }
        }
    }
    if (p(19u) == 1u) {
        Y[i] = m;
    } else {
        var cnt: i32;
        if (p(20u) == 1u) {
            let e = min(start + k, size + pe) - start;
            cnt = e.x * e.y * e.z;
        } else {
            let e = hi - lo;
            cnt = e.x * e.y * e.z;
        }
        Y[i] = s / f32(max(cnt, 1));
    }
}

// ---- Resize from per-axis tables in B: at offset t[a] + 3*o: i0, i1 (u32 bits), w.
// P: n, rank, out-shape[6] @2, in-strides[6] @8, table offsets[6] @14
@compute @workgroup_size(64)
fn resize(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = linear_group(wid, nwg) * 64u + li;
    if (i >= p(0u)) { return; }
    let rank = p(1u);
    var idx: array<u32, 6>;
    var rem = i;
    for (var k = 0u; k < rank; k++) {
        let ax = rank - 1u - k;
        let dim = p(2u + ax);
        idx[ax] = rem % dim;
        rem = rem / dim;
    }
    var acc = 0.0;
    let corners = 1u << rank;
    for (var c = 0u; c < corners; c++) {
        var wgt = 1.0;
        var off = 0u;
        for (var a = 0u; a < rank; a++) {
            let t = p(14u + a) + 3u * idx[a];
            let hi = ((c >> a) & 1u) == 1u;
            let w = select(1.0 - B[t + 2u], B[t + 2u], hi);
            wgt *= w;
            off += select(bitcast<u32>(B[t]), bitcast<u32>(B[t + 1u]), hi) * p(8u + a);
        }
        if (wgt != 0.0) { acc += wgt * X[off]; }
    }
    Y[i] = acc;
}

// ---- convolution parameters shared by the conv kernels.
// P: N, Cin, D, H, W @0..4, Cout @5, Do, Ho, Wo @6..8, kd, kh, kw @9..11, s @12..14, dil @15..17,
//    pad-begin @18..20, act @21, alpha @22, oc blocks @23, tiles x/y/z @24..26, tile extents z/y/x @27..29
const OCB: u32 = 8u;

// Tiled direct 3-D convolution: a workgroup computes an 8×4×4 (x, y, z) block of
// output voxels for 8 output channels. For each input channel it stages the
// input block the 128 outputs read (with padding as zeros) and the 8 channels'
// kernel weights in workgroup memory, then every thread accumulates its voxel.
var<workgroup> tile: array<f32, 2048>;
var<workgroup> wsh: array<f32, 1024>;

@compute @workgroup_size(128)
fn conv_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = linear_group(wid, nwg);
    let tiles = vec3<u32>(p(24u), p(25u), p(26u));
    let ntiles = tiles.x * tiles.y * tiles.z;
    let nocb = p(23u);
    if (g >= ntiles * nocb * p(0u)) { return; }
    let tix = g % tiles.x;
    let tiy = (g / tiles.x) % tiles.y;
    let tiz = (g / (tiles.x * tiles.y)) % tiles.z;
    let ocb = (g / ntiles) % nocb;
    let n = g / (ntiles * nocb);
    let cin = p(1u);
    let size = vec3<i32>(i32(p(2u)), i32(p(3u)), i32(p(4u)));
    let cout = p(5u);
    let osz = vec3<u32>(p(6u), p(7u), p(8u));
    let k = vec3<u32>(p(9u), p(10u), p(11u));
    let st = vec3<u32>(p(12u), p(13u), p(14u));
    let dl = vec3<u32>(p(15u), p(16u), p(17u));
    let pb = vec3<i32>(i32(p(18u)), i32(p(19u)), i32(p(20u)));
    let ext = vec3<u32>(p(27u), p(28u), p(29u));
    let next = ext.x * ext.y * ext.z;
    let ksz = k.x * k.y * k.z;
    // This thread's output voxel.
    let lx = li % 8u;
    let ly = (li / 8u) % 4u;
    let lz = li / 32u;
    let o0 = vec3<u32>(tiz * 4u, tiy * 4u, tix * 8u);
    let o = o0 + vec3<u32>(lz, ly, lx);
    let inside = all(o < osz);
    // Input origin of the block.
    let i0 = vec3<i32>(o0 * st) - pb;
    var acc: array<f32, 8>;
    for (var j = 0u; j < OCB; j++) { acc[j] = 0.0; }
    let plane_in = u32(size.x * size.y * size.z);
    for (var ic = 0u; ic < cin; ic++) {
        let xbase = (n * cin + ic) * plane_in;
        for (var e = li; e < next; e += 128u) {
            let ez = e / (ext.y * ext.z);
            let ey = (e / ext.z) % ext.y;
            let ex = e % ext.z;
            let q = i0 + vec3<i32>(i32(ez), i32(ey), i32(ex));
            var v = 0.0;
            if (all(q >= vec3<i32>(0)) && all(q < size)) {
                v = X[xbase + u32((q.x * size.y + q.y) * size.z + q.z)];
            }
            tile[e] = v;
        }
        for (var e = li; e < OCB * ksz; e += 128u) {
            let oc = ocb * OCB + e / ksz;
            var w = 0.0;
            if (oc < cout) { w = A[(oc * cin + ic) * ksz + e % ksz]; }
            wsh[e] = w;
        }
        workgroupBarrier();
        if (inside) {
            var t = 0u;
            for (var kz = 0u; kz < k.x; kz++) {
                for (var ky = 0u; ky < k.y; ky++) {
                    let row = ((lz * st.x + kz * dl.x) * ext.y + ly * st.y + ky * dl.y) * ext.z + lx * st.z;
                    for (var kx = 0u; kx < k.z; kx++) {
                        let v = tile[row + kx * dl.z];
                        for (var j = 0u; j < OCB; j++) { acc[j] += v * wsh[j * ksz + t]; }
                        t++;
                    }
                }
            }
        }
        workgroupBarrier();
    }
    if (inside) {
        let plane_out = osz.x * osz.y * osz.z;
        let vox = (o.x * osz.y + o.y) * osz.z + o.z;
        for (var j = 0u; j < OCB; j++) {
            let oc = ocb * OCB + j;
            if (oc < cout) {
                Y[(n * cout + oc) * plane_out + vox] = activate(acc[j] + B[oc], p(21u), pf(22u));
            }
        }
    }
}

// Direct convolution for shapes whose input block does not fit workgroup
// memory: one thread per output voxel and 8 output channels.
@compute @workgroup_size(64)
fn conv_direct(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = linear_group(wid, nwg) * 64u + li;
    let osz = vec3<u32>(p(6u), p(7u), p(8u));
    let plane_out = osz.x * osz.y * osz.z;
    let nocb = p(23u);
    if (t >= plane_out * nocb * p(0u)) { return; }
    let vox = t % plane_out;
    let ocb = (t / plane_out) % nocb;
    let n = t / (plane_out * nocb);
    let o = vec3<u32>(vox / (osz.y * osz.z), (vox / osz.z) % osz.y, vox % osz.z);
    let cin = p(1u);
    let size = vec3<i32>(i32(p(2u)), i32(p(3u)), i32(p(4u)));
    let cout = p(5u);
    let k = vec3<u32>(p(9u), p(10u), p(11u));
    let st = vec3<u32>(p(12u), p(13u), p(14u));
    let dl = vec3<u32>(p(15u), p(16u), p(17u));
    let pb = vec3<i32>(i32(p(18u)), i32(p(19u)), i32(p(20u)));
    let ksz = k.x * k.y * k.z;
    let plane_in = u32(size.x * size.y * size.z);
    var acc: array<f32, 8>;
    for (var j = 0u; j < OCB; j++) { acc[j] = 0.0; }
    for (var ic = 0u; ic < cin; ic++) {
        let xbase = (n * cin + ic) * plane_in;
        var tap = 0u;
        for (var kz = 0u; kz < k.x; kz++) {
            for (var ky = 0u; ky < k.y; ky++) {
                for (var kx = 0u; kx < k.z; kx++) {
                    let q = vec3<i32>(o * st + vec3<u32>(kz, ky, kx) * dl) - pb;
                    if (all(q >= vec3<i32>(0)) && all(q < size)) {
                        let v = X[xbase + u32((q.x * size.y + q.y) * size.z + q.z)];
                        for (var j = 0u; j < OCB; j++) {
                            let oc = min(ocb * OCB + j, cout - 1u);
                            acc[j] += v * A[(oc * cin + ic) * ksz + tap];
                        }
                    }
                    tap++;
                }
            }
        }
    }
    for (var j = 0u; j < OCB; j++) {
        let oc = ocb * OCB + j;
        if (oc < cout) {
            Y[(n * cout + oc) * plane_out + vox] = activate(acc[j] + B[oc], p(21u), pf(22u));
        }
    }
}

// Transposed convolution as a gather: output o reads input i where
// o = i·s + k·dil − pad, i.e. i = (o + pad − k·dil) / s when that divides evenly.
// Same parameters as the convs (D, H, W the input size). Weights [Cin, Cout, k].
@compute @workgroup_size(64)
fn conv_transpose(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = linear_group(wid, nwg) * 64u + li;
    let osz = vec3<u32>(p(6u), p(7u), p(8u));
    let plane_out = osz.x * osz.y * osz.z;
    let nocb = p(23u);
    if (t >= plane_out * nocb * p(0u)) { return; }
    let vox = t % plane_out;
    let ocb = (t / plane_out) % nocb;
    let n = t / (plane_out * nocb);
    let o = vec3<i32>(i32(vox / (osz.y * osz.z)), i32((vox / osz.z) % osz.y), i32(vox % osz.z));
    let cin = p(1u);
    let size = vec3<i32>(i32(p(2u)), i32(p(3u)), i32(p(4u)));
    let cout = p(5u);
    let k = vec3<u32>(p(9u), p(10u), p(11u));
    let st = vec3<i32>(i32(p(12u)), i32(p(13u)), i32(p(14u)));
    let dl = vec3<i32>(i32(p(15u)), i32(p(16u)), i32(p(17u)));
    let pb = vec3<i32>(i32(p(18u)), i32(p(19u)), i32(p(20u)));
    let ksz = k.x * k.y * k.z;
    let plane_in = u32(size.x * size.y * size.z);
    var acc: array<f32, 8>;
    for (var j = 0u; j < OCB; j++) { acc[j] = 0.0; }
    for (var kz = 0u; kz < k.x; kz++) {
        for (var ky = 0u; ky < k.y; ky++) {
            for (var kx = 0u; kx < k.z; kx++) {
                let num = o + pb - vec3<i32>(i32(kz), i32(ky), i32(kx)) * dl;
                let q = num / st;
                if (all(num >= vec3<i32>(0)) && all(q * st == num) && all(q < size)) {
                    let tap = (kz * k.y + ky) * k.z + kx;
                    let vi = u32((q.x * size.y + q.y) * size.z + q.z);
                    for (var ic = 0u; ic < cin; ic++) {
                        let v = X[(n * cin + ic) * plane_in + vi];
                        for (var j = 0u; j < OCB; j++) {
                            let oc = min(ocb * OCB + j, cout - 1u);
                            acc[j] += v * A[(ic * cout + oc) * ksz + tap];
                        }
                    }
                }
            }
        }
    }
    for (var j = 0u; j < OCB; j++) {
        let oc = ocb * OCB + j;
        if (oc < cout) {
            Y[(n * cout + oc) * plane_out + vox] = activate(acc[j] + B[oc], p(21u), pf(22u));
        }
    }
}
