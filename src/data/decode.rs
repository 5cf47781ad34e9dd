//! Decoding image files to 8-bit RGB, the way the input pipeline wants them: 8-bit RGB and
//! grey JPEGs go through libjpeg-turbo (`turbojpeg`), and those at least four times the
//! preset's resize target are decoded at a reduced DCT scale (1/2, 1/4 or 1/8, as PIL's
//! `Image.draft()` does, but keeping at least twice the target); the EXIF orientation is
//! applied unless asked not to. What libjpeg-turbo refuses falls back to jpeg-decoder's scaled
//! decode, then to `image`, which also takes every other format and colour type.

use std::io::Cursor;
use std::path::Path;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, RgbImage};

use super::transform::{resize_target, Preprocess};
use crate::error::{Error, InputErrorKind, Result};

/// How files become pixels. The default is the fast path with the orientation applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LoadOptions {
    /// Decode at full resolution and resize with `image`'s triangle filter: the path whose
    /// output the PIL fixtures check (torchvision's `Resize` on a PIL image).
    pub exact: bool,
    /// Leave the pixels as stored, ignoring the EXIF orientation tag (torchvision's
    /// `ImageFolder` does not apply it).
    pub ignore_orientation: bool,
    /// Decode a JPEG that ends before its end-of-image marker (a cut-off download or copy)
    /// as far as its data goes, as PIL does with `ImageFile.LOAD_TRUNCATED_IMAGES`. By
    /// default such a file is an error, as in PIL and torchvision: the decoders would
    /// otherwise fill the missing rows with grey and classify the result confidently.
    pub allow_truncated: bool,
}

/// A decoded image and the DCT scale denominator it was decoded at (1 = full resolution).
pub struct Decoded {
    /// The pixels, upright unless the orientation was ignored.
    pub image: RgbImage,
    /// The DCT scale denominator it was decoded at (1, 2, 4 or 8).
    pub scale: u32,
}

pub(super) fn image_error(path: &Path, kind: InputErrorKind, message: impl ToString) -> Error {
    Error::input(
        path,
        kind,
        format!("cannot read image: {}", message.to_string()),
    )
}

/// PIL's `draft()` rule: the largest of 8, 4, 2 that leaves the image at least as large as
/// the target in both directions (1 when the image is under twice the target).
pub fn reduce_factor(w: usize, h: usize, target_w: usize, target_h: usize) -> u32 {
    let room = (w / target_w.max(1)).min(h / target_h.max(1));
    [8, 4, 2].into_iter().find(|&a| room >= a).unwrap_or(1) as u32
}

/// The most pixels an image may have: PIL's `DecompressionBombError` threshold (twice its
/// `MAX_IMAGE_PIXELS` of 89,478,485), 537 MB as 8-bit RGB. Checked from the header before
/// anything is decoded: `image`'s decoders allocate what the header claims (before this check a
/// JPEG header claiming 65535 x 65535 made `classify --exact-resize` ask for 12.9 GB and abort,
/// and the default path decode a ~400 MB grey picture and classify it).
pub const MAX_PIXELS: u64 = 2 * 89_478_485;

/// Whether a JPEG of `len` bytes can hold `w` x `h` pixels. A Huffman-coded JPEG spends at
/// least about a bit per 8x8 block of each component even on a flat image (the DC code of a
/// baseline block plus its end-of-block, or one DC code per block in a progressive file), i.e.
/// at most ~512 pixels per byte; past 1024 per byte (and a 16 MP floor for tiny files), the
/// header is not describing the file, and decoding it here would allocate what it claims
/// before finding out (a 65535 x 65535 header: ~200 MB even at 1/8 scale). Such files go to
/// `image`, which refuses them within its allocation limit. (Arithmetic-coded JPEGs can go
/// below a bit per block; a flat one that large takes the same general path.)
pub fn plausible_jpeg_size(w: usize, h: usize, len: usize) -> bool {
    w.saturating_mul(h) <= len.saturating_mul(1024).max(16 << 20)
}

/// Refuses a truncated JPEG unless `opts.allow_truncated`. Checked before either decode path
/// because neither reports it reliably: libjpeg-turbo only warns (and a warning is also what
/// sends a file to the fallbacks), jpeg-decoder and zune-jpeg fill the missing blocks with
/// grey and succeed, and the result was classified with confidence.
pub fn check_complete(path: &Path, bytes: &[u8], opts: LoadOptions) -> Result<()> {
    if bytes.starts_with(&[0xFF, 0xD8]) && !opts.allow_truncated && jpeg_is_truncated(bytes) {
        return Err(image_error(
            path,
            InputErrorKind::Truncated,
            format!(
                "the JPEG data ends before its end-of-image marker ({} bytes; a truncated \
                 file?); it can be decoded as far as its data goes when truncated files are \
                 allowed",
                bytes.len()
            ),
        ));
    }
    Ok(())
}

