// Adaptive average pooling (PyTorch's rule): output cell i of n covers input rows
// [floor(i * in / n), ceil((i + 1) * in / n)). The identity when in == out.

struct Params {
    planes: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * 256u;
    let out_hw = p.out_h * p.out_w;
    if (idx >= p.planes * out_hw) {
        return;
    }
    let plane = idx / out_hw;
    let oy = (idx % out_hw) / p.out_w;
    let ox = idx % p.out_w;
    let y_lo = (oy * p.in_h) / p.out_h;
    let y_hi = ((oy + 1u) * p.in_h + p.out_h - 1u) / p.out_h;
    let x_lo = (ox * p.in_w) / p.out_w;
    let x_hi = ((ox + 1u) * p.in_w + p.out_w - 1u) / p.out_w;
    let base = plane * p.in_h * p.in_w;
    var s = 0.0;
    for (var iy = y_lo; iy < y_hi; iy++) {
        for (var ix = x_lo; ix < x_hi; ix++) {
            s += x[base + iy * p.in_w + ix];
        }
    }
    y[idx] = s / f32((y_hi - y_lo) * (x_hi - x_lo));
}
