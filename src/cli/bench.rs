use std::process::ExitCode;
use std::time::Instant;

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
