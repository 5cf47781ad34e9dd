//! Every forward kernel against its plain CPU reference (f64 accumulation) on random data,
//! including sizes that are not multiples of the tiles, strides, padding, groups, 1x1 images,
//! and weights split over several buffers.
//!
//! Tolerance: 1e-5 of the output's magnitude. The GPU sums in f32 in a different order than the
//! f64 reference; with K <= ~2000 terms of random sign the f32 rounding error stays near
//! sqrt(K) * 6e-8 relative, far below 1e-5, while any indexing bug gives O(1) errors.

use crate::common;

use alexnet_wgpu::gpu::{read_back_f32, storage_buffer, upload_f32, SplitWeight};
use alexnet_wgpu::kernels::{self, conv2d::Conv2dShape, lrn::Lrn, Kernels, MatmulPath, Precision};
use alexnet_wgpu::kernels::{adaptive_avg_pool::AdaptivePoolShape, max_pool::PoolShape};
use common::{assert_close, ctx, random};

const TOL: f32 = 1e-5;

fn check_conv(shape: Conv2dShape, relu: bool, seed: u64) {
    let ctx = ctx();
    let ks = Kernels::new(&ctx);
    let (oh, ow) = shape.out_hw().unwrap();
    let w = random(shape.weight_len(), seed, 0.5);
    let b = random(shape.out_c, seed + 1, 0.5);
    let x = random(
        shape.batch * shape.in_c * shape.in_h * shape.in_w,
        seed + 2,
        1.0,
    );
    let wb = upload_f32(&ctx, "w", &w).unwrap();
    let bb = upload_f32(&ctx, "b", &b).unwrap();
    let xb = upload_f32(&ctx, "x", &x).unwrap();
    let out_len = shape.batch * shape.out_c * oh * ow;
    let yb = storage_buffer(&ctx, "y", out_len, "").unwrap();
    let d = kernels::conv2d::dispatch(
        &ctx,
        &ks.conv2d(),
        &shape,
        relu,
        &wb,
        0,
        shape.out_c / shape.groups,
        &bb,
        &xb,
        &yb,
    )
    .unwrap();
    kernels::run(&ctx, &[d]).unwrap();
    let got = read_back_f32(&ctx, &yb, out_len).unwrap();
    let want = kernels::conv2d::reference(&shape, &w, &b, &x, relu);
    assert_close(&format!("conv2d {shape:?}"), &got, &want, TOL);
}

/// The im2col + GEMM path (CPU adapters): weights padded to vec4 rows, im2col through a scratch
/// of `scratch_floats` (small values force several pixel chunks).
fn check_conv_gemm(shape: Conv2dShape, relu: bool, seed: u64, scratch_floats: usize) {
    let ctx = ctx();
    let ks = Kernels::with_path(&ctx, MatmulPath::Gemm);
    let (oh, ow) = shape.out_hw().unwrap();
    let w = random(shape.weight_len(), seed, 0.5);
    let b = random(shape.out_c, seed + 1, 0.5);
    let x = random(
        shape.batch * shape.in_c * shape.in_h * shape.in_w,
        seed + 2,
        1.0,
    );
    let wb = upload_f32(&ctx, "w", &kernels::conv2d::weight_for_gemm(&shape, &w)).unwrap();
    let bb = upload_f32(&ctx, "b", &b).unwrap();
    let xb = upload_f32(&ctx, "x", &x).unwrap();
    let out_len = shape.batch * shape.out_c * oh * ow;
    let yb = storage_buffer(&ctx, "y", out_len, "").unwrap();
    // Garbage in the scratch: the K tail must be zeroed by im2col itself.
    let sb = upload_f32(&ctx, "scratch", &random(scratch_floats, seed + 3, 9.0)).unwrap();
    let ds = kernels::conv2d::dispatch_gemm(
        &ctx,
        &ks,
        Precision::F32,
        &shape,
        relu,
        &wb,
        &bb,
        &xb,
        &yb,
        &sb,
    )
    .unwrap();
    kernels::run(&ctx, &ds).unwrap();
    let got = read_back_f32(&ctx, &yb, out_len).unwrap();
    let want = kernels::conv2d::reference(&shape, &w, &b, &x, relu);
    assert_close(
        &format!("conv2d gemm {shape:?} scratch {scratch_floats}"),
        &got,
        &want,
        TOL,
    );
}

#[test]
fn conv2d_gemm_path() {
    let whole = |s: Conv2dShape| s.im2col_words(Precision::F32).unwrap();
    // conv1 geometry: K = 363 (padded to 364), stride 4, padding.
    let s = conv(2, 3, 35, 10, 11, 4, 2, 1);
    check_conv_gemm(s, true, 31, whole(s));
    // Odd sizes everywhere; M = 70 not a multiple of the 4-row tile, N not of 32.
    let s = conv(3, 7, 13, 70, 5, 1, 2, 1);
    check_conv_gemm(s, false, 32, whole(s));
    // Groups (K = 6 * 9 = 54 per group, padded to 56), and 3 groups with stride 2.
    let s = conv(2, 12, 9, 18, 3, 1, 1, 2);
    check_conv_gemm(s, true, 33, whole(s));
    let s = conv(1, 9, 6, 6, 3, 2, 0, 3);
    check_conv_gemm(s, false, 34, whole(s));
    // 1x1 images and a 1-row output (the matrix-vector tile).
    check_conv_gemm(conv(5, 33, 1, 17, 1, 1, 0, 1), true, 35, 5 * 36);
    check_conv_gemm(conv(2, 4, 3, 1, 3, 1, 0, 1), false, 36, 2 * 36);
    // Pixels in chunks: a scratch of 7 rows for 2 * 13 * 13 pixels (and with groups).
    let s = conv(2, 7, 13, 70, 5, 1, 2, 1);
    check_conv_gemm(s, true, 37, 7 * s.kp());
    let s = conv(2, 12, 9, 18, 3, 1, 1, 2);
    check_conv_gemm(s, false, 38, 5 * 2 * s.kp());
}

#[allow(clippy::too_many_arguments)]
fn conv(
    batch: usize,
    in_c: usize,
    hw: usize,
    out_c: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    groups: usize,
) -> Conv2dShape {
    Conv2dShape::square(batch, in_c, hw, out_c, kernel, stride, pad, groups)
}

#[test]
fn conv2d_alexnet_conv1_geometry() {
    // k11 s4 p2 on a small image; 3 input channels (K = 363, not a multiple of 16).
    check_conv(conv(2, 3, 35, 10, 11, 4, 2, 1), true, 1);
}

