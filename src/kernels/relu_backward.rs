//! `relu_backward.wgsl`: gradient through a ReLU, given the ReLU's output.

use super::{grid_1d, Dispatch};
use crate::error::Result;
use crate::gpu::{uniform_buffer, GpuContext};

use super::Kernels;

/// Mirrors `struct Params` in `relu_backward.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ReluBackwardParams {
    pub len: u32,
    pub _pad: [u32; 3],
}

pub fn dispatch(
    ctx: &GpuContext,
    k: &Kernels,
    len: usize,
    activation: &wgpu::Buffer,
    grad: &wgpu::Buffer,
) -> Result<Dispatch> {
    let uniform = uniform_buffer(
        ctx,
        "relu_backward params",
        &ReluBackwardParams {
            len: len as u32,
            _pad: [0; 3],
        },
    );
    Ok(Dispatch {
        label: "relu backward".into(),
        pipeline: k.relu_backward().pipeline.clone(),
        bind_group: k.relu_backward().bind(ctx, &uniform, &[activation, grad]),
        workgroups: grid_1d(ctx, len, k.relu_backward().workgroup_size[0])?,
        flops: len as f64,
        _params: uniform,
    })
}

/// CPU reference.
pub fn reference(activation: &[f32], grad: &[f32]) -> Vec<f32> {
    activation
        .iter()
        .zip(grad)
        .map(|(a, g)| if *a > 0.0 { *g } else { 0.0 })
        .collect()
}
