//! Backward kernels of the convolutional part (conv input/weight/bias gradients, max pool,
//! LRN, adaptive average pool) against their CPU references (f64), and the references against
//! central finite differences of the forward references (`alexnet_wgpu::kernels::*::reference`)
//! of f = sum(r * layer(x)) for a fixed random r. Flatten has no kernel: NCHW pool5 is fc6's
//! input row as it is (see `kernels::pool_backward`).
//!
//! Tolerances: GPU vs reference 1e-5 of the largest gradient (f32 sums of at most a few
//! hundred terms) and 1e-4 for LRN (the shader's `pow`, a few ulp of a few 1e-7 each, times the
//! size of the window sums); finite differences 1e-3 absolute + relative: conv and the pools are
//! linear (or, for max pool, linear with every window's maximum ahead by more than the step),
//! so the quotient is exact up to the f32 rounding of the forward outputs; LRN is smooth and
//! its truncation error (step^2 / 6 times a third derivative of order 1) stays below 1e-4.

use crate::common;

use alexnet_wgpu::gpu::{read_back_f32, storage_buffer, upload_f32};
use alexnet_wgpu::kernels::conv_gemm_backward::{self, ConvGemmScratch};
use alexnet_wgpu::kernels::mm_grouped::{self, GroupedGemm};
use alexnet_wgpu::kernels::{self, adaptive_avg_pool, conv2d, conv2d::Conv2dShape, lrn::Lrn};
use alexnet_wgpu::kernels::{adaptive_avg_pool::AdaptivePoolShape, max_pool::PoolShape};
use alexnet_wgpu::kernels::{conv_backward, lrn_backward, pool_backward, Kernels};
use alexnet_wgpu::kernels::{mm::Tile, MatmulPath};
use alexnet_wgpu::options::matmul::Force;
use common::{assert_close, ctx, fixture, random};

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

/// Central differences of `f` at every index of `v` (or the ones `pick` keeps), against `want`.
fn check_fd(what: &str, v: &[f32], want: &[f32], eps: f32, pick: usize, f: &dyn Fn(&[f32]) -> f64) {
    let mut checked = 0;
    for i in (0..v.len()).step_by(pick.max(1)) {
        let (mut p, mut m) = (v.to_vec(), v.to_vec());
        p[i] += eps;
        m[i] -= eps;
        let fd = (f(&p) - f(&m)) / (p[i] as f64 - m[i] as f64);
        assert!(
            (fd - want[i] as f64).abs() < 1e-3 * (1.0 + fd.abs()),
            "{what}[{i}]: finite difference {fd} vs reference {}",
            want[i]
        );
        checked += 1;
    }
    assert!(checked > 0);
}

