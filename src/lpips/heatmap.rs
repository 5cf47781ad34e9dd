//! A [`Map`] as a PNG heatmap: each value placed in the map's range (or a range the caller
//! gives, to compare several maps on one scale) and coloured by the perceptually uniform
//! magma colormap (`colorous`: matplotlib's, black for the smallest value through purple and
//! orange to light yellow for the largest). The range goes into the PNG as tEXt chunks
//! (`lpips.min`, `lpips.max`, and a `Description` that says it in words), so the picture
//! never loses its scale.

use std::path::Path;

use crate::error::{Error, Result};

use super::outputs::Map;

/// A rendered heatmap: `width x height` RGB pixels (row-major, 3 bytes each) and the value
/// range its colours span (`min` is the colormap's first colour, `max` its last).
#[derive(Clone, Debug, PartialEq)]
pub struct Heatmap {
    /// Pixels per row (the map's width).
    pub width: usize,
    /// Rows (the map's height).
    pub height: usize,
    /// `width * height * 3` bytes: R, G, B of each pixel, row after row.
    pub rgb: Vec<u8>,
    /// The value drawn in the colormap's first colour (black); anything below it too.
    pub min: f32,
    /// The value drawn in the colormap's last colour (light yellow); anything above it too.
    pub max: f32,
}

/// The smallest and largest finite values of `data`; `(0, 0)` when there are none.
fn finite_range(data: &[f32]) -> (f32, f32) {
    let (lo, hi) = data
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        (0.0, 0.0)
    } else {
        (lo, hi)
    }
}

/// Colours `map` by magma over `range` (`(min, max)`; default: the map's own smallest and
/// largest finite values). Values outside the range take its end colours; a range of one
/// value (a constant map) and values that are not finite take the first colour.
pub fn render_heatmap(map: &Map, range: Option<(f32, f32)>) -> Heatmap {
    let (min, max) = range.unwrap_or_else(|| finite_range(&map.data));
    let span = max as f64 - min as f64;
    let mut rgb = Vec::with_capacity(map.data.len() * 3);
    for &v in &map.data {
        let t = if v.is_finite() && span > 0.0 {
            ((v as f64 - min as f64) / span).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let c = colorous::MAGMA.eval_continuous(t);
        rgb.extend_from_slice(&[c.r, c.g, c.b]);
    }
    Heatmap {
        width: map.width,
        height: map.height,
        rgb,
        min,
        max,
    }
}

impl Heatmap {
    /// The PNG file's bytes: 8-bit RGB with the range in tEXt chunks.
    pub fn to_png(&self) -> Result<Vec<u8>> {
        let bad = |e: png::EncodingError| Error::Invalid(format!("encoding a heatmap PNG: {e}"));
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, self.width as u32, self.height as u32);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let text = [
                ("lpips.min", format!("{}", self.min)),
                ("lpips.max", format!("{}", self.max)),
                (
                    "Description",
                    format!(
                        "LPIPS spatial distance map, magma colormap: black = {}, light yellow \
                         = {}",
                        self.min, self.max
                    ),
                ),
                (
                    "Software",
                    format!("alexnet-wgpu {}", env!("CARGO_PKG_VERSION")),
                ),
            ];
            for (key, value) in text {
                enc.add_text_chunk(key.into(), value).map_err(bad)?;
            }
            let mut w = enc.write_header().map_err(bad)?;
            w.write_image_data(&self.rgb).map_err(bad)?;
            w.finish().map_err(bad)?;
        }
        Ok(out)
    }

    /// Writes [`Heatmap::to_png`] to `path` (atomically: a temporary file renamed over it).
    pub fn write_png(&self, path: impl AsRef<Path>) -> Result<()> {
        let bytes = self.to_png()?;
        crate::fsutil::write_atomic(path.as_ref(), |f| std::io::Write::write_all(f, &bytes))
    }
}

/// Renders `map` over its own range ([`render_heatmap`]) and writes it to `path` as a PNG
/// ([`Heatmap::write_png`]); returns the heatmap (its range: `min`, `max`).
///
/// ```no_run
/// use alexnet_wgpu::gpu::{AdapterChoice, GpuContext};
/// use alexnet_wgpu::lpips::{load_image, write_heatmap, Lin, Lpips};
/// # fn main() -> alexnet_wgpu::Result<()> {
/// let ctx = GpuContext::new(&AdapterChoice::default())?;
/// let lpips = Lpips::load(&ctx, "alexnet.pth", Lin::V0_1)?;
/// let s = lpips.spatial(&load_image("a.png", None)?, &load_image("b.png", None)?)?;
/// let h = write_heatmap(&s.map, "a-b.png")?;
/// println!("distance {}; map from {} to {}", s.distance.distance, h.min, h.max);
/// # Ok(())
/// # }
/// ```
pub fn write_heatmap(map: &Map, path: impl AsRef<Path>) -> Result<Heatmap> {
    let h = render_heatmap(map, None);
    h.write_png(path)?;
    Ok(h)
}
