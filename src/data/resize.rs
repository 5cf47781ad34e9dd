//! The fast resize: `fast_image_resize`'s SIMD convolution with PIL's antialiased bilinear
//! (triangle) filter, support widened by the scale factor when shrinking, as PIL's
//! `Image.resize(..., BILINEAR)` and torchvision's `Resize` on PIL images do.

use std::cell::RefCell;

use fast_image_resize as fr;
use image::RgbImage;

use crate::error::{Error, Result};

thread_local! {
    // The resizer keeps its scratch buffers between calls (one per decoding thread).
    static RESIZER: RefCell<fr::Resizer> = RefCell::new(fr::Resizer::new());
}

/// Resizes `img` (consumed: its buffer becomes the source) to exactly `w` x `h`.
pub fn resize_triangle(img: RgbImage, w: usize, h: usize) -> Result<RgbImage> {
    if (img.width() as usize, img.height() as usize) == (w, h) {
        return Ok(img);
    }
    let fail = |e: &dyn std::fmt::Display| Error::Invalid(format!("resizing: {e}"));
    let (sw, sh) = (img.width(), img.height());
    let src = fr::images::Image::from_vec_u8(sw, sh, img.into_raw(), fr::PixelType::U8x3)
        .map_err(|e| fail(&e))?;
    let mut dst = fr::images::Image::new(w as u32, h as u32, fr::PixelType::U8x3);
    let opts =
        fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Bilinear));
    RESIZER
        .with(|r| r.borrow_mut().resize(&src, &mut dst, &opts))
        .map_err(|e| fail(&e))?;
    RgbImage::from_raw(w as u32, h as u32, dst.into_vec())
        .ok_or_else(|| Error::Invalid("resizing: output buffer of the wrong size".into()))
}
