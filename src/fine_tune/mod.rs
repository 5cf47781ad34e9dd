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
//! let backbone = Weights::load("alexnet.npz", None)?;
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
use std::path::{Path, PathBuf};

use crate::data::LoadOptions;
use crate::gpu::GpuContext;
use crate::model::Weights;
use crate::train::{EpochRecord, HeadKind, Keep, Optimizer, Schedule};

mod check;
mod progress;
mod recipe;
mod trained;

pub use check::MAX_LR;
pub use progress::Progress;
use progress::{EpochFn, ProgressFn};
pub use trained::Trained;

/// The share of each class held out for validation when no validation set is given.
pub const DEFAULT_VAL_SPLIT: f64 = 0.2;

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
            val_split: DEFAULT_VAL_SPLIT,
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

    /// Learning rate (default 0.01): the new last layer's, and every trained layer's unless
    /// [`FineTune::lr_backbone_mult`] sets another factor for the layers below it.
    pub fn lr(mut self, lr: f32) -> Self {
        self.lr = lr;
        self
    }

    /// Rate factor of the trained layers below the last one (default 1: one rate for all).
    pub fn lr_backbone_mult(mut self, m: f32) -> Self {
        self.lr_backbone_mult = m;
        self
    }

    /// Default [`Optimizer::sgd`]`(0.9)`; [`Optimizer::adam`] is Adam with PyTorch's betas
    /// (0.9, 0.999) and eps (1e-8), `Optimizer::Adam { beta1, beta2, eps }` sets them
    /// (0 <= beta < 1, eps finite and above 0, checked when the run starts).
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
    /// split). Refused with a split dataset (a data folder holding `train/` and `val/`), which
    /// brings its own.
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

    /// Write a checkpoint here after every epoch (default none). It stays after the run, for
    /// [`FineTune::resume`]; `train-head` removes it once the model is saved.
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
}
