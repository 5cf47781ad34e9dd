//! `dropout.wgsl`: inverted dropout with a hashed, recomputable mask.

use super::{Dispatch, Grid};
use crate::error::Result;
use crate::gpu::GpuContext;

use super::Kernels;

/// Mirrors `struct Params` in `dropout.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)] // the fields are the shader's uniform block's, named as there
pub struct DropoutParams {
    pub len: u32,
    pub seed: u32,
    pub step: u32,
    pub _pad: u32,
    pub rate: f32,
    pub _pad1: [f32; 3],
}

impl DropoutParams {
    /// The params of a dropout mask over `len` values at `rate`, drawn from `seed` and `step`.
    pub fn new(len: usize, seed: u32, step: u32, rate: f32) -> Self {
        DropoutParams {
            len: len as u32,
            seed,
            step,
            _pad: 0,
            rate,
            _pad1: [0.0; 3],
        }
    }
}

/// Binds dropout over `x` in place; the step is updated per batch with `queue.write_buffer`.
pub fn dispatch(
    ctx: &GpuContext,
    k: &Kernels,
    params: DropoutParams,
    x: &wgpu::Buffer,
) -> Result<Dispatch> {
    Ok(Dispatch::new(
        ctx,
        &k.dropout(),
        "dropout",
        &params,
        &[x],
        Grid::Items(params.len as usize),
    )?
    .with_flops(params.len as f64))
}

fn pcg(v: u32) -> u32 {
    let state = v.wrapping_mul(747796405).wrapping_add(2891336453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277803737);
    (word >> 22) ^ word
}

/// Whether element `i` is kept: the same hash as the shader.
pub fn keep(seed: u32, step: u32, i: u32, rate: f32) -> bool {
    let h = pcg(i ^ pcg(seed ^ pcg(step)));
    ((h >> 8) as f32 / 16777216.0) >= rate
}

/// CPU reference.
pub fn reference(x: &[f32], seed: u32, step: u32, rate: f32) -> Vec<f32> {
    x.iter()
        .enumerate()
        .map(|(i, v)| {
            if keep(seed, step, i as u32, rate) {
                v / (1.0 - rate)
            } else {
                0.0
            }
        })
        .collect()
}