fn conv_case(s: Conv2dShape, seed: u64) {
    let ctx = ctx();
    let tk = Kernels::new(&ctx);
    let (oh, ow) = s.out_hw().unwrap();
    let x = random(s.batch * s.in_c * s.in_h * s.in_w, seed, 1.0);
    let w = random(s.weight_len(), seed + 1, 0.5);
    let bias = random(s.out_c, seed + 2, 0.5);
    let dy = random(s.batch * s.out_c * oh * ow, seed + 3, 1.0);
    let (rdx, rdw, rdb) = conv_backward::reference(&s, &w, &x, &dy);

    // GPU vs reference, written and accumulated (dw and db start from `prior`).
    let (xb, wb, dyb) = (
        upload_f32(&ctx, "x", &x).unwrap(),
        upload_f32(&ctx, "w", &w).unwrap(),
        upload_f32(&ctx, "dy", &dy).unwrap(),
    );
    let dx = storage_buffer(&ctx, "dx", x.len(), "").unwrap();
    let prior_w = random(w.len(), seed + 4, 1.0);
    let prior_b = random(s.out_c, seed + 5, 1.0);
    for accumulate in [false, true] {
        let dw = upload_f32(&ctx, "dw", &prior_w).unwrap();
        let db = upload_f32(&ctx, "db", &prior_b).unwrap();
        let mut ds = vec![conv_backward::grad_input(&ctx, &tk, &s, &wb, &dyb, &dx).unwrap()];
        ds.extend(
            conv_backward::grad_weight_bias(&ctx, &tk, &s, accumulate, &xb, &dyb, &dw, &db)
                .unwrap(),
        );
        kernels::run(&ctx, &ds).unwrap();
        let add = |r: &[f32], p: &[f32]| -> Vec<f32> {
            r.iter()
                .zip(p)
                .map(|(a, b)| if accumulate { a + b } else { *a })
                .collect()
        };
        let tag = format!("{s:?} accumulate {accumulate}");
        assert_close(
            &format!("conv dx {tag}"),
            &read_back_f32(&ctx, &dx, x.len()).unwrap(),
            &rdx,
            1e-5,
        );
        assert_close(
            &format!("conv dw {tag}"),
            &read_back_f32(&ctx, &dw, w.len()).unwrap(),
            &add(&rdw, &prior_w),
            1e-5,
        );
        assert_close(
            &format!("conv db {tag}"),
            &read_back_f32(&ctx, &db, s.out_c).unwrap(),
            &add(&rdb, &prior_b),
            1e-5,
        );
    }

    // The GEMM routes (im2col_t / dy_cn / dy_nc / weight_t / col2im around gemm.wgsl, and
    // around grouped mm.wgsl tiles), whole and in chunks (a cap of a few rows of K and one
    // image at a time), same tolerance; with OIHW rows, and where K is not a multiple of 4
    // also with the rows padded to whole vec4 as a trained conv1 stores them: the weights'
    // pad is NaN (never read, or dx would be NaN) and the gradient's pad holds 7 (never
    // written: the pad's gradient stays what it was, zero in training).
    let per_image = s.groups * oh * ow * s.k().max(s.out_c / s.groups + 3);
    let p4 = (s.batch * oh * ow).div_ceil(4) * 4;
    let routes = [
        (MatmulPath::Gemm, "gemm"),
        (MatmulPath::Blocked(Force::default()), "mm"),
    ];
    let rows = if s.k() == s.kp() {
        vec![s.k()]
    } else {
        vec![s.k(), s.kp()]
    };
    let with_pad = |v: &[f32], row: usize, fill: f32| -> Vec<f32> {
        v.chunks_exact(s.k())
            .flat_map(|r| {
                r.iter()
                    .copied()
                    .chain(std::iter::repeat_n(fill, row - s.k()))
            })
            .collect()
    };
    for ((cap, (path, name)), row) in [None, Some(per_image.max(3 * s.groups * p4))]
        .into_iter()
        .flat_map(|c| routes.map(|r| (c, r)))
        .flat_map(|cr| rows.iter().map(move |&row| (cr, row)))
    {
        let fk = Kernels::with_path(&ctx, path);
        let scratch = match cap {
            None => ConvGemmScratch::new(&ctx, &[s]).unwrap(),
            Some(c) => ConvGemmScratch::with_cap(&ctx, &[s], c).unwrap(),
        }
        .with_mm_part(&ctx, &fk, &[s])
        .unwrap();
        let wr = upload_f32(&ctx, "w rows", &with_pad(&w, row, f32::NAN)).unwrap();
        let (dx, dw, db) = (
            storage_buffer(&ctx, "dx", x.len(), "").unwrap(),
            upload_f32(&ctx, "dw", &with_pad(&vec![0.0; w.len()], row, 7.0)).unwrap(),
            storage_buffer(&ctx, "db", s.out_c, "").unwrap(),
        );
        let mut ds =
            conv_gemm_backward::grad_weight(&ctx, &tk, &fk, &s, &xb, &dyb, (&dw, row), &scratch)
                .unwrap();
        // One image per chunk (the cap) leaves about K / batch rows of K per chunk.
        if cap.is_some() && s.batch > 1 {
            assert!(ds.len() > 3, "{s:?}: the weight gradient was not chunked");
        }
        ds.push(conv_backward::grad_bias(&ctx, &tk, &s, &dyb, &db).unwrap());
        ds.extend(
            conv_gemm_backward::grad_input(&ctx, &tk, &fk, &s, (&wr, row), &dyb, &dx, &scratch)
                .unwrap(),
        );
        let on = |d: &kernels::Dispatch| d.label.contains(&format!("({name}"));
        assert!(ds.iter().any(on), "{s:?}: no {name} dispatch");
        kernels::run(&ctx, &ds).unwrap();
        let tag = format!("{s:?} {name}, cap {cap:?}, rows of {row}");
        let got = |b: &wgpu::Buffer, n: usize| read_back_f32(&ctx, b, n).unwrap();
        assert_close(&format!("conv dx {tag}"), &got(&dx, x.len()), &rdx, 1e-5);
        assert_close(
            &format!("conv dw {tag}"),
            &got(&dw, s.out_c * row),
            &with_pad(&rdw, row, 7.0),
            1e-5,
        );
        assert_close(&format!("conv db {tag}"), &got(&db, s.out_c), &rdb, 1e-5);
    }

    // Reference vs finite differences (conv is linear in x, w and b: a large step is exact).
    let fwd = |w: &[f32], b: &[f32], x: &[f32]| dot(&conv2d::reference(&s, w, b, x, false), &dy);
    check_fd("conv dx", &x, &rdx, 0.25, 1, &|v| fwd(&w, &bias, v));
    check_fd("conv dw", &w, &rdw, 0.25, 1, &|v| fwd(v, &bias, &x));
    check_fd("conv db", &bias, &rdb, 0.25, 1, &|v| fwd(&w, v, &x));
}

