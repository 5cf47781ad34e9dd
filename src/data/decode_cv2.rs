//! Decoding image files as OpenCV's `cv2.imread(path)` (`IMREAD_COLOR`) does: how the `lpips`
//! package reads its inputs (`lpips.load_image`), so that `alexnet lpips` scores the pixels
//! the package scores.
//!
//! - JPEG: libjpeg-turbo, the library OpenCV bundles, at full scale with its defaults, which
//!   are OpenCV's: the accurate integer IDCT (`JDCT_ISLOW`; TurboJPEG's `TJPARAM_FASTDCT` off)
//!   and "fancy" (triangle) chroma upsampling (`TJPARAM_FASTUPSAMPLE` off), no DCT scaling;
//!   grey replicated to RGB by libjpeg-turbo's colour converter. What libjpeg-turbo will not
//!   convert to RGB (CMYK, YCCK) goes to `image`, whose CMYK conversion is not OpenCV's.
//! - 16-bit images (PNG, TIFF): the high byte of each sample (`v >> 8`), as libpng's
//!   `png_set_strip_16`, which OpenCV asks for, keeps; `image`'s own reduction rounds
//!   (`(v + 128) / 257`) and differs by one level on about half the values.
//! - Everything else as the input pipeline decodes it (`image`, alpha dropped without
//!   compositing, grey replicated), which is what OpenCV gives for 8-bit files.
//!
//! The EXIF orientation is applied (OpenCV does, unless `IMREAD_IGNORE_ORIENTATION`); the
//! header checks are the input pipeline's ([`super::decode::MAX_PIXELS`], a JPEG's size
//! plausible for its bytes, a truncated JPEG refused). Checked against `cv2.imread` pixels in
//! `tests/fixtures/lpips/decode/` (`scripts/make_lpips_decode_fixtures.py`): equal, bit for bit.

use std::path::Path;

use image::metadata::Orientation;
use image::{ColorType, DynamicImage, ImageDecoder, RgbImage};

use super::decode::{
    check_complete, checked_decoder, decode_kind, decode_turbo, image_error, LoadOptions,
};
use crate::error::Result;

/// Reads `path` (a regular file) and decodes it as `cv2.imread(path)[:, :, ::-1]` does.
pub fn load_as_cv2(path: impl AsRef<Path>) -> Result<RgbImage> {
    let path = path.as_ref();
    let bytes = crate::fsutil::read_regular(path)?;
    decode_as_cv2(path, &bytes)
}

/// [`load_as_cv2`] of a file's bytes already in memory (`path` names the file in errors and
/// gives the format when the content does not).
pub fn decode_as_cv2(path: &Path, bytes: &[u8]) -> Result<RgbImage> {
    let opts = LoadOptions {
        exact: true,
        ignore_orientation: false,
        allow_truncated: false,
    };
    check_complete(path, bytes, opts)?;
    let mut decoder = checked_decoder(path, bytes)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let jpeg = bytes.starts_with(&[0xFF, 0xD8]);
    let sixteen_bit = matches!(
        decoder.color_type(),
        ColorType::L16 | ColorType::La16 | ColorType::Rgb16 | ColorType::Rgba16
    );
    let image = match jpeg.then(|| decode_turbo(bytes, 1, false)).flatten() {
        Some(image) => image,
        None => {
            let img = DynamicImage::from_decoder(decoder)
                .map_err(|e| image_error(path, decode_kind(&e), e))?;
            if sixteen_bit {
                high_bytes(img)
            } else {
                img.into_rgb8()
            }
        }
    };
    let mut img = DynamicImage::ImageRgb8(image);
    img.apply_orientation(orientation);
    Ok(img.into_rgb8())
}

/// A 16-bit image reduced to 8 bits by keeping each sample's high byte (grey replicated,
/// alpha dropped, as `into_rgb16` does losslessly first).
fn high_bytes(img: DynamicImage) -> RgbImage {
    let wide = img.into_rgb16();
    let (w, h) = wide.dimensions();
    let narrow = wide
        .into_raw()
        .into_iter()
        .map(|v| (v >> 8) as u8)
        .collect();
    RgbImage::from_raw(w, h, narrow).expect("same dimensions, same sample count")
}
