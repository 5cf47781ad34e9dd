//! The input pipeline's small API for the command loops: one file to one normalised tensor
//! (fast or exact path), and batches decoded on a pool of threads straight into a reused
//! host buffer.

use std::path::Path;
use std::time::Instant;

use image::imageops::FilterType;
use image::RgbImage;

use super::decode::{decode, LoadOptions};
use super::preprocess::{crop_normalise, crop_pixels, resize_target, Preprocess};
use super::resize::resize_triangle;
use crate::error::Result;

/// Where one image's preprocessing time went (seconds), and the DCT scale it was decoded at.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct StageTimes {
    /// Decoding time.
    pub decode_s: f64,
    /// Resizing time.
    pub resize_s: f64,
    /// Crop time (and, for f32 rows, normalisation time; pixels are normalised on the GPU).
    pub normalise_s: f64,
    /// The DCT scale denominator the image was decoded at.
    pub scale: u32,
}

/// Decodes `path` (oriented unless asked not to), at a reduced DCT scale where the preset's
/// resize allows it: the picture augmentation crops from.
pub fn load_view(path: &Path, pre: &Preprocess, opts: LoadOptions) -> Result<RgbImage> {
    Ok(decode(path, pre, opts)?.image)
}

/// Resizes a decoded image to the preset's resize target, by the path `opts` asks for.
pub fn resize_for(img: RgbImage, pre: &Preprocess, opts: LoadOptions) -> Result<RgbImage> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (nw, nh) = resize_target(w, h, pre);
    if (nw, nh) == (w, h) {
        Ok(img)
    } else if opts.exact {
        Ok(image::imageops::resize(
            &img,
            nw as u32,
            nh as u32,
            FilterType::Triangle,
        ))
    } else {
        resize_triangle(img, nw, nh)
    }
}

/// Decodes, resizes, centre-crops and normalises `path` into `out` (`3 * crop * crop` floats).
pub fn prepare_into(
    path: &Path,
    pre: &Preprocess,
    opts: LoadOptions,
    out: &mut [f32],
) -> Result<StageTimes> {
    prepare_with(path, pre, opts, |img| crop_normalise(img, pre, out))
}

/// Decodes, resizes and centre-crops `path` into `out` as 8-bit pixels (`crop * crop * 3`
/// bytes, [`crop_pixels`]' layout), for the GPU to normalise: what `classify`, `eval`,
/// `features` and the library's `classify`/`embed` decode images into.
pub fn prepare_pixels_into(
    path: &Path,
    pre: &Preprocess,
    opts: LoadOptions,
    out: &mut [u8],
) -> Result<StageTimes> {
    prepare_with(path, pre, opts, |img| crop_pixels(img, pre, out))
}

/// Decodes and resizes `path`, then hands the resized image to `crop` (timed as the
/// normalise stage).
fn prepare_with(
    path: &Path,
    pre: &Preprocess,
    opts: LoadOptions,
    crop: impl FnOnce(&RgbImage),
) -> Result<StageTimes> {
    let t0 = Instant::now();
    let decoded = decode(path, pre, opts)?;
    let t1 = Instant::now();
    let resized = resize_for(decoded.image, pre, opts)?;
    let t2 = Instant::now();
    crop(&resized);
    let t3 = Instant::now();
    Ok(StageTimes {
        decode_s: (t1 - t0).as_secs_f64(),
        resize_s: (t2 - t1).as_secs_f64(),
        normalise_s: (t3 - t2).as_secs_f64(),
        scale: decoded.scale,
    })
}

/// [`prepare_into`] into a new tensor.
pub fn prepare(path: &Path, pre: &Preprocess, opts: LoadOptions) -> Result<Vec<f32>> {
    let mut out = vec![0f32; 3 * pre.crop * pre.crop];
    prepare_into(path, pre, opts, &mut out)?;
    Ok(out)
}

/// Decodes batches of images on `threads` threads (each takes the next image as it finishes
/// one, so a slow file holds up no other) into one reused host buffer.
#[derive(Clone, Debug)]
pub struct Loader {
    /// The preset's preprocessing.
    pub pre: Preprocess,
    /// How files become pixels.
    pub opts: LoadOptions,
    /// Decoding threads.
    pub threads: usize,
}

impl Loader {
    /// A loader on all cores.
    pub fn new(pre: Preprocess, opts: LoadOptions) -> Loader {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Loader { pre, opts, threads }
    }

    /// Values (floats or pixel bytes) per image.
    pub fn item_len(&self) -> usize {
        3 * self.pre.crop * self.pre.crop
    }

    /// Fills `buf` (resized to `paths.len()` items) with the images' tensors, item `i` at
    /// `i * item_len()`; item `i`'s result says how long it took or why it failed (a failed
    /// item's slot is left as it was).
    pub fn load_batch<P: AsRef<Path> + Sync>(
        &self,
        paths: &[P],
        buf: &mut Vec<f32>,
    ) -> Vec<Result<StageTimes>> {
        let fill = |p: &P, out: &mut [f32]| prepare_into(p.as_ref(), &self.pre, self.opts, out);
        super::stream::fill_parallel(paths, self.item_len(), self.threads, buf, &fill)
    }

    /// [`Loader::load_batch`] into cropped 8-bit pixels ([`prepare_pixels_into`], `item_len()`
    /// bytes per image): what `classify` decodes images into.
    pub fn load_pixels_batch<P: AsRef<Path> + Sync>(
        &self,
        paths: &[P],
        buf: &mut Vec<u8>,
    ) -> Vec<Result<StageTimes>> {
        let fill =
            |p: &P, out: &mut [u8]| prepare_pixels_into(p.as_ref(), &self.pre, self.opts, out);
        super::stream::fill_parallel(paths, self.item_len(), self.threads, buf, &fill)
    }
}
