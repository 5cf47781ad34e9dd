//! The one place that decides how each convolution runs: which kernel (from the matmul path,
//! the precision, the tuner's entry for the shape and the device's limits), how its weights are
//! laid out, how much scratch it needs, and its dispatches. Inference (`model::Network`),
//! training (`train::ConvStack`), LPIPS' trunk, `bench`, the tuner and the selftest all ask a
//! [`ConvRoute`]; none of them decides by itself, so a new convolution kernel lands here (plus
//! its own module and shader) and every caller runs it.
//!
//! Dense layers route per weight part in [`super::dense`] ([`Kernels::dense_route`]), the same
//! way.

use super::conv2d::{self, Conv2dShape};
use super::coop::{self, Coop, CoopTile};
use super::mm::{self, ConvKind, Tile};
use super::mm_im2col;
use super::mm_strided::{self, StridedKind};
use super::{tuned, Dispatch, Kernels, MatmulPath, Precision};
use crate::error::Result;
use crate::gpu::{upload, upload_f32, GpuContext};

/// How a convolution's weights are stored on the GPU. One layout per network (it is uploaded
/// once), shared by every route the network's convolutions can take at any batch size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvLayout {
    /// OIHW rows zero-padded from K to a multiple of 4 ([`conv2d::weight_for_gemm`]): what
    /// `gemm.wgsl` and `mm.wgsl` read (the same data as OIHW when K is a multiple of 4).
    PaddedRows,
    /// Rows of packed halves ([`conv2d::weight_for_gemm_f16`]): `gemm_f16.wgsl`.
    PackedF16,
    /// OIHW as stored: `conv2d.wgsl`.
    Oihw,
    /// `[groups][m_pad][kp]` halves ([`coop::weight_for_coop`]): `coop.wgsl`.
    CoopF16,
}

impl ConvLayout {
    /// Uploads OIHW `weight` of `shape` in this layout.
    pub fn upload(
        self,
        ctx: &GpuContext,
        label: &str,
        shape: &Conv2dShape,
        weight: &[f32],
    ) -> Result<wgpu::Buffer> {
        match self {
            ConvLayout::PaddedRows => {
                upload_f32(ctx, label, &conv2d::weight_for_gemm(shape, weight))
            }
            ConvLayout::PackedF16 => upload(
                ctx,
                &format!("{label} (f16)"),
                &conv2d::weight_for_gemm_f16(shape, weight),
            ),
            ConvLayout::Oihw => upload_f32(ctx, label, weight),
            ConvLayout::CoopF16 => upload(
                ctx,
                &format!("{label} (coop f16)"),
                &coop::weight_for_coop(shape, weight),
            ),
        }
    }

    /// 32-bit words a stored weight of `shape` takes.
    pub fn words(self, shape: &Conv2dShape) -> usize {
        match self {
            ConvLayout::PaddedRows => shape.out_c * shape.kp(),
            ConvLayout::PackedF16 => {
                shape.out_c * Precision::F16.words(Precision::F16.pad_k(shape.k()))
            }
            ConvLayout::Oihw => shape.weight_len(),
            ConvLayout::CoopF16 => coop::weight_words(shape),
        }
    }
}

