//! [`FineTune`]: the `alexnet train-head` recipe as a builder. Its defaults are the command's:
//! a new last layer on the frozen backbone (`HeadKind::Last`), 10 epochs of SGD (momentum 0.9)
//! at 0.01 in batches of 32, a stratified 20% of each class held out for validation, the epoch
//! with the lowest validation loss kept.
//!
//! ```no_run
//! use alexnet_wgpu::fine_tune::FineTune;
//! use alexnet_wgpu::gpu::{AdapterChoice, GpuContext};
//! use alexnet_wgpu::model::Weights;
//! use alexnet_wgpu::train::HeadKind;
//!
//! # fn main() -> alexnet_wgpu::Result<()> {
//! let backbone = Weights::load("alexnet.npz".as_ref(), None)?;
//! let ctx = GpuContext::new(&AdapterChoice::default())?;
//! let trained = FineTune::new(&ctx, &backbone)
//!     .train_from(HeadKind::Conv(4))
//!     .epochs(5)
//!     .on_epoch(|e| println!("epoch {}: loss {:.4}", e.epoch, e.train_loss))
//!     .fit("photos")?;
//! if let Some(m) = &trained.metrics {
//!     println!("validation: {}", m.report());
//! }
//! trained.save("model.npz")?;
//! # Ok(())
//! # }
//! ```
//!
//! The library prints nothing: what the command shows (progress bars, the per-epoch lines,
//! skipped images) comes through [`FineTune::on_progress`] and [`FineTune::on_epoch`], and the
//! skipped images are also in [`Trained::skipped`].

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::data::folder::stratified_split;
use crate::data::{ClassFolders, LoadOptions, Preprocess};
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::model::{Network, Weights};
use crate::train::export::{save_model, with_head};
use crate::train::init_head::load_init_head;
use crate::train::{
    check_readable, extract_frozen, extract_pool5_with, fit_rows, frozen_dense, frozen_fc7,
    frozen_stack, Cached, EpochRecord, FeatureSet, FitOptions, FreshViews, HeadKind, HeadWeights,
    Keep, Metrics, Optimizer, Schedule, SpillFile, StepRecord, TrainConfig, TrainRows,
};

/// What a run is doing, for progress displays ([`FineTune::on_progress`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum Progress<'a> {
    /// `done` of `total` images of `what` ("training features", "validation features") run
    /// through the frozen layers; the first report of a pass has `done` = 0.
    Extracting {
        what: &'a str,
        done: usize,
        total: usize,
    },
    /// An image that could not be read, left out of training (also in [`Trained::skipped`]).
    Skipped { path: &'a Path, error: &'a str },
    /// A pass finished: `images` images gave `rows` cached rows of `dim` floats, held in memory
    /// or, over the cache budget, in the temporary file `spill`.
    Extracted {
        what: &'a str,
        images: usize,
        rows: usize,
        dim: usize,
        seconds: f64,
        spill: Option<&'a Path>,
    },
    /// Convolutions train on fresh augmentations: `views` per image and epoch, nothing cached.
    FreshViews { images: usize, views: usize },
    /// The frozen dense layers below the trained ones ran on the cached rows: `layer` is the
    /// output ("fc7" for `HeadKind::Last`, "fc6" for `HeadKind::Fc7`).
    Activations {
        layer: &'a str,
        rows: usize,
        seconds: f64,
    },
    /// Training starts: `epochs` is the number of epochs the run will take at most.
    Training {
        first_layer: &'a str,
        classes: usize,
        train_rows: usize,
        val_rows: usize,
        steps_per_epoch: usize,
        epochs: usize,
    },
    /// An epoch finished (the same record [`FineTune::on_epoch`] gets).
    Epoch(&'a EpochRecord),
}

