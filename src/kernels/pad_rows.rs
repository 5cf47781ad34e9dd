//! `pad_rows.wgsl`: a row-major matrix copied with its rows zero-padded (a trained
//! convolution's OIHW weights in the vec4-row layout of the forward GEMMs).

use super::{to_u32, Dispatch, Grid};
use crate::error::{Error, Result};
use crate::gpu::GpuContext;

use super::Kernels;

/// Mirrors `struct Params` in `pad_rows.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)] // the fields are the shader's uniform block's, named as there
pub struct PadRowsParams {
    pub rows: u32,
    pub cols: u32,
    pub cols_padded: u32,
    pub _pad: u32,
}

/// `dst[r][c] = src[r][c]` for `c < cols`, 0 up to `cols_padded`.
pub fn dispatch(
    ctx: &GpuContext,
    k: &Kernels,
    (rows, cols, cols_padded): (usize, usize, usize),
    src: &wgpu::Buffer,
    dst: &wgpu::Buffer,
) -> Result<Dispatch> {
    if cols_padded < cols {
        return Err(Error::Shape(format!(
            "pad_rows: padded width {cols_padded} is below the width {cols}"
        )));
    }
    let kernel = k.pad_rows();
    Dispatch::new(
        ctx,
        &kernel,
        "pad rows",
        &PadRowsParams {
            rows: to_u32("pad_rows rows", rows)?,
            cols: to_u32("pad_rows width", cols)?,
            cols_padded: to_u32("pad_rows padded width", cols_padded)?,
            _pad: 0,
        },
        &[src, dst],
        Grid::Items(rows * cols_padded),
    )
}

/// CPU reference.
pub fn reference(src: &[f32], rows: usize, cols: usize, cols_padded: usize) -> Vec<f32> {
    let mut out = vec![0.0; rows * cols_padded];
    for r in 0..rows {
        out[r * cols_padded..r * cols_padded + cols]
            .copy_from_slice(&src[r * cols..(r + 1) * cols]);
    }
    out
}
