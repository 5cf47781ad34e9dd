//! One module per WGSL kernel, forward and backward side by side (`max_pool` /
//! `pool_backward`, `dense` / `dense_backward`, ...): its params struct (mirrored by the
//! shader's uniform struct), a thin host-side `dispatch` that binds buffers, and the plain CPU
//! reference it is tested against. One registry ([`Kernels`]) for every shader: pipelines
//! compile lazily in the device's cache, so a forward-only run never builds a backward one.

pub mod adam;
pub mod adaptive_avg_pool;
pub mod conv2d;
pub mod conv_backward;
pub mod conv_gemm_backward;
pub mod coop;
pub mod cross_entropy;
pub mod dense;
pub mod dense_backward;
mod dispatch;
pub mod dropout;
pub mod gather_rows;
pub mod gemm;
pub mod gemv_f16;
pub mod lrn;
pub mod lrn_backward;
pub mod max_pool;
pub mod mm;
pub mod mm_grouped;
pub mod mm_im2col;
pub mod mm_strided;
pub mod normalize_u8;
pub mod pad_rows;
pub mod pool_backward;
pub mod relu;
pub mod relu_backward;
pub mod route;
pub mod sgd;
pub mod softmax;
pub mod timing;
pub mod tuned;
pub mod vec4_optimizer;

use std::sync::Arc;

use crate::error::Result;
pub use crate::gpu::Kernel;
use crate::gpu::{GpuContext, PipelineCache, ShaderSource};
pub use crate::options::MatmulPath;
pub use dispatch::{grid_1d, run, to_u32, Bindings, Dispatch, Grid};

/// Every shader (forward, backward, loss, optimizers), by file name, for validation and for building pipelines.
pub const SHADERS: &[(&str, &str)] = &[
    ("conv2d.wgsl", include_str!("../../shaders/conv2d.wgsl")),
    ("dense.wgsl", include_str!("../../shaders/dense.wgsl")),
    ("gemm.wgsl", include_str!("../../shaders/gemm.wgsl")),
    ("im2col.wgsl", include_str!("../../shaders/im2col.wgsl")),
    ("gemm_f16.wgsl", include_str!("../../shaders/gemm_f16.wgsl")),
    (
        "im2col_f16.wgsl",
        include_str!("../../shaders/im2col_f16.wgsl"),
    ),
    ("gemv_f16.wgsl", include_str!("../../shaders/gemv_f16.wgsl")),
    ("mm.wgsl", mm::SOURCE),
    (
        "im2col_coalesced.wgsl",
        include_str!("../../shaders/im2col_coalesced.wgsl"),
    ),
    // Tensor cores (built only where the device has cooperative matrices; the emulated
    // variant, `coop::Coop::Emulated`, is derived from it).
    ("coop.wgsl", coop::SOURCE),
    ("max_pool.wgsl", include_str!("../../shaders/max_pool.wgsl")),
    ("lrn.wgsl", include_str!("../../shaders/lrn.wgsl")),
    (
        "adaptive_avg_pool.wgsl",
        include_str!("../../shaders/adaptive_avg_pool.wgsl"),
    ),
    ("softmax.wgsl", include_str!("../../shaders/softmax.wgsl")),
    ("relu.wgsl", include_str!("../../shaders/relu.wgsl")),
    (
        "normalize_u8.wgsl",
        include_str!("../../shaders/normalize_u8.wgsl"),
    ),
    ("lpips.wgsl", include_str!("../../shaders/lpips.wgsl")),
    // Training: backward passes, loss, optimizers.
    (
        "dense_backward.wgsl",
        include_str!("../../shaders/dense_backward.wgsl"),
    ),
    (
        "relu_backward.wgsl",
        include_str!("../../shaders/relu_backward.wgsl"),
    ),
    ("dropout.wgsl", include_str!("../../shaders/dropout.wgsl")),
    (
        "cross_entropy.wgsl",
        include_str!("../../shaders/cross_entropy.wgsl"),
    ),
    ("sgd.wgsl", include_str!("../../shaders/sgd.wgsl")),
    ("adam.wgsl", include_str!("../../shaders/adam.wgsl")),
    (
        "conv_backward.wgsl",
        include_str!("../../shaders/conv_backward.wgsl"),
    ),
    (
        "conv_gemm_backward.wgsl",
        include_str!("../../shaders/conv_gemm_backward.wgsl"),
    ),
    (
        "max_pool_backward.wgsl",
        include_str!("../../shaders/max_pool_backward.wgsl"),
    ),
    (
        "lrn_backward.wgsl",
        include_str!("../../shaders/lrn_backward.wgsl"),
    ),
    (
        "adaptive_avg_pool_backward.wgsl",
        include_str!("../../shaders/adaptive_avg_pool_backward.wgsl"),
    ),
    ("pad_rows.wgsl", include_str!("../../shaders/pad_rows.wgsl")),
    (
        "gather_rows.wgsl",
        include_str!("../../shaders/gather_rows.wgsl"),
    ),
];

