//! `alexnet fetch-weights`: torchvision's pre-trained AlexNet into the cache, verified and
//! converted.

use std::path::PathBuf;
use std::process::ExitCode;

use alexnet_wgpu::fetch::{self, FetchOptions, Fetched};
use clap::Args;

#[derive(Args)]
#[command(
    after_help = "The weights are stored in the cache directory: $ALEXNET_CACHE_DIR, else \
    the platform's cache folder + alexnet-wgpu (Linux: $XDG_CACHE_HOME or ~/.cache). \
    `classify`, `features`, `eval` and `train-head` use them when --weights is not given. \
    Offline: convert the .pth on any machine with `alexnet convert alexnet-owt-7be5be79.pth \
    alexnet-torchvision.npz` and copy the result there."
)]
pub struct FetchWeightsArgs {
    /// Where to download from (a torch.save'd state_dict).
    #[arg(long, default_value = fetch::TORCHVISION_URL)]
    url: String,
    /// The download's SHA-256 must start with this (hex).
    #[arg(long, value_name = "HEX", default_value = fetch::TORCHVISION_SHA256_PREFIX)]
    sha256_prefix: String,
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
    let dest = match args.out {
        Some(p) => p,
        None => fetch::cached_weights_path()?,
    };
    let opts = FetchOptions {
        url: args.url,
        sha256_prefix: args.sha256_prefix,
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
