//! Pairs of images: distances in batches, the spatial map of a pair, an image's raw trunk
//! outputs, and the two steps every computation is made of: the trunk on a batch of images
//! (`featurise`), and the LPIPS kernel on pairs of feature maps (`record_reduce`).

use std::collections::BTreeMap;

use image::RgbImage;

use crate::error::Result;
use crate::gpu::{read_back_f32, storage_buffer, upload, upload_f32};
use crate::kernels::Dispatch;

use super::kernel;
use super::metric::{check_pair, check_size, Lpips};
use super::outputs::{Activation, Distance, Map, Spatial};
use super::trunk::{self, Activations, CHANNELS};

/// `shift` and `scale` of lpips' `ScalingLayer` (R, G, B), applied for version 0.1 only.
const SHIFT: [f32; 3] = [-0.030, -0.088, -0.188];
const SCALE: [f32; 3] = [0.458, 0.448, 0.450];

/// At most this many pairs per trunk batch in [`Lpips::distances`] (two images each); fewer
/// when the memory budget holds fewer images' trunks.
const PAIRS_PER_BATCH: usize = 8;

/// The LPIPS kernel recorded on pairs: its dispatches, and the buffers they write.
pub(crate) struct Reduction {
    pub dispatches: Vec<Dispatch>,
    /// `[pairs, 5]`.
    pub terms: wgpu::Buffer,
    /// `[pairs, h_k * w_k]` per layer, when maps were asked for.
    pub maps: Option<Vec<wgpu::Buffer>>,
    pub pairs: usize,
    /// Kept alive until the dispatches have run.
    _index: wgpu::Buffer,
}

impl Reduction {
    /// The terms of each pair (after the dispatches ran).
    pub fn terms(&self, ctx: &crate::gpu::GpuContext) -> Result<Vec<[f32; 5]>> {
        let flat = read_back_f32(ctx, &self.terms, self.pairs * 5)?;
        Ok(flat
            .chunks_exact(5)
            .map(|c| [c[0], c[1], c[2], c[3], c[4]])
            .collect())
    }
}

impl Lpips {
    /// The distance between two images of the same size.
    pub fn distance(&self, a: &RgbImage, b: &RgbImage) -> Result<f32> {
        Ok(self.compare(a, b)?.distance)
    }

    /// The distance with its per-layer terms.
    pub fn compare(&self, a: &RgbImage, b: &RgbImage) -> Result<Distance> {
        Ok(self.distances(&[(a, b)])?[0])
    }

    /// Many pairs (each pair's two images the same size; pairs may differ). Pairs of one size
    /// share trunk batches of up to 16 images (fewer when the memory budget says so).
    pub fn distances(&self, pairs: &[(&RgbImage, &RgbImage)]) -> Result<Vec<Distance>> {
        let mut out = vec![None; pairs.len()];
        let mut by_size: BTreeMap<(u32, u32), Vec<usize>> = BTreeMap::new();
        for (i, (a, b)) in pairs.iter().enumerate() {
            check_pair(a, b)?;
            by_size.entry(a.dimensions()).or_default().push(i);
        }
        for (&(w, h), group) in &by_size {
            let per_batch =
                (self.images_per_batch(h as usize, w as usize) / 2).clamp(1, PAIRS_PER_BATCH);
            for chunk in group.chunks(per_batch) {
                let images: Vec<&RgbImage> = chunk
                    .iter()
                    .flat_map(|&i| [pairs[i].0, pairs[i].1])
                    .collect();
                let idx: Vec<(usize, usize)> =
                    (0..chunk.len()).map(|j| (2 * j, 2 * j + 1)).collect();
                let (terms, _) = self.run(&images, &idx, false)?;
                for (j, &i) in chunk.iter().enumerate() {
                    out[i] = Some(Distance::from_layers(terms[j]));
                }
            }
        }
        Ok(out
            .into_iter()
            .map(|d| d.expect("every pair computed"))
            .collect())
    }

