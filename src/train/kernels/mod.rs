//! Training kernels, one module per shader: params struct, dispatch, CPU reference.

pub mod adam;
pub mod conv_backward;
pub mod conv_gemm_backward;
pub mod cross_entropy;
pub mod dense_backward;
pub mod dropout;
pub mod lrn_backward;
pub mod pool_backward;
pub mod relu_backward;
pub mod sgd;

use std::sync::Arc;

use crate::gpu::{GpuContext, Kernel, PipelineCache, ShaderSource};

/// Every training shader, by file name (validated and translated by tests/shaders.rs).
pub const SHADERS: &[(&str, &str)] = &[
    (
        "dense_backward.wgsl",
        include_str!("../../../shaders/dense_backward.wgsl"),
    ),
    (
        "relu_backward.wgsl",
        include_str!("../../../shaders/relu_backward.wgsl"),
    ),
    (
        "dropout.wgsl",
        include_str!("../../../shaders/dropout.wgsl"),
    ),
    (
        "cross_entropy.wgsl",
        include_str!("../../../shaders/cross_entropy.wgsl"),
    ),
    ("sgd.wgsl", include_str!("../../../shaders/sgd.wgsl")),
    ("adam.wgsl", include_str!("../../../shaders/adam.wgsl")),
    (
        "conv_backward.wgsl",
        include_str!("../../../shaders/conv_backward.wgsl"),
    ),
    (
        "conv_gemm_backward.wgsl",
        include_str!("../../../shaders/conv_gemm_backward.wgsl"),
    ),
    (
        "max_pool_backward.wgsl",
        include_str!("../../../shaders/max_pool_backward.wgsl"),
    ),
    (
        "lrn_backward.wgsl",
        include_str!("../../../shaders/lrn_backward.wgsl"),
    ),
    (
        "adaptive_avg_pool_backward.wgsl",
        include_str!("../../../shaders/adaptive_avg_pool_backward.wgsl"),
    ),
];

fn shader(file: &str) -> ShaderSource {
    SHADERS
        .iter()
        .find(|(n, _)| *n == file)
        .map(|(file, source)| ShaderSource { file, source })
        .expect("listed in SHADERS")
}

/// The training kernels of one device, fetched from its pipeline cache on first use.
#[derive(Clone)]
pub struct TrainKernels {
    cache: Arc<PipelineCache>,
}

macro_rules! kernel_getters {
    ($($name:ident => ($file:literal, $entry:literal);)*) => {
        $(pub fn $name(&self) -> Arc<Kernel> {
            self.cache.get(shader($file), $entry)
        })*
    };
}

impl TrainKernels {
    pub fn new(ctx: &GpuContext) -> Self {
        TrainKernels {
            cache: ctx.pipelines.clone(),
        }
    }

    /// An entry point of `conv_gemm_backward.wgsl` (`dy_cn`, `im2col_t`, `dy_nc`, `weight_t`,
    /// `col2im`).
    pub fn conv_gemm_glue(&self, entry: &'static str) -> Arc<Kernel> {
        self.cache.get(shader("conv_gemm_backward.wgsl"), entry)
    }

    kernel_getters! {
        grad_input => ("dense_backward.wgsl", "grad_input");
        grad_weight => ("dense_backward.wgsl", "grad_weight");
        grad_bias => ("dense_backward.wgsl", "grad_bias");
        relu_backward => ("relu_backward.wgsl", "main");
        dropout => ("dropout.wgsl", "main");
        cross_entropy => ("cross_entropy.wgsl", "main");
        sgd => ("sgd.wgsl", "main");
        adam => ("adam.wgsl", "main");
        conv_grad_input => ("conv_backward.wgsl", "grad_input");
        conv_grad_weight => ("conv_backward.wgsl", "grad_weight");
        conv_grad_bias => ("conv_backward.wgsl", "grad_bias");
        max_pool_backward => ("max_pool_backward.wgsl", "main");
        lrn_backward => ("lrn_backward.wgsl", "main");
        adaptive_avg_pool_backward => ("adaptive_avg_pool_backward.wgsl", "main");
    }
}
