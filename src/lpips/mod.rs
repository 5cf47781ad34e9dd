//! LPIPS, the learned perceptual image distance of Zhang et al. (CVPR 2018), as the `lpips`
//! 0.1.4 Python package computes it with `net='alex'`: the five ReLU outputs of the AlexNet
//! `features` trunk, each unit-normalised over channels at every position, squared differences
//! weighted by the learned 1x1 "lin" layer, averaged over space and summed over layers.
//!
//! The trunk runs on the GPU with the project's convolution and pooling kernels
//! ([`trunk`]); the per-pair reduction runs in `lpips.wgsl` ([`kernel`]), so feature maps never
//! come back to the CPU: only the per-layer terms and (small, one channel) native-resolution
//! maps do. Every image's features are computed once per call, however many pairs use it
//! ([`Lpips::matrix`] computes n images' trunks once for n(n-1)/2 pairs).
//!
//! ```no_run
//! use alexnet_wgpu::gpu::{AdapterChoice, GpuContext};
//! use alexnet_wgpu::lpips::{Lin, Lpips};
//! # fn main() -> alexnet_wgpu::Result<()> {
//! let ctx = GpuContext::new(&AdapterChoice::default())?;
//! let lpips = Lpips::load(&ctx, "alexnet.pth".as_ref(), Lin::V0_1)?;
//! let a = alexnet_wgpu::data::load_image("a.png")?;
//! let b = alexnet_wgpu::data::load_image("b.png")?;
//! println!("{}", lpips.distance(&a, &b)?);
//! # Ok(())
//! # }
//! ```

pub mod kernel;
pub mod trunk;

use std::collections::BTreeMap;
use std::path::Path;

use image::RgbImage;

use crate::error::{Error, Result};
use crate::gpu::{read_back_f32, storage_buffer, upload, upload_f32, GpuContext};
use crate::model::params::MappedTensors;
use crate::model::Weights;
use crate::weights::{read_tensors, read_tensors_from_bytes, Format};
pub use trunk::{layer_sizes, CHANNELS, MIN_SIDE};

/// The learned lin weights of the 0.1.4 wheel (BSD-2-Clause, see `assets/lpips/`), built in:
/// 11 kB, and no path to look up at run time.
const LIN_V0_1: &[u8] = include_bytes!("../../assets/lpips/v0.1/alex.pth");
const LIN_V0_0: &[u8] = include_bytes!("../../assets/lpips/v0.0/alex.pth");

/// `shift` and `scale` of lpips' `ScalingLayer` (R, G, B), applied for version 0.1 only.
const SHIFT: [f32; 3] = [-0.030, -0.088, -0.188];
const SCALE: [f32; 3] = [0.458, 0.448, 0.450];

/// Pairs per trunk batch in [`Lpips::distances`] (two images each).
const PAIRS_PER_BATCH: usize = 8;

/// Which calibration of the lin layers (and of the input scaling) to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lin {
    /// `LPIPS(net='alex')`, the default: v0.1 lin weights, input scaling layer.
    #[default]
    V0_1,
    /// `LPIPS(net='alex', version='0.0')`: the original release's lin weights, and no input
    /// scaling (the package keeps that release's missing scaling for reproducibility).
    V0_0,
    /// `LPIPS(net='alex', lpips=False)`, the "baseline": no lin layers, the squared
    /// differences summed (not averaged) over channels; the v0.1 input scaling still applies.
    None,
}

impl Lin {
    /// Whether the input goes through the scaling layer (the package's `version == '0.1'`).
    pub fn scales_input(self) -> bool {
        self != Lin::V0_0
    }

    pub fn name(self) -> &'static str {
        match self {
            Lin::V0_1 => "v0.1",
            Lin::V0_0 => "v0.0",
            Lin::None => "none",
        }
    }

    /// The five lin weight vectors (`[C_k]`): the built-in files, or ones for the baseline.
    pub fn weights(self) -> Result<Vec<Vec<f32>>> {
        let bytes = match self {
            Lin::V0_1 => LIN_V0_1,
            Lin::V0_0 => LIN_V0_0,
            Lin::None => return Ok(CHANNELS.iter().map(|&c| vec![1.0; c]).collect()),
        };
        let path = Path::new(match self {
            Lin::V0_1 => "<built-in lpips v0.1/alex.pth>",
            _ => "<built-in lpips v0.0/alex.pth>",
        });
        let raw = read_tensors_from_bytes(Format::Pth, bytes, path)?;
        (0..5)
            .map(|k| {
                let key = format!("lin{k}.model.1.weight");
                let t = raw.iter().find(|t| t.key == key).ok_or_else(|| {
                    crate::weights::raw::file_err(path, format!("no key '{key}'"))
                })?;
                let want = [1, CHANNELS[k], 1, 1];
                match &t.data {
                    Ok(d) if t.shape == want => Ok(d.clone()),
                    Ok(_) => Err(crate::weights::raw::file_err(
                        path,
                        format!("key '{key}': expected shape {want:?}, found {:?}", t.shape),
                    )),
                    Err(why) => Err(crate::weights::raw::file_err(
                        path,
                        format!("key '{key}': {why}"),
                    )),
                }
            })
            .collect()
    }
}