    /// The spatial map of a pair (lpips' `spatial=True`) with the native per-layer maps.
    pub fn spatial(&self, a: &RgbImage, b: &RgbImage) -> Result<Spatial> {
        check_pair(a, b)?;
        let (terms, maps) = self.run(&[a, b], &[(0, 1)], true)?;
        let layers = maps.expect("maps asked for").remove(0);
        let (w, h) = a.dimensions();
        let mut map = vec![0f32; (w * h) as usize];
        for m in &layers {
            // Summed in layer order, as `val = 0 + res[0] + ...` does with the upsampled maps.
            for (acc, v) in map
                .iter_mut()
                .zip(upsample_bilinear(m, h as usize, w as usize))
            {
                *acc += v;
            }
        }
        Ok(Spatial {
            distance: Distance::from_layers(terms[0]),
            layers,
            map: Map {
                height: h as usize,
                width: w as usize,
                data: map,
            },
        })
    }

    /// The raw trunk outputs (after the input scaling, before normalisation) of one image.
    pub fn activations(&self, image: &RgbImage) -> Result<Vec<Activation>> {
        check_size(image)?;
        let acts = self.featurise(&[image])?;
        crate::kernels::run(&self.ctx, &acts.dispatches)?;
        (0..5)
            .map(|k| {
                let [lh, lw] = acts.sizes[k];
                let shape = [CHANNELS[k], lh, lw];
                let data = read_back_f32(&self.ctx, &acts.relu[k], shape.iter().product())?;
                Ok(Activation { shape, data })
            })
            .collect()
    }

    /// How many `h` x `w` images' trunks fit the memory budget at once (at least 1).
    pub(crate) fn images_per_batch(&self, h: usize, w: usize) -> usize {
        let per_image = trunk::working_floats(h, w).unwrap_or(1) as u64 * 4;
        (self.memory_bytes / per_image).max(1) as usize
    }

    /// `[n, 3, h, w]`: `(u - 127.5) / 127.5` (bit-exact with the package's
    /// `float32(u / 127.5 - 1)`; `u / 127.5 - 1` in f32 is not), then for v0.1 and the baseline
    /// `(x - shift) / scale` per channel, a true f32 division as the package does.
    fn input_tensor(&self, images: &[&RgbImage]) -> Vec<f32> {
        let scale = self.lin.scales_input();
        let mut out = Vec::new();
        for img in images {
            let (w, h) = img.dimensions();
            let plane = (w * h) as usize;
            let start = out.len();
            out.resize(start + 3 * plane, 0.0);
            for (p, px) in img.pixels().enumerate() {
                for c in 0..3 {
                    let x = (px.0[c] as f32 - 127.5) / 127.5;
                    out[start + c * plane + p] = if scale { (x - SHIFT[c]) / SCALE[c] } else { x };
                }
            }
        }
        out
    }

    /// Records the trunk on `images` (same size, checked by the caller) in one batch: the
    /// caller runs `dispatches` (with its own work after them, or alone).
    pub(crate) fn featurise(&self, images: &[&RgbImage]) -> Result<Activations> {
        let (w, h) = images[0].dimensions();
        let input = upload_f32(&self.ctx, "lpips input", &self.input_tensor(images))?;
        let acts = self
            .trunk
            .record(&self.ctx, &input, images.len(), h as usize, w as usize)?;
        self.count_trunk_images(images.len());
        Ok(acts)
    }

