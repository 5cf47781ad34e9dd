//! `sgd.wgsl`: SGD with momentum and weight decay (PyTorch semantics).

use super::{to_u32, Dispatch, Grid};
use crate::error::Result;
use crate::gpu::GpuContext;

use super::Kernels;

/// Mirrors `struct Params` in `sgd.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)] // the fields are the shader's uniform block's, named as there
pub struct SgdParams {
    pub len: u32,
    pub first: u32,
    pub _pad: [u32; 2],
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub _pad1: f32,
}

/// One SGD step over `len` parameters: updates `param` (and the momentum buffer `buf`) from `grad`.
pub fn dispatch(
    ctx: &GpuContext,
    k: &Kernels,
    len: usize,
    grad: &wgpu::Buffer,
    param: &wgpu::Buffer,
    buf: &wgpu::Buffer,
) -> Result<Dispatch> {
    let (kernel, per) = k.optimizer("sgd.wgsl", len);
    Ok(Dispatch::new(
        ctx,
        &kernel,
        "sgd",
        &SgdParams {
            len: to_u32("SGD length", len)?,
            first: 1,
            _pad: [0; 2],
            lr: 0.0,
            momentum: 0.0,
            weight_decay: 0.0,
            _pad1: 0.0,
        },
        &[grad, param, buf],
        Grid::Items(len.div_ceil(per)),
    )?
    .with_flops(4.0 * len as f64))
}

/// CPU reference of one step, in place.
pub fn reference(
    param: &mut [f64],
    buf: &mut [f64],
    grad: &[f64],
    first: bool,
    lr: f64,
    momentum: f64,
    wd: f64,
) {
    for i in 0..param.len() {
        let g = grad[i] + wd * param[i];
        let v = if momentum == 0.0 || first {
            g
        } else {
            momentum * buf[i] + g
        };
        buf[i] = v;
        param[i] -= lr * v;
    }
}
