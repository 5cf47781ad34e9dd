//! `max_pool_backward.wgsl` and `adaptive_avg_pool_backward.wgsl` (the forward kernels' params
//! structs), with their CPU references. Flatten has no backward kernel: NCHW activations are
//! already the row-major `[batch, C*H*W]` rows fc6 reads (Keras fc6 weights are converted to
//! NCHW order at load), so the gradient of fc6's input is the gradient of pool5, as is.

use crate::error::Result;
use crate::gpu::{uniform_buffer, GpuContext};
use crate::kernels::adaptive_avg_pool::AdaptiveAvgPoolParams;
use crate::kernels::max_pool::{out_size_rounded, MaxPoolParams};
use crate::kernels::{grid_1d, Dispatch};

use super::TrainKernels;

/// `dx` (the pool's input shape) from its input `x` and `dy`; windows without padding as in
/// the forward kernel, `ceil`: the output size rounded up, the last window clipped to the
/// image (`max_pool::dispatch_rounded`, ONNX's `ceil_mode`).
#[allow(clippy::too_many_arguments)]
pub fn max_pool(
    ctx: &GpuContext,
    k: &TrainKernels,
    planes: usize,
    in_h: usize,
    in_w: usize,
    window: usize,
    stride: usize,
    ceil: bool,
    x: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    dx: &wgpu::Buffer,
) -> Result<Dispatch> {
    let (out_h, out_w) = (
        out_size_rounded(in_h, window, stride, ceil)?,
        out_size_rounded(in_w, window, stride, ceil)?,
    );
    let params = MaxPoolParams {
        planes: planes as u32,
        in_h: in_h as u32,
        in_w: in_w as u32,
        out_h: out_h as u32,
        out_w: out_w as u32,
        kernel: window as u32,
        stride: stride as u32,
        pad: 0,
    };
    let kernel = k.max_pool_backward();
    let uniform = uniform_buffer(ctx, "max_pool_backward params", &params);
    Ok(Dispatch {
        label: "max_pool backward".into(),
        pipeline: kernel.pipeline.clone(),
        bind_group: kernel.bind(ctx, &uniform, &[x, dy, dx]),
        workgroups: grid_1d(ctx, planes * in_h * in_w, kernel.workgroup_size[0])?,
        flops: (planes * in_h * in_w * window * window) as f64,
        _params: uniform,
    })
}

/// CPU reference: each window's gradient goes to its first largest value (row-major), as
/// PyTorch's `max_pool2d` backward.
#[allow(clippy::too_many_arguments)]
pub fn max_pool_reference(
    x: &[f32],
    dy: &[f32],
    planes: usize,
    in_h: usize,
    in_w: usize,
    window: usize,
    stride: usize,
    ceil: bool,
) -> Vec<f32> {
    let oh = out_size_rounded(in_h, window, stride, ceil).expect("valid pool");
    let ow = out_size_rounded(in_w, window, stride, ceil).expect("valid pool");
    let mut dx = vec![0f64; x.len()];
    for p in 0..planes {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut best = (f32::NEG_INFINITY, usize::MAX);
                for ky in 0..window {
                    for kx in 0..window {
                        let (iy, ix) = (oy * stride + ky, ox * stride + kx);
                        if iy < in_h && ix < in_w {
                            let i = (p * in_h + iy) * in_w + ix;
                            if x[i] > best.0 || best.1 == usize::MAX {
                                best = (x[i], i);
                            }
                        }
                    }
                }
                dx[best.1] += dy[(p * oh + oy) * ow + ox] as f64;
            }
        }
    }
    dx.into_iter().map(|v| v as f32).collect()
}

/// `dx` `[planes, in_h, in_w]` from `dy` `[planes, out_h, out_w]`.
#[allow(clippy::too_many_arguments)]
pub fn adaptive_avg_pool(
    ctx: &GpuContext,
    k: &TrainKernels,
    planes: usize,
    in_h: usize,
    in_w: usize,
    out_h: usize,
    out_w: usize,
    dy: &wgpu::Buffer,
    dx: &wgpu::Buffer,
) -> Result<Dispatch> {
    let params = AdaptiveAvgPoolParams {
        planes: planes as u32,
        in_h: in_h as u32,
        in_w: in_w as u32,
        out_h: out_h as u32,
        out_w: out_w as u32,
        _pad: [0; 3],
    };
    let kernel = k.adaptive_avg_pool_backward();
    let uniform = uniform_buffer(ctx, "adaptive_avg_pool_backward params", &params);
    Ok(Dispatch {
        label: "adaptive_avg_pool backward".into(),
        pipeline: kernel.pipeline.clone(),
        bind_group: kernel.bind(ctx, &uniform, &[dy, dx]),
        workgroups: grid_1d(ctx, planes * in_h * in_w, kernel.workgroup_size[0])?,
        flops: (planes * in_h * in_w * out_h * out_w) as f64,
        _params: uniform,
    })
}

/// CPU reference (f64): each cell's gradient spread evenly over the input values it averages.
pub fn adaptive_avg_pool_reference(
    dy: &[f32],
    planes: usize,
    in_h: usize,
    in_w: usize,
    out_h: usize,
    out_w: usize,
) -> Vec<f32> {
    let mut dx = vec![0f64; planes * in_h * in_w];
    for p in 0..planes {
        for oy in 0..out_h {
            let (y0, y1) = (oy * in_h / out_h, ((oy + 1) * in_h).div_ceil(out_h));
            for ox in 0..out_w {
                let (x0, x1) = (ox * in_w / out_w, ((ox + 1) * in_w).div_ceil(out_w));
                let d = dy[(p * out_h + oy) * out_w + ox] as f64 / ((y1 - y0) * (x1 - x0)) as f64;
                for iy in y0..y1 {
                    for ix in x0..x1 {
                        dx[(p * in_h + iy) * in_w + ix] += d;
                    }
                }
            }
        }
    }
    dx.into_iter().map(|v| v as f32).collect()
}
