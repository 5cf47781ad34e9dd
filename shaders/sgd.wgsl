// SGD with momentum and weight decay, PyTorch semantics:
//   g = grad + weight_decay * param
//   buf = g on the first step, else momentum * buf + g
//   param -= lr * buf        (buf = g when momentum is 0)

struct Params {
    len: u32,
    first: u32,
    _pad0: u32,
    _pad1: u32,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    _pad2: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read_write> buf: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.len) {
        return;
    }
    let g = grad[i] + p.weight_decay * param[i];
    var v = g;
    if (p.momentum != 0.0) {
        if (p.first == 0u) {
            v = p.momentum * buf[i] + g;
        }
        buf[i] = v;
    }
    param[i] = param[i] - p.lr * v;
}
