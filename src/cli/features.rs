use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use alexnet_wgpu::data::{ClassFolders, InputSource, Preprocess};
use alexnet_wgpu::model::{Network, Tap, TapLayers};
use alexnet_wgpu::shard::{hash_names, PartPaths, RunIdentity};
use alexnet_wgpu::train::feature_set::LAYER_KEY;
use alexnet_wgpu::train::{stream_pool5, FeatureSet, PoolBatch};
use alexnet_wgpu::weights::{write_npz, NpzEntry};
use clap::builder::TypedValueParser;
use clap::{Args, ValueEnum};

use super::sharding::{self, PartOut, ShardArgs};
use super::{GpuArgs, LoadArgs, ModelArgs};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FeaturesFormat {
    /// One JSON object per input and line (`input`, `features`), flushed after every batch.
    Jsonl,
}

#[derive(Args)]
pub struct FeaturesArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    gpu: GpuArgs,
    /// One sub-folder of images per class (the labels are the folder names).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["paths", "list"])]
    data: Option<PathBuf>,
    /// Images or folders (walked recursively, sorted) instead of --data; `-` reads paths from
    /// standard input, one per line.
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Output .npz: features [N, D] f32, layer (its name), paths, and with --data also labels
    /// [N] int64 and classes (at pool5, what `train-head --features` reads).
    #[arg(long, value_name = "FILE.npz", conflicts_with_all = ["out_dir", "format"])]
    out: Option<PathBuf>,
    /// Where the features are taken: pool5 (the flattened last pooling, D = 9216 for the
    /// full net), fc6 or fc7 (D = 4096 each, after their ReLU: fc7 is torchvision's
    /// classifier[5] output, the usual "fc7 features"; fc6 is classifier[2]'s).
    #[arg(long, default_value = "pool5", value_parser = layer_parser())]
    layer: Tap,
    /// Print to standard output instead of writing --out.
    #[arg(long, value_enum, conflicts_with = "out_dir")]
    format: Option<FeaturesFormat>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    #[command(flatten)]
    sharding: ShardArgs,
    #[command(flatten)]
    load: LoadArgs,
    /// Print how the time split between decoding and GPU work, and which one bounds the run.
    #[arg(long)]
    timings: bool,
}

/// `--layer`'s values: the taps' names, checked by clap (listed in the help and the error).
fn layer_parser() -> impl TypedValueParser<Value = Tap> {
    clap::builder::PossibleValuesParser::new(Tap::ALL.map(Tap::name))
        .map(|name| name.parse::<Tap>().expect("a listed layer"))
}

