//! The feature cache: the frozen backbone runs once per image (per augmented view), and
//! training reads the cached activations.

use std::path::{Path, PathBuf};

use rand::SeedableRng;

use crate::data::stream::{self, NetStage, PipeTimes, Shape};
use crate::data::{augment, load_view, prepare_into, ClassFolders, LoadOptions, Preprocess};
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::model::{Network, Weights};
use crate::weights::{read_strings, read_tensors, write_npz, NpzEntry};

/// Cached activations with their labels: `features` is `[len, dim]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FeatureSet {
    pub features: Vec<f32>,
    pub dim: usize,
    pub labels: Vec<usize>,
    pub paths: Vec<String>,
    pub classes: Vec<String>,
}

impl FeatureSet {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.features[i * self.dim..(i + 1) * self.dim]
    }

    /// Writes `features` `[N, dim]` f32, `labels` `[N]` i64, `paths` and `classes` (strings).
    pub fn save(&self, path: &Path) -> Result<()> {
        let labels: Vec<i64> = self.labels.iter().map(|&l| l as i64).collect();
        let shape = [self.len(), self.dim];
        let lshape = [self.len()];
        write_npz(
            path,
            &[
                ("features".into(), NpzEntry::F32(&shape, &self.features)),
                ("labels".into(), NpzEntry::I64(&lshape, &labels)),
                ("paths".into(), NpzEntry::Str(&self.paths)),
                ("classes".into(), NpzEntry::Str(&self.classes)),
            ],
        )
    }

    /// Reads a file written by [`FeatureSet::save`], or by numpy with only `features` and
    /// `labels`: without `classes` the classes are named `0`..`k-1` (k = the largest label + 1),
    /// without `paths` the rows have none.
    pub fn load(path: &Path) -> Result<FeatureSet> {
        let bad = |m: String| Error::WeightFile {
            path: path.to_path_buf(),
            message: m,
        };
        let classes = read_strings(path, "classes")?;
        let paths = read_strings(path, "paths")?.unwrap_or_default();
        let mut features = None;
        let mut labels = None;
        for t in read_tensors(path)? {
            match t.key.as_str() {
                "features" => features = Some(t),
                "labels" => labels = Some(t),
                _ => {}
            }
        }
        let f = features.ok_or_else(|| bad("no 'features' array".into()))?;
        if f.shape.len() != 2 {
            return Err(bad(format!(
                "'features': expected shape [N, F], found {:?}",
                f.shape
            )));
        }
        let data = f.data.map_err(|e| bad(format!("'features': {e}")))?;
        // Labels are integers: read them directly (read_tensors refuses integer weights).
        let n = f.shape[0];
        let labels: Vec<usize> = match labels {
            Some(_) => read_labels(path)?,
            None => return Err(bad("no 'labels' array".into())),
        };
        if labels.len() != n {
            return Err(bad(format!("{} labels for {n} feature rows", labels.len())));
        }
        let classes = classes.unwrap_or_else(|| {
            let k = labels.iter().max().map_or(0, |&m| m + 1);
            (0..k).map(|c| c.to_string()).collect()
        });
        if let Some(l) = labels.iter().find(|&&l| l >= classes.len()) {
            return Err(bad(format!("label {l} but only {} classes", classes.len())));
        }
        // Two classes of one name could never be told apart by the names the model keeps.
        let mut seen = std::collections::BTreeSet::new();
        if let Some(c) = classes.iter().find(|c| !seen.insert(c.as_str())) {
            return Err(bad(format!(
                "class '{c}' is named more than once in 'classes'"
            )));
        }
        // A NaN or infinite feature turns every loss and weight it touches into NaN.
        let dim = f.shape[1];
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(bad(format!(
                "'features' holds a NaN or infinite value (row {}, column {})",
                i / dim.max(1),
                i % dim.max(1)
            )));
        }
        Ok(FeatureSet {
            features: data,
            dim: f.shape[1],
            labels,
            paths,
            classes,
        })
    }
}

