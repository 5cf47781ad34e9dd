// Dense layers at small batches with f16 weights: y[b][row_start + r] = bias + sum_k x[b][k] *
// w[r][k] (then ReLU when asked) for b < batch <= B, f32 inputs, f32 accumulation and output.
//
// At batch 1-8 a dense layer is a matrix-vector product: its floor is reading the weights once
// (fc6 in f16: 75 MB, ~22 us at an H100's 3.35 TB/s), so the lanes of a workgroup walk along K
// (adjacent lanes, adjacent words: coalesced loads) and each workgroup reduces R rows for all
// batch rows at once (every weight word read once, every input value reused R times). The
// CPU-shaped `gemm_f16.wgsl` m1 tile does the opposite (each lane a row, K serial), which a GPU
// serves one uncoalesced word per lane per step.
//
// The weights are pairs of halves in u32, converted with integer bit operations as in
// `gemm_f16.wgsl` (`unpack2x16float` would need the `SHADER_F16_IN_F32` downlevel flag), rows
// `row_words` apart, in one of two orders: `interleaved` = 1 is `gemm_f16.wgsl`'s (word j of
// each four holds k = 8g + j low and 8g + j + 4 high), 0 is sequential pairs (`coop.wgsl`'s:
// word j holds k = 2j and 2j + 1). Halves past K are zero in both.

struct Params {
    batch: u32,
    k: u32,
    out_f: u32,
    row_start: u32,
    rows: u32,
    row_words: u32,
    relu: u32,
    interleaved: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

const WG: u32 = 64u;
// Weight rows per workgroup.
const R: u32 = 4u;
// The largest batch (accumulators per lane: R * B).
const B: u32 = 8u;

// Each lane's R * B partial sums, `[R * B][WG]`: 8 KiB (WebGPU's baseline allows 16).
var<workgroup> partial: array<f32, 2048>;

// A half's exponent and mantissa moved to an f32's bit positions read as 2^-112 times the value
// (bias 15 vs 127): this multiply restores it, for normal and subnormal halves alike (the
// weights are clamped to the finite halves when packed).
const HALF_TO_FLOAT: f32 = 5.192296858534828e33; // 2^112

// The low and the high half of `v`.
fn halves(v: u32) -> vec2<f32> {
    let v2 = vec2<u32>(v << 16u, v);
    let bits = ((v2 >> vec2<u32>(3u)) & vec2<u32>(0x0fffe000u)) | (v2 & vec2<u32>(0x80000000u));
    return bitcast<vec2<f32>>(bits) * HALF_TO_FLOAT;
}

// x[b][i], 0 past K (the last word of an odd K holds one pad half).
fn xv(b: u32, i: u32) -> f32 {
    if (i < p.k) {
        return x[b * p.k + i];
    }
    return 0.0;
}

@compute @workgroup_size(64, 1, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let r0 = (wg.x + wg.y * groups.x) * R;
    var acc: array<f32, 32>;
    for (var s = 0u; s < R * B; s++) {
        acc[s] = 0.0;
    }
    for (var j = t; j < p.row_words; j += WG) {
        var lo_k = 2u * j;
        var hi_k = 2u * j + 1u;
        if (p.interleaved == 1u) {
            lo_k = (j / 4u) * 8u + j % 4u;
            hi_k = lo_k + 4u;
        }
        if (lo_k >= p.k) {
            continue;
        }
        var xl: array<f32, 8>;
        var xh: array<f32, 8>;
        for (var b = 0u; b < B; b++) {
            if (b < p.batch) {
                xl[b] = xv(b, lo_k);
                xh[b] = xv(b, hi_k);
            }
        }
        for (var r = 0u; r < R; r++) {
            let row = r0 + r;
            if (row < p.rows) {
                let h = halves(w[row * p.row_words + j]);
                for (var b = 0u; b < B; b++) {
                    acc[r * B + b] += xl[b] * h.x + xh[b] * h.y;
                }
            }
        }
    }
    for (var s = 0u; s < R * B; s++) {
        partial[s * WG + t] = acc[s];
    }
    workgroupBarrier();
    if (t < R * B) {
        let r = t / B;
        let b = t % B;
        let row = r0 + r;
        if (row < p.rows && b < p.batch) {
            var sum = 0.0;
            for (var l = 0u; l < WG; l++) {
                sum += partial[t * WG + l];
            }
            var v = sum + bias[p.row_start + row];
            if (p.relu == 1u) {
                v = max(v, 0.0);
            }
            y[b * p.out_f + p.row_start + row] = v;
        }
    }
}
