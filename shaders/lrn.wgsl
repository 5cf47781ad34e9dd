// Local response normalisation across channels (Caffe/ONNX):
//   y = x / (k + alpha / size * sum_{c' in window(c)} x[c']^2)^beta,
// window(c) = [c - floor((size-1)/2), c + ceil((size-1)/2)] clipped to the channels.

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
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * 256u;
    if (idx >= p.batch * p.channels * p.hw) {
        return;
    }
    let c = (idx / p.hw) % p.channels;
    let base = idx - c * p.hw; // channel 0 of the same pixel
    let lo = u32(max(i32(c) - i32((p.size - 1u) / 2u), 0));
    let hi = min(c + p.size / 2u, p.channels - 1u);
    var s = 0.0;
    for (var cc = lo; cc <= hi; cc++) {
        let v = x[base + cc * p.hw];
        s = fma(v, v, s);
    }
    y[idx] = x[idx] / pow(p.k + p.alpha / f32(p.size) * s, p.beta);
}