impl FeatureSet {
    /// Fails unless at least two classes have rows: a one-class "classifier" trains to 100%
    /// accuracy and says nothing (class folders are refused the same way, by
    /// [`ClassFolders::scan`]). `path` is the file the set came from, for the message.
    pub fn check_trainable(&self, path: &Path) -> Result<()> {
        let mut rows = vec![0usize; self.classes.len()];
        for &l in &self.labels {
            if let Some(n) = rows.get_mut(l) {
                *n += 1;
            }
        }
        let with_rows: Vec<&str> = self
            .classes
            .iter()
            .zip(&rows)
            .filter(|(_, &n)| n > 0)
            .map(|(c, _)| c.as_str())
            .collect();
        let message = match (with_rows.len(), self.classes.len()) {
            (0, _) => "has no rows".to_string(),
            (1, 1) => format!(
                "has a single class ('{}'); training a classifier needs at least two",
                with_rows[0]
            ),
            (1, k) => format!(
                "has rows of a single class ('{}', of {k} classes); training a classifier needs at least two",
                with_rows[0]
            ),
            _ => return Ok(()),
        };
        Err(Error::WeightFile {
            path: path.to_path_buf(),
            message,
        })
    }
}

fn read_labels(path: &Path) -> Result<Vec<usize>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut npz = npyz::npz::NpzArchive::new(std::io::BufReader::new(file))
        .map_err(|e| Error::io(path, e))?;
    let npy = npz
        .by_name("labels")
        .map_err(|e| Error::io(path, e))?
        .ok_or_else(|| Error::WeightFile {
            path: path.to_path_buf(),
            message: "no 'labels' array".into(),
        })?;
    let v: Vec<i64> = npy.into_vec().map_err(|e| Error::WeightFile {
        path: path.to_path_buf(),
        message: format!("'labels' must be int64: {e}"),
    })?;
    v.into_iter()
        .map(|l| {
            usize::try_from(l).map_err(|_| Error::WeightFile {
                path: path.to_path_buf(),
                message: format!("negative label {l}"),
            })
        })
        .collect()
}

/// What feature extraction produced, and what it had to skip.
pub struct Extraction {
    pub set: FeatureSet,
    /// Images that could not be read: (path, reason).
    pub skipped: Vec<(PathBuf, String)>,
    pub seconds: f64,
    pub images: usize,
}

/// Runs the frozen backbone over `data` and returns the flattened pool5 features: one row per
/// image (centre crop) when `views == 0`, else `views` augmented rows per image.
pub fn extract_pool5(
    net: &mut Network,
    data: &ClassFolders,
    pre: &Preprocess,
    views: usize,
    seed: u64,
    batch: usize,
    on_progress: &dyn Fn(usize),
) -> Result<Extraction> {
    extract_pool5_with(
        net,
        data,
        pre,
        LoadOptions::default(),
        views,
        seed,
        batch,
        on_progress,
    )
}

/// [`extract_pool5`] with the given decoding options (exact path, EXIF orientation).
#[allow(clippy::too_many_arguments)]
pub fn extract_pool5_with(
    net: &mut Network,
    data: &ClassFolders,
    pre: &Preprocess,
    opts: LoadOptions,
    views: usize,
    seed: u64,
    batch: usize,
    on_progress: &dyn Fn(usize),
) -> Result<Extraction> {
    let start = std::time::Instant::now();
    let dim = net
        .feature_len()
        .ok_or_else(|| Error::Invalid("the network has no flatten layer".into()))?;
    let mut set = FeatureSet {
        dim,
        classes: data.classes.clone(),
        ..Default::default()
    };
    let mut skipped = Vec::new();
    let per_image = views.max(1);
    stream_pool5(
        net,
        &data.items,
        pre,
        opts,
        views,
        seed,
        batch,
        &mut |b: PoolBatch| {
            absorb_batch(
                &mut set,
                &mut skipped,
                b.items,
                b.status,
                per_image,
                b.features,
            );
            on_progress(b.first + b.items.len());
            Ok(())
        },
    )?;
    Ok(Extraction {
        set,
        skipped,
        seconds: start.elapsed().as_secs_f64(),
        images: data.items.len(),
    })
}

