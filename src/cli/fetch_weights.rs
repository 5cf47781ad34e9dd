//! `alexnet fetch-weights`: torchvision's pre-trained AlexNet into the cache, verified and
//! converted.

use std::path::PathBuf;
use std::process::ExitCode;

use alexnet_wgpu::fetch::{self, FetchOptions, Fetched};
use alexnet_wgpu::model::Arch;
use clap::Args;

#[derive(Args)]
#[command(
    after_help = "The weights are stored in the cache directory: $ALEXNET_CACHE_DIR, else \
    the platform's cache folder + alexnet-wgpu (Linux: $XDG_CACHE_HOME or ~/.cache). \
    `classify`, `features`, `eval` and `train-head` use them when --weights is not given \
    (the Caffe weights with --arch caffe). \
    Offline: convert the .pth on any machine with `alexnet convert alexnet-owt-7be5be79.pth \
    alexnet-torchvision.npz` and copy the result there."
)]
pub struct FetchWeightsArgs {
    /// Which pre-trained net: torchvision (torchvision's AlexNet_Weights.IMAGENET1K_V1 .pth) or
    /// caffe (the ONNX model zoo's bvlcalexnet-12.onnx, BVLC's Caffe AlexNet).
    #[arg(long, value_name = "A", default_value = "torchvision")]
    arch: Arch,
    /// Where to download from (a torch.save'd state_dict or an .onnx; default: the --arch's
    /// official file).
    #[arg(long)]
    url: Option<String>,
    /// The download's SHA-256 must start with this (hex; default: the official file's).
    #[arg(long, value_name = "HEX")]
    sha256_prefix: Option<String>,
    /// Write the converted weights here instead of the cache directory.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Download again even if the weights are already cached.
    #[arg(long)]
    force: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(args: FetchWeightsArgs) -> anyhow::Result<ExitCode> {
    let (url, sha, cached, size) = match args.arch {
        Arch::Torchvision => (
            fetch::TORCHVISION_URL,
            fetch::TORCHVISION_SHA256_PREFIX,
            fetch::cached_weights_path()?,
            fetch::TORCHVISION_BYTES,
        ),
        Arch::Caffe => (
            fetch::CAFFE_URL,
            fetch::CAFFE_SHA256,
            fetch::cached_caffe_weights_path()?,
            fetch::CAFFE_BYTES,
        ),
        Arch::Keras => anyhow::bail!(
            "no official pre-trained weights for the keras preset; pass --weights with your own"
        ),
    };
    let dest = args.out.unwrap_or(cached);
    // The official file's size caps its download; another URL gets the general cap.
    let max_bytes = match &args.url {
        Some(u) if u != url => fetch::MAX_DOWNLOAD_BYTES,
        _ => size,
    };
    let opts = FetchOptions {
        max_bytes,
        url: args.url.unwrap_or_else(|| url.to_string()),
        sha256_prefix: args.sha256_prefix.unwrap_or_else(|| sha.to_string()),
        dest,
        force: args.force,
        progress: !args.quiet,
    };
    match fetch::fetch_weights(&opts)? {
        Fetched::Cached(p) => eprintln!(
            "weights already cached at {} (use --force to download again)",
            p.display()
        ),
        Fetched::Downloaded {
            path,
            bytes,
            sha256,
        } => eprintln!(
            "downloaded {bytes} bytes (sha256 {sha256}), converted to {}",
            path.display()
        ),
    }
    println!("{}", opts.dest.display());
    Ok(ExitCode::SUCCESS)
}
