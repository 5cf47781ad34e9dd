//! A dense layer's input, weight and bias gradients, on the kernels
//! [`Kernels::dense_backward_route`] picks per weight part: `dense_backward.wgsl` (CPU
//! adapters) or `mm.wgsl` tiles on the operands where they lie ([`super::mm_strided`], GPUs).
//! The bias gradient is always `dense_backward.wgsl`'s `grad_bias`.

use super::mm_strided::{self, StridedGemm, Strides};
use super::route::DenseBackwardRoute;
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

/// The input gradient's GEMM of the part of `w` holding outputs `row_start..row_start + rows`:
/// `dX[b][i] (+)= sum_o dY[b][row_start + o] W[o][i]`, A = the part `[rows][in]` (m = i,
/// k = o), B = dY `[batch][out]` from column `row_start` (n = b, k = o), C = dX `[batch][in]`.
pub fn igrad_gemm(batch: usize, w: &SplitWeight, row_start: usize, rows: usize) -> StridedGemm {
    StridedGemm {
        m: w.cols,
        n: batch,
        k: rows,
        a: Strides {
            off: 0,
            row: 1,
            k: w.cols,
        },
        b: Strides {
            off: row_start,
            row: w.rows,
            k: 1,
        },
        c_row: w.cols,
        c_off: 0,
        accumulate: row_start > 0,
    }
}

/// The weight gradient's GEMM of that part: `dW[o][i] = sum_b dY[b][row_start + o] X[b][i]`,
/// A = X `[batch][in]` (m = i, k = b), B = dY from column `row_start` (n = o, k = b), C = the
/// part's gradient `[rows][in]`.
pub fn wgrad_gemm(batch: usize, w: &SplitWeight, row_start: usize, rows: usize) -> StridedGemm {
    StridedGemm {
        m: w.cols,
        n: rows,
        k: batch,
        a: Strides {
            off: 0,
            row: 1,
            k: w.cols,
        },
        b: Strides {
            off: row_start,
            row: 1,
            k: w.rows,
        },
        c_row: w.cols,
        c_off: 0,
        accumulate: false,
    }
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
    let mut out = Vec::new();
    for (i, (row_start, rows, buf)) in w.parts.iter().enumerate() {
        match k.dense_backward_route(batch, w.cols, *rows) {
            DenseBackwardRoute::Mm { igrad, .. } => {
                let g = igrad_gemm(batch, w, *row_start, *rows);
                let label = "dense grad input";
                out.extend(mm_strided::dispatch(
                    ctx,
                    k,
                    igrad,
                    &g,
                    label,
                    (buf, dy, dx),
                )?);
            }
            DenseBackwardRoute::Direct => {
                let params = params(batch, w, *row_start, *rows, i > 0)?;
                let grid = Grid::Items(batch.div_ceil(4) * w.cols.div_ceil(4));
                let bindings = [(1, buf), (2, dy), (3, dx)];
                let kernel = k.grad_input();
                out.push(
                    Dispatch::new(ctx, &kernel, "dense grad input", &params, &bindings, grid)?
                        .with_flops(2.0 * (batch * rows * w.cols) as f64),
                );
            }
        }
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
    let mut out = Vec::new();
    for ((row_start, rows, _), dw) in w.parts.iter().zip(dw_parts) {
        match k.dense_backward_route(batch, w.cols, *rows) {
            DenseBackwardRoute::Mm { wgrad, .. } => {
                let g = wgrad_gemm(batch, w, *row_start, *rows);
                let label = "dense grad weight";
                out.extend(mm_strided::dispatch(ctx, k, wgrad, &g, label, (x, dy, dw))?);
            }
            DenseBackwardRoute::Direct => {
                let params = params(batch, w, *row_start, *rows, false)?;
                let grid = Grid::Items(rows.div_ceil(4) * w.cols.div_ceil(4));
                let bindings = [(1, x), (2, dy), (3, dw)];
                let kernel = k.grad_weight();
                out.push(
                    Dispatch::new(ctx, &kernel, "dense grad weight", &params, &bindings, grid)?
                        .with_flops(2.0 * (batch * rows * w.cols) as f64),
                );
            }
        }
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
