//! `lpips.wgsl`: one trunk layer's LPIPS terms for many pairs (unit-normalise over channels,
//! squared difference, 1x1 lin weights, spatial mean), and its f64 CPU reference.

use crate::error::Result;
use crate::gpu::GpuContext;
use crate::kernels::{to_u32, Dispatch, Grid, Kernel};

/// Mirrors `struct Params` in `lpips.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)] // the fields are the shader's uniform block's, named as there
pub struct LpipsParams {
    pub pairs: u32,
    pub channels: u32,
    pub hw: u32,
    pub layer: u32,
    pub layers: u32,
    /// 1 to write the maps, 0 for the terms only.
    pub write_maps: u32,
    pub _pad: [u32; 2],
}

/// Binds one layer: `buffers` are `feats_a` and `feats_b` `[images, channels, hw]` (may be the
/// same buffer), `pairs` `[pairs, 2]` (u32 indices into feats_a and feats_b), `lin`
/// `[channels]`, `maps` and `terms`; writes `terms[pair * layers + layer]` and, when
/// `write_maps`, `maps` `[pairs, hw]` (otherwise `maps` may be a one-element placeholder).
#[allow(clippy::too_many_arguments)]
pub fn dispatch(
    ctx: &GpuContext,
    kernel: &Kernel,
    pairs: usize,
    channels: usize,
    hw: usize,
    layer: usize,
    layers: usize,
    write_maps: bool,
    buffers: [&wgpu::Buffer; 6],
) -> Result<Dispatch> {
    let params = LpipsParams {
        pairs: to_u32("LPIPS pairs", pairs)?,
        channels: to_u32("LPIPS channels", channels)?,
        hw: to_u32("LPIPS pixels", hw)?,
        layer: to_u32("LPIPS layer", layer)?,
        layers: to_u32("LPIPS layers", layers)?,
        write_maps: write_maps as u32,
        _pad: [0; 2],
    };
    // One workgroup per pair, folded into y past the per-dimension limit.
    let grid = Grid::FoldedGroups(pairs);
    let label = format!("lpips layer {layer}");
    Ok(Dispatch::new(ctx, kernel, label, &params, &buffers, grid)?
        .with_flops((pairs * hw * channels * 7) as f64))
}

/// CPU reference in f64 for one pair: `(map [hw], mean)` from the two `[channels, hw]` feature
/// maps and the lin weights.
pub fn reference(a: &[f32], b: &[f32], lin: &[f32], hw: usize) -> (Vec<f64>, f64) {
    let channels = lin.len();
    assert_eq!(a.len(), channels * hw);
    assert_eq!(b.len(), channels * hw);
    let mut map = vec![0f64; hw];
    for (pos, m) in map.iter_mut().enumerate() {
        let norm = |f: &[f32]| {
            (0..channels)
                .map(|c| (f[c * hw + pos] as f64).powi(2))
                .sum::<f64>()
                .sqrt()
                + 1e-10
        };
        let (na, nb) = (norm(a), norm(b));
        *m = (0..channels)
            .map(|c| {
                let d = a[c * hw + pos] as f64 / na - b[c * hw + pos] as f64 / nb;
                lin[c] as f64 * d * d
            })
            .sum();
    }
    let mean = map.iter().sum::<f64>() / hw as f64;
    (map, mean)
}
