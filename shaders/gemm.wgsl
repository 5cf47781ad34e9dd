// C = A * B^T for CPU adapters (lavapipe / llvmpipe), one group per z slice:
//   C[m][n] = sum_k A[m][k] * B[n][k], both operands K-contiguous, K padded to a multiple of 4
//   and read as vec4 (four k per load).
// Convolutions: A = weights [Cout][Kp] (padded once at upload), B = im2col.wgsl's [N][Kp].
// Dense layers: A = activations [batch][K], B = weight rows [out][K] (PyTorch layout, as stored).
//
// Why this shape: llvmpipe runs the invocations of a workgroup as the lanes of 256-bit vectors
// and loads storage buffers lane by lane, so loads, not multiply-adds, are the cost. Each
// invocation keeps a register tile (4 rows m x 4 columns n in `main`, 1 x 4 in `main_m1` for
// matrix-vector products), loads one vec4 per row and per column for every 4 k, and reuses each
// loaded value 4 times. No workgroup memory and no barriers (both are costly on a CPU); the
// columns of an invocation are WG apart so that the lanes of one load read neighbouring rows of
// B. Workgroups go row tile (x) fastest: consecutive workgroups reuse the same columns of B
// (~200 KB, cache-resident) while A is small; the other order streamed the whole im2col matrix
// once per row tile. GPUs keep conv2d.wgsl's shared-memory tiles.
//
// Output: nn = n + n_off (first column of this dispatch: chunk of an im2col, or first row of a
// split weight), mt = m + z * m_goff (output channel of group z);
//   c[(nn / hw) * c_bstride + mt * c_mstride + nn % hw] = act(acc + bias)
// with bias[mt] (bias_on_n == 0: conv channels) or bias[nn] (bias_on_n == 1: dense outputs).
// Conv: hw = OH * OW, c_bstride = Cout * hw, c_mstride = hw (NCHW). Dense: hw = 0xffffffff,
// c_mstride = out features.

struct Params {
    m: u32,
    n: u32,
    // K / 4: vec4 per row of A and of B.
    kv: u32,
    // Per z slice, in vec4: where its rows of A and of B start.
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
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

// Invocations per workgroup (one 256-bit vector on llvmpipe); columns per invocation in both
// entry points; rows per invocation in `main`.
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

// Row offsets (in vec4) of this invocation's 4 columns of B, clamped into range: lanes past the
// end compute a copy of the last column and store nothing.
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

    // acc_i[j]: row m0 + i, column n0 + j * WG.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k = 0u; k < p.kv; k++) {
        let x0 = b[bo.x + k];
        let x1 = b[bo.y + k];
        let x2 = b[bo.z + k];
        let x3 = b[bo.w + k];
        let w0 = a[a0 + k];
        acc0 += vec4<f32>(dot(w0, x0), dot(w0, x1), dot(w0, x2), dot(w0, x3));
        let w1 = a[a1 + k];
        acc1 += vec4<f32>(dot(w1, x0), dot(w1, x1), dot(w1, x2), dot(w1, x3));
        let w2 = a[a2 + k];
        acc2 += vec4<f32>(dot(w2, x0), dot(w2, x1), dot(w2, x2), dot(w2, x3));
        let w3 = a[a3 + k];
        acc3 += vec4<f32>(dot(w3, x0), dot(w3, x1), dot(w3, x2), dot(w3, x3));
    }
    put_row(g, m0, n0, acc0);
    put_row(g, m0 + 1u, n0, acc1);
    put_row(g, m0 + 2u, n0, acc2);
    put_row(g, m0 + 3u, n0, acc3);
}

// One row of A per workgroup (matrix-vector products: dense layers at batch 1-3), 4 columns
// per invocation: 5 vec4 loads per 16 multiply-adds, each weight read once per image.
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
        acc += vec4<f32>(dot(w, b[bo.x + k]), dot(w, b[bo.y + k]), dot(w, b[bo.z + k]), dot(w, b[bo.w + k]));
    }
    put_row(g, m, n0, acc);
}
