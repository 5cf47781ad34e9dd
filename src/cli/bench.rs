use std::process::ExitCode;
use std::time::Instant;

use alexnet_wgpu::gpu::{storage_buffer, upload_f32, GpuContext};
use alexnet_wgpu::kernels::{self, conv2d::Conv2dShape, Kernels, MatmulPath};
use alexnet_wgpu::model::{Arch, Network, StepTiming};
use alexnet_wgpu::weights::Weights;
use clap::{Args, ValueEnum};
use rand::{Rng, SeedableRng};

use super::GpuArgs;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Args)]
pub struct BenchArgs {
    /// Network preset (random weights unless --weights).
    #[arg(long, default_value = "torchvision")]
    arch: Arch,
    /// Weights to time (default: deterministic random weights of the full-size preset).
    #[arg(long, value_name = "FILE")]
    weights: Option<std::path::PathBuf>,
    /// Batch sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    batch: Vec<usize>,
    /// Timed forward passes per batch size (after the warm-up).
    #[arg(long, default_value_t = 5)]
    iters: usize,
    /// Untimed passes first (lavapipe compiles each pipeline at its first dispatch).
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Also time each layer (GPU timestamp queries when the adapter has them).
    #[arg(long)]
    per_layer: bool,
    /// Also time plain GEMMs (`C = A B^T`, M x N x K) with this adapter's matmul kernel: the
    /// practical ceiling for the per-layer GFLOP/s.
    #[arg(long)]
    gemm: bool,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    #[command(flatten)]
    gpu: GpuArgs,
}

