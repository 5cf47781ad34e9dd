use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use alexnet_wgpu::data::inputs::load_npy_batch;
use alexnet_wgpu::data::{par_map, InputItem, InputSource, LoadOptions, Preprocess};
use alexnet_wgpu::labels;
use alexnet_wgpu::model::Network;
use alexnet_wgpu::shard::{hash_names, NpyWriter, PartPaths, RunIdentity};
use anyhow::Context;
use clap::{Args, ValueEnum};

use super::sharding::{self, PartOut, ShardArgs};
use super::{GpuArgs, LoadArgs, ModelArgs};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
    /// One JSON object per input and line, flushed after every batch.
    Jsonl,
}

#[derive(Args)]
pub struct ClassifyArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    gpu: GpuArgs,
    /// Images per forward pass (default: 8 on CPU adapters such as lavapipe, 64 on GPUs; see
    /// `kernels::default_batch`). Batches over the adapter's binding limit run as sub-batches.
    #[arg(long)]
    batch: Option<usize>,
    /// How many classes to print per input.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Class names, one per line (default: the model's own, or ImageNet's for 1000 classes).
    #[arg(long, value_name = "FILE")]
    labels: Option<PathBuf>,
    /// What to print on standard output (nothing with --out-dir).
    #[arg(long, value_enum, default_value = "table", conflicts_with = "out_dir")]
    format: Format,
    /// Write the raw logits [N, classes] of the inputs that ran as float32 .npy.
    #[arg(long, value_name = "FILE.npy", conflicts_with = "out_dir")]
    logits_out: Option<PathBuf>,
    /// Write the flattened pool5 features [N, 9216] of the inputs that ran as float32 .npy.
    #[arg(long, value_name = "FILE.npy", conflicts_with = "out_dir")]
    features_out: Option<PathBuf>,
    /// With --out-dir: also write the pool5 features of the part (`.features.npy`).
    #[arg(long, requires = "out_dir")]
    with_features: bool,
    #[command(flatten)]
    sharding: ShardArgs,
    /// Weight storage on the GPU: f32, or f16 (half the memory; logits within ~1e-3 of f32).
    #[arg(long, default_value = "f32")]
    precision: alexnet_wgpu::kernels::Precision,
    /// Print how the time split between decoding and GPU work.
    #[arg(long)]
    timings: bool,
    #[command(flatten)]
    load: LoadArgs,
    /// Images, folders (walked recursively, sorted) or preprocessed [N, 3, H, W] .npy batches;
    /// `-` reads paths from standard input, one per line.
    #[arg(required_unless_present = "list", value_name = "PATH")]
    paths: Vec<PathBuf>,
}

/// One input's result: its top-k and the row of the model's outputs.
struct Row {
    name: String,
    top: Vec<(usize, f32, f32)>,
    logits: Vec<f32>,
    features: Option<Vec<f32>>,
}

/// A preprocessed `[3, H, W]` tensor with its `[H, W]`.
type Prepared = ([usize; 2], Vec<f32>);

/// Preprocessed tensor for one input, or why it failed.
fn prepare(
    item: &InputItem,
    pre: &Preprocess,
    opts: LoadOptions,
    npy_cache: &mut HashMap<PathBuf, ([usize; 4], Vec<f32>)>,
) -> anyhow::Result<Prepared> {
    match &item.source {
        InputSource::Image(p) => {
            let x = alexnet_wgpu::data::prepare(p, pre, opts)?;
            Ok(([pre.crop, pre.crop], x))
        }
        InputSource::NpyItem(p, i) => {
            if !npy_cache.contains_key(p) {
                npy_cache.clear();
                npy_cache.insert(p.clone(), load_npy_batch(p)?);
            }
            let ([_, c, h, w], data) = &npy_cache[p];
            let len = c * h * w;
            Ok(([*h, *w], data[i * len..(i + 1) * len].to_vec()))
        }
    }
}

