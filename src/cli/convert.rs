//! `alexnet convert IN OUT.npz`: any supported weights file to our `.npz`.

use std::path::PathBuf;
use std::process::ExitCode;

use alexnet_wgpu::model::Arch;
use anyhow::Context;
use clap::Args;

#[derive(Args)]
pub struct ConvertArgs {
    /// Weights to convert: .pth/.pt (torch.save'd state_dict), .h5/.hdf5/.weights.h5/.keras
    /// (Keras), .npz, or a directory of .npy files.
    input: PathBuf,
    /// The .npz to write (PyTorch layout; torchvision names for the torchvision preset, Caffe
    /// names otherwise).
    output: PathBuf,
    /// Network preset: torchvision, caffe or keras (default: inferred from the weights).
    #[arg(long, value_name = "A")]
    arch: Option<Arch>,
}

pub fn run(args: ConvertArgs) -> anyhow::Result<ExitCode> {
    let w = alexnet_wgpu::fetch::convert_file(&args.input, &args.output, args.arch)
        .with_context(|| format!("converting {}", args.input.display()))?;
    let params: usize = w.tensors.values().map(Vec::len).sum();
    eprintln!(
        "{}: {} preset, {} classes, {params} parameters ({:?} names) -> {}",
        args.input.display(),
        w.arch,
        w.widths.classes,
        w.scheme,
        args.output.display()
    );
    Ok(ExitCode::SUCCESS)
}