pub fn run(args: FeaturesArgs) -> anyhow::Result<ExitCode> {
    if args.out.is_none() && args.sharding.out_dir.is_none() && args.format.is_none() {
        anyhow::bail!("say where the features go: --out FILE.npz, --out-dir DIR or --format jsonl");
    }
    // Every output's folder is checked before any weights are read or images decoded.
    if let Some(p) = &args.out {
        sharding::check_output_file("--out", p)?;
    }
    if let Some(d) = &args.sharding.out_dir {
        sharding::prepare_out_dir(d)?;
    }
    // The declared inputs and outputs were checked by `files::check`; paths read from
    // standard input are compared below, once read.
    let outputs: Vec<(&str, &std::path::Path)> =
        args.out.iter().map(|p| ("--out", p.as_path())).collect();
    // The whole input list (class folders, or paths with no labels), then this shard's slice.
    let labelled = args.data.is_some();
    let (classes, all) = match &args.data {
        Some(dir) => {
            // One class is fine here: the features of a single folder are still features.
            // The one dataset resolution of every command (as `train-head --data`): a split
            // dataset would otherwise be exported as the two classes "train" and "val".
            let dirs = alexnet_wgpu::data::dataset::resolve(dir, None)?;
            if let (true, Some(val)) = (dirs.split_dataset, &dirs.val) {
                anyhow::bail!(
                    "{} is a split dataset ({} and {}): export each split on its own, \
                     --data {} (what train-head --features trains on) and --data {}",
                    dir.display(),
                    dirs.train.display(),
                    val.display(),
                    dirs.train.display(),
                    val.display()
                );
            }
            let data = ClassFolders::scan_labelled(&dirs.train)?;
            (data.classes, data.items)
        }
        None => {
            if args.paths.is_empty() && args.sharding.list.is_none() {
                anyhow::bail!("give the images: --data DIR (class folders), PATHs, - (standard input) or --list FILE");
            }
            let items = sharding::read_inputs(&args.paths, args.sharding.list.as_deref())?;
            let paths = items
                .into_iter()
                .map(|i| match i.source {
                    InputSource::Image(p) => Ok((p, 0)),
                    InputSource::NpyItem(p, _) => anyhow::bail!(
                        "{}: features takes images; preprocessed .npy batches go to `classify --features-out`",
                        p.display()
                    ),
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            if paths.is_empty() {
                anyhow::bail!("no images found in {:?}", args.paths);
            }
            (Vec::new(), paths)
        }
    };
    alexnet_wgpu::clobber::check_outputs_by_name(
        "",
        all.iter().map(|(p, _)| p.as_path()),
        &outputs,
    )?;
    let shard = args.sharding.shard();
    let range = shard.range(all.len());

    let weights = args.model.load()?;
    let part = match &args.sharding.out_dir {
        Some(dir) => {
            let mut options = BTreeMap::new();
            options.insert("arch".into(), serde_json::json!(weights.arch));
            options.insert("layer".into(), serde_json::json!(args.layer.name()));
            options.insert(
                "classes".into(),
                if labelled {
                    serde_json::json!(classes)
                } else {
                    serde_json::Value::Null
                },
            );
            let run = RunIdentity {
                command: "features".into(),
                count: shard.count,
                total_inputs: all.len(),
                list_sha256: hash_names(all.iter().map(|(p, l)| format!("{}\t{l}", p.display()))),
                model_sha256: sharding::model_sha256(&weights),
                options,
            };
            let paths = PartPaths::new(dir, shard);
            if args.sharding.skip_existing {
                if let Some(m) = sharding::existing_part(&paths, &run, range.start, range.len()) {
                    return Ok(sharding::report_skipped(&paths, &m));
                }
            }
            Some((paths, run))
        }
        None => None,
    };
    let items = all[range.clone()].to_vec();
    drop(all);

    let ctx = args.gpu.context()?;
    let mut net = Network::new(&ctx, &weights)?;
    let mut layers = TapLayers::new(&ctx, &weights, args.layer, net.feature_len().unwrap_or(0))?;
    let dim = layers.dim();
    let pre = Preprocess::for_arch(weights.arch);
    let batch = args.batch.max(1);
    let mut out_part = match &part {
        Some((paths, _)) => Some(PartOut::create(paths.clone(), &[("features", dim)])?),
        None => None,
    };
    let mut set = FeatureSet {
        dim,
        classes: classes.clone(),
        ..Default::default()
    };
    let mut failed = 0usize;
    // A bar on a terminal, plain progress lines when piped.
    let mut pb = super::meter::Meter::new(items.len(), "features", "images");
    let mut done = 0usize;
    let start = std::time::Instant::now();
    let collect_all = args.out.is_some();
    // An output error inside the pipeline's callback, returned as is after the run.
    let mut write_err: Option<anyhow::Error> = None;
    let times = stream_pool5(
        &mut net,
        &items,
        &pre,
        args.load.options(),
        0,
        0,
        batch,
        &mut |b: PoolBatch| {
            // This batch's rows at the tap (pool5's own rows at pool5).
            let tap_rows = layers.apply(&ctx, b.features)?;
            let mut write = || -> anyhow::Result<()> {
                // Each input in order: the next row of the batch, or why it failed.
                let mut rows = tap_rows.chunks(dim.max(1));
                let stdout = std::io::stdout();
                let mut stdout = std::io::BufWriter::new(stdout.lock());
                for ((path, label), st) in b.items.iter().zip(&b.status) {
                    let mut line = serde_json::json!({ "input": path.display().to_string() });
                    if labelled {
                        line["label"] = serde_json::json!(label);
                        line["class"] = serde_json::json!(classes[*label]);
                    }
                    let features = match st {
                        Err(e) => {
                            let why = super::hint::input_failure(e);
                            pb.suspend(|| eprintln!("warning: skipped {}: {why}", path.display()));
                            line = serde_json::json!({
                                "input": path.display().to_string(),
                                "error": e.to_string(),
                            });
                            failed += 1;
                            None
                        }
                        Ok(()) => rows.next(),
                    };
                    if let Some(out) = &mut out_part {
                        out.jsonl.write_all(format!("{line}\n").as_bytes())?;
                        if let (Some(f), Some(w)) = (features, out.array("features")) {
                            w.push(f)?;
                        }
                    }
                    if args.format == Some(FeaturesFormat::Jsonl) {
                        if let Some(f) = features {
                            line["features"] = serde_json::json!(f);
                        }
                        writeln!(stdout, "{line}")?;
                    }
                    if collect_all && features.is_some() {
                        set.labels.push(*label);
                        set.paths.push(path.display().to_string());
                    }
                }
                stdout.flush()?;
                Ok(())
            };
            if let Err(e) = write() {
                write_err = Some(e);
                return Err(alexnet_wgpu::Error::Invalid(
                    "writing the features failed".into(),
                ));
            }
            if collect_all {
                set.features.extend_from_slice(&tap_rows);
            }
            done += b.items.len();
            pb.set(done);
            Ok(())
        },
    );
    if let Some(e) = write_err {
        return Err(e);
    }
    let times = times?;
    pb.finish();
    let seconds = start.elapsed().as_secs_f64();
    if args.timings {
        eprintln!("{}", times.summary());
    }
    if let (Some(out), Some((paths, run))) = (out_part, &part) {
        let m = out.finish(run, range.start, range.len(), failed)?;
        sharding::report_part(&m, paths);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(path) = &args.out {
        if labelled {
            set.save(path, args.layer.name())?;
        } else {
            let shape = [set.paths.len(), dim];
            write_npz(
                path,
                &[
                    ("features".into(), NpzEntry::F32(&shape, &set.features)),
                    ("paths".into(), NpzEntry::Str(&set.paths)),
                    (LAYER_KEY.into(), NpzEntry::Str(&[args.layer.name().into()])),
                ],
            )?;
        }
        let (n, c) = (set.paths.len(), set.classes.len());
        eprintln!(
            "wrote {} ({n} image{} x {dim} {} features, {c} class{}) in {seconds:.1} s",
            path.display(),
            if n == 1 { "" } else { "s" },
            args.layer,
            if c == 1 { "" } else { "es" },
        );
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
