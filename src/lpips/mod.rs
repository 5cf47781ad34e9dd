//! LPIPS, the learned perceptual image distance of Zhang et al. (CVPR 2018), as the `lpips`
//! 0.1.4 Python package computes it with `net='alex'`: the five ReLU outputs of the AlexNet
//! `features` trunk, each unit-normalised over channels at every position, squared differences
//! weighted by the learned 1x1 "lin" layer, averaged over space and summed over layers.
//!
//! The trunk runs on the GPU with the project's convolution and pooling kernels
//! ([`trunk`]); the per-pair reduction runs in `lpips.wgsl` ([`kernel`]), so feature maps never
//! come back to the CPU: only the per-layer terms and (small, one channel) native-resolution
//! maps do. Every image's features are computed once per call, however many pairs use it
//! ([`Lpips::matrix`] computes n images' trunks once for n(n-1)/2 pairs), and every call keeps
//! to the metric's memory budget ([`Lpips::with_memory_budget`]).
//!
//! - `lin`: the lin layers' calibration, [`Lin`].
//! - `metric`: [`Lpips`] (loading, budget, trunk count).
//! - `pairs`: distances, spatial maps and activations of pairs.
//! - `matrix`: the all-pairs pairs streamed in bands ([`PairBlock`]) or collected ([`Matrix`]),
//!   within the budget; `spill`: its temporary file.
//! - `lookup`: a matrix's closest pairs and lookups by path ([`Matrix::closest_pairs`]).
//! - `heatmap`: a map rendered as a PNG heatmap ([`write_heatmap`]).
//! - `outputs`: what is returned ([`Distance`], [`Map`], [`Spatial`], [`Activation`]).
//!
//! ```no_run
//! use alexnet_wgpu::gpu::{AdapterChoice, GpuContext};
//! use alexnet_wgpu::lpips::{Lin, Lpips};
//! # fn main() -> alexnet_wgpu::Result<()> {
//! let ctx = GpuContext::new(&AdapterChoice::default())?;
//! let lpips = Lpips::load(&ctx, "alexnet.pth", Lin::V0_1)?;
//! let a = alexnet_wgpu::lpips::load_image("a.png", None)?;
//! let b = alexnet_wgpu::lpips::load_image("b.jpg", Some((640, 480)))?; // resized as PIL does
//! println!("{}", lpips.distance(&a, &b)?);
//! # Ok(())
//! # }
//! ```

mod heatmap;
pub mod kernel;
mod lin;
mod lookup;
mod matrix;
mod metric;
mod outputs;
mod pairs;
mod spill;
pub mod trunk;

pub use heatmap::{render_heatmap, write_heatmap, Heatmap};
pub use lin::Lin;
pub use lookup::ClosePair;
pub use matrix::{Matrix, MatrixPlan, MatrixProgress, PairBlock};
pub use metric::{check_size, load_image, Lpips, DEFAULT_MEMORY_BYTES};
pub use outputs::{Activation, Distance, Map, Spatial};
pub use pairs::upsample_bilinear;
pub use spill::remove_stale_spills;
pub use trunk::{layer_sizes, CHANNELS, MIN_SIDE};
