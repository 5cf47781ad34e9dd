//! `alexnet selftest`: does this program compute correctly on this adapter? Every kernel and
//! every path the program can choose, on small and awkward shapes, against its plain CPU
//! reference (f64 accumulation), as llama.cpp's `test-backend-ops` does for its backends.
//!
//! What is covered: convolutions by every route (the textbook tiles, `im2col` + `gemm.wgsl`
//! whole and through a chunked scratch, every `mm.wgsl` tile the device's limits allow, f16
//! storage with portable and, where offered, native loads); dense layers on each path (tiles,
//! gemv, split-K, weights split over several bindings); max pool (also ceil mode), LRN,
//! adaptive average pool, softmax, ReLU; the backward kernels (convolution direct and as GEMMs,
//! pools, LRN) and a training protocol per optimizer (SGD with momentum and Adam, through the
//! dense, ReLU, dropout and cross-entropy backward kernels) against the f64 CPU protocol; and
//! reduced-width networks of the three presets end to end on every matmul path; and the LPIPS
//! kernel.
//!
//! Tolerances (max |gpu - cpu| / max |cpu|): 1e-5 for f32 kernels (f32 sums of at most a few
//! thousand terms in another order: ~sqrt(K) * 6e-8, while an indexing bug gives O(1)); 1e-6
//! for the pools' backward (sums of at most a few values); 1e-4 for LRN backward (a power with
//! a fractional exponent); 1e-5 for f16 storage against the reference on f16-rounded inputs
//! (products of halves are exact in f32); 1e-4 for whole networks (eight layers of f32
//! rounding, as the fidelity tests against onnxruntime allow).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};
use crate::gpu::{read_back_f32, storage_buffer, upload, upload_f32, GpuContext, SplitWeight};
use crate::kernels::conv2d::Conv2dShape;
use crate::kernels::lrn::Lrn;
use crate::kernels::mm::{DenseKind, TILES};
use crate::kernels::{self, Kernels, MatmulPath, Precision};
use crate::model::{Arch, Network, Weights, Widths};
use crate::train::kernels::conv_gemm_backward::{self, ConvGemmScratch};
use crate::train::kernels::{conv_backward, lrn_backward, pool_backward, TrainKernels};
use crate::train::{DenseHost, HeadKind, HeadWeights, Optimizer, TrainConfig, Trainer};

/// One comparison of the selftest.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Check {
    pub kernel: String,
    pub path: String,
    pub shape: String,
    /// max |gpu - cpu| / max |cpu| (`NaN` when the check failed to run).
    pub max_rel_err: f64,
    pub tol: f64,
    /// Wall time of the GPU work and read-back (the CPU reference not included).
    pub ms: f64,
    pub ok: bool,
    /// Why the check could not run (a refused dispatch, a validation error, a panic).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What one case returns: the GPU's values, the reference's, and the GPU time.
struct Compared {
    got: Vec<f32>,
    want: Vec<f32>,
    ms: f64,
}

type Body = Box<dyn Fn(&GpuContext) -> Result<Compared>>;

/// A named case: its labels, tolerance and body.
pub struct Case {
    pub kernel: String,
    pub path: String,
    pub shape: String,
    pub tol: f64,
    body: Body,
}

impl Case {
    fn new(
        kernel: &str,
        path: impl Into<String>,
        shape: impl Into<String>,
        tol: f64,
        body: impl Fn(&GpuContext) -> Result<Compared> + 'static,
    ) -> Self {
        Case {
            kernel: kernel.into(),
            path: path.into(),
            shape: shape.into(),
            tol,
            body: Box::new(body),
        }
    }

    /// Runs the case; a panic or an error is a failed check, never the end of the selftest.
    pub fn run(&self, ctx: &GpuContext) -> Check {
        let outcome = catch_unwind(AssertUnwindSafe(|| (self.body)(ctx)));
        let (max_rel_err, ms, error) = match outcome {
            Ok(Ok(c)) => {
                let err = rel_err(&c.got, &c.want);
                (err, c.ms, None)
            }
            Ok(Err(e)) => (f64::NAN, 0.0, Some(e.to_string())),
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                (f64::NAN, 0.0, Some(format!("panicked: {msg}")))
            }
        };
        // Whatever the device reported meanwhile belongs to this check.
        let error = match (error, ctx.check()) {
            (e, Ok(())) => e,
            (None, Err(v)) => Some(v.to_string()),
            (Some(e), Err(v)) => Some(format!("{e}; {v}")),
        };
        Check {
            kernel: self.kernel.clone(),
            path: self.path.clone(),
            shape: self.shape.clone(),
            ok: error.is_none() && max_rel_err <= self.tol,
            max_rel_err,
            tol: self.tol,
            ms,
            error,
        }
    }
}

