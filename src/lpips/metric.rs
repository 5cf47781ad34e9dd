//! The metric itself ([`Lpips`]): the trunk and lin weights on the GPU, loaded once, with the
//! memory budget its batched calls keep to and a count of the images its trunk has run on.
//! What it computes lives beside it: pairs and maps in `pairs.rs`, the all-pairs matrix in
//! `matrix.rs`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use image::RgbImage;

use crate::error::{Error, Result};
use crate::gpu::{upload_f32, GpuContext};
use crate::model::params::MappedTensors;
use crate::model::Weights;
use crate::weights::{read_tensors, read_tensors_matching};

use super::lin::Lin;
use super::trunk::{self, CHANNELS, MIN_SIDE};

/// The GPU memory the batched calls keep to unless told otherwise
/// ([`Lpips::with_memory_budget`]): 1 GiB, or the adapter's largest buffer if that is less.
pub const DEFAULT_MEMORY_BYTES: u64 = 1 << 30;

/// The metric: trunk and lin weights on the GPU, loaded once.
///
/// Memory: every call keeps the GPU buffers it allocates (trunk activations of a batch,
/// features kept for the all-pairs matrix, pair results) within [`Lpips::memory_budget`]
/// (default [`DEFAULT_MEMORY_BYTES`], capped by the adapter's largest storage binding per
/// buffer). [`Lpips::matrix`] keeps every image's features on the GPU when they fit the budget;
/// otherwise it writes them once to a temporary file (in [`Lpips::with_spill_dir`], default
/// the system's temporary folder; removed when the call ends, or on SIGINT/SIGTERM by the
/// binary's handler) and uploads them two blocks at a time. Either way each image's trunk runs
/// once ([`Lpips::trunk_images`] counts them).
pub struct Lpips {
    pub(crate) ctx: GpuContext,
    pub(crate) lin: Lin,
    pub(crate) trunk: trunk::Trunk,
    pub(crate) lin_buffers: Vec<wgpu::Buffer>,
    pub(crate) lin_weights: Vec<Vec<f32>>,
    pub(crate) memory_bytes: u64,
    pub(crate) spill_dir: Option<PathBuf>,
    trunk_images: AtomicU64,
}

/// The canonical names of conv1..conv5 in `Weights`.
fn conv_name(l: usize, leaf: &str) -> String {
    format!("conv{}.{leaf}", l + 1)
}

/// Whether a weights file's key can be one of the trunk's (torchvision `features.*`, Caffe
/// `conv1.`..`conv5.`, Keras `conv2d*`): the classifier (most of an AlexNet file) is never read.
fn is_trunk_key(key: &str) -> bool {
    key.starts_with("features.")
        || (1..=5).any(|i| key.starts_with(&format!("conv{i}.")))
        || key.contains("conv2d")
}

impl Lpips {
    /// Loads the trunk from an AlexNet weights file (any format the project reads; only
    /// `features.{0,3,6,8,10}.{weight,bias}` or their Caffe/Keras equivalents are used, the
    /// classifier may be absent) with the built-in lin weights of `lin`. Only the trunk's
    /// tensors are read where the format allows it (`.pth`, `.npz`, `.safetensors`, a folder of
    /// `.npy`; see [`read_tensors_matching`]).
    pub fn load(ctx: &GpuContext, path: impl AsRef<Path>, lin: Lin) -> Result<Self> {
        let path = path.as_ref();
        let mut raw = read_tensors_matching(path, &is_trunk_key)?;
        if raw.is_empty() {
            // No trunk key at all: the full read's key list makes the error say what is there.
            raw = read_tensors(path)?;
        }
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
        // Every run removes the spill files that killed runs left, not only a run that spills.
        super::spill::remove_stale_spills(None);
        Ok(Lpips {
            ctx: ctx.clone(),
            lin,
            trunk: trunk::Trunk::new(ctx, &params)?,
            lin_buffers,
            lin_weights,
            memory_bytes: DEFAULT_MEMORY_BYTES,
            spill_dir: None,
            trunk_images: AtomicU64::new(0),
        })
    }

    /// The GPU memory budget of the batched calls, in bytes (a budget smaller than one image's
    /// trunk still runs one image at a time: the budget bounds batching, it cannot refuse).
    pub fn with_memory_budget(mut self, bytes: u64) -> Self {
        self.memory_bytes = bytes;
        self
    }

