//! The AlexNet `features` trunk as LPIPS uses it: conv1..conv5 with their ReLUs and the two
//! max-pools between, every ReLU output kept in its own GPU buffer (the LPIPS kernel reads all
//! five). The project's `Network` streams activations through two ping-pong buffers and ends in
//! the classifier, so the trunk is recorded here from the same kernels, with the same route per
//! convolution (`Kernels::conv_route`).

use std::sync::LazyLock;

use crate::error::{Error, Result};
use crate::gpu::{storage_buffer, upload_f32, GpuContext};
use crate::kernels::max_pool::PoolShape;
use crate::kernels::{self, conv2d::Conv2dShape, Dispatch, Kernels, Precision};
use crate::model::{Arch, Layer};

/// The trunk's layers: torchvision's `features` up to conv5's ReLU, read from the preset's own
/// spec (`Arch::Torchvision` at full width), so LPIPS and the classifier share one geometry.
pub fn spec_layers() -> Vec<Layer> {
    let arch = Arch::Torchvision;
    let layers = arch.spec(&arch.default_widths()).layers;
    let conv5 = layers
        .iter()
        .position(|l| matches!(l, Layer::Conv { name: "conv5", .. }))
        .expect("torchvision's spec has conv5");
    layers[..=conv5 + 1].to_vec()
}

/// `(out channels, in channels, kernel, stride, padding)` of one convolution.
pub type ConvDims = (usize, usize, usize, usize, usize);

/// [`ConvDims`] of conv1..conv5, from [`spec_layers`].
pub static CONVS: LazyLock<[ConvDims; 5]> = LazyLock::new(|| {
    let mut out = [(0, 0, 0, 0, 0); 5];
    let mut in_c = 3;
    let convs = spec_layers().into_iter().filter_map(|l| match l {
        Layer::Conv {
            out,
            kernel,
            stride,
            pad,
            ..
        } => Some((out, kernel, stride, pad)),
        _ => None,
    });
    for (slot, (o, k, st, p)) in out.iter_mut().zip(convs) {
        *slot = (o, in_c, k, st, p);
        in_c = o;
    }
    out
});

/// Channels of the five ReLU outputs.
pub static CHANNELS: LazyLock<[usize; 5]> = LazyLock::new(|| CONVS.map(|c| c.0));

/// The smallest side the trunk accepts: at 30 the second max-pool has no window.
pub const MIN_SIDE: usize = 31;

/// `[h, w]` of the five ReLU outputs for an `h` x `w` input (`None` under [`MIN_SIDE`]).
pub fn layer_sizes(h: usize, w: usize) -> Option<[[usize; 2]; 5]> {
    // The trunk's order: conv1, pool, conv2, pool, conv3, conv4, conv5 (a ReLU after each
    // conv), sized by the kernels' own formulas (`Conv2dShape::out_hw`, `PoolShape::out_hw`).
    let mut sizes = [[0; 2]; 5];
    let (mut ih, mut iw) = (h, w);
    for (l, size) in sizes.iter_mut().enumerate() {
        if l == 1 || l == 2 {
            (ih, iw) = PoolShape::floor(1, ih, iw, 3, 2).out_hw().ok()?;
        }
        (ih, iw) = conv_shape(l, 1, ih, iw).out_hw().ok()?;
        *size = [ih, iw];
    }
    Some(sizes)
}

/// Floats of GPU memory the trunk of one `h` x `w` image takes while it runs: its input, the
/// five ReLU outputs, the two pooled maps and the largest im2col patch matrix (an upper bound:
/// the patch matrix is shared by the batch and capped, see `conv2d::scratch_words`).
pub fn working_floats(h: usize, w: usize) -> Option<usize> {
    let sizes = layer_sizes(h, w)?;
    let hw = |k: usize| sizes[k][0] * sizes[k][1];
    let relu: usize = (0..5).map(|k| CHANNELS[k] * hw(k)).sum();
    let pools = 64 * hw(1) + 192 * hw(2);
    // conv l reads an input of CONVS[l].1 channels and writes hw(l) positions.
    let im2col = (0..5)
        .map(|l| CONVS[l].1 * CONVS[l].2 * CONVS[l].2 * hw(l))
        .max()
        .unwrap_or(0);
    Some(3 * h * w + relu + pools + im2col)
}

struct GpuConv {
    weight: wgpu::Buffer,
    bias: wgpu::Buffer,
}

pub(crate) struct Trunk {
    kernels: Kernels,
    convs: Vec<GpuConv>,
}

/// The five ReLU outputs of a batch, on the GPU: `[batch, C_k, h_k, w_k]` each.
pub(crate) struct Activations {
    pub relu: Vec<wgpu::Buffer>,
    pub sizes: [[usize; 2]; 5],
    /// The dispatches that fill them (recorded by the caller with its own work after).
    pub dispatches: Vec<Dispatch>,
    /// Kept alive until the dispatches have run.
    _scratch: Vec<wgpu::Buffer>,
}

fn conv_shape(l: usize, batch: usize, in_h: usize, in_w: usize) -> Conv2dShape {
    let (out_c, in_c, kernel, stride, pad) = CONVS[l];
    Conv2dShape {
        batch,
        in_c,
        in_h,
        in_w,
        out_c,
        kernel,
        stride,
        pad,
        groups: 1,
    }
}

