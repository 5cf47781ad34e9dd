#![allow(dead_code)]

use alexnet_wgpu::gpu::{AdapterChoice, GpuContext};
use rand::{Rng, SeedableRng};

/// The adapter the suite runs on (lavapipe in CI). Honours WGPU_BACKEND / WGPU_ADAPTER_NAME.
pub fn ctx() -> GpuContext {
    GpuContext::new(&AdapterChoice::default())
        .expect("a wgpu adapter (install mesa-vulkan-drivers)")
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

/// A file under `tests/fixtures/`.
pub fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A `.npy` fixture under `tests/fixtures/`: (shape, data).
pub fn fixture_npy(name: &str) -> (Vec<usize>, Vec<f32>) {
    let mut t = alexnet_wgpu::weights::read_tensors(&fixture(name)).unwrap();
    let t = t.remove(0);
    (t.shape, t.data.unwrap())
}
