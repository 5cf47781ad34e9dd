//! `gather_rows.wgsl`: a training batch gathered from the rows kept in GPU memory (one dispatch
//! per part of the resident set; `train/trainer/resident.rs`).

use super::{to_u32, Dispatch, Grid};
use crate::error::{Error, Result};
use crate::gpu::GpuContext;

use super::Kernels;

/// Mirrors `struct Params` in `gather_rows.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)] // the fields are the shader's uniform block's, named as there
pub struct GatherRowsParams {
    pub dim: u32,
    pub count: u32,
    pub first: u32,
    pub rows: u32,
}

impl GatherRowsParams {
    /// Batch rows `count` of `dim` values from the part holding rows `first..first + rows`.
    pub fn new(dim: usize, count: usize, first: usize, rows: usize) -> Result<Self> {
        Ok(GatherRowsParams {
            dim: to_u32("gather_rows width", dim)?,
            count: to_u32("gather_rows batch", count)?,
            first: to_u32("gather_rows first row", first)?,
            rows: to_u32("gather_rows rows", rows)?,
        })
    }
}

/// `dst[b] = src[idx[b] - first]` (rows of `dim`) for `b < count` where `idx[b]` lies in
/// `first..first + rows`; `src` holds those `rows` rows. The grid covers `count` rows: a caller
/// that rewrites the params to fewer rows keeps the dispatch.
pub fn dispatch(
    ctx: &GpuContext,
    k: &Kernels,
    (dim, count, first, rows): (usize, usize, usize, usize),
    src: &wgpu::Buffer,
    idx: &wgpu::Buffer,
    dst: &wgpu::Buffer,
) -> Result<Dispatch> {
    let items = count
        .checked_mul(dim)
        .filter(|&n| u32::try_from(n).is_ok())
        .ok_or_else(|| Error::Shape(format!("gather_rows: {count} rows of {dim} values")))?;
    Dispatch::new(
        ctx,
        &k.gather_rows(),
        "gather rows",
        &GatherRowsParams::new(dim, count, first, rows)?,
        &[src, idx, dst],
        Grid::Items(items),
    )
}

/// CPU reference: `dst` (`[idx.len(), dim]`) after the dispatch of the part `src` holding rows
/// `first..first + src.len() / dim`.
pub fn reference(src: &[f32], dim: usize, first: usize, idx: &[u32], dst: &mut [f32]) {
    let rows = src.len() / dim;
    for (b, &r) in idx.iter().enumerate() {
        let r = r as usize;
        if (first..first + rows).contains(&r) {
            let at = (r - first) * dim;
            dst[b * dim..(b + 1) * dim].copy_from_slice(&src[at..at + dim]);
        }
    }
}
