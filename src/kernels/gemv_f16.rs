//! `gemv_f16.wgsl`: dense layers at small batches (1 to [`MAX_BATCH`]) from f16 weights on
//! GPUs, lanes along K (coalesced), [`ROWS`] weight rows per workgroup, f32 inputs,
//! accumulation and output. It reads both f16 weight layouts the network stores: the
//! `gemm_f16.wgsl` rows ([`super::dense::upload_f16`], interleaved halves) and the
//! `coop.wgsl` rows ([`super::coop::weight_for_coop`], sequential halves).
//!
//! Why: at batch 1 a dense layer's floor is one read of its weights (fc6 in f16: 75 MB, 22 us
//! at an H100's 3.35 TB/s; fc6-fc8 together 58 % of AlexNet's parameters in bytes), and
//! neither f16 kernel before it was shaped for that: `gemm_f16.wgsl`'s 1-row tile gives each
//! lane a whole row (K serial, one uncoalesced word per lane per step: the H200 run's f16
//! "gains nothing"), and the tensor-core GEMM pads the batch to 32 rows and gives fc6 only
//! 4096 / 64 = 64 workgroups of one subgroup each. Prediction for the card: fc6 + fc7 + fc8
//! at batch 1 in f16 near the bandwidth floor (~35 us for 117 MB), against ~2x that in f32.

use super::{to_u32, Dispatch, Grid, Kernels};
use crate::error::Result;
use crate::gpu::GpuContext;

/// The largest batch one dispatch serves (each lane keeps `ROWS * MAX_BATCH` sums).
pub const MAX_BATCH: usize = 8;

/// Weight rows per workgroup.
pub const ROWS: usize = 4;

/// Mirrors `struct Params` in `gemv_f16.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)] // the fields are the shader's uniform block's, named as there
pub struct GemvF16Params {
    pub batch: u32,
    pub k: u32,
    pub out_f: u32,
    pub row_start: u32,
    pub rows: u32,
    pub row_words: u32,
    pub relu: u32,
    pub interleaved: u32,
}

/// How the halves of a weight row are ordered in its words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HalfOrder {
    /// `gemm_f16.wgsl`'s rows ([`super::gemm::pack_f16_rows`]): word `j` of each four holds
    /// `k = 8g + j` (low half) and `k = 8g + j + 4` (high).
    Interleaved,
    /// `coop.wgsl`'s rows: word `j` holds `k = 2j` (low) and `k = 2j + 1` (high).
    Sequential,
}

/// Whether `gemv_f16.wgsl` serves f16 dense layers at `batch` on these kernels: on GPUs
/// (the `Blocked` path; CPU adapters keep `gemm_f16.wgsl`, whose lane-per-row shape suits a
/// CPU's cache) from 1 to [`MAX_BATCH`] rows.
pub fn serves(kernels: &Kernels, batch: usize) -> bool {
    matches!(kernels.path, super::MatmulPath::Blocked(_)) && (1..=MAX_BATCH).contains(&batch)
}

/// One weight part: `weight` holds rows `row_start..row_start + rows` of the `out_f` outputs,
/// `row_words` words apart, halves in `order`; `input` is `[batch, k]` f32, `output`
/// `[batch, out_f]`, `bias` all `out_f` biases.
#[allow(clippy::too_many_arguments)]
pub fn dispatch(
    ctx: &GpuContext,
    kernels: &Kernels,
    batch: usize,
    k: usize,
    (row_start, rows, out_f): (usize, usize, usize),
    (row_words, order): (usize, HalfOrder),
    relu: bool,
    weight: &wgpu::Buffer,
    bias: &wgpu::Buffer,
    input: &wgpu::Buffer,
    output: &wgpu::Buffer,
) -> Result<Dispatch> {
    if !(1..=MAX_BATCH).contains(&batch) || row_words * 2 < k {
        return Err(crate::error::Error::Shape(format!(
            "gemv_f16: batch {batch} (1..={MAX_BATCH}) or rows of {row_words} words for K {k}"
        )));
    }
    let params = GemvF16Params {
        batch: to_u32("gemv batch", batch)?,
        k: to_u32("gemv K", k)?,
        out_f: to_u32("gemv outputs", out_f)?,
        row_start: to_u32("gemv first row", row_start)?,
        rows: to_u32("gemv rows", rows)?,
        row_words: to_u32("gemv row words", row_words)?,
        relu: relu as u32,
        interleaved: (order == HalfOrder::Interleaved) as u32,
    };
    let kernel = kernels.gemv_f16();
    Ok(Dispatch::new(
        ctx,
        &kernel,
        "dense(gemv_f16)",
        &params,
        &[weight, bias, input, output],
        Grid::FoldedGroups(rows.div_ceil(ROWS)),
    )?
    .with_flops(2.0 * (batch * rows * k) as f64))
}
