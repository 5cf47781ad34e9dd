// Convolution backward (groups, stride, padding; NCHW activations, OIHW weights with
// I = in_c / groups), as three gathers, so no atomics and no scratch memory:
//   grad_input:  dx[b][c][iy][ix] = sum over co of c's group, ky, kx with
//                oy = (iy + pad - ky) / stride exact and in range (same for x) of
//                dy[b][co][oy][ox] * w[co][c - g * cin_g][ky][kx]
//   grad_weight: dw[co][ci][ky][kx] = sum over b, oy, ox of dy[b][co][oy][ox] * x[b][c][iy][ix]
//   grad_bias:   db[co] = sum over b, oy, ox of dy[b][co][oy][ox]
// These are the two GEMMs of the backward pass (dx = col2im(W^T dY), dW = dY col^T) written
// as their direct sums; `accumulate` adds to the output instead of writing it.

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
    accumulate: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// grad_input: w; grad_weight: x.
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
// grad_input: dx; grad_weight: dw; grad_bias: db.
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const WG: u32 = 64u;

fn store(i: u32, v: f32) {
    if (p.accumulate != 0u) {
        out[i] += v;
    } else {
        out[i] = v;
    }
}

@compute @workgroup_size(64, 1, 1)
fn grad_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * WG;
    let in_hw = p.in_h * p.in_w;
    if (idx >= p.batch * p.in_c * in_hw) {
        return;
    }
    let b = idx / (p.in_c * in_hw);
    let c = (idx / in_hw) % p.in_c;
    let iy = i32((idx % in_hw) / p.in_w) + i32(p.pad);
    let ix = i32(idx % p.in_w) + i32(p.pad);
    let cin_g = p.in_c / p.groups;
    let cout_g = p.out_c / p.groups;
    let g = c / cin_g;
    let ci = c - g * cin_g;
    let k = i32(p.kernel);
    let s = i32(p.stride);
    let out_hw = p.out_h * p.out_w;
    var acc = 0.0;
    for (var ky = 0; ky < k; ky++) {
        let ty = iy - ky;
        if (ty < 0 || ty % s != 0 || ty / s >= i32(p.out_h)) {
            continue;
        }
        let oy = u32(ty / s);
        for (var kx = 0; kx < k; kx++) {
            let tx = ix - kx;
            if (tx < 0 || tx % s != 0 || tx / s >= i32(p.out_w)) {
                continue;
            }
            let ox = u32(tx / s);
            var dyi = (b * p.out_c + g * cout_g) * out_hw + oy * p.out_w + ox;
            var wi = ((g * cout_g * cin_g + ci) * p.kernel + u32(ky)) * p.kernel + u32(kx);
            let wstep = cin_g * p.kernel * p.kernel;
            for (var co = 0u; co < cout_g; co++) {
                acc = fma(dy[dyi], a[wi], acc);
                dyi += out_hw;
                wi += wstep;
            }
        }
    }
    store(idx, acc);
}

@compute @workgroup_size(64, 1, 1)
fn grad_weight(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * WG;
    let cin_g = p.in_c / p.groups;
    let kk = p.kernel * p.kernel;
    if (idx >= p.out_c * cin_g * kk) {
        return;
    }
    let co = idx / (cin_g * kk);
    let ci = (idx / kk) % cin_g;
    let ky = (idx % kk) / p.kernel;
    let kx = idx % p.kernel;
    let g = co / (p.out_c / p.groups);
    let c = g * cin_g + ci;
    let in_hw = p.in_h * p.in_w;
    let out_hw = p.out_h * p.out_w;
    // Output rows and columns whose window reads an input pixel (not padding) at (ky, kx).
    let pad = i32(p.pad);
    let s = i32(p.stride);
    let oy_lo = u32(max((pad - i32(ky) + s - 1) / s, 0));
    let oy_hi = u32(clamp((i32(p.in_h) + pad - i32(ky) + s - 1) / s, 0, i32(p.out_h)));
    let ox_lo = u32(max((pad - i32(kx) + s - 1) / s, 0));
    let ox_hi = u32(clamp((i32(p.in_w) + pad - i32(kx) + s - 1) / s, 0, i32(p.out_w)));
    var acc = 0.0;
    for (var b = 0u; b < p.batch; b++) {
        let xb = (b * p.in_c + c) * in_hw;
        let dyb = (b * p.out_c + co) * out_hw;
        for (var oy = oy_lo; oy < oy_hi; oy++) {
            let iy = oy * p.stride + ky - p.pad;
            for (var ox = ox_lo; ox < ox_hi; ox++) {
                let ix = ox * p.stride + kx - p.pad;
                acc = fma(dy[dyb + oy * p.out_w + ox], a[xb + iy * p.in_w + ix], acc);
            }
        }
    }
    store(idx, acc);
}

@compute @workgroup_size(64, 1, 1)
fn grad_bias(@builtin(global_invocation_id) gid: vec3<u32>) {
    let co = gid.x;
    if (co >= p.out_c) {
        return;
    }
    let out_hw = p.out_h * p.out_w;
    var acc = 0.0;
    for (var b = 0u; b < p.batch; b++) {
        let base = (b * p.out_c + co) * out_hw;
        for (var i = 0u; i < out_hw; i++) {
            acc += dy[base + i];
        }
    }
    store(co, acc);
}
