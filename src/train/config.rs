//! What a training run's arithmetic is (the optimizer and its hyper-parameters, weight decay,
//! dropout, seed) and the optimizer state it saves in checkpoints.

/// Optimizer choice and hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    /// SGD with momentum (PyTorch semantics; momentum 0 is plain SGD).
    Sgd {
        /// 0 <= momentum < 1; `train-head`'s default is 0.9 ([`Optimizer::sgd`]).
        momentum: f32,
    },
    /// Adam (PyTorch semantics, bias-corrected; L2 weight decay added to the gradient as
    /// `torch.optim.Adam` does). [`Optimizer::adam`] gives PyTorch's defaults.
    Adam {
        /// Decay of the first-moment average, 0 <= beta1 < 1 (default [`Optimizer::ADAM_BETA1`]).
        beta1: f32,
        /// Decay of the second-moment average, 0 <= beta2 < 1 (default [`Optimizer::ADAM_BETA2`]).
        beta2: f32,
        /// Added to the square root of the second moment, finite and above 0 (default
        /// [`Optimizer::ADAM_EPS`]).
        eps: f32,
    },
}

impl Optimizer {
    /// PyTorch's Adam defaults (Keras' are the same but eps 1e-7): the decay of the first and
    /// second moment averages, and the term that keeps the step finite where the second moment
    /// is ~0.
    pub const ADAM_BETA1: f32 = 0.9;
    /// Adam's second-moment decay (PyTorch's default).
    pub const ADAM_BETA2: f32 = 0.999;
    /// Adam's epsilon (PyTorch's default).
    pub const ADAM_EPS: f32 = 1e-8;

    /// SGD with this momentum (`train-head --optimizer sgd --momentum M`; the CLI's default is 0.9).
    pub fn sgd(momentum: f32) -> Self {
        Optimizer::Sgd { momentum }
    }

    /// Adam with PyTorch's (and `train-head --optimizer adam`'s) defaults: betas (0.9, 0.999),
    /// eps 1e-8.
    pub fn adam() -> Self {
        Optimizer::Adam {
            beta1: Self::ADAM_BETA1,
            beta2: Self::ADAM_BETA2,
            eps: Self::ADAM_EPS,
        }
    }
}

/// Everything about one training run's arithmetic (not its data or schedule).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    /// The optimizer and its settings.
    pub optimizer: Optimizer,
    /// L2 weight decay, as PyTorch's optimizers apply it (0 disables).
    pub weight_decay: f32,
    /// Dropout rate before fc6 and fc7 (`classifier` head only); 0 disables.
    pub dropout: f32,
    /// The seed of shuffling, initialisation, dropout and augmentation: the same seed gives the same model.
    pub seed: u64,
    /// Learning-rate factor of every trained layer but the new last one (fc8): the trained
    /// convolutions, fc6 and fc7 (`--lr-backbone-mult`). 1 = one rate for all, as PyTorch's
    /// `requires_grad` fine-tuning with a single parameter group.
    #[serde(default = "one")]
    pub lr_backbone_mult: f32,
}

fn one() -> f32 {
    1.0
}

/// One optimizer state tensor pair: (`fc8.state1`, weight-shaped values, bias-shaped values).
pub type OptimizerState = (String, Vec<f32>, Vec<f32>);
