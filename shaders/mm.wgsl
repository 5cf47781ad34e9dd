// Register-blocked matmul for GPUs: C[m][n] = sum_k A[m][k] * B[k][n] (+ bias, ReLU), one
// group (conv), one K slice (split-K dense) or one group's K slice (split-K conv) per z.
// Host module: src/kernels/mm.rs.
//
//   conv:  A = weights [Cout][kp] (the Gemm path's layout: rows zero-padded to whole vec4),
//          B = the input gathered as an implicit im2col (never materialised), C = NCHW output;
//          `conv_split` writes partial sums of one K slice to `part`, and `reduce_conv` adds
//          the slices, the bias and the ReLU and writes NCHW. `conv_im2col`: B = a patch
//          matrix [group][pixel][kp] (im2col_coalesced.wgsl) read by the dense loop, C = NCHW.
//   dense: A = weight rows [out][K], B = activations [batch][K] (both K-contiguous, vec4 loads),
//          C = [batch][out]; `dense_split` writes partial sums of one K slice to `part`, and
//          `reduce` adds the slices, the bias and the ReLU.
//   gemv:  dense layers at batch 1-4: each weight read once for all rows of B.
//
// Tiles: a workgroup computes BM x BN outputs with (BN / 8) x (BM / 8) invocations, each 8 x 8
// of them in registers (16 vec4 accumulators), walking K in steps of BK. Both operands sit
// K-major in workgroup memory (As[k][m], Bs[k][n], vec4 along m / n) so an invocation reads
// its 8 rows and 8 columns for one k as four vec4 loads and does 64 multiply-adds with them.
// Double-buffered: while a step computes from one buffer, the next step's global loads are
// already in registers and go to the other buffer, so there is one barrier per K step.
// 2 * BK * (BM + BN) * 4 bytes of workgroup memory: 32 KiB (DX12's limit) at 128x128x16.
//
// The host builds one module per tile shape by rewriting the three `const` lines below (see
// mm.rs `Tile::source`); the file as written is the 64x64x16 variant.
//
// Invocation (tx, ty) owns rows ty*4 + r and BM/2 + ty*4 + r (r < 4) and columns tx*4 + c and
// BN/2 + tx*4 + c: its workgroup-memory reads are whole vec4, neighbours reading neighbours.
//
// Implicit GEMM without div/mod in the loop: `tab[k]` (host-built per conv shape) holds the
// input offset ci*H*W + ky*W + kx and (ky, kx) of column k (entries past K: ky = 0xffff, which
// lands outside the image and reads zero); each invocation decomposes its 4 gathered pixels
// (image, oy, ox) once, before the K loop. Out-of-image reads are clamped to index 0 and
// replaced by zero with `select`, so every access is in bounds for any shape the host accepts.

