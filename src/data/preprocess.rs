//! Per-preset image preprocessing, matching what each framework's reference pipeline does.

use std::path::Path;

use image::imageops::FilterType;
use image::RgbImage;

pub use super::transform::{resize_target, Preprocess};
use crate::error::Result;

/// Reads an image file into 8-bit RGB as stored: full resolution, EXIF orientation not
/// applied (what torchvision's `ImageFolder` sees), any format and colour type `image`
/// supports, with the header checks of the input pipeline (at most
/// [`super::decode::MAX_PIXELS`], a JPEG's size plausible for its bytes). For LPIPS, which
/// reads images upright and needs a minimum size, use `lpips::load_image`.
pub fn load_image(path: impl AsRef<Path>) -> Result<RgbImage> {
    let path = path.as_ref();
    let bytes = crate::fsutil::read_regular(path)?;
    decode_image(&bytes, path)
}

/// [`load_image`] of a file's bytes already in memory (the format is guessed from the content;
/// `path` only names the file in errors).
pub fn decode_image(bytes: &[u8], path: &Path) -> Result<RgbImage> {
    let opts = super::decode::LoadOptions {
        exact: true,
        ignore_orientation: true,
        allow_truncated: false,
    };
    super::decode::check_complete(path, bytes, opts)?;
    Ok(super::decode::decode_any(path, bytes, opts)?.image)
}

/// Python's `round` (half to even), as torchvision's centre crop uses it.
fn round_half_even(x: f64) -> usize {
    let r = x.round();
    let v = if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - x.signum()
    } else {
        r
    };
    v.max(0.0) as usize
}

/// Resize, centre-crop and normalise to a `[3, crop, crop]` tensor (the exact path: `image`'s
/// triangle filter on the full-resolution image).
pub fn preprocess(img: &RgbImage, p: &Preprocess) -> Vec<f32> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (nw, nh) = resize_target(w, h, p);
    // Triangle = bilinear; image widens the filter when shrinking, i.e. it antialiases like PIL.
    let resized = if (nw, nh) == (w, h) {
        img.clone()
    } else {
        image::imageops::resize(img, nw as u32, nh as u32, FilterType::Triangle)
    };
    let mut out = vec![0f32; 3 * p.crop * p.crop];
    crop_normalise(&resized, p, &mut out);
    out
}

/// The per-channel normalisation as a table: `table[c][v]` is the model's channel `c` input
/// for the 8-bit value `v` (`(v * scale - mean[c]) / std[c]` in f32). The CPU path
/// ([`crop_normalise`]) and the GPU's (`normalize_u8.wgsl`, which looks the same values up)
/// both read it, so the two give bit-identical inputs.
pub type NormTable = [[f32; 256]; 3];

/// [`NormTable`] of a preset.
pub fn norm_table(p: &Preprocess) -> NormTable {
    let mut lut = [[0f32; 256]; 3];
    for (ch, table) in lut.iter_mut().enumerate() {
        for (v, slot) in table.iter_mut().enumerate() {
            *slot = (v as f32 * p.scale - p.mean[ch]) / p.std[ch];
        }
    }
    lut
}

/// The top-left corner `(top, left)` of the centre crop of a `nw` x `nh` image, checked.
fn crop_origin(nw: usize, nh: usize, c: usize) -> (usize, usize) {
    assert!(nw >= c && nh >= c, "the image is smaller than the crop");
    (
        round_half_even((nh - c) as f64 / 2.0),
        round_half_even((nw - c) as f64 / 2.0),
    )
}

