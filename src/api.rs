//! The facade: what most programs need, in a few calls, re-exported at the crate root.
//!
//! ```no_run
//! use alexnet_wgpu::AlexNet;
//!
//! # fn main() -> alexnet_wgpu::Result<()> {
//! let net = AlexNet::from_file("alexnet.npz")?; // or AlexNet::pretrained()
//! for c in net.classify(&["cat.jpg", "dog.jpg"], 5)? {
//!     let (label, p) = (&c.top[0].label, c.top[0].prob);
//!     println!("{}: {label} ({:.1} %)", c.path.display(), 100.0 * p);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Loading (`pretrained`, `from_file`, `builder`) picks the best adapter and the preset from
//! the weights' keys; `classify` and `embed` take any list of image files (a folder is not
//! walked: [`images_in`] lists a folder's images, sorted) and run them batched,
//! with decoding on all cores overlapping the GPU, as `alexnet classify` does; `forward` takes a
//! typed [`ImageBatch`]. Preprocessing is the preset's ([`AlexNet::transforms`]), the CLI's
//! default (JPEG DCT-domain downscaling and SIMD resize; `exact_resize` for PIL's path).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::data::{LoadOptions, Preprocess};
use crate::error::{Error, InputError, InputErrorKind, Result};
use crate::fine_tune::{FineTune, Trained};
use crate::gpu::{AdapterChoice, GpuContext};
use crate::kernels::Precision;
use crate::lpips::{Lin, Lpips};
use crate::model::network::Output;
pub use crate::model::Tap;
use crate::model::{Arch, Network, Ran, RunShape, TapLayers, Weights};
use crate::options::RuntimeOptions;

mod similarity;
mod stream;

pub use similarity::Neighbor;
pub use stream::{ClassifyIter, EmbedIter};

/// Every image file below `dir` (recursively, following links), sorted by path: the list
/// `classify`, `embed` and `Lpips` calls take. An empty or missing folder is an error naming it.
pub fn images_in(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    let dir = dir.as_ref();
    if !dir.is_dir() {
        let (kind, message) = if dir.exists() {
            (InputErrorKind::NotAFile, "not a folder")
        } else {
            (InputErrorKind::NotFound, "no such folder")
        };
        return Err(Error::input(dir, kind, message));
    }
    let found = crate::data::inputs::list_images(dir);
    if found.is_empty() {
        return Err(Error::input(
            dir,
            InputErrorKind::Empty,
            "no image files (.jpg, .jpeg, .png, .bmp, .gif, .tif, .tiff, .webp) found",
        ));
    }
    Ok(found)
}

/// One class of a prediction.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Prediction {
    /// The class index (a row of the logits).
    pub class: usize,
    /// The class name (ImageNet's, the model's own, or `class N`).
    pub label: String,
    /// Softmax probability.
    pub prob: f32,
}

/// The best classes of one image, or why it could not be read.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Classification {
    /// The input, as given.
    pub path: PathBuf,
    /// Best first; empty when `error` is set.
    pub top: Vec<Prediction>,
    /// Why the image could not be used: match its [`InputError::kind`] (not found,
    /// unreadable, not an image, truncated, ...); its `Display` names the file. The other
    /// images of the call are classified all the same.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<InputError>,
}

/// Embeddings of a list of images: `rows[i]` for `paths[i]`, all of length `dim`; images that
/// could not be read are left out and listed in `failed`.
#[derive(Clone, Debug, Default)]
pub struct Embeddings {
    /// Floats per image: 9216 for pool5 and 4096 for fc6/fc7 of the full-size presets (less
    /// for reduced-width test networks).
    pub dim: usize,
    /// The images embedded, in input order (the failed ones left out).
    pub paths: Vec<PathBuf>,
    /// `len() x dim` floats, row-major: image `i` is `rows[i * dim..(i + 1) * dim]` ([`Embeddings::row`]).
    pub rows: Vec<f32>,
    /// The images that could not be read, in input order, each with its path, kind and
    /// message.
    pub failed: Vec<InputError>,
}

