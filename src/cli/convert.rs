//! `alexnet convert IN OUT`: any supported weights file to `.npz`, `.safetensors` or `.onnx`
//! (the output's extension decides; any other is refused before anything is read).

use std::path::PathBuf;
use std::process::ExitCode;

use alexnet_wgpu::model::Arch;
use anyhow::Context;
use clap::Args;

#[derive(Args)]
pub struct ConvertArgs {
    /// Weights to convert: .pth/.pt (torch.save'd state_dict), .h5/.hdf5/.weights.h5/.keras
    /// (Keras), .npz, .safetensors, .onnx, or a directory of .npy files.
    input: PathBuf,
    /// The file to write: .npz or .safetensors (the input's names and layout), or .onnx (an
    /// opset-13 graph).
    output: PathBuf,
    /// Network preset: torchvision, caffe or keras (default: inferred from the weights).
    #[arg(long, value_name = "A")]
    arch: Option<Arch>,
}

pub fn run(args: ConvertArgs) -> anyhow::Result<ExitCode> {
    let ext = args
        .output
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    anyhow::ensure!(
        matches!(ext.as_deref(), Some("npz" | "safetensors" | "onnx")),
        "{}: cannot write this format; the output's extension decides: {}",
        args.output.display(),
        alexnet_wgpu::model::formats::OUTPUT_FORMATS
    );
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
