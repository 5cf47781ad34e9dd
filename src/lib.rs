//! AlexNet inference, transfer learning and LPIPS with WGSL compute shaders on wgpu: any
//! Vulkan, Metal or DX12 GPU, or a software adapter (Mesa's lavapipe) where there is none.
//!
//! Start with [`AlexNet`]: load weights (any supported file; the preset is inferred), then
//! classify or embed any list of images, batched on the GPU with decoding on every core:
//!
//! ```no_run
//! use alexnet_wgpu::{AlexNet, HeadKind, Tap};
//!
//! # fn main() -> alexnet_wgpu::Result<()> {
//! let net = AlexNet::from_file("alexnet.npz")?; // or AlexNet::pretrained() after `alexnet fetch-weights`
//! for c in net.classify(&["cat.jpg", "dog.jpg"], 5)? {
//!     println!("{}: {} ({:.1} %)", c.path.display(), c.top[0].label, 100.0 * c.top[0].prob);
//! }
//! let fc7 = net.embed(&["cat.jpg", "dog.jpg"], Tap::Fc7)?; // 4096 floats per image
//! println!("{} x {}", fc7.len(), fc7.dim);
//! // Transfer learning: one sub-folder of images per class, trained from conv4 up.
//! let trained = net.fine_tune().train_from(HeadKind::Conv(4)).epochs(5).fit("photos")?;
//! println!("validation accuracy {:?}", trained.val_accuracy());
//! trained.save("my_model.npz")?;
//! # Ok(())
//! # }
//! ```
//!
//! [`AlexNet::builder`] chooses the adapter, backend, precision, batch and the
//! [`RuntimeOptions`] (matmul path, WebGPU baseline limits, validation); [`FineTune`] (from
//! [`AlexNet::fine_tune`]) has every `train-head` setting with the CLI's defaults; [`Lpips`]
//! gives the perceptual distance (`AlexNet::lpips` or `Lpips::load`); [`selftest`] checks
//! every kernel on the adapter. Runnable programs, each under 40 lines:
//! `examples/classify.rs` (`WEIGHTS IMAGE...`, the top 5 per image), `examples/embed.rs`
//! (`WEIGHTS DIR OUT.npy`, fc7 rows of a flat folder), `examples/fine_tune.rs`
//! (`WEIGHTS DATA_DIR OUT`, from conv4, prints the validation accuracy), `examples/lpips.rs`
//! (`WEIGHTS A B`).
//!
//! Lower down, the same work step by step: the GPU work takes a [`gpu::GpuContext`], so callers
//! and tests bring their own device:
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
pub use fine_tune::{FineTune, Trained};
/// The `image` crate this one decodes with (its `RgbImage` is what [`Lpips`] compares).
pub use image;
pub use lpips::{Lin, Lpips};
pub use options::RuntimeOptions;
pub use train::HeadKind;