#[test]
fn conv_backward_plain() {
    conv_case(
        Conv2dShape {
            batch: 2,
            in_c: 3,
            in_h: 7,
            in_w: 6,
            out_c: 5,
            kernel: 3,
            stride: 1,
            pad: 0,
            groups: 1,
        },
        10,
    );
}

#[test]
fn conv_backward_stride_padding_groups() {
    // conv2-like: 5x5, padding 2, two groups; and a strided 3x3 with padding 1.
    conv_case(
        Conv2dShape {
            batch: 2,
            in_c: 4,
            in_h: 9,
            in_w: 8,
            out_c: 6,
            kernel: 5,
            stride: 1,
            pad: 2,
            groups: 2,
        },
        20,
    );
    conv_case(
        Conv2dShape {
            batch: 3,
            in_c: 4,
            in_h: 10,
            in_w: 9,
            out_c: 4,
            kernel: 3,
            stride: 2,
            pad: 1,
            groups: 2,
        },
        30,
    );
}

#[test]
fn conv_backward_conv1_geometry() {
    // conv1's 11x11 stride 4 with torchvision's padding 2, on a small image.
    conv_case(
        Conv2dShape {
            batch: 1,
            in_c: 3,
            in_h: 23,
            in_w: 19,
            out_c: 4,
            kernel: 11,
            stride: 4,
            pad: 2,
            groups: 1,
        },
        40,
    );
}

/// Distinct values spaced 0.01 apart (a permutation), so a step of 1e-3 moves no maximum.
fn distinct(len: usize, seed: u64) -> Vec<f32> {
    let r = random(len, seed, 1.0);
    let mut order: Vec<usize> = (0..len).collect();
    order.sort_by(|&a, &b| r[a].partial_cmp(&r[b]).unwrap());
    let mut v = vec![0f32; len];
    for (rank, &i) in order.iter().enumerate() {
        v[i] = rank as f32 * 0.01 - len as f32 * 0.005;
    }
    v
}

