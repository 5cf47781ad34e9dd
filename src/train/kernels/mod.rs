//! Training kernels, one module per shader: params struct, dispatch, CPU reference.

pub mod adam;
pub mod cross_entropy;
pub mod dense_backward;
pub mod dropout;
pub mod relu_backward;
pub mod sgd;

use crate::gpu::GpuContext;
use crate::kernels::Kernel;

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
];

fn source(file: &str) -> &'static str {
    SHADERS
        .iter()
        .find(|(n, _)| *n == file)
        .map(|(_, s)| *s)
        .expect("listed in SHADERS")
}

/// The training pipelines, compiled once per device.
pub struct TrainKernels {
    pub grad_input: Kernel,
    pub grad_weight: Kernel,
    pub grad_bias: Kernel,
    pub relu_backward: Kernel,
    pub dropout: Kernel,
    pub cross_entropy: Kernel,
    pub sgd: Kernel,
    pub adam: Kernel,
}

impl TrainKernels {
    pub fn new(ctx: &GpuContext) -> Self {
        let d = &ctx.device;
        let db = source("dense_backward.wgsl");
        TrainKernels {
            grad_input: Kernel::from_source(d, "dense_backward.wgsl:grad_input", db, "grad_input"),
            grad_weight: Kernel::from_source(
                d,
                "dense_backward.wgsl:grad_weight",
                db,
                "grad_weight",
            ),
            grad_bias: Kernel::from_source(d, "dense_backward.wgsl:grad_bias", db, "grad_bias"),
            relu_backward: Kernel::from_source(
                d,
                "relu_backward.wgsl",
                source("relu_backward.wgsl"),
                "main",
            ),
            dropout: Kernel::from_source(d, "dropout.wgsl", source("dropout.wgsl"), "main"),
            cross_entropy: Kernel::from_source(
                d,
                "cross_entropy.wgsl",
                source("cross_entropy.wgsl"),
                "main",
            ),
            sgd: Kernel::from_source(d, "sgd.wgsl", source("sgd.wgsl"), "main"),
            adam: Kernel::from_source(d, "adam.wgsl", source("adam.wgsl"), "main"),
        }
    }
}
