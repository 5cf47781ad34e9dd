//! `conv_backward.wgsl`: input, weight and bias gradients of a convolution (stride, padding,
//! groups), with their CPU references (f64 accumulation).

use super::conv2d::Conv2dShape;
use super::{grid_1d, Dispatch};
use crate::error::Result;
use crate::gpu::{uniform_buffer, GpuContext};

use super::Kernels;

/// Mirrors `struct Params` in `conv_backward.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ConvBackwardParams {
    pub batch: u32,
    pub in_c: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub out_c: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub groups: u32,
    pub kernel: u32,
    pub stride: u32,
    pub pad: u32,
    pub accumulate: u32,
}

impl ConvBackwardParams {
    pub fn new(s: &Conv2dShape, accumulate: bool) -> Result<Self> {
        let (oh, ow) = s.out_hw()?;
        Ok(ConvBackwardParams {
            batch: s.batch as u32,
            in_c: s.in_c as u32,
            in_h: s.in_h as u32,
            in_w: s.in_w as u32,
            out_c: s.out_c as u32,
            out_h: oh as u32,
            out_w: ow as u32,
            groups: s.groups as u32,
            kernel: s.kernel as u32,
            stride: s.stride as u32,
            pad: s.pad as u32,
            accumulate: accumulate as u32,
        })
    }
}

/// `dx` `[batch, in_c, in_h, in_w]` from `dy` and the OIHW weights `w`.
pub fn grad_input(
    ctx: &GpuContext,
    k: &Kernels,
    shape: &Conv2dShape,
    w: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    dx: &wgpu::Buffer,
) -> Result<Dispatch> {
    let kernel = k.conv_grad_input();
    let uniform = uniform_buffer(
        ctx,
        "conv grad_input params",
        &ConvBackwardParams::new(shape, false)?,
    );
    let total = shape.batch * shape.in_c * shape.in_h * shape.in_w;
    Ok(Dispatch {
        label: "conv grad input".into(),
        pipeline: kernel.pipeline.clone(),
        bind_group: kernel.bind_at(ctx, &[(0, &uniform), (1, w), (2, dy), (3, dx)]),
        workgroups: grid_1d(ctx, total, kernel.workgroup_size[0])?,
        flops: shape.flops(),
        _params: uniform,
    })
}

/// `dw` (OIHW, written, or added to when `accumulate`) and `db` `[out_c]` from the layer's
/// input `x` and `dy`.
#[allow(clippy::too_many_arguments)]
pub fn grad_weight_bias(
    ctx: &GpuContext,
    k: &Kernels,
    shape: &Conv2dShape,
    accumulate: bool,
    x: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    dw: &wgpu::Buffer,
    db: &wgpu::Buffer,
) -> Result<Vec<Dispatch>> {
    let params = ConvBackwardParams::new(shape, accumulate)?;
    let (kw, kb) = (k.conv_grad_weight(), k.conv_grad_bias());
    let uw = uniform_buffer(ctx, "conv grad_weight params", &params);
    let ub = uniform_buffer(ctx, "conv grad_bias params", &params);
    let (oh, ow) = shape.out_hw()?;
    Ok(vec![
        Dispatch {
            label: "conv grad weight".into(),
            pipeline: kw.pipeline.clone(),
            bind_group: kw.bind_at(ctx, &[(0, &uw), (1, x), (2, dy), (3, dw)]),
            workgroups: grid_1d(ctx, shape.weight_len(), kw.workgroup_size[0])?,
            flops: shape.flops(),
            _params: uw,
        },
        Dispatch {
            label: "conv grad bias".into(),
            pipeline: kb.pipeline.clone(),
            bind_group: kb.bind_at(ctx, &[(0, &ub), (2, dy), (3, db)]),
            workgroups: grid_1d(ctx, shape.out_c, kb.workgroup_size[0])?,
            flops: (shape.batch * shape.out_c * oh * ow) as f64,
            _params: ub,
        },
    ])
}

/// `db` `[out_c]` (written) from `dy`.
pub fn grad_bias(
    ctx: &GpuContext,
    k: &Kernels,
    shape: &Conv2dShape,
    dy: &wgpu::Buffer,
    db: &wgpu::Buffer,
) -> Result<Dispatch> {
    let params = ConvBackwardParams::new(shape, false)?;
    let kb = k.conv_grad_bias();
    let ub = uniform_buffer(ctx, "conv grad_bias params", &params);
    let (oh, ow) = shape.out_hw()?;
    Ok(Dispatch {
        label: "conv grad bias".into(),
        pipeline: kb.pipeline.clone(),
        bind_group: kb.bind_at(ctx, &[(0, &ub), (2, dy), (3, db)]),
        workgroups: grid_1d(ctx, shape.out_c, kb.workgroup_size[0])?,
        flops: (shape.batch * shape.out_c * oh * ow) as f64,
        _params: ub,
    })
}

/// CPU reference (f64): (dx NCHW, dw OIHW, db) of `shape` for input `x`, weights `w` and `dy`.
pub fn reference(
    s: &Conv2dShape,
    w: &[f32],
    x: &[f32],
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (oh, ow) = s.out_hw().expect("valid conv shape");
    let cin_g = s.in_c / s.groups;
    let cout_g = s.out_c / s.groups;
    let k = s.kernel;
    let mut dx = vec![0f64; x.len()];
    let mut dw = vec![0f64; w.len()];
    let mut db = vec![0f64; s.out_c];
    for b in 0..s.batch {
        for co in 0..s.out_c {
            let g = co / cout_g;
            for oy in 0..oh {
                for ox in 0..ow {
                    let d = dy[((b * s.out_c + co) * oh + oy) * ow + ox] as f64;
                    db[co] += d;
                    for ci in 0..cin_g {
                        let c = g * cin_g + ci;
                        for ky in 0..k {
                            let iy = (oy * s.stride + ky) as isize - s.pad as isize;
                            if iy < 0 || iy >= s.in_h as isize {
                                continue;
                            }
                            for kx in 0..k {
                                let ix = (ox * s.stride + kx) as isize - s.pad as isize;
                                if ix < 0 || ix >= s.in_w as isize {
                                    continue;
                                }
                                let xi = ((b * s.in_c + c) * s.in_h + iy as usize) * s.in_w
                                    + ix as usize;
                                let wi = ((co * cin_g + ci) * k + ky) * k + kx;
                                dx[xi] += d * w[wi] as f64;
                                dw[wi] += d * x[xi] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    let f = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect();
    (f(dx), f(dw), f(db))
}
