//! `dense_backward.wgsl`: input, weight and bias gradients of a dense layer.

use super::{to_u32, Dispatch, Grid};
use crate::error::Result;
use crate::gpu::{GpuContext, SplitWeight};

use super::Kernels;

/// Mirrors `struct Params` in `dense_backward.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)] // the fields are the shader's uniform block's, named as there
pub struct DenseBackwardParams {
    pub batch: u32,
    pub in_f: u32,
    pub out_f: u32,
    pub row_start: u32,
    pub rows: u32,
    pub accumulate: u32,
    pub _pad: [u32; 2],
}

fn params(
    batch: usize,
    w: &SplitWeight,
    row_start: usize,
    rows: usize,
    accumulate: bool,
) -> Result<DenseBackwardParams> {
    Ok(DenseBackwardParams {
        batch: to_u32("dense batch", batch)?,
        in_f: to_u32("dense input features", w.cols)?,
        out_f: to_u32("dense output features", w.rows)?,
        row_start: to_u32("dense first row", row_start)?,
        rows: to_u32("dense rows", rows)?,
        accumulate: accumulate as u32,
        _pad: [0; 2],
    })
}

/// `dx = dy w` over every part of `w` (the first part writes, the others add).
pub fn grad_input(
    ctx: &GpuContext,
    k: &Kernels,
    batch: usize,
    w: &SplitWeight,
    dy: &wgpu::Buffer,
    dx: &wgpu::Buffer,
) -> Result<Vec<Dispatch>> {
    let kernel = k.grad_input();
    let mut out = Vec::new();
    for (i, (row_start, rows, buf)) in w.parts.iter().enumerate() {
        let params = params(batch, w, *row_start, *rows, i > 0)?;
        let grid = Grid::Items(batch.div_ceil(4) * w.cols.div_ceil(4));
        let bindings = [(1, buf), (2, dy), (3, dx)];
        out.push(
            Dispatch::new(ctx, &kernel, "dense grad input", &params, &bindings, grid)?
                .with_flops(2.0 * (batch * rows * w.cols) as f64),
        );
    }
    Ok(out)
}

/// `dw = dy^T x` for every part of `w`, into `dw_parts` (laid out like the parts), and
/// `db = sum_b dy`.
#[allow(clippy::too_many_arguments)]
pub fn grad_weight_bias(
    ctx: &GpuContext,
    k: &Kernels,
    batch: usize,
    w: &SplitWeight,
    x: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    dw_parts: &[wgpu::Buffer],
    db: &wgpu::Buffer,
) -> Result<Vec<Dispatch>> {
    let kernel = k.grad_weight();
    let mut out = Vec::new();
    for ((row_start, rows, _), dw) in w.parts.iter().zip(dw_parts) {
        let params = params(batch, w, *row_start, *rows, false)?;
        let grid = Grid::Items(rows.div_ceil(4) * w.cols.div_ceil(4));
        let bindings = [(1, x), (2, dy), (3, dw)];
        out.push(
            Dispatch::new(ctx, &kernel, "dense grad weight", &params, &bindings, grid)?
                .with_flops(2.0 * (batch * rows * w.cols) as f64),
        );
    }
    let kernel = k.grad_bias();
    let params = params(batch, w, 0, w.rows, false)?;
    let grid = Grid::Groups([w.rows.div_ceil(kernel.workgroup_size[0] as usize), 1, 1]);
    out.push(
        Dispatch::new(
            ctx,
            &kernel,
            "dense grad bias",
            &params,
            &[(2, dy), (3, db)],
            grid,
        )?
        .with_flops((batch * w.rows) as f64),
    );
    Ok(out)
}

/// CPU reference: (dx `[batch, in]`, dw `[out, in]`, db `[out]`) for `w` `[out, in]`.
pub fn reference(
    w: &[f32],
    x: &[f32],
    dy: &[f32],
    batch: usize,
    in_f: usize,
    out_f: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut dx = vec![0f32; batch * in_f];
    let mut dw = vec![0f32; out_f * in_f];
    let mut db = vec![0f32; out_f];
    for b in 0..batch {
        for i in 0..in_f {
            dx[b * in_f + i] = (0..out_f)
                .map(|o| dy[b * out_f + o] as f64 * w[o * in_f + i] as f64)
                .sum::<f64>() as f32;
        }
    }
    for o in 0..out_f {
        for i in 0..in_f {
            dw[o * in_f + i] = (0..batch)
                .map(|b| dy[b * out_f + o] as f64 * x[b * in_f + i] as f64)
                .sum::<f64>() as f32;
        }
        db[o] = (0..batch).map(|b| dy[b * out_f + o] as f64).sum::<f64>() as f32;
    }
    (dx, dw, db)
}
