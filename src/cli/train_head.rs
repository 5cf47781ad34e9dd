use std::path::PathBuf;
use std::process::ExitCode;

use alexnet_wgpu::data::folder::stratified_split;
use alexnet_wgpu::data::{ClassFolders, Preprocess};
use alexnet_wgpu::fsutil::write_atomic;
use alexnet_wgpu::model::Network;
use alexnet_wgpu::train::export::save_model;
use alexnet_wgpu::train::init_head::load_init_head;
use alexnet_wgpu::train::FitOutcome;
use alexnet_wgpu::train::{
    check_readable, extract_frozen, extract_pool5_with, fit_rows, frozen_dense, frozen_fc7,
    frozen_stack, Cached, FeatureSet, FitOptions, FreshViews, HeadKind, HeadWeights, Keep, Metrics,
    Optimizer, Schedule, SpillFile, TrainConfig, TrainRows,
};
use anyhow::Context;
use clap::{Args, ValueEnum};

use super::features::bar;
use super::{GpuArgs, LoadArgs, ModelArgs};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OptimizerArg {
    Sgd,
    Adam,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ScheduleArg {
    Constant,
    Cosine,
    Step,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum KeepArg {
    /// The epoch with the lowest validation loss (the last epoch without validation).
    Best,
    /// The last epoch trained (Keras' default).
    Last,
}

#[derive(Args)]
pub struct TrainHeadArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    load: LoadArgs,
    #[command(flatten)]
    gpu: GpuArgs,
    /// Training images: one sub-folder per class (class names = folder names, sorted).
    #[arg(long, value_name = "DIR", required_unless_present = "features")]
    data: Option<PathBuf>,
    /// Validation images in the same layout (default: a stratified --val-split of --data).
    #[arg(long, value_name = "DIR")]
    val: Option<PathBuf>,
    /// Share of each class held out for validation when there is no --val (0 <= S < 1).
    #[arg(long, default_value_t = 0.2, value_parser = val_fraction)]
    val_split: f64,
    /// Train from features exported by `alexnet features` instead of images.
    #[arg(long, value_name = "F.npz", conflicts_with = "data")]
    features: Option<PathBuf>,
    /// last: new last layer on frozen fc6/fc7 (= --train-from fc8); classifier: fine-tune fc6,
    /// fc7 and a new last layer (= --train-from fc6).
    #[arg(long, default_value = "last")]
    head: HeadKind,
    /// Train this layer and every layer above it (conv1..conv5, fc6, fc7, fc8, as `alexnet
    /// summary` names them); the layers below stay frozen (unchanged in the saved model), run
    /// once per image and cached (the input of the layer per image: conv4 of torchvision's
    /// AlexNet 384x13x13 floats, 260 KB; in memory up to --cache-budget-mb, else on disk);
    /// with --augment they run at every step on fresh views instead.
    #[arg(long, value_name = "LAYER", value_parser = HeadKind::from_layer, conflicts_with = "head")]
    train_from: Option<HeadKind>,
    /// Learning-rate factor of the trained layers below the new last one (trained
    /// convolutions, fc6, fc7) against the last layer's --lr. 1 (default) = one rate for all,
    /// as PyTorch fine-tuning with `requires_grad` and one parameter group does; fastai-style
    /// discriminative rates use e.g. 0.1.
    #[arg(long, value_name = "M", default_value_t = 1.0)]
    lr_backbone_mult: f32,
    /// Dropout before fc6 and fc7 when they are trained (0 <= P < 1); 0 disables.
    #[arg(long, default_value_t = 0.5, value_parser = probability_below_one)]
    dropout: f32,
    #[arg(long, default_value_t = 10, value_parser = at_least_one)]
    epochs: usize,
    /// Stop after this many optimizer steps (overrides --epochs).
    #[arg(long, value_parser = at_least_one)]
    steps: Option<usize>,
    #[arg(long, default_value_t = 32, value_parser = at_least_one)]
    batch: usize,
    /// Learning rate (finite, above 0).
    #[arg(long, default_value_t = 0.01, value_parser = finite_positive)]
    lr: f32,
    /// SGD momentum (0 <= M < 1).
    #[arg(long, default_value_t = 0.9, value_parser = probability_below_one)]
    momentum: f32,
    /// L2 weight decay (finite, 0 or more).
    #[arg(long, default_value_t = 0.0, value_parser = finite_non_negative)]
    weight_decay: f32,
    #[arg(long, value_enum, default_value = "sgd")]
    optimizer: OptimizerArg,
    #[arg(long, value_enum, default_value = "constant")]
    schedule: ScheduleArg,
    /// With --schedule step: multiply the rate by 0.1 every this many epochs.
    #[arg(long, default_value_t = 5, value_parser = at_least_one)]
    lr_step_epochs: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Visit the training images in sorted (class, file) order every epoch: the order of
    /// `alexnet features` (and of --features rows), the same in every epoch.
    #[arg(long)]
    no_shuffle: bool,
    /// Random resized crops + horizontal flips: this many views per training image, cached
    /// once (fixed views) when the convolutions are frozen; with --train-from conv1..conv5
    /// fresh views are drawn every epoch (seeded by --seed, image and epoch, so --resume
    /// repeats them) and the frozen convolutions run at every step.
    #[arg(long, value_name = "VIEWS", num_args = 0..=1, default_missing_value = "4", value_parser = at_least_one)]
    augment: Option<usize>,
    /// With --train-from conv1..conv5 (without --augment): the most memory the cached
    /// frozen-part output of the training images may take; a larger cache goes to a temporary
    /// file in --out's folder (`.alexnet-cache-*.tmp`, removed at exit and on Ctrl-C) and
    /// batches are read back from it. The validation rows stay in memory.
    #[arg(long, value_name = "MB", default_value_t = 2048)]
    cache_budget_mb: u64,
    /// Early stopping: stop when the validation loss has not improved for N epochs.
    #[arg(long)]
    patience: Option<usize>,
    /// Which epoch's weights --out gets: best = lowest validation loss (default: the
    /// validation loss is the only evidence of generalisation; without validation it is the
    /// last epoch), last = the last epoch trained (Keras' default). The summary says which.
    #[arg(long, value_enum, default_value = "best")]
    keep: KeepArg,
    /// Start from these head weights (same key names as the model file).
    #[arg(long, value_name = "FILE.npz")]
    init_head: Option<PathBuf>,
    /// Write step, loss (of the step's batch, before its update) and lr per step.
    #[arg(long, value_name = "FILE.csv")]
    log_steps: Option<PathBuf>,
    /// The trained model (backbone + new head + class names): .npz, .safetensors or .onnx.
    #[arg(long, default_value = "model.npz")]
    out: PathBuf,
    /// Let --out name the --weights file: the trained model replaces the backbone it was
    /// trained on (refused without this flag, as the backbone would be lost).
    #[arg(long)]
    replace_weights: bool,
    /// Continue exactly from the checkpoint written after every epoch: --out with its
    /// extension replaced by `.ckpt.npz` (model.npz -> model.ckpt.npz).
    #[arg(long)]
    resume: bool,
    /// Write curves.png and confusion.png here.
    #[arg(long, value_name = "DIR")]
    plot: Option<PathBuf>,
    /// Stop after N epochs as if interrupted (to test --resume).
    #[arg(long, hide = true)]
    interrupt_after: Option<usize>,
    /// Images per forward pass when extracting features.
    #[arg(long, default_value_t = 16, value_parser = at_least_one)]
    extract_batch: usize,
}

// Value parsers: a setting that cannot train (a NaN or negative rate, a batch of 0, a
// dropout that drops everything, a validation share that leaves no training images) is
// refused by clap with the accepted range, before anything is loaded, instead of running
// as something else or producing a NaN model.

fn parse_number<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))
}