impl Embeddings {
    /// Images embedded.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Whether no image was embedded.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// The embedding of `paths[i]` (`dim` floats).
    pub fn row(&self, i: usize) -> &[f32] {
        &self.rows[i * self.dim..(i + 1) * self.dim]
    }
}

/// Preprocessed input: `n` images of 3 x `h` x `w` floats, NCHW, normalised as the preset
/// expects (what [`AlexNet::transforms`] produces).
#[derive(Clone, Debug, Default)]
pub struct ImageBatch {
    data: Vec<f32>,
    n: usize,
    h: usize,
    w: usize,
}

impl ImageBatch {
    /// `data` must hold exactly `n * 3 * h * w` floats.
    pub fn new(data: Vec<f32>, n: usize, h: usize, w: usize) -> Result<Self> {
        if data.len() != n * 3 * h * w || n == 0 {
            return Err(Error::Shape(format!(
                "an image batch of {n} x 3 x {h} x {w} needs {} floats, got {}",
                n * 3 * h * w,
                data.len()
            )));
        }
        Ok(ImageBatch { data, n, h, w })
    }

    /// Decodes and preprocesses image files (the first failure is returned, naming the file).
    pub fn from_files<P: AsRef<Path>>(paths: &[P], pre: &Preprocess) -> Result<Self> {
        let mut data = Vec::with_capacity(paths.len() * 3 * pre.crop * pre.crop);
        for p in paths {
            data.extend(crate::data::prepare(
                p.as_ref(),
                pre,
                LoadOptions::default(),
            )?);
        }
        Self::new(data, paths.len(), pre.crop, pre.crop)
    }

    /// Images in the batch.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether the batch holds no image.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// `(h, w)` of every image.
    pub fn size(&self) -> (usize, usize) {
        (self.h, self.w)
    }

    /// The `n * 3 * h * w` floats, NCHW.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }
}

/// How [`AlexNet`] is loaded: every field has the CLI's default.
#[derive(Clone, Debug, Default)]
pub struct AlexNetBuilder {
    weights: Option<PathBuf>,
    arch: Option<Arch>,
    adapter: AdapterChoice,
    options: RuntimeOptions,
    precision: Precision,
    batch: Option<usize>,
    load: LoadOptions,
    tuner_cache: Option<PathBuf>,
}

impl AlexNetBuilder {
    /// The tuner's winners (`tune.json`, written by `alexnet bench --tune`); default: the one in
    /// [`crate::fetch::cache_dir`], as the binary reads it. Missing, corrupt or another
    /// adapter's entries: the heuristics choose.
    pub fn tuner_cache(mut self, path: impl AsRef<Path>) -> Self {
        self.tuner_cache = Some(path.as_ref().to_path_buf());
        self
    }

    /// Weights file (any supported format); default: the cached pre-trained weights
    /// (`alexnet fetch-weights`).
    pub fn weights(mut self, path: impl AsRef<Path>) -> Self {
        self.weights = Some(path.as_ref().to_path_buf());
        self
    }

    /// Network preset; default: inferred from the weights' keys.
    pub fn arch(mut self, arch: Arch) -> Self {
        self.arch = Some(arch);
        self
    }

    /// Adapter whose name contains `name` (case-insensitive); default: the best.
    pub fn adapter(mut self, name: impl Into<String>) -> Self {
        self.adapter.adapter = Some(name.into());
        self
    }

    /// Graphics API: `vulkan`, `metal`, `dx12` or `gl` (comma lists allowed); default: any.
    pub fn backend(mut self, backend: impl Into<String>) -> Self {
        self.adapter.backend = Some(backend.into());
        self
    }

    /// Runtime options: matmul path, limits (`LimitsProfile::WebGpu`), validation, ...
    pub fn options(mut self, options: RuntimeOptions) -> Self {
        self.options = options;
        self
    }