/// Which kernel one convolution runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvRoute {
    /// `im2col.wgsl` + `gemm.wgsl` (f32) or `im2col_f16.wgsl` + `gemm_f16.wgsl` (f16): the
    /// CPU-shaped kernels, through a scratch patch matrix (in pixel chunks when it is capped).
    Im2col(Precision),
    /// An `mm.wgsl` tile as an implicit GEMM.
    Mm(Tile),
    /// An `mm.wgsl` tile as an implicit GEMM split over `split` K slices (`conv_split`, f32
    /// partial sums in the scratch), then one `reduce_conv` (bias, ReLU, NCHW store): for
    /// convolutions whose output tiles alone would leave the GPU idle (batch 1 conv3-5).
    MmSplit {
        /// The output tile.
        tile: Tile,
        /// K slices.
        split: u32,
    },
    /// `im2col_coalesced.wgsl` (the patch matrix, lanes along K) + an `mm.wgsl` tile in the
    /// dense entry's loop with an NCHW epilogue (`conv_im2col`), in pixel chunks when the
    /// scratch is capped ([`super::mm_im2col`]).
    MmIm2col(Tile),
    /// `conv2d.wgsl`, the first tiled kernel (`ALEXNET_MATMUL=tiled`).
    Direct,
    /// `coop.wgsl`: f16 im2col + a GEMM on cooperative matrices (tensor cores), or the same
    /// kernel with the tile product emulated.
    Coop(Coop, CoopTile),
}

impl ConvRoute {
    /// The weight layout this route reads.
    pub fn layout(self) -> ConvLayout {
        match self {
            ConvRoute::Im2col(Precision::F16) => ConvLayout::PackedF16,
            ConvRoute::Im2col(Precision::F32)
            | ConvRoute::Mm(_)
            | ConvRoute::MmSplit { .. }
            | ConvRoute::MmIm2col(_) => ConvLayout::PaddedRows,
            ConvRoute::Direct => ConvLayout::Oihw,
            ConvRoute::Coop(..) => ConvLayout::CoopF16,
        }
    }

    /// 32-bit words of scratch this route wants for `shape` (the whole batch's patch matrix,
    /// or a split's partial sums; 0 when it needs none). Plans cap it with
    /// [`conv2d::scratch_words`]; the GEMM then runs in pixel chunks, a split with the slices
    /// the scratch holds (unsplit when it holds fewer than two).
    pub fn scratch_words(self, shape: &Conv2dShape) -> Result<usize> {
        match self {
            ConvRoute::Im2col(precision) => shape.im2col_words(precision),
            ConvRoute::MmSplit { tile, split } => {
                mm::conv_split_words(ConvKind::implicit(tile, split), shape)
            }
            ConvRoute::MmIm2col(_) => mm_im2col::scratch_words(shape),
            ConvRoute::Coop(..) => coop::scratch_words(shape),
            ConvRoute::Mm(_) | ConvRoute::Direct => Ok(0),
        }
    }

    /// The name benchmarks and the tuner print: `gemm`, `gemm_f16`, the tile's name (with
    /// `-splitN` when split, `-im2col` through the coalesced im2col), `direct`.
    pub fn name(self) -> String {
        match self {
            ConvRoute::Im2col(Precision::F32) => tuned::GEMM.into(),
            ConvRoute::Im2col(Precision::F16) => "gemm_f16".into(),
            ConvRoute::Mm(tile) => tile.name(),
            ConvRoute::MmSplit { tile, split } => ConvKind::implicit(tile, split).name(),
            ConvRoute::MmIm2col(tile) => ConvKind::im2col(tile).name(),
            ConvRoute::Direct => "direct".into(),
            ConvRoute::Coop(c, tile) => format!("{}{}", c.name(), tile.suffix().replace(' ', "-")),
        }
    }