/// A count of 1 or more (also `classify --top`).
pub(super) fn at_least_one(s: &str) -> Result<usize, String> {
    match parse_number::<usize>(s)? {
        0 => Err("expected 1 or more".into()),
        n => Ok(n),
    }
}

/// A finite number above 0.
fn finite_positive(s: &str) -> Result<f32, String> {
    let v: f32 = parse_number(s)?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err("expected a finite number above 0".into())
    }
}

/// A finite number of 0 or more.
fn finite_non_negative(s: &str) -> Result<f32, String> {
    let v: f32 = parse_number(s)?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err("expected a finite number of 0 or more".into())
    }
}

/// 0 <= v < 1 (a dropout of 1 drops every activation; a momentum of 1 never forgets).
fn probability_below_one(s: &str) -> Result<f32, String> {
    let v: f32 = parse_number(s)?;
    if (0.0..1.0).contains(&v) {
        Ok(v)
    } else {
        Err("expected a number from 0 up to, not including, 1".into())
    }
}

/// 0 <= v < 1: a share of 1 would leave no training images.
fn val_fraction(s: &str) -> Result<f64, String> {
    let v: f64 = parse_number(s)?;
    if (0.0..1.0).contains(&v) {
        Ok(v)
    } else {
        Err("expected a share from 0 up to, not including, 1".into())
    }
}