impl std::str::FromStr for Lin {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "v0.1" | "0.1" => Ok(Lin::V0_1),
            "v0.0" | "0.0" => Ok(Lin::V0_0),
            "none" | "baseline" => Ok(Lin::None),
            _ => Err(format!(
                "unknown LPIPS version {s:?} (expected v0.1, v0.0 or none)"
            )),
        }
    }
}

impl std::fmt::Display for Lin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One pair's result: the distance and its five per-layer terms (the distance is their f32
/// sum in layer order, as the package adds them).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Distance {
    pub distance: f32,
    pub layers: [f32; 5],
}

impl Distance {
    fn from_layers(layers: [f32; 5]) -> Distance {
        // `val = 0 + res[0] + ... + res[4]` in f32, in order.
        let distance = layers.iter().fold(0f32, |acc, &v| acc + v);
        Distance { distance, layers }
    }
}

/// A `[height, width]` map, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Map {
    pub height: usize,
    pub width: usize,
    pub data: Vec<f32>,
}

impl Map {
    pub fn max(&self) -> f32 {
        self.data.iter().copied().fold(f32::NEG_INFINITY, f32::max)
    }
}

/// One pair's result with its maps: the five native-resolution maps `lin_k((n_a - n_b)^2)`
/// (whose means are the terms) and the spatial map, their bilinear upsamplings to the input
/// size summed (lpips' `spatial=True`). The scalar distance comes from the native maps.
#[derive(Clone, Debug)]
pub struct Spatial {
    pub distance: Distance,
    pub layers: Vec<Map>,
    pub map: Map,
}

/// An all-pairs distance matrix, row-major `[n, n]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    pub n: usize,
    pub values: Vec<f32>,
}

/// A raw trunk output (before normalisation): `[channels, height, width]`.
#[derive(Clone, Debug)]
pub struct Activation {
    pub shape: [usize; 3],
    pub data: Vec<f32>,
}

/// The metric: trunk and lin weights on the GPU, loaded once.
pub struct Lpips {
    ctx: GpuContext,
    lin: Lin,
    trunk: trunk::Trunk,
    lin_buffers: Vec<wgpu::Buffer>,
    lin_weights: Vec<Vec<f32>>,
}

/// The canonical names of conv1..conv5 in `Weights`.
fn conv_name(l: usize, leaf: &str) -> String {
    format!("conv{}.{leaf}", l + 1)
}

impl Lpips {
    /// Loads the trunk from an AlexNet weights file (any format the project reads; only
    /// `features.{0,3,6,8,10}.{weight,bias}` or their Caffe/Keras equivalents are used, the
    /// classifier may be absent) with the built-in lin weights of `lin`.
    pub fn load(ctx: &GpuContext, path: &Path, lin: Lin) -> Result<Self> {
        let raw = read_tensors(path)?;
        let mapped = MappedTensors::new(path, &raw)?;
        let mut params = Vec::new();
        let mut problems = Vec::new();
        for (l, &(out_c, in_c, k, _, _)) in trunk::CONVS.iter().enumerate() {
            let mut pair = Vec::new();
            for (leaf, shape) in [("weight", vec![out_c, in_c, k, k]), ("bias", vec![out_c])] {
                let canon = conv_name(l, leaf);
                match mapped.convert(&canon, &shape, None) {
                    Ok(Some(d)) => pair.push(d),
                    Ok(None) => problems.push(format!(
                        "missing key '{}' (expected shape {shape:?})",
                        mapped.scheme.file_key(&canon)
                    )),
                    Err(p) => problems.push(p),
                }
            }
            if let Ok([w, b]) = <[Vec<f32>; 2]>::try_from(pair) {
                params.push((w, b));
            }
        }
        if !problems.is_empty() {
            return Err(Error::WeightMismatch {
                path: path.to_path_buf(),
                arch: "AlexNet features trunk (LPIPS)".into(),
                problems,
            });
        }
        Self::from_params(ctx, params, lin)
    }

