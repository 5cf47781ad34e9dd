use std::process::ExitCode;
use std::time::Instant;

use alexnet_wgpu::gpu::{storage_buffer, upload_f32, GpuContext};
use alexnet_wgpu::kernels::{self, Kernels, MatmulPath, Precision};
use alexnet_wgpu::model::Weights;
use alexnet_wgpu::model::{Arch, Network, StepTiming};
use clap::Args;
use rand::{Rng, SeedableRng};

pub use super::bench_format::Format;
use super::{GpuArgs, LoadArgs};

#[derive(Args)]
pub struct BenchArgs {
    /// Network preset (random weights unless --weights) (default: torchvision, or what the weights say).
    #[arg(long)]
    arch: Option<Arch>,
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
    /// Re-time every matmul variant (tiles, split-K, gemv) for each conv and dense layer at
    /// these batch sizes on this adapter, rewrite the tuner cache (tune.json in the cache
    /// directory) with the winners, then bench with them. Later runs of every command reuse it.
    #[arg(long)]
    tune: bool,
    /// Also time plain GEMMs (`C = A B^T`, M x N x K) with this adapter's matmul kernel: the
    /// practical ceiling for the per-layer GFLOP/s.
    #[arg(long)]
    gemm: bool,
    /// Weight storage, comma-separated to compare in one run (f32,f16): each batch size runs
    /// every precision back to back; f16 rows also give the logit error against f32.
    #[arg(long, value_delimiter = ',', default_value = "f32")]
    precision: Vec<Precision>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Time decoding + preprocessing alone (no GPU work) on the images in this folder (or
    /// this one image): images/s, ms per image, split into decode, resize and normalise.
    /// --iters and --warmup count passes over the folder.
    #[arg(long, value_name = "DIR")]
    input: Option<std::path::PathBuf>,
    /// Decoding threads for --input (default: all cores).
    #[arg(long, value_name = "N", requires = "input")]
    threads: Option<usize>,
    /// Time training steps instead of forward passes, for each of these first trained layers
    /// (comma-separated: fc8,fc6,conv5,conv4,conv1): images/s and the share of forward,
    /// backward and optimizer time (SGD with momentum; the frozen part, cached, is not timed).
    #[arg(long, value_delimiter = ',', value_name = "LAYERS", value_parser = alexnet_wgpu::train::HeadKind::from_layer)]
    train_from: Vec<alexnet_wgpu::train::HeadKind>,
    /// Time the convolution backward passes instead (grad input; grad weight + bias) at
    /// torchvision's five conv shapes, on the --conv-backward path, at each --batch size.
    #[arg(long, conflicts_with_all = ["input", "train_from", "tune", "gemm", "per_layer"])]
    backward: bool,
    #[command(flatten)]
    load: LoadArgs,
    #[command(flatten)]
    gpu: GpuArgs,
}

#[derive(serde::Serialize)]
struct BatchResult {
    precision: String,
    batch: usize,
    median_ms: f64,
    min_ms: f64,
    max_ms: f64,
    images_per_s: f64,
    gflops_per_s: f64,
    /// max |logits - f32 logits| / max |f32 logits| on the same input (when f32 also ran).
    #[serde(skip_serializing_if = "Option::is_none")]
    logit_error_vs_f32: Option<f64>,
    layers: Option<Vec<StepTiming>>,
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if let Some(dir) = &args.input {
        return super::bench_input::run(
            dir,
            args.arch.unwrap_or(Arch::Torchvision),
            args.threads,
            args.load.options(),
            args.iters,
            args.warmup,
            args.format,
        );
    }
    if args.backward {
        let ctx = args.gpu.context()?;
        let iters = args.iters.max(1);
        super::bench_backward::run(&ctx, &args.batch, iters, args.warmup, args.format)?;
        return Ok(ExitCode::SUCCESS);
    }
    let weights = match &args.weights {
        Some(p) => Weights::load(p, args.arch)?,
        None => {
            let arch = args.arch.unwrap_or(Arch::Torchvision);
            Weights::random(arch, arch.default_widths(), 1)?
        }
    };
    // Each batch's random input is one host buffer: refused before any work when too large.
    let [_, h, w] = weights.spec().input;
    for &batch in &args.batch {
        anyhow::ensure!(batch > 0, "batch sizes must be positive");
        alexnet_wgpu::data::host_memory::check_batch(batch, 3 * h * w, "input images")?;
    }
    let ctx = args.gpu.context()?;
    if !args.train_from.is_empty() {
        super::bench_train::run(
            &ctx,
            &weights,
            &args.train_from,
            &args.batch,
            args.iters.max(1),
            args.format,
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let tuning = if args.tune {
        Some(tune(&ctx, &weights, &args.batch, args.iters)?)
    } else {
        None
    };
    let gemm = if args.gemm {
        Some(gemm_ceiling(&ctx, args.iters.max(1), &args.precision)?)
    } else {
        None
    };
    let mut precisions = args.precision.clone();
    precisions.dedup();
    anyhow::ensure!(!precisions.is_empty(), "--precision needs a value");
    let mut nets = precisions
        .iter()
        .map(|&p| Network::with_precision(&ctx, &weights, p))
        .collect::<Result<Vec<_>, _>>()?;
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
        let mut f32_logits: Option<Vec<f32>> = None;
        for net in nets.iter_mut() {
            let mut logits = Vec::new();
            for _ in 0..args.warmup {
                logits = net.forward(&input, batch, h, w, false)?.logits;
            }
            let mut times: Vec<f64> = (0..args.iters.max(1))
                .map(|_| {
                    let t = Instant::now();
                    net.forward(&input, batch, h, w, false).map(|out| {
                        let ms = t.elapsed().as_secs_f64() * 1e3;
                        logits = out.logits;
                        ms
                    })
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
            let logit_error_vs_f32 = match (&f32_logits, net.precision()) {
                (Some(want), Precision::F16) => Some(rel_max_diff(&logits, want)),
                _ => None,
            };
            if net.precision() == Precision::F32 {
                f32_logits = Some(logits);
            }
            results.push(BatchResult {
                precision: net.precision().to_string(),
                batch,
                median_ms: median,
                min_ms: times[0],
                max_ms: times[times.len() - 1],
                images_per_s: batch as f64 / (median / 1e3),
                gflops_per_s: gflop_per_image * batch as f64 / (median / 1e3),
                logit_error_vs_f32,
                layers,
            });
        }
    }
    let net = &nets[0];
    match args.format {
        Format::Json => {
            let doc = serde_json::json!({
                "adapter": ctx.info.name,
                "backend": format!("{:?}", ctx.info.backend),
                "driver": format!("{} {}", ctx.info.driver, ctx.info.driver_info),
                "arch": spec.arch,
                "gflop_per_image": gflop_per_image,
                "timing": if net.has_timestamps() { "gpu-timestamps" } else { "wall-clock" },
                "matmul": Kernels::new(&ctx).path.name(),
                "results": results,
                "gemm": gemm,
                "tuning": tuning,
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
                "network: {} AlexNet, {:.3} GFLOP per image; matmul path {}",
                spec.arch,
                gflop_per_image,
                Kernels::new(&ctx).path.name()
            );
            if let Some(t) = &tuning {
                println!(
                    "\ntuned ({}, best of {} per variant):",
                    alexnet_wgpu::model::tune::timing_name(&ctx),
                    args.iters
                );
                for s in t {
                    let times: Vec<String> = s
                        .times
                        .iter()
                        .map(|(n, ms)| format!("{n} {ms:.2}"))
                        .collect();
                    println!(
                        "  {:<40} -> {:<16} ({})",
                        s.shape,
                        s.winner,
                        times.join(", ")
                    );
                }
            }
            println!(
                "{:>5} {:>6} {:>11} {:>11} {:>11} {:>10} {:>9} {:>14}",
                "prec",
                "batch",
                "median ms",
                "min ms",
                "max ms",
                "images/s",
                "GFLOP/s",
                "logit err/f32"
            );
            for r in &results {
                let err = r
                    .logit_error_vs_f32
                    .map(|e| format!("{e:.2e}"))
                    .unwrap_or_default();
                println!(
                    "{:>5} {:>6} {:>11.1} {:>11.1} {:>11.1} {:>10.2} {:>9.2} {:>14}",
                    r.precision,
                    r.batch,
                    r.median_ms,
                    r.min_ms,
                    r.max_ms,
                    r.images_per_s,
                    r.gflops_per_s,
                    err
                );
            }
            if let Some(g) = &gemm {
                println!(
                    "\nplain GEMM C = A B^T ({} path, wall clock per dispatch):",
                    g[0].path
                );
                println!(
                    "  {:>5} {:>6} {:>6} {:>6} {:>11} {:>9}",
                    "prec", "M", "N", "K", "median ms", "GFLOP/s"
                );
                for r in g {
                    println!(
                        "  {:>5} {:>6} {:>6} {:>6} {:>11.2} {:>9.2}",
                        r.precision, r.m, r.n, r.k, r.median_ms, r.gflops_per_s
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
                println!("\nper layer, {}, batch {} ({how}):", r.precision, r.batch);
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
                        "  {:<44} {:>9.2} {:>6.1}% {:>9}  {}",
                        l.label,
                        l.ms,
                        100.0 * l.ms / total,
                        gf,
                        l.variants.join(" + ")
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
    precision: String,
    m: usize,
    n: usize,
    k: usize,
    median_ms: f64,
    gflops_per_s: f64,
}

/// Times the adapter's matmul kernel on plain GEMMs: square, conv2 at batch 8, fc7 at 8 and 1.
/// max |a - b| / max |b|.
fn rel_max_diff(a: &[f32], b: &[f32]) -> f64 {
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
    let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    (diff / scale) as f64
}

/// With f16 in `precisions`, also `gemm_f16.wgsl` on the same shapes (operands packed to f16).
fn gemm_ceiling(
    ctx: &GpuContext,
    iters: usize,
    precisions: &[Precision],
) -> anyhow::Result<Vec<GemmResult>> {
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
        let (a_host, b_host) = (rand(m * k), rand(n * k));
        let a = upload_f32(ctx, "A", &a_host)?;
        let b = upload_f32(ctx, "B", &b_host)?;
        let bias = upload_f32(ctx, "bias", &vec![0.0; m.max(n)])?;
        let c = storage_buffer(ctx, "C", m * n, "")?;
        let out_map = kernels::gemm::GemmOut {
            n_off: 0,
            hw: n as u32,
            c_bstride: 0,
            c_mstride: n,
            bias_on_n: false,
        };
        let mut runs = Vec::new();
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
                &kernels,
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
        // The kernel a dense layer of this shape runs (its route: the path, the tuner, the
        // heuristics): C[n][m] = sum_k A[m][k] B[n][k], i.e. the same product transposed.
        let d = kernels.dense_route(n, k, m)?.dispatch_part(
            ctx,
            &kernels,
            n,
            k,
            (0, m, m),
            false,
            &a,
            &bias,
            &b,
            &c,
        )?;
        if precisions.contains(&Precision::F32) {
            runs.insert(0, (Precision::F32, d));
        }
        for (precision, ds) in runs {
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
                path: match precision {
                    Precision::F32 => ds
                        .iter()
                        .map(|d| d.label.clone())
                        .collect::<Vec<_>>()
                        .join(" + "),
                    Precision::F16 => "gemm_f16".into(),
                },
                precision: precision.to_string(),
                m,
                n,
                k,
                median_ms: median,
                gflops_per_s: 2.0 * (m * n * k) as f64 / median / 1e6,
            });
        }
    }
    Ok(out)
}

/// `bench --tune`: times the blocked path's variants for every layer at these batches,
/// rewrites the tuner cache and installs the winners for the networks this run builds.
fn tune(
    ctx: &GpuContext,
    weights: &Weights,
    batches: &[usize],
    reps: usize,
) -> anyhow::Result<Vec<alexnet_wgpu::model::tune::Timed>> {
    use alexnet_wgpu::model::tune;
    let path = super::tune_cache_path()?;
    let (mut file, warning) = tune::read(&path);
    if let Some(w) = warning {
        eprintln!("warning: {w}");
    }
    if Kernels::new(ctx).path == MatmulPath::Tiled {
        eprintln!("note: ALEXNET_MATMUL=tiled runs the tiled kernels whatever the tuner finds");
    }
    let timed = tune::tune(ctx, weights, batches, reps.max(1), &mut file)?;
    tune::write(&path, &file)?;
    eprintln!("tuner cache written: {}", path.display());
    tune::load_into(ctx, &path);
    Ok(timed)
}