#[test]
fn conv2d_odd_sizes_padding_no_relu() {
    check_conv(conv(3, 7, 13, 70, 5, 1, 2, 1), false, 2);
}

#[test]
fn conv2d_groups() {
    check_conv(conv(2, 12, 9, 18, 3, 1, 1, 2), true, 3);
    check_conv(conv(1, 9, 6, 6, 3, 2, 0, 3), false, 4);
}

#[test]
fn conv2d_one_by_one_spatial() {
    check_conv(conv(5, 33, 1, 17, 1, 1, 0, 1), true, 5);
    check_conv(conv(2, 4, 3, 65, 3, 1, 0, 1), false, 6);
}

fn check_dense(
    batch: usize,
    in_f: usize,
    out_f: usize,
    rows_per_part: usize,
    relu: bool,
    seed: u64,
) {
    for path in [MatmulPath::Tiled, MatmulPath::Gemm] {
        check_dense_on(path, batch, in_f, out_f, rows_per_part, relu, seed);
    }
}

fn check_dense_on(
    path: MatmulPath,
    batch: usize,
    in_f: usize,
    out_f: usize,
    rows_per_part: usize,
    relu: bool,
    seed: u64,
) {
    let ctx = ctx();
    let ks = Kernels::with_path(&ctx, path);
    let w = random(out_f * in_f, seed, 0.3);
    let b = random(out_f, seed + 1, 0.3);
    let x = random(batch * in_f, seed + 2, 1.0);
    let split =
        SplitWeight::upload_with_rows_per_part(&ctx, "w", &w, out_f, in_f, rows_per_part).unwrap();
    let bb = upload_f32(&ctx, "b", &b).unwrap();
    let xb = upload_f32(&ctx, "x", &x).unwrap();
    let yb = storage_buffer(&ctx, "y", batch * out_f, "").unwrap();
    let ds = kernels::dense::dispatch(&ctx, &ks, batch, &split, &bb, relu, &xb, &yb).unwrap();
    kernels::run(&ctx, &ds).unwrap();
    let got = read_back_f32(&ctx, &yb, batch * out_f).unwrap();
    let want = kernels::dense::reference(&w, &b, &x, batch, relu);
    assert_close(
        &format!("dense {path:?} b{batch} {in_f}->{out_f} parts of {rows_per_part}"),
        &got,
        &want,
        TOL,
    );
}

#[test]
fn dense_small_batch_odd_sizes() {
    check_dense(1, 37, 11, usize::MAX, true, 10);
    check_dense(3, 130, 67, usize::MAX, false, 11);
    check_dense(6, 65, 9, usize::MAX, true, 12);
}

#[test]
fn dense_gemm_path_k_multiple_of_4() {
    // in_f % 4 == 0 takes gemm.wgsl on the Gemm path: batch 1 (matrix-vector tile), batches
    // not multiples of the 4-row tile, outputs not multiples of 32, split weights.
    check_dense(1, 36, 11, usize::MAX, true, 16);
    check_dense(5, 128, 67, usize::MAX, false, 17);
    check_dense(3, 64, 40, 9, true, 18);
    check_dense(1, 20, 33, 8, false, 19);
    check_dense(kernels::dense::GEMM_MIN_BATCH + 1, 52, 70, 33, true, 20);
}

#[test]
fn dense_large_batch_uses_gemm() {
    let batch = kernels::dense::GEMM_MIN_BATCH + 3;
    check_dense(batch, 70, 130, usize::MAX, true, 13);
}

#[test]
fn dense_weights_split_over_buffers() {
    // fc6 does not fit one binding on lavapipe; the same path, forced here on a small matrix.
    check_dense(2, 50, 23, 7, true, 14);
    check_dense(kernels::dense::GEMM_MIN_BATCH, 50, 23, 5, false, 15);
}

#[test]
fn max_pool_matches_reference() {
    let ctx = ctx();
    let ks = Kernels::new(&ctx);
    for (planes, h, w, k, s) in [
        (6, 13, 13, 3, 2),
        (5, 27, 20, 3, 2),
        (3, 7, 9, 2, 1),
        (2, 3, 3, 3, 2),
    ] {
        let x = random(planes * h * w, 20, 1.0);
        let xb = upload_f32(&ctx, "x", &x).unwrap();
        let pool = PoolShape::floor(planes, h, w, k, s);
        let want = kernels::max_pool::reference(&x, &pool);
        let yb = storage_buffer(&ctx, "y", want.len(), "").unwrap();
        let d = kernels::max_pool::dispatch(&ctx, &ks.max_pool(), &pool, &xb, &yb).unwrap();
        kernels::run(&ctx, &[d]).unwrap();
        let got = read_back_f32(&ctx, &yb, want.len()).unwrap();
        assert_eq!(got, want, "max pool {planes}x{h}x{w} k{k} s{s}");
    }
}

#[test]
fn lrn_matches_reference() {
    let ctx = ctx();
    let ks = Kernels::new(&ctx);
    let cases = [
        (Lrn::default(), 2, 13, 35, 30.0),
        (
            Lrn {
                size: 3,
                alpha: 0.5,
                beta: 0.75,
                k: 2.0,
            },
            2,
            7,
            9,
            3.0,
        ),
        (
            Lrn {
                size: 4,
                alpha: 0.1,
                beta: 0.5,
                k: 1.0,
            },
            1,
            3,
            4,
            2.0,
        ),
    ];
    for (lrn, batch, channels, hw, scale) in cases {
        let x = random(batch * channels * hw, 21, scale);
        let xb = upload_f32(&ctx, "x", &x).unwrap();
        let yb = storage_buffer(&ctx, "y", x.len(), "").unwrap();
        let d =
            kernels::lrn::dispatch(&ctx, &ks.lrn(), &lrn, batch, channels, hw, &xb, &yb).unwrap();
        kernels::run(&ctx, &[d]).unwrap();
        let got = read_back_f32(&ctx, &yb, x.len()).unwrap();
        let want = kernels::lrn::reference(&lrn, &x, batch, channels, hw);
        assert_close(&format!("lrn {lrn:?}"), &got, &want, TOL);
    }
}

