//! `relu_backward.wgsl`: gradient through a ReLU, given the ReLU's output.

use super::{to_u32, Dispatch, Grid};
use crate::error::Result;
use crate::gpu::GpuContext;

use super::Kernels;

/// Mirrors `struct Params` in `relu_backward.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)] // the fields are the shader's uniform block's, named as there
pub struct ReluBackwardParams {
    pub len: u32,
    pub _pad: [u32; 3],
}

/// Zeroes `grad` where `activation` is not positive (`len` values, in place).
pub fn dispatch(
    ctx: &GpuContext,
    k: &Kernels,
    len: usize,
    activation: &wgpu::Buffer,
    grad: &wgpu::Buffer,
) -> Result<Dispatch> {
    Ok(Dispatch::new(
        ctx,
        &k.relu_backward(),
        "relu backward",
        &ReluBackwardParams {
            len: to_u32("ReLU backward length", len)?,
            _pad: [0; 3],
        },
        &[activation, grad],
        Grid::Items(len),
    )?
    .with_flops(len as f64))
}

/// CPU reference.
pub fn reference(activation: &[f32], grad: &[f32]) -> Vec<f32> {
    activation
        .iter()
        .zip(grad)
        .map(|(a, g)| if *a > 0.0 { *g } else { 0.0 })
        .collect()
}