impl Trunk {
    /// Uploads conv1..conv5 (`(weight OIHW, bias)`, shapes already checked), laid out for the
    /// kernels this adapter runs (as `Network` does).
    pub fn new(ctx: &GpuContext, params: &[(Vec<f32>, Vec<f32>)]) -> Result<Trunk> {
        let kernels = Kernels::new(ctx);
        let mut convs = Vec::new();
        for (l, (w, b)) in params.iter().enumerate() {
            let shape = conv_shape(l, 1, 64, 64);
            let weight =
                kernels
                    .conv_layout(Precision::F32)
                    .upload(ctx, "lpips trunk weight", &shape, w)?;
            convs.push(GpuConv {
                weight,
                bias: upload_f32(ctx, "lpips trunk bias", b)?,
            });
        }
        Ok(Trunk { kernels, convs })
    }

    pub fn kernels(&self) -> &Kernels {
        &self.kernels
    }

    /// Records the trunk for `batch` images of `h` x `w` already in `input`.
    pub fn record(
        &self,
        ctx: &GpuContext,
        input: &wgpu::Buffer,
        batch: usize,
        h: usize,
        w: usize,
    ) -> Result<Activations> {
        let sizes = layer_sizes(h, w).ok_or_else(|| {
            Error::Invalid(format!(
                "a {w}x{h} image is too small for the AlexNet trunk (at least {MIN_SIDE} px per side)"
            ))
        })?;
        let hint = "use fewer or smaller images per call";
        let mut relu = Vec::new();
        for (k, [oh, ow]) in sizes.iter().enumerate() {
            relu.push(storage_buffer(
                ctx,
                &format!("lpips relu{}", k + 1),
                batch * CHANNELS[k] * oh * ow,
                hint,
            )?);
        }
        // conv1 output -> pool -> conv2 -> pool -> conv3 -> conv4 -> conv5.
        let p1 = storage_buffer(
            ctx,
            "lpips pool1",
            batch * 64 * sizes[1][0] * sizes[1][1],
            hint,
        )?;
        let p2 = storage_buffer(
            ctx,
            "lpips pool2",
            batch * 192 * sizes[2][0] * sizes[2][1],
            hint,
        )?;
        let inputs = [
            (input, [h, w]),
            (&p1, sizes[1]),
            (&p2, sizes[2]),
            (&relu[2], sizes[2]),
            (&relu[3], sizes[2]),
        ];
        let shapes: Vec<Conv2dShape> = (0..5)
            .map(|l| conv_shape(l, batch, inputs[l].1[0], inputs[l].1[1]))
            .collect();
        let scratch = match self
            .kernels
            .conv_scratch_words(ctx, &shapes, Precision::F32)?
        {
            Some(words) => Some(storage_buffer(ctx, "lpips im2col", words, hint)?),
            None => None,
        };
        let mut dispatches = Vec::new();
        for (l, shape) in shapes.iter().enumerate() {
            let (src, dst) = (inputs[l].0, &relu[l]);
            let GpuConv { weight, bias } = &self.convs[l];
            dispatches.extend(self.kernels.conv_route(shape, Precision::F32)?.dispatch(
                ctx,
                &self.kernels,
                shape,
                true,
                weight,
                bias,
                src,
                dst,
                scratch.as_ref(),
            )?);
            if l < 2 {
                let [ih, iw] = sizes[l];
                let pool = PoolShape::floor(batch * CHANNELS[l], ih, iw, 3, 2);
                dispatches.push(kernels::max_pool::dispatch(
                    ctx,
                    &self.kernels.max_pool(),
                    &pool,
                    &relu[l],
                    if l == 0 { &p1 } else { &p2 },
                )?);
            }
        }
        let mut keep = vec![p1, p2];
        keep.extend(scratch);
        Ok(Activations {
            relu,
            sizes,
            dispatches,
            _scratch: keep,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sizes by hand from torchvision's layer definitions (conv1 11x11/4 pad 2, pools 3/2,
    /// the other convs keep the size), and LPIPS' minimum side: 31 is the smallest input whose
    /// relu3..5 are not empty.
    /// The trunk walks the spec: conv1, pool, conv2, pool, conv3, conv4, conv5 (a ReLU fused
    /// after each conv, pools 3/2), and torchvision's widths and geometry.
    #[test]
    fn the_trunk_is_torchvisions_spec_up_to_conv5() {
        use crate::model::ops::{fuse, Op};
        let layers = spec_layers();
        let kinds: Vec<&str> = fuse(&layers)
            .0
            .iter()
            .map(|op| match (op, &layers[op.layer()]) {
                (Op::Conv { relu: true, .. }, _) => "conv+relu",
                (
                    Op::MaxPool { .. },
                    Layer::MaxPool {
                        kernel: 3,
                        stride: 2,
                        ceil: false,
                    },
                ) => "pool 3/2",
                _ => "other",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "conv+relu",
                "pool 3/2",
                "conv+relu",
                "pool 3/2",
                "conv+relu",
                "conv+relu",
                "conv+relu"
            ]
        );
        assert_eq!(
            *CONVS,
            [
                (64, 3, 11, 4, 2),
                (192, 64, 5, 1, 2),
                (384, 192, 3, 1, 1),
                (256, 384, 3, 1, 1),
                (256, 256, 3, 1, 1),
            ]
        );
        assert_eq!(*CHANNELS, [64, 192, 384, 256, 256]);
    }

    #[test]
    fn layer_sizes_follow_the_trunk_and_vanish_under_31() {
        assert_eq!(
            layer_sizes(64, 100),
            Some([[15, 24], [7, 11], [3, 5], [3, 5], [3, 5]])
        );
        assert_eq!(
            layer_sizes(MIN_SIDE, MIN_SIDE),
            Some([[7, 7], [3, 3], [1, 1], [1, 1], [1, 1]])
        );
        for side in [0, 5, 10, MIN_SIDE - 1] {
            assert_eq!(layer_sizes(side, 64), None, "side {side}");
            assert_eq!(layer_sizes(64, side), None, "side {side}");
        }
    }
}