#[test]
fn adaptive_avg_pool_matches_reference() {
    let ctx = ctx();
    let ks = Kernels::new(&ctx);
    for (planes, ih, iw, oh, ow) in [
        (4, 6, 6, 6, 6),
        (3, 7, 7, 6, 6),
        (2, 13, 9, 6, 6),
        (2, 5, 4, 6, 6),
        (1, 1, 1, 6, 6),
    ] {
        let x = random(planes * ih * iw, 22, 1.0);
        let xb = upload_f32(&ctx, "x", &x).unwrap();
        let pool = AdaptivePoolShape {
            planes,
            in_h: ih,
            in_w: iw,
            out_h: oh,
            out_w: ow,
        };
        let want = kernels::adaptive_avg_pool::reference(&x, &pool);
        let yb = storage_buffer(&ctx, "y", want.len(), "").unwrap();
        let d =
            kernels::adaptive_avg_pool::dispatch(&ctx, &ks.adaptive_avg_pool(), &pool, &xb, &yb)
                .unwrap();
        kernels::run(&ctx, &[d]).unwrap();
        let got = read_back_f32(&ctx, &yb, want.len()).unwrap();
        assert_close(
            &format!("adaptive avg pool {ih}x{iw}->{oh}x{ow}"),
            &got,
            &want,
            TOL,
        );
    }
}

#[test]
fn softmax_and_relu_match_reference() {
    let ctx = ctx();
    let ks = Kernels::new(&ctx);
    for (rows, cols) in [(3, 1000), (1, 7), (5, 65)] {
        let x = random(rows * cols, 23, 20.0);
        let xb = upload_f32(&ctx, "x", &x).unwrap();
        let yb = storage_buffer(&ctx, "y", x.len(), "").unwrap();
        let d = kernels::softmax::dispatch(&ctx, &ks.softmax(), rows, cols, &xb, &yb).unwrap();
        kernels::run(&ctx, &[d]).unwrap();
        let got = read_back_f32(&ctx, &yb, x.len()).unwrap();
        assert_close(
            "softmax",
            &got,
            &kernels::softmax::reference(&x, rows, cols),
            TOL,
        );
    }
    let x = random(1000, 24, 1.0);
    let xb = upload_f32(&ctx, "x", &x).unwrap();
    let d = kernels::relu::dispatch(&ctx, &ks.relu(), x.len(), &xb).unwrap();
    kernels::run(&ctx, &[d]).unwrap();
    assert_eq!(
        read_back_f32(&ctx, &xb, x.len()).unwrap(),
        kernels::relu::reference(&x)
    );
}

// ---- f16 storage (`--precision f16`): im2col_f16.wgsl + gemm_f16.wgsl ----
//
// Tolerance: the same 1e-5 as f32, against the f64 reference run on the inputs rounded to f16
// (what the kernels store: weights packed on the host, activations by im2col_f16.wgsl on the
// GPU, both round to nearest even). A product of two f16 values (11-bit significands) is exact in
// f32 (24 bits), so what is left is f32 summation order, as for the f32 kernels. Rounding or
// packing mistakes (a wrong half, a lost pair, truncation instead of rounding on a whole row)
// show up at ~1e-3 or worse. The error of f16 against unrounded inputs is checked loosely too:
// each product carries at most ~2 x 2^-11 relative error, random in sign, so the result is
// off by well under 2^-10 ~ 1e-3 of the output's magnitude (bound 4e-3 with margin).
const TOL_F16_LOOSE: f32 = 4e-3;

/// The f16 GEMMs to cover: the portable one always, the native (`enable f16;`) one where the
/// adapter has SHADER_F16 (lavapipe does).
fn f16_kernels() -> Vec<bool> {
    let has = ctx().features.contains(wgpu::Features::SHADER_F16);
    if !has {
        eprintln!("this adapter has no SHADER_F16: native f16 kernels not covered here");
    }
    if has {
        vec![false, true]
    } else {
        vec![false]
    }
}

fn check_conv_f16(shape: Conv2dShape, relu: bool, seed: u64, scratch_words: usize) {
    for native in f16_kernels() {
        check_conv_f16_on(native, shape, relu, seed, scratch_words);
    }
}

fn check_conv_f16_on(
    native: bool,
    shape: Conv2dShape,
    relu: bool,
    seed: u64,
    scratch_words: usize,
) {
    let ctx = ctx();
    let mut ks = Kernels::new(&ctx);
    ks.native_f16 = native;
    let (oh, ow) = shape.out_hw().unwrap();
    let w = random(shape.weight_len(), seed, 0.5);
    let b = random(shape.out_c, seed + 1, 0.5);
    let x = random(
        shape.batch * shape.in_c * shape.in_h * shape.in_w,
        seed + 2,
        1.0,
    );
    let wb =
        alexnet_wgpu::gpu::upload(&ctx, "w", &kernels::conv2d::weight_for_gemm_f16(&shape, &w))
            .unwrap();
    let bb = upload_f32(&ctx, "b", &b).unwrap();
    let xb = upload_f32(&ctx, "x", &x).unwrap();
    let out_len = shape.batch * shape.out_c * oh * ow;
    let yb = storage_buffer(&ctx, "y", out_len, "").unwrap();
    // Garbage in the scratch: the K tail must be zeroed by im2col_f16 itself.
    let sb = upload_f32(&ctx, "scratch", &random(scratch_words, seed + 3, 9.0)).unwrap();
    let ds = kernels::conv2d::dispatch_gemm(
        &ctx,
        &ks,
        Precision::F16,
        &shape,
        relu,
        &wb,
        &bb,
        &xb,
        &yb,
        &sb,
    )
    .unwrap();
    kernels::run(&ctx, &ds).unwrap();
    let got = read_back_f32(&ctx, &yb, out_len).unwrap();
    let (w16, x16) = (kernels::gemm::round_f16(&w), kernels::gemm::round_f16(&x));
    let what = format!("conv2d f16 (native {native}) {shape:?} scratch {scratch_words}");
    let want = kernels::conv2d::reference(&shape, &w16, &b, &x16, relu);
    assert_close(&what, &got, &want, TOL);
    let exact = kernels::conv2d::reference(&shape, &w, &b, &x, relu);
    assert_close(
        &format!("{what} vs f32 inputs"),
        &got,
        &exact,
        TOL_F16_LOOSE,
    );
}

