//! AlexNet inference and transfer learning with WGSL compute shaders on wgpu.

pub mod error;
pub mod fetch;
pub mod gpu;
pub mod kernels;

pub use error::{Error, Result};
pub mod data;
pub mod labels;
pub mod model;
pub mod train;
pub mod weights;
