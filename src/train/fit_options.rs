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
/// How `fit` runs: epochs, batches, rates, stopping and checkpoints.
pub struct FitOptions {
    /// Epochs to train (fewer with `patience` or `steps`).
    pub epochs: usize,
    /// Stop after this many optimizer steps (overrides `epochs`).
    pub steps: Option<usize>,
    /// Rows per optimizer step.
    pub batch: usize,
    /// The base learning rate of the last layer.
    pub lr: f32,
    /// How the learning rate changes over the run.
    pub schedule: Schedule,
    /// Shuffle the training rows every epoch (by `config.seed`).
    pub shuffle: bool,
    /// Stop when the validation loss has not improved for this many epochs (best kept).
    pub patience: Option<usize>,
    /// Which epoch's weights are returned (not part of the checkpoint's fingerprint: it does
    /// not change training, so a run may be resumed with the other choice).
    #[serde(default)]
    pub keep: Keep,
    /// The arithmetic: optimizer, decay, dropout, seed.
    pub config: TrainConfig,
    /// Written atomically after every epoch; `resume` continues from it.
    pub checkpoint: Option<PathBuf>,
    /// Continue from `checkpoint` instead of starting over.
    pub resume: bool,
    /// Stop after this many epochs of this invocation, as an interruption would (tests).
    #[serde(skip)]
    pub interrupt_after: Option<usize>,
    /// Bytes of GPU memory the cached training rows may take to be uploaded once and gathered
    /// on the GPU each step; `None`: the adapter's default (`trainer::default_budget`: 2 GiB on a
    /// GPU, 0 on a CPU adapter), `Some(0)`: always upload each batch. Either way the results
    /// are bit-identical.
    #[serde(skip)]
    pub resident_budget: Option<u64>,
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
    /// The step's number (1-based, over the whole run).
    pub step: usize,
    /// The batch's loss before the update.
    pub loss: f32,
    /// The learning rate of the step.
    pub lr: f32,
}