#[test]
fn conv2d_f16_storage() {
    let whole = |s: Conv2dShape| s.im2col_words(Precision::F16).unwrap();
    // conv1 geometry: K = 363 (padded to 368 halves), stride 4, padding.
    let s = conv(2, 3, 35, 10, 11, 4, 2, 1);
    check_conv_f16(s, true, 41, whole(s));
    // Odd sizes; M = 70 not a multiple of the 4-row tile; K = 175 (odd: pairs straddle
    // channels); more than one 64-half block of im2col_f16 per row.
    let s = conv(3, 7, 13, 70, 5, 1, 2, 1);
    check_conv_f16(s, false, 42, whole(s));
    // Groups (K = 54 per group, padded to 56), and 3 groups with stride 2.
    let s = conv(2, 12, 9, 18, 3, 1, 1, 2);
    check_conv_f16(s, true, 43, whole(s));
    let s = conv(1, 9, 6, 6, 3, 2, 0, 3);
    check_conv_f16(s, false, 44, whole(s));
    // 1x1 images, and a 1-row output (the matrix-vector tile).
    let s = conv(5, 33, 1, 17, 1, 1, 0, 1);
    check_conv_f16(s, true, 45, whole(s));
    let s = conv(2, 4, 3, 1, 3, 1, 0, 1);
    check_conv_f16(s, false, 46, whole(s));
    // Pixels in chunks: a scratch of 7 rows (and with groups).
    let s = conv(2, 7, 13, 70, 5, 1, 2, 1);
    check_conv_f16(
        s,
        true,
        47,
        7 * Precision::F16.words(Precision::F16.pad_k(s.k())),
    );
    let s = conv(2, 12, 9, 18, 3, 1, 1, 2);
    check_conv_f16(
        s,
        false,
        48,
        5 * 2 * Precision::F16.words(Precision::F16.pad_k(s.k())),
    );
}

fn check_dense_f16(batch: usize, in_f: usize, out_f: usize, rows_per_part: usize, seed: u64) {
    for native in f16_kernels() {
        check_dense_f16_on(native, batch, in_f, out_f, rows_per_part, seed);
    }
}

fn check_dense_f16_on(
    native: bool,
    batch: usize,
    in_f: usize,
    out_f: usize,
    rows_per_part: usize,
    seed: u64,
) {
    let ctx = ctx();
    let mut ks = Kernels::new(&ctx);
    ks.native_f16 = native;
    let relu = seed.is_multiple_of(2);
    let w = random(out_f * in_f, seed, 0.3);
    let b = random(out_f, seed + 1, 0.3);
    let x = random(batch * in_f, seed + 2, 1.0);
    let split =
        kernels::dense::upload_f16_with_rows_per_part(&ctx, "w", &w, out_f, in_f, rows_per_part)
            .unwrap();
    let bb = upload_f32(&ctx, "b", &b).unwrap();
    let xb = upload_f32(&ctx, "x", &x).unwrap();
    let yb = storage_buffer(&ctx, "y", batch * out_f, "").unwrap();
    let words = kernels::dense::scratch_words_f16(batch, in_f);
    let sb = upload_f32(&ctx, "scratch", &random(words, seed + 3, 9.0)).unwrap();
    let ds =
        kernels::dense::dispatch_f16(&ctx, &ks, batch, &split, &bb, relu, &xb, &yb, &sb).unwrap();
    kernels::run(&ctx, &ds).unwrap();
    let got = read_back_f32(&ctx, &yb, batch * out_f).unwrap();
    let (w16, x16) = (kernels::gemm::round_f16(&w), kernels::gemm::round_f16(&x));
    let what =
        format!("dense f16 (native {native}) b{batch} {in_f}->{out_f} parts of {rows_per_part}");
    let want = kernels::dense::reference(&w16, &b, &x16, batch, relu);
    assert_close(&what, &got, &want, TOL);
    let exact = kernels::dense::reference(&w, &b, &x, batch, relu);
    assert_close(
        &format!("{what} vs f32 inputs"),
        &got,
        &exact,
        TOL_F16_LOOSE,
    );
}

#[test]
fn dense_f16_storage() {
    // Batch 1 (matrix-vector tile), K not a multiple of 8 (or even of 2), odd outputs.
    check_dense_f16(1, 37, 11, usize::MAX, 50);
    check_dense_f16(1, 256, 70, usize::MAX, 51);
    // Batches not multiples of the 4-row tile, weights split over buffers.
    check_dense_f16(5, 130, 67, usize::MAX, 52);
    check_dense_f16(3, 64, 40, 9, 53);
    check_dense_f16(1, 20, 33, 8, 54);
    check_dense_f16(19, 52, 70, 33, 55);
}

#[test]
fn f16_packing_order_and_rounding() {
    // Word j of each four holds k = j (low half) and k = j + 4 (high half); rows padded to 8
    // halves with zeros.
    let rows = kernels::gemm::pack_f16_rows(&[1.0, -2.0, 0.5, 65504.0, 3.0], 1, 5);
    assert_eq!(
        rows,
        vec![0x4200_3C00, 0x0000_C000, 0x0000_3800, 0x0000_7BFF]
    );
    // The f16 ulp at 1 is 4 / 4096: 0.25 and 0.75 ulp round to nearest, ties (0.5, 1.5) to even.
    let q = 1.0 / 4096.0;
    let r = kernels::gemm::round_f16(&[1.0 + q, 1.0 + 3.0 * q, 1.0 + 2.0 * q, 1.0 + 6.0 * q]);
    assert_eq!(r, vec![1.0, 1.0 + 4.0 * q, 1.0, 1.0 + 8.0 * q]);
}

// ---- mm.wgsl: register-blocked tiles (the GPU path), every variant forced ----

fn check_conv_mm(tile: kernels::mm::Tile, shape: Conv2dShape, relu: bool, seed: u64) {
    let kind = kernels::mm::ConvKind::implicit(tile, 1);
    check_conv_mm_split(kind, usize::MAX, shape, relu, seed);
}

