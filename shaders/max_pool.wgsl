// Max pooling over each (image, channel) plane; one invocation per output value.
// Windows are clipped to the image (padding never wins the max).

struct Params {
    planes: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    kernel: u32,
    stride: u32,
    pad: u32,
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
    let y0 = i32(oy * p.stride) - i32(p.pad);
    let x0 = i32(ox * p.stride) - i32(p.pad);
    let y_lo = u32(max(y0, 0));
    let x_lo = u32(max(x0, 0));
    let y_hi = u32(min(y0 + i32(p.kernel), i32(p.in_h)));
    let x_hi = u32(min(x0 + i32(p.kernel), i32(p.in_w)));
    let base = plane * p.in_h * p.in_w;
    var m = -3.402823e38;
    for (var iy = y_lo; iy < y_hi; iy++) {
        for (var ix = x_lo; ix < x_hi; ix++) {
            m = max(m, x[base + iy * p.in_w + ix]);
        }
    }
    y[idx] = m;
}