#[test]
fn max_pool_backward_matches_reference_and_finite_differences() {
    let ctx = ctx();
    let tk = Kernels::new(&ctx);
    // Overlapping 3/2 windows (AlexNet's), a clipped edge (in 10), 2/2 non-overlapping, and
    // ceil mode (the zoo's BVLC ONNX: 14 -> 7 windows, the last one clipped to 2 rows).
    for (planes, h, w, k, s, ceil) in [
        (7, 13, 13, 3, 2, false),
        (5, 10, 11, 3, 2, false),
        (3, 8, 6, 2, 2, false),
        (4, 14, 12, 3, 2, true),
        (2, 10, 11, 3, 2, true),
    ] {
        let pool = PoolShape {
            ceil,
            ..PoolShape::floor(planes, h, w, k, s)
        };
        let (oh, ow) = pool.out_hw().unwrap();
        if ceil {
            assert!(oh > kernels::max_pool::out_size(h, k, s, 0).unwrap());
        }
        let x = distinct(planes * h * w, 50 + h as u64);
        let dy = random(planes * oh * ow, 60, 1.0);
        let want = pool_backward::max_pool_reference(&x, &dy, &pool);
        let (xb, dyb) = (
            upload_f32(&ctx, "x", &x).unwrap(),
            upload_f32(&ctx, "dy", &dy).unwrap(),
        );
        let dx = storage_buffer(&ctx, "dx", x.len(), "").unwrap();
        let d = pool_backward::max_pool(&ctx, &tk, &pool, &xb, &dyb, &dx).unwrap();
        kernels::run(&ctx, &[d]).unwrap();
        let got = read_back_f32(&ctx, &dx, x.len()).unwrap();
        assert_close("max_pool dx", &got, &want, 1e-6);
        check_fd("max_pool dx", &x, &want, 1e-3, 1, &|v| {
            dot(&kernels::max_pool::reference(v, &pool), &dy)
        });
    }
    // Ties: a constant plane sends each window's gradient to its first value (PyTorch).
    let (x, dy) = (vec![1.0f32; 16], vec![1.0f32, 2.0, 3.0, 4.0]);
    let pool = PoolShape::floor(1, 4, 4, 2, 2);
    let want = pool_backward::max_pool_reference(&x, &dy, &pool);
    assert_eq!(want[0], 1.0);
    assert_eq!(want[2], 2.0);
    assert_eq!(want[8], 3.0);
    assert_eq!(want[10], 4.0);
    let (xb, dyb) = (
        upload_f32(&ctx, "x", &x).unwrap(),
        upload_f32(&ctx, "dy", &dy).unwrap(),
    );
    let dx = storage_buffer(&ctx, "dx", 16, "").unwrap();
    let d = pool_backward::max_pool(&ctx, &tk, &pool, &xb, &dyb, &dx).unwrap();
    kernels::run(&ctx, &[d]).unwrap();
    assert_eq!(read_back_f32(&ctx, &dx, 16).unwrap(), want);
}

#[test]
fn adaptive_avg_pool_backward_matches_reference_and_finite_differences() {
    let ctx = ctx();
    let tk = Kernels::new(&ctx);
    // torchvision's 13 -> 6 (overlapping cells), the identity, 5 -> 3 and 7x4 -> 2x3.
    for (planes, ih, iw, oh, ow) in [
        (4, 13, 13, 6, 6),
        (3, 6, 6, 6, 6),
        (2, 5, 5, 3, 3),
        (3, 7, 4, 2, 3),
    ] {
        let pool = AdaptivePoolShape {
            planes,
            in_h: ih,
            in_w: iw,
            out_h: oh,
            out_w: ow,
        };
        let x = random(pool.in_len(), 70, 1.0);
        let dy = random(pool.out_len(), 71, 1.0);
        let want = pool_backward::adaptive_avg_pool_reference(&dy, &pool);
        let dyb = upload_f32(&ctx, "dy", &dy).unwrap();
        let dx = storage_buffer(&ctx, "dx", x.len(), "").unwrap();
        let d = pool_backward::adaptive_avg_pool(&ctx, &tk, &pool, &dyb, &dx).unwrap();
        kernels::run(&ctx, &[d]).unwrap();
        let got = read_back_f32(&ctx, &dx, x.len()).unwrap();
        assert_close(
            &format!("adaptive pool {ih}x{iw}->{oh}x{ow}"),
            &got,
            &want,
            1e-6,
        );
        check_fd("adaptive pool dx", &x, &want, 0.25, 1, &|v| {
            dot(&adaptive_avg_pool::reference(v, &pool), &dy)
        });
    }
}