/// `kind` on `shape` with a garbage-filled scratch of `scratch_words` (capped at what the
/// split wants; none when it wants none).
fn check_conv_mm_split(
    kind: kernels::mm::ConvKind,
    scratch_words: usize,
    shape: Conv2dShape,
    relu: bool,
    seed: u64,
) {
    let ctx = ctx();
    let ks = Kernels::with_path(&ctx, MatmulPath::Blocked(Default::default()));
    let (oh, ow) = shape.out_hw().unwrap();
    let w = random(shape.weight_len(), seed, 0.5);
    let b = random(shape.out_c, seed + 1, 0.5);
    let x = random(
        shape.batch * shape.in_c * shape.in_h * shape.in_w,
        seed + 2,
        1.0,
    );
    let wb = upload_f32(&ctx, "w", &kernels::conv2d::weight_for_gemm(&shape, &w)).unwrap();
    let bb = upload_f32(&ctx, "b", &b).unwrap();
    let xb = upload_f32(&ctx, "x", &x).unwrap();
    let out_len = shape.batch * shape.out_c * oh * ow;
    // Garbage in the output: every element must be written.
    let yb = upload_f32(&ctx, "y", &random(out_len, seed + 3, 9.0)).unwrap();
    let words = kernels::mm::conv_split_words(kind, &shape)
        .unwrap()
        .min(scratch_words);
    let sb = (words > 0).then(|| upload_f32(&ctx, "part", &random(words, seed + 4, 9.0)).unwrap());
    let ds = kernels::mm::dispatch_conv(
        &ctx,
        &ks,
        kind,
        &shape,
        relu,
        &wb,
        &bb,
        &xb,
        &yb,
        sb.as_ref(),
    )
    .unwrap();
    // Split: the split entry and the reduce; unsplit (or no room for two slices): one.
    assert_eq!(ds.len(), if words >= 2 * out_len { 2 } else { 1 });
    kernels::run(&ctx, &ds).unwrap();
    let got = read_back_f32(&ctx, &yb, out_len).unwrap();
    let want = kernels::conv2d::reference(&shape, &w, &b, &x, relu);
    assert_close(
        &format!("conv2d mm {} {shape:?}", kind.name()),
        &got,
        &want,
        TOL,
    );
}

/// Split-K: uneven slices (the last shorter), groups, splits above the K steps (clamped),
/// and a scratch holding fewer slices than asked (split lowered; none: unsplit).
#[test]
fn conv2d_mm_split_k() {
    use kernels::mm::{ConvKind, Tile};
    let k = |bm, bn, bk, split| ConvKind::implicit(Tile::new(bm, bn, bk), split);
    // K = 363: 23 steps of 16 in 3 slices of 8, 8, 7 steps; M = 10, N = 128.
    check_conv_mm_split(
        k(64, 64, 16, 3),
        usize::MAX,
        conv(2, 3, 35, 10, 11, 4, 2, 1),
        true,
        81,
    );
    // Groups 2 (K = 54 per group) and 3, with the small tiles.
    check_conv_mm_split(
        k(64, 32, 16, 2),
        usize::MAX,
        conv(2, 12, 9, 18, 3, 1, 1, 2),
        false,
        82,
    );
    check_conv_mm_split(
        k(32, 64, 16, 4),
        usize::MAX,
        conv(1, 9, 6, 6, 3, 2, 0, 3),
        true,
        83,
    );
    // conv3-like at batch 1: K = 360 over 16 slices of 8 (bk 8).
    check_conv_mm_split(
        k(128, 128, 8, 16),
        usize::MAX,
        conv(1, 40, 11, 24, 3, 1, 1, 1),
        true,
        84,
    );
    // Room for 2 of 4 slices (2 * 24 * 121 words and change), then for none.
    check_conv_mm_split(
        k(64, 64, 16, 4),
        2 * 24 * 121 + 7,
        conv(1, 40, 11, 24, 3, 1, 1, 1),
        false,
        85,
    );
    check_conv_mm_split(
        k(64, 64, 16, 4),
        24 * 121,
        conv(1, 40, 11, 24, 3, 1, 1, 1),
        false,
        86,
    );
}

#[test]
fn conv2d_mm_every_tile() {
    for &tile in kernels::mm::TILES {
        // conv1 geometry: K = 363 (not a multiple of any BK), stride 4, padding; M = 10.
        check_conv_mm(tile, conv(2, 3, 35, 10, 11, 4, 2, 1), true, 41);
        // M = 70 and N = 3 * 13 * 13 = 507: remainders of every tile in both dimensions.
        check_conv_mm(tile, conv(3, 7, 13, 70, 5, 1, 2, 1), false, 42);
        // Groups: 2 (K = 54 per group) and 3 with stride 2; batch 1.
        check_conv_mm(tile, conv(2, 12, 9, 18, 3, 1, 1, 2), true, 43);
        check_conv_mm(tile, conv(1, 9, 6, 6, 3, 2, 0, 3), false, 44);
        // 1x1 images, 1x1 kernel (dense as a conv), M above one 128-row tile.
        check_conv_mm(tile, conv(5, 33, 1, 130, 1, 1, 0, 1), true, 45);
    }
}

/// K spanning many BK steps (the double-buffered loop) on one tile: conv3-like, K = 9 * 40.
#[test]
fn conv2d_mm_long_k() {
    let tile = kernels::mm::Tile::new(64, 64, 16);
    check_conv_mm(tile, conv(1, 40, 11, 24, 3, 1, 1, 1), true, 46);
}

/// The coalesced im2col + `conv_im2col` on `tile` ([`kernels::mm_im2col`]), through a
/// garbage-filled scratch of `rows` patch rows (`usize::MAX`: the whole batch's matrix; fewer:
/// pixel chunks, two dispatches each) into a garbage-filled output.
fn check_conv_im2col(
    tile: kernels::mm::Tile,
    rows: usize,
    shape: Conv2dShape,
    relu: bool,
    seed: u64,
) {
    let ctx = ctx();
    let ks = Kernels::with_path(&ctx, MatmulPath::Blocked(Default::default()));
    let (oh, ow) = shape.out_hw().unwrap();
    let w = random(shape.weight_len(), seed, 0.5);
    let b = random(shape.out_c, seed + 1, 0.5);
    let x = random(
        shape.batch * shape.in_c * shape.in_h * shape.in_w,
        seed + 2,
        1.0,
    );
    let wb = upload_f32(&ctx, "w", &kernels::conv2d::weight_for_gemm(&shape, &w)).unwrap();
    let bb = upload_f32(&ctx, "b", &b).unwrap();
    let xb = upload_f32(&ctx, "x", &x).unwrap();
    let out_len = shape.batch * shape.out_c * oh * ow;
    let yb = upload_f32(&ctx, "y", &random(out_len, seed + 3, 9.0)).unwrap();
    let pixels = shape.batch * oh * ow;
    let words = kernels::mm_im2col::scratch_words(&shape).unwrap();
    assert_eq!(words, pixels * shape.groups * shape.kp());
    let words = words.min(rows.saturating_mul(shape.groups * shape.kp()));
    // Garbage in the scratch too: the K tail of every row must be written as zeros.
    let sb = upload_f32(&ctx, "patches", &random(words, seed + 4, 9.0)).unwrap();
    let ds = kernels::mm_im2col::dispatch(&ctx, &ks, tile, &shape, relu, &wb, &bb, &xb, &yb, &sb)
        .unwrap();
    assert_eq!(ds.len(), 2 * pixels.div_ceil(rows.min(pixels)), "chunks");
    kernels::run(&ctx, &ds).unwrap();
    let got = read_back_f32(&ctx, &yb, out_len).unwrap();
    let want = kernels::conv2d::reference(&shape, &w, &b, &x, relu);
    assert_close(
        &format!(
            "conv2d mm {}-im2col {shape:?} scratch rows {}",
            tile.name(),
            rows.min(pixels)
        ),
        &got,
        &want,
        TOL,
    );
}

