//! Command-line interface: one file per subcommand.

mod adapters;
mod bench;
mod bench_backward;
mod bench_format;
mod bench_gemm;
mod bench_input;
mod bench_train;
mod classify;
mod convert;
mod eval;
mod export;
mod features;
mod fetch_weights;
pub mod files;
#[cfg(test)]
mod files_tests;
mod gpu_env;
pub mod hint;
mod lpips;
mod lpips_out;
mod merge;
mod meter;
mod plots;
mod plural;
mod selftest;
mod sharding;
mod summary;
mod switches;
mod train_head;
pub mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use alexnet_wgpu::gpu::{AdapterChoice, GpuContext};
use alexnet_wgpu::kernels::MatmulPath;
use alexnet_wgpu::model::Arch;
use alexnet_wgpu::model::Weights;
use alexnet_wgpu::options::{ConvBackward, CoopMatrices, F16Loads, LimitsProfile, RuntimeOptions};
use anyhow::Context;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "alexnet",
    version,
    about = "AlexNet on any GPU (or lavapipe) with WGSL compute shaders"
)]
pub struct Cli {
    /// Where fetch-weights caches weights and bench --tune its winners (default: the
    /// platform's cache folder, e.g. ~/.cache/alexnet-wgpu).
    #[arg(long, global = true, value_name = "DIR", env = "ALEXNET_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Classify images, folders of images or preprocessed .npy batches.
    Classify(classify::ClassifyArgs),
    /// List the GPU adapters wgpu finds, best first.
    Adapters(adapters::AdaptersArgs),
    /// Print the layers, output shapes, parameter counts and FLOPs of a preset.
    Summary(summary::SummaryArgs),
    /// Time forward passes: images/s, GFLOP/s and (--per-layer) GPU time per layer.
    Bench(bench::BenchArgs),
    /// Fine-tune on folders of your own images: train any layer from conv1 up
    /// (--train-from; default only the last one) with a new last layer for your classes; the
    /// layers below stay frozen.
    TrainHead(train_head::TrainHeadArgs),
    /// Accuracy, per-class precision/recall and confusion matrix of a model on class folders.
    Eval(eval::EvalArgs),
    /// Export pool5 features (embeddings) of class folders to an .npz.
    Features(features::FeaturesArgs),
    /// Download torchvision's (or, --arch caffe, BVLC's) pre-trained AlexNet, verify its hash
    /// and cache it as .npz.
    FetchWeights(fetch_weights::FetchWeightsArgs),
    /// Convert weights (.pth/.pt, Keras .h5/.keras, .npz, .safetensors, .onnx) to .npz,
    /// .safetensors or .onnx (the output's extension decides).
    Convert(convert::ConvertArgs),
    /// Join the parts of a sharded run (--shard I/N --out-dir DIR) into one set of outputs.
    Merge(merge::MergeArgs),
    /// Export a model (any weights file, e.g. a train-head model) as a standard ONNX graph.
    Export(export::ExportArgs),
    /// Check every kernel and path against its CPU reference on this adapter (does this
    /// program compute correctly on my GPU?); exit 1 on any mismatch.
    Selftest(selftest::SelftestArgs),
    /// LPIPS perceptual distances (the `lpips` package's net='alex') between image pairs.
    Lpips(lpips::LpipsArgs),
}

/// Adapter selection and runtime options shared by every GPU command. Each flag has an
/// environment twin (the flag wins); unknown values are refused with the accepted ones.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "GPU")]
pub struct GpuArgs {
    /// Graphics API: vulkan, metal, dx12 or gl, or a comma list (default: any).
    #[arg(long, value_name = "B", env = "WGPU_BACKEND")]
    pub backend: Option<String>,
    /// Use the adapter whose name contains this (default: the best).
    #[arg(long, value_name = "S", env = "WGPU_ADAPTER_NAME")]
    pub adapter: Option<String>,
    /// Device limits: `adapter` (all it offers) or `webgpu` (exactly WebGPU's baseline, what
    /// every conforming adapter guarantees).
    #[arg(
        long,
        value_name = "L",
        env = "ALEXNET_LIMITS",
        default_value = "adapter"
    )]
    pub limits: LimitsProfile,
    /// Validation mode: wgpu's validation, the Khronos Vulkan layer when installed, shader
    /// bounds checks; any validation error fails the run. Messages go through RUST_LOG.
    #[arg(long, env = "ALEXNET_VALIDATE", value_parser = switch)]
    #[arg(num_args = 0..=1, default_missing_value = "1", default_value = "0")]
    pub validate: bool,
    /// Matmul kernels: tiled, gemm, blocked, blocked-TILE (e.g. blocked-64x64x16),
    /// blocked-gemv, blocked-splitN (dense split-K), blocked-convsplitN (convolution split-K),
    /// blocked-im2col (convolutions through a coalesced patch matrix) (default: gemm on CPU
    /// adapters, blocked on GPUs).
    #[arg(long, value_name = "PATH", env = "ALEXNET_MATMUL")]
    pub matmul: Option<MatmulPath>,
    /// f16 GEMM loads: auto (native on GPUs with shader-f16), native or portable.
    #[arg(long, value_name = "M", env = "ALEXNET_F16", default_value = "auto")]
    pub f16_loads: F16Loads,
    /// Tensor cores for `--precision f16` convolutions: auto (where the adapter offers WGSL
    /// cooperative matrices), off, or emulate (the same kernel without them; slow, for tests).
    #[arg(long, value_name = "M", env = "ALEXNET_COOP", default_value = "auto")]
    pub coop: CoopMatrices,
    /// Gradients of trained convolutions: gemm or direct (the reference loops).
    #[arg(
        long,
        value_name = "K",
        env = "ALEXNET_CONV_BACKWARD",
        default_value = "gemm"
    )]
    pub conv_backward: ConvBackward,
    /// Keep naga's bounds checks in every shader (debugging a kernel; on under --validate).
    #[arg(long, env = "ALEXNET_SHADER_CHECKS", value_parser = switch)]
    #[arg(num_args = 0..=1, default_missing_value = "1", default_value = "0")]
    pub shader_checks: bool,
}

