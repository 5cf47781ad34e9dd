//! `adam.wgsl`: Adam (PyTorch semantics, L2 weight decay).

use super::{to_u32, Dispatch, Grid};
use crate::error::Result;
use crate::gpu::GpuContext;

use super::Kernels;

/// Mirrors `struct Params` in `adam.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)] // the fields are the shader's uniform block's, named as there
pub struct AdamParams {
    pub len: u32,
    pub _pad: [u32; 3],
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub bias_correction1: f32,
    pub bias_correction2: f32,
    pub _pad1: f32,
}

/// One Adam step over `len` parameters: updates `param` and the moment buffers `m` and `v` from `grad`.
pub fn dispatch(
    ctx: &GpuContext,
    k: &Kernels,
    len: usize,
    grad: &wgpu::Buffer,
    param: &wgpu::Buffer,
    m: &wgpu::Buffer,
    v: &wgpu::Buffer,
) -> Result<Dispatch> {
    let (kernel, per) = k.optimizer("adam.wgsl", len);
    Ok(Dispatch::new(
        ctx,
        &kernel,
        "adam",
        &AdamParams::zeroed_len(len)?,
        &[grad, param, m, v],
        Grid::Items(len.div_ceil(per)),
    )?
    .with_flops(10.0 * len as f64))
}

impl AdamParams {
    fn zeroed_len(len: usize) -> Result<Self> {
        Ok(AdamParams {
            len: to_u32("Adam length", len)?,
            ..bytemuck::Zeroable::zeroed()
        })
    }
}

/// CPU reference of step `t` (1-based), in place.
#[allow(clippy::too_many_arguments)]
pub fn reference(
    param: &mut [f64],
    m: &mut [f64],
    v: &mut [f64],
    grad: &[f64],
    t: u32,
    lr: f64,
    betas: (f64, f64),
    eps: f64,
    wd: f64,
) {
    let (b1, b2) = betas;
    for i in 0..param.len() {
        let g = grad[i] + wd * param[i];
        m[i] = b1 * m[i] + (1.0 - b1) * g;
        v[i] = b2 * v[i] + (1.0 - b2) * g * g;
        let mh = m[i] / (1.0 - b1.powi(t as i32));
        let vh = v[i] / (1.0 - b2.powi(t as i32));
        param[i] -= lr * mh / (vh.sqrt() + eps);
    }
}