/// Every tile through the coalesced im2col on the shapes of `conv2d_mm_every_tile`: AlexNet's
/// conv1 geometry (K = 363 padded to 364, stride 4, padding), remainders of every tile in both
/// dimensions, groups 2 and 3 with stride 2, 1x1 images.
#[test]
fn conv2d_mm_im2col_every_tile() {
    for &tile in kernels::mm::TILES {
        check_conv_im2col(tile, usize::MAX, conv(2, 3, 35, 10, 11, 4, 2, 1), true, 141);
        check_conv_im2col(tile, usize::MAX, conv(3, 7, 13, 70, 5, 1, 2, 1), false, 142);
        check_conv_im2col(tile, usize::MAX, conv(2, 12, 9, 18, 3, 1, 1, 2), true, 143);
        check_conv_im2col(tile, usize::MAX, conv(1, 9, 6, 6, 3, 2, 0, 3), false, 144);
        check_conv_im2col(tile, usize::MAX, conv(5, 33, 1, 130, 1, 1, 0, 1), true, 145);
    }
}

/// Pixel chunks (a scratch of 7 rows for 2 x 13 x 13 pixels: 25 chunks, the last short; with
/// groups, chunks of 5), AlexNet's conv2 and conv3-5 geometries at reduced width (K = 400 and
/// 1728 over many K steps), and a K not a multiple of 4 in chunks of 100 rows.
#[test]
fn conv2d_mm_im2col_chunks_and_alexnet_geometries() {
    use kernels::mm::Tile;
    let t64 = Tile::new(64, 64, 16);
    check_conv_im2col(t64, 7, conv(2, 7, 13, 70, 5, 1, 2, 1), true, 150);
    check_conv_im2col(
        Tile::new(32, 32, 16),
        5,
        conv(2, 12, 9, 18, 3, 1, 1, 2),
        false,
        151,
    );
    // conv2: k5 p2 on 27x27 (K = 16 x 25 = 400), groups 2 as in the original AlexNet.
    check_conv_im2col(t64, usize::MAX, conv(1, 32, 27, 24, 5, 1, 2, 2), true, 152);
    // conv3-5: k3 p1 on 13x13, K = 192 x 9 = 1728 (108 K steps of 16), batch 1 (169 pixels).
    check_conv_im2col(
        Tile::new(64, 32, 16),
        usize::MAX,
        conv(1, 192, 13, 40, 3, 1, 1, 1),
        false,
        153,
    );
    // K = 5 x 9 = 45: a K tail of 3 in the last vec4.
    check_conv_im2col(
        Tile::new(128, 128, 8),
        100,
        conv(3, 5, 10, 9, 3, 1, 1, 1),
        true,
        154,
    );
}

fn check_dense_mm(
    kind: kernels::mm::DenseKind,
    batch: usize,
    (in_f, out_f, rows_per_part): (usize, usize, usize),
    relu: bool,
    seed: u64,
) {
    let ctx = ctx();
    let ks = Kernels::with_path(&ctx, MatmulPath::Blocked(Default::default()));
    let w = random(out_f * in_f, seed, 0.3);
    let b = random(out_f, seed + 1, 0.3);
    let x = random(batch * in_f, seed + 2, 1.0);
    let split =
        SplitWeight::upload_with_rows_per_part(&ctx, "w", &w, out_f, in_f, rows_per_part).unwrap();
    let bb = upload_f32(&ctx, "b", &b).unwrap();
    let xb = upload_f32(&ctx, "x", &x).unwrap();
    let yb = upload_f32(&ctx, "y", &random(batch * out_f, seed + 3, 9.0)).unwrap();
    let mut ds = Vec::new();
    for (row_start, rows, buf) in &split.parts {
        ds.extend(
            kernels::mm::dispatch_dense(
                &ctx,
                &ks,
                kind,
                batch,
                in_f,
                (*row_start, *rows, out_f),
                relu,
                buf,
                &bb,
                &xb,
                &yb,
            )
            .unwrap(),
        );
    }
    kernels::run(&ctx, &ds).unwrap();
    let got = read_back_f32(&ctx, &yb, batch * out_f).unwrap();
    let want = kernels::dense::reference(&w, &b, &x, batch, relu);
    assert_close(
        &format!(
            "dense mm {} b{batch} {in_f}->{out_f} parts of {rows_per_part}",
            kind.name()
        ),
        &got,
        &want,
        TOL,
    );
}

#[test]
fn dense_mm_every_tile_and_split() {
    use kernels::mm::DenseKind;
    for &tile in kernels::mm::TILES {
        let one = DenseKind::Tiles { tile, split: 1 };
        // K = 100 (not a multiple of 8, 16 or 32), batch and outputs off the tiles.
        check_dense_mm(one, 5, (100, 67, usize::MAX), true, 50);
        // Batch 1, outputs over one 128-row tile, weights in parts of 9 rows.
        check_dense_mm(one, 1, (64, 140, 9), false, 51);
        // Split-K: 3 slices of K = 300 (the last one short), 2 with a part split.
        for split in [2, 3, 7] {
            let kind = DenseKind::Tiles { tile, split };
            check_dense_mm(kind, 9, (300, 70, usize::MAX), true, 52 + split as u64);
        }
        check_dense_mm(
            DenseKind::Tiles { tile, split: 2 },
            3,
            (256, 33, 20),
            false,
            60,
        );
    }
}