/// A variable's value, `None` where unset or not Unicode.
fn env_var(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

/// `1/true/on/yes`, `0/false/off/no` (and empty: off); anything else refused.
fn switch(s: &str) -> Result<bool, String> {
    alexnet_wgpu::options::parse_switch(s)
}

impl GpuArgs {
    /// The backend and name flags, and (used when no adapter is named) the GPU a job
    /// scheduler assigned in the environment (`gpu_env`).
    pub fn choice(&self) -> anyhow::Result<AdapterChoice> {
        // A variable set but empty (`WGPU_BACKEND=`) counts as unset, as for every variable.
        let set = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
        Ok(AdapterChoice {
            backend: set(&self.backend),
            adapter: set(&self.adapter),
            assignment: gpu_env::from_env(env_var)?.assignment,
        })
    }

    pub fn options(&self) -> RuntimeOptions {
        RuntimeOptions {
            matmul: self.matmul,
            f16_loads: self.f16_loads,
            conv_backward: self.conv_backward,
            coop: self.coop,
            shader_checks: self.shader_checks,
            limits: self.limits,
            validate: self.validate,
        }
    }

    /// The adapter's context, with this adapter's autotuner winners (if `bench --tune` has
    /// run) installed for the kernels; a corrupt, stale or foreign cache is one warning.
    pub fn context(&self) -> anyhow::Result<GpuContext> {
        if self.validate {
            validate::announce();
        }
        let ctx = GpuContext::with_options(&self.choice()?, self.options())?;
        if let Ok(path) = tune_cache_path() {
            if let Some(w) = alexnet_wgpu::model::tune::load_into(&ctx, &path) {
                eprintln!("warning: {w}");
            }
        }
        Ok(ctx)
    }
}

/// Where the autotuner's winners live: `tune.json` in the cache directory of `fetch-weights`.
pub fn tune_cache_path() -> anyhow::Result<std::path::PathBuf> {
    Ok(alexnet_wgpu::fetch::cache_dir()?.join(alexnet_wgpu::model::tune::FILE))
}

/// How image files become input tensors, shared by every command that reads images.
#[derive(Args, Clone, Debug, Default)]
pub struct LoadArgs {
    /// Decode JPEGs at full resolution and resize with `image`'s triangle filter, as
    /// torchvision's PIL pipeline does (slower; by default JPEGs at least four times the
    /// resize target are decoded at 1/2, 1/4 or 1/8 scale, like PIL's draft(), keeping at
    /// least twice the target, and resized with SIMD).
    #[arg(long)]
    pub exact_resize: bool,
    /// Ignore EXIF orientation tags: use the pixels as stored, as torchvision's ImageFolder
    /// does (by default a sideways-stored phone photo is turned upright first).
    #[arg(long)]
    pub ignore_orientation: bool,
    /// Decode a JPEG that ends early (a cut-off download) as far as its data goes, as PIL's
    /// LOAD_TRUNCATED_IMAGES does (by default it is a failed input, as in PIL and torchvision).
    #[arg(long)]
    pub allow_truncated: bool,
}

impl LoadArgs {
    pub fn options(&self) -> alexnet_wgpu::data::LoadOptions {
        alexnet_wgpu::data::LoadOptions {
            exact: self.exact_resize,
            ignore_orientation: self.ignore_orientation,
            allow_truncated: self.allow_truncated,
        }
    }
}

/// Weight selection shared by the model commands.
#[derive(Args, Clone, Debug)]
pub struct ModelArgs {
    /// Weights: .npz, .pth/.pt, Keras .h5/.keras, .safetensors, .onnx, or a directory of .npy
    /// files (default: the
    /// pre-trained weights cached by `alexnet fetch-weights`).
    #[arg(long, value_name = "FILE")]
    pub weights: Option<PathBuf>,
    /// Network preset: torchvision, caffe or keras (default: inferred from the weights).
    #[arg(long, value_name = "A")]
    pub arch: Option<Arch>,
}

impl ModelArgs {
    /// The weights file: `--weights`, else the cached pre-trained weights, else an error
    /// naming `alexnet fetch-weights` and the cache path (no network access here).
    pub fn path(&self) -> anyhow::Result<PathBuf> {
        Ok(match &self.weights {
            Some(p) => p.clone(),
            None if self.arch == Some(Arch::Caffe) => {
                let p = alexnet_wgpu::fetch::cached_caffe_weights_path()?;
                anyhow::ensure!(
                    p.is_file(),
                    "no --weights given and no Caffe weights in the cache ({} does not exist).\n  \
                     hint: run `alexnet fetch-weights --arch caffe`, or pass --weights FILE",
                    p.display()
                );
                p
            }
            None => alexnet_wgpu::fetch::cached_weights()?,
        })
    }

    pub fn load(&self) -> anyhow::Result<Weights> {
        let path = self.path()?;
        Weights::load(&path, self.arch)
            .with_context(|| format!("loading weights from {}", path.display()))
    }
}

/// Removes from this process's environment every flag's variable twin (`WGPU_BACKEND`,
/// `ALEXNET_CACHE_DIR`, ...) that is set but empty, so that it counts as unset, as the
/// command line's absent flag does (clap took `WGPU_BACKEND=` as a backend named "" and
/// `ALEXNET_CACHE_DIR=` as a missing value). Only for `main`, before any thread starts.
pub fn unset_empty_env_twins() {
    fn walk(cmd: &clap::Command, names: &mut Vec<std::ffi::OsString>) {
        names.extend(
            cmd.get_arguments()
                .filter_map(|a| a.get_env().map(|e| e.to_os_string())),
        );
        for sub in cmd.get_subcommands() {
            walk(sub, names);
        }
    }
    let mut names = Vec::new();
    walk(&<Cli as clap::CommandFactory>::command(), &mut names);
    for n in names {
        if std::env::var_os(&n).is_some_and(|v| v.is_empty()) {
            std::env::remove_var(&n);
        }
    }
}

/// Parses `argv` (the program's name first) as `main` does: the arguments, and clap's matches
/// for the shared file check.
pub fn parse(
    argv: impl IntoIterator<Item = std::ffi::OsString>,
) -> Result<(Cli, clap::ArgMatches), clap::Error> {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().try_get_matches_from(switches::switch_values_only(argv))?;
    Ok((Cli::from_arg_matches(&matches)?, matches))
}

/// Runs the command, after the declared files of every command ([`files::check`]): no output
/// may replace an input or another output, and none may be a FIFO or a device.
/// The environment twin of `--cache-dir` (the library reads no environment variable: this
/// binary passes the folder to `set_cache_dir`).
pub const CACHE_ENV: &str = "ALEXNET_CACHE_DIR";

pub fn run(cli: Cli, matches: &clap::ArgMatches) -> anyhow::Result<ExitCode> {
    // Set but empty (`ALEXNET_CACHE_DIR=`) counts as unset; a file there is no cache folder
    // (it used to be reported as a missing weights file, or "File exists").
    let cache_dir = cli.cache_dir.filter(|d| !d.as_os_str().is_empty());
    if let Some(d) = cache_dir.as_ref().filter(|d| d.exists() && !d.is_dir()) {
        anyhow::bail!(
            "--cache-dir {} (or {}): is not a folder",
            d.display(),
            CACHE_ENV
        );
    }
    alexnet_wgpu::fetch::set_cache_dir(cache_dir);
    files::check(&<Cli as clap::CommandFactory>::command(), matches)?;
    match cli.command {
        Command::Classify(a) => classify::run(a),
        Command::Adapters(a) => adapters::run(a),
        Command::Summary(a) => summary::run(a),
        Command::Bench(a) => bench::run(a),
        Command::TrainHead(a) => train_head::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Features(a) => features::run(a),
        Command::FetchWeights(a) => fetch_weights::run(a),
        Command::Convert(a) => convert::run(a),
        Command::Merge(a) => merge::run(a),
        Command::Export(a) => export::run(a),
        Command::Selftest(a) => selftest::run(a),
        Command::Lpips(a) => lpips::run(a),
    }
}

/// The checkpoint a running `train-head` would resume from, for the signal handler's note.
static CHECKPOINT: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);

pub fn set_interrupt_checkpoint(path: Option<PathBuf>) {
    *CHECKPOINT.lock().unwrap_or_else(|e| e.into_inner()) = path;
}

/// What the signal handler prints before exiting.
pub fn interrupt_note() -> String {
    // try_lock: never wait in a signal handler's thread on a lock the main thread may hold.
    match CHECKPOINT.try_lock().ok().and_then(|g| g.clone()) {
        Some(p) => hint::resume_note(&p),
        None => "interrupted: no output file was left half-written".into(),
    }
}