/// A shader by file name (panics on a name not in [`SHADERS`]: a build defect).
pub fn shader(file: &str) -> ShaderSource {
    SHADERS
        .iter()
        .find(|(name, _)| *name == file)
        .map(|(file, source)| ShaderSource { file, source })
        .expect("every kernel's shader is listed in SHADERS")
}

/// The default images per forward pass for `classify`: 8 on CPU adapters (throughput is flat
/// past 8 there and each batch waits on decoding less), 64 on GPUs (enough pixels for the conv
/// tiles and rows for the dense tiles to fill a large card; decoding, not the GPU, is then the
/// limit). Batches over the binding limit run as sub-batches either way.
pub fn default_batch(info: &wgpu::AdapterInfo) -> usize {
    if info.device_type == wgpu::DeviceType::Cpu {
        8
    } else {
        64
    }
}

/// How weights (and the matrices the GEMM reads) are stored on the GPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// f32 everywhere (the reference path).
    #[default]
    F32,
    /// Conv and dense weights, im2col patches and dense inputs stored as f16 (pairs of halves
    /// in `u32`, converted with integer bit operations: neither `SHADER_F16` nor the
    /// `SHADER_F16_IN_F32` downlevel flag needed), f32 accumulation, f32 activations between
    /// layers. Uses `im2col_f16.wgsl` + `gemm_f16.wgsl`
    /// on every adapter.
    F16,
}

impl Precision {
    /// Values of K per vector load in the GEMM (`vec4<f32>`, or `vec4<u32>` of packed halves).
    pub fn per_vec(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::F16 => 8,
        }
    }

    /// GEMM depth `k` padded to whole vector loads.
    pub fn pad_k(self, k: usize) -> usize {
        k.div_ceil(self.per_vec()) * self.per_vec()
    }

    /// 32-bit words that hold `values` stored values.
    pub fn words(self, values: usize) -> usize {
        match self {
            Precision::F32 => values,
            Precision::F16 => values.div_ceil(2),
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "f16" => Ok(Precision::F16),
            _ => Err(format!("unknown precision {s:?} (expected f32 or f16)")),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        })
    }
}

/// The forward-pass kernels of one device, fetched from its pipeline cache on first use (a
/// `Kernels` is cheap: any number of networks and trainers share the compiled pipelines).
#[derive(Clone)]
pub struct Kernels {
    /// Which kernels convolutions and dense layers use (chosen per adapter).
    pub path: MatmulPath,
    cache: Arc<PipelineCache>,
    /// The tuner's winners (the context's table, [`GpuContext::set_tuned`]); `None`:
    /// heuristics only.
    pub tuned: Option<Arc<tuned::Tuned>>,
    /// f16 GEMMs with native `enable f16;` loads ([`gemm::native_f16`]) rather than the
    /// portable bit operations (tests set it to cover both on one adapter).
    pub native_f16: bool,
    /// The device's limits in force: tiles that do not fit are never chosen.
    pub limits: wgpu::Limits,
    /// Cooperative matrices for f16 convolutions ([`coop::Coop::detect`]); `None`: the
    /// `im2col_f16` + `gemm_f16` kernels.
    pub coop: Option<coop::Coop>,
}

