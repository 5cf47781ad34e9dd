//! Convolution (bias, groups, fused ReLU) two ways: `conv2d.wgsl`, an implicit GEMM with
//! workgroup-memory tiles (GPUs), and `im2col.wgsl` + `gemm.wgsl` (CPU adapters); see
//! [`super::MatmulPath`].

use super::{gemm, to_u32, Dispatch, Grid, Kernel, Kernels, Precision};
use crate::error::{Error, Result};
use crate::gpu::GpuContext;

/// The geometry every convolution kernel's params struct starts with: the first 11 fields
/// of `struct Params` in `conv2d.wgsl`, `im2col.wgsl`, `im2col_f16.wgsl`,
/// `im2col_coalesced.wgsl`, `conv_backward.wgsl` and `conv_gemm_backward.wgsl`, in this order
/// ([`ConvGeometry::FIELDS`]; `tests/it/shaders.rs` checks each shader against it). Filled
/// in one place, [`Conv2dShape::geometry`]; `mm.wgsl` reads its geometry from it too.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)] // the fields are the shader's uniform block's, named as there
pub struct ConvGeometry {
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
}

impl ConvGeometry {
    /// The field names, as the shaders' params structs spell them.
    pub const FIELDS: [&'static str; 11] = [
        "batch", "in_c", "in_h", "in_w", "out_c", "out_h", "out_w", "groups", "kernel", "stride",
        "pad",
    ];
}

/// Mirrors `struct Params` in `conv2d.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)] // the fields are the shader's uniform block's, named as there
pub struct Conv2dParams {
    pub geo: ConvGeometry,
    pub co_start: u32,
    pub co_count: u32,
    pub relu: u32,
    pub _pad: u32,
}

/// The geometry of one convolution (square kernel, stride and padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dShape {
    /// Images.
    pub batch: usize,
    /// Input channels.
    pub in_c: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Output channels.
    pub out_c: usize,
    /// Kernel side.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on each side.
    pub pad: usize,
    /// Channel groups.
    pub groups: usize,
}

impl Conv2dShape {
    /// A convolution of square `hw` x `hw` images (what tests and the selftest write most).
    #[allow(clippy::too_many_arguments)]
    pub fn square(
        batch: usize,
        in_c: usize,
        hw: usize,
        out_c: usize,
        kernel: usize,
        stride: usize,
        pad: usize,
        groups: usize,
    ) -> Self {
        Conv2dShape {
            batch,
            in_c,
            in_h: hw,
            in_w: hw,
            out_c,
            kernel,
            stride,
            pad,
            groups,
        }
    }

    /// A dense layer of `in_f` inputs and `out_f` outputs as a 1x1 convolution of 1x1 images
    /// (how dense layers reach the convolution kernels and the f16 packing).
    pub fn dense(batch: usize, in_f: usize, out_f: usize) -> Self {
        Self::square(batch, in_f, 1, out_f, 1, 1, 0, 1)
    }

    /// Output height and width, or an error naming what does not fit.
    pub fn out_hw(&self) -> Result<(usize, usize)> {
        if self.groups == 0
            || !self.in_c.is_multiple_of(self.groups)
            || !self.out_c.is_multiple_of(self.groups)
        {
            return Err(Error::Shape(format!(
                "convolution with {} input and {} output channels cannot use {} groups",
                self.in_c, self.out_c, self.groups
            )));
        }
        if self.stride == 0 || self.kernel == 0 {
            return Err(Error::Shape(
                "convolution kernel and stride must be positive".into(),
            ));
        }
        let (h, w) = (self.in_h + 2 * self.pad, self.in_w + 2 * self.pad);
        if h < self.kernel || w < self.kernel {
            return Err(Error::Shape(format!(
                "a {k}x{k} convolution does not fit a {}x{} input with padding {}",
                self.in_h,
                self.in_w,
                self.pad,
                k = self.kernel
            )));
        }
        Ok((
            (h - self.kernel) / self.stride + 1,
            (w - self.kernel) / self.stride + 1,
        ))
    }

