pub mod finetune_support;
pub mod lpips_trunk;

use std::path::{Path, PathBuf};

use alexnet_wgpu::gpu::{AdapterChoice, GpuContext};
use rand::{Rng, SeedableRng};

/// The adapter the suite runs on (lavapipe in CI), with the runtime options the binary's
/// environment twins give (`WGPU_BACKEND`, `WGPU_ADAPTER_NAME`, `ALEXNET_MATMUL`,
/// `ALEXNET_LIMITS`, `ALEXNET_VALIDATE`, `ALEXNET_F16`, `ALEXNET_CONV_BACKWARD`): CI runs the
/// GPU tests again on SwiftShader under WebGPU's limits with validation on, and with each
/// matmul path forced. (The library reads no environment variable; the tests map them here as
/// the CLI does.)
pub fn ctx() -> GpuContext {
    ctx_with(env_options())
}

/// The suite's adapter with these runtime options: a test that needs another option than the
/// environment's (a matmul path, say) passes it here. Never `std::env::set_var`: the tests
/// share one process, so a variable set by one would reach the others' contexts.
pub fn ctx_with(options: alexnet_wgpu::options::RuntimeOptions) -> GpuContext {
    if options.validate {
        // The Vulkan layer's errors reach us through `log`: without a logger they are lost.
        alexnet_wgpu::gpu::validation::install_capture_logger();
    }
    GpuContext::with_options(&env_choice(), options)
        .expect("a wgpu adapter (install mesa-vulkan-drivers)")
}

pub fn env_choice() -> AdapterChoice {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    AdapterChoice {
        backend: var("WGPU_BACKEND"),
        adapter: var("WGPU_ADAPTER_NAME"),
        assignment: None,
    }
}

pub fn env_options() -> alexnet_wgpu::options::RuntimeOptions {
    fn parse<T: std::str::FromStr<Err = String>>(key: &str) -> Option<T> {
        let v = std::env::var(key).ok().filter(|v| !v.is_empty())?;
        Some(v.parse().unwrap_or_else(|e| panic!("{key}: {e}")))
    }
    let validate = std::env::var("ALEXNET_VALIDATE").ok().map(|v| {
        alexnet_wgpu::options::parse_switch(&v).unwrap_or_else(|e| panic!("ALEXNET_VALIDATE: {e}"))
    });
    alexnet_wgpu::options::RuntimeOptions {
        matmul: parse("ALEXNET_MATMUL"),
        limits: parse("ALEXNET_LIMITS").unwrap_or_default(),
        validate: validate.unwrap_or(false),
        f16_loads: parse("ALEXNET_F16").unwrap_or_default(),
        conv_backward: parse("ALEXNET_CONV_BACKWARD").unwrap_or_default(),
        coop: parse("ALEXNET_COOP").unwrap_or_default(),
        shader_checks: false,
    }
}

pub fn random(len: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-scale..scale)).collect()
}

/// max |a - b| / max(max |b|, tiny): the error relative to the reference's magnitude.
pub fn rel_max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    diff / scale
}

pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert!(
        got.iter().all(|v| v.is_finite()),
        "{what}: non-finite output"
    );
    let d = rel_max_diff(got, want);
    assert!(d <= tol, "{what}: max |diff| / max |ref| = {d:e} > {tol:e}");
}

/// The repository's root (the manifest's folder), where the committed images, scripts and
/// fixtures are.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A file under `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

/// The first tensor of a tensor file (`.npy`, or an archive's first member): (shape, data).
pub fn npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let t = alexnet_wgpu::weights::read_tensors(path).unwrap().remove(0);
    (t.shape, t.data.unwrap())
}

/// A `.npy` fixture under `tests/fixtures/`: (shape, data).
pub fn fixture_npy(name: &str) -> (Vec<usize>, Vec<f32>) {
    npy(&fixture(name))
}

/// A finished command's standard error, as text.
pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}
