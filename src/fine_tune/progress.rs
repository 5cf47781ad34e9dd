//! What a run reports while it works ([`Progress`]), and the callbacks that receive it.

use std::cell::RefCell;
use std::path::Path;

use crate::train::EpochRecord;

/// What a run is doing, for progress displays ([`FineTune::on_progress`](super::FineTune::on_progress)).
#[derive(Debug)]
#[non_exhaustive]
pub enum Progress<'a> {
    /// The data folder `dir` is a split dataset: `train` trains, `val` validates.
    SplitDataset {
        /// The data folder given.
        dir: &'a Path,
        /// Its training folder.
        train: &'a Path,
        /// Its validation folder.
        val: &'a Path,
    },
    /// The classes (label order) with their training and validation images (rows for
    /// [`FineTune::fit_features`](super::FineTune::fit_features)), before any image is read.
    Classes {
        /// The class names, in label order.
        names: &'a [String],
        /// Training images (or rows) per class.
        train: &'a [usize],
        /// Validation images (or rows) per class.
        val: &'a [usize],
    },
    /// `done` of `total` images of `what` ("training features", "validation features") run
    /// through the frozen layers; the first report of a pass has `done` = 0.
    Extracting {
        /// Which pass ("training features", "validation features").
        what: &'a str,
        /// Images done so far.
        done: usize,
        /// Images in the pass.
        total: usize,
    },
    /// An image that could not be read, left out of training (also in [`Trained::skipped`](super::Trained::skipped)).
    Skipped {
        /// The image.
        path: &'a Path,
        /// Why: its kind and message (its `Display` names the file).
        error: &'a crate::error::InputError,
    },
    /// A pass finished: `images` images gave `rows` cached rows of `dim` floats, held in memory
    /// or, over the cache budget, in the temporary file `spill`.
    Extracted {
        /// Which pass.
        what: &'a str,
        /// Images read.
        images: usize,
        /// Rows cached (images times augmented views).
        rows: usize,
        /// Floats per row.
        dim: usize,
        /// Wall time of the pass.
        seconds: f64,
        /// The temporary file the rows went to, when over the cache budget.
        spill: Option<&'a Path>,
    },
    /// Convolutions train on fresh augmentations: `views` per image and epoch, nothing cached.
    FreshViews {
        /// Training images.
        images: usize,
        /// Augmented views per image and epoch.
        views: usize,
    },
    /// The frozen dense layers below the trained ones ran on the cached rows: `layer` is the
    /// output ("fc7" for `HeadKind::Last`, "fc6" for `HeadKind::Fc7`).
    Activations {
        /// The layer whose output was computed.
        layer: &'a str,
        /// Rows run.
        rows: usize,
        /// Wall time.
        seconds: f64,
    },
    /// Training starts: `epochs` is the number of epochs the run will take at most; `batch`
    /// the rows per step (the batch asked for, at most `train_rows`).
    Training {
        /// The first trained layer ("fc8", "fc6", "conv4", ...).
        first_layer: &'a str,
        /// Classes of the new head.
        classes: usize,
        /// Training rows per epoch.
        train_rows: usize,
        /// Validation rows.
        val_rows: usize,
        /// Rows per step: the batch asked for, at most `train_rows`.
        batch: usize,
        /// Optimizer steps per epoch.
        steps_per_epoch: usize,
        /// The most epochs the run takes.
        epochs: usize,
    },
    /// An epoch finished (the same record [`FineTune::on_epoch`](super::FineTune::on_epoch) gets).
    Epoch(&'a EpochRecord),
}

pub(super) type ProgressFn = Box<dyn FnMut(&Progress<'_>)>;
pub(super) type EpochFn = Box<dyn FnMut(&EpochRecord)>;

/// The callbacks, behind a `RefCell` so that the extraction's `&dyn Fn` progress can report.
pub(super) struct Events {
    pub(super) progress: Option<ProgressFn>,
    pub(super) epoch: Option<EpochFn>,
}

impl Events {
    pub(super) fn emit(cell: &RefCell<Events>, p: Progress<'_>) {
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