/// max |a - b| / max |b|; infinite if `a` has a non-finite value or the lengths differ.
fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    if got.len() != want.len() || got.iter().any(|v| !v.is_finite()) {
        return f64::INFINITY;
    }
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
    let diff = got
        .iter()
        .zip(want)
        .fold(0f64, |m, (a, b)| m.max((*a as f64 - *b as f64).abs()));
    diff / scale.max(1e-30)
}

fn random(len: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-scale..scale)).collect()
}

/// Runs `ds`, then reads `len` floats of `out`, timing both.
fn run_read(
    ctx: &GpuContext,
    ds: &[kernels::Dispatch],
    out: &wgpu::Buffer,
    len: usize,
) -> Result<(Vec<f32>, f64)> {
    let t = Instant::now();
    kernels::run(ctx, ds)?;
    let got = read_back_f32(ctx, out, len)?;
    Ok((got, t.elapsed().as_secs_f64() * 1e3))
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
    Conv2dShape {
        batch,
        in_c,
        in_h: hw,
        in_w: hw,
        out_c,
        kernel,
        stride,
        pad,
        groups,
    }
}

fn conv_label(s: &Conv2dShape) -> String {
    format!(
        "b{} {}x{}x{} -> {} k{} s{} p{} g{}",
        s.batch, s.in_c, s.in_h, s.in_w, s.out_c, s.kernel, s.stride, s.pad, s.groups
    )
}

/// Random input, weights and bias for a convolution, and its reference output.
struct ConvData {
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    out_len: usize,
}

fn conv_data(s: &Conv2dShape, seed: u64) -> Result<ConvData> {
    let (oh, ow) = s.out_hw()?;
    Ok(ConvData {
        x: random(s.batch * s.in_c * s.in_h * s.in_w, seed, 1.0),
        w: random(s.weight_len(), seed + 1, 0.5),
        b: random(s.out_c, seed + 2, 0.5),
        out_len: s.batch * s.out_c * oh * ow,
    })
}

/// The awkward convolutions: conv1's geometry (K = 363, stride 4, padding), odd sizes off
/// every tile, groups, 1x1 images, batch 1.
fn conv_shapes() -> Vec<Conv2dShape> {
    vec![
        conv(2, 3, 35, 10, 11, 4, 2, 1),
        conv(3, 7, 13, 70, 5, 1, 2, 1),
        conv(2, 12, 9, 18, 3, 1, 1, 2),
        conv(1, 9, 6, 6, 3, 2, 0, 3),
        conv(5, 33, 1, 130, 1, 1, 0, 1),
    ]
}