/// Decodes and preprocesses a chunk of images on all cores; `.npy` items are sliced serially.
fn prepare_chunk(
    chunk: &[InputItem],
    pre: &Preprocess,
    opts: LoadOptions,
    npy_cache: &mut HashMap<PathBuf, ([usize; 4], Vec<f32>)>,
) -> Vec<anyhow::Result<Prepared>> {
    let images = par_map(chunk, |item| match item.source {
        InputSource::Image(_) => Some(prepare(item, pre, opts, &mut HashMap::new())),
        InputSource::NpyItem(..) => None,
    });
    chunk
        .iter()
        .zip(images)
        .map(|(item, done)| done.unwrap_or_else(|| prepare(item, pre, opts, npy_cache)))
        .collect()
}

fn top_k(probs: &[f32], logits: &[f32], k: usize) -> Vec<(usize, f32, f32)> {
    let mut idx: Vec<usize> = (0..probs.len()).collect();
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    idx.into_iter()
        .take(k)
        .map(|i| (i, probs[i], logits[i]))
        .collect()
}

pub fn run(args: ClassifyArgs) -> anyhow::Result<ExitCode> {
    if args.batch == Some(0) {
        anyhow::bail!("--batch must be at least 1");
    }
    // Every output's folder is checked before any weights are read or images decoded.
    if let Some(p) = &args.logits_out {
        sharding::check_output_file("--logits-out", p)?;
    }
    if let Some(p) = &args.features_out {
        sharding::check_output_file("--features-out", p)?;
    }
    if let Some(d) = &args.sharding.out_dir {
        sharding::prepare_out_dir(d)?;
    }
    // The whole input list, then this shard's contiguous slice of it.
    let all = sharding::read_inputs(&args.paths, args.sharding.list.as_deref())?;
    if all.is_empty() {
        anyhow::bail!("no images found in {:?}", args.paths);
    }
    let shard = args.sharding.shard();
    let range = shard.range(all.len());

    let weights_path = args.model.path()?;
    let weights = args.model.load()?;
    let model_classes =
        alexnet_wgpu::weights::meta::ModelMeta::read(&weights_path)?.map(|m| m.classes);
    let given = match (&args.labels, model_classes) {
        (Some(p), _) => Some((labels::read_labels(p)?, p.as_path())),
        (None, Some(names)) => Some((names, weights_path.as_path())),
        (None, None) => None,
    };
    let part = match &args.sharding.out_dir {
        Some(dir) => {
            let mut options = BTreeMap::new();
            options.insert("arch".into(), serde_json::json!(weights.arch));
            options.insert(
                "precision".into(),
                serde_json::json!(format!("{:?}", args.precision).to_lowercase()),
            );
            options.insert("top".into(), serde_json::json!(args.top));
            options.insert(
                "labels_sha256".into(),
                serde_json::json!(given
                    .as_ref()
                    .map(|(n, _)| hash_names(n.iter().map(String::as_str)))),
            );
            options.insert("features".into(), serde_json::json!(args.with_features));
            let run = RunIdentity {
                command: "classify".into(),
                count: shard.count,
                total_inputs: all.len(),
                list_sha256: hash_names(all.iter().map(|i| i.name())),
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
    let items: Vec<InputItem> = all[range.clone()].to_vec();
    drop(all);

    let ctx = args.gpu.context()?;
    let mut net = Network::with_precision(&ctx, &weights, args.precision)?;
    let names = labels::names_for(net.classes, given)?;
    let pre = Preprocess::for_arch(weights.arch);
    let want_features = args.features_out.is_some() || args.with_features;
    let feature_len = net.feature_len().unwrap_or(0);
    let mut sink = match &part {
        Some((paths, _)) => {
            let mut arrays = vec![("logits", net.classes)];
            if args.with_features {
                arrays.push(("features", feature_len));
            }
            Sink::new(
                &names,
                None,
                Some(PartOut::create(paths.clone(), &arrays)?),
                None,
                None,
            )?
        }
        None => Sink::new(
            &names,
            Some(args.format),
            None,
            args.logits_out
                .as_ref()
                .map(|p| NpyWriter::create(p, net.classes))
                .transpose()?,
            args.features_out
                .as_ref()
                .map(|p| NpyWriter::create(p, feature_len))
                .transpose()?,
        )?,
    };

    let bar = indicatif::ProgressBar::new(items.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} classifying [{bar:30}] {pos}/{len} {per_sec} eta {eta}",
        )
        .expect("valid template"),
    );
    let (mut decode_s, mut gpu_s) = (0f64, 0f64);
    let wall = std::time::Instant::now();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        // Decoding runs one batch ahead on CPU threads while the GPU works on the current one.
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let pre = &pre;
        let items = &items;
        let batch = args
            .batch
            .unwrap_or_else(|| alexnet_wgpu::kernels::default_batch(&ctx.info));
        let opts = args.load.options();
        scope.spawn(move || {
            let mut npy_cache = HashMap::new();
            for chunk in items.chunks(batch) {
                let t = std::time::Instant::now();
                let prepared = prepare_chunk(chunk, pre, opts, &mut npy_cache);
                if tx
                    .send((chunk, prepared, t.elapsed().as_secs_f64()))
                    .is_err()
                {
                    break;
                }
            }
        });
        for (chunk, prepared, seconds) in rx {
            decode_s += seconds;
            // Run consecutive items of the same size together (an .npy batch may differ in size).
            let mut pending: Vec<(usize, [usize; 2], Vec<f32>)> = Vec::new();
            let mut results: Vec<Option<Result<Row, String>>> =
                (0..chunk.len()).map(|_| None).collect();
            for (i, r) in prepared.into_iter().enumerate() {
                match r {
                    Ok((hw, data)) => pending.push((i, hw, data)),
                    Err(e) => {
                        bar.suspend(|| eprintln!("error: {e:#}"));
                        results[i] = Some(Err(format!("{e:#}")));
                    }
                }
            }
            let mut start = 0;
            while start < pending.len() {
                let hw = pending[start].1;
                let end = pending[start..]
                    .iter()
                    .position(|p| p.1 != hw)
                    .map_or(pending.len(), |e| start + e);
                let group = &pending[start..end];
                let input: Vec<f32> = group.iter().flat_map(|p| p.2.iter().copied()).collect();
                let t = std::time::Instant::now();
                let out = net
                    .forward(&input, group.len(), hw[0], hw[1], want_features)
                    .with_context(|| format!("running {}", chunk[group[0].0].name()))?;
                gpu_s += t.elapsed().as_secs_f64();
                for (j, (i, _, _)) in group.iter().enumerate() {
                    let c = out.classes;
                    let logits = out.logits[j * c..(j + 1) * c].to_vec();
                    let probs = &out.probs[j * c..(j + 1) * c];
                    results[*i] = Some(Ok(Row {
                        name: chunk[*i].name(),
                        top: top_k(probs, &logits, args.top),
                        logits,
                        features: out
                            .features
                            .as_ref()
                            .map(|f| f[j * out.feature_len..(j + 1) * out.feature_len].to_vec()),
                    }));
                }
                start = end;
            }
            let results: Vec<Result<Row, String>> = results
                .into_iter()
                .map(|r| r.expect("every item has a result"))
                .collect();
            bar.suspend(|| sink.batch(chunk, &results))?;
            bar.inc(chunk.len() as u64);
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    if args.timings {
        let wall = wall.elapsed().as_secs_f64();
        eprintln!(
            "{} inputs in {wall:.2} s ({:.2} images/s): decoding+preprocessing {decode_s:.2} s on CPU threads, \
             GPU forward passes {gpu_s:.2} s (the two overlap)",
            items.len(),
            items.len() as f64 / wall.max(1e-9)
        );
    }

    let (ok, failed) = (sink.ok, sink.failed);
    if let Some(out) = sink.finish()? {
        let (paths, run) = part.as_ref().expect("a part sink has a part");
        let m = out.finish(run, range.start, range.len(), failed)?;
        sharding::report_part(&m, paths);
        // The failed inputs are recorded in the part; a retry would fail the same way.
        return Ok(ExitCode::SUCCESS);
    }
    if failed > 0 {
        eprintln!("{failed} of {} inputs failed", ok + failed);
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// One input's result as JSON (the `json` array's items and the `jsonl` lines).
fn row_json(item: &InputItem, r: &Result<Row, String>, names: &[String]) -> serde_json::Value {
    match r {
        Ok(row) => serde_json::json!({
            "input": row.name,
            "top": row.top.iter().map(|(c, p, l)| serde_json::json!({
                "class": c, "label": names[*c], "probability": p, "logit": l
            })).collect::<Vec<_>>(),
        }),
        Err(e) => serde_json::json!({ "input": item.name(), "error": e }),
    }
}

/// Where each batch's results go as soon as it is done: standard output (table and CSV rows,
/// JSONL lines, flushed per batch; the JSON array at the end), `.npy` files streamed row by
/// row, or a part of a sharded run.
struct Sink<'a> {
    names: &'a [String],
    format: Option<Format>,
    json: Vec<serde_json::Value>,
    part: Option<PartOut>,
    logits: Option<NpyWriter>,
    features: Option<NpyWriter>,
    ok: usize,
    failed: usize,
}

impl<'a> Sink<'a> {
    fn new(
        names: &'a [String],
        format: Option<Format>,
        part: Option<PartOut>,
        logits: Option<NpyWriter>,
        features: Option<NpyWriter>,
    ) -> anyhow::Result<Sink<'a>> {
        if format == Some(Format::Csv) {
            println!("input,rank,class,label,probability,logit");
        }
        Ok(Sink {
            names,
            format,
            json: Vec::new(),
            part,
            logits,
            features,
            ok: 0,
            failed: 0,
        })
    }

    fn batch(
        &mut self,
        items: &[InputItem],
        results: &[Result<Row, String>],
    ) -> anyhow::Result<()> {
        let names = self.names;
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        for (item, r) in items.iter().zip(results) {
            match r {
                Ok(_) => self.ok += 1,
                Err(_) => self.failed += 1,
            }
            match (self.format, r) {
                (Some(Format::Table), Ok(row)) => {
                    writeln!(out, "{}", row.name)?;
                    for (class, prob, _) in &row.top {
                        writeln!(
                            out,
                            "  {:>6.2}%  {:>4}  {}",
                            prob * 100.0,
                            class,
                            names[*class]
                        )?;
                    }
                }
                (Some(Format::Csv), Ok(row)) => {
                    for (rank, (class, prob, logit)) in row.top.iter().enumerate() {
                        writeln!(
                            out,
                            "{},{},{},{},{prob},{logit}",
                            csv_field(&row.name),
                            rank + 1,
                            class,
                            csv_field(&names[*class])
                        )?;
                    }
                }
                (Some(Format::Json), _) => self.json.push(row_json(item, r, names)),
                (Some(Format::Jsonl), _) => {
                    writeln!(out, "{}", row_json(item, r, names))?;
                }
                _ => {}
            }
            if let Some(part) = &mut self.part {
                let line = format!("{}\n", row_json(item, r, names));
                part.jsonl.write_all(line.as_bytes())?;
            }
            if let Ok(row) = r {
                if let Some(w) = self.logits.as_mut() {
                    w.push(&row.logits)?;
                }
                if let Some(w) = self.features.as_mut() {
                    w.push(row.features.as_deref().unwrap_or_default())?;
                }
                if let Some(part) = &mut self.part {
                    if let Some(w) = part.array("logits") {
                        w.push(&row.logits)?;
                    }
                    if let Some(w) = part.array("features") {
                        w.push(row.features.as_deref().unwrap_or_default())?;
                    }
                }
            }
        }
        out.flush()?;
        Ok(())
    }

    /// Prints the JSON array, renames the `.npy` files into place; the part, if any, is
    /// finished by the caller (its manifest last).
    fn finish(self) -> anyhow::Result<Option<PartOut>> {
        if self.format == Some(Format::Json) {
            println!("{}", serde_json::to_string_pretty(&self.json)?);
        }
        if let Some(w) = self.logits {
            w.finish()?;
        }
        if let Some(w) = self.features {
            w.finish()?;
        }
        Ok(self.part)
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
