// Layout changes that let a convolution's backward pass run on gemm.wgsl (C = A B^T, both
// operands K-contiguous, K a multiple of 4), per group g, P = batch * out_h * out_w pixels:
//   weight gradient  dW[g][co][k] = sum_n dY[g, co][n] col[g][n][k]
//     A = `dy_cn`:    dY as [out_c][p4] (batch folded into the pixels, zero-padded to p4)
//     B = `im2col_t`: the patch matrix transposed, [g][k_count][p4] (k rows k_start..)
//   input gradient   dcol[g][n][k] = sum_co dY[g, co][n] W[g, co][k], then `col2im`
//     A = `dy_nc`:    dY as [g][n][co4] for the pixels of images img_start.. (co4: cout_g
//                     padded to 4)
//     B = `weight_t`: W as [g][k][co4] (W's rows w_row values apart)
//     `col2im`:       dx[b][c][iy][ix] = the sum of the dcol entries of every (pixel, k) that
//                     read x[b][c][iy][ix] in the forward pass (a gather: no atomics)
// Every entry writes each element of its output once (padding included), so buffers shared
// by layers of other shapes need no clearing.

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
    // pixels padded to a multiple of 4 (row length of dy_cn and im2col_t)
    p4: u32,
    // output channels per group padded to a multiple of 4 (row length of dy_nc and weight_t)
    co4: u32,
    k_start: u32,
    k_count: u32,
    img_start: u32,
    img_count: u32,
    // values per stored weight row (K, or K padded to a multiple of 4: a trained conv1 keeps
    // the forward GEMM's layout, train/conv_stack.rs)
    w_row: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

fn flat_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

fn cin_g() -> u32 {
    return p.in_c / p.groups;
}

fn cout_g() -> u32 {
    return p.out_c / p.groups;
}

// K of a group: in_c / groups * kernel^2.
fn kdim() -> u32 {
    return cin_g() * p.kernel * p.kernel;
}

// src = dY (NCHW), dst = [out_c][p4].
@compute @workgroup_size(256, 1, 1)
fn dy_cn(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.out_c * p.p4) {
        return;
    }
    let c = i / p.p4;
    let n = i % p.p4;
    let hw = p.out_h * p.out_w;
    var v = 0.0;
    if (n < p.batch * hw) {
        v = src[((n / hw) * p.out_c + c) * hw + n % hw];
    }
    dst[i] = v;
}

// src = x (NCHW), dst = [groups][k_count][p4].
@compute @workgroup_size(256, 1, 1)
fn im2col_t(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.groups * p.k_count * p.p4) {
        return;
    }
    let n = i % p.p4;
    let row = i / p.p4;
    let g = row / p.k_count;
    let k = p.k_start + row % p.k_count;
    let hw = p.out_h * p.out_w;
    var v = 0.0;
    let kk = p.kernel * p.kernel;
    if (n < p.batch * hw && k < kdim()) {
        let b = n / hw;
        let pix = n % hw;
        let ci = k / kk;
        let ky = (k % kk) / p.kernel;
        let kx = k % p.kernel;
        let iy = i32((pix / p.out_w) * p.stride + ky) - i32(p.pad);
        let ix = i32((pix % p.out_w) * p.stride + kx) - i32(p.pad);
        if (iy >= 0 && iy < i32(p.in_h) && ix >= 0 && ix < i32(p.in_w)) {
            let c = g * cin_g() + ci;
            v = src[((b * p.in_c + c) * p.in_h + u32(iy)) * p.in_w + u32(ix)];
        }
    }
    dst[i] = v;
}

// src = dY (NCHW), dst = [groups][img_count * hw][co4].
@compute @workgroup_size(256, 1, 1)
fn dy_nc(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let hw = p.out_h * p.out_w;
    let nc = p.img_count * hw;
    let i = flat_index(gid, nwg);
    if (i >= p.groups * nc * p.co4) {
        return;
    }
    let co = i % p.co4;
    let row = i / p.co4;
    let g = row / nc;
    let n = p.img_start * hw + row % nc;
    var v = 0.0;
    if (co < cout_g()) {
        v = src[((n / hw) * p.out_c + g * cout_g() + co) * hw + n % hw];
    }
    dst[i] = v;
}

// src = W (OIHW, [out_c][K]), dst = [groups][K][co4].
@compute @workgroup_size(256, 1, 1)
fn weight_t(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let kd = kdim();
    let i = flat_index(gid, nwg);
    if (i >= p.groups * kd * p.co4) {
        return;
    }
    let co = i % p.co4;
    let row = i / p.co4;
    let g = row / kd;
    let k = row % kd;
    var v = 0.0;
    if (co < cout_g()) {
        v = src[(g * cout_g() + co) * p.w_row + k];
    }
    dst[i] = v;
}

// src = dcol [groups][img_count * hw][K], dst = dx (NCHW), images img_start.. only.
@compute @workgroup_size(256, 1, 1)
fn col2im(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let plane = p.in_h * p.in_w;
    let i = flat_index(gid, nwg);
    if (i >= p.img_count * p.in_c * plane) {
        return;
    }
    let ix = i % p.in_w;
    let iy = (i / p.in_w) % p.in_h;
    let c = (i / plane) % p.in_c;
    let bl = i / (plane * p.in_c);
    let g = c / cin_g();
    let ci = c % cin_g();
    let kd = kdim();
    let nc = p.img_count * p.out_h * p.out_w;
    var acc = 0.0;
    for (var ky = 0u; ky < p.kernel; ky++) {
        let ty = i32(iy + p.pad) - i32(ky);
        if (ty < 0 || u32(ty) % p.stride != 0u || u32(ty) / p.stride >= p.out_h) {
            continue;
        }
        let oy = u32(ty) / p.stride;
        for (var kx = 0u; kx < p.kernel; kx++) {
            let tx = i32(ix + p.pad) - i32(kx);
            if (tx < 0 || u32(tx) % p.stride != 0u || u32(tx) / p.stride >= p.out_w) {
                continue;
            }
            let ox = u32(tx) / p.stride;
            let n = (bl * p.out_h + oy) * p.out_w + ox;
            let k = (ci * p.kernel + ky) * p.kernel + kx;
            acc += src[(g * nc + n) * kd + k];
        }
    }
    dst[((p.img_start + bl) * p.in_c + c) * plane + iy * p.in_w + ix] = acc;
}
