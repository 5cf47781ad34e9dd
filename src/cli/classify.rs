use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use alexnet_wgpu::data::inputs::load_npy_batch;
use alexnet_wgpu::data::stream::PipeTimes;
use alexnet_wgpu::data::{InputItem, InputSource, Preprocess};
use alexnet_wgpu::labels;
use alexnet_wgpu::model::run::run as run_network;
use alexnet_wgpu::model::{top_k, Fill, Network, RunError, RunShape};
use alexnet_wgpu::shard::{hash_names, NpyWriter, PartPaths, RunIdentity};
use alexnet_wgpu::InputErrorKind;
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
    /// Images per forward pass (default: 8 on CPU adapters such as lavapipe, 64 on GPUs).
    /// Batches over the adapter's binding limit run as sub-batches.
    #[arg(long)]
    batch: Option<usize>,
    /// How many classes to print per input (1 or more).
    #[arg(long, default_value_t = 5, value_parser = super::train_head::at_least_one)]
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
    /// Print how the time split between decoding and GPU work, and which one bounds the run.
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

/// A stretch of consecutive inputs of one geometry, run as one pipeline: images (`None`),
/// or the items of one `.npy` batch.
fn runs(items: &[InputItem]) -> Vec<(std::ops::Range<usize>, Option<PathBuf>)> {
    let key = |i: &InputItem| match &i.source {
        InputSource::Image(_) => None,
        InputSource::NpyItem(p, _) => Some(p.clone()),
    };
    let mut out: Vec<(std::ops::Range<usize>, Option<PathBuf>)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let k = key(item);
        match out.last_mut() {
            Some((r, last)) if *last == k => r.end = i + 1,
            _ => out.push((i..i + 1, k)),
        }
    }
    out
}

