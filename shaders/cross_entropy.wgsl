// Softmax cross-entropy, forward and backward fused, mean over the batch:
//   grad[b][c] = (softmax(logits[b])[c] - [c == label[b]]) / batch.
// One workgroup for the whole batch; it also adds this batch's summed loss, correct count and
// size to the epoch's running stats (so they are read back once per epoch) and stores the
// batch's mean loss at stats[4 + step_slot] for the per-step log.

struct Params {
    batch: u32,
    classes: u32,
    step_slot: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;

const WG: u32 = 64u;
var<workgroup> loss_part: array<f32, 64>;
var<workgroup> correct_part: array<f32, 64>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(local_invocation_index) tid: u32) {
    var loss = 0.0;
    var correct = 0.0;
    for (var b = tid; b < p.batch; b += WG) {
        let base = b * p.classes;
        let label = labels[b];
        var m = logits[base];
        var arg = 0u;
        for (var c = 1u; c < p.classes; c++) {
            if (logits[base + c] > m) {
                m = logits[base + c];
                arg = c;
            }
        }
        var sum = 0.0;
        for (var c = 0u; c < p.classes; c++) {
            sum += exp(logits[base + c] - m);
        }
        let log_sum = log(sum);
        loss += log_sum - (logits[base + label] - m);
        if (arg == label) {
            correct += 1.0;
        }
        let inv_b = 1.0 / f32(p.batch);
        for (var c = 0u; c < p.classes; c++) {
            var g = exp(logits[base + c] - m - log_sum);
            if (c == label) {
                g -= 1.0;
            }
            grad[base + c] = g * inv_b;
        }
    }
    loss_part[tid] = loss;
    correct_part[tid] = correct;
    workgroupBarrier();
    if (tid == 0u) {
        var l = 0.0;
        var k = 0.0;
        for (var i = 0u; i < WG; i++) {
            l += loss_part[i];
            k += correct_part[i];
        }
        stats[0] += l;
        stats[1] += k;
        stats[2] += f32(p.batch);
        stats[4u + p.step_slot] = l / f32(p.batch);
    }
}
