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

// Both matrix kernels give each invocation a 4x4 tile of outputs kept in registers: every
// value loaded is used four times (on a CPU adapter the loads, not the multiply-adds, cost).

@compute @workgroup_size(64, 1, 1)
fn grad_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let tile = gid.x + gid.y * nwg.x * 64u;
    let tiles_i = (p.in_f + 3u) / 4u;
    if (tile >= ((p.batch + 3u) / 4u) * tiles_i) {
        return;
    }
    let b0 = (tile / tiles_i) * 4u;
    let i0 = (tile % tiles_i) * 4u;
    var acc: array<vec4<f32>, 4>;
    for (var o = 0u; o < p.rows; o++) {
        var w = vec4<f32>(0.0);
        for (var c = 0u; c < 4u; c++) {
            if (i0 + c < p.in_f) {
                w[c] = a[o * p.in_f + i0 + c];
            }
        }
        for (var r = 0u; r < 4u; r++) {
            if (b0 + r < p.batch) {
                acc[r] = fma(vec4<f32>(dy[(b0 + r) * p.out_f + p.row_start + o]), w, acc[r]);
            }
        }
    }
    for (var r = 0u; r < 4u; r++) {
        for (var c = 0u; c < 4u; c++) {
            if (b0 + r < p.batch && i0 + c < p.in_f) {
                let idx = (b0 + r) * p.in_f + i0 + c;
                var v = acc[r][c];
                if (p.accumulate != 0u) {
                    v += out[idx];
                }
                out[idx] = v;
            }
        }
    }
}

@compute @workgroup_size(64, 1, 1)
fn grad_weight(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let tile = gid.x + gid.y * nwg.x * 64u;
    let tiles_i = (p.in_f + 3u) / 4u;
    if (tile >= ((p.rows + 3u) / 4u) * tiles_i) {
        return;
    }
    let o0 = (tile / tiles_i) * 4u;
    let i0 = (tile % tiles_i) * 4u;
    var acc: array<vec4<f32>, 4>;
    for (var b = 0u; b < p.batch; b++) {
        var x = vec4<f32>(0.0);
        for (var c = 0u; c < 4u; c++) {
            if (i0 + c < p.in_f) {
                x[c] = a[b * p.in_f + i0 + c];
            }
        }
        for (var r = 0u; r < 4u; r++) {
            if (o0 + r < p.rows) {
                acc[r] = fma(vec4<f32>(dy[b * p.out_f + p.row_start + o0 + r]), x, acc[r]);
            }
        }
    }
    for (var r = 0u; r < 4u; r++) {
        for (var c = 0u; c < 4u; c++) {
            if (o0 + r < p.rows && i0 + c < p.in_f) {
                out[(o0 + r) * p.in_f + i0 + c] = acc[r][c];
            }
        }
    }
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
