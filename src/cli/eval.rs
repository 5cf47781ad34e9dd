use std::path::PathBuf;
use std::process::ExitCode;

use alexnet_wgpu::data::{prepare_pixels_into, ClassFolders, Preprocess};
use alexnet_wgpu::model::{Fill, Network, RunError, RunShape};
use alexnet_wgpu::train::Metrics;
use alexnet_wgpu::weights::meta::ModelMeta;
use clap::{Args, ValueEnum};

use super::{GpuArgs, LoadArgs, ModelArgs};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    gpu: GpuArgs,
    /// One sub-folder per class, named like the model's classes (a split dataset, DIR/train
    /// and DIR/val, is evaluated on DIR/val).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    #[arg(long, default_value_t = 16)]
    batch: usize,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    #[command(flatten)]
    load: LoadArgs,
    /// Print how the time split between decoding and GPU work, and which one bounds the run.
    #[arg(long)]
    timings: bool,
}

pub fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let path = args.model.path()?;
    let weights = args.model.load()?;
    // The one dataset resolution of every command: a split dataset is evaluated on its
    // validation set; nested or flat `train/` + `val/` layouts are refused with a hint.
    let dirs = alexnet_wgpu::data::dataset::resolve(&args.data, None)?;
    let data_dir = match (dirs.split_dataset, dirs.val) {
        (true, Some(val)) => {
            eprintln!(
                "{} is a split dataset: evaluating on its validation set, {}",
                args.data.display(),
                val.display()
            );
            val
        }
        _ => dirs.train,
    };
    let data = ClassFolders::scan_labelled(&data_dir)?;
    let model_classes = match ModelMeta::read(&path)? {
        Some(m) => m.classes,
        None if weights.widths.classes == data.classes.len() => data.classes.clone(),
        None => anyhow::bail!(
            "{} has no class names and {} classes, but {} has {} class folders",
            path.display(),
            weights.widths.classes,
            data_dir.display(),
            data.classes.len()
        ),
    };
    // Folder names -> the model's class indices.
    let mut map = Vec::new();
    for c in &data.classes {
        match model_classes.iter().position(|m| m == c) {
            Some(i) => map.push(i),
            None => anyhow::bail!(
                "class folder '{c}' is not one of the model's classes ({})",
                model_classes.join(", ")
            ),
        }
    }
    let ctx = args.gpu.context()?;
    let mut net = Network::new(&ctx, &weights)?;
    let pre = Preprocess::for_arch(weights.arch);
    let opts = args.load.options();
    // A bar on a terminal, plain progress lines when piped.
    let mut pb = super::meter::Meter::new(data.items.len(), "evaluating", "images");
    let (mut logits, mut labels, mut failed) = (Vec::new(), Vec::new(), 0usize);
    let fill = |(p, _): &(PathBuf, usize), out: &mut [u8]| -> alexnet_wgpu::Result<()> {
        prepare_pixels_into(p, &pre, opts, out).map(|_| ())
    };
    let shape = RunShape::images(args.batch.max(1), pre.crop, pre.crop);
    let fill = Fill::Pixels(&fill, &pre);
    let times =
        alexnet_wgpu::model::run::run(&mut net, &data.items, fill, shape, false, &mut |r| {
            let (p, c) = r.item;
            match r.row {
                Ok(row) => {
                    labels.push(map[*c]);
                    logits.extend_from_slice(row.logits);
                }
                Err(e) => {
                    let why = super::hint::input_failure(&e);
                    pb.suspend(|| eprintln!("warning: skipped {}: {why}", p.display()));
                    failed += 1;
                }
            }
            if r.batch_end {
                pb.set(r.index + 1);
            }
            Ok::<(), std::convert::Infallible>(())
        })
        .map_err(|e| match e {
            RunError::Network(e) => e,
            RunError::Callback(never) => match never {},
        })?;
    pb.finish();
    if args.timings {
        eprintln!("{}", times.summary());
    }
    let metrics = Metrics::from_logits(&model_classes, &logits, &labels);
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&metrics)?),
        Format::Text => print!("{}", metrics.report()),
    }
    if failed > 0 {
        eprintln!(
            "{} could not be read",
            super::plural::count(failed, "image", "images")
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
