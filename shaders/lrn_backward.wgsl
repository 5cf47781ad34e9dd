// LRN backward (Caffe/ONNX, as lrn.wgsl), one invocation per input value. With
//   d_i = k + alpha / size * sum_{j in window(i)} x_j^2,  y_i = x_i d_i^-beta,
//   dx_j = dy_j d_j^-beta - 2 alpha beta / size * x_j * sum_{i : j in window(i)} dy_i x_i d_i^(-beta-1)
// where window(i) = [i - before, i + after] (before = (size-1)/2, after = size/2), so the
// channels i whose window holds j are [j - after, j + before], clipped. d is recomputed (no
// saved scale buffer). Same params as lrn.wgsl.

struct Params {
    batch: u32,
    channels: u32,
    hw: u32,
    size: u32,
    alpha: f32,
    beta: f32,
    k: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

const WG: u32 = 256u;

fn scale(base: u32, c: u32) -> f32 {
    let lo = u32(max(i32(c) - i32((p.size - 1u) / 2u), 0));
    let hi = min(c + p.size / 2u, p.channels - 1u);
    var s = 0.0;
    for (var cc = lo; cc <= hi; cc++) {
        let v = x[base + cc * p.hw];
        s = fma(v, v, s);
    }
    return p.k + p.alpha / f32(p.size) * s;
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * WG;
    if (idx >= p.batch * p.channels * p.hw) {
        return;
    }
    let j = (idx / p.hw) % p.channels;
    let base = idx - j * p.hw;
    let before = (p.size - 1u) / 2u;
    let after = p.size / 2u;
    let lo = u32(max(i32(j) - i32(after), 0));
    let hi = min(j + before, p.channels - 1u);
    var s = 0.0;
    for (var i = lo; i <= hi; i++) {
        let at = base + i * p.hw;
        let d = scale(base, i);
        s += dy[at] * x[at] * pow(d, -p.beta - 1.0);
    }
    let dj = scale(base, j);
    dx[idx] = dy[idx] * pow(dj, -p.beta) - 2.0 * p.alpha * p.beta / f32(p.size) * x[idx] * s;
}
