//! `alexnet selftest`: does this program compute correctly on this adapter? Every kernel and
//! every path the program can choose, on small and awkward shapes, against its plain CPU
//! reference (f64 accumulation), as llama.cpp's `test-backend-ops` does for its backends.
//!
//! What is covered: convolutions by every route (the textbook tiles, `im2col` + `gemm.wgsl`
//! whole and through a chunked scratch, every `mm.wgsl` tile the device's limits allow, f16
//! storage with portable and, where offered, native loads); dense layers on each path (tiles,
//! gemv, split-K, weights split over several bindings); max pool (also ceil mode), LRN,
//! adaptive average pool, softmax, ReLU, the normalisation of 8-bit input pixels; the
//! backward kernels (convolution direct and as GEMMs, pools, LRN) and a training protocol per
//! optimizer (SGD with momentum and Adam, through the dense, ReLU, dropout and cross-entropy
//! backward kernels) against the f64 CPU protocol; and reduced-width networks of the three
//! presets end to end on every matmul path; and the LPIPS kernel.
//!
//! Tolerances (max |gpu - cpu| / max |cpu|): 0 for the pixel normalisation (a table look-up,
//! no arithmetic); 1e-5 for f32 kernels (f32 sums of at most a few
//! thousand terms in another order: ~sqrt(K) * 6e-8, while an indexing bug gives O(1)); 1e-6
//! for the pools' backward (sums of at most a few values); 1e-4 for LRN backward (a power with
//! a fractional exponent); 1e-5 for f16 storage against the reference on f16-rounded inputs
//! (products of halves are exact in f32); 1e-4 for whole networks (eight layers of f32
//! rounding, as the fidelity tests against onnxruntime allow); for the training protocols the
//! larger of 1e-5 and twice the f64 protocol's own spread under f32-sized nudges of its inputs
//! (Adam's updates are ill conditioned: see `training::SPREADS`).

mod backward;
mod forward;
mod gemv_f16;
mod network;
mod training;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use rand::{Rng, SeedableRng};

#[cfg(test)]
use crate::error::Error;
use crate::error::Result;
use crate::gpu::{read_back_f32, GpuContext};
use crate::kernels::{self, conv2d::Conv2dShape};

/// One comparison of the selftest.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Check {
    /// The kernel checked.
    pub kernel: String,
    /// The path or variant it ran by.
    pub path: String,
    /// The shape, in words.
    pub shape: String,
    /// max |gpu - cpu| / max |cpu| (`NaN` when the check failed to run).
    pub max_rel_err: f64,
    /// The tolerance `max_rel_err` must stay under.
    pub tol: f64,
    /// Wall time of the GPU work and read-back (the CPU reference not included).
    pub ms: f64,
    /// Whether it passed.
    pub ok: bool,
    /// Why the check could not run (a refused dispatch, a validation error, a panic).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What one case returns: the GPU's values, the reference's, and the GPU time.
pub(crate) struct Compared {
    got: Vec<f32>,
    want: Vec<f32>,
    ms: f64,
    /// A tolerance the case computed from its own data, replacing the case's fixed one (the
    /// Adam protocol's, which depends on how well conditioned its updates are).
    tol: Option<f64>,
}

type Body = Box<dyn Fn(&GpuContext) -> Result<Compared>>;

/// A named case: its labels, tolerance and body.
pub struct Case {
    /// The kernel checked.
    pub kernel: String,
    /// The path or variant it runs by.
    pub path: String,
    /// The shape, in words.
    pub shape: String,
    /// The tolerance.
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
        let (max_rel_err, ms, tol, error) = match outcome {
            Ok(Ok(c)) => {
                let err = rel_err(&c.got, &c.want);
                (err, c.ms, c.tol.unwrap_or(self.tol), None)
            }
            Ok(Err(e)) => (f64::NAN, 0.0, self.tol, Some(e.to_string())),
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                (f64::NAN, 0.0, self.tol, Some(format!("panicked: {msg}")))
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
            ok: error.is_none() && max_rel_err <= tol,
            max_rel_err,
            tol,
            ms,
            error,
        }
    }
}

/// max |a - b| / max |b|; infinite if `a` has a non-finite value or the lengths differ.
pub(crate) fn rel_err(got: &[f32], want: &[f32]) -> f64 {
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

pub(crate) fn random(len: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-scale..scale)).collect()
}

/// Runs `ds`, then reads `len` floats of `out`, timing both.
pub(crate) fn run_read(
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

pub(crate) fn conv_label(s: &Conv2dShape) -> String {
    format!(
        "b{} {}x{}x{} -> {} k{} s{} p{} g{}",
        s.batch, s.in_c, s.in_h, s.in_w, s.out_c, s.kernel, s.stride, s.pad, s.groups
    )
}

/// Random input, weights and bias for a convolution, and its reference output.
pub(crate) struct ConvData {
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    out_len: usize,
}

pub(crate) fn conv_data(s: &Conv2dShape, seed: u64) -> Result<ConvData> {
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
pub(crate) fn conv_shapes() -> Vec<Conv2dShape> {
    vec![
        Conv2dShape::square(2, 3, 35, 10, 11, 4, 2, 1),
        Conv2dShape::square(3, 7, 13, 70, 5, 1, 2, 1),
        Conv2dShape::square(2, 12, 9, 18, 3, 1, 1, 2),
        Conv2dShape::square(1, 9, 6, 6, 3, 2, 0, 3),
        Conv2dShape::square(5, 33, 1, 130, 1, 1, 0, 1),
    ]
}

/// Every case, for the device's limits and features.
pub fn cases(ctx: &GpuContext) -> Vec<Case> {
    let mut out = Vec::new();
    forward::conv_cases(ctx, &mut out);
    forward::dense_cases(ctx, &mut out);
    forward::elementwise_cases(&mut out);
    forward::normalize_u8_cases(&mut out);
    backward::backward_cases(&mut out);
    training::training_cases(&mut out);
    forward::lpips_cases(&mut out);
    network::network_cases(&mut out);
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
                tol: None,
            })
        });
        let c = wrong.run(&ctx);
        assert!(!c.ok && (c.max_rel_err - 0.1 / 2.1).abs() < 1e-6, "{c:?}");
        let nan = Case::new("k", "p", "s", 1e-5, |_| {
            Ok(Compared {
                got: vec![f32::NAN],
                want: vec![1.0],
                ms: 0.0,
                tol: None,
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
                tol: None,
            })
        });
        assert!(right.run(&ctx).ok);
    }
}
