use std::process::ExitCode;
use std::time::Instant;

use alexnet_wgpu::gpu::GpuContext;
use alexnet_wgpu::kernels::{Kernels, MatmulPath, Precision};
use alexnet_wgpu::model::Weights;
use alexnet_wgpu::model::{Arch, Input, Network, StepTiming};
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
    #[arg(long, default_value_t = 5, value_parser = super::train_head::at_least_one)]
    iters: usize,
    /// Untimed passes first (lavapipe compiles each pipeline at its first dispatch).
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Also time each layer: GPU timestamps between the dispatches of one real pass where
    /// the adapter has them inside passes, else one timestamped pass per dispatch, else wall
    /// clock per layer (the output says which).
    #[arg(long)]
    per_layer: bool,
    /// Re-time every matmul variant (tiles, split-K, gemv) for each conv and dense layer at
    /// these batch sizes on this adapter, rewrite the tuner cache (tune.json in the cache
    /// directory) with the winners, then bench with them. Later runs of every command reuse it.
    #[arg(long)]
    tune: bool,
    /// Also time plain GEMMs (`C = A B^T`, M x N x K) with this adapter's matmul kernel, with
    /// GPU timestamps: 4096^3 (512^3 on CPU adapters) and each convolution's GEMM at each
    /// batch size, the practical ceiling for the per-layer GFLOP/s.
    #[arg(long)]
    gemm: bool,
    /// Weight storage, comma-separated to compare in one run (f32,f16): each batch size runs
    /// every precision back to back; f16 rows also give the logit error against f32.
    #[arg(long, value_delimiter = ',', default_value = "f32")]
    precision: Vec<Precision>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Time decoding + preprocessing alone (no GPU work) on the images in this folder (or
    /// this one image): images/s, ms per image, split into decode, resize and the crop into
    /// 8-bit pixels (as classify sends images; they are normalised on the GPU).
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
    /// Time the backward passes instead (grad input; grad weight + bias) at torchvision's five
    /// conv shapes, on the --conv-backward path, and its three dense layers, on the --matmul
    /// path's route, at each --batch size.
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
    /// Wall time of a whole pass as `classify` pays it (upload, pass, read-back): median,
    /// fastest and slowest of --iters.
    median_ms: f64,
    min_ms: f64,
    max_ms: f64,
    images_per_s: f64,
    gflops_per_s: f64,
    /// GPU time of the pass alone (timestamps at the start and end of its compute pass),
    /// median of --iters separate passes; `None` without timestamp queries.
    gpu_ms: Option<f64>,
    gpu_images_per_s: Option<f64>,
    /// Wall time of the input upload alone (host copy into the mapped upload buffer, its
    /// copy to the device, submit, wait), median of --iters.
    upload_ms: f64,
    /// Bytes uploaded per pass: the cropped images as 8-bit pixels, as `classify` sends them
    /// (normalised on the GPU, within `gpu_ms`).
    upload_bytes: usize,
    /// What the same pass would upload as normalised f32 rows (4 bytes per value), the route
    /// of `.npy` inputs.
    upload_bytes_f32: usize,
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
        Some(super::bench_gemm::gemm_ceiling(
            &ctx,
            &weights.spec(),
            &args.batch,
            args.iters.max(1),
            &args.precision,
        )?)
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
    // Random pixels uploaded and normalised on the GPU as `classify` does with images.
    let table =
        alexnet_wgpu::data::norm_table(&alexnet_wgpu::data::Preprocess::for_arch(weights.arch));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let mut results = Vec::new();
    for &batch in &args.batch {
        anyhow::ensure!(batch > 0, "batch sizes must be positive");
        let pixels: Vec<u8> = (0..batch * 3 * h * w).map(|_| rng.random()).collect();
        let input = Input::Pixels(&pixels, &table);
        let mut f32_logits: Option<Vec<f32>> = None;
        for net in nets.iter_mut() {
            let mut logits = Vec::new();
            for _ in 0..args.warmup {
                logits = net.forward_input(input, batch, h, w, false)?.logits;
            }
            let mut times: Vec<f64> = (0..args.iters.max(1))
                .map(|_| {
                    let t = Instant::now();
                    net.forward_input(input, batch, h, w, false).map(|out| {
                        let ms = t.elapsed().as_secs_f64() * 1e3;
                        logits = out.logits;
                        ms
                    })
                })
                .collect::<Result<_, _>>()?;
            let wall = median(&mut times);
            // The same passes taken apart: the upload alone, then the pass's GPU time.
            let (mut gpu, mut upload) = (Vec::new(), Vec::new());
            for _ in 0..args.iters.max(1) {
                let t = net.time_pass(input, batch, h, w)?;
                upload.push(t.upload_ms);
                gpu.extend(t.gpu_ms);
            }
            let gpu_ms = (!gpu.is_empty()).then(|| median(&mut gpu));
            let layers = if args.per_layer {
                let how = net.layer_timing();
                net.time_layers(batch, h, w, how)?; // warm the per-layer path too
                Some(net.time_layers(batch, h, w, how)?)
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
                median_ms: wall,
                min_ms: times[0],
                max_ms: times[times.len() - 1],
                images_per_s: batch as f64 / (wall / 1e3),
                gflops_per_s: gflop_per_image * batch as f64 / (wall / 1e3),
                gpu_ms,
                gpu_images_per_s: gpu_ms.map(|ms| batch as f64 / (ms / 1e3)),
                upload_ms: median(&mut upload),
                upload_bytes: pixels.len(),
                upload_bytes_f32: 4 * pixels.len(),
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
                "pass_timing": if net.has_timestamps() { "gpu timestamps around the pass" } else { "none" },
                "layer_timing": net.layer_timing().name(),
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
                "(wall: a whole pass as classify pays it; GPU: the pass alone by timestamps; \
                 upload: the input alone, as 8-bit pixels normalised on the GPU in the pass; \
                 upload MB: u8 sent / f32 rows' size)"
            );
            println!(
                "{:>5} {:>6} {:>9} {:>9} {:>9} {:>10} {:>9} {:>9} {:>10} {:>9} {:>13} {:>14}",
                "prec",
                "batch",
                "wall ms",
                "min ms",
                "max ms",
                "images/s",
                "GFLOP/s",
                "GPU ms",
                "GPU img/s",
                "upload ms",
                "upload MB",
                "logit err/f32"
            );
            let opt =
                |v: Option<f64>, p: usize| v.map(|v| format!("{v:.p$}")).unwrap_or("-".into());
            for r in &results {
                let err = r
                    .logit_error_vs_f32
                    .map(|e| format!("{e:.2e}"))
                    .unwrap_or_default();
                let mb = |b: usize| b as f64 / 1e6;
                println!(
                    "{:>5} {:>6} {:>9.2} {:>9.2} {:>9.2} {:>10.2} {:>9.2} {:>9} {:>10} {:>9.2} {:>13} {:>14}",
                    r.precision,
                    r.batch,
                    r.median_ms,
                    r.min_ms,
                    r.max_ms,
                    r.images_per_s,
                    r.gflops_per_s,
                    opt(r.gpu_ms, 2),
                    opt(r.gpu_images_per_s, 1),
                    r.upload_ms,
                    format!("{:.2}/{:.2}", mb(r.upload_bytes), mb(r.upload_bytes_f32)),
                    err
                );
            }
            if let Some(g) = gemm.as_ref().filter(|g| !g.is_empty()) {
                println!(
                    "\nplain GEMM C = A B^T ({}, median per product):",
                    g[0].timing
                );
                println!(
                    "  {:<12} {:>5} {:>6} {:>8} {:>6} {:>11} {:>9}  kernels",
                    "shape", "prec", "M", "N", "K", "median ms", "GFLOP/s"
                );
                for r in g {
                    println!(
                        "  {:<12} {:>5} {:>6} {:>8} {:>6} {:>11.3} {:>9.1}  {}",
                        r.shape, r.precision, r.m, r.n, r.k, r.median_ms, r.gflops_per_s, r.path
                    );
                }
            }
            for r in results.iter().filter(|r| r.layers.is_some()) {
                let layers = r.layers.as_ref().expect("filtered");
                let total: f64 = layers.iter().map(|l| l.ms).sum();
                let how = net.layer_timing().name();
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

/// max |a - b| / max |b|.
fn rel_max_diff(a: &[f32], b: &[f32]) -> f64 {
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
    let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    (diff / scale) as f64
}

/// Median of `v` (sorted in place); `v` is never empty here.
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
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