    /// The dispatches of one convolution: `weight` in [`ConvRoute::layout`], NCHW `input` and
    /// `output`, bias and ReLU fused. `scratch` is needed when [`ConvRoute::scratch_words`] is
    /// not 0 (any size from one patch row up).
    #[allow(clippy::too_many_arguments)]
    pub fn dispatch(
        self,
        ctx: &GpuContext,
        kernels: &Kernels,
        shape: &Conv2dShape,
        relu: bool,
        weight: &wgpu::Buffer,
        bias: &wgpu::Buffer,
        input: &wgpu::Buffer,
        output: &wgpu::Buffer,
        scratch: Option<&wgpu::Buffer>,
    ) -> Result<Vec<Dispatch>> {
        let need_scratch = || {
            scratch.ok_or_else(|| {
                crate::error::Error::Invalid(format!(
                    "a {} convolution needs a scratch buffer",
                    self.name()
                ))
            })
        };
        Ok(match self {
            ConvRoute::Coop(c, tile) => coop::dispatch(
                ctx,
                kernels,
                c,
                tile,
                "conv2d",
                shape,
                relu,
                weight,
                bias,
                input,
                output,
                need_scratch()?,
            )?,
            ConvRoute::Im2col(precision) => {
                let scratch = scratch.ok_or_else(|| {
                    crate::error::Error::Invalid(format!(
                        "a {} convolution needs an im2col scratch buffer",
                        self.name()
                    ))
                })?;
                conv2d::dispatch_gemm(
                    ctx, kernels, precision, shape, relu, weight, bias, input, output, scratch,
                )?
            }
            ConvRoute::Mm(tile) => mm::dispatch_conv(
                ctx,
                kernels,
                ConvKind::implicit(tile, 1),
                shape,
                relu,
                weight,
                bias,
                input,
                output,
                None,
            )?,
            ConvRoute::MmSplit { tile, split } => mm::dispatch_conv(
                ctx,
                kernels,
                ConvKind::implicit(tile, split),
                shape,
                relu,
                weight,
                bias,
                input,
                output,
                scratch,
            )?,
            ConvRoute::MmIm2col(tile) => mm_im2col::dispatch(
                ctx,
                kernels,
                tile,
                shape,
                relu,
                weight,
                bias,
                input,
                output,
                need_scratch()?,
            )?,
            ConvRoute::Direct => vec![conv2d::dispatch(
                ctx,
                &kernels.conv2d(),
                shape,
                relu,
                weight,
                0,
                shape.out_c / shape.groups,
                bias,
                input,
                output,
            )?],
        })
    }
}

impl From<ConvKind> for ConvRoute {
    /// [`ConvRoute::MmIm2col`] through the coalesced im2col, else [`ConvRoute::Mm`] unsplit,
    /// else [`ConvRoute::MmSplit`].
    fn from(k: ConvKind) -> Self {
        match (k.im2col, k.split) {
            (true, _) => ConvRoute::MmIm2col(k.tile),
            (false, 0 | 1) => ConvRoute::Mm(k.tile),
            (false, split) => ConvRoute::MmSplit {
                tile: k.tile,
                split,
            },
        }
    }
}

impl From<tuned::Variant<ConvKind>> for ConvRoute {
    /// The route of a tuner winner (or candidate) for an f32 convolution.
    fn from(v: tuned::Variant<ConvKind>) -> Self {
        match v {
            tuned::Variant::Gemm => ConvRoute::Im2col(Precision::F32),
            tuned::Variant::Mm(kind) => kind.into(),
        }
    }
}

impl Kernels {
    /// The weight layout of every convolution these kernels run in `precision`.
    pub fn conv_layout(&self, precision: Precision) -> ConvLayout {
        match (precision, self.path) {
            (Precision::F16, _) if self.coop.is_some() => ConvLayout::CoopF16,
            (Precision::F16, _) => ConvLayout::PackedF16,
            (Precision::F32, MatmulPath::Gemm | MatmulPath::Blocked(_)) => ConvLayout::PaddedRows,
            (Precision::F32, MatmulPath::Tiled) => ConvLayout::Oihw,
        }
    }

