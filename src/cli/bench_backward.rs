//! `alexnet bench --backward`: time of the convolution backward passes, grad input and grad
//! weight + bias, at torchvision AlexNet's five convolution shapes, on the path the runtime
//! options choose (`--conv-backward gemm`, the default: `conv_gemm_backward` plus the bias
//! reduction; `direct`: the loops of `conv_backward.wgsl`), then of its three dense layers on
//! the route the matmul path picks (`dense_backward`), for each `--batch` size. The
//! dispatches are the ones a training step records (`train::conv_stack`), on buffers of the
//! right sizes; their contents do not change the work, so they are left zeroed. GFLOP/s
//! counts each gradient as the forward convolution's 2 x MACs (what each one costs).

use std::time::Instant;

use alexnet_wgpu::gpu::{storage_buffer, GpuContext, SplitWeight};
use alexnet_wgpu::kernels::conv_gemm_backward::{self, ConvGemmScratch};
use alexnet_wgpu::kernels::{self, conv2d::Conv2dShape, Dispatch, Kernels};
use alexnet_wgpu::kernels::{conv_backward, dense_backward};
use alexnet_wgpu::options::ConvBackward;

use super::bench_format::Format;

/// torchvision AlexNet's convolutions at 224 x 224 (name, in_c, in_hw, out_c, kernel, stride,
/// pad): the shapes `--train-from conv1` trains.
const TORCHVISION_CONVS: [(&str, usize, usize, usize, usize, usize, usize); 5] = [
    ("conv1", 3, 224, 64, 11, 4, 2),
    ("conv2", 64, 27, 192, 5, 1, 2),
    ("conv3", 192, 13, 384, 3, 1, 1),
    ("conv4", 384, 13, 256, 3, 1, 1),
    ("conv5", 256, 13, 256, 3, 1, 1),
];

/// torchvision AlexNet's dense layers (name, inputs, outputs): what `--train-from fc6` trains
/// (fc8 with ImageNet's 1000 classes).
const TORCHVISION_DENSE: [(&str, usize, usize); 3] = [
    ("fc6", 9216, 4096),
    ("fc7", 4096, 4096),
    ("fc8", 4096, 1000),
];

#[derive(serde::Serialize)]
struct Row {
    layer: &'static str,
    batch: usize,
    grad_input_ms: f64,
    grad_input_gflops_per_s: f64,
    grad_weight_bias_ms: f64,
    grad_weight_bias_gflops_per_s: f64,
}

