//! `relu.wgsl`: in-place ReLU for the rare ReLU that follows no conv or dense layer.

use super::{grid_1d, Dispatch, Kernel};
use crate::error::Result;
use crate::gpu::{uniform_buffer, GpuContext};

/// Mirrors `struct Params` in `relu.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ReluParams {
    pub len: u32,
    pub _pad: [u32; 3],
}

pub fn dispatch(
    ctx: &GpuContext,
    kernel: &Kernel,
    len: usize,
    data: &wgpu::Buffer,
) -> Result<Dispatch> {
    let params = ReluParams {
        len: len as u32,
        _pad: [0; 3],
    };
    let uniform = uniform_buffer(ctx, "relu params", &params);
    Ok(Dispatch {
        label: "relu".into(),
        pipeline: kernel.pipeline.clone(),
        bind_group: kernel.bind(ctx, &uniform, &[data]),
        workgroups: grid_1d(ctx, len, kernel.workgroup_size[0])?,
        flops: len as f64,
        _params: uniform,
    })
}

/// CPU reference.
pub fn reference(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| v.max(0.0)).collect()
}
