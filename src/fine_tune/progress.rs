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
        dir: &'a Path,
        train: &'a Path,
        val: &'a Path,
    },
    /// The classes (label order) with their training and validation images (rows for
    /// [`FineTune::fit_features`](super::FineTune::fit_features)), before any image is read.
    Classes {
        names: &'a [String],
        train: &'a [usize],
        val: &'a [usize],
    },
    /// `done` of `total` images of `what` ("training features", "validation features") run
    /// through the frozen layers; the first report of a pass has `done` = 0.
    Extracting {
        what: &'a str,
        done: usize,
        total: usize,
    },
    /// An image that could not be read, left out of training (also in [`Trained::skipped`](super::Trained::skipped)).
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
    /// Training starts: `epochs` is the number of epochs the run will take at most; `batch`
    /// the rows per step (the batch asked for, at most `train_rows`).
    Training {
        first_layer: &'a str,
        classes: usize,
        train_rows: usize,
        val_rows: usize,
        batch: usize,
        steps_per_epoch: usize,
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
