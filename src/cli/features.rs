use std::path::PathBuf;
use std::process::ExitCode;

use alexnet_wgpu::data::{ClassFolders, Preprocess};
use alexnet_wgpu::model::Network;
use alexnet_wgpu::train::extract_pool5_with;
use clap::Args;

use super::{GpuArgs, LoadArgs, ModelArgs};

#[derive(Args)]
pub struct FeaturesArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    gpu: GpuArgs,
    /// One sub-folder of images per class.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Output .npz: features [N, 9216] f32, labels [N] int64, paths, classes.
    #[arg(long, value_name = "FILE.npz")]
    out: PathBuf,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    #[command(flatten)]
    load: LoadArgs,
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn bar(len: usize, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{bar:30}}] {{pos}}/{{len}} {{per_sec}} eta {{eta}}"
        ))
        .expect("valid template"),
    );
    bar
}

pub fn run(args: FeaturesArgs) -> anyhow::Result<ExitCode> {
    let weights = args.model.load()?;
    let data = ClassFolders::scan(&args.data)?;
    let ctx = args.gpu.context()?;
    let mut net = Network::new(&ctx, &weights)?;
    let pb = bar(data.items.len(), "features");
    let ex = extract_pool5_with(
        &mut net,
        &data,
        &Preprocess::for_arch(weights.arch),
        args.load.options(),
        0,
        0,
        args.batch.max(1),
        &|n| pb.set_position(n as u64),
    )?;
    pb.finish_and_clear();
    for (p, e) in &ex.skipped {
        eprintln!("warning: skipped {}: {e}", p.display());
    }
    ex.set.save(&args.out)?;
    eprintln!(
        "wrote {} ({} images x {} features, {} classes) in {:.1} s",
        args.out.display(),
        ex.set.len(),
        ex.set.dim,
        ex.set.classes.len(),
        ex.seconds
    );
    Ok(if ex.skipped.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
