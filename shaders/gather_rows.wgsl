// Gathers a training batch from the rows kept in GPU memory: dst[b][j] = src[idx[b] - first][j]
// for the batch rows b < count whose row idx[b] lies in this part [first, first + rows); the
// others are left for the dispatch of the part that holds them. One dispatch per part of the
// resident set (src/train/trainer/resident.rs); a pure copy, so the batch is bit-identical to
// the same rows uploaded from the host.

struct Params {
    dim: u32,
    count: u32,
    first: u32,
    rows: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<u32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.count * p.dim) {
        return;
    }
    let b = i / p.dim;
    let j = i - b * p.dim;
    let r = idx[b];
    if (r >= p.first && r - p.first < p.rows) {
        dst[i] = src[(r - p.first) * p.dim + j];
    }
}
