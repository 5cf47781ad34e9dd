//! `lrn_backward.wgsl`: the gradient through Caffe's cross-channel LRN (the forward kernel's
//! params struct), with its CPU reference (f64).

use super::lrn::Lrn;
use super::{Dispatch, Grid};
use crate::error::Result;
use crate::gpu::GpuContext;

use super::Kernels;

/// `dx` (NCHW) from the LRN's input `x` and `dy`.
#[allow(clippy::too_many_arguments)]
pub fn dispatch(
    ctx: &GpuContext,
    k: &Kernels,
    lrn: &Lrn,
    batch: usize,
    channels: usize,
    hw: usize,
    x: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    dx: &wgpu::Buffer,
) -> Result<Dispatch> {
    let params = lrn.params(batch, channels, hw)?;
    let kernel = k.lrn_backward();
    let total = batch * channels * hw;
    Ok(Dispatch::new(
        ctx,
        &kernel,
        "lrn backward",
        &params,
        &[x, dy, dx],
        Grid::Items(total),
    )?
    .with_flops((total * lrn.size * (2 * lrn.size + 6)) as f64))
}

/// CPU reference (f64), NCHW: for `y_i = x_i d_i^-beta`, `d_i = k + alpha/size * sum x_j^2`
/// over the window of `i`, the sum over outputs `i` of `dy_i dy_i/dx_j`.
pub fn reference(
    lrn: &Lrn,
    x: &[f32],
    dy: &[f32],
    batch: usize,
    channels: usize,
    hw: usize,
) -> Vec<f32> {
    let before = (lrn.size - 1) / 2;
    let after = lrn.size / 2;
    let (alpha, beta, k, n) = (
        lrn.alpha as f64,
        lrn.beta as f64,
        lrn.k as f64,
        lrn.size as f64,
    );
    let mut dx = vec![0f64; x.len()];
    for b in 0..batch {
        for px in 0..hw {
            let at = |c: usize| (b * channels + c) * hw + px;
            for i in 0..channels {
                let (lo, hi) = (i.saturating_sub(before), (i + after).min(channels - 1));
                let d = k + alpha / n * (lo..=hi).map(|j| (x[at(j)] as f64).powi(2)).sum::<f64>();
                let (xi, gi) = (x[at(i)] as f64, dy[at(i)] as f64);
                dx[at(i)] += gi * d.powf(-beta);
                let common = -2.0 * alpha * beta / n * gi * xi * d.powf(-beta - 1.0);
                for j in lo..=hi {
                    dx[at(j)] += common * x[at(j)] as f64;
                }
            }
        }
    }
    dx.into_iter().map(|v| v as f32).collect()
}
