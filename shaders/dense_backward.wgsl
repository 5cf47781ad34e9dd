// Backward of y = x w^T + b for a weight matrix stored as row parts (rows row_start..+rows):
//   grad_input:  dx[b][i]  (+)= sum_{o in part} dy[b][o] * w[o][i]   (accumulate over parts)
//   grad_weight: dw[o][i]   = sum_b dy[b][row_start + o] * x[b][i]   (dw laid out like the part)
//   grad_bias:   db[o]      = sum_b dy[b][o]
// Sums run in a fixed order, so training is reproducible run to run.

struct Params {
    batch: u32,
    in_f: u32,
    out_f: u32,
    row_start: u32,
    rows: u32,
    accumulate: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;       // grad_input: w part; grad_weight: x (unused by grad_bias)
@group(0) @binding(2) var<storage, read> dy: array<f32>;      // [batch, out_f]
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn grad_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * 64u;
    if (idx >= p.batch * p.in_f) {
        return;
    }
    let b = idx / p.in_f;
    let i = idx % p.in_f;
    var s = 0.0;
    for (var o = 0u; o < p.rows; o++) {
        s = fma(dy[b * p.out_f + p.row_start + o], a[o * p.in_f + i], s);
    }
    if (p.accumulate != 0u) {
        s += out[idx];
    }
    out[idx] = s;
}

@compute @workgroup_size(64, 1, 1)
fn grad_weight(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * 64u;
    if (idx >= p.rows * p.in_f) {
        return;
    }
    let o = idx / p.in_f;
    let i = idx % p.in_f;
    var s = 0.0;
    for (var b = 0u; b < p.batch; b++) {
        s = fma(dy[b * p.out_f + p.row_start + o], a[b * p.in_f + i], s);
    }
    out[idx] = s;
}

@compute @workgroup_size(64, 1, 1)
fn grad_bias(@builtin(global_invocation_id) gid: vec3<u32>) {
    let o = gid.x;
    if (o >= p.out_f) {
        return;
    }
    var s = 0.0;
    for (var b = 0u; b < p.batch; b++) {
        s += dy[b * p.out_f + o];
    }
    out[o] = s;
}