#[test]
fn lrn_backward_matches_reference_and_finite_differences() {
    let ctx = ctx();
    let tk = Kernels::new(&ctx);
    // Caffe's AlexNet LRN on activations of conv1's magnitude, and stronger normalisations
    // (where the cross-channel term dominates), with an even window (before != after).
    let cases = [
        (Lrn::default(), 30.0),
        (
            Lrn {
                size: 5,
                alpha: 0.5,
                beta: 0.75,
                k: 2.0,
            },
            2.0,
        ),
        (
            Lrn {
                size: 4,
                alpha: 1.0,
                beta: 0.6,
                k: 1.0,
            },
            1.5,
        ),
    ];
    let (batch, channels, hw) = (2, 11, 30);
    for (lrn, scale) in cases {
        let x = random(batch * channels * hw, 80, scale);
        let dy = random(x.len(), 81, 1.0);
        let want = lrn_backward::reference(&lrn, &x, &dy, batch, channels, hw);
        let (xb, dyb) = (
            upload_f32(&ctx, "x", &x).unwrap(),
            upload_f32(&ctx, "dy", &dy).unwrap(),
        );
        let dx = storage_buffer(&ctx, "dx", x.len(), "").unwrap();
        let d =
            lrn_backward::dispatch(&ctx, &tk, &lrn, batch, channels, hw, &xb, &dyb, &dx).unwrap();
        kernels::run(&ctx, &[d]).unwrap();
        let got = read_back_f32(&ctx, &dx, x.len()).unwrap();
        assert_close(&format!("lrn dx {lrn:?}"), &got, &want, 1e-4);
        // The step scales with the input (f32 rounding of x is relative).
        check_fd("lrn dx", &x, &want, 1e-2 * scale.max(1.0) / 2.0, 7, &|v| {
            dot(&kernels::lrn::reference(&lrn, v, batch, channels, hw), &dy)
        });
    }
}

/// A fixture's tensors by key.
fn fixture_tensors(name: &str) -> std::collections::HashMap<String, Vec<f32>> {
    alexnet_wgpu::weights::read_tensors(&fixture(name))
        .unwrap()
        .into_iter()
        .map(|t| (t.key.clone(), t.data.unwrap()))
        .collect()
}

