enable f16;
enable wgpu_cooperative_matrix;
// Convolutions on tensor cores: WGSL cooperative matrices (16x16x16, f16 operands, f32
// accumulation), as im2col + GEMM. Host module: src/kernels/coop.rs.
//
//   im2col: the patch matrix of a chunk of output pixels, in f16, one row of `kp` halves per
//           pixel (K = cin_g * kernel^2 zero-padded to a multiple of 16), `n_pad` rows per group
//           (the chunk's pixels rounded up to BN, padding rows zero): B of the GEMM, column-major.
//   gemm:   C[m][n] = sum_k W[m][k] P[n][k] per group, one subgroup per workgroup computing a
//           BM x BN block as (BM / 16) x (BN / 16) accumulator tiles; then bias, ReLU and the
//           NCHW f32 store through a workgroup-memory staging of the tiles.
//
// Why im2col and not an implicit GEMM: a cooperative load reads a 16x16 tile from one pointer
// with one stride, so B must exist as a matrix; the explicit f16 patch matrix is that matrix
// (half the bytes of today's f32 one), and every load offset is a multiple of 16 halves (32
// bytes), which the loads want. Weights are stored as the GEMM reads them (host:
// `coop::weight_for_coop`): `[groups][m_pad][kp]` halves, rows past the group's channels and
// columns past K zero, so every tile load is in bounds and the padding adds zeros.
//
// Cooperative operations need uniform control flow: everything before the last tile store
// depends only on the params and the workgroup id; per-element bounds checks come after.
//
// The section between the MMA markers is the only code that touches cooperative matrices; the
// host builds `coop_emulated.wgsl`'s variant by replacing it (and the `enable` line) with plain
// WGSL that computes the same tiles lane by lane, so adapters without tensor cores (lavapipe in
// CI) prove the staging, the offsets, the padding and the epilogue, and only the hardware's
// 16x16x16 product itself is left to the card (the selftest checks it there).