type ProgressFn = Box<dyn FnMut(&Progress<'_>)>;
type EpochFn = Box<dyn FnMut(&EpochRecord)>;

/// A head trained on a frozen backbone: build with [`FineTune::new`], set what differs from
/// the defaults, then [`FineTune::fit`] class folders (or [`FineTune::fit_features`]).
pub struct FineTune {
    ctx: GpuContext,
    backbone: Weights,
    kind: HeadKind,
    epochs: usize,
    steps: Option<usize>,
    batch: usize,
    lr: f32,
    lr_backbone_mult: f32,
    optimizer: Optimizer,
    weight_decay: f32,
    dropout: f32,
    schedule: Schedule,
    seed: u64,
    shuffle: bool,
    augment: usize,
    val_split: f64,
    val_folder: Option<PathBuf>,
    patience: Option<usize>,
    keep: Keep,
    init_head: Option<PathBuf>,
    checkpoint: Option<PathBuf>,
    resume: bool,
    interrupt_after: Option<usize>,
    cache_budget: u64,
    spill_dir: Option<PathBuf>,
    extract_batch: usize,
    load: LoadOptions,
    on_progress: Option<ProgressFn>,
    on_epoch: Option<EpochFn>,
}

/// What [`FineTune::fit`] returns.
#[derive(Clone, Debug)]
pub struct Trained {
    /// The backbone with the trained layers and a new last layer for `classes`.
    pub model: Weights,
    /// The class names, in label order (class folder names, sorted).
    pub classes: Vec<String>,
    /// The trained layers alone (of the epoch `kept` chose).
    pub head: HeadWeights,
    /// One record per epoch trained (with a resumed run's earlier ones).
    pub history: Vec<EpochRecord>,
    /// The loss and rate of every optimizer step of this invocation.
    pub steps: Vec<StepRecord>,
    /// The validation set's metrics with the returned head (None without validation rows).
    pub metrics: Option<Metrics>,
    /// Which epoch's weights `model` has: `kept_epoch` (1-based) of `epochs_done`;
    /// `best_epoch` had the lowest validation loss (the last without validation).
    pub kept: Keep,
    pub kept_epoch: usize,
    pub best_epoch: usize,
    pub epochs_done: usize,
    /// Images that could not be read and were left out, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
    /// Training and validation rows (images times augmented views).
    pub train_rows: usize,
    pub val_rows: usize,
}

impl Trained {
    /// Writes the model (backbone, trained head, class names, preprocessing) atomically:
    /// `.npz`, `.safetensors` or `.onnx` by the extension; `alexnet classify` and `eval` read it.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        if !matches!(ext.as_deref(), Some("npz" | "safetensors" | "onnx")) {
            return Err(Error::Invalid(format!(
                "{}: the model's format follows the extension: {}",
                path.display(),
                crate::model::formats::OUTPUT_FORMATS
            )));
        }
        save_model(path, &self.model, &self.head, &self.classes)
    }

    /// The validation accuracy (0..=1) with the returned head, if there was validation.
    pub fn val_accuracy(&self) -> Option<f64> {
        self.metrics.as_ref().map(|m| m.accuracy)
    }
}

/// The callbacks, behind a `RefCell` so that the extraction's `&dyn Fn` progress can report.
struct Events {
    progress: Option<ProgressFn>,
    epoch: Option<EpochFn>,
}

impl Events {
    fn emit(cell: &RefCell<Events>, p: Progress<'_>) {
        let mut ev = cell.borrow_mut();
        if let Progress::Epoch(r) = &p {
            if let Some(f) = ev.epoch.as_mut() {
                f(r);
            }
        }
        if let Some(f) = ev.progress.as_mut() {
            f(&p);
        }
    }
}