/// The decode size augmentation crops from: random crops take a quarter of the area or more,
/// so decode at no less than twice the resize target and a crop is not upscaled from a reduced
/// decode.
pub(crate) fn wide_preprocess(pre: &Preprocess) -> Preprocess {
    Preprocess {
        resize: pre.resize * 2,
        crop: pre.crop * 2,
        ..*pre
    }
}

/// The per-image seed of the augmentation generator (a hash of `seed` and the path).
pub(crate) fn augment_seed(path: &Path, seed: u64) -> u64 {
    path.to_string_lossy()
        .bytes()
        .fold(seed, |h, b| h.wrapping_mul(31).wrapping_add(b as u64))
}

/// The rows of one image, written into `out` (`views.max(1)` rows of `3 * crop * crop`): its
/// centre crop when `views == 0`, else `views` augmented crops from a per-image generator (the
/// same views whatever the batching or thread count).
fn fill_item_rows(
    path: &Path,
    pre: &Preprocess,
    opts: LoadOptions,
    views: usize,
    seed: u64,
    out: &mut [f32],
) -> Result<()> {
    if views == 0 {
        prepare_into(path, pre, opts, out)?;
        return Ok(());
    }
    let img = load_view(path, &wide_preprocess(pre), opts)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(augment_seed(path, seed));
    for dst in out.chunks_mut(3 * pre.crop * pre.crop) {
        dst.copy_from_slice(&augment(&img, pre, &mut rng));
    }
    Ok(())
}

/// What [`extract_rows`] runs on each batch: rows of preprocessed images in, `[rows, dim]` out.
pub(crate) type RowRunner<'a> = dyn FnMut(&[f32], usize) -> Result<Vec<f32>> + 'a;

/// A [`RowRunner`] as a pipeline stage: it runs (and waits for) each batch when it is
/// submitted, while the pipeline's decoders go on filling the other host buffer, so decoding
/// still overlaps the GPU work; only the next upload waits.
struct BlockingStage<'r, 'a> {
    run: &'r mut RowRunner<'a>,
}

impl stream::GpuStage for BlockingStage<'_, '_> {
    type Pending = Vec<f32>;
    type Out = Vec<f32>;
    fn submit(&mut self, input: &[f32], rows: usize) -> Result<Vec<f32>> {
        (self.run)(input, rows)
    }
    fn collect(&mut self, out: Vec<f32>) -> Result<(Vec<f32>, std::time::Instant)> {
        Ok((out, std::time::Instant::now()))
    }
}

/// Records one finished batch in `set` and `skipped`: each good item's label and path once per
/// row (`per_image` rows each), each failed item with its error; `features` are the batch's
/// rows, in item order.
fn absorb_batch(
    set: &mut FeatureSet,
    skipped: &mut Vec<(PathBuf, String)>,
    items: &[(PathBuf, usize)],
    status: Vec<Result<()>>,
    per_image: usize,
    features: &[f32],
) {
    for ((path, label), st) in items.iter().zip(status) {
        match st {
            Ok(()) => {
                for _ in 0..per_image {
                    set.labels.push(*label);
                    set.paths.push(path.display().to_string());
                }
            }
            Err(e) => skipped.push((path.clone(), e.to_string())),
        }
    }
    set.features.extend_from_slice(features);
}