#[test]
fn dense_mm_gemv() {
    use kernels::mm::DenseKind;
    // Batch 1-4 in one pass over the weights; 6 and 9: more than 4 rows (4 per z slice).
    for (batch, seed) in [(1, 70), (2, 71), (4, 72), (6, 73), (9, 74)] {
        check_dense_mm(DenseKind::Gemv, batch, (132, 75, usize::MAX), true, seed);
    }
    // K shorter than the 64 invocations' stride, weights in parts.
    check_dense_mm(DenseKind::Gemv, 3, (20, 40, 7), false, 75);
}

/// Forcing through `ALEXNET_MATMUL` syntax, and the heuristics' choices on AlexNet's shapes.
#[test]
fn mm_variant_names_parse_and_heuristics() {
    use kernels::mm::{dense_heuristic, DenseKind, Tile};
    for v in [
        "tiled",
        "gemm",
        "blocked",
        "blocked-128x64x16",
        "blocked-gemv",
        "blocked-split4",
        "blocked-64x64x32-split2",
        "blocked-convsplit8",
        "blocked-64x32x16-split2-convsplit4",
        "blocked-im2col",
        "blocked-32x32x16-gemv-im2col",
    ] {
        assert_eq!(MatmulPath::parse(v).unwrap().name(), v);
    }
    for bad in [
        "blocked-99x99x9",
        "blocked-split0",
        "blocked-convsplit0",
        "blocked-convsplitx",
        "blocked-convsplit2-im2col",
        "blocked-32x32x8",
        "fast",
        "blockedx",
    ] {
        assert!(MatmulPath::parse(bad).is_err(), "{bad} parsed");
    }
    // A GPU's limits (32 KiB of workgroup memory, as lavapipe and most desktop cards).
    let gpu = wgpu::Limits {
        max_compute_workgroup_storage_size: 32768,
        max_compute_invocations_per_workgroup: 1024,
        ..Default::default()
    };
    // fc6 at batch 128: 128x128 tiles fill only 32 workgroups, so K is split (8 slices).
    assert_eq!(
        dense_heuristic(128, 9216, 4096, &gpu),
        DenseKind::Tiles {
            tile: Tile::new(128, 128, 8),
            split: 8
        }
    );
    assert_eq!(dense_heuristic(1, 9216, 4096, &gpu), DenseKind::Gemv);
    assert_eq!(dense_heuristic(8, 4096, 4096, &gpu), DenseKind::Gemv);
    // Under WebGPU's baseline (16 KiB) only 128x128x8, 64x64x16 and the 16/32-invocation tiles
    // fit, and the heuristics pick nothing else.
    let webgpu = wgpu::Limits::default();
    let fitting: Vec<String> = kernels::mm::TILES
        .iter()
        .filter(|t| t.fits(&webgpu))
        .map(|t| t.name())
        .collect();
    assert_eq!(
        fitting,
        ["128x128x8", "64x64x16", "64x32x16", "32x64x16", "32x32x16"]
    );
    for (m, n) in [
        (192, 64 * 27 * 27),
        (64, 64 * 55 * 55),
        (384, 13 * 13),
        (256, 8 * 169),
    ] {
        let big = kernels::mm::conv_heuristic(m, n, &gpu);
        let small = kernels::mm::conv_heuristic(m, n, &webgpu);
        assert!(
            big.fits(&gpu) && small.fits(&webgpu),
            "{m}x{n}: {big:?} / {small:?}"
        );
    }
    // conv2 at batch 64 (M = 192: 128-row tiles waste a third): 64x128x16 with 24 KiB.
    assert_eq!(
        kernels::mm::conv_heuristic(192, 64 * 27 * 27, &gpu),
        Tile::new(64, 128, 16)
    );
    assert_eq!(
        kernels::mm::conv_heuristic(192, 64 * 27 * 27, &webgpu),
        Tile::new(64, 64, 16)
    );
    // Split-K where the output tiles leave the GPU idle: batch 1 conv3-5 (AlexNet, 13x13
    // outputs, K 1728-3456) split into slices of at least 256 values of K; conv1 (K 363) and
    // large batches are not split.
    let blocked = kernels::mm::Force::default();
    let split_of = |s: &Conv2dShape| blocked.conv(s, None, &gpu).unwrap();
    let at = kernels::mm::ConvKind::implicit;
    let t64 = Tile::new(64, 64, 16);
    assert_eq!(split_of(&conv(1, 192, 13, 384, 3, 1, 1, 1)), at(t64, 4));
    assert_eq!(split_of(&conv(1, 384, 13, 256, 3, 1, 1, 1)), at(t64, 8));
    assert_eq!(split_of(&conv(1, 256, 13, 256, 3, 1, 1, 1)), at(t64, 8));
    assert_eq!(split_of(&conv(1, 64, 27, 192, 5, 1, 2, 1)), at(t64, 4));
    assert_eq!(split_of(&conv(1, 3, 224, 64, 11, 4, 2, 1)).split, 1);
    assert_eq!(split_of(&conv(64, 256, 13, 256, 3, 1, 1, 1)).split, 1);
    // Forced fields win: a conv split on the heuristic tile, a tile with the tuner's split.
    let forced = kernels::mm::Force::parse("-convsplit3").unwrap();
    let conv4 = conv(1, 384, 13, 256, 3, 1, 1, 1);
    assert_eq!(forced.conv(&conv4, None, &gpu).unwrap(), at(t64, 3));
    let tuned = at(Tile::new(64, 32, 16), 16);
    assert_eq!(blocked.conv(&conv4, Some(tuned), &gpu).unwrap(), tuned);
    let forced = kernels::mm::Force::parse("-64x32x16").unwrap();
    assert_eq!(forced.conv(&conv4, Some(tuned), &gpu).unwrap(), tuned);
    // The coalesced im2col: forced (on the heuristic's tile or a forced one, unsplit), tuned
    // (kept under a forced tile that matches), never the heuristic's own choice.
    let im2col = kernels::mm::ConvKind::im2col;
    let forced = kernels::mm::Force::parse("-im2col").unwrap();
    assert_eq!(forced.conv(&conv4, None, &gpu).unwrap(), im2col(t64));
    let forced = kernels::mm::Force::parse("-32x32x16-im2col").unwrap();
    let t32 = Tile::new(32, 32, 16);
    assert_eq!(forced.conv(&conv4, Some(tuned), &gpu).unwrap(), im2col(t32));
    let tuned_im2col = im2col(Tile::new(64, 32, 16));
    assert_eq!(
        blocked.conv(&conv4, Some(tuned_im2col), &gpu).unwrap(),
        tuned_im2col
    );
    let forced = kernels::mm::Force::parse("-64x32x16").unwrap();
    assert_eq!(
        forced.conv(&conv4, Some(tuned_im2col), &gpu).unwrap(),
        tuned_im2col
    );
    for s in [
        conv4,
        conv(64, 256, 13, 256, 3, 1, 1, 1),
        conv(8, 3, 224, 64, 11, 4, 2, 1),
    ] {
        assert!(!blocked.conv(&s, None, &gpu).unwrap().im2col, "{s:?}");
    }
    // A forced tile the device cannot run is refused, naming the tiles that fit.
    let force = kernels::mm::Force::parse("-128x64x16").unwrap();
    let shape = conv(64, 64, 27, 192, 5, 1, 2, 1);
    let err = force.conv(&shape, None, &webgpu).unwrap_err().to_string();
    assert!(err.contains("128x128x8, 64x64x16"), "{err}");
    for kind in [
        DenseKind::Gemv,
        DenseKind::Tiles {
            tile: Tile::new(64, 64, 16),
            split: 1,
        },
        DenseKind::Tiles {
            tile: Tile::new(128, 64, 16),
            split: 4,
        },
    ] {
        use kernels::tuned::{parse_dense, Variant};
        assert_eq!(parse_dense(&kind.name()), Some(Variant::Mm(kind)));
        assert_eq!(
            parse_dense(&Variant::Mm(kind).name()),
            Some(Variant::Mm(kind))
        );
    }
    {
        use kernels::tuned::{parse_conv, parse_dense, Variant};
        assert_eq!(parse_dense("gemm"), Some(Variant::Gemm));
        assert_eq!(parse_conv("gemm"), Some(Variant::Gemm));
        for split in [1, 8] {
            let t = kernels::mm::ConvKind::implicit(Tile::new(128, 64, 16), split);
            assert_eq!(parse_conv(&Variant::Mm(t).name()), Some(Variant::Mm(t)));
        }
        let t = kernels::mm::ConvKind::im2col(Tile::new(32, 32, 16));
        assert_eq!(t.name(), "32x32x16-im2col");
        assert_eq!(parse_conv(&t.name()), Some(Variant::Mm(t)));
        // The coalesced im2col feeds the unsplit dense entry: no split form exists.
        assert_eq!(parse_conv("32x32x16-split2-im2col"), None);
        assert_eq!(parse_conv("32x32x16-im2col-split2"), None);
        assert_eq!(parse_conv("128x64x16"), parse_conv("128x64x16-split1"));
        assert_eq!(parse_conv("gemv"), None);
        assert_eq!(parse_conv("128x64x16-split0"), None);
        assert_eq!(parse_dense("128x64x16-split0"), None);
    }
    // Every tile fits DX12's 32 KiB of workgroup memory and 256 invocations.
    for t in kernels::mm::TILES {
        assert!(t.workgroup_bytes() <= 32 * 1024, "{}", t.name());
        assert!((t.bm / 8) * (t.bn / 8) <= 256, "{}", t.name());
    }
}