    /// Weight storage (`Precision::F16` halves the memory; f32 accumulation).
    pub fn precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    /// Images per forward pass for `classify`/`embed`; default: 8 on CPU adapters, 64 on GPUs.
    pub fn batch(mut self, batch: usize) -> Self {
        self.batch = Some(batch.max(1));
        self
    }

    /// Image loading (exact PIL-style resize, EXIF orientation).
    pub fn load_options(mut self, load: LoadOptions) -> Self {
        self.load = load;
        self
    }

    /// Loads the weights and opens the device: the network, ready to run.
    pub fn build(self) -> Result<AlexNet> {
        let path = match self.weights {
            Some(p) => p,
            None => crate::fetch::cached_weights()?,
        };
        let weights = Weights::load(&path, self.arch)?;
        let ctx = GpuContext::with_options(&self.adapter, self.options)?;
        let tuner = match self.tuner_cache {
            Some(path) => Ok(path),
            None => crate::fetch::cache_dir().map(|d| d.join(crate::model::tune::FILE)),
        };
        if let Ok(path) = tuner {
            crate::model::tune::load_into(&ctx, &path);
        }
        AlexNet::assemble(
            ctx,
            weights,
            Some(&path),
            None,
            self.precision,
            self.batch,
            self.load,
        )
    }
}

/// AlexNet loaded on a GPU: classify, embed, forward, save; fine-tune and LPIPS from here.
pub struct AlexNet {
    ctx: GpuContext,
    weights: Weights,
    classes: Vec<String>,
    pre: Preprocess,
    batch: usize,
    load: LoadOptions,
    net: Mutex<Network>,
}

/// The preset, adapter, outputs and batch (not the weights).
impl std::fmt::Debug for AlexNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlexNet")
            .field("arch", &self.weights.arch)
            .field("source", &self.weights.source)
            .field("adapter", &self.ctx.info.name)
            .field("classes", &self.classes.len())
            .field("batch", &self.batch)
            .finish()
    }
}

impl AlexNet {
    /// torchvision's pre-trained weights from the cache (`alexnet fetch-weights`; the library
    /// never downloads), on the best adapter.
    pub fn pretrained() -> Result<Self> {
        Self::builder().build()
    }

