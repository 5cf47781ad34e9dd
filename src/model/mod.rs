//! Network descriptions (presets), shape inference, and the GPU network built from them.

pub mod arch;
pub mod formats;
pub mod naming;
pub mod network;
pub mod params;
pub mod reference;

pub use arch::{Arch, Layer, LayerInfo, NetSpec, Shape, Widths};
pub use naming::Scheme;
pub use network::{Network, Output, StepTiming};
pub use params::Weights;