/// Whether a JPEG stream ends before its end-of-image (EOI) marker: its marker segments are
/// walked from SOI, skipping each segment by its length and each scan's entropy-coded data
/// (where 0xFF is always followed by a stuffed 0x00 or a restart marker), so the EOI of an
/// embedded EXIF thumbnail is never mistaken for the file's own. Bytes after EOI are allowed
/// (some cameras append data). One pass over the bytes, no allocation.
pub fn jpeg_is_truncated(bytes: &[u8]) -> bool {
    let len = bytes.len();
    let mut i = 2;
    loop {
        // The next marker: stray bytes between segments are skipped, as libjpeg does (with a
        // warning), then any 0xFF fill bytes.
        match bytes[i.min(len)..].iter().position(|&b| b == 0xFF) {
            Some(p) => i += p,
            None => return true,
        }
        while i < len && bytes[i] == 0xFF {
            i += 1;
        }
        if i >= len {
            return true;
        }
        let marker = bytes[i];
        i += 1;
        match marker {
            0xD9 => return false,
            // Markers without a length: TEM, RSTn, SOI.
            0x01 | 0xD0..=0xD8 => continue,
            _ => {}
        }
        if i + 2 > len {
            return true;
        }
        let seg = u16::from_be_bytes([bytes[i], bytes[i + 1]]) as usize;
        i += seg.max(2);
        if i > len {
            return true;
        }
        if marker == 0xDA {
            // Entropy-coded data up to the next marker that is neither a stuffed zero nor a
            // restart marker.
            loop {
                match bytes[i..].iter().position(|&b| b == 0xFF) {
                    Some(p) => i += p,
                    None => return true,
                }
                match bytes.get(i + 1) {
                    None => return true,
                    Some(0x00 | 0xD0..=0xD7) => i += 2,
                    Some(0xFF) => i += 1,
                    Some(_) => break,
                }
            }
        }
    }
}