/// `gemv_f16.wgsl` (f16 dense layers at batch 1-8 on GPUs) through the network's dense layer on
/// the `Blocked` path, from both f16 layouts: `gemm_f16` rows (interleaved halves) in several
/// weight parts, and `coop.wgsl` rows (sequential halves, rows padded to 16 halves). Against
/// the f64 reference on the f16-rounded weights and the f32 inputs (the kernel reads the inputs
/// in f32): TOL, as every f32-accumulating kernel here.
#[test]
fn gemv_f16_from_both_layouts() {
    use alexnet_wgpu::kernels::coop::Coop;
    use alexnet_wgpu::model::dense::GpuDense;
    let ctx = ctx();
    let ks = Kernels::with_path(&ctx, MatmulPath::Blocked(Default::default()));
    // K odd, under one word group, not a multiple of 8 or 16; outputs not a multiple of the 4
    // rows per workgroup; every batch the kernel serves.
    for (seed, (batch, in_f, out_f, rows_per_part)) in [
        (1, 37, 11, usize::MAX),
        (2, 256, 70, 9),
        (3, 5, 3, usize::MAX),
        (5, 130, 67, 33),
        (8, 1000, 45, 20),
    ]
    .into_iter()
    .enumerate()
    {
        let seed = 900 + 10 * seed as u64;
        assert!(kernels::gemv_f16::serves(&ks, batch));
        let relu = seed.is_multiple_of(20);
        let w = random(out_f * in_f, seed, 0.3);
        let b = random(out_f, seed + 1, 0.3);
        let x = random(batch * in_f, seed + 2, 1.0);
        let want = kernels::dense::reference(&kernels::gemm::round_f16(&w), &b, &x, batch, relu);
        let parts = GpuDense {
            weight: kernels::dense::upload_f16_with_rows_per_part(
                &ctx,
                "w",
                &w,
                out_f,
                in_f,
                rows_per_part,
            )
            .unwrap(),
            ..GpuDense::upload(&ctx, "fc", &w, &b, out_f, in_f, relu, Precision::F16).unwrap()
        };
        let coop =
            GpuDense::upload_coop(&ctx, "fc", &w, &b, out_f, in_f, relu, Coop::Emulated).unwrap();
        assert!(coop.coop.is_some());
        for (layout, dense) in [("gemm_f16 rows", &parts), ("coop rows", &coop)] {
            let xb = upload_f32(&ctx, "x", &x).unwrap();
            // Poisoned output: every value must be written.
            let yb = upload_f32(&ctx, "y", &vec![f32::NAN; batch * out_f]).unwrap();
            let ds = dense.forward(&ctx, &ks, batch, &xb, &yb, None).unwrap();
            assert!(ds.iter().all(|d| d.label == "dense(gemv_f16)"), "routed");
            kernels::run(&ctx, &ds).unwrap();
            let got = read_back_f32(&ctx, &yb, batch * out_f).unwrap();
            let what = format!("gemv_f16 ({layout}) b{batch} {in_f}->{out_f}");
            assert_close(&what, &got, &want, TOL);
        }
    }
    // Past MAX_BATCH, and on the CPU adapters' path, the GEMM kernels keep the layer.
    assert!(!kernels::gemv_f16::serves(
        &ks,
        kernels::gemv_f16::MAX_BATCH + 1
    ));
    assert!(!kernels::gemv_f16::serves(
        &Kernels::with_path(&ctx, MatmulPath::Gemm),
        1
    ));
}
