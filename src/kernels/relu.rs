//! `relu.wgsl`: in-place ReLU for the rare ReLU that follows no conv or dense layer.

use super::{to_u32, Dispatch, Grid, Kernel};
use crate::error::Result;
use crate::gpu::GpuContext;

/// Mirrors `struct Params` in `relu.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)] // the fields are the shader's uniform block's, named as there
pub struct ReluParams {
    pub len: u32,
    pub _pad: [u32; 3],
}

/// ReLU of `len` values of `data`, in place.
pub fn dispatch(
    ctx: &GpuContext,
    kernel: &Kernel,
    len: usize,
    data: &wgpu::Buffer,
) -> Result<Dispatch> {
    let params = ReluParams {
        len: to_u32("relu length", len)?,
        _pad: [0; 3],
    };
    Ok(
        Dispatch::new(ctx, kernel, "relu", &params, &[data], Grid::Items(len))?
            .with_flops(len as f64),
    )
}

/// CPU reference.
pub fn reference(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| v.max(0.0)).collect()
}
