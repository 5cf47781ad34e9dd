//! `bench --gemm`: the practical ceiling for the per-layer GFLOP/s. Plain GEMMs `C = A B^T`
//! (M x N x K) on this adapter's matmul kernels: one square product (4096^3 on GPUs, 512^3 on
//! CPU adapters) and each convolution's GEMM at each batch size (M = output channels per
//! group, N = batch x output pixels, K = input channels per group x kernel area, rounded up to
//! a multiple of 8 as the f16 patch matrix is). Random operands; timed with GPU timestamps around
//! one compute pass where the adapter has them, else with the host clock around a submission
//! and its wait.

use std::time::Instant;

use alexnet_wgpu::gpu::{storage_buffer, upload_f32, GpuContext};
use alexnet_wgpu::kernels::{self, Dispatch, Kernels, Precision};
use alexnet_wgpu::model::tune::timing_data;
use alexnet_wgpu::model::{Layer, NetSpec};

#[derive(serde::Serialize)]
pub struct GemmResult {
    /// `square` or `LAYER bBATCH`.
    pub shape: String,
    /// The kernels that ran (dispatch labels).
    pub path: String,
    pub precision: String,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub median_ms: f64,
    pub gflops_per_s: f64,
    /// `gpu timestamps` or `wall clock`.
    pub timing: &'static str,
}

/// The products `bench --gemm` times: `(name, m, n, k)`.
pub fn shapes(ctx: &GpuContext, spec: &NetSpec, batches: &[usize]) -> Vec<(String, [usize; 3])> {
    let square = if ctx.info.device_type == wgpu::DeviceType::Cpu {
        512
    } else {
        4096
    };
    let mut out = vec![("square".to_string(), [square; 3])];
    let Ok(infos) = spec.infer() else {
        return out;
    };
    for &batch in batches {
        for (layer, info) in spec.layers.iter().zip(&infos) {
            let (Layer::Conv { name, .. }, Some(s)) =
                (layer, layer.conv_shape(batch, info.input.as_map()))
            else {
                continue;
            };
            let Ok((oh, ow)) = s.out_hw() else { continue };
            let k = (s.in_c / s.groups * s.kernel * s.kernel).next_multiple_of(8);
            let dims = [s.out_c / s.groups, batch * oh * ow, k];
            out.push((format!("{name} b{batch}"), dims));
        }
    }
    out
}

/// Times every product of [`shapes`] in f32 (and with f16 in `precisions`, `gemm_f16.wgsl` on
/// operands packed to f16): a warm-up, then the median of `iters`. A product whose operand
/// passes the binding limit is skipped with a note.
pub fn gemm_ceiling(
    ctx: &GpuContext,
    spec: &NetSpec,
    batches: &[usize],
    iters: usize,
    precisions: &[Precision],
) -> anyhow::Result<Vec<GemmResult>> {
    let kernels = Kernels::new(ctx);
    let timestamps = kernels::timing::has_timestamps(ctx);
    let mut out = Vec::new();
    for (shape, dims) in shapes(ctx, spec, batches) {
        let [m, n, k] = dims;
        if ((n * k) as u64) * 4 > ctx.max_binding() {
            eprintln!("note: GEMM {shape} ({m} x {n} x {k}) skipped: B passes the binding limit");
            continue;
        }
        // One product that cannot run here (a grid or buffer past a limit) is noted, not fatal:
        // the ceiling is a side table of a bench run.
        match product(ctx, &kernels, &shape, dims, iters, precisions, timestamps) {
            Ok(rows) => out.extend(rows),
            Err(e) => eprintln!("note: GEMM {shape} ({m} x {n} x {k}) skipped: {e:#}"),
        }
    }
    Ok(out)
}

