// Dense layer for small batches: y[b][o] = sum_i w[o][i] * x[b][i] + bias[o].
// Bandwidth-bound (each weight is used by only a few images), so each workgroup streams
// ROWS weight rows once for up to BT images, 64 invocations striding over the inputs.
// Weights may be split over several buffers: this dispatch covers rows row_start..row_start+rows.

struct Params {
    batch: u32,
    in_f: u32,
    out_f: u32,
    row_start: u32,
    rows: u32,
    relu: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

const WG: u32 = 64u;
const ROWS: u32 = 4u;
const BT: u32 = 4u;

var<workgroup> partial: array<f32, 1024>; // [ROWS * BT][WG]

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
    let r0 = wg.x * ROWS;
    let b0 = wg.y * BT;
    var acc: array<f32, 16>;
    for (var i = 0u; i < ROWS * BT; i++) {
        acc[i] = 0.0;
    }
    for (var k = tid; k < p.in_f; k += WG) {
        var xv: array<f32, 4>;
        for (var b = 0u; b < BT; b++) {
            xv[b] = 0.0;
            if (b0 + b < p.batch) {
                xv[b] = x[(b0 + b) * p.in_f + k];
            }
        }
        for (var r = 0u; r < ROWS; r++) {
            var wv = 0.0;
            if (r0 + r < p.rows) {
                wv = weight[(r0 + r) * p.in_f + k];
            }
            for (var b = 0u; b < BT; b++) {
                acc[r * BT + b] = fma(wv, xv[b], acc[r * BT + b]);
            }
        }
    }
    for (var i = 0u; i < ROWS * BT; i++) {
        partial[i * WG + tid] = acc[i];
    }
    workgroupBarrier();
    if (tid < ROWS * BT) {
        let r = tid / BT;
        let b = tid % BT;
        var s = 0.0;
        for (var j = 0u; j < WG; j++) {
            s += partial[tid * WG + j];
        }
        if (r0 + r < p.rows && b0 + b < p.batch) {
            let o = p.row_start + r0 + r;
            var v = s + bias[o];
            if (p.relu != 0u) {
                v = max(v, 0.0);
            }
            y[(b0 + b) * p.out_f + o] = v;
        }
    }
}