/// Centre-crops an image already at [`resize_target`] size and writes the normalised
/// `[3, crop, crop]` tensor into `out`.
pub fn crop_normalise(resized: &RgbImage, p: &Preprocess, out: &mut [f32]) {
    let (nw, nh) = (resized.width() as usize, resized.height() as usize);
    let c = p.crop;
    assert!(out.len() == 3 * c * c, "crop_normalise sizes");
    let (top, left) = crop_origin(nw, nh, c);
    // One table per output channel: 256 values instead of a multiply-add per sample.
    let lut = norm_table(p);
    let raw = resized.as_raw();
    let (planes, _) = out.split_at_mut(3 * c * c);
    let (r, rest) = planes.split_at_mut(c * c);
    let (g, b) = rest.split_at_mut(c * c);
    let order: [usize; 3] = if p.bgr { [2, 1, 0] } else { [0, 1, 2] };
    for y in 0..c {
        let row = &raw[((top + y) * nw + left) * 3..((top + y) * nw + left + c) * 3];
        let o = y * c;
        for (x, px) in row.chunks_exact(3).enumerate() {
            r[o + x] = lut[0][px[order[0]] as usize];
            g[o + x] = lut[1][px[order[1]] as usize];
            b[o + x] = lut[2][px[order[2]] as usize];
        }
    }
}

/// Centre-crops an image already at [`resize_target`] size into `out` as 8-bit pixels,
/// `[crop, crop, 3]` (interleaved, as decoded) in the model's channel order (BGR for Caffe),
/// for the GPU to normalise with [`norm_table`]: a quarter of the bytes of
/// [`crop_normalise`]'s f32 tensor, and on the CPU one row copy per crop row (RGB presets).
/// Interleaved rather than planar: the CPU then copies rows as decoded, and the GPU kernel,
/// which reads every byte once anyway, does the de-interleave for free.
pub fn crop_pixels(resized: &RgbImage, p: &Preprocess, out: &mut [u8]) {
    let (nw, nh) = (resized.width() as usize, resized.height() as usize);
    let c = p.crop;
    assert!(out.len() == 3 * c * c, "crop_pixels sizes");
    let (top, left) = crop_origin(nw, nh, c);
    let raw = resized.as_raw();
    for (y, dst) in out.chunks_exact_mut(3 * c).enumerate() {
        let start = ((top + y) * nw + left) * 3;
        let row = &raw[start..start + 3 * c];
        if p.bgr {
            for (d, s) in dst.chunks_exact_mut(3).zip(row.chunks_exact(3)) {
                d.copy_from_slice(&[s[2], s[1], s[0]]);
            }
        } else {
            dst.copy_from_slice(row);
        }
    }
}

/// Training-time augmentation: a random resized crop (area 25-100 % of the image, aspect
/// 3/4 to 4/3, as torchvision's RandomResizedCrop with a larger minimum area, since only a
/// few views per image are cached) resized to the crop size, flipped with probability 1/2,
/// then normalised like [`preprocess`].
pub fn augment(img: &RgbImage, p: &Preprocess, rng: &mut impl rand::Rng) -> Vec<f32> {
    let (w, h) = (img.width() as f64, img.height() as f64);
    let area = w * h;
    let mut rect = None;
    for _ in 0..10 {
        let target = area * rng.random_range(0.25..1.0);
        let log_ratio = rng.random_range((3f64 / 4.0).ln()..(4f64 / 3.0).ln());
        let ratio = log_ratio.exp();
        let cw = (target * ratio).sqrt().round();
        let ch = (target / ratio).sqrt().round();
        if cw >= 1.0 && ch >= 1.0 && cw <= w && ch <= h {
            let x = rng.random_range(0..=(w - cw) as u32);
            let y = rng.random_range(0..=(h - ch) as u32);
            rect = Some((x, y, cw as u32, ch as u32));
            break;
        }
    }
    // Fallback (as torchvision): the largest centred crop.
    let (x, y, cw, ch) = rect.unwrap_or_else(|| {
        let s = w.min(h) as u32;
        ((w as u32 - s) / 2, (h as u32 - s) / 2, s, s)
    });
    let cropped = image::imageops::crop_imm(img, x, y, cw, ch).to_image();
    let mut view =
        image::imageops::resize(&cropped, p.crop as u32, p.crop as u32, FilterType::Triangle);
    if rng.random_bool(0.5) {
        image::imageops::flip_horizontal_in_place(&mut view);
    }
    preprocess(
        &view,
        &Preprocess {
            resize: p.crop,
            resize_square: true,
            ..*p
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_like_python() {
        assert_eq!(round_half_even(14.5), 14);
        assert_eq!(round_half_even(15.5), 16);
        assert_eq!(round_half_even(16.0), 16);
        assert_eq!(round_half_even(16.2), 16);
    }
}