/// Which epoch was saved and why, for the summary line.
fn kept_summary(o: &FitOutcome) -> String {
    let with_val = o.history.iter().any(|r| r.val_loss.is_some());
    match o.kept {
        Keep::Best if with_val => format!(
            "--keep best: epoch {} of {}, the lowest validation loss",
            o.kept_epoch, o.epochs_done
        ),
        Keep::Best => format!(
            "--keep best: epoch {} of {}, the last, as there is no validation set",
            o.kept_epoch, o.epochs_done
        ),
        Keep::Last if with_val => format!(
            "--keep last: epoch {} of {}, the last; the lowest validation loss was epoch {}",
            o.kept_epoch, o.epochs_done, o.best_epoch
        ),
        Keep::Last => format!(
            "--keep last: epoch {} of {}, the last",
            o.kept_epoch, o.epochs_done
        ),
    }
}

fn subset(set: &FeatureSet, idx: &[usize]) -> FeatureSet {
    let mut out = FeatureSet {
        dim: set.dim,
        classes: set.classes.clone(),
        ..Default::default()
    };
    for &i in idx {
        out.features.extend_from_slice(set.row(i));
        out.labels.push(set.labels[i]);
        if let Some(p) = set.paths.get(i) {
            out.paths.push(p.clone());
        }
    }
    out
}

/// Refuses, before any work, an output (the model, its checkpoint, --log-steps, the plots)
/// that would replace an input or another output. `--resume` reads the checkpoint it then
/// rewrites: that one is meant.
fn check_outputs(args: &TrainHeadArgs) -> anyhow::Result<()> {
    use alexnet_wgpu::clobber::{check_outputs, same_file};
    let checkpoint = args.out.with_extension("ckpt.npz");
    let plots = args
        .plot
        .as_ref()
        .map(|d| [d.join("curves.png"), d.join("confusion.png")]);
    let mut outputs: Vec<(&str, &std::path::Path)> =
        vec![("--out", &args.out), ("--out's checkpoint", &checkpoint)];
    if let Some(p) = &args.log_steps {
        outputs.push(("--log-steps", p));
    }
    if let Some([curves, confusion]) = &plots {
        outputs.push(("--plot", curves));
        outputs.push(("--plot", confusion));
    }
    let mut inputs: Vec<(&str, &std::path::Path)> = Vec::new();
    for (flag, p) in [
        ("--data", &args.data),
        ("--val", &args.val),
        ("--features", &args.features),
        ("--init-head", &args.init_head),
    ] {
        if let Some(p) = p {
            inputs.push((flag, p));
        }
    }
    let weights = args.model.path().ok();
    if let Some(w) = &weights {
        if same_file(&args.out, w) {
            anyhow::ensure!(
                args.replace_weights,
                "--out {} is the --weights file: the trained model would replace the backbone; \
                 choose another --out, or pass --replace-weights to replace it",
                args.out.display()
            );
            // Allowed for --out only: the other outputs are still checked against it.
            check_outputs(&[("--weights", w)], &outputs[1..])?;
        } else {
            inputs.push(("--weights", w));
        }
    }
    check_outputs(&inputs, &outputs)?;
    Ok(())
}

