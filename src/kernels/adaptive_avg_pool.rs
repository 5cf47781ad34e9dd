//! `adaptive_avg_pool.wgsl`: PyTorch's AdaptiveAvgPool2d (to 6x6 before torchvision's classifier).

use super::{to_u32, Dispatch, Grid, Kernel};
use crate::error::Result;
use crate::gpu::GpuContext;

/// Mirrors `struct Params` in `adaptive_avg_pool.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)] // the fields are the shader's uniform block's, named as there
pub struct AdaptiveAvgPoolParams {
    pub planes: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub _pad: [u32; 3],
}

/// An adaptive average pool's geometry (PyTorch's `AdaptiveAvgPool2d`): `planes` planes of
/// `in_h` x `in_w` averaged into `out_h` x `out_w` cells. Forward, backward
/// (`kernels::pool_backward::adaptive_avg_pool`) and both CPU references take this one
/// value; [`AdaptivePoolShape::cell`] is PyTorch's window formula, in one place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdaptivePoolShape {
    /// Batch times channels.
    pub planes: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
}

impl AdaptivePoolShape {
    /// The input rows (or columns) `start..end` that output cell `o` of `out` averages, from an
    /// input of `input`: `floor(o * input / out) .. ceil((o + 1) * input / out)`.
    pub fn cell(o: usize, input: usize, out: usize) -> (usize, usize) {
        (o * input / out, ((o + 1) * input).div_ceil(out))
    }

    /// Floats of the input (and of its gradient).
    pub fn in_len(&self) -> usize {
        self.planes * self.in_h * self.in_w
    }

    /// Floats of the output (and of its gradient).
    pub fn out_len(&self) -> usize {
        self.planes * self.out_h * self.out_w
    }

    /// The uniform both `adaptive_avg_pool.wgsl` and its backward read.
    pub fn params(&self) -> Result<AdaptiveAvgPoolParams> {
        Ok(AdaptiveAvgPoolParams {
            planes: to_u32("pool planes", self.planes)?,
            in_h: to_u32("pool input height", self.in_h)?,
            in_w: to_u32("pool input width", self.in_w)?,
            out_h: to_u32("pool output height", self.out_h)?,
            out_w: to_u32("pool output width", self.out_w)?,
            _pad: [0; 3],
        })
    }
}

/// Binds `output` = the adaptive average pool of `input` over `s`.
pub fn dispatch(
    ctx: &GpuContext,
    kernel: &Kernel,
    s: &AdaptivePoolShape,
    input: &wgpu::Buffer,
    output: &wgpu::Buffer,
) -> Result<Dispatch> {
    Ok(Dispatch::new(
        ctx,
        kernel,
        "adaptive_avg_pool",
        &s.params()?,
        &[input, output],
        Grid::Items(s.out_len()),
    )?
    .with_flops(s.in_len() as f64))
}

/// CPU reference (f64).
pub fn reference(x: &[f32], s: &AdaptivePoolShape) -> Vec<f32> {
    let AdaptivePoolShape {
        planes,
        in_h,
        in_w,
        out_h,
        out_w,
    } = *s;
    let mut y = vec![0f32; s.out_len()];
    for p in 0..planes {
        for oy in 0..out_h {
            let (y0, y1) = AdaptivePoolShape::cell(oy, in_h, out_h);
            for ox in 0..out_w {
                let (x0, x1) = AdaptivePoolShape::cell(ox, in_w, out_w);
                let mut s = 0f64;
                for iy in y0..y1 {
                    for ix in x0..x1 {
                        s += x[(p * in_h + iy) * in_w + ix] as f64;
                    }
                }
                y[(p * out_h + oy) * out_w + ox] = (s / ((y1 - y0) * (x1 - x0)) as f64) as f32;
            }
        }
    }
    y
}
