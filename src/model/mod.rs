//! Network descriptions (presets), shape inference, and the GPU network built from them.

pub mod arch;
pub mod network;
pub mod reference;

pub use arch::{Arch, Layer, LayerInfo, NetSpec, Shape, Widths};
pub use network::{Network, Output, StepTiming};
