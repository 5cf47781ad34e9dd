//! `max_pool.wgsl`: max pooling per channel plane.

use super::{grid_1d, Dispatch, Kernel};
use crate::error::{Error, Result};
use crate::gpu::{uniform_buffer, GpuContext};

/// Mirrors `struct Params` in `max_pool.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MaxPoolParams {
    pub planes: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub kernel: u32,
    pub stride: u32,
    pub pad: u32,
}

/// Output size of a pooling window (floor mode, as PyTorch and Keras 'valid').
pub fn out_size(input: usize, kernel: usize, stride: usize, pad: usize) -> Result<usize> {
    if kernel == 0 || stride == 0 || input + 2 * pad < kernel {
        return Err(Error::Shape(format!(
            "a {kernel}-wide pooling window with stride {stride} does not fit an input of {input} (padding {pad})"
        )));
    }
    Ok((input + 2 * pad - kernel) / stride + 1)
}

/// Output size without padding, rounded down (`ceil: false`, PyTorch's default) or up (Caffe's
/// rounding, PyTorch's `ceil_mode=True`: a last, partial window is kept when it starts inside the
/// input; the shader clips windows to the input).
pub fn out_size_rounded(input: usize, kernel: usize, stride: usize, ceil: bool) -> Result<usize> {
    let floor = out_size(input, kernel, stride, 0)?;
    Ok(if ceil && (floor - 1) * stride + kernel < input {
        floor + 1
    } else {
        floor
    })
}

#[allow(clippy::too_many_arguments)]
pub fn dispatch(
    ctx: &GpuContext,
    kernel: &Kernel,
    planes: usize,
    in_h: usize,
    in_w: usize,
    window: usize,
    stride: usize,
    input: &wgpu::Buffer,
    output: &wgpu::Buffer,
) -> Result<Dispatch> {
    dispatch_rounded(
        ctx, kernel, planes, in_h, in_w, window, stride, false, input, output,
    )
}

/// As [`dispatch`], with the output size rounded up when `ceil` (see [`out_size_rounded`]).
#[allow(clippy::too_many_arguments)]
pub fn dispatch_rounded(
    ctx: &GpuContext,
    kernel: &Kernel,
    planes: usize,
    in_h: usize,
    in_w: usize,
    window: usize,
    stride: usize,
    ceil: bool,
    input: &wgpu::Buffer,
    output: &wgpu::Buffer,
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
    let uniform = uniform_buffer(ctx, "max_pool params", &params);
    Ok(Dispatch {
        label: "max_pool".into(),
        pipeline: kernel.pipeline.clone(),
        bind_group: kernel.bind(ctx, &uniform, &[input, output]),
        workgroups: grid_1d(ctx, planes * out_h * out_w, kernel.workgroup_size[0])?,
        flops: (planes * out_h * out_w * window * window) as f64,
        _params: uniform,
    })
}

/// CPU reference.
pub fn reference(
    x: &[f32],
    planes: usize,
    in_h: usize,
    in_w: usize,
    window: usize,
    stride: usize,
) -> Vec<f32> {
    reference_rounded(x, planes, in_h, in_w, window, stride, false)
}

/// CPU reference of [`dispatch_rounded`].
pub fn reference_rounded(
    x: &[f32],
    planes: usize,
    in_h: usize,
    in_w: usize,
    window: usize,
    stride: usize,
    ceil: bool,
) -> Vec<f32> {
    let oh = out_size_rounded(in_h, window, stride, ceil).expect("valid pool");
    let ow = out_size_rounded(in_w, window, stride, ceil).expect("valid pool");
    let mut y = vec![0f32; planes * oh * ow];
    for p in 0..planes {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut m = f32::NEG_INFINITY;
                for ky in 0..window {
                    for kx in 0..window {
                        let (iy, ix) = (oy * stride + ky, ox * stride + kx);
                        if iy < in_h && ix < in_w {
                            m = m.max(x[(p * in_h + iy) * in_w + ix]);
                        }
                    }
                }
                y[(p * oh + oy) * ow + ox] = m;
            }
        }
    }
    y
}
