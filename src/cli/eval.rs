use std::path::PathBuf;
use std::process::ExitCode;

use alexnet_wgpu::data::stream::{self, Shape};
use alexnet_wgpu::data::{prepare_into, ClassFolders, Preprocess};
use alexnet_wgpu::model::{NetStage, Network};
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
    let mut done = 0usize;
    let (mut logits, mut labels, mut failed) = (Vec::new(), Vec::new(), 0usize);
    let fill = |(p, _): &(PathBuf, usize), out: &mut [f32]| -> alexnet_wgpu::Result<()> {
        prepare_into(p, &pre, opts, out).map(|_| ())
    };
    let shape = Shape {
        batch: args.batch.max(1),
        rows_per_item: 1,
        row_len: 3 * pre.crop * pre.crop,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let mut stage = NetStage {
        net: &mut net,
        h: pre.crop,
        w: pre.crop,
        want_features: false,
    };
    let times = stream::run(&data.items, shape, &fill, &mut stage, &mut |d| {
        for ((p, c), st) in d.items.iter().zip(&d.status) {
            match st {
                Ok(()) => labels.push(map[*c]),
                Err(e) => {
                    pb.suspend(|| eprintln!("warning: skipped {}: {e}", p.display()));
                    failed += 1;
                }
            }
        }
        if let Some(out) = d.out {
            logits.extend(out.logits);
        }
        done += d.items.len();
        pb.set(done);
        Ok(())
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