    /// As [`Lpips::load`] from validated network weights (torchvision widths required).
    pub fn from_weights(ctx: &GpuContext, weights: &Weights, lin: Lin) -> Result<Self> {
        let mut params = Vec::new();
        let mut problems = Vec::new();
        for (l, &(out_c, in_c, k, _, _)) in trunk::CONVS.iter().enumerate() {
            let (w, b) = (
                weights.tensors.get(&conv_name(l, "weight")),
                weights.tensors.get(&conv_name(l, "bias")),
            );
            match (w, b) {
                (Some(w), Some(b)) if w.len() == out_c * in_c * k * k && b.len() == out_c => {
                    params.push((w.clone(), b.clone()))
                }
                _ => problems.push(format!(
                    "'{}': expected shape [{out_c}, {in_c}, {k}, {k}] with {out_c} biases",
                    weights.scheme.file_key(&conv_name(l, "weight"))
                )),
            }
        }
        if !problems.is_empty() {
            return Err(Error::WeightMismatch {
                path: weights.source.clone(),
                arch: "AlexNet features trunk (LPIPS)".into(),
                problems,
            });
        }
        Self::from_params(ctx, params, lin)
    }

    /// From conv1..conv5 `(weight OIHW, bias)` in memory (shapes as torchvision's AlexNet).
    pub fn from_params(
        ctx: &GpuContext,
        params: Vec<(Vec<f32>, Vec<f32>)>,
        lin: Lin,
    ) -> Result<Self> {
        for (l, (w, b)) in params.iter().enumerate() {
            let (out_c, in_c, k, _, _) = trunk::CONVS[l];
            if w.len() != out_c * in_c * k * k || b.len() != out_c {
                return Err(Error::Invalid(format!(
                    "conv{}: expected a [{out_c}, {in_c}, {k}, {k}] weight and {out_c} biases, got {} and {} values",
                    l + 1,
                    w.len(),
                    b.len()
                )));
            }
        }
        if params.len() != 5 {
            return Err(Error::Invalid(format!(
                "the trunk has 5 convolutions, {} given",
                params.len()
            )));
        }
        let lin_weights = lin.weights()?;
        let lin_buffers = lin_weights
            .iter()
            .map(|w| upload_f32(ctx, "lpips lin", w))
            .collect::<Result<_>>()?;
        Ok(Lpips {
            ctx: ctx.clone(),
            lin,
            trunk: trunk::Trunk::new(ctx, &params)?,
            lin_buffers,
            lin_weights,
        })
    }

    pub fn lin(&self) -> Lin {
        self.lin
    }

    /// The lin weights in use (`[C_k]` per layer; ones for the baseline).
    pub fn lin_weights(&self) -> &[Vec<f32>] {
        &self.lin_weights
    }

    /// The distance between two images of the same size.
    pub fn distance(&self, a: &RgbImage, b: &RgbImage) -> Result<f32> {
        Ok(self.compare(a, b)?.distance)
    }

    /// The distance with its per-layer terms.
    pub fn compare(&self, a: &RgbImage, b: &RgbImage) -> Result<Distance> {
        Ok(self.distances(&[(a, b)])?[0])
    }