    /// The shaders' [`ConvGeometry`] of this convolution: an error when it is not a valid
    /// convolution or a value does not fit the kernels' `u32`s.
    pub fn geometry(&self) -> Result<ConvGeometry> {
        let (out_h, out_w) = self.out_hw()?;
        let field = |what: &str, value: usize| to_u32(&format!("convolution {what}"), value);
        Ok(ConvGeometry {
            batch: field("batch", self.batch)?,
            in_c: field("input channels", self.in_c)?,
            in_h: field("input height", self.in_h)?,
            in_w: field("input width", self.in_w)?,
            out_c: field("output channels", self.out_c)?,
            out_h: field("output height", out_h)?,
            out_w: field("output width", out_w)?,
            groups: field("groups", self.groups)?,
            kernel: field("kernel", self.kernel)?,
            stride: field("stride", self.stride)?,
            pad: field("padding", self.pad)?,
        })
    }

    /// Floats of the OIHW weights.
    pub fn weight_len(&self) -> usize {
        self.out_c * (self.in_c / self.groups) * self.kernel * self.kernel
    }

    /// Floating-point operations of the batch (a multiply-add counts 2).
    pub fn flops(&self) -> f64 {
        let (oh, ow) = self.out_hw().unwrap_or((0, 0));
        2.0 * (self.batch
            * self.out_c
            * oh
            * ow
            * (self.in_c / self.groups)
            * self.kernel
            * self.kernel) as f64
    }
}

/// Binds one convolution. `weight` holds output channels `co_start..co_start + co_count` (all of
/// them unless the matrix was split; splits require `groups == 1`).
#[allow(clippy::too_many_arguments)]
pub fn dispatch(
    ctx: &GpuContext,
    kernel: &Kernel,
    shape: &Conv2dShape,
    relu: bool,
    weight: &wgpu::Buffer,
    co_start: usize,
    co_count: usize,
    bias: &wgpu::Buffer,
    input: &wgpu::Buffer,
    output: &wgpu::Buffer,
) -> Result<Dispatch> {
    let (out_h, out_w) = shape.out_hw()?;
    assert!(shape.groups == 1 || (co_start == 0 && co_count == shape.out_c / shape.groups));
    let params = Conv2dParams {
        geo: shape.geometry()?,
        co_start: to_u32("first output channel", co_start)?,
        co_count: to_u32("output channels", co_count)?,
        relu: relu as u32,
        _pad: 0,
    };
    let n = shape.batch * out_h * out_w;
    // Workgroup tiles of `BN` pixels by `BM` output channels (the shader's constants).
    let (bm, bn) = (
        kernel.constant("BM") as usize,
        kernel.constant("BN") as usize,
    );
    let grid = Grid::Groups([n.div_ceil(bn), co_count.div_ceil(bm), shape.groups]);
    let part = Conv2dShape {
        out_c: co_count * shape.groups,
        ..*shape
    };
    let bindings = [weight, bias, input, output];
    Ok(Dispatch::new(ctx, kernel, "conv2d", &params, &bindings, grid)?.with_flops(part.flops()))
}

/// Mirrors `struct Params` in `im2col.wgsl` (and `im2col_f16.wgsl`, `im2col_coalesced.wgsl`).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)] // the fields are the shader's uniform block's, named as there
pub struct Im2colParams {
    pub geo: ConvGeometry,
    pub cin_g: u32,
    pub kp: u32,
    pub n_start: u32,
    pub n_count: u32,
    pub _pad: u32,
}

impl Conv2dShape {
    /// GEMM depth per group (`in_c / groups * kernel^2`) and its vec4 padding.
    pub fn k(&self) -> usize {
        self.in_c / self.groups * self.kernel * self.kernel
    }

