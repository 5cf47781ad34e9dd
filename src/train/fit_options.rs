//! What a fit is asked to do (epochs, batch, learning rate and schedule, early stopping, which
//! epoch to keep, checkpointing) and the per-epoch and per-step records it reports.

use std::path::PathBuf;

use super::config::TrainConfig;
use super::schedule::Schedule;

/// Which epoch's weights a run returns (and `train-head` saves).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Keep {
    /// The epoch with the lowest validation loss (the last one when there is no validation
    /// set): the default, as the validation loss is the run's only evidence of generalisation.
    #[default]
    Best,
    /// The last epoch trained (Keras' default, `restore_best_weights=False`).
    Last,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct FitOptions {
    pub epochs: usize,
    /// Stop after this many optimizer steps (overrides `epochs`).
    pub steps: Option<usize>,
    pub batch: usize,
    pub lr: f32,
    pub schedule: Schedule,
    pub shuffle: bool,
    /// Stop when the validation loss has not improved for this many epochs (best kept).
    pub patience: Option<usize>,
    /// Which epoch's weights are returned (not part of the checkpoint's fingerprint: it does
    /// not change training, so a run may be resumed with the other choice).
    #[serde(default)]
    pub keep: Keep,
    pub config: TrainConfig,
    /// Written atomically after every epoch; `resume` continues from it.
    pub checkpoint: Option<PathBuf>,
    pub resume: bool,
    /// Stop after this many epochs of this invocation, as an interruption would (tests).
    #[serde(skip)]
    pub interrupt_after: Option<usize>,
}

/// What one epoch of training measured (one line of `train-head`'s log).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    /// Mean cross-entropy over the epoch's training images, each batch's measured before its
    /// update (with dropout and augmentation as trained, so it can exceed `val_loss`).
    pub train_loss: f64,
    /// Share of the epoch's training images whose top class was right (same measurement).
    pub train_accuracy: f64,
    /// Mean cross-entropy over the validation images after the epoch (`None` without validation).
    pub val_loss: Option<f64>,
    /// Top-1 accuracy on the validation images after the epoch, 0..1.
    pub val_accuracy: Option<f64>,
    /// The last layer's learning rate during the epoch (the schedule's value).
    pub lr: f32,
    /// Wall time of the epoch, validation included.
    pub seconds: f64,
}

/// One line of `--log-steps`: the loss of the step's batch before its update.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepRecord {
    pub step: usize,
    pub loss: f32,
    pub lr: f32,
}
