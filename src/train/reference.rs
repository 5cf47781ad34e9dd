//! The training protocol on the CPU in f64 (same dropout masks, same optimizer semantics),
//! for tests: the GPU trainer must follow it step by step.

use super::head::HeadWeights;
use super::trainer::{dropout_seed, Optimizer, TrainConfig};
use super::HeadKind;
use crate::kernels::{adam, dropout, sgd};

struct L {
    inp: usize,
    out: usize,
    relu: bool,
    w: Vec<f64>,
    b: Vec<f64>,
    s1w: Vec<f64>,
    s1b: Vec<f64>,
    s2w: Vec<f64>,
    s2b: Vec<f64>,
}

/// Runs `batches` (each `(x [batch, input], labels)`) with learning rates `lrs`; returns for
/// each step the batch's mean loss before the update and the head after it.
pub fn train_cpu(
    head: &HeadWeights,
    cfg: &TrainConfig,
    batches: &[(Vec<f32>, Vec<u32>)],
    lrs: &[f32],
) -> Vec<(f64, HeadWeights)> {
    let mut ls: Vec<L> = head
        .layers
        .iter()
        .map(|l| L {
            inp: l.inp,
            out: l.out,
            relu: l.relu,
            w: l.weight.iter().map(|&v| v as f64).collect(),
            b: l.bias.iter().map(|&v| v as f64).collect(),
            s1w: vec![0.0; l.weight.len()],
            s1b: vec![0.0; l.bias.len()],
            s2w: vec![0.0; l.weight.len()],
            s2b: vec![0.0; l.bias.len()],
        })
        .collect();
    let n = ls.len();
    let mut out = Vec::new();
    for (t, ((x, labels), lr)) in batches.iter().zip(lrs).enumerate() {
        let bsz = labels.len();
        let dropout_on = |i: usize| head.kind == HeadKind::Classifier && cfg.dropout > 0.0 && i < 2;
        let mask = |i: usize, len: usize| -> Vec<f64> {
            let seed = dropout_seed(cfg.seed, i as u32);
            (0..len)
                .map(|j| {
                    if dropout::keep(seed, t as u32, j as u32, cfg.dropout) {
                        1.0 / (1.0 - cfg.dropout as f64)
                    } else {
                        0.0
                    }
                })
                .collect()
        };
        // Forward, keeping each layer's (post-dropout) input.
        let mut inputs: Vec<Vec<f64>> = Vec::new();
        let mut a: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        for (i, l) in ls.iter().enumerate() {
            if dropout_on(i) {
                let m = mask(i, a.len());
                a.iter_mut().zip(&m).for_each(|(v, k)| *v *= k);
            }
            inputs.push(a.clone());
            let mut y = vec![0f64; bsz * l.out];
            for bi in 0..bsz {
                for o in 0..l.out {
                    let mut s = l.b[o];
                    for k in 0..l.inp {
                        s += l.w[o * l.inp + k] * a[bi * l.inp + k];
                    }
                    y[bi * l.out + o] = if l.relu { s.max(0.0) } else { s };
                }
            }
            a = y;
        }
        // Softmax cross-entropy.
        let k = ls[n - 1].out;
        let mut g = vec![0f64; bsz * k];
        let mut loss = 0.0;
        for bi in 0..bsz {
            let row = &a[bi * k..(bi + 1) * k];
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = row.iter().map(|v| (v - m).exp()).sum::<f64>().ln() + m;
            loss += lse - row[labels[bi] as usize];
            for c in 0..k {
                g[bi * k + c] =
                    ((row[c] - lse).exp() - (c == labels[bi] as usize) as u8 as f64) / bsz as f64;
            }
        }
        out.push((
            loss / bsz as f64,
            HeadWeights {
                kind: head.kind,
                layers: vec![],
                conv: None,
            },
        ));
        // Backward and update, top layer first.
        let mut grads: Vec<(Vec<f64>, Vec<f64>)> = vec![(vec![], vec![]); n];
        for i in (0..n).rev() {
            let l = &ls[i];
            let xin = &inputs[i];
            let mut gw = vec![0f64; l.out * l.inp];
            let mut gb = vec![0f64; l.out];
            for o in 0..l.out {
                for bi in 0..bsz {
                    let d = g[bi * l.out + o];
                    gb[o] += d;
                    for kk in 0..l.inp {
                        gw[o * l.inp + kk] += d * xin[bi * l.inp + kk];
                    }
                }
            }
            if i > 0 {
                let mut gi = vec![0f64; bsz * l.inp];
                for bi in 0..bsz {
                    for kk in 0..l.inp {
                        let mut s = 0.0;
                        for o in 0..l.out {
                            s += g[bi * l.out + o] * l.w[o * l.inp + kk];
                        }
                        gi[bi * l.inp + kk] = s;
                    }
                }
                if dropout_on(i) {
                    let m = mask(i, gi.len());
                    gi.iter_mut().zip(&m).for_each(|(v, k)| *v *= k);
                }
                if ls[i - 1].relu {
                    gi.iter_mut().zip(xin).for_each(|(v, a)| {
                        if *a <= 0.0 {
                            *v = 0.0
                        }
                    });
                }
                g = gi;
            }
            grads[i] = (gw, gb);
        }
        for (l, (gw, gb)) in ls.iter_mut().zip(&grads) {
            let lr = *lr as f64;
            let wd = cfg.weight_decay as f64;
            match cfg.optimizer {
                Optimizer::Sgd { momentum } => {
                    sgd::reference(&mut l.w, &mut l.s1w, gw, t == 0, lr, momentum as f64, wd);
                    sgd::reference(&mut l.b, &mut l.s1b, gb, t == 0, lr, momentum as f64, wd);
                }
                Optimizer::Adam { beta1, beta2, eps } => {
                    let betas = (beta1 as f64, beta2 as f64);
                    adam::reference(
                        &mut l.w,
                        &mut l.s1w,
                        &mut l.s2w,
                        gw,
                        t as u32 + 1,
                        lr,
                        betas,
                        eps as f64,
                        wd,
                    );
                    adam::reference(
                        &mut l.b,
                        &mut l.s1b,
                        &mut l.s2b,
                        gb,
                        t as u32 + 1,
                        lr,
                        betas,
                        eps as f64,
                        wd,
                    );
                }
            }
        }
        let last = out.last_mut().expect("pushed above");
        last.1.layers = head
            .layers
            .iter()
            .zip(&ls)
            .map(|(h, l)| super::DenseHost {
                weight: l.w.iter().map(|&v| v as f32).collect(),
                bias: l.b.iter().map(|&v| v as f32).collect(),
                ..h.clone()
            })
            .collect();
    }
    out
}
