use std::cell::RefCell;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;

use alexnet_wgpu::fine_tune::{FineTune, Trained};
use alexnet_wgpu::fsutil::write_atomic;
use alexnet_wgpu::train::{FeatureSet, HeadKind, Keep, Optimizer, Schedule};
use anyhow::Context;
use clap::{Args, ValueEnum};

use super::meter::Meter;
use super::plural::count;
use super::{GpuArgs, LoadArgs, ModelArgs};

mod show;
use show::show;

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

/// `train-head`'s flags, grouped under help headings in the order a run uses them: the
/// backbone, the data, what trains, how (optimizer, schedule), memory, outputs, the GPU.
#[derive(Args)]
pub struct TrainHeadArgs {
    #[command(flatten, next_help_heading = "Model")]
    model: ModelArgs,

    /// Training images: one sub-folder per class (class names = folder names, sorted). A
    /// folder holding `train/` and `val/` (or `valid/`, `validation/`), each with the class
    /// folders, is a split dataset: its `train/` trains and its `val/` validates.
    #[arg(long, value_name = "DIR", required_unless_present = "features")]
    #[arg(help_heading = "Data")]
    data: Option<PathBuf>,
    /// Validation images in the same layout (default: a stratified --val-split of --data).
    #[arg(long, value_name = "DIR", help_heading = "Data")]
    val: Option<PathBuf>,
    /// Share of each class held out for validation when there is no --val (0 <= S < 1)
    /// [default: 0.2]; refused with --val or a split dataset, which have their own.
    #[arg(long, value_name = "S", value_parser = val_fraction, help_heading = "Data")]
    val_split: Option<f64>,
    /// Train from features exported by `alexnet features` instead of images.
    #[arg(
        long,
        value_name = "F.npz",
        conflicts_with = "data",
        help_heading = "Data"
    )]
    features: Option<PathBuf>,

    /// Train this layer and every layer above it (conv1..conv5, fc6, fc7, fc8, as `alexnet
    /// summary` names them), the last one replaced by a new layer for your classes; the layers
    /// below stay frozen (unchanged in the saved model), run once per image and cached (the
    /// input of the layer per image: conv4 of torchvision's AlexNet 384x13x13 floats, 260 KB;
    /// in memory up to --cache-budget-mb, else on disk); with --augment they run at every
    /// step on fresh views instead. Default: fc8 (= --head last).
    #[arg(long, value_name = "LAYER", value_parser = HeadKind::from_layer, conflicts_with = "head")]
    #[arg(help_heading = "What to train")]
    train_from: Option<HeadKind>,
    /// Shorthands for --train-from: last = only the new last layer, on frozen fc6/fc7
    /// (= fc8); classifier = fc6, fc7 and the new last layer (= fc6).
    #[arg(long, default_value = "last", help_heading = "What to train")]
    head: HeadKind,
    /// Start the trained layers from these weights (same key names as the model file).
    #[arg(long, value_name = "FILE.npz", help_heading = "What to train")]
    init_head: Option<PathBuf>,
    /// Dropout before fc6 and fc7 when they are trained (0 <= P < 1); 0 disables.
    #[arg(long, default_value_t = 0.5, value_parser = probability_below_one)]
    #[arg(help_heading = "What to train")]
    dropout: f32,
    /// Learning-rate factor of the trained layers below the new last one (trained
    /// convolutions, fc6, fc7) against the last layer's --lr. 1 (default) = one rate for all,
    /// as PyTorch fine-tuning with `requires_grad` and one parameter group does; fastai-style
    /// discriminative rates use e.g. 0.1.
    #[arg(
        long,
        value_name = "M",
        default_value_t = 1.0,
        help_heading = "What to train"
    )]
    lr_backbone_mult: f32,

    /// sgd (with --momentum) or adam (with --adam-beta1, --adam-beta2, --adam-eps).
    #[arg(long, value_enum, default_value = "sgd", help_heading = "Optimizer")]
    optimizer: OptimizerArg,
    /// Learning rate (above 0, at most 10: above, nothing trains).
    #[arg(long, default_value_t = 0.01, value_parser = learning_rate)]
    #[arg(help_heading = "Optimizer")]
    lr: f32,
    /// SGD momentum (0 <= M < 1) [default: 0.9]; refused with --optimizer adam.
    #[arg(long, value_name = "M", value_parser = probability_below_one)]
    #[arg(help_heading = "Optimizer")]
    momentum: Option<f32>,
    /// Adam's first-moment decay (0 <= B < 1) [default: 0.9]; refused with --optimizer sgd.
    #[arg(long, value_name = "B", value_parser = probability_below_one)]
    #[arg(help_heading = "Optimizer")]
    adam_beta1: Option<f32>,
    /// Adam's second-moment decay (0 <= B < 1) [default: 0.999]; refused with --optimizer sgd.
    #[arg(long, value_name = "B", value_parser = probability_below_one)]
    #[arg(help_heading = "Optimizer")]
    adam_beta2: Option<f32>,
    /// Adam's epsilon (finite, above 0) [default: 1e-8]; refused with --optimizer sgd.
    #[arg(long, value_name = "E", value_parser = finite_positive, help_heading = "Optimizer")]
    adam_eps: Option<f32>,
    /// L2 weight decay (finite, 0 or more).
    #[arg(long, default_value_t = 0.0, value_parser = finite_non_negative)]
    #[arg(help_heading = "Optimizer")]
    weight_decay: f32,

    /// Passes over the training images.
    #[arg(long, default_value_t = 10, value_parser = at_least_one)]
    #[arg(help_heading = "Schedule and stopping")]
    epochs: usize,
    /// Stop after this many optimizer steps (overrides --epochs).
    #[arg(long, value_parser = at_least_one, help_heading = "Schedule and stopping")]
    steps: Option<usize>,
    /// Training images (rows) per optimizer step.
    #[arg(long, default_value_t = 32, value_parser = at_least_one)]
    #[arg(help_heading = "Schedule and stopping")]
    batch: usize,
    /// How --lr changes over the run: constant, cosine (decaying to 0 over all steps) or step
    /// (see --lr-step-epochs).
    #[arg(long, value_enum, default_value = "constant")]
    #[arg(help_heading = "Schedule and stopping")]
    schedule: ScheduleArg,
    /// With --schedule step: multiply the rate by 0.1 every this many epochs.
    #[arg(long, default_value_t = 5, value_parser = at_least_one)]
    #[arg(help_heading = "Schedule and stopping")]
    lr_step_epochs: usize,
    /// Early stopping: stop when the validation loss has not improved for N epochs.
    #[arg(long, help_heading = "Schedule and stopping")]
    patience: Option<usize>,
    /// Which epoch's weights --out gets: best = lowest validation loss (default: the
    /// validation loss is the only evidence of generalisation; without validation it is the
    /// last epoch), last = the last epoch trained (Keras' default). The summary says which.
    #[arg(
        long,
        value_enum,
        default_value = "best",
        help_heading = "Schedule and stopping"
    )]
    keep: KeepArg,
    /// Seeds the validation split, the new layer, the order, dropout and augmentations.
    #[arg(long, default_value_t = 0, help_heading = "Schedule and stopping")]
    seed: u64,
    /// Visit the training images in sorted (class, file) order every epoch: the order of
    /// `alexnet features` (and of --features rows), the same in every epoch.
    #[arg(long, help_heading = "Schedule and stopping")]
    no_shuffle: bool,

    /// Random resized crops + horizontal flips: this many views per training image, cached
    /// once (fixed views) when the convolutions are frozen; with --train-from conv1..conv5
    /// fresh views are drawn every epoch (seeded by --seed, image and epoch, so --resume
    /// repeats them) and the frozen convolutions run at every step.
    #[arg(long, value_name = "VIEWS", num_args = 0..=1, default_missing_value = "4", value_parser = at_least_one)]
    #[arg(help_heading = "Augmentation and memory")]
    augment: Option<usize>,
    /// With --train-from conv1..conv5 (without --augment): the most memory the cached
    /// frozen-part output of the training images may take; a larger cache goes to a temporary
    /// file in --out's folder (`.alexnet-cache-*.tmp`, removed at exit and on Ctrl-C) and
    /// batches are read back from it. The validation rows stay in memory.
    #[arg(long, value_name = "MB", default_value_t = 2048)]
    #[arg(help_heading = "Augmentation and memory")]
    cache_budget_mb: u64,
    /// Images per forward pass when extracting features.
    #[arg(long, default_value_t = 16, value_parser = at_least_one)]
    #[arg(help_heading = "Augmentation and memory")]
    extract_batch: usize,
    #[command(flatten, next_help_heading = "Image decoding")]
    load: LoadArgs,

    /// The trained model (backbone + new last layer + class names): .npz, .safetensors or
    /// .onnx.
    #[arg(
        long,
        default_value = "model.npz",
        help_heading = "Output and checkpoints"
    )]
    out: PathBuf,
    /// Let --out name the --weights file: the trained model replaces the backbone it was
    /// trained on (refused without this flag, as the backbone would be lost).
    #[arg(long, help_heading = "Output and checkpoints")]
    replace_weights: bool,
    /// Continue exactly from the checkpoint written after every epoch: --out with its
    /// extension replaced by `.ckpt.npz` (model.npz -> model.ckpt.npz). The checkpoint is
    /// removed once --out is written (it stays after a failed or interrupted run).
    #[arg(long, help_heading = "Output and checkpoints")]
    resume: bool,
    /// Keep the checkpoint (--out's `.ckpt.npz`) after a successful run.
    #[arg(long, help_heading = "Output and checkpoints")]
    keep_checkpoint: bool,
    /// Write step, loss (of the step's batch, before its update) and lr per step.
    #[arg(long, value_name = "FILE.csv", help_heading = "Output and checkpoints")]
    log_steps: Option<PathBuf>,
    /// Write curves.png and confusion.png here.
    #[arg(long, value_name = "DIR", help_heading = "Output and checkpoints")]
    plot: Option<PathBuf>,
    /// Stop after N epochs as if interrupted (to test --resume).
    #[arg(long, hide = true)]
    interrupt_after: Option<usize>,

    #[command(flatten)]
    gpu: GpuArgs,
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

