//! Per-preset image preprocessing, matching what each framework's reference pipeline does.

use std::path::Path;

use image::imageops::FilterType;
use image::RgbImage;

use crate::error::Result;
use crate::model::Arch;

/// How an image becomes a `[3, H, W]` float tensor.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Preprocess {
    /// Resize so the shorter side is this long (aspect kept), or to exactly this square.
    pub resize: usize,
    pub resize_square: bool,
    pub crop: usize,
    /// Multiply 0..255 values by this before the mean and std.
    pub scale: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// Channel order BGR instead of RGB (mean/std are given in the output order).
    pub bgr: bool,
}

impl Preprocess {
    pub fn for_arch(arch: Arch) -> Preprocess {
        match arch {
            // torchvision: Resize(256), CenterCrop(224), ToTensor, Normalize(ImageNet mean/std).
            Arch::Torchvision => Preprocess {
                resize: 256,
                resize_square: false,
                crop: 224,
                scale: 1.0 / 255.0,
                mean: [0.485, 0.456, 0.406],
                std: [0.229, 0.224, 0.225],
                bgr: false,
            },
            // BVLC Caffe: warp to 256x256, centre crop 227, BGR 0..255 minus the mean pixel.
            Arch::Caffe => Preprocess {
                resize: 256,
                resize_square: true,
                crop: 227,
                scale: 1.0,
                mean: [104.0, 117.0, 123.0],
                std: [1.0, 1.0, 1.0],
                bgr: true,
            },
            // The plain Keras net: shorter side 256, centre crop 227, x / 255.
            Arch::Keras => Preprocess {
                resize: 256,
                resize_square: false,
                crop: 227,
                scale: 1.0 / 255.0,
                mean: [0.0; 3],
                std: [1.0; 3],
                bgr: false,
            },
        }
    }
}

/// Decodes any format and colour type `image` supports into 8-bit RGB, at full resolution and
/// as stored (no EXIF orientation), with the header checks of the input pipeline (at most
/// [`super::decode::MAX_PIXELS`], a JPEG's size plausible for its bytes).
pub fn load_image(path: &Path) -> Result<RgbImage> {
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

/// The size the preset resizes a `w` x `h` image to before the centre crop (torchvision's
/// `Resize(256)` rule: the shorter side to `resize`, the longer truncated; never under the crop).
pub fn resize_target(w: usize, h: usize, p: &Preprocess) -> (usize, usize) {
    let (nw, nh) = if p.resize_square {
        (p.resize, p.resize)
    } else if w <= h {
        // torchvision truncates the long side: int(size * long / short).
        (p.resize, (p.resize as f64 * h as f64 / w as f64) as usize)
    } else {
        ((p.resize as f64 * w as f64 / h as f64) as usize, p.resize)
    };
    (nw.max(p.crop), nh.max(p.crop))
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

/// Centre-crops an image already at [`resize_target`] size and writes the normalised
/// `[3, crop, crop]` tensor into `out`.
pub fn crop_normalise(resized: &RgbImage, p: &Preprocess, out: &mut [f32]) {
    let (nw, nh) = (resized.width() as usize, resized.height() as usize);
    let c = p.crop;
    assert!(
        nw >= c && nh >= c && out.len() == 3 * c * c,
        "crop_normalise sizes"
    );
    let top = round_half_even((nh - c) as f64 / 2.0);
    let left = round_half_even((nw - c) as f64 / 2.0);
    // One table per output channel: 256 values instead of a multiply-add per sample.
    let mut lut = [[0f32; 256]; 3];
    for (ch, table) in lut.iter_mut().enumerate() {
        for (v, slot) in table.iter_mut().enumerate() {
            *slot = (v as f32 * p.scale - p.mean[ch]) / p.std[ch];
        }
    }
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
