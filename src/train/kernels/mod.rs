//! Training kernels, one module per shader: params struct, dispatch, CPU reference.

pub mod adam;
pub mod conv_backward;
pub mod conv_gemm_backward;
pub mod cross_entropy;
pub mod dense_backward;
pub mod dropout;
pub mod lrn_backward;
pub mod pad_rows;
pub mod pool_backward;
pub mod relu_backward;
pub mod sgd;

use std::sync::Arc;

use crate::gpu::{GpuContext, Kernel, PipelineCache, ShaderSource};

/// Every training shader, by file name (validated and translated by tests/it/shaders.rs).
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
    (
        "pad_rows.wgsl",
        include_str!("../../../shaders/pad_rows.wgsl"),
    ),
];

fn shader(file: &str) -> ShaderSource {
    SHADERS
        .iter()
        .find(|(n, _)| *n == file)
        .map(|(file, source)| ShaderSource { file, source })
        .expect("listed in SHADERS")
}

/// `sgd.wgsl` or `adam.wgsl` rewritten to update four values per invocation: every array
/// `array<vec4<f32>>`, and the bounds check `4 * i < len` (the uniform keeps `len` in values, so
/// the per-step parameter writes are the same for both). The update is element-wise and every
/// operation in it is defined on `vec4` with the scalar parameters broadcast, so nothing else
/// changes. Used where `len` is a multiple of 4 (every weight of AlexNet; odd-sized biases stay
/// scalar). Why: on lavapipe each storage load is done lane by lane with its own bounds check,
/// so one `vec4` load of four values costs about as much as one scalar load, and the
/// optimizer streams 3-4 arrays over all trained parameters every step (58 M for fc6-fc8).
pub fn vec4_optimizer(file: &'static str) -> ShaderSource {
    use std::sync::OnceLock;
    static SGD: OnceLock<&'static str> = OnceLock::new();
    static ADAM: OnceLock<&'static str> = OnceLock::new();
    let (cell, name) = match file {
        "sgd.wgsl" => (&SGD, "sgd.wgsl[vec4]"),
        "adam.wgsl" => (&ADAM, "adam.wgsl[vec4]"),
        _ => panic!("no vec4 variant of {file}"),
    };
    let source = cell.get_or_init(|| {
        let scalar = shader(file).source;
        let out = scalar
            .replace("array<f32>", "array<vec4<f32>>")
            .replace("if (i >= p.len) {", "if (4u * i >= p.len) {");
        assert!(
            out.contains("4u * i >= p.len") && !out.contains("array<f32>"),
            "{file}: the vec4 rewrite no longer matches the shader"
        );
        let header = format!("// Generated from {file} by train::kernels::vec4_optimizer.\n");
        Box::leak((header + &out).into_boxed_str())
    });
    ShaderSource { file: name, source }
}

/// The generated shader variants (validated by tests/it/shaders.rs beside [`SHADERS`]).
pub fn generated_shaders() -> Vec<ShaderSource> {
    vec![vec4_optimizer("sgd.wgsl"), vec4_optimizer("adam.wgsl")]
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

    /// The optimizer kernel for `len` values: the `vec4` variant when `len` is a multiple of
    /// 4 ([`vec4_optimizer`]), else the scalar shader. `(kernel, values per invocation)`.
    pub fn optimizer(&self, file: &'static str, len: usize) -> (Arc<Kernel>, usize) {
        if len.is_multiple_of(4) {
            (self.cache.get(vec4_optimizer(file), "main"), 4)
        } else {
            (self.cache.get(shader(file), "main"), 1)
        }
    }

    kernel_getters! {
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
    }
}