fn forward_conv_cases(ctx: &GpuContext, out: &mut Vec<Case>) {
    for (i, s) in conv_shapes().into_iter().enumerate() {
        let seed = 100 + 10 * i as u64;
        let relu = i % 2 == 0;
        out.push(Case::new(
            "conv2d",
            "tiled",
            conv_label(&s),
            1e-5,
            move |ctx| {
                let d = conv_data(&s, seed)?;
                let ks = Kernels::with_path(ctx, MatmulPath::Tiled);
                let (wb, bb, xb) = (
                    upload_f32(ctx, "w", &d.w)?,
                    upload_f32(ctx, "b", &d.b)?,
                    upload_f32(ctx, "x", &d.x)?,
                );
                let yb = storage_buffer(ctx, "y", d.out_len, "")?;
                let ds = [kernels::conv2d::dispatch(
                    ctx,
                    &ks.conv2d(),
                    &s,
                    relu,
                    &wb,
                    0,
                    s.out_c / s.groups,
                    &bb,
                    &xb,
                    &yb,
                )?];
                let (got, ms) = run_read(ctx, &ds, &yb, d.out_len)?;
                let want = kernels::conv2d::reference(&s, &d.w, &d.b, &d.x, relu);
                Ok(Compared { got, want, ms })
            },
        ));
        // im2col + gemm.wgsl, with the patch matrix whole and in chunks of 7 rows.
        for chunked in [false, true] {
            let path = if chunked { "gemm (chunked)" } else { "gemm" };
            out.push(Case::new(
                "conv2d",
                path,
                conv_label(&s),
                1e-5,
                move |ctx| {
                    let d = conv_data(&s, seed)?;
                    let ks = Kernels::with_path(ctx, MatmulPath::Gemm);
                    let (wb, bb, xb) = (
                        upload_f32(ctx, "w", &kernels::conv2d::weight_for_gemm(&s, &d.w))?,
                        upload_f32(ctx, "b", &d.b)?,
                        upload_f32(ctx, "x", &d.x)?,
                    );
                    let yb = storage_buffer(ctx, "y", d.out_len, "")?;
                    let words = if chunked {
                        7 * s.kp()
                    } else {
                        s.im2col_words(Precision::F32)?
                    };
                    // Garbage in the scratch: im2col must zero the K tail itself.
                    let sb = upload_f32(ctx, "scratch", &random(words, seed + 3, 9.0))?;
                    let ds = kernels::conv2d::dispatch_gemm(
                        ctx,
                        &ks,
                        Precision::F32,
                        &s,
                        relu,
                        &wb,
                        &bb,
                        &xb,
                        &yb,
                        &sb,
                    )?;
                    let (got, ms) = run_read(ctx, &ds, &yb, d.out_len)?;
                    let want = kernels::conv2d::reference(&s, &d.w, &d.b, &d.x, relu);
                    Ok(Compared { got, want, ms })
                },
            ));
        }
        for &tile in TILES.iter().filter(|t| t.fits(&ctx.limits)) {
            let path = format!("blocked-{}", tile.name());
            out.push(Case::new(
                "conv2d",
                path,
                conv_label(&s),
                1e-5,
                move |ctx| {
                    let d = conv_data(&s, seed)?;
                    let ks = Kernels::with_path(ctx, MatmulPath::Blocked(Default::default()));
                    let (wb, bb, xb) = (
                        upload_f32(ctx, "w", &kernels::conv2d::weight_for_gemm(&s, &d.w))?,
                        upload_f32(ctx, "b", &d.b)?,
                        upload_f32(ctx, "x", &d.x)?,
                    );
                    // Garbage in the output: every element must be written.
                    let yb = upload_f32(ctx, "y", &random(d.out_len, seed + 4, 9.0))?;
                    let ds = [kernels::mm::dispatch_conv(
                        ctx, &ks, tile, &s, relu, &wb, &bb, &xb, &yb,
                    )?];
                    let (got, ms) = run_read(ctx, &ds, &yb, d.out_len)?;
                    let want = kernels::conv2d::reference(&s, &d.w, &d.b, &d.x, relu);
                    Ok(Compared { got, want, ms })
                },
            ));
        }
        // f16 storage: portable loads always, native ones where the adapter has SHADER_F16.
        let has_f16 = ctx.features.contains(wgpu::Features::SHADER_F16);
        for native in [false, true].into_iter().filter(|&n| !n || has_f16) {
            let path = if native { "f16 native" } else { "f16 portable" };
            out.push(Case::new(
                "conv2d",
                path,
                conv_label(&s),
                1e-5,
                move |ctx| {
                    let d = conv_data(&s, seed)?;
                    let mut ks = Kernels::with_path(ctx, MatmulPath::Gemm);
                    ks.native_f16 = native;
                    let (wb, bb, xb) = (
                        upload(ctx, "w", &kernels::conv2d::weight_for_gemm_f16(&s, &d.w))?,
                        upload_f32(ctx, "b", &d.b)?,
                        upload_f32(ctx, "x", &d.x)?,
                    );
                    let yb = storage_buffer(ctx, "y", d.out_len, "")?;
                    let words = s.im2col_words(Precision::F16)?;
                    let sb = upload_f32(ctx, "scratch", &random(words, seed + 3, 9.0))?;
                    let ds = kernels::conv2d::dispatch_gemm(
                        ctx,
                        &ks,
                        Precision::F16,
                        &s,
                        relu,
                        &wb,
                        &bb,
                        &xb,
                        &yb,
                        &sb,
                    )?;
                    let (got, ms) = run_read(ctx, &ds, &yb, d.out_len)?;
                    let (w16, x16) = (
                        kernels::gemm::round_f16(&d.w),
                        kernels::gemm::round_f16(&d.x),
                    );
                    let want = kernels::conv2d::reference(&s, &w16, &d.b, &x16, relu);
                    Ok(Compared { got, want, ms })
                },
            ));
        }
    }
}