    /// The kernel one convolution of `shape` (its batch included: the tuner's entries are per
    /// batch size) runs in `precision`: f16 on `coop.wgsl` where [`Kernels::coop`] is set, else on the `im2col_f16` + `gemm_f16` kernels; f32 on the
    /// `Gemm` path as `im2col` + `gemm` unless the tuner chose an `mm.wgsl` tile; on the
    /// `Blocked` path a forced, tuned or heuristic tile, or `im2col` + `gemm` where the tuner
    /// chose it and nothing is forced (the tile split over K where its output tiles would
    /// not fill the GPU, [`mm::conv_split_heuristic`]; through the coalesced im2col where
    /// forced or tuned, never by the heuristic); `conv2d.wgsl` on the `Tiled` path. Its
    /// [`ConvRoute::layout`] is always [`Kernels::conv_layout`].
    pub fn conv_route(&self, shape: &Conv2dShape, precision: Precision) -> Result<ConvRoute> {
        if precision == Precision::F16 {
            return Ok(match self.coop {
                Some(c) => ConvRoute::Coop(c, coop::DEFAULT_TILE),
                None => ConvRoute::Im2col(Precision::F16),
            });
        }
        let tuned = self.tuned_conv(shape);
        let tuned_kind = tuned.and_then(|v| v.mm());
        Ok(match self.path {
            MatmulPath::Tiled => ConvRoute::Direct,
            MatmulPath::Gemm => match tuned_kind.filter(|k| k.tile.fits(&self.limits)) {
                Some(kind) => kind.into(),
                None => ConvRoute::Im2col(Precision::F32),
            },
            MatmulPath::Blocked(force) => {
                if force.is_empty() && tuned == Some(tuned::Variant::Gemm) {
                    ConvRoute::Im2col(Precision::F32)
                } else {
                    force.conv(shape, tuned_kind, &self.limits)?.into()
                }
            }
        })
    }

    /// Whether a convolution of `shape`'s geometry could run through a patch matrix at some
    /// batch size (so a stack planned once for several batch sizes allocates the scratch):
    /// f16, the `Gemm` path, the coalesced im2col forced, or a tuner entry choosing `gemm`
    /// (nothing forced) or an `-im2col` variant (which forced fields may overrule: then the
    /// scratch is only larger than needed) for this geometry at any batch.
    fn conv_may_use_im2col(&self, shape: &Conv2dShape, precision: Precision) -> bool {
        if precision == Precision::F16 || self.path == MatmulPath::Gemm {
            return true;
        }
        let MatmulPath::Blocked(force) = self.path else {
            return false;
        };
        let geometry = tuned::conv_geometry_key(shape);
        let tuned_any = |pick: &dyn Fn(&tuned::Variant<ConvKind>) -> bool| {
            self.tuned.as_ref().is_some_and(|t| {
                t.conv
                    .iter()
                    .any(|(key, v)| pick(v) && tuned::strip_batch(key) == geometry)
            })
        };
        force.conv_im2col
            || (force.is_empty() && tuned_any(&|v| *v == tuned::Variant::Gemm))
            || tuned_any(&|v| v.mm().is_some_and(|k| k.im2col))
    }

    /// Words of scratch for convolutions planned once and run at every batch size up to each
    /// shape's `batch` (training's stack): each route's need at that batch, and the whole patch
    /// matrix wherever `im2col` may run at a smaller batch (a tuner entry); capped for this
    /// device. A split route at a smaller batch runs with the slices this holds. `None`: no
    /// scratch.
    pub fn conv_scratch_words_up_to(
        &self,
        ctx: &GpuContext,
        shapes: &[Conv2dShape],
        precision: Precision,
    ) -> Result<Option<usize>> {
        let mut need = 0;
        for s in shapes {
            if self.conv_may_use_im2col(s, precision) {
                need = need.max(s.im2col_words(precision)?);
            }
            need = need.max(self.conv_route(s, precision)?.scratch_words(s)?);
        }
        Ok((need > 0).then(|| conv2d::scratch_words(ctx, need)))
    }

    /// Words of scratch for `shapes` (each at the batch it runs), capped for this device
    /// ([`conv2d::scratch_words`]); `None` when none of them runs `im2col`.
    pub fn conv_scratch_words(
        &self,
        ctx: &GpuContext,
        shapes: &[Conv2dShape],
        precision: Precision,
    ) -> Result<Option<usize>> {
        let mut need = 0;
        for s in shapes {
            need = need.max(self.conv_route(s, precision)?.scratch_words(s)?);
        }
        Ok((need > 0).then(|| conv2d::scratch_words(ctx, need)))
    }
}

