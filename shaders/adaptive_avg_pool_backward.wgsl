// Adaptive average pooling backward (PyTorch's rule, as adaptive_avg_pool.wgsl), one
// invocation per input value: the sum over the output cells covering it of dy / cell area.
// Same params as adaptive_avg_pool.wgsl.

struct Params {
    planes: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

const WG: u32 = 256u;

fn lo(o: u32, n_in: u32, n_out: u32) -> u32 {
    return (o * n_in) / n_out;
}

fn hi(o: u32, n_in: u32, n_out: u32) -> u32 {
    return ((o + 1u) * n_in + n_out - 1u) / n_out;
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * WG;
    let in_hw = p.in_h * p.in_w;
    if (idx >= p.planes * in_hw) {
        return;
    }
    let plane = idx / in_hw;
    let iy = (idx % in_hw) / p.in_w;
    let ix = idx % p.in_w;
    var acc = 0.0;
    for (var oy = 0u; oy < p.out_h; oy++) {
        let y_lo = lo(oy, p.in_h, p.out_h);
        let y_hi = hi(oy, p.in_h, p.out_h);
        if (y_lo > iy) {
            break;
        }
        if (iy >= y_hi) {
            continue;
        }
        for (var ox = 0u; ox < p.out_w; ox++) {
            let x_lo = lo(ox, p.in_w, p.out_w);
            let x_hi = hi(ox, p.in_w, p.out_w);
            if (x_lo > ix) {
                break;
            }
            if (ix >= x_hi) {
                continue;
            }
            let area = f32((y_hi - y_lo) * (x_hi - x_lo));
            acc += dy[(plane * p.out_h + oy) * p.out_w + ox] / area;
        }
    }
    dx[idx] = acc;
}