/// Times one product in each of `precisions`.
fn product(
    ctx: &GpuContext,
    kernels: &Kernels,
    shape: &str,
    [m, n, k]: [usize; 3],
    iters: usize,
    precisions: &[Precision],
    timestamps: bool,
) -> anyhow::Result<Vec<GemmResult>> {
    let mut out = Vec::new();
    let (a_host, b_host) = (timing_data(m * k, 7), timing_data(n * k, 8));
    let a = upload_f32(ctx, "A", &a_host)?;
    let b = upload_f32(ctx, "B", &b_host)?;
    let bias = upload_f32(ctx, "bias", &timing_data(m.max(n), 9))?;
    let c = storage_buffer(ctx, "C", m * n, "")?;
    let out_map = kernels::gemm::GemmOut {
        n_off: 0,
        hw: n as u32,
        c_bstride: 0,
        c_mstride: n,
        bias_on_n: false,
    };
    let mut runs = Vec::new();
    if precisions.contains(&Precision::F32) {
        runs.push((
            Precision::F32,
            f32_product(ctx, kernels, [m, n, k], &a, &b, &bias, &c)?,
        ));
    }
    if precisions.contains(&Precision::F16) {
        let pack = |data: &[f32], rows: usize| {
            alexnet_wgpu::gpu::upload(
                ctx,
                "f16 operand",
                &kernels::gemm::pack_f16_rows(data, rows, k),
            )
        };
        let (a16, b16) = (pack(&a_host, m)?, pack(&b_host, n)?);
        let d = kernels::gemm::dispatch(
            ctx,
            kernels,
            Precision::F16,
            "gemm_f16",
            &kernels::gemm::GemmDims::single(m, n, k),
            out_map,
            false,
            &a16,
            &b16,
            &bias,
            &c,
        )?;
        runs.push((Precision::F16, vec![d]));
    }
    // Tensor cores where the device has them: the GEMM of `coop.wgsl` alone, on the f16 patch
    // matrix its im2col made once beforehand (B as a batch of n 1x1 "images" of k channels).
    let mut coop_prep = Vec::new();
    if let (Some(coop), true) = (kernels.coop, precisions.contains(&Precision::F16)) {
        let dense = kernels::conv2d::Conv2dShape::dense(n, k, m);
        let words = kernels::coop::scratch_words(&dense)?;
        if (words as u64) * 4 <= ctx.max_binding() {
            let w = alexnet_wgpu::gpu::upload(
                ctx,
                "A (coop f16)",
                &kernels::coop::weight_for_coop(&dense, &a_host),
            )?;
            let scratch = storage_buffer(ctx, "patches (f16)", words, "")?;
            // Every block size, on the one patch matrix (the im2col of the first).
            for tile in kernels::coop::COOP_TILES {
                let mut ds = kernels::coop::dispatch(
                    ctx, kernels, coop, tile, "gemm", &dense, false, &w, &bias, &b, &c, &scratch,
                )?;
                if ds.len() == 2 {
                    let gemm = ds.pop().expect("two dispatches");
                    runs.push((Precision::F16, vec![gemm]));
                    // (The bind groups keep the weight and the scratch alive.)
                    if coop_prep.is_empty() {
                        coop_prep = ds;
                    }
                }
            }
        } else {
            eprintln!(
                "note: coop GEMM {shape} skipped: its f16 patch matrix passes the binding limit"
            );
        }
    }
    if !coop_prep.is_empty() {
        kernels::run(ctx, &coop_prep)?;
    }
    for (precision, ds) in runs {
        let median = time(ctx, &ds, iters, timestamps)?;
        out.push(GemmResult {
            shape: shape.to_string(),
            path: ds
                .iter()
                .map(|d| d.label.clone())
                .collect::<Vec<_>>()
                .join(" + "),
            precision: precision.to_string(),
            m,
            n,
            k,
            median_ms: median,
            gflops_per_s: 2.0 * (m * n * k) as f64 / median / 1e6,
            timing: if timestamps {
                "gpu timestamps"
            } else {
                "wall clock"
            },
        });
    }
    Ok(out)
}

/// Median milliseconds of `iters` runs of `ds` after one warm-up.
fn time(ctx: &GpuContext, ds: &[Dispatch], iters: usize, timestamps: bool) -> anyhow::Result<f64> {
    kernels::run(ctx, ds)?;
    let all: Vec<&Dispatch> = ds.iter().collect();
    let mut times = Vec::with_capacity(iters.max(1));
    for _ in 0..iters.max(1) {
        times.push(if timestamps {
            kernels::timing::pass_ms(ctx, &all)?
        } else {
            let t = Instant::now();
            kernels::run(ctx, ds)?;
            t.elapsed().as_secs_f64() * 1e3
        });
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// The adapter's f32 matmul kernel on `C = A B^T`: the kernel a dense layer of this shape runs
/// (its route: the path, the tuner, the heuristics), `C[n][m] = sum_k A[m][k] B[n][k]`, i.e. the
/// same product transposed.
fn f32_product(
    ctx: &GpuContext,
    kernels: &Kernels,
    [m, n, k]: [usize; 3],
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    bias: &wgpu::Buffer,
    c: &wgpu::Buffer,
) -> anyhow::Result<Vec<Dispatch>> {
    Ok(kernels.dense_route(n, k, m)?.dispatch_part(
        ctx,
        kernels,
        n,
        k,
        (0, m, m),
        false,
        a,
        bias,
        b,
        c,
    )?)
}