    /// K (`in_c / groups * kernel²`) padded for f32 storage.
    pub fn kp(&self) -> usize {
        Precision::F32.pad_k(self.k())
    }

    /// 32-bit words of the whole batch's patch matrix in `precision` (`groups * pixels` rows of
    /// `precision.pad_k(K)` values).
    pub fn im2col_words(&self, precision: Precision) -> Result<usize> {
        let (oh, ow) = self.out_hw()?;
        Ok(self.groups * self.batch * oh * ow * precision.words(precision.pad_k(self.k())))
    }
}

/// OIHW weights as `gemm.wgsl` reads them: `[out_c][kp]`, each row zero-padded from K to `kp`
/// (the same data when K is a multiple of 4). Done once, at upload.
pub fn weight_for_gemm(shape: &Conv2dShape, weight: &[f32]) -> Vec<f32> {
    let (k, kp) = (shape.k(), shape.kp());
    assert_eq!(weight.len(), shape.out_c * k, "conv weight length");
    if k == kp {
        return weight.to_vec();
    }
    let mut out = vec![0f32; shape.out_c * kp];
    for (dst, src) in out.chunks_exact_mut(kp).zip(weight.chunks_exact(k)) {
        dst[..k].copy_from_slice(src);
    }
    out
}

/// OIHW weights as `gemm_f16.wgsl` reads them: `[out_c][kp8 / 2]` words of packed halves.
pub fn weight_for_gemm_f16(shape: &Conv2dShape, weight: &[f32]) -> Vec<u32> {
    assert_eq!(weight.len(), shape.out_c * shape.k(), "conv weight length");
    gemm::pack_f16_rows(weight, shape.out_c, shape.k())
}

/// Binds `im2col.wgsl` (or `im2col_f16.wgsl`): pixels `n_start..n_start + n_count` of `shape`'s
/// patch matrix into `scratch`, rows of `precision.pad_k(K)` values per group. Dense layers
/// pack their f16 input through it as a 1x1 convolution of 1x1 images.
#[allow(clippy::too_many_arguments)]
pub fn dispatch_im2col(
    ctx: &GpuContext,
    kernels: &Kernels,
    precision: Precision,
    shape: &Conv2dShape,
    n_start: usize,
    n_count: usize,
    input: &wgpu::Buffer,
    scratch: &wgpu::Buffer,
) -> Result<Dispatch> {
    let cin_g = shape.in_c / shape.groups;
    let kp = precision.pad_k(shape.k());
    let params = Im2colParams {
        geo: shape.geometry()?,
        cin_g: to_u32("input channels per group", cin_g)?,
        kp: to_u32("patch row length", kp)?,
        n_start: to_u32("first pixel", n_start)?,
        n_count: to_u32("pixels", n_count)?,
        _pad: 0,
    };
    // f32: one invocation per (pixel, input channel); f16: per (pixel, run of packed words).
    let (kernel, label) = match precision {
        Precision::F32 => (kernels.im2col(), "im2col"),
        Precision::F16 => (kernels.im2col_f16(), "im2col_f16"),
    };
    let y = match precision {
        Precision::F32 => cin_g,
        // Each invocation packs a run of `WORDS` words of the patch row.
        Precision::F16 => (kp / 2).div_ceil(kernel.constant("WORDS") as usize),
    };
    let wg = kernel.workgroup_size[0] as usize;
    let grid = Grid::Groups([n_count.div_ceil(wg), y, shape.groups]);
    Dispatch::new(ctx, &kernel, label, &params, &[input, scratch], grid)
}

/// Largest im2col scratch buffer a plan allocates; larger convolutions run in pixel chunks
/// ([`dispatch_gemm`] goes in as many chunks as the scratch it is given needs).
pub const IM2COL_MAX_BYTES: u64 = 64 << 20;

