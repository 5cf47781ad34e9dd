//! AlexNet inference, transfer learning and LPIPS with WGSL compute shaders on wgpu: any
//! Vulkan, Metal or DX12 GPU, or a software adapter (Mesa's lavapipe) where there is none.
//!
//! Start with [`AlexNet`]: load weights (any supported file; the preset is inferred), then
//! classify or embed any list of images, batched on the GPU with decoding on every core:
//!
//! ```no_run
//! use alexnet_wgpu::{images_in, AlexNet, HeadKind, Optimizer, Tap};
//!
//! # fn main() -> alexnet_wgpu::Result<()> {
//! let net = AlexNet::from_file("alexnet.npz")?; // or AlexNet::pretrained() after `alexnet fetch-weights`
//! for c in net.classify(&["cat.jpg", "dog.jpg"], 5)? {
//!     match c.top.first() {
//!         Some(best) => println!("{}: {} ({:.1} %)", c.path.display(), best.label, 100.0 * best.prob),
//!         // Unreadable: the others still ran. `InputError::kind` says why (NotFound, Decode, ...).
//!         None => println!("{}", c.error.unwrap()),
//!     }
//! }
//! let photos = images_in("holiday")?; // every image below a folder, sorted
//! let fc7 = net.embed(&photos, Tap::Fc7)?; // 4096 floats per image
//! println!("{} x {}", fc7.len(), fc7.dim);
//! // Transfer learning: one sub-folder of images per class, trained from conv4 up.
//! let trained = net
//!     .fine_tune()
//!     .train_from(HeadKind::Conv(4))
//!     .optimizer(Optimizer::adam())
//!     .lr(1e-4)
//!     .epochs(5)
//!     .fit("photos")?;
//! println!("validation accuracy {:?}", trained.val_accuracy());
//! trained.save("my_model.npz")?; // or keep going in memory:
//! let mine = AlexNet::from_trained(net.context(), &trained)?;
//! println!("{:?}", mine.classify(&["new.jpg"], 1)?[0].top);
//! # Ok(())
//! # }
//! ```
//!
//! - [`AlexNet::builder`] chooses the weights, preset, adapter, backend, precision, batch and the
//!   [`RuntimeOptions`] (matmul path, WebGPU baseline limits, validation).
//! - [`FineTune`] (from [`AlexNet::fine_tune`]) has every `train-head` setting with the CLI's
//!   defaults; [`Trained`] holds the model, its class names, the per-epoch history and the
//!   validation metrics.
//! - [`Lpips`] gives the perceptual distance, batched pairs, the all-pairs matrix and spatial
//!   maps ([`AlexNet::lpips`] or [`Lpips::load`]); it compares `image::RgbImage`s, from the
//!   re-exported [`image`] crate.
//! - [`AlexNet::selftest`] checks every kernel on the adapter against its CPU reference.
//! - Errors are one [`Error`] type whose message names the file, key or shape at fault; its
//!   `Debug` is its message, so `fn main() -> alexnet_wgpu::Result<()>` prints it readably.
//!   One image that cannot be used is an [`InputError`] (path, [`InputErrorKind`], message):
//!   in [`Classification::error`], [`Embeddings::failed`] and [`Trained::skipped`], the other
//!   images running all the same, and in [`Error::Input`] where a call's one input failed.
//!
//! Runnable programs, each under 40 lines: `examples/classify.rs` (`WEIGHTS IMAGE...`, the top
//! 5 per image), `examples/embed.rs` (`WEIGHTS DIR OUT.npy`, fc7 rows of a flat folder),
//! `examples/fine_tune.rs` (`WEIGHTS DATA_DIR OUT`, from conv4, prints the validation
//! accuracy), `examples/lpips.rs` (`WEIGHTS A B`).
//!
//! Lower down, the modules are the layers the facade is built from, for programs that need
//! them: [`gpu`] (the device: [`GpuContext`], bring your own), [`kernels`] (each WGSL kernel's
//! dispatch with its CPU reference), [`model`] (presets, [`Weights`], the planned
//! [`model::Network`]), [`data`] (decoding and preprocessing), [`train`] (the trainer and its
//! kernels), [`weights`] (the file readers and writers), [`fetch`] (the weights cache).
//! A forward pass by hand, with the preset's preprocessing:
//!
//! ```no_run
//! use alexnet_wgpu::{AlexNet, ImageBatch};
//!
//! # fn main() -> alexnet_wgpu::Result<()> {
//! let net = AlexNet::from_file("alexnet.npz")?;
//! let batch = ImageBatch::from_files(&["cat.jpg", "dog.jpg"], net.transforms())?;
//! let out = net.forward(&batch)?; // logits, softmax and pool5 rows of both images
//! let best = (0..out.classes).max_by(|&a, &b| out.probs[a].total_cmp(&out.probs[b]));
//! println!("first image: class {best:?}; pool5 features: {} floats", out.feature_len);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

/// The README's Rust snippets, compiled as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

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

pub use api::{
    images_in, AlexNet, AlexNetBuilder, Classification, ClassifyIter, EmbedIter, Embeddings,
    ImageBatch, Neighbor, Prediction, Tap,
};
pub use data::LoadOptions;
pub use error::{Error, InputError, InputErrorKind, Result};
pub use fine_tune::{FineTune, Trained};
pub use gpu::GpuContext;
/// The `image` crate this one decodes with (its `RgbImage` is what [`Lpips`] compares).
pub use image;
pub use kernels::Precision;
pub use lpips::{Lin, Lpips};
pub use model::{Arch, Weights};
pub use options::{LimitsProfile, RuntimeOptions};
pub use train::{EpochRecord, HeadKind, Metrics, Optimizer};
