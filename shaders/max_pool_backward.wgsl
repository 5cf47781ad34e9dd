// Max pooling backward, one invocation per input value (a gather: no atomics): the sum of
// dy over the output windows whose maximum is this value. A window's maximum is its first
// largest value in row-major order (PyTorch's choice among ties); windows are clipped to the
// image as in max_pool.wgsl. Same params as max_pool.wgsl.

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
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

const WG: u32 = 256u;

// Flat index (within the plane) of the maximum of output window (oy, ox).
fn argmax(base: u32, oy: u32, ox: u32) -> u32 {
    let y0 = i32(oy * p.stride) - i32(p.pad);
    let x0 = i32(ox * p.stride) - i32(p.pad);
    let y_lo = u32(max(y0, 0));
    let x_lo = u32(max(x0, 0));
    let y_hi = u32(min(y0 + i32(p.kernel), i32(p.in_h)));
    let x_hi = u32(min(x0 + i32(p.kernel), i32(p.in_w)));
    var m = -3.402823e38;
    var at = y_lo * p.in_w + x_lo;
    for (var iy = y_lo; iy < y_hi; iy++) {
        for (var ix = x_lo; ix < x_hi; ix++) {
            let v = x[base + iy * p.in_w + ix];
            if (v > m) {
                m = v;
                at = iy * p.in_w + ix;
            }
        }
    }
    return at;
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * WG;
    let in_hw = p.in_h * p.in_w;
    if (idx >= p.planes * in_hw) {
        return;
    }
    let plane = idx / in_hw;
    let here = idx % in_hw;
    let iy = i32(here / p.in_w) + i32(p.pad);
    let ix = i32(here % p.in_w) + i32(p.pad);
    let k = i32(p.kernel);
    let s = i32(p.stride);
    // Windows oy with oy * s <= iy < oy * s + k.
    let oy_lo = max((iy - k + s) / s, 0);
    let oy_hi = min(iy / s, i32(p.out_h) - 1);
    let ox_lo = max((ix - k + s) / s, 0);
    let ox_hi = min(ix / s, i32(p.out_w) - 1);
    let base = plane * in_hw;
    var acc = 0.0;
    for (var oy = oy_lo; oy <= oy_hi; oy++) {
        for (var ox = ox_lo; ox <= ox_hi; ox++) {
            if (argmax(base, u32(oy), u32(ox)) == here) {
                acc += dy[(plane * p.out_h + u32(oy)) * p.out_w + u32(ox)];
            }
        }
    }
    dx[idx] = acc;
}