/// `(batch, in, out, rows per weight part)`: odd sizes, batch 1, K a multiple of 4 and not,
/// weights split over several bindings.
const DENSE: &[(usize, usize, usize, usize)] = &[
    (1, 37, 11, usize::MAX),
    (3, 130, 67, usize::MAX),
    (5, 128, 67, usize::MAX),
    (3, 64, 40, 9),
    (9, 300, 70, usize::MAX),
];

fn dense_cases(ctx: &GpuContext, out: &mut Vec<Case>) {
    for (i, &(batch, in_f, out_f, rows)) in DENSE.iter().enumerate() {
        let seed = 300 + 10 * i as u64;
        let relu = i % 2 == 1;
        let parts = if rows == usize::MAX {
            String::new()
        } else {
            format!(" in parts of {rows} rows")
        };
        let shape = format!("b{batch} {in_f} -> {out_f}{parts}");
        let data = move || {
            (
                random(out_f * in_f, seed, 0.3),
                random(out_f, seed + 1, 0.3),
                random(batch * in_f, seed + 2, 1.0),
            )
        };
        for path in [MatmulPath::Tiled, MatmulPath::Gemm] {
            out.push(Case::new(
                "dense",
                path.name(),
                shape.clone(),
                1e-5,
                move |ctx| {
                    let (w, b, x) = data();
                    let ks = Kernels::with_path(ctx, path);
                    let split =
                        SplitWeight::upload_with_rows_per_part(ctx, "w", &w, out_f, in_f, rows)?;
                    let (bb, xb) = (upload_f32(ctx, "b", &b)?, upload_f32(ctx, "x", &x)?);
                    let yb = storage_buffer(ctx, "y", batch * out_f, "")?;
                    let ds =
                        kernels::dense::dispatch(ctx, &ks, batch, &split, &bb, relu, &xb, &yb)?;
                    let (got, ms) = run_read(ctx, &ds, &yb, batch * out_f)?;
                    let want = kernels::dense::reference(&w, &b, &x, batch, relu);
                    Ok(Compared { got, want, ms })
                },
            ));
        }
        if in_f % 4 != 0 {
            continue; // mm.wgsl's dense kernels read whole vec4 rows
        }
        let mut kinds = vec![DenseKind::Gemv];
        for &tile in TILES.iter().filter(|t| t.fits(&ctx.limits)) {
            kinds.push(DenseKind::Tiles { tile, split: 1 });
        }
        if let Some(&tile) = TILES.iter().find(|t| t.fits(&ctx.limits)) {
            kinds.push(DenseKind::Tiles { tile, split: 3 });
        }
        for kind in kinds {
            let path = format!("blocked-{}", kind.name());
            out.push(Case::new("dense", path, shape.clone(), 1e-5, move |ctx| {
                let (w, b, x) = data();
                let ks = Kernels::with_path(ctx, MatmulPath::Blocked(Default::default()));
                let split =
                    SplitWeight::upload_with_rows_per_part(ctx, "w", &w, out_f, in_f, rows)?;
                let (bb, xb) = (upload_f32(ctx, "b", &b)?, upload_f32(ctx, "x", &x)?);
                let yb = upload_f32(ctx, "y", &random(batch * out_f, seed + 3, 9.0))?;
                let mut ds = Vec::new();
                for (start, n, buf) in &split.parts {
                    ds.extend(kernels::mm::dispatch_dense(
                        ctx,
                        &ks,
                        kind,
                        batch,
                        in_f,
                        (*start, *n, out_f),
                        relu,
                        buf,
                        &bb,
                        &xb,
                        &yb,
                    )?);
                }
                let (got, ms) = run_read(ctx, &ds, &yb, batch * out_f)?;
                let want = kernels::dense::reference(&w, &b, &x, batch, relu);
                Ok(Compared { got, want, ms })
            }));
        }
    }
}

