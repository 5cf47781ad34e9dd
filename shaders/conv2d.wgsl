// 2-D convolution as an implicit GEMM, one group per z slice.
// Per group: C[m][n] = sum_k A[m][k] * B[k][n] with
//   m = output channel within the group (rows of this dispatch), A = weights (OIHW rows),
//   n = (image, oy, ox), k = (input channel within the group, ky, kx), B = the input patch,
//   gathered on the fly (zero outside the padded image).
// A 64x64 tile of C per workgroup, 4x4 per invocation, K in steps of 16 through workgroup memory.
// Dense layers with large batches reuse it as a 1x1 convolution on 1x1 images.

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
    // First output channel of this dispatch and how many (per group): lets a weight matrix
    // split over several buffers run as several dispatches.
    co_start: u32,
    co_count: u32,
    relu: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;

var<workgroup> a_tile: array<f32, 1024>; // [BK][BM]
var<workgroup> b_tile: array<f32, 1024>; // [BK][BN]

@compute @workgroup_size(16, 16, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) tid: u32,
) {
    let g = wg.z;
    let cin_g = p.in_c / p.groups;
    let cout_g = p.out_c / p.groups;
    let khw = p.kernel * p.kernel;
    let k_total = cin_g * khw;
    let out_hw = p.out_h * p.out_w;
    let n_total = p.batch * out_hw;
    let m0 = wg.y * BM;
    let n0 = wg.x * BN;

    // The B column this invocation loads: fixed for the whole K loop.
    let ln = tid % BN;
    let lk0 = tid / BN; // 0..3, rows lk0, lk0 + 4, ...
    let n_load = n0 + ln;
    let n_ok = n_load < n_total;
    let img = n_load / out_hw;
    let pix = n_load % out_hw;
    let iy0 = i32((pix / p.out_w) * p.stride) - i32(p.pad);
    let ix0 = i32((pix % p.out_w) * p.stride) - i32(p.pad);
    let x_base = (img * p.in_c + g * cin_g) * p.in_h * p.in_w;

    // The A row this invocation loads: 4 consecutive k.
    let lm = tid / 4u;
    let lka = (tid % 4u) * 4u;
    let m_load = m0 + lm;
    let m_ok = m_load < p.co_count;
    // The weight buffer starts at channel co_start (a split matrix) and holds every group.
    let w_row = g * cout_g + m_load;

    var acc: array<array<f32, 4>, 4>;
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            acc[i][j] = 0.0;
        }
    }

    for (var k0 = 0u; k0 < k_total; k0 += BK) {
        for (var j = 0u; j < 4u; j++) {
            let k = k0 + lka + j;
            var v = 0.0;
            if (m_ok && k < k_total) {
                v = weight[w_row * k_total + k];
            }
            a_tile[(lka + j) * BM + lm] = v;
        }
        for (var i = 0u; i < 4u; i++) {
            let lk = lk0 + i * 4u;
            let k = k0 + lk;
            var v = 0.0;
            if (n_ok && k < k_total) {
                let ci = k / khw;
                let r = k % khw;
                let iy = iy0 + i32(r / p.kernel);
                let ix = ix0 + i32(r % p.kernel);
                if (iy >= 0 && iy < i32(p.in_h) && ix >= 0 && ix < i32(p.in_w)) {
                    v = x[x_base + (ci * p.in_h + u32(iy)) * p.in_w + u32(ix)];
                }
            }
            b_tile[lk * BN + ln] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            var a: array<f32, 4>;
            var b: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                a[i] = a_tile[kk * BM + lid.y * 4u + i];
                b[i] = b_tile[kk * BN + lid.x * 4u + i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i][j] = fma(a[i], b[j], acc[i][j]);
                }
            }
        }
        workgroupBarrier();
    }

    for (var i = 0u; i < 4u; i++) {
        let m = m0 + lid.y * 4u + i;
        if (m >= p.co_count) {
            continue;
        }
        let co = g * cout_g + p.co_start + m;
        let b = bias[co];
        for (var j = 0u; j < 4u; j++) {
            let n = n0 + lid.x * 4u + j;
            if (n >= n_total) {
                continue;
            }
            var v = acc[i][j] + b;
            if (p.relu != 0u) {
                v = max(v, 0.0);
            }
            let im = n / out_hw;
            y[(im * p.out_c + co) * out_hw + n % out_hw] = v;
        }
    }
}
