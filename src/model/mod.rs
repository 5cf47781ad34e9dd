//! Network descriptions (presets), shape inference, and the GPU network built from them.

pub mod arch;
pub mod dense;
pub mod formats;
mod load;
pub mod naming;
pub mod network;
pub mod params;
pub mod profile;
pub mod reference;
pub mod tune;

pub use arch::{Arch, Layer, LayerInfo, NetSpec, Shape, Widths};
pub use naming::Scheme;
pub use network::{Network, Output, Pending};
pub use params::Weights;
pub use profile::StepTiming;
