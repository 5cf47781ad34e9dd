//! `lrn.wgsl`: local response normalisation across channels (Caffe's AlexNet).

use super::{grid_1d, Dispatch, Kernel};
use crate::error::Result;
use crate::gpu::{uniform_buffer, GpuContext};

/// Mirrors `struct Params` in `lrn.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
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
    pub size: usize,
    pub alpha: f32,
    pub beta: f32,
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

#[allow(clippy::too_many_arguments)]
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
    let params = LrnParams {
        batch: batch as u32,
        channels: channels as u32,
        hw: hw as u32,
        size: lrn.size as u32,
        alpha: lrn.alpha,
        beta: lrn.beta,
        k: lrn.k,
        _pad: 0,
    };
    let uniform = uniform_buffer(ctx, "lrn params", &params);
    let total = batch * channels * hw;
    Ok(Dispatch {
        label: "lrn".into(),
        pipeline: kernel.pipeline.clone(),
        bind_group: kernel.bind(ctx, &uniform, &[input, output]),
        workgroups: grid_1d(ctx, total, kernel.workgroup_size[0])?,
        flops: (total * (2 * lrn.size + 4)) as f64,
        _params: uniform,
    })
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