/// The GPU kernels chained through a reduced-width conv4-conv5-pool5 tail and through Caffe's
/// LRN, against torch autograd in float64 (tests/fixtures/backward_chain.npz, made by
/// scripts/make_finetune_fixtures.py). Tolerance 1e-4 of the largest gradient: the fixture's
/// inputs are the f32 roundings of torch's f64 values, and the GPU sums in f32.
#[test]
fn backward_chain_matches_torch_autograd() {
    use alexnet_wgpu::kernels::relu_backward;
    let ctx = ctx();
    let tk = Kernels::new(&ctx);
    let t = fixture_tensors("backward_chain.npz");
    let s1 = Conv2dShape {
        batch: 2,
        in_c: 4,
        in_h: 9,
        in_w: 9,
        out_c: 6,
        kernel: 3,
        stride: 1,
        pad: 1,
        groups: 1,
    };
    let s2 = Conv2dShape {
        in_c: 6,
        out_c: 4,
        groups: 2,
        ..s1
    };
    // Forward on the CPU references; the forward itself is checked against torch's output.
    let a1 = conv2d::reference(&s1, &t["w1"], &t["b1"], &t["x"], true);
    let a2 = conv2d::reference(&s2, &t["w2"], &t["b2"], &a1, true);
    let pool = PoolShape::floor(8, 9, 9, 3, 2);
    let avg = AdaptivePoolShape {
        planes: 8,
        in_h: 4,
        in_w: 4,
        out_h: 2,
        out_w: 2,
    };
    let p = kernels::max_pool::reference(&a2, &pool);
    let out = adaptive_avg_pool::reference(&p, &avg);
    assert_close("forward", &out, &t["out"], 1e-5);

    let up = |name: &str, v: &[f32]| upload_f32(&ctx, name, v).unwrap();
    let buf = |n: usize| storage_buffer(&ctx, "grad", n, "").unwrap();
    let (x, w1, w2) = (up("x", &t["x"]), up("w1", &t["w1"]), up("w2", &t["w2"]));
    let (a1b, a2b, r) = (up("a1", &a1), up("a2", &a2), up("r", &t["r"]));
    let (dp, da2, da1, dx) = (
        buf(p.len()),
        buf(a2.len()),
        buf(a1.len()),
        buf(t["x"].len()),
    );
    let (dw1, db1, dw2, db2) = (buf(t["w1"].len()), buf(6), buf(t["w2"].len()), buf(4));
    let mut ds = vec![
        pool_backward::adaptive_avg_pool(&ctx, &tk, &avg, &r, &dp).unwrap(),
        pool_backward::max_pool(&ctx, &tk, &pool, &a2b, &dp, &da2).unwrap(),
        relu_backward::dispatch(&ctx, &tk, a2.len(), &a2b, &da2).unwrap(),
        conv_backward::grad_input(&ctx, &tk, &s2, &w2, &da2, &da1).unwrap(),
    ];
    ds.extend(
        conv_backward::grad_weight_bias(&ctx, &tk, &s2, false, &a1b, &da2, &dw2, &db2).unwrap(),
    );
    ds.push(relu_backward::dispatch(&ctx, &tk, a1.len(), &a1b, &da1).unwrap());
    ds.push(conv_backward::grad_input(&ctx, &tk, &s1, &w1, &da1, &dx).unwrap());
    ds.extend(
        conv_backward::grad_weight_bias(&ctx, &tk, &s1, false, &x, &da1, &dw1, &db1).unwrap(),
    );
    kernels::run(&ctx, &ds).unwrap();
    for (name, b) in [
        ("dx", &dx),
        ("dw1", &dw1),
        ("db1", &db1),
        ("dw2", &dw2),
        ("db2", &db2),
    ] {
        let want = &t[name];
        assert_close(
            name,
            &read_back_f32(&ctx, b, want.len()).unwrap(),
            want,
            1e-4,
        );
    }

    let (lx, lr) = (&t["lrn_x"], &t["lrn_r"]);
    let (lxb, lrb, ldx) = (up("lrn x", lx), up("lrn r", lr), buf(lx.len()));
    let d = lrn_backward::dispatch(&ctx, &tk, &Lrn::default(), 2, 7, 25, &lxb, &lrb, &ldx).unwrap();
    kernels::run(&ctx, &[d]).unwrap();
    assert_close(
        "lrn dx",
        &read_back_f32(&ctx, &ldx, lx.len()).unwrap(),
        &t["lrn_dx"],
        1e-4,
    );
}