fn elementwise_cases(out: &mut Vec<Case>) {
    // Max pool: AlexNet's 3/2 windows, a clipped edge, 2/1, and ceil mode (the zoo's ONNX).
    for (planes, h, w, k, s, ceil) in [
        (5, 27, 20, 3, 2, false),
        (3, 7, 9, 2, 1, false),
        (4, 14, 12, 3, 2, true),
    ] {
        let path = if ceil { "ceil" } else { "floor" };
        let shape = format!("{planes}x{h}x{w} k{k} s{s}");
        out.push(Case::new("max_pool", path, shape, 0.0, move |ctx| {
            let ks = Kernels::new(ctx);
            let x = random(planes * h * w, 500, 1.0);
            let want = kernels::max_pool::reference_rounded(&x, planes, h, w, k, s, ceil);
            let xb = upload_f32(ctx, "x", &x)?;
            let yb = storage_buffer(ctx, "y", want.len(), "")?;
            let d = kernels::max_pool::dispatch_rounded(
                ctx,
                &ks.max_pool(),
                planes,
                h,
                w,
                k,
                s,
                ceil,
                &xb,
                &yb,
            )?;
            let (got, ms) = run_read(ctx, &[d], &yb, want.len())?;
            Ok(Compared { got, want, ms })
        }));
    }
    for (lrn, batch, channels, hw, scale) in [
        (Lrn::default(), 2, 13, 35, 30.0),
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
    ] {
        let shape = format!("b{batch} c{channels} hw{hw} size {}", lrn.size);
        out.push(Case::new("lrn", "-", shape, 1e-5, move |ctx| {
            let ks = Kernels::new(ctx);
            let x = random(batch * channels * hw, 510, scale);
            let xb = upload_f32(ctx, "x", &x)?;
            let yb = storage_buffer(ctx, "y", x.len(), "")?;
            let d = kernels::lrn::dispatch(ctx, &ks.lrn(), &lrn, batch, channels, hw, &xb, &yb)?;
            let (got, ms) = run_read(ctx, &[d], &yb, x.len())?;
            let want = kernels::lrn::reference(&lrn, &x, batch, channels, hw);
            Ok(Compared { got, want, ms })
        }));
    }
    for (planes, ih, iw) in [(3, 7, 7), (2, 13, 9), (1, 1, 1)] {
        let shape = format!("{planes}x{ih}x{iw} -> 6x6");
        out.push(Case::new(
            "adaptive_avg_pool",
            "-",
            shape,
            1e-5,
            move |ctx| {
                let ks = Kernels::new(ctx);
                let x = random(planes * ih * iw, 520, 1.0);
                let want = kernels::adaptive_avg_pool::reference(&x, planes, ih, iw, 6, 6);
                let xb = upload_f32(ctx, "x", &x)?;
                let yb = storage_buffer(ctx, "y", want.len(), "")?;
                let d = kernels::adaptive_avg_pool::dispatch(
                    ctx,
                    &ks.adaptive_avg_pool(),
                    planes,
                    ih,
                    iw,
                    6,
                    6,
                    &xb,
                    &yb,
                )?;
                let (got, ms) = run_read(ctx, &[d], &yb, want.len())?;
                Ok(Compared { got, want, ms })
            },
        ));
    }
    for (rows, cols) in [(3, 1000), (1, 7), (5, 65)] {
        out.push(Case::new(
            "softmax",
            "-",
            format!("{rows}x{cols}"),
            1e-5,
            move |ctx| {
                let ks = Kernels::new(ctx);
                let x = random(rows * cols, 530, 20.0);
                let xb = upload_f32(ctx, "x", &x)?;
                let yb = storage_buffer(ctx, "y", x.len(), "")?;
                let d = kernels::softmax::dispatch(ctx, &ks.softmax(), rows, cols, &xb, &yb)?;
                let (got, ms) = run_read(ctx, &[d], &yb, x.len())?;
                Ok(Compared {
                    got,
                    want: kernels::softmax::reference(&x, rows, cols),
                    ms,
                })
            },
        ));
    }
    out.push(Case::new("relu", "-", "1001", 0.0, |ctx| {
        let ks = Kernels::new(ctx);
        let x = random(1001, 540, 1.0);
        let xb = upload_f32(ctx, "x", &x)?;
        let d = kernels::relu::dispatch(ctx, &ks.relu(), x.len(), &xb)?;
        let (got, ms) = run_read(ctx, &[d], &xb, x.len())?;
        Ok(Compared {
            got,
            want: kernels::relu::reference(&x),
            ms,
        })
    }));
}

