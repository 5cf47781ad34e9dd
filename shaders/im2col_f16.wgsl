// im2col.wgsl for gemm_f16.wgsl: the same patch matrix, rounded to f16 (nearest even, saturating
// at +-65504) and packed in gemm_f16.wgsl's order (word j of each group of four: k = 8i + j low,
// 8i + 4 + j high), rows of kp / 2 words (kp: K rounded up to a multiple of 8), zero past K.
// Also packs dense-layer inputs (a 1x1 "convolution" of 1x1 images). Integer bit operations, no
// `pack2x16float` (see gemm_f16.wgsl for why).
// One invocation per (pixel, block of WORDS words, group): the first (ci, ky, kx) is found by
// division once, then stepped; all lanes of a workgroup step alike (same block, neighbouring
// pixels), so the branches stay uniform.

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
    // row length of col in halves (>= cin_g * kh * kw, multiple of 8)
    kp: u32,
    n_start: u32,
    n_count: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> col: array<u32>;

// Words per invocation.
const WORDS: u32 = 32u;

struct Cursor {
    ci: u32,
    ky: u32,
    kx: u32,
}

fn fetch(cur: Cursor, src: u32, iy0: i32, ix0: i32) -> f32 {
    if (cur.ci >= p.cin_g) {
        return 0.0;
    }
    let iy = iy0 + i32(cur.ky);
    let ix = ix0 + i32(cur.kx);
    if (iy < 0 || iy >= i32(p.in_h) || ix < 0 || ix >= i32(p.in_w)) {
        return 0.0;
    }
    return x[src + (cur.ci * p.in_h + u32(iy)) * p.in_w + u32(ix)];
}

fn step(cur: Cursor) -> Cursor {
    var c = cur;
    c.kx++;
    if (c.kx == p.kernel) {
        c.kx = 0u;
        c.ky++;
        if (c.ky == p.kernel) {
            c.ky = 0u;
            c.ci++;
        }
    }
    return c;
}

const FLOAT_TO_HALF: f32 = 1.925929944387236e-34; // 2^-112

// IEEE binary16 bits of `v`, rounded to nearest even (halves' subnormals included: v * 2^-112 is
// then an f32 subnormal whose bits, shifted, are the half's).
fn half_bits(v: f32) -> u32 {
    let sign = (bitcast<u32>(v) >> 16u) & 0x8000u;
    let f = bitcast<u32>(min(abs(v), 65504.0) * FLOAT_TO_HALF);
    return sign | ((f + 0xfffu + ((f >> 13u) & 1u)) >> 13u);
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let nl = gid.x;
    let w0 = gid.y * WORDS;
    let g = gid.z;
    let row_words = p.kp / 2u;
    if (nl >= p.n_count || w0 >= row_words) {
        return;
    }
    let n = p.n_start + nl;
    let out_hw = p.out_h * p.out_w;
    let img = n / out_hw;
    let pix = n % out_hw;
    let iy0 = i32((pix / p.out_w) * p.stride) - i32(p.pad);
    let ix0 = i32((pix % p.out_w) * p.stride) - i32(p.pad);
    let src = (img * p.in_c + g * p.cin_g) * p.in_h * p.in_w;
    let khw = p.kernel * p.kernel;
    let k0 = 2u * w0;
    var cur = Cursor(k0 / khw, (k0 % khw) / p.kernel, k0 % p.kernel);
    let dst = (g * p.n_count + nl) * row_words;
    let end = min(w0 + WORDS, row_words);
    // Eight values (four words) at a time: word j = (k + j) | (k + 4 + j) << 16.
    for (var w = w0; w < end; w += 4u) {
        var v: array<u32, 8>;
        for (var i = 0u; i < 8u; i++) {
            v[i] = half_bits(fetch(cur, src, iy0, ix0));
            cur = step(cur);
        }
        for (var j = 0u; j < 4u; j++) {
            col[dst + w + j] = v[j] | (v[j + 4u] << 16u);
        }
    }
}
