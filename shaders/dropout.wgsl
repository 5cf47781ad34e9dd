// Inverted dropout in place: x[i] *= keep(i) / (1 - rate). The mask is a hash of
// (seed, step, i), so the backward pass (same multiply on the gradient) and a resumed run
// recompute exactly the same mask without storing it.

struct Params {
    len: u32,
    seed: u32,
    step: u32,
    _pad: u32,
    rate: f32,
    _pad1: f32,
    _pad2: f32,
    _pad3: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

// PCG-style integer hash (Jarzynski & Olano, "Hash Functions for GPU Rendering", 2020).
fn pcg(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

fn uniform01(i: u32) -> f32 {
    let h = pcg(i ^ pcg(p.seed ^ pcg(p.step)));
    return f32(h >> 8u) / 16777216.0;
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * 256u;
    if (idx >= p.len) {
        return;
    }
    if (uniform01(idx) < p.rate) {
        x[idx] = 0.0;
    } else {
        x[idx] = x[idx] / (1.0 - p.rate);
    }
}