pub fn run(
    ctx: &GpuContext,
    batches: &[usize],
    iters: usize,
    warmup: usize,
    format: Format,
) -> anyhow::Result<()> {
    let path = ctx.options.conv_backward;
    let path_name = match path {
        ConvBackward::Gemm => "gemm",
        ConvBackward::Direct => "direct",
    };
    let timestamps = kernels::timing::has_timestamps(ctx);
    let timing = if timestamps {
        "gpu-timestamps"
    } else {
        "wall-clock"
    };
    let (tk, fk) = (Kernels::new(ctx), Kernels::new(ctx));
    // Median of `iters` runs after `warmup` untimed ones (lavapipe compiles at first use).
    let time = |ds: &[Dispatch]| -> anyhow::Result<f64> {
        for _ in 0..warmup {
            kernels::run(ctx, ds)?;
        }
        let mut ms = Vec::with_capacity(iters);
        for _ in 0..iters {
            ms.push(if timestamps {
                let all: Vec<&Dispatch> = ds.iter().collect();
                kernels::timing::gpu_ms(ctx, &all)?.iter().sum()
            } else {
                let t = Instant::now();
                kernels::run(ctx, ds)?;
                t.elapsed().as_secs_f64() * 1e3
            });
        }
        ms.sort_by(f64::total_cmp);
        Ok(ms[ms.len() / 2])
    };
    if matches!(format, Format::Table) {
        println!(
            "adapter: {}; conv backward path {path_name}; matmul path {}; {timing}, median of {iters}",
            ctx.adapter_label(),
            ctx.matmul_path().name()
        );
        println!(
            "{:<6} {:>5} {:>14} {:>8} {:>20} {:>8}",
            "layer", "batch", "grad input ms", "GFLOP/s", "grad weight+bias ms", "GFLOP/s"
        );
    }
    let mut rows = Vec::new();
    for &batch in batches {
        anyhow::ensure!(batch > 0, "batch sizes must be positive");
        for (layer, in_c, hw, out_c, kernel, stride, pad) in TORCHVISION_CONVS {
            let s = Conv2dShape::square(batch, in_c, hw, out_c, kernel, stride, pad, 1);
            let (oh, ow) = s.out_hw()?;
            let buf = |label: &str, n: usize| storage_buffer(ctx, label, n, "");
            let (x, w, dy) = (
                buf("x", batch * in_c * hw * hw)?,
                buf("w", s.weight_len())?,
                buf("dy", batch * out_c * oh * ow)?,
            );
            let (dx, dw, db) = (
                buf("dx", batch * in_c * hw * hw)?,
                buf("dw", s.weight_len())?,
                buf("db", out_c)?,
            );
            let (gi, gw) = match path {
                ConvBackward::Direct => (
                    vec![conv_backward::grad_input(ctx, &tk, &s, &w, &dy, &dx)?],
                    conv_backward::grad_weight_bias(ctx, &tk, &s, false, &x, &dy, &dw, &db)?,
                ),
                ConvBackward::Gemm => {
                    let scratch = ConvGemmScratch::new(ctx, &[s])?;
                    let gi = conv_gemm_backward::grad_input(
                        ctx,
                        &tk,
                        &fk,
                        &s,
                        (&w, s.k()),
                        &dy,
                        &dx,
                        &scratch,
                    )?;
                    let mut gw = conv_gemm_backward::grad_weight(
                        ctx,
                        &tk,
                        &fk,
                        &s,
                        &x,
                        &dy,
                        (&dw, s.k()),
                        &scratch,
                    )?;
                    gw.push(conv_backward::grad_bias(ctx, &tk, &s, &dy, &db)?);
                    (gi, gw)
                }
            };
            let (ti, tw) = (time(&gi)?, time(&gw)?);
            rows.push(Row::new(layer, batch, s.flops(), (ti, tw), format));
        }
        // The dense layers' backward on the route the matmul path picks
        // (`Kernels::dense_backward_route`): `dense_backward.wgsl` on CPU adapters, `mm.wgsl`
        // tiles on the `Blocked` path. The bias gradient is timed with the weight gradient.
        for (layer, inp, out) in TORCHVISION_DENSE {
            let buf = |label: &str, n: usize| storage_buffer(ctx, label, n, "");
            let w = SplitWeight::upload(ctx, "w", &vec![0.0; out * inp], out, inp)?;
            let (x, dy, dx, db) = (
                buf("x", batch * inp)?,
                buf("dy", batch * out)?,
                buf("dx", batch * inp)?,
                buf("db", out)?,
            );
            let dw = w
                .parts
                .iter()
                .map(|(_, r, _)| buf("dw", r * inp))
                .collect::<Result<Vec<_>, _>>()?;
            let gi = dense_backward::grad_input(ctx, &fk, batch, &w, &dy, &dx)?;
            let gw = dense_backward::grad_weight_bias(ctx, &fk, batch, &w, &x, &dy, &dw, &db)?;
            let (ti, tw) = (time(&gi)?, time(&gw)?);
            let flops = 2.0 * (batch * inp * out) as f64;
            rows.push(Row::new(layer, batch, flops, (ti, tw), format));
        }
    }
    if matches!(format, Format::Json) {
        let doc = serde_json::json!({
            "adapter": ctx.info.name,
            "backend": format!("{:?}", ctx.info.backend),
            "conv_backward": path_name,
            "matmul": ctx.matmul_path().name(),
            "timing": timing,
            "results": rows,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    }
    Ok(())
}

impl Row {
    /// The row of one layer timed at `(grad input ms, grad weight+bias ms)` for `flops` per
    /// pass, printed at once in the table format.
    fn new(
        layer: &'static str,
        batch: usize,
        flops: f64,
        (ti, tw): (f64, f64),
        format: Format,
    ) -> Row {
        let gflops = |ms: f64| flops / (ms / 1e3) / 1e9;
        let row = Row {
            layer,
            batch,
            grad_input_ms: ti,
            grad_input_gflops_per_s: gflops(ti),
            grad_weight_bias_ms: tw,
            grad_weight_bias_gflops_per_s: gflops(tw),
        };
        if matches!(format, Format::Table) {
            println!(
                "{:<6} {:>5} {:>14.2} {:>8.2} {:>20.2} {:>8.2}",
                row.layer,
                row.batch,
                row.grad_input_ms,
                row.grad_input_gflops_per_s,
                row.grad_weight_bias_ms,
                row.grad_weight_bias_gflops_per_s
            );
        }
        row
    }
}