    /// Many pairs (each pair's two images the same size; pairs may differ). Pairs of one size
    /// share trunk batches of up to 16 images.
    pub fn distances(&self, pairs: &[(&RgbImage, &RgbImage)]) -> Result<Vec<Distance>> {
        let mut out = vec![None; pairs.len()];
        let mut by_size: BTreeMap<(u32, u32), Vec<usize>> = BTreeMap::new();
        for (i, (a, b)) in pairs.iter().enumerate() {
            check_pair(a, b)?;
            by_size.entry(a.dimensions()).or_default().push(i);
        }
        for group in by_size.values() {
            for chunk in group.chunks(PAIRS_PER_BATCH) {
                let images: Vec<&RgbImage> = chunk
                    .iter()
                    .flat_map(|&i| [pairs[i].0, pairs[i].1])
                    .collect();
                let idx: Vec<(usize, usize)> =
                    (0..chunk.len()).map(|j| (2 * j, 2 * j + 1)).collect();
                let run = self.run(&images, &idx, false)?;
                for (j, &i) in chunk.iter().enumerate() {
                    out[i] = Some(Distance::from_layers(run.terms[j]));
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
        let mut run = self.run(&[a, b], &[(0, 1)], true)?;
        let layers = run.maps.take().expect("maps asked for").remove(0);
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
            distance: Distance::from_layers(run.terms[0]),
            layers,
            map: Map {
                height: h as usize,
                width: w as usize,
                data: map,
            },
        })
    }

    /// All pairs of `images` (all the same size): each image's trunk runs once, the n(n-1)/2
    /// pairs i < j are reduced on the GPU, and the matrix is filled symmetrically with an
    /// exactly zero diagonal.
    pub fn matrix(&self, images: &[&RgbImage]) -> Result<Matrix> {
        let n = images.len();
        if let Some(first) = images.first() {
            for img in images {
                check_pair(first, img)?;
            }
        }
        let idx: Vec<(usize, usize)> = (0..n)
            .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
            .collect();
        let mut values = vec![0f32; n * n];
        if !idx.is_empty() {
            let run = self.run(images, &idx, false)?;
            for (&(i, j), terms) in idx.iter().zip(&run.terms) {
                let d = Distance::from_layers(*terms).distance;
                values[i * n + j] = d;
                values[j * n + i] = d;
            }
        }
        Ok(Matrix { n, values })
    }

    /// The raw trunk outputs (after the input scaling, before normalisation) of one image.
    pub fn activations(&self, image: &RgbImage) -> Result<Vec<Activation>> {
        check_size(image)?;
        let ctx = &self.ctx;
        let (w, h) = image.dimensions();
        let (h, w) = (h as usize, w as usize);
        let input = upload_f32(ctx, "lpips input", &self.input_tensor(&[image]))?;
        let acts = self.trunk.record(ctx, &input, 1, h, w)?;
        crate::kernels::run(ctx, &acts.dispatches)?;
        (0..5)
            .map(|k| {
                let [lh, lw] = acts.sizes[k];
                let shape = [CHANNELS[k], lh, lw];
                let data = read_back_f32(ctx, &acts.relu[k], shape.iter().product())?;
                Ok(Activation { shape, data })
            })
            .collect()
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

    /// Trunk on `images` (same size) in one batch, then the LPIPS kernel per layer for
    /// `pairs` (indices into `images`), all in one submission; reads back the terms and, when
    /// asked, the native maps.
    fn run(&self, images: &[&RgbImage], pairs: &[(usize, usize)], maps: bool) -> Result<Run> {
        let ctx = &self.ctx;
        let (w, h) = images[0].dimensions();
        let (h, w) = (h as usize, w as usize);
        let input = upload_f32(ctx, "lpips input", &self.input_tensor(images))?;
        let acts = self.trunk.record(ctx, &input, images.len(), h, w)?;
        let np = pairs.len();
        let idx: Vec<u32> = pairs
            .iter()
            .flat_map(|&(a, b)| [a as u32, b as u32])
            .collect();
        let idx = upload(ctx, "lpips pairs", &idx)?;
        let hint = "use fewer pairs per call";
        let terms = storage_buffer(ctx, "lpips terms", np * 5, hint)?;
        let kernel = self
            .trunk
            .kernels()
            .get(crate::kernels::shader("lpips.wgsl"), "main");
        let mut map_bufs = Vec::new();
        let mut dispatches = acts.dispatches;
        for (k, &channels) in CHANNELS.iter().enumerate() {
            let [lh, lw] = acts.sizes[k];
            let m = storage_buffer(ctx, "lpips map", np * lh * lw, hint)?;
            dispatches.push(kernel::dispatch(
                ctx,
                &kernel,
                np,
                channels,
                lh * lw,
                k,
                5,
                [&acts.relu[k], &idx, &self.lin_buffers[k], &m, &terms],
            )?);
            map_bufs.push(m);
        }
        crate::kernels::run(ctx, &dispatches)?;
        let flat = read_back_f32(ctx, &terms, np * 5)?;
        let terms = flat
            .chunks_exact(5)
            .map(|c| [c[0], c[1], c[2], c[3], c[4]])
            .collect();
        let maps = if maps {
            let mut per_pair: Vec<Vec<Map>> = vec![Vec::new(); np];
            for (k, buf) in map_bufs.iter().enumerate() {
                let [lh, lw] = acts.sizes[k];
                let all = read_back_f32(ctx, buf, np * lh * lw)?;
                for (p, chunk) in all.chunks_exact(lh * lw).enumerate() {
                    per_pair[p].push(Map {
                        height: lh,
                        width: lw,
                        data: chunk.to_vec(),
                    });
                }
            }
            Some(per_pair)
        } else {
            None
        };
        Ok(Run { terms, maps })
    }
}

struct Run {
    terms: Vec<[f32; 5]>,
    maps: Option<Vec<Vec<Map>>>,
}

/// Refuses an image with a side under [`MIN_SIDE`].
pub fn check_size(img: &RgbImage) -> Result<()> {
    let (w, h) = img.dimensions();
    if (w.min(h) as usize) < MIN_SIDE {
        return Err(Error::Invalid(format!(
            "a {w}x{h} image is too small for LPIPS: the AlexNet trunk needs at least {MIN_SIDE} px per side"
        )));
    }
    Ok(())
}

fn check_pair(a: &RgbImage, b: &RgbImage) -> Result<()> {
    check_size(a)?;
    check_size(b)?;
    if a.dimensions() != b.dimensions() {
        let ((aw, ah), (bw, bh)) = (a.dimensions(), b.dimensions());
        return Err(Error::Invalid(format!(
            "the images of a pair must have the same size: {aw}x{ah} and {bw}x{bh}"
        )));
    }
    Ok(())
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
