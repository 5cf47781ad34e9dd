// LPIPS, one trunk layer for many image pairs: at every spatial position each image's feature
// vector is scaled to unit length over the channels (eps added to the norm, outside the square
// root, as lpips' `normalize_tensor`), the squared difference is weighted by the layer's 1x1
// "lin" weights (no bias; all ones for the baseline) and summed over channels, giving the
// native-resolution map m[y, x]; the map's mean is the layer's term. One workgroup per pair:
// the features stay on the GPU, only the small maps and the terms come back.
//
// A pair's two images come from two feature buffers (`feats_a`, `feats_b`), so that the
// all-pairs matrix can reduce the pairs between two blocks of images without copying them into
// one buffer (one block is bound twice for the pairs inside it: both bindings are read-only).
// The maps are written only when `write_maps` is set; otherwise `maps` may be a one-element
// placeholder, and a matrix of many pairs allocates no [pairs, hw] buffers.

struct Params {
    pairs: u32,
    channels: u32,
    // Spatial positions per channel plane (h * w).
    hw: u32,
    // The layer's slot in `terms` (0..layers) and the slots per pair.
    layer: u32,
    layers: u32,
    // 1: write `maps`; 0: only the terms (`maps` is then not touched).
    write_maps: u32,
    _pad1: u32,
    _pad2: u32,
}

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
// [images, channels, hw]: the layer's ReLU output for the images of the pairs' first side
// (`feats_a`) and second side (`feats_b`); the same buffer may be bound as both.
@group(0) @binding(1) var<storage, read> feats_a: array<f32>;
@group(0) @binding(2) var<storage, read> feats_b: array<f32>;
// [pairs, 2]: each pair's image index in feats_a, then in feats_b.
@group(0) @binding(3) var<storage, read> pair_idx: array<u32>;
// [channels]: the lin weights.
@group(0) @binding(4) var<storage, read> lin: array<f32>;
// [pairs, hw]: the native-resolution map of each pair (when write_maps is 1).
@group(0) @binding(5) var<storage, read_write> maps: array<f32>;
// [pairs, layers]: the spatial mean of each map.
@group(0) @binding(6) var<storage, read_write> terms: array<f32>;

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(64, 1, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Workgroup-uniform, so the early return keeps the barriers below in uniform control flow.
    let pair = wid.x + wid.y * nwg.x;
    if (pair >= p.pairs) {
        return;
    }
    let image_len = p.channels * p.hw;
    let a0 = pair_idx[2u * pair] * image_len;
    let b0 = pair_idx[2u * pair + 1u] * image_len;
    var acc = 0.0;
    for (var pos = lid; pos < p.hw; pos += WG) {
        var sa = 0.0;
        var sb = 0.0;
        for (var c = 0u; c < p.channels; c++) {
            let fa = feats_a[a0 + c * p.hw + pos];
            let fb = feats_b[b0 + c * p.hw + pos];
            sa += fa * fa;
            sb += fb * fb;
        }
        // A true division by (norm + eps), as lpips does: an all-zero vector gives 0, not NaN.
        let na = sqrt(sa) + 1e-10;
        let nb = sqrt(sb) + 1e-10;
        var m = 0.0;
        for (var c = 0u; c < p.channels; c++) {
            let d = feats_a[a0 + c * p.hw + pos] / na - feats_b[b0 + c * p.hw + pos] / nb;
            m += lin[c] * (d * d);
        }
        if (p.write_maps != 0u) {
            maps[pair * p.hw + pos] = m;
        }
        acc += m;
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid < s) {
            partial[lid] += partial[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        terms[pair * p.layers + p.layer] = partial[0] / f32(p.hw);
    }
}
