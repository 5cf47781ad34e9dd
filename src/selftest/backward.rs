//! The backward kernels' cases, and a training protocol per optimizer against the f64 CPU
//! protocol.

use std::time::Instant;

use rand::{Rng, SeedableRng};

use super::{conv_label, random, run_read, Case, Compared};
use crate::error::Error;
use crate::gpu::{read_back_f32, storage_buffer, upload_f32};
use crate::kernels::adaptive_avg_pool::AdaptivePoolShape;
use crate::kernels::conv2d::Conv2dShape;
use crate::kernels::conv_gemm_backward::{self, ConvGemmScratch};
use crate::kernels::lrn::Lrn;
use crate::kernels::max_pool::PoolShape;
use crate::kernels::{self, Kernels};
use crate::kernels::{conv_backward, lrn_backward, pool_backward};
use crate::train::{DenseHost, HeadKind, HeadWeights, Optimizer, TrainConfig, Trainer};

pub(super) fn backward_cases(out: &mut Vec<Case>) {
    // Convolution gradients (dx, dw, db concatenated), direct loops and as GEMMs (whole, and
    // with the scratch capped to a few rows so the work is chunked).
    for (i, s) in [
        Conv2dShape::square(2, 3, 19, 8, 11, 4, 2, 1),
        Conv2dShape::square(2, 12, 9, 18, 3, 1, 1, 2),
        Conv2dShape::square(3, 5, 7, 6, 3, 2, 1, 1),
    ]
    .into_iter()
    .enumerate()
    {
        let seed = 600 + 10 * i as u64;
        for path in ["direct", "gemm", "gemm (chunked)"] {
            out.push(Case::new(
                "conv_backward",
                path,
                conv_label(&s),
                1e-5,
                move |ctx| {
                    let (oh, ow) = s.out_hw()?;
                    let tk = Kernels::new(ctx);
                    let fk = Kernels::new(ctx);
                    let x = random(s.batch * s.in_c * s.in_h * s.in_w, seed, 1.0);
                    let w = random(s.weight_len(), seed + 1, 0.5);
                    let dy = random(s.batch * s.out_c * oh * ow, seed + 2, 1.0);
                    let (rdx, rdw, rdb) = conv_backward::reference(&s, &w, &x, &dy);
                    let (xb, wb, dyb) = (
                        upload_f32(ctx, "x", &x)?,
                        upload_f32(ctx, "w", &w)?,
                        upload_f32(ctx, "dy", &dy)?,
                    );
                    let dx = storage_buffer(ctx, "dx", x.len(), "")?;
                    let dw = storage_buffer(ctx, "dw", w.len(), "")?;
                    let db = storage_buffer(ctx, "db", s.out_c, "")?;
                    let mut ds = Vec::new();
                    if path == "direct" {
                        ds.push(conv_backward::grad_input(ctx, &tk, &s, &wb, &dyb, &dx)?);
                        ds.extend(conv_backward::grad_weight_bias(
                            ctx, &tk, &s, false, &xb, &dyb, &dw, &db,
                        )?);
                    } else {
                        let scratch = if path == "gemm" {
                            ConvGemmScratch::new(ctx, &[s])?
                        } else {
                            let p4 = (s.batch * oh * ow).div_ceil(4) * 4;
                            let per_image = s.groups * oh * ow * s.k().max(s.out_c / s.groups + 3);
                            ConvGemmScratch::with_cap(ctx, &[s], per_image.max(3 * s.groups * p4))?
                        };
                        ds.extend(conv_gemm_backward::grad_weight(
                            ctx, &tk, &fk, &s, &xb, &dyb, &dw, &scratch,
                        )?);
                        ds.push(conv_backward::grad_bias(ctx, &tk, &s, &dyb, &db)?);
                        ds.extend(conv_gemm_backward::grad_input(
                            ctx, &tk, &fk, &s, &wb, &dyb, &dx, &scratch,
                        )?);
                    }
                    let t = Instant::now();
                    kernels::run(ctx, &ds)?;
                    let mut got = read_back_f32(ctx, &dx, x.len())?;
                    got.extend(read_back_f32(ctx, &dw, w.len())?);
                    got.extend(read_back_f32(ctx, &db, s.out_c)?);
                    let ms = t.elapsed().as_secs_f64() * 1e3;
                    let want = [rdx, rdw, rdb].concat();
                    Ok(Compared { got, want, ms })
                },
            ));
        }
    }
    for (planes, h, w, k, s, ceil) in [(5, 10, 11, 3, 2, false), (4, 14, 12, 3, 2, true)] {
        let path = if ceil { "ceil" } else { "floor" };
        let shape = format!("{planes}x{h}x{w} k{k} s{s}");
        out.push(Case::new(
            "max_pool_backward",
            path,
            shape,
            1e-6,
            move |ctx| {
                let tk = Kernels::new(ctx);
                let pool = PoolShape {
                    ceil,
                    ..PoolShape::floor(planes, h, w, k, s)
                };
                // Distinct values: no ties, so the reference's argmax is the only answer.
                let mut x: Vec<f32> = (0..planes * h * w).map(|i| i as f32 * 0.01).collect();
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(700);
                for i in (1..x.len()).rev() {
                    x.swap(i, rng.random_range(0..=i));
                }
                let dy = random(pool.out_len()?, 701, 1.0);
                let want = pool_backward::max_pool_reference(&x, &dy, &pool);
                let (xb, dyb) = (upload_f32(ctx, "x", &x)?, upload_f32(ctx, "dy", &dy)?);
                let dx = storage_buffer(ctx, "dx", x.len(), "")?;
                let d = pool_backward::max_pool(ctx, &tk, &pool, &xb, &dyb, &dx)?;
                let (got, ms) = run_read(ctx, &[d], &dx, x.len())?;
                Ok(Compared { got, want, ms })
            },
        ));
    }
    out.push(Case::new(
        "adaptive_avg_pool_backward",
        "-",
        "3x7x4 -> 2x3",
        1e-6,
        |ctx| {
            let tk = Kernels::new(ctx);
            let pool = AdaptivePoolShape {
                planes: 3,
                in_h: 7,
                in_w: 4,
                out_h: 2,
                out_w: 3,
            };
            let dy = random(pool.out_len(), 710, 1.0);
            let want = pool_backward::adaptive_avg_pool_reference(&dy, &pool);
            let dyb = upload_f32(ctx, "dy", &dy)?;
            let dx = storage_buffer(ctx, "dx", want.len(), "")?;
            let d = pool_backward::adaptive_avg_pool(ctx, &tk, &pool, &dyb, &dx)?;
            let (got, ms) = run_read(ctx, &[d], &dx, want.len())?;
            Ok(Compared { got, want, ms })
        },
    ));
    out.push(Case::new(
        "lrn_backward",
        "-",
        "b2 c11 hw30 size 5",
        1e-4,
        |ctx| {
            let tk = Kernels::new(ctx);
            let (lrn, batch, channels, hw) = (Lrn::default(), 2, 11, 30);
            let x = random(batch * channels * hw, 720, 30.0);
            let dy = random(x.len(), 721, 1.0);
            let want = lrn_backward::reference(&lrn, &x, &dy, batch, channels, hw);
            let (xb, dyb) = (upload_f32(ctx, "x", &x)?, upload_f32(ctx, "dy", &dy)?);
            let dx = storage_buffer(ctx, "dx", x.len(), "")?;
            let d = lrn_backward::dispatch(ctx, &tk, &lrn, batch, channels, hw, &xb, &dyb, &dx)?;
            let (got, ms) = run_read(ctx, &[d], &dx, x.len())?;
            Ok(Compared { got, want, ms })
        },
    ));
}

