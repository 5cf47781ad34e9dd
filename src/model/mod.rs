//! Network descriptions (presets, with the input transform each expects), shape inference, and
//! the GPU network built from them (also as the GPU stage of the decode/GPU pipeline).

pub mod arch;
pub mod dense;
pub mod formats;
mod load;
pub mod naming;
pub mod network;
pub mod ops;
pub mod params;
mod preprocess;
pub mod profile;
pub mod reference;
pub mod run;
mod stage;
pub mod tap;
pub mod tune;

pub use arch::{Arch, Layer, LayerInfo, NetSpec, Shape, Widths};
pub use naming::Scheme;
pub use network::{Input, Network, Output, PassTiming, Pending};
pub use params::Weights;
pub use profile::{LayerTiming, StepTiming};
pub use run::{top_k, Fill, Ran, Row, RunError, RunShape};
pub use stage::{NetStage, PixelStage};
pub use tap::{Tap, TapLayers};
