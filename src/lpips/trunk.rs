//! The AlexNet `features` trunk as LPIPS uses it: conv1..conv5 with their ReLUs and the two
//! max-pools between, every ReLU output kept in its own GPU buffer (the LPIPS kernel reads all
//! five). The project's `Network` streams activations through two ping-pong buffers and ends in
//! the classifier, so the trunk is recorded here from the same kernels, with the same route per
//! convolution (`Kernels::conv_route`), walking the same fused layer list (`model::ops::fuse`
//! over torchvision's spec up to conv5), with every geometry from the spec's own inference.

use std::sync::LazyLock;

use crate::error::{Error, Result};
use crate::gpu::{storage_buffer, upload_f32, GpuContext};
use crate::kernels::{self, conv2d::Conv2dShape, Dispatch, Kernels, Precision};
use crate::model::ops::{fuse, Op};
use crate::model::{Arch, Layer, LayerInfo, NetSpec};

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

/// The trunk's spec for an `h` x `w` input, and each layer's shapes (`None` where a layer has
/// no output: under [`MIN_SIDE`]).
fn trunk_at(h: usize, w: usize) -> Option<(NetSpec, Vec<LayerInfo>)> {
    let spec = NetSpec {
        arch: Arch::Torchvision,
        input: [3, h, w],
        layers: spec_layers(),
    };
    let infos = spec.infer().ok()?;
    let empty = infos.iter().any(|i| i.output.is_empty());
    (!empty).then_some((spec, infos))
}

/// `[h, w]` of the five ReLU outputs for an `h` x `w` input (`None` under [`MIN_SIDE`]): the
/// outputs of the fused list's convolutions (each with its ReLU), sized by the spec.
pub fn layer_sizes(h: usize, w: usize) -> Option<[[usize; 2]; 5]> {
    let (spec, infos) = trunk_at(h, w)?;
    let mut sizes = [[0; 2]; 5];
    let convs = fuse(&spec.layers).0.into_iter().filter_map(|op| match op {
        Op::Conv { layer, .. } => Some(infos[layer].output.as_map()),
        _ => None,
    });
    for (size, [_, oh, ow]) in sizes.iter_mut().zip(convs) {
        *size = [oh, ow];
    }
    Some(sizes)
}

/// Floats of GPU memory the trunk of one `h` x `w` image takes while it runs: its input, the
/// five ReLU outputs, the two pooled maps and the largest im2col patch matrix (an upper bound:
/// the patch matrix is shared by the batch and capped, see `conv2d::scratch_words`).
pub fn working_floats(h: usize, w: usize) -> Option<usize> {
    let (spec, infos) = trunk_at(h, w)?;
    let (ops, _) = fuse(&spec.layers);
    // Every op's output (the five ReLU outputs and the pooled maps) is kept while it runs.
    let outputs: usize = ops.iter().map(|op| infos[op.layer()].output.len()).sum();
    let im2col = ops
        .iter()
        .filter_map(|op| spec.layers[op.layer()].conv_shape(1, infos[op.layer()].input.as_map()))
        .filter_map(|s| s.out_hw().ok().map(|(oh, ow)| s.k() * oh * ow))
        .max()
        .unwrap_or(0);
    Some(3 * h * w + outputs + im2col)
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

impl Trunk {
    /// Uploads conv1..conv5 (`(weight OIHW, bias)`, shapes already checked), laid out for the
    /// kernels this adapter runs (as `Network` does).
    pub fn new(ctx: &GpuContext, params: &[(Vec<f32>, Vec<f32>)]) -> Result<Trunk> {
        let kernels = Kernels::new(ctx);
        let (spec, infos) = trunk_at(64, 64).expect("64 x 64 passes the trunk");
        let shapes = spec
            .layers
            .iter()
            .zip(&infos)
            .filter_map(|(layer, info)| layer.conv_shape(1, info.input.as_map()));
        let mut convs = Vec::new();
        for ((w, b), shape) in params.iter().zip(shapes) {
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
        let (spec, infos) = trunk_at(h, w).expect("layer_sizes checked the size");
        let (ops, _) = fuse(&spec.layers);
        let hint = "use fewer or smaller images per call";
        // Every op's output in its own buffer: a convolution's (with its ReLU) is one of the
        // five the LPIPS kernel reads, a pool's feeds the next convolution.
        let mut outs = Vec::with_capacity(ops.len());
        for op in &ops {
            let label = match op {
                Op::Conv { .. } => format!("lpips relu{}", outs.len() + 1),
                _ => "lpips pool".to_string(),
            };
            outs.push(storage_buffer(
                ctx,
                &label,
                batch * infos[op.layer()].output.len(),
                hint,
            )?);
        }
        let shapes: Vec<Conv2dShape> = ops
            .iter()
            .filter_map(|op| {
                spec.layers[op.layer()].conv_shape(batch, infos[op.layer()].input.as_map())
            })
            .collect();
        let scratch = match self
            .kernels
            .conv_scratch_words(ctx, &shapes, Precision::F32)?
        {
            Some(words) => Some(storage_buffer(ctx, "lpips im2col", words, hint)?),
            None => None,
        };
        let (mut dispatches, mut relu, mut keep) = (Vec::new(), Vec::new(), Vec::new());
        let mut convs = self.convs.iter().zip(&shapes);
        for (k, op) in ops.iter().enumerate() {
            let (src, dst) = (if k == 0 { input } else { &outs[k - 1] }, &outs[k]);
            let (layer, info) = (&spec.layers[op.layer()], &infos[op.layer()]);
            match op {
                Op::Conv { relu: fused, .. } => {
                    let (GpuConv { weight, bias }, shape) = convs.next().ok_or_else(|| {
                        Error::Invalid("the trunk has more convolutions than weights".into())
                    })?;
                    dispatches.extend(self.kernels.conv_route(shape, Precision::F32)?.dispatch(
                        ctx,
                        &self.kernels,
                        shape,
                        *fused,
                        weight,
                        bias,
                        src,
                        dst,
                        scratch.as_ref(),
                    )?);
                    relu.push(dst.clone());
                }
                Op::MaxPool { .. } => {
                    let pool = layer
                        .pool_shape(batch, info.input.as_map())
                        .expect("a max pool");
                    dispatches.push(kernels::max_pool::dispatch(
                        ctx,
                        &self.kernels.max_pool(),
                        &pool,
                        src,
                        dst,
                    )?);
                    keep.push(dst.clone());
                }
                other => {
                    return Err(Error::Invalid(format!(
                        "the LPIPS trunk has no kernel for {other:?}"
                    )))
                }
            }
        }
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