/// Which GEMM kernels a trained convolution's backward pass runs (between the layout changes
/// of `conv_gemm_backward`; the direct loops of `conv_backward` are the context's
/// `ConvBackward::Direct`, outside this choice).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvBackwardRoute {
    /// `gemm.wgsl`: CPU adapters (the `Gemm` path) and the `Tiled` path.
    Gemm,
    /// Grouped `mm.wgsl` tiles ([`super::mm_grouped`]): the weight gradient on `wgrad`, split
    /// over K = batch x pixels; the input gradient on `igrad`. The `Blocked` path.
    Mm {
        /// The weight gradient's tile.
        wgrad: Tile,
        /// The input gradient's tile.
        igrad: Tile,
    },
}

impl Kernels {
    /// The backward GEMMs of a trained convolution of `shape` (its batch included): the
    /// `Blocked` path's forced tile where it fits, else the conv tile heuristic per GEMM;
    /// `gemm.wgsl` on the other paths.
    pub fn conv_backward_route(&self, shape: &Conv2dShape) -> Result<ConvBackwardRoute> {
        let MatmulPath::Blocked(force) = self.path else {
            return Ok(ConvBackwardRoute::Gemm);
        };
        let (oh, ow) = shape.out_hw()?;
        let forced = force.tile.filter(|t| t.fits(&self.limits));
        let pick =
            |m: usize, n: usize| forced.unwrap_or_else(|| mm::conv_heuristic(m, n, &self.limits));
        Ok(ConvBackwardRoute::Mm {
            wgrad: pick(shape.k(), shape.out_c / shape.groups),
            igrad: pick(shape.k(), shape.batch * oh * ow),
        })
    }
}

/// Which kernels a trained dense layer's backward pass runs (the bias gradient is always
/// `dense_backward.wgsl`'s `grad_bias`, a sum over the batch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DenseBackwardRoute {
    /// `dense_backward.wgsl`'s 4x4 register tiles: CPU adapters (the `Gemm` path) and the
    /// `Tiled` path. On lavapipe they beat the workgroup-memory tiles (docs/performance.md).
    Direct,
    /// `mm.wgsl` tiles on the operands where they lie ([`super::mm_strided`]): the input
    /// gradient `dX = dY W` (M = inputs, N = batch, K = this part's outputs, split over K where
    /// its tiles do not fill the GPU) and the weight gradient `dW = dY^T X` (M = inputs, N =
    /// outputs, K = batch). The `Blocked` path.
    Mm {
        /// The input gradient's variant.
        igrad: StridedKind,
        /// The weight gradient's variant.
        wgrad: StridedKind,
    },
}

impl Kernels {
    /// The backward kernels of one weight part of a trained dense layer (`rows` outputs over
    /// `in_f` inputs) at `batch`: on the `Blocked` path the forced tile (where it fits) and
    /// forced split, else [`mm_strided::heuristic`] per GEMM; `dense_backward.wgsl` on the
    /// other paths.
    pub fn dense_backward_route(
        &self,
        batch: usize,
        in_f: usize,
        rows: usize,
    ) -> DenseBackwardRoute {
        let MatmulPath::Blocked(force) = self.path else {
            return DenseBackwardRoute::Direct;
        };
        let pick = |m: usize, n: usize, k: usize| {
            let h = mm_strided::heuristic(m, n, k, &self.limits);
            StridedKind {
                tile: force
                    .tile
                    .filter(|t| t.fits(&self.limits))
                    .unwrap_or(h.tile),
                split: force.split.unwrap_or(h.split),
            }
        };
        DenseBackwardRoute::Mm {
            igrad: pick(in_f, batch, rows),
            wgrad: pick(in_f, rows, batch),
        }
    }
}