/// Decodes `data` (one centre crop per image, or `views` augmented crops) in batches of about
/// `batch` rows through the pipelined loader (decoding on all cores into two host buffers,
/// [`crate::data::stream`]) and keeps what `run` (rows in, `[rows, dim]` out) makes of each
/// batch, in order.
#[allow(clippy::too_many_arguments)]
pub(crate) fn extract_rows(
    data: &ClassFolders,
    pre: &Preprocess,
    opts: LoadOptions,
    views: usize,
    seed: u64,
    batch: usize,
    dim: usize,
    on_progress: &dyn Fn(usize),
    run: &mut RowRunner<'_>,
) -> Result<Extraction> {
    let start = std::time::Instant::now();
    let mut set = FeatureSet {
        dim,
        classes: data.classes.clone(),
        ..Default::default()
    };
    let mut skipped = Vec::new();
    let per_image = views.max(1);
    let fill = |(path, _): &(PathBuf, usize), out: &mut [f32]| -> Result<()> {
        fill_item_rows(path, pre, opts, views, seed, out)
    };
    let shape = Shape {
        batch: (batch / per_image).max(1),
        rows_per_item: per_image,
        row_len: 3 * pre.crop * pre.crop,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let mut stage = BlockingStage { run };
    stream::run(&data.items, shape, &fill, &mut stage, &mut |d| {
        let rows = d.out.as_deref().unwrap_or(&[]);
        absorb_batch(&mut set, &mut skipped, d.items, d.status, per_image, rows);
        on_progress(d.first + d.items.len());
        Ok(())
    })?;
    Ok(Extraction {
        set,
        skipped,
        seconds: start.elapsed().as_secs_f64(),
        images: data.items.len(),
    })
}

/// One batch of [`stream_pool5`]: the items, each one's status (`Ok`: its rows are in
/// `features`, `views.max(1)` each, in order), and the features of the good ones.
pub struct PoolBatch<'i, 'f> {
    pub first: usize,
    pub items: &'i [(PathBuf, usize)],
    pub status: Vec<Result<()>>,
    pub features: &'f [f32],
}

/// Runs the frozen backbone over `items` through the pipelined loader (decoding on all cores
/// overlapping the GPU, [`crate::data::stream`]): one row per image (centre crop) when
/// `views == 0`, else `views` augmented rows per image, about `batch` rows per forward pass.
/// Each batch goes to `emit` in order as soon as it is read back.
#[allow(clippy::too_many_arguments)]
pub fn stream_pool5(
    net: &mut Network,
    items: &[(PathBuf, usize)],
    pre: &Preprocess,
    opts: LoadOptions,
    views: usize,
    seed: u64,
    batch: usize,
    emit: &mut dyn FnMut(PoolBatch) -> Result<()>,
) -> Result<PipeTimes> {
    let dim = net
        .feature_len()
        .ok_or_else(|| Error::Invalid("the network has no flatten layer".into()))?;
    let per_image = views.max(1);
    let row_len = 3 * pre.crop * pre.crop;
    let fill = |(path, _): &(PathBuf, usize), out: &mut [f32]| -> Result<()> {
        fill_item_rows(path, pre, opts, views, seed, out)
    };
    let shape = Shape {
        batch: (batch / per_image).max(1),
        rows_per_item: per_image,
        row_len,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let mut stage = NetStage {
        net,
        h: pre.crop,
        w: pre.crop,
        want_features: true,
    };
    stream::run(items, shape, &fill, &mut stage, &mut |d| {
        let features = match &d.out {
            Some(out) => out
                .features
                .as_deref()
                .ok_or_else(|| Error::Invalid("the network returned no features".into()))?,
            None => &[],
        };
        debug_assert_eq!(features.len() % dim.max(1), 0);
        emit(PoolBatch {
            first: d.first,
            items: d.items,
            status: d.status,
            features,
        })
    })
}

/// The frozen fc6 -> ReLU -> fc7 -> ReLU of `backbone` applied to pool5 rows on the GPU
/// (what the `last` head trains on), by the network's own dense forward.
pub fn frozen_fc7(ctx: &GpuContext, backbone: &Weights, pool5: &FeatureSet) -> Result<FeatureSet> {
    super::frozen::frozen_dense(ctx, backbone, &["fc6", "fc7"], pool5)
}