/// A learning rate: finite, above 0, at most the library's bound.
fn learning_rate(s: &str) -> Result<f32, String> {
    let v: f32 = parse_number(s)?;
    let max = alexnet_wgpu::fine_tune::MAX_LR;
    if v.is_finite() && v > 0.0 && v <= max {
        Ok(v)
    } else {
        Err(format!(
            "expected a finite number above 0 and at most {max} (above, nothing trains)"
        ))
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
fn kept_summary(o: &Trained) -> String {
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

/// SGD's momentum when `--momentum` is not given.
const DEFAULT_MOMENTUM: f32 = 0.9;

/// The optimizer the flags name. Adam's flags with `--optimizer sgd` are refused rather than
/// ignored: a setting that silently does nothing would be read as having been used.
fn optimizer(args: &TrainHeadArgs) -> anyhow::Result<Optimizer> {
    Ok(match args.optimizer {
        OptimizerArg::Sgd => {
            let given: Vec<&str> = [
                ("--adam-beta1", args.adam_beta1.is_some()),
                ("--adam-beta2", args.adam_beta2.is_some()),
                ("--adam-eps", args.adam_eps.is_some()),
            ]
            .iter()
            .filter_map(|&(f, on)| on.then_some(f))
            .collect();
            anyhow::ensure!(
                given.is_empty(),
                "{} set(s) Adam's hyper-parameters, but --optimizer is sgd; add --optimizer adam",
                given.join(", ")
            );
            Optimizer::Sgd {
                momentum: args.momentum.unwrap_or(DEFAULT_MOMENTUM),
            }
        }
        OptimizerArg::Adam if args.momentum.is_some() => anyhow::bail!(
            "--momentum is SGD's; Adam's moments are --adam-beta1 and --adam-beta2 (or use \
             --optimizer sgd)"
        ),
        OptimizerArg::Adam => Optimizer::Adam {
            beta1: args.adam_beta1.unwrap_or(Optimizer::ADAM_BETA1),
            beta2: args.adam_beta2.unwrap_or(Optimizer::ADAM_BETA2),
            eps: args.adam_eps.unwrap_or(Optimizer::ADAM_EPS),
        },
    })
}

/// The validation share: `--val-split`'s, refused where another validation set is in use
/// (`--val`, a split dataset's `val/`) rather than silently ignored.
fn val_split(args: &TrainHeadArgs) -> anyhow::Result<f64> {
    let Some(split) = args.val_split else {
        return Ok(alexnet_wgpu::fine_tune::DEFAULT_VAL_SPLIT);
    };
    if let Some(v) = &args.val {
        anyhow::bail!(
            "--val-split {split} and --val {}: --val is the validation set; give one of them",
            v.display()
        );
    }
    if let Some(d) = &args.data {
        let dirs = alexnet_wgpu::data::dataset::resolve(d, None)?;
        if let (true, Some(v)) = (dirs.split_dataset, &dirs.val) {
            anyhow::bail!(
                "--val-split {split}: {} is a split dataset, whose {} is the validation set; drop \
                 --val-split (or train on {} alone to split it)",
                d.display(),
                v.display(),
                dirs.train.display()
            );
        }
    }
    Ok(split)
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
    let optimizer = optimizer(&args)?;
    let val_split = val_split(&args)?;
    let checkpoint = args.out.with_extension("ckpt.npz");
    if args.resume && !checkpoint.exists() {
        eprintln!(
            "note: --resume: no checkpoint {} yet, so training starts from the first epoch",
            checkpoint.display()
        );
    }
    let backbone = args.model.load()?;
    let ctx = args.gpu.context()?;
    let t_start = std::time::Instant::now();
    let kind = args.train_from.unwrap_or(args.head);
    anyhow::ensure!(
        args.lr_backbone_mult.is_finite() && args.lr_backbone_mult >= 0.0,
        "--lr-backbone-mult {}: expected a finite factor of 0 or more",
        args.lr_backbone_mult
    );
    let schedule = match args.schedule {
        ScheduleArg::Constant => Schedule::Constant,
        ScheduleArg::Cosine => Schedule::Cosine,
        ScheduleArg::Step => Schedule::Step {
            every: args.lr_step_epochs,
            gamma: 0.1,
        },
    };
    let pb: Rc<RefCell<Option<Meter>>> = Rc::default();
    let mut ft = FineTune::with_weights(&ctx, backbone)
        .train_from(kind)
        .epochs(args.epochs)
        .steps(args.steps)
        .batch(args.batch)
        .lr(args.lr)
        .lr_backbone_mult(args.lr_backbone_mult)
        .optimizer(optimizer)
        .weight_decay(args.weight_decay)
        .dropout(args.dropout)
        .schedule(schedule)
        .seed(args.seed)
        .shuffle(!args.no_shuffle)
        .augment(args.augment.unwrap_or(0))
        .val_split(val_split)
        .patience(args.patience)
        .keep(match args.keep {
            KeepArg::Best => Keep::Best,
            KeepArg::Last => Keep::Last,
        })
        .checkpoint(&checkpoint)
        .resume(args.resume)
        .interrupt_after(args.interrupt_after)
        .cache_budget(args.cache_budget_mb.saturating_mul(1 << 20))
        .spill_dir(alexnet_wgpu::fsutil::parent_dir(&args.out))
        .extract_batch(args.extract_batch)
        .load_options(args.load.options())
        .on_progress(show(&pb, &checkpoint, args.cache_budget_mb, args.batch));
    if let Some(p) = &args.init_head {
        ft = ft.init_head(p);
    }
    let trained = if let Some(f) = &args.features {
        anyhow::ensure!(
            !matches!(kind, HeadKind::Conv(_)),
            "--train-from {} needs images (--data): a features file holds pool5 rows, above the layer",
            kind.first_layer()
        );
        let all = FeatureSet::load(f)?;
        all.check_trainable(f)?;
        ft.fit_features(&all)?
    } else {
        let dir = args
            .data
            .as_ref()
            .expect("clap requires --data without --features");
        if let Some(v) = &args.val {
            ft = ft.val_folder(v);
        }
        ft.fit(dir)?
    };
    if let Some(m) = pb.borrow_mut().take() {
        m.finish();
    }

    // Save and report.
    trained.save(&args.out)?;
    eprintln!("saved {} ({})", args.out.display(), kept_summary(&trained));
    // The checkpoint (the size of the model, 228 MB for AlexNet) has served its purpose once
    // the model is written: removed, unless asked for or the run stopped early on purpose
    // (--interrupt-after stands for Ctrl-C, after which --resume needs it).
    if !args.keep_checkpoint && args.interrupt_after.is_none() {
        super::set_interrupt_checkpoint(None);
        match std::fs::remove_file(&checkpoint) {
            Ok(()) => eprintln!(
                "removed the checkpoint {} (--keep-checkpoint keeps it)",
                checkpoint.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => eprintln!(
                "warning: could not remove the checkpoint {}: {e}",
                checkpoint.display()
            ),
        }
    }
    if let Some(p) = &args.log_steps {
        write_atomic(p, |f| {
            use std::io::Write;
            let mut w = std::io::BufWriter::new(f);
            writeln!(w, "step,loss,lr")?;
            for s in &trained.steps {
                writeln!(w, "{},{},{}", s.step, s.loss, s.lr)?;
            }
            w.flush()
        })
        .with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(m) = &trained.metrics {
        println!("validation: {}", m.report());
    }
    if let Some(dir) = &args.plot {
        super::plots::write(dir, &trained.history, trained.metrics.as_ref())?;
    }
    if !trained.skipped.is_empty() {
        let n = trained.skipped.len();
        eprintln!(
            "{} {} skipped",
            count(n, "unreadable image", "unreadable images"),
            if n == 1 { "was" } else { "were" }
        );
    }
    eprintln!("total {:.1} s", t_start.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}