fn backward_cases(out: &mut Vec<Case>) {
    // Convolution gradients (dx, dw, db concatenated), direct loops and as GEMMs (whole, and
    // with the scratch capped to a few rows so the work is chunked).
    for (i, s) in [
        conv(2, 3, 19, 8, 11, 4, 2, 1),
        conv(2, 12, 9, 18, 3, 1, 1, 2),
        conv(3, 5, 7, 6, 3, 2, 1, 1),
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
                    let tk = TrainKernels::new(ctx);
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
                let tk = TrainKernels::new(ctx);
                let oh = kernels::max_pool::out_size_rounded(h, k, s, ceil)?;
                let ow = kernels::max_pool::out_size_rounded(w, k, s, ceil)?;
                // Distinct values: no ties, so the reference's argmax is the only answer.
                let mut x: Vec<f32> = (0..planes * h * w).map(|i| i as f32 * 0.01).collect();
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(700);
                for i in (1..x.len()).rev() {
                    x.swap(i, rng.random_range(0..=i));
                }
                let dy = random(planes * oh * ow, 701, 1.0);
                let want = pool_backward::max_pool_reference(&x, &dy, planes, h, w, k, s, ceil);
                let (xb, dyb) = (upload_f32(ctx, "x", &x)?, upload_f32(ctx, "dy", &dy)?);
                let dx = storage_buffer(ctx, "dx", x.len(), "")?;
                let d =
                    pool_backward::max_pool(ctx, &tk, planes, h, w, k, s, ceil, &xb, &dyb, &dx)?;
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
            let tk = TrainKernels::new(ctx);
            let (planes, ih, iw, oh, ow) = (3, 7, 4, 2, 3);
            let dy = random(planes * oh * ow, 710, 1.0);
            let want = pool_backward::adaptive_avg_pool_reference(&dy, planes, ih, iw, oh, ow);
            let dyb = upload_f32(ctx, "dy", &dy)?;
            let dx = storage_buffer(ctx, "dx", want.len(), "")?;
            let d = pool_backward::adaptive_avg_pool(ctx, &tk, planes, ih, iw, oh, ow, &dyb, &dx)?;
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
            let tk = TrainKernels::new(ctx);
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
fn training_cases(out: &mut Vec<Case>) {
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

/// Reduced-width networks of the three presets, batch 2, end to end on every matmul path.
fn network_cases(out: &mut Vec<Case>) {
    let widths = Widths {
        conv: [8, 12, 16, 12, 8],
        fc6: 24,
        fc7: 16,
        classes: 7,
    };
    let paths = [
        MatmulPath::Tiled,
        MatmulPath::Gemm,
        MatmulPath::Blocked(Default::default()),
    ];
    for arch in [Arch::Torchvision, Arch::Caffe, Arch::Keras] {
        for path in paths {
            let shape = format!("{arch} reduced width, b2");
            out.push(Case::new("network", path.name(), shape, 1e-4, move |ctx| {
                let weights = Weights::random(arch, widths, 900)?;
                let pre = crate::data::Preprocess::for_arch(arch);
                let (h, w) = (pre.crop, pre.crop);
                let x = random(2 * 3 * h * w, 901, 1.0);
                let mut net = Network::with_path(ctx, &weights, Precision::F32, path)?;
                let t = Instant::now();
                let got = net.forward(&x, 2, h, w, false)?.logits;
                let ms = t.elapsed().as_secs_f64() * 1e3;
                let (want, _) = crate::model::reference::forward_cpu(&weights, &x, 2, h, w)?;
                Ok(Compared { got, want, ms })
            }));
        }
    }
}

/// `lpips.wgsl` (unit normalisation over channels, squared difference, lin weights, spatial
/// mean) on three feature maps of 37 channels x 150 positions, three pairs: the maps and the
/// means (concatenated) against the f64 reference.
fn lpips_cases(out: &mut Vec<Case>) {
    out.push(Case::new(
        "lpips",
        "-",
        "3 pairs, 37 ch x 150",
        1e-5,
        |ctx| {
            let (channels, hw, pairs) = (37usize, 150usize, [(0u32, 1u32), (1, 2), (2, 0)]);
            let feats: Vec<f32> = random(3 * channels * hw, 1000, 1.0)
                .into_iter()
                .map(|v| v.max(0.0))
                .collect();
            let lin: Vec<f32> = random(channels, 1001, 1.0)
                .iter()
                .map(|v| v.abs())
                .collect();
            let idx: Vec<u32> = pairs.iter().flat_map(|&(a, b)| [a, b]).collect();
            let (fb, lb) = (
                upload_f32(ctx, "feats", &feats)?,
                upload_f32(ctx, "lin", &lin)?,
            );
            let ib = upload(ctx, "pairs", &idx)?;
            let maps = storage_buffer(ctx, "maps", pairs.len() * hw, "")?;
            let terms = storage_buffer(ctx, "terms", pairs.len(), "")?;
            let k = ctx.kernel(kernels::shader("lpips.wgsl"), "main");
            let d = crate::lpips::kernel::dispatch(
                ctx,
                &k,
                pairs.len(),
                channels,
                hw,
                0,
                1,
                [&fb, &ib, &lb, &maps, &terms],
            )?;
            let t = Instant::now();
            kernels::run(ctx, &[d])?;
            let mut got = read_back_f32(ctx, &maps, pairs.len() * hw)?;
            got.extend(read_back_f32(ctx, &terms, pairs.len())?);
            let ms = t.elapsed().as_secs_f64() * 1e3;
            let image =
                |i: u32| &feats[i as usize * channels * hw..(i as usize + 1) * channels * hw];
            let (mut want, mut means) = (Vec::new(), Vec::new());
            for &(a, b) in &pairs {
                let (map, mean) = crate::lpips::kernel::reference(image(a), image(b), &lin, hw);
                want.extend(map.iter().map(|&v| v as f32));
                means.push(mean as f32);
            }
            want.extend(means);
            Ok(Compared { got, want, ms })
        },
    ));
}

/// Every case, for the device's limits and features.
pub fn cases(ctx: &GpuContext) -> Vec<Case> {
    let mut out = Vec::new();
    forward_conv_cases(ctx, &mut out);
    dense_cases(ctx, &mut out);
    elementwise_cases(&mut out);
    backward_cases(&mut out);
    training_cases(&mut out);
    lpips_cases(&mut out);
    network_cases(&mut out);
    out
}

/// Runs every case on `ctx`, calling `progress(done, total, &check)` after each.
pub fn run(ctx: &GpuContext, progress: &mut dyn FnMut(usize, usize, &Check)) -> Vec<Check> {
    let cases = cases(ctx);
    let total = cases.len();
    cases
        .iter()
        .enumerate()
        .map(|(i, case)| {
            let check = case.run(ctx);
            progress(i + 1, total, &check);
            check
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The selftest's own net: a wrong result, an error and a panic each fail their check.
    #[test]
    fn wrong_results_errors_and_panics_fail() {
        let Ok(ctx) = GpuContext::new(&Default::default()) else {
            eprintln!("no adapter: skipped");
            return;
        };
        let wrong = Case::new("k", "p", "s", 1e-5, |_| {
            Ok(Compared {
                got: vec![1.0, 2.0],
                want: vec![1.0, 2.1],
                ms: 0.0,
            })
        });
        let c = wrong.run(&ctx);
        assert!(!c.ok && (c.max_rel_err - 0.1 / 2.1).abs() < 1e-6, "{c:?}");
        let nan = Case::new("k", "p", "s", 1e-5, |_| {
            Ok(Compared {
                got: vec![f32::NAN],
                want: vec![1.0],
                ms: 0.0,
            })
        });
        assert!(!nan.run(&ctx).ok);
        let err = Case::new("k", "p", "s", 1e-5, |_| {
            Err(Error::Invalid("refused".into()))
        });
        let c = err.run(&ctx);
        assert!(!c.ok && c.error.as_deref() == Some("refused"), "{c:?}");
        let panics = Case::new("k", "p", "s", 1e-5, |_| panic!("boom"));
        let c = panics.run(&ctx);
        assert!(
            !c.ok && c.error.as_deref().is_some_and(|e| e.contains("boom")),
            "{c:?}"
        );
        let right = Case::new("k", "p", "s", 1e-5, |_| {
            Ok(Compared {
                got: vec![1.0],
                want: vec![1.0],
                ms: 0.0,
            })
        });
        assert!(right.run(&ctx).ok);
    }
}
