//! `adaptive_avg_pool.wgsl`: PyTorch's AdaptiveAvgPool2d (to 6x6 before torchvision's classifier).

use super::{grid_1d, Dispatch, Kernel};
use crate::error::Result;
use crate::gpu::{uniform_buffer, GpuContext};

/// Mirrors `struct Params` in `adaptive_avg_pool.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AdaptiveAvgPoolParams {
    pub planes: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub _pad: [u32; 3],
}

#[allow(clippy::too_many_arguments)]
pub fn dispatch(
    ctx: &GpuContext,
    kernel: &Kernel,
    planes: usize,
    in_h: usize,
    in_w: usize,
    out_h: usize,
    out_w: usize,
    input: &wgpu::Buffer,
    output: &wgpu::Buffer,
) -> Result<Dispatch> {
    let params = AdaptiveAvgPoolParams {
        planes: planes as u32,
        in_h: in_h as u32,
        in_w: in_w as u32,
        out_h: out_h as u32,
        out_w: out_w as u32,
        _pad: [0; 3],
    };
    let uniform = uniform_buffer(ctx, "adaptive_avg_pool params", &params);
    Ok(Dispatch {
        label: "adaptive_avg_pool".into(),
        pipeline: kernel.pipeline.clone(),
        bind_group: kernel.bind(ctx, &uniform, &[input, output]),
        workgroups: grid_1d(ctx, planes * out_h * out_w, kernel.workgroup_size[0])?,
        flops: (planes * in_h * in_w) as f64,
        _params: uniform,
    })
}

/// CPU reference (f64).
pub fn reference(
    x: &[f32],
    planes: usize,
    in_h: usize,
    in_w: usize,
    out_h: usize,
    out_w: usize,
) -> Vec<f32> {
    let mut y = vec![0f32; planes * out_h * out_w];
    for p in 0..planes {
        for oy in 0..out_h {
            let (y0, y1) = (oy * in_h / out_h, ((oy + 1) * in_h).div_ceil(out_h));
            for ox in 0..out_w {
                let (x0, x1) = (ox * in_w / out_w, ((ox + 1) * in_w).div_ceil(out_w));
                let mut s = 0f64;
                for iy in y0..y1 {
                    for ix in x0..x1 {
                        s += x[(p * in_h + iy) * in_w + ix] as f64;
                    }
                }
                y[(p * out_h + oy) * out_w + ox] = (s / ((y1 - y0) * (x1 - x0)) as f64) as f32;
            }
        }
    }
    y
}
