//! `max_pool.wgsl`: max pooling per channel plane.

use super::{to_u32, Dispatch, Grid, Kernel};
use crate::error::{Error, Result};
use crate::gpu::GpuContext;

/// Mirrors `struct Params` in `max_pool.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)] // the fields are the shader's uniform block's, named as there
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

/// A max pool's geometry: `planes` (batch x channels) planes of `in_h` x `in_w`, square
/// `window`s every `stride` pixels, no padding; `ceil` rounds the output size up (Caffe's
/// rounding, PyTorch's and ONNX's `ceil_mode`), the last window clipped to the input. The
/// forward kernel, its backward (`kernels::pool_backward::max_pool`) and both CPU
/// references take this one value, so the output size has one formula: [`PoolShape::out_hw`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolShape {
    /// Batch times channels.
    pub planes: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Window side.
    pub window: usize,
    /// Stride.
    pub stride: usize,
    /// Output size rounded up (Caffe's pooling).
    pub ceil: bool,
}

impl PoolShape {
    /// A floor-mode pool (PyTorch's default, Keras' 'valid').
    pub fn floor(planes: usize, in_h: usize, in_w: usize, window: usize, stride: usize) -> Self {
        PoolShape {
            planes,
            in_h,
            in_w,
            window,
            stride,
            ceil: false,
        }
    }

    /// `(out_h, out_w)`, or a shape error when the window does not fit.
    pub fn out_hw(&self) -> Result<(usize, usize)> {
        Ok((
            out_size_rounded(self.in_h, self.window, self.stride, self.ceil)?,
            out_size_rounded(self.in_w, self.window, self.stride, self.ceil)?,
        ))
    }

    /// Floats of the input (and of its gradient).
    pub fn in_len(&self) -> usize {
        self.planes * self.in_h * self.in_w
    }

    /// Floats of the output (and of its gradient).
    pub fn out_len(&self) -> Result<usize> {
        let (oh, ow) = self.out_hw()?;
        Ok(self.planes * oh * ow)
    }

    /// The uniform both `max_pool.wgsl` and `max_pool_backward.wgsl` read.
    pub fn params(&self) -> Result<MaxPoolParams> {
        let (out_h, out_w) = self.out_hw()?;
        Ok(MaxPoolParams {
            planes: to_u32("pool planes", self.planes)?,
            in_h: to_u32("pool input height", self.in_h)?,
            in_w: to_u32("pool input width", self.in_w)?,
            out_h: to_u32("pool output height", out_h)?,
            out_w: to_u32("pool output width", out_w)?,
            kernel: to_u32("pool window", self.window)?,
            stride: to_u32("pool stride", self.stride)?,
            pad: 0,
        })
    }
}

/// Binds `output` = the max pool of `input` over `s`.
pub fn dispatch(
    ctx: &GpuContext,
    kernel: &Kernel,
    s: &PoolShape,
    input: &wgpu::Buffer,
    output: &wgpu::Buffer,
) -> Result<Dispatch> {
    let params = s.params()?;
    let out_len = s.out_len()?;
    Ok(Dispatch::new(
        ctx,
        kernel,
        "max_pool",
        &params,
        &[input, output],
        Grid::Items(out_len),
    )?
    .with_flops((out_len * s.window * s.window) as f64))
}

/// CPU reference of [`dispatch`].
pub fn reference(x: &[f32], s: &PoolShape) -> Vec<f32> {
    let PoolShape {
        planes,
        in_h,
        in_w,
        window,
        stride,
        ..
    } = *s;
    let (oh, ow) = s.out_hw().expect("valid pool");
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
