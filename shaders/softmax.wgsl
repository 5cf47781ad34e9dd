// Row-wise softmax, numerically stable (max subtracted); one workgroup per row.

struct Params {
    rows: u32,
    cols: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

const WG: u32 = 64u;
var<workgroup> scratch: array<f32, 64>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
    let row = wg.x;
    let base = row * p.cols;
    var m = -3.402823e38;
    for (var i = tid; i < p.cols; i += WG) {
        m = max(m, x[base + i]);
    }
    scratch[tid] = m;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (tid < s) {
            scratch[tid] = max(scratch[tid], scratch[tid + s]);
        }
        workgroupBarrier();
    }
    let row_max = scratch[0];
    workgroupBarrier();
    var sum = 0.0;
    for (var i = tid; i < p.cols; i += WG) {
        sum += exp(x[base + i] - row_max);
    }
    scratch[tid] = sum;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (tid < s) {
            scratch[tid] += scratch[tid + s];
        }
        workgroupBarrier();
    }
    let total = scratch[0];
    for (var i = tid; i < p.cols; i += WG) {
        y[base + i] = exp(x[base + i] - row_max) / total;
    }
}