fn invalid(msg: String) -> Error {
    Error::Invalid(msg)
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

impl FineTune {
    /// A run on `backbone` (copied; see [`FineTune::with_weights`] to hand it over) with the
    /// `train-head` defaults.
    pub fn new(ctx: &GpuContext, backbone: &Weights) -> Self {
        Self::with_weights(ctx, backbone.clone())
    }

    /// [`FineTune::new`] taking the backbone by value (no copy of the weights).
    pub fn with_weights(ctx: &GpuContext, backbone: Weights) -> Self {
        FineTune {
            ctx: ctx.clone(),
            backbone,
            kind: HeadKind::Last,
            epochs: 10,
            steps: None,
            batch: 32,
            lr: 0.01,
            lr_backbone_mult: 1.0,
            optimizer: Optimizer::Sgd { momentum: 0.9 },
            weight_decay: 0.0,
            dropout: 0.5,
            schedule: Schedule::Constant,
            seed: 0,
            shuffle: true,
            augment: 0,
            val_split: 0.2,
            val_folder: None,
            patience: None,
            keep: Keep::Best,
            init_head: None,
            checkpoint: None,
            resume: false,
            interrupt_after: None,
            cache_budget: 2048 << 20,
            spill_dir: None,
            extract_batch: 16,
            load: LoadOptions::default(),
            on_progress: None,
            on_epoch: None,
        }
    }

    /// Train this layer and every one above it (default `HeadKind::Last`: a new last layer on
    /// frozen fc6/fc7); the layers below stay frozen and run once per image (cached).
    pub fn train_from(mut self, kind: HeadKind) -> Self {
        self.kind = kind;
        self
    }

    /// Epochs to train (default 10).
    pub fn epochs(mut self, n: usize) -> Self {
        self.epochs = n;
        self
    }

    /// Stop after this many optimizer steps instead of counting epochs (default: none).
    pub fn steps(mut self, n: Option<usize>) -> Self {
        self.steps = n;
        self
    }

    /// Training batch (default 32).
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n;
        self
    }

    /// Learning rate of the last layer (default 0.01).
    pub fn lr(mut self, lr: f32) -> Self {
        self.lr = lr;
        self
    }

    /// Rate factor of the trained layers below the last one (default 1: one rate for all).
    pub fn lr_backbone_mult(mut self, m: f32) -> Self {
        self.lr_backbone_mult = m;
        self
    }

    /// Default `Optimizer::Sgd { momentum: 0.9 }`.
    pub fn optimizer(mut self, o: Optimizer) -> Self {
        self.optimizer = o;
        self
    }

    /// L2 weight decay (default 0).
    pub fn weight_decay(mut self, wd: f32) -> Self {
        self.weight_decay = wd;
        self
    }

    /// Dropout before fc6 and fc7 when they train (default 0.5; not used by `HeadKind::Last`).
    pub fn dropout(mut self, p: f32) -> Self {
        self.dropout = p;
        self
    }

    /// Default `Schedule::Constant`.
    pub fn schedule(mut self, s: Schedule) -> Self {
        self.schedule = s;
        self
    }

    /// Seeds the split, the new layer, the shuffling, dropout and augmentations (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Visit the rows in a new random order every epoch (default true).
    pub fn shuffle(mut self, on: bool) -> Self {
        self.shuffle = on;
        self
    }

    /// Random resized crops and flips, `views` per training image (0, the default: centre crops
    /// only). Fixed views cached once with frozen convolutions; fresh views every epoch when
    /// convolutions train.
    pub fn augment(mut self, views: usize) -> Self {
        self.augment = views;
        self
    }

    /// Share of each class held out for validation when there is no validation folder
    /// (default 0.2; 0 trains on everything, without validation).
    pub fn val_split(mut self, share: f64) -> Self {
        self.val_split = share;
        self
    }

    /// Validation images in class folders with the training data's classes (instead of a
    /// split).
    pub fn val_folder(mut self, dir: impl AsRef<Path>) -> Self {
        self.val_folder = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Early stopping after this many epochs without a better validation loss (default none).
    pub fn patience(mut self, epochs: Option<usize>) -> Self {
        self.patience = epochs;
        self
    }

    /// Which epoch's weights are returned (default `Keep::Best`).
    pub fn keep(mut self, keep: Keep) -> Self {
        self.keep = keep;
        self
    }

    /// Start the trained layers from these values (a weights file in the model's key names).
    pub fn init_head(mut self, path: impl AsRef<Path>) -> Self {
        self.init_head = Some(path.as_ref().to_path_buf());
        self
    }

    /// Write a checkpoint here after every epoch (default none).
    pub fn checkpoint(mut self, path: impl AsRef<Path>) -> Self {
        self.checkpoint = Some(path.as_ref().to_path_buf());
        self
    }

    /// Continue from the checkpoint (which must then be set) exactly where it stopped.
    pub fn resume(mut self, on: bool) -> Self {
        self.resume = on;
        self
    }

    /// Stop after this many epochs as an interruption would (to test resuming).
    #[doc(hidden)]
    pub fn interrupt_after(mut self, epochs: Option<usize>) -> Self {
        self.interrupt_after = epochs;
        self
    }

    /// The most memory (bytes) the cached rows of `train_from(HeadKind::Conv(_))` may take
    /// before they go to a temporary file in [`FineTune::spill_dir`] (default 2 GiB).
    pub fn cache_budget(mut self, bytes: u64) -> Self {
        self.cache_budget = bytes;
        self
    }

    /// Where an over-budget cache file goes (default: the checkpoint's folder, else the
    /// system's temporary folder). The file is removed when the run ends.
    pub fn spill_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.spill_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Images per forward pass while filling the cache (default 16).
    pub fn extract_batch(mut self, n: usize) -> Self {
        self.extract_batch = n;
        self
    }

    /// How image files are decoded (default `LoadOptions::default()`).
    pub fn load_options(mut self, load: LoadOptions) -> Self {
        self.load = load;
        self
    }

    /// Called after every epoch.
    pub fn on_epoch(mut self, f: impl FnMut(&EpochRecord) + 'static) -> Self {
        self.on_epoch = Some(Box::new(f));
        self
    }

    /// Called with everything a progress display needs (see [`Progress`]).
    pub fn on_progress(mut self, f: impl FnMut(&Progress<'_>) + 'static) -> Self {
        self.on_progress = Some(Box::new(f));
        self
    }

    /// Refuses settings that cannot train, naming the accepted range.
    fn check(&self) -> Result<()> {
        let count = |what: &str, n: usize| {
            if n == 0 {
                Err(invalid(format!("{what} 0: expected 1 or more")))
            } else {
                Ok(())
            }
        };
        count("epochs", self.epochs)?;
        count("batch", self.batch)?;
        count("extract batch", self.extract_batch)?;
        if let Some(s) = self.steps {
            count("steps", s)?;
        }
        if let Schedule::Step { every, gamma } = self.schedule {
            count("step schedule every", every)?;
            if !(gamma.is_finite() && gamma > 0.0) {
                return Err(invalid(format!(
                    "step schedule gamma {gamma}: expected a finite number above 0"
                )));
            }
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(invalid(format!(
                "learning rate {}: expected a finite number above 0",
                self.lr
            )));
        }
        if !(self.lr_backbone_mult.is_finite() && self.lr_backbone_mult >= 0.0) {
            return Err(invalid(format!(
                "backbone learning-rate factor {}: expected a finite factor of 0 or more",
                self.lr_backbone_mult
            )));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(invalid(format!(
                "weight decay {}: expected a finite number of 0 or more",
                self.weight_decay
            )));
        }
        let below_one = |what: &str, v: f64| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(invalid(format!(
                    "{what} {v}: expected a number from 0 up to, not including, 1"
                )))
            }
        };
        below_one("dropout", self.dropout as f64)?;
        below_one("validation share", self.val_split)?;
        match self.optimizer {
            Optimizer::Sgd { momentum } => below_one("momentum", momentum as f64)?,
            Optimizer::Adam { beta1, beta2, eps } => {
                below_one("Adam beta1", beta1 as f64)?;
                below_one("Adam beta2", beta2 as f64)?;
                if !(eps.is_finite() && eps > 0.0) {
                    return Err(invalid(format!(
                        "Adam eps {eps}: expected a finite number above 0"
                    )));
                }
            }
        }
        if self.resume && self.checkpoint.is_none() {
            return Err(Error::ResumeWithoutCheckpoint);
        }
        Ok(())
    }

    fn take_events(&mut self) -> RefCell<Events> {
        RefCell::new(Events {
            progress: self.on_progress.take(),
            epoch: self.on_epoch.take(),
        })
    }

    /// Trains on class folders under `data` (one sub-folder per class, names sorted), with
    /// validation on the [`FineTune::val_folder`] or a stratified [`FineTune::val_split`].
    pub fn fit(mut self, data: impl AsRef<Path>) -> Result<Trained> {
        self.check()?;
        let events = self.take_events();
        let dir = data.as_ref();
        let all = ClassFolders::scan(dir)?;
        let (train_set, val_set) = match &self.val_folder {
            Some(v) => {
                let val = ClassFolders::scan(v)?;
                if val.classes != all.classes {
                    return Err(invalid(format!(
                        "{} has classes {:?} but {} has {:?}",
                        v.display(),
                        val.classes,
                        dir.display(),
                        all.classes
                    )));
                }
                (all, val)
            }
            None => all.split(self.val_split, self.seed),
        };
        let kind = self.kind;
        let pre = Preprocess::for_arch(self.backbone.arch);
        let mut skipped = Vec::new();
        // Where training reads its rows when not from the in-memory cache (a spilled cache or
        // fresh augmentations); dropping it removes a spill file.
        let mut train_rows: Option<Box<dyn TrainRows + '_>> = None;
        let mut net = Network::new(&self.ctx, &self.backbone)?;
        let views = self.augment;
        let tr = if matches!(kind, HeadKind::Conv(_)) && views > 0 {
            // Fresh augmentations every epoch: nothing cached, the frozen part runs per step.
            let (readable, bad) = check_readable(&train_set, &pre, self.load);
            for (p, e) in &bad {
                Events::emit(&events, Progress::Skipped { path: p, error: e });
            }
            skipped.extend(bad);
            let stack = frozen_stack(&self.ctx, &self.backbone, kind, &pre, self.batch)?;
            let fresh = FreshViews::new(
                &self.ctx, stack, &readable, views, &pre, self.load, self.seed,
            );
            let set = fresh.labels(&readable.classes);
            Events::emit(
                &events,
                Progress::FreshViews {
                    images: readable.items.len(),
                    views,
                },
            );
            train_rows = Some(Box::new(fresh));
            set
        } else {
            let (set, file) = self.extract(
                &mut net,
                &train_set,
                views,
                true,
                "training features",
                &events,
                &mut skipped,
            )?;
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
            self.extract(
                &mut net,
                &val_set,
                0,
                false,
                "validation features",
                &events,
                &mut skipped,
            )?
            .0
        };
        drop(net);
        self.train(tr, va, train_rows, skipped, &events)
    }

    /// Trains on pool5 rows (what `alexnet features` exports), split by
    /// [`FineTune::val_split`]; the convolutions cannot train from them.
    pub fn fit_features(mut self, features: &FeatureSet) -> Result<Trained> {
        self.check()?;
        if let HeadKind::Conv(_) = self.kind {
            return Err(invalid(format!(
                "training from {} needs images: a feature set holds pool5 rows, above the layer",
                self.kind.first_layer()
            )));
        }
        if self.val_folder.is_some() {
            return Err(invalid(
                "a validation folder needs training images; a feature set is split by the validation share".into(),
            ));
        }
        if features.labels.len() * features.dim != features.features.len() {
            return Err(invalid(format!(
                "the feature set has {} labels of {} floats but {} floats",
                features.labels.len(),
                features.dim,
                features.features.len()
            )));
        }
        if let Some(&l) = features
            .labels
            .iter()
            .find(|&&l| l >= features.classes.len())
        {
            return Err(invalid(format!(
                "the feature set has label {l} but {} classes",
                features.classes.len()
            )));
        }
        features.check_trainable(Path::new("the feature set"))?;
        let events = self.take_events();
        let (tr, va) = stratified_split(
            &features.labels,
            features.classes.len(),
            self.val_split,
            self.seed,
        );
        let (tr, va) = (subset(features, &tr), subset(features, &va));
        self.train(tr, va, None, Vec::new(), &events)
    }

    /// One cached pass of the frozen layers over `set` (`views` augmented rows per image, or
    /// centre crops), into memory or, for the training rows over the budget, a spill file.
    #[allow(clippy::too_many_arguments)]
    fn extract(
        &self,
        net: &mut Network,
        set: &ClassFolders,
        views: usize,
        spill: bool,
        what: &str,
        events: &RefCell<Events>,
        skipped: &mut Vec<(PathBuf, String)>,
    ) -> Result<(FeatureSet, Option<SpillFile>)> {
        let total = set.items.len();
        Events::emit(
            events,
            Progress::Extracting {
                what,
                done: 0,
                total,
            },
        );
        let on = |done: usize| Events::emit(events, Progress::Extracting { what, done, total });
        let spill_dir = self
            .spill_dir
            .clone()
            .unwrap_or_else(|| match &self.checkpoint {
                Some(c) => crate::fsutil::parent_dir(c),
                None => std::env::temp_dir(),
            });
        let mut file = None;
        let ex = match self.kind {
            HeadKind::Conv(_) => {
                let (ex, f) = extract_frozen(
                    &self.ctx,
                    &self.backbone,
                    self.kind,
                    set,
                    &Preprocess::for_arch(self.backbone.arch),
                    self.load,
                    views,
                    self.seed,
                    self.extract_batch,
                    spill.then_some((self.cache_budget, spill_dir.as_path())),
                    &on,
                )?;
                file = f;
                ex
            }
            _ => extract_pool5_with(
                net,
                set,
                &Preprocess::for_arch(self.backbone.arch),
                self.load,
                views,
                self.seed,
                self.extract_batch,
                &on,
            )?,
        };
        for (p, e) in &ex.skipped {
            Events::emit(events, Progress::Skipped { path: p, error: e });
        }
        Events::emit(
            events,
            Progress::Extracted {
                what,
                images: ex.images,
                rows: ex.set.len(),
                dim: ex.set.dim,
                seconds: ex.seconds,
                spill: file.as_ref().map(|f: &SpillFile| f.path()),
            },
        );
        skipped.extend(ex.skipped);
        Ok((ex.set, file))
    }

    /// The common part: frozen dense layers, the new head, training, validation metrics.
    fn train(
        &self,
        train5: FeatureSet,
        val5: FeatureSet,
        mut train_rows: Option<Box<dyn TrainRows + '_>>,
        skipped: Vec<(PathBuf, String)>,
        events: &RefCell<Events>,
    ) -> Result<Trained> {
        if train5.is_empty() {
            return Err(invalid("no training images could be read".into()));
        }
        let (ctx, backbone, kind) = (&self.ctx, &self.backbone, self.kind);
        let classes = train5.classes.clone();

        // The `last` head trains on fc7 activations of the frozen fc6/fc7, `Fc7` on fc6's.
        let (train_x, val_x) = match kind {
            HeadKind::Last | HeadKind::Fc7 => {
                let t = Instant::now();
                let (a, b, layer) = if kind == HeadKind::Last {
                    let a = frozen_fc7(ctx, backbone, &train5)?;
                    (a, frozen_fc7(ctx, backbone, &val5)?, "fc7")
                } else {
                    let a = frozen_dense(ctx, backbone, &["fc6"], &train5)?;
                    (a, frozen_dense(ctx, backbone, &["fc6"], &val5)?, "fc6")
                };
                Events::emit(
                    events,
                    Progress::Activations {
                        layer,
                        rows: a.len() + b.len(),
                        seconds: t.elapsed().as_secs_f64(),
                    },
                );
                (a, b)
            }
            HeadKind::Classifier | HeadKind::Conv(_) => (train5, val5),
        };

        let mut head = HeadWeights::new(kind, backbone, classes.len(), self.seed)?;
        if let Some(p) = &self.init_head {
            let flatten_source = crate::model::params::flatten_source(&backbone.spec())?;
            load_init_head(p, &mut head, flatten_source)?;
        }
        let opts = FitOptions {
            epochs: self.epochs,
            steps: self.steps,
            batch: self.batch,
            lr: self.lr,
            schedule: self.schedule,
            shuffle: self.shuffle,
            patience: self.patience,
            keep: self.keep,
            config: TrainConfig {
                optimizer: self.optimizer,
                weight_decay: self.weight_decay,
                dropout: if kind == HeadKind::Last {
                    0.0
                } else {
                    self.dropout
                },
                seed: self.seed,
                lr_backbone_mult: self.lr_backbone_mult,
            },
            checkpoint: self.checkpoint.clone(),
            resume: self.resume,
            interrupt_after: self.interrupt_after,
        };
        let steps_per_epoch = train_x.len().div_ceil(opts.batch);
        let epochs = opts
            .steps
            .map(|s| s.div_ceil(steps_per_epoch))
            .unwrap_or(opts.epochs);
        Events::emit(
            events,
            Progress::Training {
                first_layer: &kind.first_layer(),
                classes: classes.len(),
                train_rows: train_x.len(),
                val_rows: val_x.len(),
                steps_per_epoch,
                epochs,
            },
        );
        let val = (!val_x.is_empty()).then_some(&val_x);
        let mut cached = Cached(&train_x);
        let rows: &mut dyn TrainRows = match &mut train_rows {
            Some(r) => r.as_mut(),
            None => &mut cached,
        };
        let outcome = fit_rows(ctx, &head, &train_x, rows, val, &opts, &mut |r| {
            Events::emit(events, Progress::Epoch(r))
        })?;
        drop(train_rows);
        let metrics = outcome
            .val_logits
            .as_ref()
            .map(|logits| Metrics::from_logits(&classes, logits, &val_x.labels));
        Ok(Trained {
            model: with_head(backbone, &outcome.head),
            classes,
            head: outcome.head,
            history: outcome.history,
            steps: outcome.steps,
            metrics,
            kept: outcome.kept,
            kept_epoch: outcome.kept_epoch,
            best_epoch: outcome.best_epoch,
            epochs_done: outcome.epochs_done,
            skipped,
            train_rows: train_x.len(),
            val_rows: val_x.len(),
        })
    }
}
