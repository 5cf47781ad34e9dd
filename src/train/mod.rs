//! Transfer learning on the GPU: the trained layers (a new last layer, the classifier, or from
//! any convolution up) with their forward, backward and optimizer kernels; the frozen part run
//! once per image and cached (in memory or spilled to disk) or per step for fresh
//! augmentations; the fit loop (epochs, schedules, validation, early stopping, checkpoints),
//! metrics, plots and export. The recipe over all of it is `FineTune`, one layer up.

pub mod checkpoint;
pub mod config;
pub mod conv_stack;
pub mod export;
pub mod feature_set;
pub mod features;
pub mod fit;
pub mod fit_options;
pub mod frozen;
pub mod frozen_dense;
pub mod head;
pub mod init_head;
pub mod metrics;
#[cfg(feature = "cli")]
pub mod plot;
pub mod reference;
pub mod rows;
pub mod schedule;
pub mod trainer;

pub use config::{Optimizer, OptimizerState, TrainConfig};
pub use feature_set::FeatureSet;
pub use features::{extract_pool5, extract_pool5_with, stream_pool5, Extraction, PoolBatch};
pub use fit::{fit, fit_rows, FitOutcome};
pub use fit_options::{EpochRecord, FitOptions, Keep, StepRecord};
pub use frozen::{extract_frozen, frozen_stack};
pub use frozen_dense::{frozen_dense, frozen_fc7};
pub use head::{ConvHost, ConvPart, DenseHost, HeadKind, HeadWeights};
pub use metrics::Metrics;
pub use rows::{check_readable, Cached, FreshViews, SpillFile, TrainRows};
pub use schedule::Schedule;
pub use trainer::{Stats, StepTime, Trainer};
