//! The backward kernels' cases.

use std::time::Instant;

use rand::{Rng, SeedableRng};

use super::{conv_label, random, run_read, Case, Compared};
use crate::gpu::{read_back_f32, storage_buffer, upload, upload_f32, SplitWeight};
use crate::kernels::adaptive_avg_pool::AdaptivePoolShape;
use crate::kernels::conv2d::Conv2dShape;
use crate::kernels::conv_gemm_backward::{self, ConvGemmScratch};
use crate::kernels::lrn::Lrn;
use crate::kernels::max_pool::PoolShape;
use crate::kernels::{self, Kernels, MatmulPath};
use crate::kernels::{conv_backward, dense_backward, gather_rows, lrn_backward, pool_backward};
use crate::options::Force;

pub(super) fn backward_cases(out: &mut Vec<Case>) {
    // Convolution gradients (dx, dw, db concatenated), direct loops and as GEMMs on
    // `gemm.wgsl` and on grouped `mm.wgsl` tiles (whole, and with the scratch capped to a few
    // rows so the work is chunked; the last shape's weight gradient split over its 2,592
    // pixels on the mm route).
    let all = ["direct", "gemm", "gemm (chunked)", "mm", "mm (chunked)"];
    for (i, (s, paths)) in [
        (Conv2dShape::square(2, 3, 19, 8, 11, 4, 2, 1), &all[..]),
        (Conv2dShape::square(2, 12, 9, 18, 3, 1, 1, 2), &all[..]),
        (Conv2dShape::square(3, 5, 7, 6, 3, 2, 1, 1), &all[..]),
        (
            Conv2dShape::square(8, 3, 20, 6, 3, 1, 0, 1),
            &["mm (split-K)"][..],
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let seed = 600 + 10 * i as u64;
        for &path in paths {
            out.push(Case::new(
                "conv_backward",
                path,
                conv_label(&s),
                1e-5,
                move |ctx| {
                    let (oh, ow) = s.out_hw()?;
                    let tk = Kernels::new(ctx);
                    // The mm route on the context's forced tile (`--matmul blocked-TILE`),
                    // else the heuristic's.
                    let blocked = match ctx.matmul_path() {
                        MatmulPath::Blocked(force) => MatmulPath::Blocked(force),
                        _ => MatmulPath::Blocked(Force::default()),
                    };
                    let fk = match path.starts_with("mm") {
                        true => Kernels::with_path(ctx, blocked),
                        false => Kernels::with_path(ctx, MatmulPath::Gemm),
                    };
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
                        let scratch = if !path.ends_with("(chunked)") {
                            ConvGemmScratch::new(ctx, &[s])?
                        } else {
                            let p4 = (s.batch * oh * ow).div_ceil(4) * 4;
                            let per_image = s.groups * oh * ow * s.k().max(s.out_c / s.groups + 3);
                            ConvGemmScratch::with_cap(ctx, &[s], per_image.max(3 * s.groups * p4))?
                        }
                        .with_mm_part(ctx, &fk, &[s])?;
                        ds.extend(conv_gemm_backward::grad_weight(
                            ctx,
                            &tk,
                            &fk,
                            &s,
                            &xb,
                            &dyb,
                            (&dw, s.k()),
                            &scratch,
                        )?);
                        ds.push(conv_backward::grad_bias(ctx, &tk, &s, &dyb, &db)?);
                        ds.extend(conv_gemm_backward::grad_input(
                            ctx,
                            &tk,
                            &fk,
                            &s,
                            (&wb, s.k()),
                            &dyb,
                            &dx,
                            &scratch,
                        )?);
                    }
                    let t = Instant::now();
                    kernels::run(ctx, &ds)?;
                    let mut got = read_back_f32(ctx, &dx, x.len())?;
                    got.extend(read_back_f32(ctx, &dw, w.len())?);
                    got.extend(read_back_f32(ctx, &db, s.out_c)?);
                    let ms = t.elapsed().as_secs_f64() * 1e3;
                    let want = [rdx, rdw, rdb].concat();
                    Ok(Compared {
                        got,
                        want,
                        ms,
                        tol: None,
                    })
                },
            ));
        }
    }
    // Dense gradients (dx, dw, db concatenated) on `dense_backward.wgsl` and on `mm.wgsl`
    // tiles over the operands where they lie (`mm_strided`): one weight buffer with K, the
    // inputs and outputs not multiples of 4; then three weight parts (the input gradient
    // accumulated over them), and the same split over K into partial sums and a reduce.
    for (i, (batch, inp, outf, rows, paths)) in [
        (5usize, 37usize, 23usize, usize::MAX, &["direct", "mm"][..]),
        (70, 52, 130, 48, &["direct", "mm", "mm (split-K)"][..]),
    ]
    .into_iter()
    .enumerate()
    {
        let seed = 740 + 10 * i as u64;
        let parts = outf.div_ceil(rows.min(outf));
        for &path in paths {
            out.push(Case::new(
                "dense_backward",
                path,
                format!("b{batch} {inp}->{outf} in {parts} part(s)"),
                1e-5,
                move |ctx| {
                    let force = match ctx.matmul_path() {
                        MatmulPath::Blocked(force) => force,
                        _ => Force::default(),
                    };
                    let fk = match path {
                        "direct" => Kernels::with_path(ctx, MatmulPath::Gemm),
                        "mm" => Kernels::with_path(ctx, MatmulPath::Blocked(force)),
                        _ => Kernels::with_path(
                            ctx,
                            MatmulPath::Blocked(Force {
                                split: Some(3),
                                ..force
                            }),
                        ),
                    };
                    let w = random(outf * inp, seed, 0.5);
                    let x = random(batch * inp, seed + 1, 1.0);
                    let dy = random(batch * outf, seed + 2, 1.0);
                    let (rdx, rdw, rdb) = dense_backward::reference(&w, &x, &dy, batch, inp, outf);
                    let ws = SplitWeight::upload_with_rows_per_part(ctx, "w", &w, outf, inp, rows)?;
                    let (xb, dyb) = (upload_f32(ctx, "x", &x)?, upload_f32(ctx, "dy", &dy)?);
                    // Poisoned outputs: every value must be written.
                    let dx = upload_f32(ctx, "dx", &vec![f32::NAN; x.len()])?;
                    let dw = ws
                        .parts
                        .iter()
                        .map(|(_, r, _)| upload_f32(ctx, "dw", &vec![f32::NAN; r * inp]))
                        .collect::<crate::error::Result<Vec<_>>>()?;
                    let db = upload_f32(ctx, "db", &vec![f32::NAN; outf])?;
                    let mut ds = dense_backward::grad_input(ctx, &fk, batch, &ws, &dyb, &dx)?;
                    ds.extend(dense_backward::grad_weight_bias(
                        ctx, &fk, batch, &ws, &xb, &dyb, &dw, &db,
                    )?);
                    let t = Instant::now();
                    kernels::run(ctx, &ds)?;
                    let mut got = read_back_f32(ctx, &dx, x.len())?;
                    for ((_, r, _), b) in ws.parts.iter().zip(&dw) {
                        got.extend(read_back_f32(ctx, b, r * inp)?);
                    }
                    got.extend(read_back_f32(ctx, &db, outf)?);
                    let ms = t.elapsed().as_secs_f64() * 1e3;
                    Ok(Compared {
                        got,
                        want: [rdx, rdw, rdb].concat(),
                        ms,
                        tol: None,
                    })
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
                Ok(Compared {
                    got,
                    want,
                    ms,
                    tol: None,
                })
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
            Ok(Compared {
                got,
                want,
                ms,
                tol: None,
            })
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
            Ok(Compared {
                got,
                want,
                ms,
                tol: None,
            })
        },
    ));
    // The resident training rows' gather: 11 rows of 6 in two parts, a shuffled batch of 7
    // drawing from both, the destination's other values left alone.
    out.push(Case::new(
        "gather_rows",
        "default",
        "11x6 rows in 2 parts, batch 7",
        0.0,
        |ctx| {
            let tk = Kernels::new(ctx);
            let (dim, split) = (6, 5);
            let src = random(11 * dim, 720, 1.0);
            let idx: Vec<u32> = vec![7, 1, 10, 5, 4, 0, 9];
            let mut want = vec![-7.0; (idx.len() + 1) * dim];
            let (a, b) = src.split_at(split * dim);
            gather_rows::reference(a, dim, 0, &idx, &mut want);
            gather_rows::reference(b, dim, split, &idx, &mut want);
            let dst = upload_f32(ctx, "dst", &vec![-7.0; want.len()])?;
            let ib = upload(ctx, "idx", &idx)?;
            let (ab, bb) = (upload_f32(ctx, "a", a)?, upload_f32(ctx, "b", b)?);
            let ds = [
                gather_rows::dispatch(ctx, &tk, (dim, idx.len(), 0, split), &ab, &ib, &dst)?,
                gather_rows::dispatch(ctx, &tk, (dim, idx.len(), split, 6), &bb, &ib, &dst)?,
            ];
            let (got, ms) = run_read(ctx, &ds, &dst, want.len())?;
            Ok(Compared {
                got,
                want,
                ms,
                tol: None,
            })
        },
    ));
}
