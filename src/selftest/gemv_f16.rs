//! The `gemv_f16.wgsl` cases (f16 dense layers at batch 1-8 on GPUs), from both stored f16
//! layouts, with the tolerance a device that flushes f32 denormals needs.

use super::{random, run_read, Case, Compared};
use crate::gpu::{upload, upload_f32};
use crate::kernels::{self, Kernels, MatmulPath, Precision};

/// `gemv_f16.wgsl` (f16 dense layers at small batches on GPUs) from both f16 layouts: the
/// `gemm_f16` rows (interleaved halves, in the case's weight parts) and the `coop.wgsl` rows
/// (sequential halves). Against the f64 reference on the f16-rounded weights (the inputs are
/// read in f32): f32 accumulation, so 1e-5.
pub(super) fn cases(
    out: &mut Vec<Case>,
    shape: &str,
    (batch, in_f, out_f, rows): (usize, usize, usize, usize),
    seed: u64,
    relu: bool,
) {
    use kernels::gemv_f16::HalfOrder;
    for order in [HalfOrder::Interleaved, HalfOrder::Sequential] {
        let path = match order {
            HalfOrder::Interleaved => "blocked-gemv_f16 (gemm_f16 rows)",
            HalfOrder::Sequential => "blocked-gemv_f16 (coop rows)",
        };
        out.push(Case::new(
            "dense",
            path,
            shape.to_string(),
            1e-5,
            move |ctx| {
                let w = random(out_f * in_f, seed, 0.3);
                let b = random(out_f, seed + 1, 0.3);
                let x = random(batch * in_f, seed + 2, 1.0);
                let ks = Kernels::with_path(ctx, MatmulPath::Blocked(Default::default()));
                let (bb, xb) = (upload_f32(ctx, "b", &b)?, upload_f32(ctx, "x", &x)?);
                let yb = upload_f32(ctx, "y", &random(batch * out_f, seed + 3, 9.0))?;
                let mut ds = Vec::new();
                match order {
                    HalfOrder::Interleaved => {
                        let split = kernels::dense::upload_f16_with_rows_per_part(
                            ctx, "w", &w, out_f, in_f, rows,
                        )?;
                        let words = Precision::F16.words(Precision::F16.pad_k(in_f));
                        for (start, n, buf) in &split.parts {
                            ds.push(kernels::gemv_f16::dispatch(
                                ctx,
                                &ks,
                                batch,
                                in_f,
                                (*start, *n, out_f),
                                (words, order),
                                relu,
                                buf,
                                &bb,
                                &xb,
                                &yb,
                            )?);
                        }
                    }
                    HalfOrder::Sequential => {
                        let dense = kernels::conv2d::Conv2dShape::dense(1, in_f, out_f);
                        let wb = upload(ctx, "w", &kernels::coop::weight_for_coop(&dense, &w))?;
                        ds.push(kernels::gemv_f16::dispatch(
                            ctx,
                            &ks,
                            batch,
                            in_f,
                            (0, out_f, out_f),
                            (kernels::coop::kp(&dense) / 2, order),
                            relu,
                            &wb,
                            &bb,
                            &xb,
                            &yb,
                        )?);
                    }
                }
                let (got, ms) = run_read(ctx, &ds, &yb, batch * out_f)?;
                let w16 = kernels::gemm::round_f16(&w);
                let want = kernels::dense::reference(&w16, &b, &x, batch, relu);
                Ok(Compared {
                    got,
                    tol: Some(flush_allowance(&w16, &x, &want, batch)),
                    want,
                    ms,
                })
            },
        ));
    }
}

/// The tolerance of a kernel that converts f16 weights with `gemm_f16.wgsl`'s bit operations:
/// 1e-5, plus what a device that flushes f32 denormals may lose. A subnormal half (|w| <
/// 2^-14) becomes a denormal f32 before its scaling multiply, which SwiftShader flushes to
/// zero: the bound is the largest sum of |x| |w| over an output's subnormal weights, relative
/// to the largest |reference| (measured on SwiftShader: 1.7e-5 for b3 130 -> 67 with about two
/// subnormal weights among 8710; a layout error is O(1)).
fn flush_allowance(w16: &[f32], x: &[f32], want: &[f32], batch: usize) -> f64 {
    let k = (x.len() / batch.max(1)).max(1);
    let max_ref = want.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
    let mut worst = 0f64;
    for row in w16.chunks(k) {
        for xr in x.chunks(k) {
            let lost: f64 = row
                .iter()
                .zip(xr)
                .filter(|(w, _)| **w != 0.0 && w.abs() < 6.103_515_6e-5)
                .map(|(w, x)| (w.abs() * x.abs()) as f64)
                .sum();
            worst = worst.max(lost);
        }
    }
    1e-5 + worst / max_ref.max(f64::MIN_POSITIVE)
}
