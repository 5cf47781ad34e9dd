// gemm.wgsl with f16 storage (`--precision f16`): C = A B^T, both operands K-contiguous and
// stored as IEEE binary16 bit patterns two per u32, K padded to a multiple of 8 and read as
// vec4<u32>: eight k per load, word j (0..3) of vector i holding k = 8i + j in its low 16 bits
// and k = 8i + 4 + j in its high ones, so that one vector operation converts four of them.
// Converted to f32 with integer bit operations and one multiply (exact, subnormals included
// unless the device flushes them), accumulated in f32. Neither `enable f16` nor `unpack2x16float`
// (which wgpu gates behind the SHADER_F16_IN_F32 downlevel flag, absent e.g. on Mesa Vulkan
// drivers without SHADER_F16, and naga behind a non-default capability): plain WGSL that runs
// on every adapter. Same tiles, grid order and output mapping as gemm.wgsl (see there); on
// llvmpipe, where each lane's storage load is the cost, one load now brings 8 values, not 4.
// Convolutions: A = weights [Cout][Kp/2] (packed once at upload), B = im2col_f16.wgsl's patches.
// Dense layers: A = activations packed by im2col_f16.wgsl (as a 1x1 conv), B = weight rows.

struct Params {
    m: u32,
    n: u32,
    // K / 8: vec4<u32> per row of A and of B.
    kv: u32,
    a_gstride: u32,
    b_gstride: u32,
    m_goff: u32,
    n_off: u32,
    hw: u32,
    c_bstride: u32,
    c_mstride: u32,
    bias_on_n: u32,
    relu: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

const WG: u32 = 8u;
const TN: u32 = 4u;
const TM: u32 = 4u;

fn put(g: u32, m: u32, n: u32, v: f32) {
    if (m >= p.m || n >= p.n) {
        return;
    }
    let mt = m + g * p.m_goff;
    let nn = n + p.n_off;
    var out = v;
    if (p.bias_on_n != 0u) {
        out += bias[nn];
    } else {
        out += bias[mt];
    }
    if (p.relu != 0u) {
        out = max(out, 0.0);
    }
    c[(nn / p.hw) * p.c_bstride + mt * p.c_mstride + nn % p.hw] = out;
}

fn put_row(g: u32, m: u32, n0: u32, v: vec4<f32>) {
    put(g, m, n0, v.x);
    put(g, m, n0 + WG, v.y);
    put(g, m, n0 + 2u * WG, v.z);
    put(g, m, n0 + 3u * WG, v.w);
}

fn b_rows(g: u32, n0: u32) -> vec4<u32> {
    let nl = p.n - 1u;
    let base = g * p.b_gstride;
    return vec4<u32>(
        base + min(n0, nl) * p.kv,
        base + min(n0 + WG, nl) * p.kv,
        base + min(n0 + 2u * WG, nl) * p.kv,
        base + min(n0 + 3u * WG, nl) * p.kv,
    );
}

// A half's exponent and mantissa moved to an f32's bit positions read as 2^-112 times the value
// (bias 15 vs 127): this multiply restores it, for normal and subnormal halves alike.
const HALF_TO_FLOAT: f32 = 5.192296858534828e33; // 2^112

// The first four (low halves) and the last four (high halves) of the eight values in `v`.
fn lo(v: vec4<u32>) -> vec4<f32> {
    let bits = ((v << vec4<u32>(13u)) & vec4<u32>(0x0fffe000u)) | ((v << vec4<u32>(16u)) & vec4<u32>(0x80000000u));
    return bitcast<vec4<f32>>(bits) * HALF_TO_FLOAT;
}

fn hi(v: vec4<u32>) -> vec4<f32> {
    let bits = ((v >> vec4<u32>(3u)) & vec4<u32>(0x0fffe000u)) | (v & vec4<u32>(0x80000000u));
    return bitcast<vec4<f32>>(bits) * HALF_TO_FLOAT;
}

// Eight-term dot product of two packed vectors.
fn dot8(wl: vec4<f32>, wh: vec4<f32>, xl: vec4<f32>, xh: vec4<f32>) -> f32 {
    return dot(wl, xl) + dot(wh, xh);
}

@compute @workgroup_size(8, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let g = wg.z;
    let m0 = wg.x * TM;
    let n0 = wg.y * (WG * TN) + lid.x;
    let bo = b_rows(g, n0);
    let ml = p.m - 1u;
    let ab = g * p.a_gstride;
    let a0 = ab + min(m0, ml) * p.kv;
    let a1 = ab + min(m0 + 1u, ml) * p.kv;
    let a2 = ab + min(m0 + 2u, ml) * p.kv;
    let a3 = ab + min(m0 + 3u, ml) * p.kv;

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k = 0u; k < p.kv; k++) {
        let x0 = b[bo.x + k];
        let x1 = b[bo.y + k];
        let x2 = b[bo.z + k];
        let x3 = b[bo.w + k];
        let x0l = lo(x0);
        let x0h = hi(x0);
        let x1l = lo(x1);
        let x1h = hi(x1);
        let x2l = lo(x2);
        let x2h = hi(x2);
        let x3l = lo(x3);
        let x3h = hi(x3);
        let w0 = a[a0 + k];
        let w0l = lo(w0);
        let w0h = hi(w0);
        acc0 += vec4<f32>(dot8(w0l, w0h, x0l, x0h), dot8(w0l, w0h, x1l, x1h), dot8(w0l, w0h, x2l, x2h), dot8(w0l, w0h, x3l, x3h));
        let w1 = a[a1 + k];
        let w1l = lo(w1);
        let w1h = hi(w1);
        acc1 += vec4<f32>(dot8(w1l, w1h, x0l, x0h), dot8(w1l, w1h, x1l, x1h), dot8(w1l, w1h, x2l, x2h), dot8(w1l, w1h, x3l, x3h));
        let w2 = a[a2 + k];
        let w2l = lo(w2);
        let w2h = hi(w2);
        acc2 += vec4<f32>(dot8(w2l, w2h, x0l, x0h), dot8(w2l, w2h, x1l, x1h), dot8(w2l, w2h, x2l, x2h), dot8(w2l, w2h, x3l, x3h));
        let w3 = a[a3 + k];
        let w3l = lo(w3);
        let w3h = hi(w3);
        acc3 += vec4<f32>(dot8(w3l, w3h, x0l, x0h), dot8(w3l, w3h, x1l, x1h), dot8(w3l, w3h, x2l, x2h), dot8(w3l, w3h, x3l, x3h));
    }
    put_row(g, m0, n0, acc0);
    put_row(g, m0 + 1u, n0, acc1);
    put_row(g, m0 + 2u, n0, acc2);
    put_row(g, m0 + 3u, n0, acc3);
}

// One row of A per workgroup (matrix-vector products: dense layers at batch 1-3).
@compute @workgroup_size(8, 1, 1)
fn main_m1(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let g = wg.z;
    let m = wg.x;
    let n0 = wg.y * (WG * TN) + lid.x;
    let bo = b_rows(g, n0);
    let a0 = g * p.a_gstride + min(m, p.m - 1u) * p.kv;
    var acc = vec4<f32>(0.0);
    for (var k = 0u; k < p.kv; k++) {
        let w = a[a0 + k];
        let wl = lo(w);
        let wh = hi(w);
        let x0 = b[bo.x + k];
        let x1 = b[bo.y + k];
        let x2 = b[bo.z + k];
        let x3 = b[bo.w + k];
        acc += vec4<f32>(
            dot8(wl, wh, lo(x0), hi(x0)),
            dot8(wl, wh, lo(x1), hi(x1)),
            dot8(wl, wh, lo(x2), hi(x2)),
            dot8(wl, wh, lo(x3), hi(x3)),
        );
    }
    put_row(g, m, n0, acc);
}