pub fn run(args: TrainHeadArgs) -> anyhow::Result<ExitCode> {
    let out_ext = args
        .out
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    anyhow::ensure!(
        matches!(out_ext.as_deref(), Some("npz" | "safetensors" | "onnx")),
        "--out {}: the model's format follows the extension: {}",
        args.out.display(),
        alexnet_wgpu::model::formats::OUTPUT_FORMATS
    );
    check_outputs(&args)?;
    let backbone = args.model.load()?;
    let ctx = args.gpu.context()?;
    let pre = Preprocess::for_arch(backbone.arch);
    let t_start = std::time::Instant::now();
    let kind = args.train_from.unwrap_or(args.head);
    anyhow::ensure!(
        args.lr_backbone_mult.is_finite() && args.lr_backbone_mult >= 0.0,
        "--lr-backbone-mult {}: expected a finite factor of 0 or more",
        args.lr_backbone_mult
    );

    // 1. Pool5 features, computed once (per augmented view).
    let mut skipped = 0;
    // Where training reads its rows when not from the in-memory `train5` (a spilled cache or
    // fresh augmentations); dropping it removes a spill file.
    let mut train_rows: Option<Box<dyn TrainRows + '_>> = None;
    let mut fresh_skipped = 0;
    let (train5, val5) = if let Some(f) = &args.features {
        anyhow::ensure!(
            !matches!(kind, HeadKind::Conv(_)),
            "--train-from {} needs images (--data): a features file holds pool5 rows, above the layer",
            kind.first_layer()
        );
        let all = FeatureSet::load(f)?;
        all.check_trainable(f)?;
        let (tr, va) = stratified_split(&all.labels, all.classes.len(), args.val_split, args.seed);
        (subset(&all, &tr), subset(&all, &va))
    } else {
        let dir = args
            .data
            .as_ref()
            .expect("clap requires --data without --features");
        let all = ClassFolders::scan(dir)?;
        let (train_set, val_set) = match &args.val {
            Some(v) => {
                let val = ClassFolders::scan(v)?;
                anyhow::ensure!(
                    val.classes == all.classes,
                    "{} has classes {:?} but {} has {:?}",
                    v.display(),
                    val.classes,
                    dir.display(),
                    all.classes
                );
                (all, val)
            }
            None => all.split(args.val_split, args.seed),
        };
        let mut net = Network::new(&ctx, &backbone)?;
        let views = args.augment.unwrap_or(0);
        let load = args.load.options();
        let out_dir = alexnet_wgpu::fsutil::parent_dir(&args.out);
        let budget = args.cache_budget_mb.saturating_mul(1 << 20);
        let mut run = |set: &ClassFolders,
                       views: usize,
                       spill: bool,
                       what: &str|
         -> anyhow::Result<(FeatureSet, Option<SpillFile>)> {
            let pb = bar(set.items.len(), what);
            let mut file = None;
            let ex = match kind {
                HeadKind::Conv(_) => {
                    let (ex, f) = extract_frozen(
                        &ctx,
                        &backbone,
                        kind,
                        set,
                        &pre,
                        load,
                        views,
                        args.seed,
                        args.extract_batch.max(1),
                        spill.then_some((budget, out_dir.as_path())),
                        &|n| pb.set_position(n as u64),
                    )?;
                    file = f;
                    ex
                }
                _ => extract_pool5_with(
                    &mut net,
                    set,
                    &pre,
                    load,
                    views,
                    args.seed,
                    args.extract_batch.max(1),
                    &|n| pb.set_position(n as u64),
                )?,
            };
            pb.finish_and_clear();
            for (p, e) in &ex.skipped {
                eprintln!("warning: skipped unreadable image {}: {e}", p.display());
            }
            skipped += ex.skipped.len();
            let place = match &file {
                Some(f) => format!(
                    "on disk in {} (over --cache-budget-mb {})",
                    f.path().display(),
                    args.cache_budget_mb
                ),
                None => "in memory".into(),
            };
            eprintln!(
                    "{what}: {} images -> {} cached rows of {} floats ({:.1} KB each, {:.1} MB {place}) in {:.1} s ({:.2} images/s)",
                    ex.images,
                    ex.set.len(),
                    ex.set.dim,
                    ex.set.dim as f64 * 4.0 / 1e3,
                    (ex.set.len() * ex.set.dim) as f64 * 4.0 / 1e6,
                    ex.seconds,
                    ex.images as f64 / ex.seconds.max(1e-9)
                );
            Ok((ex.set, file))
        };
        let tr = if matches!(kind, HeadKind::Conv(_)) && views > 0 {
            // Fresh augmentations every epoch: nothing cached, the frozen part runs per step.
            let (readable, bad) = check_readable(&train_set, &pre, load);
            for (p, e) in &bad {
                eprintln!("warning: skipped unreadable image {}: {e}", p.display());
            }
            fresh_skipped = bad.len();
            let stack = frozen_stack(&ctx, &backbone, kind, &pre, args.batch.max(1))?;
            let fresh = FreshViews::new(&ctx, stack, &readable, views, &pre, load, args.seed);
            let set = fresh.labels(&readable.classes);
            eprintln!(
                "training images: {} -> {views} fresh augmented views each per epoch, through the frozen layers at every step",
                readable.items.len()
            );
            train_rows = Some(Box::new(fresh));
            set
        } else {
            let (set, file) = run(&train_set, views, true, "training features")?;
            if let Some(f) = file {
                train_rows = Some(Box::new(f));
            }
            set
        };
        let va = if val_set.items.is_empty() {
            FeatureSet {
                dim: tr.dim,
                classes: tr.classes.clone(),
                ..Default::default()
            }
        } else {
            run(&val_set, 0, false, "validation features")?.0
        };
        (tr, va)
    };
    skipped += fresh_skipped;
    anyhow::ensure!(!train5.is_empty(), "no training images could be read");
    let classes = train5.classes.clone();

    // 2. The `last` head trains on fc7 activations of the frozen fc6/fc7, `--train-from fc7`
    // on fc6 activations.
    let (train_x, val_x) = match kind {
        HeadKind::Last => {
            let t = std::time::Instant::now();
            let (a, b) = (
                frozen_fc7(&ctx, &backbone, &train5)?,
                frozen_fc7(&ctx, &backbone, &val5)?,
            );
            eprintln!(
                "fc7 activations for {} rows in {:.2} s",
                a.len() + b.len(),
                t.elapsed().as_secs_f64()
            );
            (a, b)
        }
        HeadKind::Fc7 => (
            frozen_dense(&ctx, &backbone, &["fc6"], &train5)?,
            frozen_dense(&ctx, &backbone, &["fc6"], &val5)?,
        ),
        HeadKind::Classifier | HeadKind::Conv(_) => (train5, val5),
    };

    // 3. Train.
    let mut head = HeadWeights::new(kind, &backbone, classes.len(), args.seed)?;
    if let Some(p) = &args.init_head {
        let flatten_source = alexnet_wgpu::model::params::flatten_source(&backbone.spec())?;
        load_init_head(p, &mut head, flatten_source)?;
    }
    let optimizer = match args.optimizer {
        OptimizerArg::Sgd => Optimizer::Sgd {
            momentum: args.momentum,
        },
        OptimizerArg::Adam => Optimizer::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
    };
    let schedule = match args.schedule {
        ScheduleArg::Constant => Schedule::Constant,
        ScheduleArg::Cosine => Schedule::Cosine,
        ScheduleArg::Step => Schedule::Step {
            every: args.lr_step_epochs,
            gamma: 0.1,
        },
    };
    let checkpoint = args.out.with_extension("ckpt.npz");
    super::set_interrupt_checkpoint(Some(checkpoint.clone()));
    let opts = FitOptions {
        epochs: args.epochs,
        steps: args.steps,
        batch: args.batch.max(1),
        lr: args.lr,
        schedule,
        shuffle: !args.no_shuffle,
        patience: args.patience,
        keep: match args.keep {
            KeepArg::Best => Keep::Best,
            KeepArg::Last => Keep::Last,
        },
        config: TrainConfig {
            optimizer,
            weight_decay: args.weight_decay,
            dropout: if kind == HeadKind::Last {
                0.0
            } else {
                args.dropout
            },
            seed: args.seed,
            lr_backbone_mult: args.lr_backbone_mult,
        },
        checkpoint: Some(checkpoint.clone()),
        resume: args.resume,
        interrupt_after: args.interrupt_after,
    };
    let steps_per_epoch = train_x.len().div_ceil(opts.batch);
    let total = opts
        .steps
        .map(|s| s.div_ceil(steps_per_epoch))
        .unwrap_or(opts.epochs);
    eprintln!(
        "training from {}: {} classes, {} training rows, {} validation rows, {} steps per epoch",
        kind.first_layer(),
        classes.len(),
        train_x.len(),
        val_x.len(),
        steps_per_epoch
    );
    let pb = bar(total, "epochs");
    let val = (!val_x.is_empty()).then_some(&val_x);
    let mut cached = Cached(&train_x);
    let rows: &mut dyn TrainRows = match &mut train_rows {
        Some(r) => r.as_mut(),
        None => &mut cached,
    };
    let outcome = fit_rows(&ctx, &head, &train_x, rows, val, &opts, &mut |r| {
        pb.set_position(r.epoch as u64);
        let v = match (r.val_loss, r.val_accuracy) {
            (Some(l), Some(a)) => format!("  val loss {l:.4} acc {:.1}%", 100.0 * a),
            _ => String::new(),
        };
        pb.suspend(|| {
            eprintln!(
                "epoch {:>3}: train loss {:.4} acc {:.1}%{v}  lr {:.4}  {:.2} s",
                r.epoch,
                r.train_loss,
                100.0 * r.train_accuracy,
                r.lr,
                r.seconds
            )
        });
    })?;
    pb.finish_and_clear();

    // 4. Save and report.
    save_model(&args.out, &backbone, &outcome.head, &classes)?;
    eprintln!("saved {} ({})", args.out.display(), kept_summary(&outcome));
    if let Some(p) = &args.log_steps {
        write_atomic(p, |f| {
            use std::io::Write;
            let mut w = std::io::BufWriter::new(f);
            writeln!(w, "step,loss,lr")?;
            for s in &outcome.steps {
                writeln!(w, "{},{},{}", s.step, s.loss, s.lr)?;
            }
            w.flush()
        })
        .with_context(|| format!("writing {}", p.display()))?;
    }
    let metrics = outcome
        .val_logits
        .as_ref()
        .map(|logits| Metrics::from_logits(&classes, logits, &val_x.labels));
    if let Some(m) = &metrics {
        println!("validation: {}", m.report());
    }
    if let Some(dir) = &args.plot {
        super::plots::write(dir, &outcome.history, metrics.as_ref())?;
    }
    if skipped > 0 {
        eprintln!("{skipped} unreadable images were skipped");
    }
    eprintln!("total {:.1} s", t_start.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}