/// Words of the im2col scratch to allocate for patch matrices of up to `need` words: capped at
/// [`IM2COL_MAX_BYTES`] and at this device's binding limit.
pub fn scratch_words(ctx: &GpuContext, need: usize) -> usize {
    need.min((ctx.max_binding().min(IM2COL_MAX_BYTES) / 4) as usize)
}

/// Binds one convolution as im2col + GEMM: `weight` from [`weight_for_gemm`] (f32) or
/// [`weight_for_gemm_f16`], `scratch` a storage buffer for the patch matrix. When the whole
/// batch's matrix does not fit `scratch`, pixels go in chunks, two dispatches each. Bias,
/// accumulation and output are f32 in both precisions.
#[allow(clippy::too_many_arguments)]
pub fn dispatch_gemm(
    ctx: &GpuContext,
    kernels: &Kernels,
    precision: Precision,
    shape: &Conv2dShape,
    relu: bool,
    weight: &wgpu::Buffer,
    bias: &wgpu::Buffer,
    input: &wgpu::Buffer,
    output: &wgpu::Buffer,
    scratch: &wgpu::Buffer,
) -> Result<Vec<Dispatch>> {
    let (out_h, out_w) = shape.out_hw()?;
    let (groups, kp, per_vec) = (
        shape.groups,
        precision.pad_k(shape.k()),
        precision.per_vec(),
    );
    let cout_g = shape.out_c / groups;
    let pixels = shape.batch * out_h * out_w;
    let row_words = precision.words(groups * kp);
    let capacity = (scratch.size() as usize / 4) / row_words;
    if capacity == 0 {
        return Err(Error::Shape(format!(
            "im2col scratch of {} bytes cannot hold one row of {row_words} words",
            scratch.size()
        )));
    }
    let label = match precision {
        Precision::F32 => "conv2d(gemm)",
        Precision::F16 => "conv2d(gemm_f16)",
    };
    let hw = out_h * out_w;
    let mut out = Vec::new();
    let mut n_start = 0;
    while n_start < pixels {
        let n_count = capacity.min(pixels - n_start);
        out.push(dispatch_im2col(
            ctx, kernels, precision, shape, n_start, n_count, input, scratch,
        )?);
        let mut d = gemm::dispatch(
            ctx,
            kernels,
            precision,
            label,
            &gemm::GemmDims::grouped(cout_g, n_count, kp, groups, per_vec),
            gemm::GemmOut {
                n_off: n_start,
                hw: to_u32("output pixels", hw)?,
                c_bstride: shape.out_c * hw,
                c_mstride: hw,
                bias_on_n: false,
            },
            relu,
            weight,
            scratch,
            bias,
            output,
        )?;
        d.flops = 2.0 * (shape.out_c * n_count * shape.k()) as f64;
        out.push(d);
        n_start += n_count;
    }
    Ok(out)
}

/// CPU reference (f64 accumulation): `x` is NCHW, `weight` OIHW with I = in_c / groups.
pub fn reference(
    shape: &Conv2dShape,
    weight: &[f32],
    bias: &[f32],
    x: &[f32],
    relu: bool,
) -> Vec<f32> {
    let (oh, ow) = shape.out_hw().expect("valid conv shape");
    let s = shape;
    let cin_g = s.in_c / s.groups;
    let cout_g = s.out_c / s.groups;
    let k = s.kernel;
    let mut y = vec![0f32; s.batch * s.out_c * oh * ow];
    for b in 0..s.batch {
        for co in 0..s.out_c {
            let g = co / cout_g;
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = bias[co] as f64;
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
                                let xv = x[((b * s.in_c + c) * s.in_h + iy as usize) * s.in_w
                                    + ix as usize];
                                let wv = weight[((co * cin_g + ci) * k + ky) * k + kx];
                                acc += xv as f64 * wv as f64;
                            }
                        }
                    }
                    if relu {
                        acc = acc.max(0.0);
                    }
                    y[((b * s.out_c + co) * oh + oy) * ow + ox] = acc as f32;
                }
            }
        }
    }
    y
}