fn swaps_axes(o: Orientation) -> bool {
    matches!(
        o,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

/// Reads and decodes `path` for preprocessing with `pre`.
pub fn decode(path: &Path, pre: &Preprocess, opts: LoadOptions) -> Result<Decoded> {
    let bytes = crate::fsutil::read_regular(path)?;
    decode_bytes(path, &bytes, pre, opts)
}

/// [`decode`] of a file's bytes already in memory (`path` only names the file in errors).
pub fn decode_bytes(
    path: &Path,
    bytes: &[u8],
    pre: &Preprocess,
    opts: LoadOptions,
) -> Result<Decoded> {
    check_complete(path, bytes, opts)?;
    let jpeg = bytes.starts_with(&[0xFF, 0xD8]);
    if !opts.exact && jpeg {
        // Anything the fast path does not take (or fails on) goes the general way below,
        // which then reports its own error.
        if let Some(d) = decode_jpeg_fast(bytes, pre, opts) {
            return Ok(d);
        }
    }
    decode_any(path, bytes, opts)
}

/// The fast JPEG path: libjpeg-turbo, at a reduced DCT scale when the image is large enough,
/// with jpeg-decoder's scaled decode as its fallback. `None` when it does not apply (CMYK or
/// 16-bit data, a file neither can read).
fn decode_jpeg_fast(bytes: &[u8], pre: &Preprocess, opts: LoadOptions) -> Option<Decoded> {
    // jpeg-decoder reads the markers up to the first scan (microseconds): size, colour type
    // and the EXIF block, which turbojpeg does not expose.
    let mut dec = jpeg_decoder::Decoder::new(bytes);
    dec.read_info().ok()?;
    let info = dec.info()?;
    let grey = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => false,
        jpeg_decoder::PixelFormat::L8 => true,
        _ => return None,
    };
    let orientation = if opts.ignore_orientation {
        Orientation::NoTransforms
    } else {
        dec.exif_data()
            .and_then(Orientation::from_exif_chunk)
            .unwrap_or(Orientation::NoTransforms)
    };
    let (w, h) = (info.width as usize, info.height as usize);
    if !plausible_jpeg_size(w, h, bytes.len()) {
        // A forged or truncated header: `image` below refuses it within its allocation limit.
        return None;
    }
    let (vw, vh) = if swaps_axes(orientation) {
        (h, w)
    } else {
        (w, h)
    };
    let (tw, th) = resize_target(vw, vh, pre);
    // Decode to at least twice the target, not just the target as PIL's draft() does: the
    // antialiased resize then averages over the reduced IDCT's block structure (measured on
    // 12 MP photos against PIL's exact pipeline: libjpeg-turbo's 1/8, i.e. PIL's draft(), is
    // 0.6 grey levels mean, 1/4 0.23; jpeg-decoder's 1/8 moved logits 2.7 %; see docs/performance.md).
    let a = reduce_factor(vw, vh, 2 * tw, 2 * th);
    let image = match decode_turbo(bytes, a as usize, opts.allow_truncated) {
        Some(image) => image,
        // Full resolution: `image` (zune-jpeg) is faster than jpeg-decoder there.
        None if a == 1 => return None,
        None => decode_jpeg_decoder_scaled(dec, w, h, a as usize, grey)?,
    };
    let image = if orientation == Orientation::NoTransforms {
        image
    } else {
        let mut d = DynamicImage::ImageRgb8(image);
        d.apply_orientation(orientation);
        d.into_rgb8()
    };
    Some(Decoded { image, scale: a })
}

/// libjpeg-turbo's decode at 1/`a` scale (`a` in 1, 2, 4, 8) straight into RGB (grey JPEGs
/// are replicated by libjpeg-turbo's colour converter). Its defaults are PIL's: the accurate
/// integer IDCT and "fancy" (triangle) chroma upsampling. With `allow_truncated`, the
/// "premature end" warning libjpeg-turbo gives on a cut-off file is not a failure: it has
/// decoded what is there and filled the rest, as PIL does with `LOAD_TRUNCATED_IMAGES`.
pub(super) fn decode_turbo(bytes: &[u8], a: usize, allow_truncated: bool) -> Option<RgbImage> {
    let mut d = turbojpeg::Decompressor::new().ok()?;
    let factor = turbojpeg::ScalingFactor::new(1, a);
    d.set_scaling_factor(factor).ok()?;
    let header = d.read_header(bytes).ok()?.scaled(factor);
    let (w, h) = (header.width, header.height);
    let mut pixels = vec![0u8; w.checked_mul(h)?.checked_mul(3)?];
    let out = turbojpeg::Image {
        pixels: &mut pixels[..],
        width: w,
        pitch: w * 3,
        height: h,
        format: turbojpeg::PixelFormat::RGB,
    };
    match d.decompress(bytes, out) {
        Ok(()) => {}
        Err(turbojpeg::Error::TurboJpegError(m))
            if allow_truncated && m.to_ascii_lowercase().contains("premature end") => {}
        Err(_) => return None,
    }
    RgbImage::from_raw(u32::try_from(w).ok()?, u32::try_from(h).ok()?, pixels)
}

/// jpeg-decoder's scaled IDCT, for what libjpeg-turbo refuses.
fn decode_jpeg_decoder_scaled(
    mut dec: jpeg_decoder::Decoder<&[u8]>,
    w: usize,
    h: usize,
    a: usize,
    grey: bool,
) -> Option<RgbImage> {
    dec.scale(w.div_ceil(a) as u16, h.div_ceil(a) as u16).ok()?;
    let pixels = dec.decode().ok()?;
    let info = dec.info()?;
    let rgb = if grey {
        pixels.iter().flat_map(|&v| [v, v, v]).collect()
    } else {
        pixels
    };
    RgbImage::from_raw(info.width as u32, info.height as u32, rgb)
}

/// Any format and colour type `image` supports, at full resolution, into 8-bit RGB (alpha
/// dropped, 16-bit scaled, grey replicated, CMYK converted), after the header's size checks.
pub fn decode_any(path: &Path, bytes: &[u8], opts: LoadOptions) -> Result<Decoded> {
    let mut decoder = checked_decoder(path, bytes)?;
    let orientation = if opts.ignore_orientation {
        Orientation::NoTransforms
    } else {
        decoder.orientation().unwrap_or(Orientation::NoTransforms)
    };
    let mut img =
        DynamicImage::from_decoder(decoder).map_err(|e| image_error(path, decode_kind(&e), e))?;
    img.apply_orientation(orientation);
    Ok(Decoded {
        image: img.into_rgb8(),
        scale: 1,
    })
}

/// `image`'s decoder for `bytes` (the format guessed from the content, else from `path`'s
/// extension), its header read and checked: at most [`MAX_PIXELS`], and a JPEG's size
/// plausible for its bytes ([`plausible_jpeg_size`]). Nothing is decoded yet.
pub(super) fn checked_decoder<'a>(
    path: &Path,
    bytes: &'a [u8],
) -> Result<Box<dyn image::ImageDecoder + 'a>> {
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::read(path, e))?;
    if reader.format().is_none() {
        if let Ok(f) = image::ImageFormat::from_path(path) {
            reader.set_format(f);
        }
    }
    let decoder = reader
        .into_decoder()
        .map_err(|e| image_error(path, decode_kind(&e), e))?;
    let (w, h) = decoder.dimensions();
    let pixels = w as u64 * h as u64;
    if pixels > MAX_PIXELS {
        return Err(image_error(
            path,
            InputErrorKind::TooLarge,
            format!(
                "{w}x{h} is {:.0} megapixels, over the {:.0} this tool decodes (PIL's \
                 decompression-bomb limit)",
                pixels as f64 / 1e6,
                MAX_PIXELS as f64 / 1e6
            ),
        ));
    }
    if bytes.starts_with(&[0xFF, 0xD8]) && !plausible_jpeg_size(w as usize, h as usize, bytes.len())
    {
        return Err(image_error(
            path,
            InputErrorKind::TooLarge,
            format!(
                "its header claims {w}x{h} pixels, more than {} bytes of JPEG data can hold \
                 (a forged or truncated file)",
                bytes.len()
            ),
        ));
    }
    Ok(Box::new(decoder))
}