    /// Any weights file (.npz, .pth, .h5/.keras, .safetensors, .onnx, a folder of .npy), the
    /// preset inferred, on the best adapter.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        Self::builder().weights(path).build()
    }

    /// Every loading choice, each with the CLI's default: weights file, preset, adapter,
    /// backend, [`RuntimeOptions`], precision, batch, image loading. `.build()` loads.
    ///
    /// ```no_run
    /// use alexnet_wgpu::{AlexNet, LimitsProfile, Precision, RuntimeOptions};
    ///
    /// # fn main() -> alexnet_wgpu::Result<()> {
    /// let options = RuntimeOptions {
    ///     limits: LimitsProfile::WebGpu, // only what every WebGPU adapter guarantees
    ///     validate: true,                // wgpu + Vulkan validation; any error fails the call
    ///     ..RuntimeOptions::default()
    /// };
    /// let net = AlexNet::builder()
    ///     .weights("alexnet.npz")
    ///     .backend("vulkan")
    ///     .adapter("llvmpipe")
    ///     .options(options)
    ///     .precision(Precision::F16)
    ///     .batch(16)
    ///     .build()?;
    /// let report = net.selftest(); // every kernel against its CPU reference on this adapter
    /// assert!(report.iter().all(|c| c.ok));
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder() -> AlexNetBuilder {
        AlexNetBuilder::default()
    }

    /// Weights already in memory, on a context of the caller's. Class names come from the
    /// weights' source file when it is a saved model, else ImageNet's for 1000 outputs, else
    /// `class i`: for a model fresh from [`FineTune::fit`] use [`AlexNet::from_trained`], which
    /// keeps its class names.
    pub fn from_weights(ctx: &GpuContext, weights: Weights) -> Result<Self> {
        let source = weights.source.clone();
        Self::assemble(
            ctx.clone(),
            weights,
            Some(&source),
            None,
            Precision::F32,
            None,
            LoadOptions::default(),
        )
    }

    /// The model a fine-tune returned, with its class names, ready to classify (no need to
    /// save and reload it).
    ///
    /// ```no_run
    /// use alexnet_wgpu::{AlexNet, HeadKind};
    ///
    /// # fn main() -> alexnet_wgpu::Result<()> {
    /// let net = AlexNet::from_file("alexnet.npz")?;
    /// let trained = net.fine_tune().train_from(HeadKind::Conv(4)).fit("photos")?;
    /// let mine = AlexNet::from_trained(net.context(), &trained)?;
    /// println!("{:?}", mine.classes()); // the class folders' names
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_trained(ctx: &GpuContext, trained: &Trained) -> Result<Self> {
        Self::assemble(
            ctx.clone(),
            trained.model.clone(),
            None,
            Some(trained.classes.clone()),
            Precision::F32,
            None,
            LoadOptions::default(),
        )
    }

    fn assemble(
        ctx: GpuContext,
        weights: Weights,
        path: Option<&Path>,
        classes: Option<Vec<String>>,
        precision: Precision,
        batch: Option<usize>,
        load: LoadOptions,
    ) -> Result<Self> {
        let net = Network::with_precision(&ctx, &weights, precision)?;
        let given = crate::labels::given(classes.map(crate::labels::GivenNames::listed), path)?;
        let classes = crate::labels::names_for(net.classes, given)?;
        Ok(AlexNet {
            pre: Preprocess::for_arch(weights.arch),
            batch: batch.unwrap_or_else(|| crate::kernels::default_batch(&ctx.info)),
            ctx,
            weights,
            classes,
            load,
            net: Mutex::new(net),
        })
    }

    /// Which kernels each layer runs for `batch` images at the preset's input size:
    /// `(layer, kernels)` in execution order.
    pub fn kernel_plan(&self, batch: usize) -> Result<Vec<(String, Vec<String>)>> {
        let [_, h, w] = self.weights.spec().input;
        let mut net = self.net.lock().unwrap_or_else(|e| e.into_inner());
        net.kernel_plan(batch, h, w)
    }

    /// Class names, in output order.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The preset's preprocessing (resize, crop, mean/std or BGR mean), as torchvision's
    /// `weights.transforms()`.
    pub fn transforms(&self) -> &Preprocess {
        &self.pre
    }

    /// The weights as loaded (host copy): every tensor by canonical name, the preset, the source.
    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    /// The GPU device this network runs on (cheap to clone): hand it to [`Lpips::load`],
    /// [`AlexNet::from_weights`], [`crate::selftest::run`] or lower-level calls to share it.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Checks every kernel and matmul path on this network's adapter against its f64 CPU
    /// reference (what `alexnet selftest` prints): about a hundred checks, 20-40 s on a
    /// software adapter. A check that fails has `ok: false` and says why.
    pub fn selftest(&self) -> Vec<crate::selftest::Check> {
        crate::selftest::run(&self.ctx, &mut |_, _, _| {})
    }

    /// Logits, probabilities and (asked or not) pool5 features of a preprocessed batch.
    pub fn forward(&self, batch: &ImageBatch) -> Result<Output> {
        let mut net = self.net.lock().unwrap_or_else(|e| e.into_inner());
        net.forward(batch.as_slice(), batch.n, batch.h, batch.w, true)
    }

    /// The `top_k` classes of each image, in input order; an image that cannot be read has
    /// its `error` set and the others still run.
    pub fn classify<P: AsRef<Path> + Sync>(
        &self,
        images: &[P],
        top_k: usize,
    ) -> Result<Vec<Classification>> {
        let mut out = Vec::with_capacity(images.len());
        self.run(images, false, &mut |r| {
            let path = r.item.as_ref().to_path_buf();
            out.push(match r.row {
                Ok(row) => Classification {
                    path,
                    top: crate::model::top_k(row.logits, top_k)
                        .into_iter()
                        .map(|c| Prediction {
                            class: c,
                            label: self.classes[c].clone(),
                            prob: row.probs[c],
                        })
                        .collect(),
                    error: None,
                },
                Err(e) => Classification {
                    error: Some(e.into_input(&path, InputErrorKind::Decode)),
                    path,
                    top: Vec::new(),
                },
            });
            Ok(())
        })?;
        Ok(out)
    }

    /// Embeddings of any list of images at `tap` (pool5 on the GPU batch by batch; fc6/fc7
    /// through the frozen dense layers on the GPU).
    pub fn embed<P: AsRef<Path> + Sync>(&self, images: &[P], tap: Tap) -> Result<Embeddings> {
        let mut e = Embeddings::default();
        self.run(images, true, &mut |r| {
            let path = r.item.as_ref().to_path_buf();
            match r.row {
                Ok(row) => {
                    e.dim = row.features.len();
                    e.paths.push(path);
                    e.rows.extend_from_slice(row.features);
                }
                Err(err) => e.failed.push(err.into_input(&path, InputErrorKind::Decode)),
            }
            Ok(())
        })?;
        if tap == Tap::Pool5 || e.is_empty() {
            return Ok(e);
        }
        let mut layers = TapLayers::new(&self.ctx, &self.weights, tap, e.dim)?;
        e.rows = layers.apply(&self.ctx, &e.rows)?.into_owned();
        e.dim = layers.dim();
        Ok(e)
    }

    /// Runs `images` through the network batched and pipelined (the library's one runner,
    /// [`crate::model::run`]), calling `emit` per image in input order.
    fn run<P: AsRef<Path> + Sync>(
        &self,
        images: &[P],
        want_features: bool,
        emit: &mut dyn FnMut(Ran<'_, P>) -> Result<()>,
    ) -> Result<()> {
        let pre = &self.pre;
        let load = self.load;
        // Cropped 8-bit pixels, normalised on the GPU (a quarter of the f32 upload).
        let fill = |p: &P, out: &mut [u8]| -> Result<()> {
            crate::data::prepare_pixels_into(p.as_ref(), pre, load, out).map(|_| ())
        };
        let shape = RunShape::images(self.batch, pre.crop, pre.crop);
        let mut net = self.net.lock().unwrap_or_else(|e| e.into_inner());
        let fill = crate::model::Fill::Pixels(&fill, pre);
        crate::model::run::run(&mut net, images, fill, shape, want_features, emit)?;
        Ok(())
    }

    /// Writes the weights (and class names) in the format of `path`'s extension: `.npz`,
    /// `.safetensors` or `.onnx`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let meta = crate::weights::meta::ModelMeta {
            format: "alexnet-wgpu model".into(),
            version: crate::weights::meta::META_VERSION,
            arch: self.weights.arch.to_string(),
            classes: self.classes.clone(),
            head: None,
            preprocess: serde_json::to_value(self.pre).ok(),
        };
        crate::train::export::save_with_meta(path.as_ref(), &self.weights, &meta)
    }

    /// Transfer learning from this network: a [`FineTune`] builder with the CLI's defaults
    /// (`train-head`), whose `fit(dir)` trains on class folders and returns the model.
    pub fn fine_tune(&self) -> FineTune {
        FineTune::new(&self.ctx, &self.weights)
    }

    /// LPIPS with this network's trunk (torchvision preset) and the `lin` weights.
    pub fn lpips(&self, lin: Lin) -> Result<Lpips> {
        Lpips::from_weights(&self.ctx, &self.weights, lin)
    }
}
