//! `alexnet export M OUT.onnx`: a model as a standard ONNX graph (opset 13) for onnxruntime,
//! TensorRT, OpenVINO, browsers and phones; class names and preprocessing in `metadata_props`.

use std::path::PathBuf;
use std::process::ExitCode;

use alexnet_wgpu::data::Preprocess;
use alexnet_wgpu::model::formats::ExportOptions;
use alexnet_wgpu::weights::meta::ModelMeta;
use anyhow::Context;
use clap::Args;

use super::ModelArgs;

#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The .onnx to write.
    output: PathBuf,
    /// End the graph with a Softmax (output `probabilities` instead of `logits`).
    #[arg(long)]
    softmax: bool,
}

pub fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.output
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("onnx")),
        "{}: export writes .onnx files (use `alexnet convert` for .npz / .safetensors)",
        args.output.display()
    );
    let path = args.model.path()?;
    let w = args.model.load()?;
    let meta = ModelMeta::read(&path)?;
    let metadata = match &meta {
        Some(m) => m.to_pairs(),
        None => vec![
            ("arch".to_string(), w.arch.to_string()),
            (
                "preprocess".to_string(),
                serde_json::to_string(&Preprocess::for_arch(w.arch))?,
            ),
        ],
    };
    w.save_onnx(
        &args.output,
        &ExportOptions {
            softmax: args.softmax,
            metadata,
        },
    )
    .with_context(|| format!("exporting {}", path.display()))?;
    let [c, h, wd] = w.spec().input;
    eprintln!(
        "{}: {} preset, {} classes -> {} (input {}: [N, {c}, {h}, {wd}], output {})",
        path.display(),
        w.arch,
        w.widths.classes,
        args.output.display(),
        if w.arch == alexnet_wgpu::model::Arch::Caffe {
            "data_0"
        } else {
            "input"
        },
        if args.softmax {
            "probabilities"
        } else {
            "logits"
        }
    );
    Ok(ExitCode::SUCCESS)
}