/// The grouped `mm.wgsl` GEMM of the backward passes against its f64 reference: two groups,
/// M and N not multiples of the tile, C at a row stride and offset inside a larger matrix,
/// unsplit and split over K (3 slices, and 64 asked of 7 K steps: 7), on two tiles.
#[test]
fn grouped_mm_gemm_split_k() {
    let ctx = ctx();
    let fk = Kernels::with_path(&ctx, MatmulPath::Blocked(Force::default()));
    let g = GroupedGemm {
        m: 37,
        n: 70,
        k: 108,
        groups: 2,
        a_gstride: 40 * 108,
        b_gstride: 70 * 108,
        c_row: 45,
        c_off: 5,
        c_gstride: 70 * 45 + 9,
    };
    let a = random(2 * g.a_gstride, 900, 1.0);
    let b = random(2 * g.b_gstride, 901, 1.0);
    let c0 = random(2 * g.c_gstride, 902, 1.0);
    let mut want = c0.clone();
    mm_grouped::reference(&g, &a, &b, &mut want);
    let (ab, bb) = (
        upload_f32(&ctx, "a", &a).unwrap(),
        upload_f32(&ctx, "b", &b).unwrap(),
    );
    let part = storage_buffer(&ctx, "part", 64 * 2 * g.m * g.n, "").unwrap();
    for tile in [Tile::new(64, 64, 16), Tile::new(32, 64, 16)] {
        for (split, slices) in [(1, 1), (3, 3), (64, 7)] {
            assert_eq!(mm_grouped::slices(tile, &g, split).0, slices);
            let c = upload_f32(&ctx, "c", &c0).unwrap();
            let ds = mm_grouped::dispatch(
                &ctx,
                &fk,
                tile,
                split,
                &g,
                "test",
                (&ab, &bb, &c),
                Some(&part),
            )
            .unwrap();
            assert_eq!(ds.len(), if slices > 1 { 2 } else { 1 });
            kernels::run(&ctx, &ds).unwrap();
            let got = read_back_f32(&ctx, &c, c0.len()).unwrap();
            // Values outside the groups' blocks are kept (exactly: compared with 0 tolerance
            // where the reference leaves c0).
            assert_close(&format!("{tile:?} split {split}"), &got, &want, 1e-5);
            for (i, (x, y)) in got.iter().zip(&c0).enumerate() {
                if want[i] == c0[i] {
                    assert_eq!(x, y, "C[{i}] outside the output changed");
                }
            }
        }
    }
}

/// A convolution whose weight gradient the heuristic splits over batch x pixels (K = 8 x 18
/// x 18 = 2,592 pixels: 2 slices), on the mm route, against the f64 reference.
#[test]
fn conv_backward_mm_split_k() {
    let ctx = ctx();
    let s = Conv2dShape::square(8, 3, 20, 6, 3, 1, 0, 1);
    let (oh, ow) = s.out_hw().unwrap();
    let tk = Kernels::new(&ctx);
    let fk = Kernels::with_path(&ctx, MatmulPath::Blocked(Force::default()));
    let x = random(s.batch * s.in_c * s.in_h * s.in_w, 910, 1.0);
    let w = random(s.weight_len(), 911, 0.5);
    let dy = random(s.batch * s.out_c * oh * ow, 912, 1.0);
    let (rdx, rdw, _) = conv_backward::reference(&s, &w, &x, &dy);
    let (xb, wb, dyb) = (
        upload_f32(&ctx, "x", &x).unwrap(),
        upload_f32(&ctx, "w", &w).unwrap(),
        upload_f32(&ctx, "dy", &dy).unwrap(),
    );
    let scratch = ConvGemmScratch::new(&ctx, &[s])
        .unwrap()
        .with_mm_part(&ctx, &fk, &[s])
        .unwrap();
    let (dx, dw) = (
        storage_buffer(&ctx, "dx", x.len(), "").unwrap(),
        storage_buffer(&ctx, "dw", w.len(), "").unwrap(),
    );
    let mut ds =
        conv_gemm_backward::grad_weight(&ctx, &tk, &fk, &s, &xb, &dyb, (&dw, s.k()), &scratch)
            .unwrap();
    assert!(
        ds.iter().any(|d| d.label.contains("-split2")),
        "not split: {:?}",
        ds.iter().map(|d| &d.label).collect::<Vec<_>>()
    );
    ds.extend(
        conv_gemm_backward::grad_input(&ctx, &tk, &fk, &s, (&wb, s.k()), &dyb, &dx, &scratch)
            .unwrap(),
    );
    kernels::run(&ctx, &ds).unwrap();
    assert_close(
        "mm split dw",
        &read_back_f32(&ctx, &dw, w.len()).unwrap(),
        &rdw,
        1e-5,
    );
    assert_close(
        "mm split dx",
        &read_back_f32(&ctx, &dx, x.len()).unwrap(),
        &rdx,
        1e-5,
    );
}
