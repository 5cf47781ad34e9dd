//! `pad_rows.wgsl`: a row-major matrix copied with its rows zero-padded (a trained
//! convolution's OIHW weights in the vec4-row layout of the forward GEMMs).

use super::{grid_1d, Dispatch};
use crate::error::{Error, Result};
use crate::gpu::{uniform_buffer, GpuContext};

use super::Kernels;

/// Mirrors `struct Params` in `pad_rows.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
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
    let uniform = uniform_buffer(
        ctx,
        "pad_rows params",
        &PadRowsParams {
            rows: rows as u32,
            cols: cols as u32,
            cols_padded: cols_padded as u32,
            _pad: 0,
        },
    );
    let kernel = k.pad_rows();
    Ok(Dispatch {
        label: "pad rows".into(),
        pipeline: kernel.pipeline.clone(),
        bind_group: kernel.bind(ctx, &uniform, &[src, dst]),
        workgroups: grid_1d(ctx, rows * cols_padded, kernel.workgroup_size[0])?,
        flops: 0.0,
        _params: uniform,
    })
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
