//! [`Trained`]: what a fine-tuning run returns, and saving it as a model file.

use std::path::Path;

use crate::error::{Error, Result};
use crate::model::Weights;
use crate::train::export::save_model;
use crate::train::{EpochRecord, HeadWeights, Keep, Metrics, StepRecord};

/// What [`FineTune::fit`](super::FineTune::fit) returns.
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
    /// The epoch (1-based) whose weights the model has.
    pub kept_epoch: usize,
    /// The epoch (1-based) with the lowest validation loss (the last without validation).
    pub best_epoch: usize,
    /// Epochs trained, resumed ones included.
    pub epochs_done: usize,
    /// Images that could not be read and were left out, each with its path, kind and message.
    pub skipped: Vec<crate::error::InputError>,
    /// Training and validation rows (images times augmented views).
    pub train_rows: usize,
    /// Validation rows (0 without validation).
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
