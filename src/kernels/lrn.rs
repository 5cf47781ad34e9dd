//! `lrn.wgsl`: local response normalisation across channels (Caffe's AlexNet).

use super::{to_u32, Dispatch, Grid, Kernel};
use crate::error::Result;
use crate::gpu::GpuContext;

/// Mirrors `struct Params` in `lrn.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)] // the fields are the shader's uniform block's, named as there
pub struct LrnParams {
    pub batch: u32,
    pub channels: u32,
    pub hw: u32,
    pub size: u32,
    pub alpha: f32,
    pub beta: f32,
    pub k: f32,
    pub _pad: u32,
}

/// LRN hyper-parameters; `Default` is Caffe's AlexNet (size 5, alpha 1e-4, beta 0.75, k 1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lrn {
    /// Channels in the window.
    pub size: usize,
    /// Scale.
    pub alpha: f32,
    /// Exponent.
    pub beta: f32,
    /// Additive constant.
    pub k: f32,
}

impl Default for Lrn {
    fn default() -> Self {
        Lrn {
            size: 5,
            alpha: 1e-4,
            beta: 0.75,
            k: 1.0,
        }
    }
}

impl Lrn {
    /// The params struct of `lrn.wgsl` and `lrn_backward.wgsl` for `[batch, channels, hw]`.
    pub fn params(&self, batch: usize, channels: usize, hw: usize) -> Result<LrnParams> {
        Ok(LrnParams {
            batch: to_u32("LRN batch", batch)?,
            channels: to_u32("LRN channels", channels)?,
            hw: to_u32("LRN pixels", hw)?,
            size: to_u32("LRN size", self.size)?,
            alpha: self.alpha,
            beta: self.beta,
            k: self.k,
            _pad: 0,
        })
    }
}

#[allow(clippy::too_many_arguments)]
/// LRN of `batch` x `channels` planes of `hw` values from `input` into `output`.
pub fn dispatch(
    ctx: &GpuContext,
    kernel: &Kernel,
    lrn: &Lrn,
    batch: usize,
    channels: usize,
    hw: usize,
    input: &wgpu::Buffer,
    output: &wgpu::Buffer,
) -> Result<Dispatch> {
    let params = lrn.params(batch, channels, hw)?;
    let total = batch * channels * hw;
    Ok(Dispatch::new(
        ctx,
        kernel,
        "lrn",
        &params,
        &[input, output],
        Grid::Items(total),
    )?
    .with_flops((total * (2 * lrn.size + 4)) as f64))
}

/// CPU reference (f64), NCHW input.
pub fn reference(lrn: &Lrn, x: &[f32], batch: usize, channels: usize, hw: usize) -> Vec<f32> {
    let before = (lrn.size - 1) / 2;
    let after = lrn.size / 2;
    let mut y = vec![0f32; x.len()];
    for b in 0..batch {
        for c in 0..channels {
            let lo = c.saturating_sub(before);
            let hi = (c + after).min(channels - 1);
            for i in 0..hw {
                let mut s = 0f64;
                for cc in lo..=hi {
                    let v = x[(b * channels + cc) * hw + i] as f64;
                    s += v * v;
                }
                let idx = (b * channels + c) * hw + i;
                let d =
                    (lrn.k as f64 + lrn.alpha as f64 / lrn.size as f64 * s).powf(lrn.beta as f64);
                y[idx] = (x[idx] as f64 / d) as f32;
            }
        }
    }
    y
}
