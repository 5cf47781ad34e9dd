//! Learning-rate schedules over a training run.

/// Learning rate over training.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// Cosine decay from the base rate to 0 over all steps.
    Cosine,
    /// Multiply by `gamma` every `every` epochs.
    Step {
        /// Epochs between decays.
        every: usize,
        /// The factor applied at each decay.
        gamma: f32,
    },
}

impl Schedule {
    /// The learning rate at optimizer step `step` of `total_steps` (both 0-based counts) in epoch `epoch` (0-based), for the base rate `base`.
    pub fn lr(&self, base: f32, step: usize, total_steps: usize, epoch: usize) -> f32 {
        match *self {
            Schedule::Constant => base,
            Schedule::Cosine => {
                let t = step as f64 / total_steps.max(1) as f64;
                (base as f64 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())) as f32
            }
            Schedule::Step { every, gamma } => base * gamma.powi((epoch / every.max(1)) as i32),
        }
    }
}
