//! Transfer learning: a new head trained on the GPU on cached backbone features.

pub mod head;
pub mod kernels;
pub mod reference;
pub mod trainer;

pub use head::{DenseHost, HeadKind, HeadWeights};
pub use trainer::{Optimizer, OptimizerState, Stats, TrainConfig, Trainer};
