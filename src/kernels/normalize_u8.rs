//! `normalize_u8.wgsl`: a batch of cropped 8-bit pixels (`[n, h, w, 3]`, the model's channel
//! order) normalised into the network's f32 `[n, 3, h, w]` input by a per-channel 256-entry
//! table, on the GPU: the input upload is the pixels' bytes, a quarter of the f32 tensor's.

use super::{to_u32, Dispatch, Grid, Kernels};
use crate::error::{Error, Result};
use crate::gpu::GpuContext;

/// Bytes per pixel on the way in (three 8-bit channels, interleaved).
pub const CHANNELS: usize = 3;

/// Mirrors `struct Params` in `normalize_u8.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)] // the fields are the shader's uniform block's, named as there
pub struct NormalizeU8Params {
    pub pixels: u32,
    pub plane: u32,
    pub _pad: [u32; 2],
}

/// Normalises `batch` images of `plane` pixels: `pixels` holds their `3 * batch * plane` bytes
/// packed into words (the last word zero-padded), `table` the `3 * 256` floats of
/// `data::norm_table` (channel by channel), `out` gets `[batch, 3, plane]` floats.
pub fn dispatch(
    ctx: &GpuContext,
    k: &Kernels,
    batch: usize,
    plane: usize,
    pixels: &wgpu::Buffer,
    table: &wgpu::Buffer,
    out: &wgpu::Buffer,
) -> Result<Dispatch> {
    let count = batch.checked_mul(plane).filter(|&n| n > 0).ok_or_else(|| {
        Error::Shape(format!(
            "normalize_u8: {batch} images of {plane} pixels is not a batch"
        ))
    })?;
    // The shader indexes bytes up to 3 x pixels in u32.
    to_u32("input bytes", count.saturating_mul(CHANNELS))?;
    let params = NormalizeU8Params {
        pixels: to_u32("input pixels", count)?,
        plane: to_u32("pixels per image", plane)?,
        _pad: [0; 2],
    };
    Dispatch::new(
        ctx,
        &k.normalize_u8(),
        "normalise u8 input",
        &params,
        &[pixels, table, out],
        Grid::Items(count),
    )
}

/// CPU reference: `[n, plane, 3]` bytes through `table` (`table[c][v]`) into `[n, 3, plane]`.
pub fn reference(pixels: &[u8], table: &[[f32; 256]; 3], plane: usize) -> Vec<f32> {
    let mut out = vec![0f32; pixels.len()];
    for (n, image) in pixels.chunks(CHANNELS * plane.max(1)).enumerate() {
        for (s, px) in image.chunks_exact(CHANNELS).enumerate() {
            for (c, &v) in px.iter().enumerate() {
                out[(n * CHANNELS + c) * plane + s] = table[c][v as usize];
            }
        }
    }
    out
}