#[derive(serde::Serialize)]
struct BatchResult {
    batch: usize,
    median_ms: f64,
    min_ms: f64,
    max_ms: f64,
    images_per_s: f64,
    gflops_per_s: f64,
    layers: Option<Vec<StepTiming>>,
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let weights = match &args.weights {
        Some(p) => Weights::load(p, Some(args.arch))?,
        None => Weights::random(args.arch, args.arch.default_widths(), 1)?,
    };
    let ctx = args.gpu.context()?;
    let gemm = if args.gemm {
        Some(gemm_ceiling(&ctx, args.iters.max(1))?)
    } else {
        None
    };
    let mut net = Network::new(&ctx, &weights)?;
    let spec = weights.spec();
    let [_, h, w] = spec.input;
    let gflop_per_image = spec.flops_per_image()? / 1e9;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let mut results = Vec::new();
    for &batch in &args.batch {
        anyhow::ensure!(batch > 0, "batch sizes must be positive");
        let input: Vec<f32> = (0..batch * 3 * h * w)
            .map(|_| rng.random_range(-2.0..2.0))
            .collect();
        for _ in 0..args.warmup {
            net.forward(&input, batch, h, w, false)?;
        }
        let mut times: Vec<f64> = (0..args.iters.max(1))
            .map(|_| {
                let t = Instant::now();
                net.forward(&input, batch, h, w, false)
                    .map(|_| t.elapsed().as_secs_f64() * 1e3)
            })
            .collect::<Result<_, _>>()?;
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let layers = if args.per_layer {
            net.time_steps(batch, h, w)?; // warm the per-pass path too
            Some(net.time_steps(batch, h, w)?)
        } else {
            None
        };
        results.push(BatchResult {
            batch,
            median_ms: median,
            min_ms: times[0],
            max_ms: times[times.len() - 1],
            images_per_s: batch as f64 / (median / 1e3),
            gflops_per_s: gflop_per_image * batch as f64 / (median / 1e3),
            layers,
        });
    }
    match args.format {
        Format::Json => {
            let doc = serde_json::json!({
                "adapter": ctx.info.name,
                "backend": format!("{:?}", ctx.info.backend),
                "driver": format!("{} {}", ctx.info.driver, ctx.info.driver_info),
                "arch": spec.arch,
                "gflop_per_image": gflop_per_image,
                "timing": if net.has_timestamps() { "gpu-timestamps" } else { "wall-clock" },
                "results": results,
                "gemm": gemm,
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Format::Table => {
            println!(
                "adapter: {} ({} {})",
                ctx.adapter_label(),
                ctx.info.driver,
                ctx.info.driver_info
            );
            println!(
                "network: {} AlexNet, {:.3} GFLOP per image",
                spec.arch, gflop_per_image
            );
            println!(
                "{:>6} {:>11} {:>11} {:>11} {:>10} {:>9}",
                "batch", "median ms", "min ms", "max ms", "images/s", "GFLOP/s"
            );
            for r in &results {
                println!(
                    "{:>6} {:>11.1} {:>11.1} {:>11.1} {:>10.2} {:>9.2}",
                    r.batch, r.median_ms, r.min_ms, r.max_ms, r.images_per_s, r.gflops_per_s
                );
            }
            if let Some(g) = &gemm {
                println!(
                    "\nplain GEMM C = A B^T ({} path, wall clock per dispatch):",
                    g[0].path
                );
                println!(
                    "  {:>6} {:>6} {:>6} {:>11} {:>9}",
                    "M", "N", "K", "median ms", "GFLOP/s"
                );
                for r in g {
                    println!(
                        "  {:>6} {:>6} {:>6} {:>11.2} {:>9.2}",
                        r.m, r.n, r.k, r.median_ms, r.gflops_per_s
                    );
                }
            }
            for r in results.iter().filter(|r| r.layers.is_some()) {
                let layers = r.layers.as_ref().expect("filtered");
                let total: f64 = layers.iter().map(|l| l.ms).sum();
                let how = if net.has_timestamps() {
                    "GPU timestamps"
                } else {
                    "wall clock per step (no timestamp queries)"
                };
                println!("\nper layer, batch {} ({how}):", r.batch);
                println!(
                    "  {:<44} {:>9} {:>7} {:>9}",
                    "step", "ms", "share", "GFLOP/s"
                );
                for l in layers {
                    let gf = if l.flops > 1e6 && l.ms > 0.0 {
                        format!("{:.2}", l.flops / 1e6 / l.ms)
                    } else {
                        String::new()
                    };
                    println!(
                        "  {:<44} {:>9.2} {:>6.1}% {:>9}",
                        l.label,
                        l.ms,
                        100.0 * l.ms / total,
                        gf
                    );
                    for (kernel, ms) in &l.kernels {
                        println!("    {:<42} {:>9.2}", kernel, ms);
                    }
                }
                println!("  {:<44} {:>9.2}", "total", total);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(serde::Serialize)]
struct GemmResult {
    path: String,
    m: usize,
    n: usize,
    k: usize,
    median_ms: f64,
    gflops_per_s: f64,
}

/// Times the adapter's matmul kernel on plain GEMMs: square, conv2 at batch 8, fc7 at 8 and 1.
fn gemm_ceiling(ctx: &GpuContext, iters: usize) -> anyhow::Result<Vec<GemmResult>> {
    let kernels = Kernels::new(ctx);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut out = Vec::new();
    for (m, n, k) in [
        (1024, 1024, 1024),
        (192, 5832, 1600),
        (8, 4096, 4096),
        (1, 4096, 4096),
    ] {
        let mut rand =
            |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-1.0..1.0)).collect() };
        let a = upload_f32(ctx, "A", &rand(m * k))?;
        let b = upload_f32(ctx, "B", &rand(n * k))?;
        let bias = upload_f32(ctx, "bias", &vec![0.0; m.max(n)])?;
        let c = storage_buffer(ctx, "C", m * n, "")?;
        let d = match kernels.path {
            MatmulPath::Gemm => kernels::gemm::dispatch(
                ctx,
                &kernels,
                "gemm",
                (m, n, k, 1),
                (0, 0, 0),
                kernels::gemm::GemmOut {
                    n_off: 0,
                    hw: n as u32,
                    c_bstride: 0,
                    c_mstride: n,
                    bias_on_n: false,
                },
                false,
                &a,
                &b,
                &bias,
                &c,
            )?,
            // conv2d.wgsl as a 1x1 convolution: A = weights [M][K], B^T = input [K][N].
            MatmulPath::Tiled => kernels::conv2d::dispatch(
                ctx,
                &kernels.conv2d,
                &Conv2dShape {
                    batch: 1,
                    in_c: k,
                    in_h: 1,
                    in_w: n,
                    out_c: m,
                    kernel: 1,
                    stride: 1,
                    pad: 0,
                    groups: 1,
                },
                false,
                &a,
                0,
                m,
                &bias,
                &b,
                &c,
            )?,
        };
        let ds = [d];
        kernels::run(ctx, &ds)?;
        let mut times: Vec<f64> = (0..iters)
            .map(|_| {
                let t = Instant::now();
                kernels::run(ctx, &ds).map(|_| t.elapsed().as_secs_f64() * 1e3)
            })
            .collect::<Result<_, _>>()?;
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        out.push(GemmResult {
            path: format!("{:?}", kernels.path),
            m,
            n,
            k,
            median_ms: median,
            gflops_per_s: 2.0 * (m * n * k) as f64 / median / 1e6,
        });
    }
    Ok(out)
}
