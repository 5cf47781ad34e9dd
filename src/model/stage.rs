//! The network as the GPU stage of the decode/GPU pipeline (`data::stream::run`): the
//! scheduler is generic and lives with the decoders, below the network; this is the one place
//! the two meet. Rows come as normalised f32 ([`NetStage`]) or as cropped pixels normalised on
//! the GPU ([`PixelStage`]).

use std::time::Instant;

use super::network::Input;
use super::{Network, Output, Pending};
use crate::data::stream::GpuStage;
use crate::data::NormTable;
use crate::error::Result;

/// The network as a pipeline stage over normalised f32 rows, for inputs of `h` x `w`.
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
    type Elem = f32;
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

/// The network as a pipeline stage over cropped 8-bit pixels (`data::crop_pixels`' layout),
/// normalised on the GPU by `table`.
pub struct PixelStage<'n> {
    /// The network over f32 rows: its size and what it reads back.
    pub stage: NetStage<'n>,
    /// The preset's normalisation (`data::norm_table`).
    pub table: NormTable,
}

impl GpuStage for PixelStage<'_> {
    type Elem = u8;
    type Pending = Pending;
    type Out = Output;
    fn submit(&mut self, input: &[u8], rows: usize) -> Result<Pending> {
        let s = &mut self.stage;
        s.net.submit_input(
            Input::Pixels(input, &self.table),
            rows,
            s.h,
            s.w,
            s.want_features,
        )
    }
    fn poll(&mut self) {
        self.stage.poll();
    }
    fn collect(&mut self, pending: Pending) -> Result<(Output, Instant)> {
        self.stage.collect(pending)
    }
}
