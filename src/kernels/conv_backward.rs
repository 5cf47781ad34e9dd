//! `conv_backward.wgsl`: input, weight and bias gradients of a convolution (stride, padding,
//! groups), with their CPU references (f64 accumulation).

use super::conv2d::{Conv2dShape, ConvGeometry};
use super::{Dispatch, Grid};
use crate::error::Result;
use crate::gpu::GpuContext;

use super::Kernels;

/// Mirrors `struct Params` in `conv_backward.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)] // the fields are the shader's uniform block's, named as there
pub struct ConvBackwardParams {
    pub geo: ConvGeometry,
    pub accumulate: u32,
}

impl ConvBackwardParams {
    /// The params of shape `s`; `accumulate` adds to the output instead of overwriting it.
    pub fn new(s: &Conv2dShape, accumulate: bool) -> Result<Self> {
        Ok(ConvBackwardParams {
            geo: s.geometry()?,
            accumulate: accumulate as u32,
        })
    }
}

/// `dx` `[batch, in_c, in_h, in_w]` from `dy` and the OIHW weights `w`.
pub fn grad_input(
    ctx: &GpuContext,
    k: &Kernels,
    shape: &Conv2dShape,
    w: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    dx: &wgpu::Buffer,
) -> Result<Dispatch> {
    let kernel = k.conv_grad_input();
    let params = ConvBackwardParams::new(shape, false)?;
    let total = shape.batch * shape.in_c * shape.in_h * shape.in_w;
    let bindings = [(1, w), (2, dy), (3, dx)];
    let grid = Grid::Items(total);
    Ok(
        Dispatch::new(ctx, &kernel, "conv grad input", &params, &bindings, grid)?
            .with_flops(shape.flops()),
    )
}

/// `dw` (OIHW, written, or added to when `accumulate`) and `db` `[out_c]` from the layer's
/// input `x` and `dy`.
#[allow(clippy::too_many_arguments)]
pub fn grad_weight_bias(
    ctx: &GpuContext,
    k: &Kernels,
    shape: &Conv2dShape,
    accumulate: bool,
    x: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    dw: &wgpu::Buffer,
    db: &wgpu::Buffer,
) -> Result<Vec<Dispatch>> {
    let params = ConvBackwardParams::new(shape, accumulate)?;
    let (kw, kb) = (k.conv_grad_weight(), k.conv_grad_bias());
    let (oh, ow) = shape.out_hw()?;
    let weight_grid = Grid::Items(shape.weight_len());
    let weight_bindings = [(1, x), (2, dy), (3, dw)];
    Ok(vec![
        Dispatch::new(
            ctx,
            &kw,
            "conv grad weight",
            &params,
            &weight_bindings,
            weight_grid,
        )?
        .with_flops(shape.flops()),
        Dispatch::new(
            ctx,
            &kb,
            "conv grad bias",
            &params,
            &[(2, dy), (3, db)],
            Grid::Items(shape.out_c),
        )?
        .with_flops((shape.batch * shape.out_c * oh * ow) as f64),
    ])
}

/// `db` `[out_c]` (written) from `dy`.
pub fn grad_bias(
    ctx: &GpuContext,
    k: &Kernels,
    shape: &Conv2dShape,
    dy: &wgpu::Buffer,
    db: &wgpu::Buffer,
) -> Result<Dispatch> {
    let params = ConvBackwardParams::new(shape, false)?;
    let kb = k.conv_grad_bias();
    let (oh, ow) = shape.out_hw()?;
    let grid = Grid::Items(shape.out_c);
    Ok(Dispatch::new(
        ctx,
        &kb,
        "conv grad bias",
        &params,
        &[(2, dy), (3, db)],
        grid,
    )?
    .with_flops((shape.batch * shape.out_c * oh * ow) as f64))
}

/// CPU reference (f64): (dx NCHW, dw OIHW, db) of `shape` for input `x`, weights `w` and `dy`.
pub fn reference(
    s: &Conv2dShape,
    w: &[f32],
    x: &[f32],
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (oh, ow) = s.out_hw().expect("valid conv shape");
    let cin_g = s.in_c / s.groups;
    let cout_g = s.out_c / s.groups;
    let k = s.kernel;
    let mut dx = vec![0f64; x.len()];
    let mut dw = vec![0f64; w.len()];
    let mut db = vec![0f64; s.out_c];
    for b in 0..s.batch {
        for co in 0..s.out_c {
            let g = co / cout_g;
            for oy in 0..oh {
                for ox in 0..ow {
                    let d = dy[((b * s.out_c + co) * oh + oy) * ow + ox] as f64;
                    db[co] += d;
                    for ci in 0..cin_g {
                        let c = g * cin_g + ci;
                        for ky in 0..k {
                            let iy = (oy * s.stride + ky) as isize - s.pad as isize;
                            if iy < 0 || iy >= s.in_h as isize {
                                continue;
                            }
                            for kx in 0..k {
                                let ix = (ox * s.stride + kx) as isize - s.pad as isize;
                                if ix < 0 || ix >= s.in_w as isize {
                                    continue;
                                }
                                let xi = ((b * s.in_c + c) * s.in_h + iy as usize) * s.in_w
                                    + ix as usize;
                                let wi = ((co * cin_g + ci) * k + ky) * k + kx;
                                dx[xi] += d * w[wi] as f64;
                                dw[wi] += d * x[xi] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    let f = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect();
    (f(dx), f(dw), f(db))
}
