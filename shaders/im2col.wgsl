// im2col for gemm.wgsl: col[g][n - n_start][k] = the input value that output pixel n
// (image, oy, ox) multiplies with weight column k = (ci, ky, kx) of group g, zero in the padding
// and in the K tail (kp, the row length, is K rounded up to a multiple of 4 for vec4 loads).
// One invocation per (pixel, input channel of the group, group): kh * kw consecutive values, so
// the pixel's divisions happen once per kh * kw loads, not per load.

struct Params {
    // ConvGeometry (kernels::conv2d::ConvGeometry, filled by Conv2dShape::geometry): the
    // first 11 fields of every convolution kernel's params, in this order.
    batch: u32,
    in_c: u32,
    in_h: u32,
    in_w: u32,
    out_c: u32,
    out_h: u32,
    out_w: u32,
    groups: u32,
    kernel: u32,
    stride: u32,
    pad: u32,
    // input channels per group
    cin_g: u32,
    // row length of col (>= cin_g * kh * kw, multiple of 4)
    kp: u32,
    // pixels of this chunk: n_start .. n_start + n_count (of batch * out_h * out_w)
    n_start: u32,
    n_count: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> col: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let nl = gid.x;
    let ci = gid.y;
    let g = gid.z;
    if (nl >= p.n_count || ci >= p.cin_g) {
        return;
    }
    let n = p.n_start + nl;
    let out_hw = p.out_h * p.out_w;
    let img = n / out_hw;
    let pix = n % out_hw;
    let iy0 = i32((pix / p.out_w) * p.stride) - i32(p.pad);
    let ix0 = i32((pix % p.out_w) * p.stride) - i32(p.pad);
    let src = (img * p.in_c + g * p.cin_g + ci) * p.in_h * p.in_w;
    let row = (g * p.n_count + nl) * p.kp;
    let khw = p.kernel * p.kernel;
    var dst = row + ci * khw;
    for (var ky = 0u; ky < p.kernel; ky++) {
        let iy = iy0 + i32(ky);
        let row_ok = iy >= 0 && iy < i32(p.in_h);
        let line = src + u32(max(iy, 0)) * p.in_w;
        for (var kx = 0u; kx < p.kernel; kx++) {
            let ix = ix0 + i32(kx);
            var v = 0.0;
            if (row_ok && ix >= 0 && ix < i32(p.in_w)) {
                v = x[line + u32(ix)];
            }
            col[dst] = v;
            dst++;
        }
    }
    // The last channel also zeroes the K tail (the buffer is shared by layers of other K).
    if (ci + 1u == p.cin_g) {
        for (var k = p.cin_g * khw; k < p.kp; k++) {
            col[row + k] = 0.0;
        }
    }
}