struct Params {
    // Rows of C per group / weight part, and columns (pixels or batch rows).
    m: u32,
    n: u32,
    // vec4 per row of A (and of dense B): kp / 4.
    kv: u32,
    // vec4 of K per z slice (split-K: a multiple of BK / 4; otherwise kv).
    kvz: u32,
    // vec4 between the A rows of consecutive groups.
    a_gstride: u32,
    relu: u32,
    // conv: all output channels; dense: output features (the row stride of C).
    out_c: u32,
    // dense: first output feature of this weight part.
    m_off: u32,
    // conv geometry (out_hw = out_h * out_w).
    out_hw: u32,
    out_w: u32,
    in_c: u32,
    in_h: u32,
    in_w: u32,
    stride: u32,
    pad: u32,
    cin_g: u32,
    // reduce, conv_split and reduce_conv: number of K slices.
    splits: u32,
    // gdense / gdense_split / reduce_grouped (mm_grouped.rs): vec4 between the B rows of
    // consecutive groups, values between their C blocks, and the number of groups.
    b_gstride: u32,
    c_gstride: u32,
    groups: u32,
    // conv_im2col: the first pixel of this chunk of the patch matrix (column 0 of B).
    n_off: u32,
    // strided / strided_split (dense backward, dense_backward.rs): K in values (any), the
    // operands' element strides (A(m, k) = x[a_off + m * a_ms + k * a_ks], B(n, k) =
    // bs[b_off + n * b_ns + k * b_ks]) and whether C is added to (`strided`, `reduce_grouped`).
    k: u32,
    a_off: u32,
    a_ms: u32,
    a_ks: u32,
    b_off: u32,
    b_ns: u32,
    b_ks: u32,
    beta: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<storage, read> x: array<f32>;
@group(0) @binding(5) var<storage, read> tab: array<vec2<u32>>;
@group(0) @binding(6) var<storage, read> bx: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> part: array<f32>;
@group(0) @binding(8) var<storage, read> bs: array<f32>;

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;

// Invocations per workgroup, vec4 per K step per invocation for A and for B.
const NT: u32 = (BM / 8u) * (BN / 8u);
const KQ: u32 = BK / 4u;
const A_LOADS: u32 = (BM * KQ) / NT;
const B_LOADS: u32 = (BN * KQ) / NT;

var<workgroup> As: array<vec4<f32>, 2u * BK * BM / 4u>;
var<workgroup> Bs: array<vec4<f32>, 2u * BK * BN / 4u>;

var<private> acc: array<vec4<f32>, 16>;
var<private> ra: array<vec4<f32>, A_LOADS>;
var<private> rb: array<vec4<f32>, B_LOADS>;
// Per A load: the vec4 index of its row's start; its row in the tile and its k quad.
var<private> a_row: array<u32, A_LOADS>;
// conv: the 4 gathered pixels of this invocation (input offset of tap (0, 0), its iy, ix).
var<private> g_base: vec4<i32>;
var<private> g_iy: vec4<i32>;
var<private> g_ix: vec4<i32>;
// dense B: the vec4 index of each B load's row start.
var<private> b_row: array<u32, B_LOADS>;

fn compute(buf: u32, tx: u32, ty: u32) {
    for (var kk = 0u; kk < BK; kk++) {
        let ab = (buf * BK + kk) * (BM / 4u);
        let bb = (buf * BK + kk) * (BN / 4u);
        let a0 = As[ab + ty];
        let a1 = As[ab + BM / 8u + ty];
        let b0 = Bs[bb + tx];
        let b1 = Bs[bb + BN / 8u + tx];
        acc[0] += a0.x * b0;
        acc[1] += a0.x * b1;
        acc[2] += a0.y * b0;
        acc[3] += a0.y * b1;
        acc[4] += a0.z * b0;
        acc[5] += a0.z * b1;
        acc[6] += a0.w * b0;
        acc[7] += a0.w * b1;
        acc[8] += a1.x * b0;
        acc[9] += a1.x * b1;
        acc[10] += a1.y * b0;
        acc[11] += a1.y * b1;
        acc[12] += a1.z * b0;
        acc[13] += a1.z * b1;
        acc[14] += a1.w * b0;
        acc[15] += a1.w * b1;
    }
}

// Row of C of accumulator r (0..8) and column of half h, lane l.
fn row_of(ty: u32, r: u32) -> u32 {
    return select(ty * 4u + r, BM / 2u + ty * 4u + r - 4u, r >= 4u);
}

fn col_of(tx: u32, h: u32, l: u32) -> u32 {
    return h * (BN / 2u) + tx * 4u + l;
}

// A (and dense B) loads: thread t's i-th vec4 is row (t + i NT) / KQ of the tile, k quad
// (t + i NT) % KQ (constant divisors). `kend`: vec4 index where this z slice's K ends.
fn load_a(t: u32, q0: u32, kend: u32) {
    for (var i = 0u; i < A_LOADS; i++) {
        let q = q0 + (t + i * NT) % KQ;
        ra[i] = select(vec4<f32>(0.0), a[a_row[i] + min(q, kend - 1u)], q < kend);
    }
}

fn store_a(t: u32, buf: u32) {
    for (var i = 0u; i < A_LOADS; i++) {
        let idx = t + i * NT;
        let row = idx / KQ;
        let k = (idx % KQ) * 4u;
        let base = (buf * BK + k) * (BM / 4u) + row / 4u;
        let l = row % 4u;
        As[base][l] = ra[i].x;
        As[base + BM / 4u][l] = ra[i].y;
        As[base + BM / 2u][l] = ra[i].z;
        As[base + 3u * BM / 4u][l] = ra[i].w;
    }
}

fn load_b_dense(t: u32, q0: u32, kend: u32) {
    for (var i = 0u; i < B_LOADS; i++) {
        let q = q0 + (t + i * NT) % KQ;
        rb[i] = select(vec4<f32>(0.0), bx[b_row[i] + min(q, kend - 1u)], q < kend);
    }
}

fn store_b_dense(t: u32, buf: u32) {
    for (var i = 0u; i < B_LOADS; i++) {
        let idx = t + i * NT;
        let row = idx / KQ;
        let k = (idx % KQ) * 4u;
        let base = (buf * BK + k) * (BN / 4u) + row / 4u;
        let l = row % 4u;
        Bs[base][l] = rb[i].x;
        Bs[base + BN / 4u][l] = rb[i].y;
        Bs[base + BN / 2u][l] = rb[i].z;
        Bs[base + 3u * BN / 4u][l] = rb[i].w;
    }
}

// conv B: thread t gathers the 4 pixels of column quad t % (BN / 4) for K rows
// t / (BN / 4) + i * (4 NT / BN) of the step starting at k0: one vec4 store each.
fn gather(k: u32) -> vec4<f32> {
    let e = tab[k];
    let off = i32(e.x);
    let ky = i32(e.y >> 16u);
    let kx = i32(e.y & 0xffffu);
    let iy = g_iy + vec4<i32>(ky);
    let ix = g_ix + vec4<i32>(kx);
    let ok = (vec4<u32>(iy) < vec4<u32>(p.in_h)) & (vec4<u32>(ix) < vec4<u32>(p.in_w));
    let idx = select(vec4<u32>(0u), vec4<u32>(g_base + vec4<i32>(off)), ok);
    let v = vec4<f32>(x[idx.x], x[idx.y], x[idx.z], x[idx.w]);
    return select(vec4<f32>(0.0), v, ok);
}

fn load_b_conv(t: u32, k0: u32) {
    for (var i = 0u; i < B_LOADS; i++) {
        rb[i] = gather(k0 + t / (BN / 4u) + i * (4u * NT / BN));
    }
}

fn store_b_conv(t: u32, buf: u32) {
    for (var i = 0u; i < B_LOADS; i++) {
        let k = t / (BN / 4u) + i * (4u * NT / BN);
        Bs[(buf * BK + k) * (BN / 4u) + t % (BN / 4u)] = rb[i];
    }
}

fn clear_acc() {
    for (var i = 0u; i < 16u; i++) {
        acc[i] = vec4<f32>(0.0);
    }
}

// A rows of this workgroup (clamped: rows past M load a copy of the last and store nothing).
fn setup_a(t: u32, g: u32, m0: u32) {
    for (var i = 0u; i < A_LOADS; i++) {
        let row = (t + i * NT) / KQ;
        a_row[i] = g * p.a_gstride + min(m0 + row, p.m - 1u) * p.kv;
    }
}

// The conv main loop of group g over the K slice [q_start, kend) (vec4 units; q_start a
// multiple of KQ). Gathers past kend read real table entries (the table is padded to a
// multiple of 32 >= any BK), whose A values are zero.
fn conv_loop(t: u32, lid: vec3<u32>, g: u32, q_start: u32, kend: u32, m0: u32, n0: u32) {
    setup_a(t, g, m0);
    // The 4 pixels this invocation gathers, decomposed once.
    let in_hw = p.in_h * p.in_w;
    for (var l = 0u; l < 4u; l++) {
        let n = min(n0 + (t % (BN / 4u)) * 4u + l, p.n - 1u);
        let img = n / p.out_hw;
        let pix = n % p.out_hw;
        let iy = i32((pix / p.out_w) * p.stride) - i32(p.pad);
        let ix = i32((pix % p.out_w) * p.stride) - i32(p.pad);
        g_iy[l] = iy;
        g_ix[l] = ix;
        g_base[l] = i32((img * p.in_c + g * p.cin_g) * in_hw) + iy * i32(p.in_w) + ix;
    }
    clear_acc();
    let steps = (kend - q_start + KQ - 1u) / KQ;
    load_a(t, q_start, kend);
    load_b_conv(t, q_start * 4u);
    store_a(t, 0u);
    store_b_conv(t, 0u);
    workgroupBarrier();
    for (var s = 0u; s < steps; s++) {
        let buf = s % 2u;
        let more = s + 1u < steps;
        if (more) {
            load_a(t, q_start + (s + 1u) * KQ, kend);
            load_b_conv(t, (q_start + (s + 1u) * KQ) * 4u);
        }
        compute(buf, lid.x, lid.y);
        if (more) {
            store_a(t, 1u - buf);
            store_b_conv(t, 1u - buf);
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(BN / 8u, BM / 8u, 1)
fn conv(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let g = wg.z;
    let m0 = wg.y * BM;
    let n0 = wg.x * BN;
    conv_loop(t, lid, g, 0u, p.kv, m0, n0);
    for (var r = 0u; r < 8u; r++) {
        let m = m0 + row_of(lid.y, r);
        if (m >= p.m) {
            continue;
        }
        let co = g * p.m + m;
        let bv = bias[co];
        for (var h = 0u; h < 2u; h++) {
            let v = acc[r * 2u + h];
            for (var l = 0u; l < 4u; l++) {
                let n = n0 + col_of(lid.x, h, l);
                if (n < p.n) {
                    var o = v[l] + bv;
                    if (p.relu != 0u) {
                        o = max(o, 0.0);
                    }
                    let img = n / p.out_hw;
                    c[(img * p.out_c + co) * p.out_hw + n % p.out_hw] = o;
                }
            }
        }
    }
}

// Convolution split-K: z = group * splits + slice. Slice z's partial sums of output channel
// co at column (pixel) n go to part[(slice * out_c + co) * N + n], no bias; `reduce_conv`
// adds them.
@compute @workgroup_size(BN / 8u, BM / 8u, 1)
fn conv_split(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let g = wg.z / p.splits;
    let slice = wg.z % p.splits;
    let m0 = wg.y * BM;
    let n0 = wg.x * BN;
    let q_start = slice * p.kvz;
    conv_loop(t, lid, g, q_start, min(p.kv, q_start + p.kvz), m0, n0);
    for (var r = 0u; r < 8u; r++) {
        let m = m0 + row_of(lid.y, r);
        if (m >= p.m) {
            continue;
        }
        let row = (slice * p.out_c + g * p.m + m) * p.n;
        for (var h = 0u; h < 2u; h++) {
            let v = acc[r * 2u + h];
            for (var l = 0u; l < 4u; l++) {
                let n = n0 + col_of(lid.x, h, l);
                if (n < p.n) {
                    part[row + n] = v[l];
                }
            }
        }
    }
}

// Adds a convolution's split-K slices, the bias and the ReLU, and writes NCHW: one invocation
// per output value in NCHW order (1-D grid folded into y past 65535 workgroups).
@compute @workgroup_size(64, 1, 1)
fn reduce_conv(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= p.out_c * p.n) {
        return;
    }
    let img = i / (p.out_c * p.out_hw);
    let co = (i / p.out_hw) % p.out_c;
    let n = img * p.out_hw + i % p.out_hw;
    var s = bias[co];
    for (var z = 0u; z < p.splits; z++) {
        s += part[(z * p.out_c + co) * p.n + n];
    }
    if (p.relu != 0u) {
        s = max(s, 0.0);
    }
    c[i] = s;
}

// A convolution on a materialised patch matrix: group g = z's B rows are the chunk's pixels
// (bx[(g * b_gstride) + n * kv ..], K-contiguous like a dense layer's activations, so the
// loads are the dense entry's whole vec4 instead of the conv entry's gather); bias, ReLU and
// the conv entry's NCHW store, at pixel n_off + n. The store stays in the epilogue rather than
// in a transpose pass: it is one write per output after K (363-3456) multiply-adds, no more
// scattered than the dense entry's own [n][out] store, and a pass would read and write the
// whole output once more.
@compute @workgroup_size(BN / 8u, BM / 8u, 1)
fn conv_im2col(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let g = wg.z;
    let m0 = wg.y * BM;
    let n0 = wg.x * BN;
    dense_loop(t, lid, g, 0u, m0, n0);
    for (var r = 0u; r < 8u; r++) {
        let m = m0 + row_of(lid.y, r);
        if (m >= p.m) {
            continue;
        }
        let co = g * p.m + m;
        let bv = bias[co];
        for (var h = 0u; h < 2u; h++) {
            let v = acc[r * 2u + h];
            for (var l = 0u; l < 4u; l++) {
                let n = n0 + col_of(lid.x, h, l);
                if (n < p.n) {
                    var o = v[l] + bv;
                    if (p.relu != 0u) {
                        o = max(o, 0.0);
                    }
                    let pix = p.n_off + n;
                    let img = pix / p.out_hw;
                    c[(img * p.out_c + co) * p.out_hw + pix % p.out_hw] = o;
                }
            }
        }
    }
}

// The dense main loop over this workgroup's z slice of K.
// Group g's A rows start at g * a_gstride vec4, its B rows at g * b_gstride (dense: g = 0).
fn dense_loop(t: u32, lid: vec3<u32>, g: u32, z: u32, m0: u32, n0: u32) {
    setup_a(t, g, m0);
    for (var i = 0u; i < B_LOADS; i++) {
        b_row[i] = g * p.b_gstride + min(n0 + (t + i * NT) / KQ, p.n - 1u) * p.kv;
    }
    clear_acc();
    let q_start = z * p.kvz;
    let kend = min(p.kv, q_start + p.kvz);
    let steps = (kend - q_start + KQ - 1u) / KQ;
    load_a(t, q_start, kend);
    load_b_dense(t, q_start, kend);
    store_a(t, 0u);
    store_b_dense(t, 0u);
    workgroupBarrier();
    for (var s = 0u; s < steps; s++) {
        let buf = s % 2u;
        let more = s + 1u < steps;
        if (more) {
            load_a(t, q_start + (s + 1u) * KQ, kend);
            load_b_dense(t, q_start + (s + 1u) * KQ, kend);
        }
        compute(buf, lid.x, lid.y);
        if (more) {
            store_a(t, 1u - buf);
            store_b_dense(t, 1u - buf);
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(BN / 8u, BM / 8u, 1)
fn dense(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let m0 = wg.y * BM;
    let n0 = wg.x * BN;
    dense_loop(t, lid, 0u, 0u, m0, n0);
    for (var r = 0u; r < 8u; r++) {
        let m = m0 + row_of(lid.y, r);
        if (m >= p.m) {
            continue;
        }
        let mo = p.m_off + m;
        let bv = bias[mo];
        for (var h = 0u; h < 2u; h++) {
            let v = acc[r * 2u + h];
            for (var l = 0u; l < 4u; l++) {
                let n = n0 + col_of(lid.x, h, l);
                if (n < p.n) {
                    var o = v[l] + bv;
                    if (p.relu != 0u) {
                        o = max(o, 0.0);
                    }
                    c[n * p.out_c + mo] = o;
                }
            }
        }
    }
}

// Split-K: slice z's partial sums, part[(z * N + n) * M + m], no bias.
@compute @workgroup_size(BN / 8u, BM / 8u, 1)
fn dense_split(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let m0 = wg.y * BM;
    let n0 = wg.x * BN;
    let z = wg.z;
    dense_loop(t, lid, 0u, z, m0, n0);
    for (var r = 0u; r < 8u; r++) {
        let m = m0 + row_of(lid.y, r);
        if (m >= p.m) {
            continue;
        }
        for (var h = 0u; h < 2u; h++) {
            let v = acc[r * 2u + h];
            for (var l = 0u; l < 4u; l++) {
                let n = n0 + col_of(lid.x, h, l);
                if (n < p.n) {
                    part[(z * p.n + n) * p.m + m] = v[l];
                }
            }
        }
    }
}

// Adds the split-K slices, the bias and the ReLU: one invocation per output (1-D grid folded
// into y past 65535 workgroups).
@compute @workgroup_size(64, 1, 1)
fn reduce(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= p.m * p.n) {
        return;
    }
    let n = i / p.m;
    let m = i % p.m;
    var s = bias[p.m_off + m];
    for (var z = 0u; z < p.splits; z++) {
        s += part[(z * p.n + n) * p.m + m];
    }
    if (p.relu != 0u) {
        s = max(s, 0.0);
    }
    c[n * p.out_c + p.m_off + m] = s;
}

// Grouped GEMMs without bias (training's backward GEMMs, mm_grouped.rs): z = group g *
// splits + K slice; C[g * c_gstride + n * out_c + m_off + m], written directly (`gdense`,
// splits 1) or as the slice's partial sums part[(z * N + n) * M + m] (`gdense_split`) that
// `reduce_grouped` adds.
@compute @workgroup_size(BN / 8u, BM / 8u, 1)
fn gdense(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let m0 = wg.y * BM;
    let n0 = wg.x * BN;
    let g = wg.z;
    dense_loop(t, lid, g, 0u, m0, n0);
    for (var r = 0u; r < 8u; r++) {
        let m = m0 + row_of(lid.y, r);
        if (m >= p.m) {
            continue;
        }
        for (var h = 0u; h < 2u; h++) {
            let v = acc[r * 2u + h];
            for (var l = 0u; l < 4u; l++) {
                let n = n0 + col_of(lid.x, h, l);
                if (n < p.n) {
                    c[g * p.c_gstride + n * p.out_c + p.m_off + m] = v[l];
                }
            }
        }
    }
}

@compute @workgroup_size(BN / 8u, BM / 8u, 1)
fn gdense_split(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let m0 = wg.y * BM;
    let n0 = wg.x * BN;
    dense_loop(t, lid, wg.z / p.splits, wg.z % p.splits, m0, n0);
    for (var r = 0u; r < 8u; r++) {
        let m = m0 + row_of(lid.y, r);
        if (m >= p.m) {
            continue;
        }
        for (var h = 0u; h < 2u; h++) {
            let v = acc[r * 2u + h];
            for (var l = 0u; l < 4u; l++) {
                let n = n0 + col_of(lid.x, h, l);
                if (n < p.n) {
                    part[(wg.z * p.n + n) * p.m + m] = v[l];
                }
            }
        }
    }
}

// One invocation per output of every group (1-D grid folded into y past 65535 workgroups).
@compute @workgroup_size(64, 1, 1)
fn reduce_grouped(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    let mn = p.m * p.n;
    if (i >= p.groups * mn) {
        return;
    }
    let g = i / mn;
    let n = (i % mn) / p.m;
    let m = i % p.m;
    var s = 0.0;
    for (var z = 0u; z < p.splits; z++) {
        s += part[((g * p.splits + z) * p.n + n) * p.m + m];
    }
    let ci = g * p.c_gstride + n * p.out_c + p.m_off + m;
    if (p.beta != 0u) {
        s += c[ci];
    }
    c[ci] = s;
}

// GEMMs on strided operands (training's dense backward, dense_backward.rs): C[n][m] (+)=
// sum_k A(m, k) B(n, k), each operand read element by element at any strides, offset and K
// (no vec4 alignment: a classifier's output count, the row stride of dY, is any number). Each
// invocation still assembles whole vec4 along m (A) or n (B) and stores them to workgroup
// memory as one value; the load order follows the operand's contiguous axis (k-fast where
// its K stride is 1, else m/n-fast) so that neighbouring invocations read neighbouring values.
// Out-of-range elements are clamped to index 0 and replaced by zero.
fn a_at(m: u32, k: u32, kend: u32) -> f32 {
    let ok = m < p.m && k < kend;
    return select(0.0, x[select(0u, p.a_off + m * p.a_ms + k * p.a_ks, ok)], ok);
}

fn b_at(n: u32, k: u32, kend: u32) -> f32 {
    let ok = n < p.n && k < kend;
    return select(0.0, bs[select(0u, p.b_off + n * p.b_ns + k * p.b_ks, ok)], ok);
}

// Load i of thread t: (k within the step, vec4 index along m / n) for a tile side of `side`.
fn strided_slot(t: u32, i: u32, side: u32, k_fast: bool) -> vec2<u32> {
    let idx = t + i * NT;
    return select(vec2<u32>(idx / (side / 4u), idx % (side / 4u)), vec2<u32>(idx % BK, idx / BK), k_fast);
}

fn load_strided(t: u32, k0: u32, kend: u32, m0: u32, n0: u32) {
    for (var i = 0u; i < A_LOADS; i++) {
        let s = strided_slot(t, i, BM, p.a_ks == 1u);
        let k = k0 + s.x;
        let m = m0 + s.y * 4u;
        ra[i] = vec4<f32>(a_at(m, k, kend), a_at(m + 1u, k, kend), a_at(m + 2u, k, kend), a_at(m + 3u, k, kend));
    }
    for (var i = 0u; i < B_LOADS; i++) {
        let s = strided_slot(t, i, BN, p.b_ks == 1u);
        let k = k0 + s.x;
        let n = n0 + s.y * 4u;
        rb[i] = vec4<f32>(b_at(n, k, kend), b_at(n + 1u, k, kend), b_at(n + 2u, k, kend), b_at(n + 3u, k, kend));
    }
}

fn store_strided(t: u32, buf: u32) {
    for (var i = 0u; i < A_LOADS; i++) {
        let s = strided_slot(t, i, BM, p.a_ks == 1u);
        As[(buf * BK + s.x) * (BM / 4u) + s.y] = ra[i];
    }
    for (var i = 0u; i < B_LOADS; i++) {
        let s = strided_slot(t, i, BN, p.b_ks == 1u);
        Bs[(buf * BK + s.x) * (BN / 4u) + s.y] = rb[i];
    }
}

// The main loop over K slice z ([z * 4 kvz, min(K, (z + 1) * 4 kvz)) in values).
fn strided_loop(t: u32, lid: vec3<u32>, z: u32, m0: u32, n0: u32) {
    clear_acc();
    let k_start = z * p.kvz * 4u;
    let kend = min(p.k, k_start + p.kvz * 4u);
    let steps = (kend - k_start + BK - 1u) / BK;
    load_strided(t, k_start, kend, m0, n0);
    store_strided(t, 0u);
    workgroupBarrier();
    for (var s = 0u; s < steps; s++) {
        let buf = s % 2u;
        let more = s + 1u < steps;
        if (more) {
            load_strided(t, k_start + (s + 1u) * BK, kend, m0, n0);
        }
        compute(buf, lid.x, lid.y);
        if (more) {
            store_strided(t, 1u - buf);
        }
        workgroupBarrier();
    }
}

// C[n * out_c + m_off + m] = (or += with beta) the whole sum.
@compute @workgroup_size(BN / 8u, BM / 8u, 1)
fn strided(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let m0 = wg.y * BM;
    let n0 = wg.x * BN;
    strided_loop(t, lid, 0u, m0, n0);
    for (var r = 0u; r < 8u; r++) {
        let m = m0 + row_of(lid.y, r);
        if (m >= p.m) {
            continue;
        }
        for (var h = 0u; h < 2u; h++) {
            let v = acc[r * 2u + h];
            for (var l = 0u; l < 4u; l++) {
                let n = n0 + col_of(lid.x, h, l);
                if (n < p.n) {
                    let ci = n * p.out_c + p.m_off + m;
                    var o = v[l];
                    if (p.beta != 0u) {
                        o += c[ci];
                    }
                    c[ci] = o;
                }
            }
        }
    }
}

// Split-K: slice z's partial sums part[(z * N + n) * M + m]; `reduce_grouped` (one group)
// adds them into C.
@compute @workgroup_size(BN / 8u, BM / 8u, 1)
fn strided_split(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let m0 = wg.y * BM;
    let n0 = wg.x * BN;
    strided_loop(t, lid, wg.z, m0, n0);
    for (var r = 0u; r < 8u; r++) {
        let m = m0 + row_of(lid.y, r);
        if (m >= p.m) {
            continue;
        }
        for (var h = 0u; h < 2u; h++) {
            let v = acc[r * 2u + h];
            for (var l = 0u; l < 4u; l++) {
                let n = n0 + col_of(lid.x, h, l);
                if (n < p.n) {
                    part[(wg.z * p.n + n) * p.m + m] = v[l];
                }
            }
        }
    }
}

const GV: u32 = 64u;
var<workgroup> red: array<vec4<f32>, GV>;

// Matrix-vector products: one workgroup per output feature (x + y * nwg.x) and 4 rows of B
// (rows 4 z .. 4 z + 3), GV invocations striding over K with coalesced vec4 loads: each weight
// is read once per 4 rows of the batch (once in all at batch 1-4).
@compute @workgroup_size(64, 1, 1)
fn gemv(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let m_raw = wg.x + wg.y * nwg.x;
    let m = min(m_raw, p.m - 1u);
    let arow = m * p.kv;
    let nl = p.n - 1u;
    let b0 = wg.z * 4u;
    let r0 = min(b0, nl) * p.kv;
    let r1 = min(b0 + 1u, nl) * p.kv;
    let r2 = min(b0 + 2u, nl) * p.kv;
    let r3 = min(b0 + 3u, nl) * p.kv;
    var s = vec4<f32>(0.0);
    for (var q = t; q < p.kv; q += GV) {
        let w = a[arow + q];
        s += vec4<f32>(dot(w, bx[r0 + q]), dot(w, bx[r1 + q]), dot(w, bx[r2 + q]), dot(w, bx[r3 + q]));
    }
    red[t] = s;
    workgroupBarrier();
    for (var h = GV / 2u; h > 0u; h /= 2u) {
        if (t < h) {
            red[t] += red[t + h];
        }
        workgroupBarrier();
    }
    if (t < 4u && b0 + t < p.n && m_raw < p.m) {
        let mo = p.m_off + m;
        var o = red[0][t] + bias[mo];
        if (p.relu != 0u) {
            o = max(o, 0.0);
        }
        c[(b0 + t) * p.out_c + mo] = o;
    }
}