/// A three-layer head (fc6 with dropout, fc7, fc8) trained three steps on the GPU and by the
/// f64 CPU protocol; compared: every parameter after the last step.
pub(super) fn training_cases(out: &mut Vec<Case>) {
    let optimizers = [
        ("sgd", Optimizer::Sgd { momentum: 0.9 }),
        (
            "adam",
            Optimizer::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
        ),
    ];
    for (name, optimizer) in optimizers {
        out.push(Case::new(
            "train_step",
            name,
            "60-40-48-5, 3 steps, dropout 0.3",
            1e-5,
            move |ctx| {
                let dims = [(60, 40, true), (40, 48, true), (48, 5, false)];
                let layers = dims
                    .iter()
                    .enumerate()
                    .map(|(i, &(inp, out, relu))| DenseHost {
                        name: ["fc6", "fc7", "fc8"][i].into(),
                        inp,
                        out,
                        relu,
                        weight: random(out * inp, 800 + i as u64, (3.0 / inp as f32).sqrt()),
                        bias: random(out, 810 + i as u64, 0.1),
                    })
                    .collect();
                let head = HeadWeights {
                    kind: HeadKind::Classifier,
                    layers,
                    conv: None,
                };
                let cfg = TrainConfig {
                    optimizer,
                    weight_decay: 1e-3,
                    dropout: 0.3,
                    seed: 77,
                    lr_backbone_mult: 1.0,
                };
                let batches: Vec<(Vec<f32>, Vec<u32>)> = (0..3u64)
                    .map(|s| {
                        let b = if s == 2 { 3 } else { 8 };
                        let x = random(b * 60, 820 + s, 1.0)
                            .into_iter()
                            .map(|v| v.max(0.0) * 2.0)
                            .collect();
                        (x, (0..b as u32).map(|i| (i + s as u32) % 5).collect())
                    })
                    .collect();
                let lrs = [0.05f32, 0.05, 0.02];
                let want = crate::train::reference::train_cpu(&head, &cfg, &batches, &lrs);
                let t = Instant::now();
                let mut tr = Trainer::new(ctx, &head, cfg, 8, 3)?;
                for (step, ((x, y), lr)) in batches.iter().zip(lrs).enumerate() {
                    tr.train_step(x, y, lr, step)?;
                }
                let got_head = tr.head()?;
                let ms = t.elapsed().as_secs_f64() * 1e3;
                let flat = |h: &HeadWeights| -> Vec<f32> {
                    h.layers
                        .iter()
                        .flat_map(|l| l.weight.iter().chain(&l.bias).copied())
                        .collect()
                };
                let want_head = &want
                    .last()
                    .ok_or_else(|| Error::Invalid("no steps".into()))?
                    .1;
                Ok(Compared {
                    got: flat(&got_head),
                    want: flat(want_head),
                    ms,
                })
            },
        ));
    }
}