    /// Records the LPIPS kernel of every layer on `pairs`: `(a, b)` indexes image a of
    /// `feats_a` and image b of `feats_b` (per layer `[images, C_k, h_k * w_k]`, the same
    /// buffers for pairs within one batch). Maps are written only when asked for: without them
    /// the kernel gets a one-element placeholder, and no `[pairs, hw]` buffer exists.
    pub(crate) fn record_reduce(
        &self,
        sizes: &[[usize; 2]; 5],
        feats_a: &[wgpu::Buffer],
        feats_b: &[wgpu::Buffer],
        pairs: &[(usize, usize)],
        maps: bool,
    ) -> Result<Reduction> {
        let ctx = &self.ctx;
        let np = pairs.len();
        let idx: Vec<u32> = pairs
            .iter()
            .flat_map(|&(a, b)| [a as u32, b as u32])
            .collect();
        let index = upload(ctx, "lpips pairs", &idx)?;
        let hint = "use fewer pairs per call";
        let terms = storage_buffer(ctx, "lpips terms", np * 5, hint)?;
        let kernel = self
            .trunk
            .kernels()
            .get(crate::kernels::shader("lpips.wgsl"), "main");
        let mut map_bufs = Vec::new();
        let placeholder = storage_buffer(ctx, "lpips no maps", 1, hint)?;
        let mut dispatches = Vec::new();
        for (k, &channels) in CHANNELS.iter().enumerate() {
            let [lh, lw] = sizes[k];
            let m = if maps {
                storage_buffer(ctx, "lpips map", np * lh * lw, hint)?
            } else {
                placeholder.clone()
            };
            dispatches.push(kernel::dispatch(
                ctx,
                &kernel,
                np,
                channels,
                lh * lw,
                k,
                5,
                maps,
                [
                    &feats_a[k],
                    &feats_b[k],
                    &index,
                    &self.lin_buffers[k],
                    &m,
                    &terms,
                ],
            )?);
            map_bufs.push(m);
        }
        Ok(Reduction {
            dispatches,
            terms,
            maps: maps.then_some(map_bufs),
            pairs: np,
            _index: index,
        })
    }

    /// Trunk on `images` (same size) in one batch, then the LPIPS kernel per layer for
    /// `pairs` (indices into `images`), all in one submission; reads back the terms and, when
    /// asked, the native maps of each pair.
    #[allow(clippy::type_complexity)]
    fn run(
        &self,
        images: &[&RgbImage],
        pairs: &[(usize, usize)],
        maps: bool,
    ) -> Result<(Vec<[f32; 5]>, Option<Vec<Vec<Map>>>)> {
        let ctx = &self.ctx;
        let mut acts = self.featurise(images)?;
        let mut red = self.record_reduce(&acts.sizes, &acts.relu, &acts.relu, pairs, maps)?;
        let mut dispatches = std::mem::take(&mut acts.dispatches);
        dispatches.append(&mut red.dispatches);
        crate::kernels::run(ctx, &dispatches)?;
        let terms = red.terms(ctx)?;
        let maps = match &red.maps {
            Some(bufs) => {
                let mut per_pair: Vec<Vec<Map>> = vec![Vec::new(); red.pairs];
                for (k, buf) in bufs.iter().enumerate() {
                    let [lh, lw] = acts.sizes[k];
                    let all = read_back_f32(ctx, buf, red.pairs * lh * lw)?;
                    for (p, chunk) in all.chunks_exact(lh * lw).enumerate() {
                        per_pair[p].push(Map {
                            height: lh,
                            width: lw,
                            data: chunk.to_vec(),
                        });
                    }
                }
                Some(per_pair)
            }
            None => None,
        };
        Ok((terms, maps))
    }
}

/// PyTorch's `Upsample(size=(h, w), mode='bilinear', align_corners=False)` of one map, in
/// f32 as torch computes it: per dimension `src = max(0, (dst + 0.5) * in / out - 0.5)`, the
/// two neighbours clamped at the edge.
pub fn upsample_bilinear(m: &Map, h: usize, w: usize) -> Vec<f32> {
    let axis = |inp: usize, out: usize| -> Vec<(usize, usize, f32, f32)> {
        let scale = inp as f32 / out as f32;
        (0..out)
            .map(|d| {
                let src = ((d as f32 + 0.5) * scale - 0.5).max(0.0);
                let i0 = (src.floor() as usize).min(inp - 1);
                let i1 = (i0 + 1).min(inp - 1);
                let l1 = src - i0 as f32;
                (i0, i1, 1.0 - l1, l1)
            })
            .collect()
    };
    let (ys, xs) = (axis(m.height, h), axis(m.width, w));
    let at = |y: usize, x: usize| m.data[y * m.width + x];
    let mut out = Vec::with_capacity(h * w);
    for &(y0, y1, l0y, l1y) in &ys {
        for &(x0, x1, l0x, l1x) in &xs {
            out.push(
                l0y * (l0x * at(y0, x0) + l1x * at(y0, x1))
                    + l1y * (l0x * at(y1, x0) + l1x * at(y1, x1)),
            );
        }
    }
    out
}