struct Params {
    // ConvGeometry (kernels::conv2d::ConvGeometry, filled by Conv2dShape::geometry): the
    // first 11 fields of every convolution kernel's params, in this order.
    batch: u32,
    in_c: u32,
    in_h: u32,
    in_w: u32,
    out_c: u32,
    out_h: u32,
    out_w: u32,
    groups: u32,
    kernel: u32,
    stride: u32,
    pad: u32,
    cin_g: u32,
    // Halves per patch and weight row (K rounded up to 16).
    kp: u32,
    // Output channels per group, and weight rows per group (m rounded up to BM).
    m: u32,
    m_pad: u32,
    // This chunk's first pixel (over batch x out_h x out_w), its pixel count, and the patch
    // rows per group (n_count rounded up to BN).
    n_start: u32,
    n_count: u32,
    n_pad: u32,
    relu: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> pt: array<f16>;
@group(0) @binding(3) var<storage, read> w: array<f16>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

// The block of one workgroup (one subgroup of 32): WM x WN accumulator tiles of 16 x 16, BM
// output channels x BN pixels. The host builds one module per tile count (kernels::coop
// `CoopTile::source`: these two `const` lines and the block between the TILES markers); the
// file as written is the 2 x 4 variant.
const WM: u32 = 2u;
const WN: u32 = 4u;
const BM: u32 = 16u * WM;
const BN: u32 = 16u * WN;
const TILES: u32 = WM * WN;

// Each accumulator tile staged for the epilogue, row-major (16 x 16 f32 each), tile (i, j) at
// (i WN + j) 256.
var<workgroup> cs: array<f32, TILES * 256u>;
// This invocation's lane (the emulation's fragment layout; unused by the hardware's).
var<private> lane: u32;

// MMA BEGIN
alias MatA = coop_mat16x16<f16, A>;
alias MatB = coop_mat16x16<f16, B>;
alias MatC = coop_mat16x16<f32, C>;

// A: 16 weight rows from half `off`, row-major, stride kp.
fn load_a(off: u32) -> MatA {
    return coopLoadT<MatA>(&w[off], p.kp);
}

// B: 16 patch rows (pixels) from half `off`, each a column of B: column-major, stride kp.
fn load_b(off: u32) -> MatB {
    return coopLoad<MatB>(&pt[off], p.kp);
}

fn mma(a: MatA, b: MatB, c: MatC) -> MatC {
    return coopMultiplyAdd(a, b, c);
}

// The tile row-major into the staging area at `off`.
fn store_c(c: MatC, off: u32) {
    coopStoreT(c, &cs[off], 16u);
}

// After the stores (the emulation sums its tiles here).
fn finish_tiles() {}
// MMA END

// One invocation per half of the chunk's patch matrix (1-D grid folded into y).
@compute @workgroup_size(64, 1, 1)
fn im2col(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    let per_group = p.n_pad * p.kp;
    if (i >= p.groups * per_group) {
        return;
    }
    let g = i / per_group;
    let nl = (i % per_group) / p.kp;
    let k = i % p.kp;
    let kk = p.kernel * p.kernel;
    var v = 0.0;
    if (nl < p.n_count && k < p.cin_g * kk) {
        let n = p.n_start + nl;
        let hw = p.out_h * p.out_w;
        let img = n / hw;
        let pix = n % hw;
        let ci = k / kk;
        let ky = (k % kk) / p.kernel;
        let kx = k % p.kernel;
        let iy = i32((pix / p.out_w) * p.stride + ky) - i32(p.pad);
        let ix = i32((pix % p.out_w) * p.stride + kx) - i32(p.pad);
        if (iy >= 0 && iy < i32(p.in_h) && ix >= 0 && ix < i32(p.in_w)) {
            let c = img * p.in_c + g * p.cin_g + ci;
            v = x[(c * p.in_h + u32(iy)) * p.in_w + u32(ix)];
        }
    }
    // Saturating, as the other f16 paths store.
    pt[i] = f16(clamp(v, -65504.0, 65504.0));
}

@compute @workgroup_size(32, 1, 1)
fn gemm(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    lane = t;
    let g = wg.z;
    let m0 = wg.y * BM;
    let n0 = wg.x * BN;
    let kp = p.kp;
    // TILES BEGIN
    // Tile origins: A rows m0 + 16 i, B columns (pixels) n0 + 16 j; accumulator cij.
    let a0 = (g * p.m_pad + m0) * kp;
    let a1 = a0 + 16u * kp;
    let b0 = (g * p.n_pad + n0) * kp;
    let b1 = b0 + 16u * kp;
    let b2 = b0 + 32u * kp;
    let b3 = b0 + 48u * kp;
    var c00 = MatC();
    var c01 = MatC();
    var c02 = MatC();
    var c03 = MatC();
    var c10 = MatC();
    var c11 = MatC();
    var c12 = MatC();
    var c13 = MatC();
    for (var k = 0u; k < kp; k += 16u) {
        let ta0 = load_a(a0 + k);
        let ta1 = load_a(a1 + k);
        let tb0 = load_b(b0 + k);
        let tb1 = load_b(b1 + k);
        let tb2 = load_b(b2 + k);
        let tb3 = load_b(b3 + k);
        c00 = mma(ta0, tb0, c00);
        c01 = mma(ta0, tb1, c01);
        c02 = mma(ta0, tb2, c02);
        c03 = mma(ta0, tb3, c03);
        c10 = mma(ta1, tb0, c10);
        c11 = mma(ta1, tb1, c11);
        c12 = mma(ta1, tb2, c12);
        c13 = mma(ta1, tb3, c13);
    }
    store_c(c00, 0u);
    store_c(c01, 256u);
    store_c(c02, 512u);
    store_c(c03, 768u);
    store_c(c10, 1024u);
    store_c(c11, 1280u);
    store_c(c12, 1536u);
    store_c(c13, 1792u);
    // TILES END
    finish_tiles();
    workgroupBarrier();
    // Epilogue: tile (i, j) = (e / (256 WN), (e / 256) % WN), element (r, c) row-major in it;
    // neighbouring lanes store neighbouring pixels.
    let hw = p.out_h * p.out_w;
    for (var e = t; e < TILES * 256u; e += 32u) {
        let m = m0 + (e / (256u * WN)) * 16u + (e % 256u) / 16u;
        let nl = n0 + ((e / 256u) % WN) * 16u + e % 16u;
        if (m < p.m && nl < p.n_count) {
            let n = p.n_start + nl;
            let co = g * p.m + m;
            var v = cs[e] + bias[co];
            if (p.relu != 0u) {
                v = max(v, 0.0);
            }
            y[((n / hw) * p.out_c + co) * hw + n % hw] = v;
        }
    }
}
