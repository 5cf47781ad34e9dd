//! `max_pool_backward.wgsl` and `adaptive_avg_pool_backward.wgsl` (the forward kernels' params
//! structs), with their CPU references. Flatten has no backward kernel: NCHW activations are
//! already the row-major `[batch, C*H*W]` rows fc6 reads (Keras fc6 weights are converted to
//! NCHW order at load), so the gradient of fc6's input is the gradient of pool5, as is.

use super::adaptive_avg_pool::AdaptivePoolShape;
use super::max_pool::PoolShape;
use super::{Dispatch, Grid};
use crate::error::Result;
use crate::gpu::GpuContext;

use super::Kernels;

/// `dx` (the pool's input shape) from its input `x` and `dy` (the forward kernel's
/// [`PoolShape`]: windows without padding, the last one clipped to the image when `ceil`).
pub fn max_pool(
    ctx: &GpuContext,
    k: &Kernels,
    s: &PoolShape,
    x: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    dx: &wgpu::Buffer,
) -> Result<Dispatch> {
    let kernel = k.max_pool_backward();
    Ok(Dispatch::new(
        ctx,
        &kernel,
        "max_pool backward",
        &s.params()?,
        &[x, dy, dx],
        Grid::Items(s.in_len()),
    )?
    .with_flops((s.in_len() * s.window * s.window) as f64))
}

/// CPU reference: each window's gradient goes to its first largest value (row-major), as
/// PyTorch's `max_pool2d` backward.
pub fn max_pool_reference(x: &[f32], dy: &[f32], s: &PoolShape) -> Vec<f32> {
    let PoolShape {
        planes,
        in_h,
        in_w,
        window,
        stride,
        ..
    } = *s;
    let (oh, ow) = s.out_hw().expect("valid pool");
    let mut dx = vec![0f64; x.len()];
    for p in 0..planes {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut best = (f32::NEG_INFINITY, usize::MAX);
                for ky in 0..window {
                    for kx in 0..window {
                        let (iy, ix) = (oy * stride + ky, ox * stride + kx);
                        if iy < in_h && ix < in_w {
                            let i = (p * in_h + iy) * in_w + ix;
                            if x[i] > best.0 || best.1 == usize::MAX {
                                best = (x[i], i);
                            }
                        }
                    }
                }
                dx[best.1] += dy[(p * oh + oy) * ow + ox] as f64;
            }
        }
    }
    dx.into_iter().map(|v| v as f32).collect()
}

/// `dx` `[planes, in_h, in_w]` from `dy` `[planes, out_h, out_w]`.
pub fn adaptive_avg_pool(
    ctx: &GpuContext,
    k: &Kernels,
    s: &AdaptivePoolShape,
    dy: &wgpu::Buffer,
    dx: &wgpu::Buffer,
) -> Result<Dispatch> {
    let kernel = k.adaptive_avg_pool_backward();
    Ok(Dispatch::new(
        ctx,
        &kernel,
        "adaptive_avg_pool backward",
        &s.params()?,
        &[dy, dx],
        Grid::Items(s.in_len()),
    )?
    .with_flops((s.in_len() * s.out_h * s.out_w) as f64))
}

/// CPU reference (f64): each cell's gradient spread evenly over the input values it averages.
pub fn adaptive_avg_pool_reference(dy: &[f32], s: &AdaptivePoolShape) -> Vec<f32> {
    let AdaptivePoolShape {
        planes,
        in_h,
        in_w,
        out_h,
        out_w,
    } = *s;
    let mut dx = vec![0f64; s.in_len()];
    for p in 0..planes {
        for oy in 0..out_h {
            let (y0, y1) = AdaptivePoolShape::cell(oy, in_h, out_h);
            for ox in 0..out_w {
                let (x0, x1) = AdaptivePoolShape::cell(ox, in_w, out_w);
                let d = dy[(p * out_h + oy) * out_w + ox] as f64 / ((y1 - y0) * (x1 - x0)) as f64;
                for iy in y0..y1 {
                    for ix in x0..x1 {
                        dx[(p * in_h + iy) * in_w + ix] += d;
                    }
                }
            }
        }
    }
    dx.into_iter().map(|v| v as f32).collect()
}
