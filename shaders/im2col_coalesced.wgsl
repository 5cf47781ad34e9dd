// Coalesced im2col for mm.wgsl's `conv_im2col` entry (host module: src/kernels/mm_im2col.rs):
// col[g][n - n_start][q] = the vec4 of patch values k = 4q .. 4q + 3 that output pixel n
// (image, oy, ox) multiplies with weight columns k = (ci, ky, kx) of group g; zero in the
// padding and in the K tail (kp, the row length, is K rounded up to a multiple of 4).
//
// One workgroup per patch row (group, pixel), its 64 lanes striding along the row's kp / 4
// vec4: adjacent lanes write adjacent 16-byte vec4 (a 32-lane warp stores 512 contiguous
// bytes), and their taps are adjacent kx of one input row (contiguous at stride 1). im2col.wgsl
// gives lanes consecutive pixels instead, so its stores are kp * 4 bytes apart across a warp
// (6.4 KB at AlexNet's conv2). The pixel's divisions happen once per row (uniform across the
// workgroup); each tap's (ci, ky, kx) comes from the gather table mm.wgsl's conv entry uses
// (kernels::mm::conv_table: input offset ci*H*W + ky*W + kx and ky << 16 | kx; entries past K
// have ky = 0xffff, outside any image), so the loop has no division.
//
// Out-of-image taps read index 0 and are replaced by zero with `select`: every access is in
// bounds for any shape the host accepts (input under 2^31 values, sides under 0x7fff).

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
    // row length of col in values (>= cin_g * kh * kw, multiple of 4)
    kp: u32,
    // pixels of this chunk: n_start .. n_start + n_count (of batch * out_h * out_w)
    n_start: u32,
    n_count: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> col: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> tab: array<vec2<u32>>;

const WG: u32 = 64u;

// The input value of tap k for the pixel whose tap (0, 0) sits at (iy0, ix0), input offset
// `base` (its image and group's first channel).
fn tap(base: i32, iy0: i32, ix0: i32, k: u32) -> f32 {
    let e = tab[k];
    let iy = iy0 + i32(e.y >> 16u);
    let ix = ix0 + i32(e.y & 0xffffu);
    let ok = u32(iy) < p.in_h && u32(ix) < p.in_w;
    let v = x[select(0u, u32(base + i32(e.x)), ok)];
    return select(0.0, v, ok);
}

// Workgroup (x + y * nwg.x) = patch row g * n_count + (n - n_start).
@compute @workgroup_size(64, 1, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let row = wg.x + wg.y * nwg.x;
    if (row >= p.groups * p.n_count) {
        return;
    }
    let g = row / p.n_count;
    let n = p.n_start + row % p.n_count;
    let out_hw = p.out_h * p.out_w;
    let img = n / out_hw;
    let pix = n % out_hw;
    let iy0 = i32((pix / p.out_w) * p.stride) - i32(p.pad);
    let ix0 = i32((pix % p.out_w) * p.stride) - i32(p.pad);
    let base = i32((img * p.in_c + g * p.cin_g) * p.in_h * p.in_w) + iy0 * i32(p.in_w) + ix0;
    let kv = p.kp / 4u;
    for (var q = t; q < kv; q += WG) {
        let k = q * 4u;
        col[row * kv + q] = vec4<f32>(
            tap(base, iy0, ix0, k),
            tap(base, iy0, ix0, k + 1u),
            tap(base, iy0, ix0, k + 2u),
            tap(base, iy0, ix0, k + 3u),
        );
    }
}
