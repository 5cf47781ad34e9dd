//! The feature cache: the frozen backbone runs once per image (per augmented view), and
//! training reads the cached activations.

use std::path::{Path, PathBuf};

use rand::SeedableRng;

use crate::data::stream::{self, PipeTimes};
use crate::data::{
    augment, load_view, prepare_into, prepare_pixels_into, ClassFolders, LoadOptions, Preprocess,
};
use crate::error::{Error, Result};
use crate::model::run::{run_stage, FeatureRows};
use crate::model::{Fill, Network, RunShape};

pub use super::feature_set::FeatureSet;
pub use super::frozen_dense::frozen_fc7;

/// What feature extraction produced, and what it had to skip.
pub struct Extraction {
    /// The cached rows.
    pub set: FeatureSet,
    /// Images that could not be read: (path, reason).
    pub skipped: Vec<crate::error::InputError>,
    /// Wall time.
    pub seconds: f64,
    /// Images read.
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
    dim: usize,
}

impl stream::GpuStage for BlockingStage<'_, '_> {
    type Elem = f32;
    type Pending = Vec<f32>;
    type Out = FeatureRows;
    fn submit(&mut self, input: &[f32], rows: usize) -> Result<Vec<f32>> {
        (self.run)(input, rows)
    }
    fn collect(&mut self, data: Vec<f32>) -> Result<(FeatureRows, std::time::Instant)> {
        let dim = self.dim;
        Ok((FeatureRows { data, dim }, std::time::Instant::now()))
    }
}

/// Records one finished batch in `set` and `skipped`: each good item's label and path once per
/// row (`per_image` rows each), each failed item with its error; `features` are the batch's
/// rows, in item order.
fn absorb_batch(
    set: &mut FeatureSet,
    skipped: &mut Vec<crate::error::InputError>,
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
            Err(e) => skipped.push(e.into_input(path, crate::error::InputErrorKind::Decode)),
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
    let shape = RunShape {
        rows_per_item: per_image,
        ..RunShape::images((batch / per_image).max(1), pre.crop, pre.crop)
    };
    let mut stage = BlockingStage { run, dim };
    run_stage(&mut stage, &data.items, &fill, shape, true, &mut |r| {
        let (path, label) = r.item;
        match r.row {
            Ok(row) => {
                for _ in 0..per_image {
                    set.labels.push(*label);
                    set.paths.push(path.display().to_string());
                }
                set.features.extend_from_slice(row.features);
            }
            Err(e) => skipped.push(e.into_input(path, crate::error::InputErrorKind::Decode)),
        }
        if r.batch_end {
            on_progress(r.index + 1);
        }
        Ok::<(), Error>(())
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
    /// Index of the batch's first item.
    pub first: usize,
    /// The batch's items: (path, class).
    pub items: &'i [(PathBuf, usize)],
    /// Each item's status.
    pub status: Vec<Result<()>>,
    /// The good items' rows.
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
    let fill = |(path, _): &(PathBuf, usize), out: &mut [f32]| -> Result<()> {
        fill_item_rows(path, pre, opts, views, seed, out)
    };
    // Centre crops go as 8-bit pixels, normalised on the GPU (a quarter of the upload);
    // augmented views as f32 rows.
    let fill_pixels = |(path, _): &(PathBuf, usize), out: &mut [u8]| -> Result<()> {
        prepare_pixels_into(path, pre, opts, out).map(|_| ())
    };
    let fill = if views == 0 {
        Fill::Pixels(&fill_pixels, pre)
    } else {
        Fill::Floats(&fill)
    };
    let shape = RunShape {
        rows_per_item: per_image,
        ..RunShape::images((batch / per_image).max(1), pre.crop, pre.crop)
    };
    // The runner hands items back one by one; a batch's go to `emit` together, as soon as its
    // last item is back.
    let mut status = Vec::new();
    let mut features = Vec::new();
    let times = crate::model::run::run(net, items, fill, shape, true, &mut |r| {
        match r.row {
            Ok(row) => {
                debug_assert_eq!(row.features.len(), dim * per_image);
                features.extend_from_slice(row.features);
                status.push(Ok(()));
            }
            Err(e) => status.push(Err(e)),
        }
        if r.batch_end {
            let first = r.index + 1 - status.len();
            emit(PoolBatch {
                first,
                items: &items[first..=r.index],
                status: std::mem::take(&mut status),
                features: &features,
            })?;
            features.clear();
        }
        Ok(())
    })?;
    Ok(times)
}