/// The kind of an `image` decoding error: a format it does not read, a size over its
/// allocation limits, or (anything else) data it cannot decode.
pub(super) fn decode_kind(e: &image::ImageError) -> InputErrorKind {
    match e {
        image::ImageError::Unsupported(_) => InputErrorKind::Unsupported,
        image::ImageError::Limits(_) => InputErrorKind::TooLarge,
        image::ImageError::IoError(_) => InputErrorKind::Unreadable,
        _ => InputErrorKind::Decode,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_sizes_past_the_bits_per_block_bound_are_implausible() {
        // A 12 MP photo of ~1 MB; a flat grey 4000x3000 JPEG (PIL, quality 95: 188,627 bytes,
        // 70,784 with optimised Huffman tables, 71,098 progressive: ~170 pixels per byte).
        assert!(plausible_jpeg_size(4032, 3024, 1 << 20));
        assert!(plausible_jpeg_size(4000, 3000, 70_784));
        // Tiny files: up to 16 MP whatever the size.
        assert!(plausible_jpeg_size(4096, 4096, 200));
        // A forged 65535 x 65535 header on a few hundred bytes, or on 1 MB.
        assert!(!plausible_jpeg_size(65535, 65535, 300));
        assert!(!plausible_jpeg_size(65535, 65535, 1 << 20));
    }

    #[test]
    fn truncated_jpegs_are_told_from_whole_ones() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for name in [
            "assets/images/chelsea.jpg",
            "tests/fixtures/input/exif_rotate90.jpg",
            "tests/fixtures/input/cmyk.jpg",
        ] {
            let whole = std::fs::read(root.join(name)).unwrap();
            assert!(!jpeg_is_truncated(&whole), "{name} whole");
            let mut trailing = whole.clone();
            trailing.extend_from_slice(b"appended by a camera");
            assert!(!jpeg_is_truncated(&trailing), "{name} with trailing bytes");
            for cut in [whole.len() / 3, whole.len() - 2, 3, 100] {
                assert!(jpeg_is_truncated(&whole[..cut]), "{name} cut at {cut}");
            }
        }
    }

    #[test]
    fn reduces_like_pil_draft() {
        // 12 MP phone photo to 341x256: 1/8 leaves 504x378.
        assert_eq!(reduce_factor(4032, 3024, 341, 256), 8);
        assert_eq!(reduce_factor(2000, 1500, 341, 256), 4);
        assert_eq!(reduce_factor(700, 512, 350, 256), 2);
        // Under twice the target in one direction: full resolution.
        assert_eq!(reduce_factor(500, 375, 341, 256), 1);
        assert_eq!(reduce_factor(1000, 400, 640, 256), 1);
    }
}
