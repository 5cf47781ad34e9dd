//! `softmax.wgsl`: row-wise softmax.

use super::{to_u32, Dispatch, Grid, Kernel};
use crate::error::Result;
use crate::gpu::GpuContext;

/// Mirrors `struct Params` in `softmax.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)] // the fields are the shader's uniform block's, named as there
pub struct SoftmaxParams {
    pub rows: u32,
    pub cols: u32,
    pub _pad: [u32; 2],
}

/// Softmax of each of `rows` rows of `cols` values, from `input` into `output`.
pub fn dispatch(
    ctx: &GpuContext,
    kernel: &Kernel,
    rows: usize,
    cols: usize,
    input: &wgpu::Buffer,
    output: &wgpu::Buffer,
) -> Result<Dispatch> {
    let params = SoftmaxParams {
        rows: to_u32("softmax rows", rows)?,
        cols: to_u32("softmax columns", cols)?,
        _pad: [0; 2],
    };
    let grid = Grid::Groups([rows, 1, 1]);
    Ok(
        Dispatch::new(ctx, kernel, "softmax", &params, &[input, output], grid)?
            .with_flops((rows * cols * 4) as f64),
    )
}

/// CPU reference (f64).
pub fn reference(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut y = vec![0f32; rows * cols];
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let sum: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
        for c in 0..cols {
            y[r * cols + c] = ((row[c] as f64 - m).exp() / sum) as f32;
        }
    }
    y
}
