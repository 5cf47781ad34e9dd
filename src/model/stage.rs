//! The network as the GPU stage of the decode/GPU pipeline (`data::stream::run`): the
//! scheduler is generic and lives with the decoders, below the network; this is the one place
//! the two meet.

use std::time::Instant;

use super::{Network, Output, Pending};
use crate::data::stream::GpuStage;
use crate::error::Result;

/// The network as a pipeline stage, for inputs of `h` x `w`.
pub struct NetStage<'n> {
    /// The network.
    pub net: &'n mut Network,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Read back pool5 features too.
    pub want_features: bool,
}

impl GpuStage for NetStage<'_> {
    type Pending = Pending;
    type Out = Output;
    fn submit(&mut self, input: &[f32], rows: usize) -> Result<Pending> {
        self.net
            .submit(input, rows, self.h, self.w, self.want_features)
    }
    fn poll(&mut self) {
        self.net.poll();
    }
    fn collect(&mut self, pending: Pending) -> Result<(Output, Instant)> {
        self.net.collect(pending)
    }
}
