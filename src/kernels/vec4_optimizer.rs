//! The optimizers' `vec4` variants, generated from their scalar shaders.

use crate::gpu::ShaderSource;

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
        let scalar = super::shader(file).source;
        let out = scalar
            .replace("array<f32>", "array<vec4<f32>>")
            .replace("if (i >= p.len) {", "if (4u * i >= p.len) {");
        assert!(
            out.contains("4u * i >= p.len") && !out.contains("array<f32>"),
            "{file}: the vec4 rewrite no longer matches the shader"
        );
        let header =
            format!("// Generated from {file} by kernels::vec4_optimizer::vec4_optimizer.\n");
        Box::leak((header + &out).into_boxed_str())
    });
    ShaderSource { file: name, source }
}

/// The generated shader variants (validated by tests/it/shaders.rs beside [`super::SHADERS`]).
pub fn generated_shaders() -> Vec<ShaderSource> {
    vec![vec4_optimizer("sgd.wgsl"), vec4_optimizer("adam.wgsl")]
}