    /// Where [`Lpips::matrix`] writes the features that do not fit the budget (default: the
    /// system's temporary folder). The spill files that processes no longer running left there
    /// are removed now, as [`Lpips::load`] does in the system's temporary folder.
    pub fn with_spill_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        super::spill::remove_stale_spills(Some(&dir));
        self.spill_dir = Some(dir);
        self
    }

    /// Refuses an `w` x `h` image whose trunk needs a GPU buffer over the adapter's binding
    /// limit (on lavapipe and WebGPU's 128 MiB, relu1 of a side over about 2900 px), naming the
    /// buffer and both sizes: one image's trunk cannot be split into smaller batches. The
    /// command-line tool checks this from each file's header before decoding it, so one large
    /// pair is that pair's error, not the run's.
    pub fn check_fits(&self, w: u32, h: u32) -> Result<()> {
        let (what, bytes) = largest_trunk_buffer(h as usize, w as usize);
        let limit = self.ctx.max_binding();
        if bytes > limit {
            return Err(Error::Invalid(format!(
                "a {w}x{h} image needs a {} MiB GPU buffer ({what}), over this adapter's {} MiB \
                 binding limit (max_storage_buffer_binding_size); compare smaller or resized \
                 copies",
                bytes.div_ceil(1 << 20),
                limit >> 20
            )));
        }
        Ok(())
    }

    /// [`Lpips::check_fits`] of the image file at `path`, from its header (nothing decoded;
    /// EXIF orientation cannot change what fits: both orientations are checked). The error
    /// names the file. A header that cannot be read passes, for the decoder to report.
    pub fn check_file_fits(&self, path: &Path) -> Result<()> {
        let Ok((w, h)) = image::ImageReader::open(path)
            .and_then(|r| r.with_guessed_format())
            .map_err(|_| ())
            .and_then(|r| r.into_dimensions().map_err(|_| ()))
        else {
            return Ok(());
        };
        self.check_fits(w, h)
            .and_then(|_| self.check_fits(h, w))
            .map_err(|e| {
                Error::input(
                    path.to_path_buf(),
                    crate::error::InputErrorKind::TooLarge,
                    e.to_string(),
                )
            })
    }

    /// The memory budget in bytes ([`Lpips::with_memory_budget`]).
    pub fn memory_budget(&self) -> u64 {
        self.memory_bytes
    }

    /// The lin calibration in use.
    pub fn lin(&self) -> Lin {
        self.lin
    }

    /// The lin weights in use (`[C_k]` per layer; ones for the baseline).
    pub fn lin_weights(&self) -> &[Vec<f32>] {
        &self.lin_weights
    }

    /// How many images the trunk has run on since this `Lpips` was made (a batch of n counts
    /// n): what shows that [`Lpips::matrix`] runs each image's trunk once.
    pub fn trunk_images(&self) -> u64 {
        self.trunk_images.load(Ordering::Relaxed)
    }

    pub(crate) fn count_trunk_images(&self, n: usize) {
        self.trunk_images.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Reads an image file for LPIPS, as the `lpips` package does: decoded as its `cv2.imread`
/// decodes it (libjpeg-turbo's accurate IDCT and fancy upsampling for JPEGs, 16-bit samples'
/// high byte, grey replicated, alpha dropped; see [`crate::data::decode_cv2`]) and turned
/// upright by its EXIF orientation (`data::load_image` leaves it as stored), resized to
/// `size` (`(width, height)`) with the antialiased triangle filter (PIL's bilinear `resize`)
/// when given, and refused with an [`Error::Input`] of kind
/// [`InputErrorKind::TooSmall`](crate::error::InputErrorKind::TooSmall) when a side is under
/// [`MIN_SIDE`]. The two images of a pair, and all images of [`Lpips::matrix`], must have one
/// size.
pub fn load_image(path: impl AsRef<Path>, size: Option<(u32, u32)>) -> Result<RgbImage> {
    let path = path.as_ref();
    if let Some((w, h)) = size {
        // The decoder's own bound, checked before decoding: a resize target may not ask for
        // more than any decoded image may hold.
        let max = crate::data::decode::MAX_PIXELS;
        if w as u64 * h as u64 > max {
            return Err(Error::Invalid(format!(
                "a resize to {w}x{h} is {:.0} MP, over the {:.0} MP limit for images",
                w as f64 * h as f64 / 1e6,
                max as f64 / 1e6
            )));
        }
    }
    let img = crate::data::decode_cv2::load_as_cv2(path)?;
    let img = match size {
        Some((w, h)) => crate::data::resize::resize_triangle(img, w as usize, h as usize)?,
        None => img,
    };
    let (w, h) = img.dimensions();
    if (w.min(h) as usize) < MIN_SIDE {
        return Err(Error::input(
            path.to_path_buf(),
            crate::error::InputErrorKind::TooSmall,
            format!(
                "{w}x{h} is too small: LPIPS's AlexNet trunk needs at least {MIN_SIDE} px per side"
            ),
        ));
    }
    Ok(img)
}

/// Refuses an image with a side under [`MIN_SIDE`] (LPIPS' relu3..5 would be empty).
pub fn check_size(img: &RgbImage) -> Result<()> {
    let (w, h) = img.dimensions();
    if (w.min(h) as usize) < MIN_SIDE {
        return Err(Error::Invalid(format!(
            "a {w}x{h} image is too small for LPIPS: the AlexNet trunk needs at least {MIN_SIDE} px per side"
        )));
    }
    Ok(())
}

pub(crate) fn check_pair(a: &RgbImage, b: &RgbImage) -> Result<()> {
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

/// Floats of one image's five ReLU outputs at `h` x `w`.
pub(crate) fn feature_floats(h: usize, w: usize) -> Option<usize> {
    let sizes = trunk::layer_sizes(h, w)?;
    Some(
        (0..5)
            .map(|k| CHANNELS[k] * sizes[k][0] * sizes[k][1])
            .sum(),
    )
}

/// The largest single buffer of one `h` x `w` image's trunk (batch 1): its input, a ReLU
/// output or a pooled map (the im2col scratch is capped by the kernels themselves), in bytes.
fn largest_trunk_buffer(h: usize, w: usize) -> (&'static str, u64) {
    let Some(sizes) = trunk::layer_sizes(h, w) else {
        return ("input", 3 * h as u64 * w as u64 * 4);
    };
    let hw = |k: usize| (sizes[k][0] * sizes[k][1]) as u64;
    const NAMES: [&str; 5] = ["relu1", "relu2", "relu3", "relu4", "relu5"];
    let mut best = ("input", 3 * h as u64 * w as u64);
    for k in 0..5 {
        let floats = CHANNELS[k] as u64 * hw(k);
        if floats > best.1 {
            best = (NAMES[k], floats);
        }
    }
    for (name, floats) in [("pool1", 64 * hw(1)), ("pool2", 192 * hw(2))] {
        if floats > best.1 {
            best = (name, floats);
        }
    }
    (best.0, best.1 * 4)
}