pub fn run(args: ClassifyArgs) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
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
    // The declared inputs and outputs were checked by `files::check`; paths read from
    // standard input are compared below, once read.
    let mut outputs: Vec<(&str, &std::path::Path)> = Vec::new();
    if let Some(p) = &args.logits_out {
        outputs.push(("--logits-out", p));
    }
    if let Some(p) = &args.features_out {
        outputs.push(("--features-out", p));
    }
    // The whole input list, then this shard's contiguous slice of it.
    let all = sharding::read_inputs(&args.paths, args.sharding.list.as_deref())?;
    if all.is_empty() {
        anyhow::bail!("no images found in {:?}", args.paths);
    }
    // The files found in input folders and lists, too.
    alexnet_wgpu::clobber::check_outputs_by_name(
        "",
        all.iter().map(|i| match &i.source {
            InputSource::Image(p) | InputSource::NpyItem(p, _) => p.as_path(),
        }),
        &outputs,
    )?;
    let shard = args.sharding.shard();
    let range = shard.range(all.len());

    let weights_path = args.model.path()?;
    let weights = args.model.load()?;
    let given = labels::given(
        args.labels
            .as_deref()
            .map(labels::GivenNames::read)
            .transpose()?,
        Some(&weights_path),
    )?;
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
                    .map(|g| hash_names(g.names.iter().map(String::as_str)))),
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
    // The batch's host buffers, refused before any output when too large (a batch larger than
    // the inputs takes only the inputs).
    let batch = args
        .batch
        .unwrap_or_else(|| alexnet_wgpu::kernels::default_batch(&ctx.info))
        .min(items.len().max(1));
    alexnet_wgpu::data::host_memory::check_batch(
        batch,
        3 * pre.crop * pre.crop,
        &format!("images of 3x{0}x{0}", pre.crop),
    )?;
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
    let opts = args.load.options();
    let mut times = PipeTimes::default();
    for (range, npy) in runs(&items) {
        let run_items = &items[range];
        // A `.npy` batch is read once per run (collect_inputs checked it whole already).
        let batch_data = npy
            .as_ref()
            .map(|p| load_npy_batch(p).map_err(|e| e.to_string()));
        let (h, w) = match &batch_data {
            Some(Ok(([_, _, h, w], _))) => (*h, *w),
            _ => (pre.crop, pre.crop),
        };
        let row_len = 3 * h * w;
        let fill = |item: &InputItem, out: &mut [f32]| -> alexnet_wgpu::Result<()> {
            match (&item.source, &batch_data) {
                (InputSource::Image(p), _) => {
                    alexnet_wgpu::data::prepare_into(p, &pre, opts, out).map(|_| ())
                }
                (InputSource::NpyItem(_, i), Some(Ok((_, data)))) => {
                    out.copy_from_slice(&data[i * row_len..(i + 1) * row_len]);
                    Ok(())
                }
                (InputSource::NpyItem(p, _), Some(Err(e))) => Err(alexnet_wgpu::Error::input(
                    p.clone(),
                    alexnet_wgpu::InputErrorKind::Malformed,
                    e.clone(),
                )),
                (InputSource::NpyItem(p, _), None) => Err(alexnet_wgpu::Error::input(
                    p.clone(),
                    alexnet_wgpu::InputErrorKind::Malformed,
                    "not read",
                )),
            }
        };
        // Images (a run without an .npy file) are decoded into cropped 8-bit pixels and
        // normalised on the GPU: a quarter of the f32 rows' upload.
        let fill_pixels = |item: &InputItem, out: &mut [u8]| -> alexnet_wgpu::Result<()> {
            match &item.source {
                InputSource::Image(p) => {
                    alexnet_wgpu::data::prepare_pixels_into(p, &pre, opts, out).map(|_| ())
                }
                InputSource::NpyItem(p, _) => Err(alexnet_wgpu::Error::input(
                    p.clone(),
                    alexnet_wgpu::InputErrorKind::Malformed,
                    "an .npy row in a run of images",
                )),
            }
        };
        let fill = if npy.is_some() {
            Fill::Floats(&fill)
        } else {
            Fill::Pixels(&fill_pixels, &pre)
        };
        let shape = RunShape::images(batch, h, w);
        // A batch's results go to the sink together, as soon as its last item is back.
        let mut results: Vec<Result<Row, Failure>> = Vec::with_capacity(batch);
        let t = run_network(&mut net, run_items, fill, shape, want_features, &mut |r| {
            results.push(match r.row {
                Ok(row) => Ok(Row {
                    name: r.item.name(),
                    top: top_k(row.logits, args.top)
                        .into_iter()
                        .map(|c| (c, row.probs[c], row.logits[c]))
                        .collect(),
                    logits: row.logits.to_vec(),
                    features: want_features.then(|| row.features.to_vec()),
                }),
                Err(e) => {
                    bar.suspend(|| eprintln!("error: {}", super::hint::input_failure(&e)));
                    let message = e.to_string();
                    let name = r.item.name();
                    let kind = e
                        .into_input(std::path::Path::new(&name), InputErrorKind::Unreadable)
                        .kind;
                    Err(Failure { message, kind })
                }
            });
            if r.batch_end {
                let first = r.index + 1 - results.len();
                bar.suspend(|| sink.batch(&run_items[first..=r.index], &results))?;
                bar.inc(results.len() as u64);
                results.clear();
            }
            Ok(())
        });
        let t = match t {
            Ok(t) => t,
            Err(RunError::Callback(e)) => return Err(e),
            Err(RunError::Network(e)) => return Err(e).context("running the network"),
        };
        times.add(&t);
    }
    bar.finish_and_clear();
    if args.timings {
        eprintln!("{}", times.summary());
        let batch = args
            .batch
            .unwrap_or_else(|| alexnet_wgpu::kernels::default_batch(&ctx.info));
        for (layer, kernels) in net.kernel_plan(batch, pre.crop, pre.crop)? {
            eprintln!("kernels: {layer}: {}", kernels.join(", "));
        }
        eprintln!(
            "{:.2} s in all, of which {:.2} s loading the weights, opening the device and \
             compiling pipelines before the first input",
            started.elapsed().as_secs_f64(),
            (started.elapsed().as_secs_f64() - times.wall_s).max(0.0)
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

/// Why one input failed: the message (naming the input) and its kind, which the JSON rows
/// carry as `error_kind` (`not_found`, `decode`, `truncated`, ...: the library's
/// `InputErrorKind`, as serde names it).
struct Failure {
    message: String,
    kind: InputErrorKind,
}

/// One input's result as JSON (the `json` array's items and the `jsonl` lines).
fn row_json(item: &InputItem, r: &Result<Row, Failure>, names: &[String]) -> serde_json::Value {
    match r {
        Ok(row) => serde_json::json!({
            "input": row.name,
            "top": row.top.iter().map(|(c, p, l)| serde_json::json!({
                "class": c, "label": names[*c], "probability": p, "logit": l
            })).collect::<Vec<_>>(),
        }),
        Err(e) => serde_json::json!({
            "input": item.name(), "error": e.message, "error_kind": e.kind
        }),
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
            // `error` is empty on the rows of inputs that ran; an input that failed has one row
            // with only `input` and `error`, as the JSON formats have an error object.
            println!("input,rank,class,label,probability,logit,error");
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
        results: &[Result<Row, Failure>],
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
                            "{},{},{},{},{prob},{logit},",
                            csv_field(&row.name),
                            rank + 1,
                            class,
                            csv_field(&names[*class])
                        )?;
                    }
                }
                (Some(Format::Csv), Err(e)) => {
                    writeln!(
                        out,
                        "{},,,,,,{}",
                        csv_field(&item.name()),
                        csv_field(&e.message)
                    )?;
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