macro_rules! kernel_getters {
    ($($(#[$doc:meta])* $name:ident => ($file:literal, $entry:literal);)*) => {
        $(
        #[doc = concat!("The `", $entry, "` entry point of `", $file, "`, compiled once.")]
        $(#[$doc])*
        pub fn $name(&self) -> Arc<Kernel> {
            self.cache.get(shader($file), $entry)
        })*
    };
}

impl Kernels {
    /// The kernels of the context's matmul path ([`GpuContext::matmul_path`]).
    pub fn new(ctx: &GpuContext) -> Self {
        Self::with_path(ctx, ctx.matmul_path())
    }

    /// As [`Kernels::new`] with the matmul path forced (tests cover both on one adapter).
    /// The tuner's table (if installed) is read on the `Blocked` and `Gemm` paths, except
    /// when the runtime options force `gemm` (then the `Gemm` kernels run everywhere).
    pub fn with_path(ctx: &GpuContext, path: MatmulPath) -> Self {
        let forced_gemm = path == MatmulPath::Gemm && ctx.options.matmul == Some(MatmulPath::Gemm);
        Kernels {
            path,
            cache: ctx.pipelines.clone(),
            tuned: if forced_gemm { None } else { ctx.tuned() },
            native_f16: gemm::native_f16(ctx),
            limits: ctx.limits.clone(),
            coop: coop::Coop::detect(ctx),
        }
    }

    /// As [`Kernels::with_path`] with an explicit tuner table (tests).
    pub fn with_tuned(ctx: &GpuContext, path: MatmulPath, tuned: Option<tuned::Tuned>) -> Self {
        Kernels {
            tuned: tuned.map(Arc::new),
            ..Self::with_path(ctx, path)
        }
    }

    /// The tuner's winner for this convolution, if it has one.
    pub fn tuned_conv(&self, shape: &conv2d::Conv2dShape) -> Option<tuned::Variant<mm::ConvKind>> {
        self.tuned
            .as_ref()?
            .conv
            .get(&tuned::conv_key(shape))
            .copied()
    }

    /// The tuner's winner for this dense part, if it has one.
    pub fn tuned_dense(
        &self,
        batch: usize,
        k: usize,
        rows: usize,
    ) -> Option<tuned::Variant<mm::DenseKind>> {
        self.tuned
            .as_ref()?
            .dense
            .get(&tuned::dense_key(batch, k, rows))
            .copied()
    }

    /// Whether one f32 dense part runs `gemm.wgsl`: on the `Gemm` path unless the tuner chose
    /// an `mm.wgsl` variant, on the `Blocked` path where the tuner chose `gemm` and nothing is
    /// forced.
    pub fn dense_runs_gemm(&self, batch: usize, k: usize, rows: usize) -> bool {
        match self.path {
            MatmulPath::Gemm => !matches!(
                self.tuned_dense(batch, k, rows),
                Some(tuned::Variant::Mm(_))
            ),
            MatmulPath::Tiled => false,
            MatmulPath::Blocked(force) => {
                force.is_empty() && self.tuned_dense(batch, k, rows) == Some(tuned::Variant::Gemm)
            }
        }
    }

    /// The `mm.wgsl` variant one f32 dense part (whose K is whole vec4 loads) runs, if it does
    /// not run `gemm.wgsl` ([`Kernels::dense_runs_gemm`]) nor the `Tiled` kernels.
    pub fn dense_kind(&self, batch: usize, k: usize, rows: usize) -> Result<Option<mm::DenseKind>> {
        if self.dense_runs_gemm(batch, k, rows) {
            return Ok(None);
        }
        let tuned = self.tuned_dense(batch, k, rows).and_then(|v| v.mm());
        Ok(match self.path {
            MatmulPath::Blocked(force) => Some(force.dense(batch, k, rows, tuned, &self.limits)?),
            MatmulPath::Gemm => tuned.filter(|d| match d {
                mm::DenseKind::Gemv => true,
                mm::DenseKind::Tiles { tile, .. } => tile.fits(&self.limits),
            }),
            MatmulPath::Tiled => None,
        })
    }

    kernel_getters! {
        conv2d => ("conv2d.wgsl", "main");
        dense => ("dense.wgsl", "main");
        gemm => ("gemm.wgsl", "main");
        /// The 1-row tile of `gemm.wgsl` (matrix-vector products).
        gemm_m1 => ("gemm.wgsl", "main_m1");
        im2col => ("im2col.wgsl", "main");
        /// The patch matrix of the `-im2col` variants ([`mm_im2col`]).
        im2col_coalesced => ("im2col_coalesced.wgsl", "main");
        gemm_f16 => ("gemm_f16.wgsl", "main");
        gemm_f16_m1 => ("gemm_f16.wgsl", "main_m1");
        im2col_f16 => ("im2col_f16.wgsl", "main");
        gemv_f16 => ("gemv_f16.wgsl", "main");
        max_pool => ("max_pool.wgsl", "main");
        lrn => ("lrn.wgsl", "main");
        adaptive_avg_pool => ("adaptive_avg_pool.wgsl", "main");
        softmax => ("softmax.wgsl", "main");
        relu => ("relu.wgsl", "main");
        normalize_u8 => ("normalize_u8.wgsl", "main");
        grad_input => ("dense_backward.wgsl", "grad_input");
        grad_weight => ("dense_backward.wgsl", "grad_weight");
        grad_bias => ("dense_backward.wgsl", "grad_bias");
        relu_backward => ("relu_backward.wgsl", "main");
        dropout => ("dropout.wgsl", "main");
        cross_entropy => ("cross_entropy.wgsl", "main");
        conv_grad_input => ("conv_backward.wgsl", "grad_input");
        conv_grad_weight => ("conv_backward.wgsl", "grad_weight");
        conv_grad_bias => ("conv_backward.wgsl", "grad_bias");
        max_pool_backward => ("max_pool_backward.wgsl", "main");
        lrn_backward => ("lrn_backward.wgsl", "main");
        adaptive_avg_pool_backward => ("adaptive_avg_pool_backward.wgsl", "main");
        pad_rows => ("pad_rows.wgsl", "main");
        gather_rows => ("gather_rows.wgsl", "main");
    }

    /// An entry point of `conv_gemm_backward.wgsl` (`dy_cn`, `im2col_t`, `dy_nc`, `weight_t`,
    /// `col2im`).
    pub fn conv_gemm_glue(&self, entry: &'static str) -> Arc<Kernel> {
        self.cache.get(shader("conv_gemm_backward.wgsl"), entry)
    }

    /// The optimizer kernel for `len` values: the `vec4` variant when `len` is a multiple of
    /// 4 ([`vec4_optimizer::vec4_optimizer`]), else the scalar shader. `(kernel, values per
    /// invocation)`.
    pub fn optimizer(&self, file: &'static str, len: usize) -> (Arc<Kernel>, usize) {
        if len.is_multiple_of(4) {
            (
                self.cache.get(vec4_optimizer::vec4_optimizer(file), "main"),
                4,
            )
        } else {
            (self.cache.get(shader(file), "main"), 1)
        }
    }

    /// Entry point `entry` of any shader source (generated variants).
    pub fn get(&self, source: ShaderSource, entry: &'static str) -> Arc<Kernel> {
        self.cache.get(source, entry)
    }

    /// Entry point `entry` of `mm.wgsl` built for `tile`.
    pub fn mm(&self, tile: mm::Tile, entry: &'static str) -> Arc<Kernel> {
        self.cache.get(tile.source(), entry)
    }
}
