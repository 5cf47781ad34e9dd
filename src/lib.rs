//! AlexNet inference and transfer learning with WGSL compute shaders on wgpu.
//!
//! Classify a preprocessed batch (the GPU work takes a [`gpu::GpuContext`], so callers and
//! tests bring their own device):
//!
//! ```no_run
//! use alexnet_wgpu::data::{load_image, preprocess, Preprocess};
//! use alexnet_wgpu::gpu::{AdapterChoice, GpuContext};
//! use alexnet_wgpu::model::Network;
//! use alexnet_wgpu::model::Weights;
//!
//! # fn main() -> alexnet_wgpu::Result<()> {
//! let weights = Weights::load("alexnet.npz".as_ref(), None)?; // preset inferred from the keys
//! let ctx = GpuContext::new(&AdapterChoice::default())?;
//! let mut net = Network::new(&ctx, &weights)?;
//! let pre = Preprocess::for_arch(weights.arch);
//! let x = preprocess(&load_image("cat.jpg".as_ref())?, &pre);
//! let out = net.forward(&x, 1, pre.crop, pre.crop, true)?;
//! let best = (0..out.classes).max_by(|&a, &b| out.logits[a].total_cmp(&out.logits[b]));
//! println!("class {best:?}, pool5 features: {}", out.feature_len);
//! # Ok(())
//! # }
//! ```
//!
//! Train a new last layer on class folders, step by step (what `alexnet train-head` does, in
//! one call: [`fine_tune::FineTune`]):
//!
//! ```no_run
//! use alexnet_wgpu::data::{ClassFolders, Preprocess};
//! use alexnet_wgpu::gpu::{AdapterChoice, GpuContext};
//! use alexnet_wgpu::model::Network;
//! use alexnet_wgpu::train::{self, FitOptions, HeadKind, HeadWeights, Metrics, Optimizer, Schedule, TrainConfig};
//! use alexnet_wgpu::model::Weights;
//!
//! # fn main() -> alexnet_wgpu::Result<()> {
//! let backbone = Weights::load("alexnet.npz".as_ref(), None)?;
//! let ctx = GpuContext::new(&AdapterChoice::default())?;
//! let (train_set, val_set) = ClassFolders::scan("photos".as_ref())?.split(0.2, 0);
//! let mut net = Network::new(&ctx, &backbone)?;
//! let pre = Preprocess::for_arch(backbone.arch);
//! let pool5 = train::extract_pool5(&mut net, &train_set, &pre, 0, 0, 16, &|_| {})?.set;
//! let val5 = train::extract_pool5(&mut net, &val_set, &pre, 0, 0, 16, &|_| {})?.set;
//! let (x, v) = (train::frozen_fc7(&ctx, &backbone, &pool5)?, train::frozen_fc7(&ctx, &backbone, &val5)?);
//! let head = HeadWeights::new(HeadKind::Last, &backbone, train_set.classes.len(), 0)?;
//! let opts = FitOptions {
//!     epochs: 10,
//!     steps: None,
//!     batch: 32,
//!     lr: 0.01,
//!     schedule: Schedule::Constant,
//!     shuffle: true,
//!     patience: None,
//!     keep: train::Keep::Best,
//!     config: TrainConfig { optimizer: Optimizer::Sgd { momentum: 0.9 }, weight_decay: 0.0, dropout: 0.0, seed: 0, lr_backbone_mult: 1.0 },
//!     checkpoint: None,
//!     resume: false,
//!     interrupt_after: None,
//! };
//! let outcome = train::fit(&ctx, &head, &x, Some(&v), &opts, &mut |epoch| println!("{epoch:?}"))?;
//! let metrics = Metrics::from_logits(&train_set.classes, &outcome.val_logits.unwrap(), &v.labels);
//! println!("{}", metrics.report());
//! train::export::save_model("model.npz".as_ref(), &backbone, &outcome.head, &train_set.classes)?;
//! # Ok(())
//! # }
//! ```

mod api;
pub mod clobber;
pub mod data;
pub mod error;
pub mod fetch;
pub mod fine_tune;
pub mod fsutil;
pub mod gpu;
pub mod kernels;
pub mod labels;
pub mod lpips;
pub mod model;
pub mod options;
pub mod selftest;
pub mod shard;
pub mod train;
pub mod weights;

pub use api::{AlexNet, AlexNetBuilder, Classification, Embeddings, ImageBatch, Prediction, Tap};
pub use error::{Error, Result};
/// The `image` crate this one decodes with (its `RgbImage` is what [`Lpips`] compares).
pub use image;
pub use lpips::{Lin, Lpips};
pub use options::RuntimeOptions;
