//! What a training run's arithmetic is (the optimizer and its hyper-parameters, weight decay,
//! dropout, seed) and the optimizer state it saves in checkpoints.

/// Optimizer choice and hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    /// SGD with momentum (PyTorch semantics; momentum 0 is plain SGD).
    Sgd {
        momentum: f32,
    },
    Adam {
        beta1: f32,
        beta2: f32,
        eps: f32,
    },
}

/// Everything about one training run's arithmetic (not its data or schedule).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    pub optimizer: Optimizer,
    pub weight_decay: f32,
    /// Dropout rate before fc6 and fc7 (`classifier` head only); 0 disables.
    pub dropout: f32,
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
