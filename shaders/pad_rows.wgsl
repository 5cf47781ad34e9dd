// Copies a row-major [rows][cols] matrix into [rows][cols_padded] (cols_padded >= cols),
// zero-filling columns cols..cols_padded. Used for a trained convolution whose K is not a
// multiple of 4 (conv1: K = 363): its weights stay OIHW, the layout the gradient kernels and
// the optimizer read, and this copy gives the forward GEMMs the vec4 rows they load, once per
// forward pass (64 x 364 values for conv1: negligible next to the convolution itself).

struct Params {
    rows: u32,
    cols: u32,
    cols_padded: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.rows * p.cols_padded) {
        return;
    }
    let r = i / p.cols_padded;
    let c = i - r * p.cols_padded;
    var v = 0.0;
    if (c < p.cols) {
        v = src[r * p.cols + c];
    }
    dst[i] = v;
}
