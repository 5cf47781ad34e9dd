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

/// The seed of view `view` of the image at `path`: each view has its own generator, so a view
/// is the same whichever pipeline item makes it (an image's views may be split over several,
/// [`views_per_item`]) and whatever the batching or thread count.
pub(crate) fn view_seed(path: &Path, seed: u64, view: usize) -> u64 {
    augment_seed(path, seed) ^ (view as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

/// Rows per pipeline item for `views` augmented views (0: one centre crop) of `row_len` floats
/// each: all of an image's views when their rows fit `limit` bytes, else the largest divisor
/// of `views` whose rows do (at least 1). A divisor, so every item of every image holds the
/// same number of rows (the pipeline's items are of one size) and no view is made twice or
/// thrown away; 1 GiB holds 1783 views at 224x224, and `--augment 4096` goes in items of 1024,
/// `1000000` in items of 1600. A prime count over the limit goes one view per item: as many
/// rows per forward pass, and each decoding thread decodes an image once for its run of
/// items (`fill_views`).
pub(crate) fn views_per_item(views: usize, row_len: usize, limit: u64) -> usize {
    let views = views.max(1);
    let fits = |n: usize| n as u128 * row_len as u128 * 4 <= limit as u128;
    if fits(views) {
        return views;
    }
    let most = (limit as u128 / (row_len.max(1) as u128 * 4)).max(1) as usize;
    (1..=most.min(views))
        .rev()
        .find(|d| views.is_multiple_of(*d))
        .unwrap_or(1)
}

/// Rows one forward pass of [`extract_rows`] or [`stream_pool5`] holds at most for `batch`
/// rows asked and `views` views of `row_len` floats per image: whole items of
/// [`views_per_item`] rows, at least one.
pub(crate) fn pass_rows(views: usize, batch: usize, row_len: usize) -> usize {
    let per_item = views_per_item(views, row_len, crate::data::host_memory::view_item_limit());
    (batch / per_item).max(1) * per_item
}

/// One pipeline item: `rows` views of image `image` from view `first` (or its centre crop).
struct ViewItem<'i> {
    item: &'i (PathBuf, usize),
    image: usize,
    first: usize,
}

/// The pipeline items of `items` at `views` views each (0: a centre crop), `per_item` rows to
/// an item, image after image and view after view: the rows come out in the same order
/// however the views are split.
fn view_items(items: &[(PathBuf, usize)], views: usize, per_item: usize) -> Vec<ViewItem<'_>> {
    let views = views.max(1);
    items
        .iter()
        .enumerate()
        .flat_map(|(image, item)| {
            (0..views)
                .step_by(per_item)
                .map(move |first| ViewItem { item, image, first })
        })
        .collect()
}

/// Distinguishes runs for the decoding threads' one-image cache.
static RUN_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

thread_local! {
    /// The image this decoding thread decoded last for split views: (run, path, image).
    static LAST_DECODED: std::cell::RefCell<Option<(u64, PathBuf, std::sync::Arc<image::RgbImage>)>> =
        const { std::cell::RefCell::new(None) };
}

/// The rows of one item, written into `out` (`rows` rows of `3 * crop * crop`): the image's
/// centre crop when `views == 0`, else its views `first..first + rows`, each from its own
/// generator ([`view_seed`]). When an image's views are split over several items (`split`),
/// a decoding thread keeps the image it decoded last for the run (`run`), so a run of items of
/// one image decodes it once per thread, not once per item.
#[allow(clippy::too_many_arguments)]
fn fill_views(
    path: &Path,
    pre: &Preprocess,
    opts: LoadOptions,
    views: usize,
    first: usize,
    seed: u64,
    split: Option<u64>,
    out: &mut [f32],
) -> Result<()> {
    if views == 0 {
        prepare_into(path, pre, opts, out)?;
        return Ok(());
    }
    let decode = || load_view(path, &wide_preprocess(pre), opts).map(std::sync::Arc::new);
    let img = match split {
        None => decode()?,
        Some(run) => {
            let hit = LAST_DECODED.with(|c| match &*c.borrow() {
                Some((r, p, img)) if *r == run && p == path => Some(img.clone()),
                _ => None,
            });
            match hit {
                Some(img) => img,
                None => {
                    let img = decode()?;
                    LAST_DECODED
                        .with(|c| *c.borrow_mut() = Some((run, path.to_path_buf(), img.clone())));
                    img
                }
            }
        }
    };
    for (k, dst) in out.chunks_mut(3 * pre.crop * pre.crop).enumerate() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(view_seed(path, seed, first + k));
        dst.copy_from_slice(&augment(&img, pre, &mut rng));
    }
    Ok(())
}

/// The items, their fill and their shape for a run over `items` at `views` views each, about
/// `batch` rows per forward pass.
struct ViewRun<'i> {
    items: Vec<ViewItem<'i>>,
    per_item: usize,
    shape: RunShape,
    split: Option<u64>,
}

impl<'i> ViewRun<'i> {
    fn new(items: &'i [(PathBuf, usize)], pre: &Preprocess, views: usize, batch: usize) -> Self {
        let row = 3 * pre.crop * pre.crop;
        let per_item = views_per_item(views, row, crate::data::host_memory::view_item_limit());
        let split = (per_item < views.max(1))
            .then(|| RUN_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        ViewRun {
            items: view_items(items, views, per_item),
            per_item,
            shape: RunShape {
                rows_per_item: per_item,
                ..RunShape::images((batch / per_item).max(1), pre.crop, pre.crop)
            },
            split,
        }
    }

    /// Whether `it` holds the last views of its image.
    fn ends_image(&self, it: &ViewItem<'_>, views: usize) -> bool {
        it.first + self.per_item >= views.max(1)
    }
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
/// batch, in order. An image's views over [`crate::data::host_memory::view_item_limit`] are
/// made in several items ([`views_per_item`]): the same rows in the same order. Rows are kept
/// item by item (`run` may spill them as they come), so an image that fails is skipped once,
/// and one that stops decoding between its items (changed on disk meanwhile) keeps the views
/// made before.
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
    let vr = ViewRun::new(&data.items, pre, views, batch);
    let fill = |it: &ViewItem<'_>, out: &mut [f32]| -> Result<()> {
        fill_views(&it.item.0, pre, opts, views, it.first, seed, vr.split, out)
    };
    let mut stage = BlockingStage { run, dim };
    let mut failed: Option<usize> = None;
    run_stage(&mut stage, &vr.items, &fill, vr.shape, true, &mut |r| {
        let (path, label) = r.item.item;
        match r.row {
            Ok(row) => {
                for _ in 0..vr.per_item {
                    set.labels.push(*label);
                    set.paths.push(path.display().to_string());
                }
                set.features.extend_from_slice(row.features);
            }
            Err(e) if failed != Some(r.item.image) => {
                failed = Some(r.item.image);
                skipped.push(e.into_input(path, crate::error::InputErrorKind::Decode));
            }
            Err(_) => {}
        }
        if r.batch_end {
            let done = r.item.image + usize::from(vr.ends_image(r.item, views));
            on_progress(done);
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
/// Each batch goes to `emit` in order as soon as it is read back. An image's views over
/// [`crate::data::host_memory::view_item_limit`] are made over several forward passes
/// (`views_per_item`; the same rows): its rows go to `emit` with the batch that ends it, all
/// of them or, when one of its items failed, none.
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
    let vr = ViewRun::new(items, pre, views, batch);
    let fill_floats = |it: &ViewItem<'_>, out: &mut [f32]| -> Result<()> {
        fill_views(&it.item.0, pre, opts, views, it.first, seed, vr.split, out)
    };
    // Centre crops go as 8-bit pixels, normalised on the GPU (a quarter of the upload);
    // augmented views as f32 rows.
    let fill_pixels = |it: &ViewItem<'_>, out: &mut [u8]| -> Result<()> {
        prepare_pixels_into(&it.item.0, pre, opts, out).map(|_| ())
    };
    let fill = if views == 0 {
        Fill::Pixels(&fill_pixels, pre)
    } else {
        Fill::Floats(&fill_floats)
    };
    // The runner hands items back one by one. An image's rows gather in `image` (its error in
    // `image_err`) until its last item; the finished images of a batch go to `emit` together,
    // as soon as the batch's last item is back.
    let (mut status, mut features) = (Vec::new(), Vec::new());
    let (mut image, mut image_err) = (Vec::new(), None);
    let mut first = 0;
    let times = crate::model::run::run(net, &vr.items, fill, vr.shape, true, &mut |r| {
        match r.row {
            Ok(row) => {
                debug_assert_eq!(row.features.len(), dim * vr.per_item);
                if image_err.is_none() {
                    image.extend_from_slice(row.features);
                }
            }
            Err(e) => {
                image_err.get_or_insert(e);
            }
        }
        if vr.ends_image(r.item, views) {
            match image_err.take() {
                None => {
                    features.append(&mut image);
                    status.push(Ok(()));
                }
                Some(e) => {
                    image.clear();
                    status.push(Err(e));
                }
            }
        }
        if r.batch_end && !status.is_empty() {
            let n = status.len();
            emit(PoolBatch {
                first,
                items: &items[first..first + n],
                status: std::mem::take(&mut status),
                features: &features,
            })?;
            features.clear();
            first += n;
        }
        Ok(())
    })?;
    Ok(times)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_split_into_items_of_a_divisor_within_the_limit() {
        let row = 3 * 224 * 224;
        let gib = 1 << 30;
        // Within the limit: all of an image's views in one item (1783 fit 1 GiB).
        assert_eq!(views_per_item(0, row, gib), 1);
        assert_eq!(views_per_item(10, row, gib), 10);
        assert_eq!(views_per_item(1783, row, gib), 1783);
        // Over it: the largest divisor that fits.
        assert_eq!(views_per_item(4096, row, gib), 1024);
        assert_eq!(views_per_item(1_000_000, row, gib), 1600);
        assert_eq!(views_per_item(4099, row, gib), 1, "a prime");
        assert_eq!(views_per_item(usize::MAX, row, 0), 1);
        // Passes hold whole items: the batch's rows, or one item when it is larger.
        assert_eq!(pass_rows(4, 16, row), 16);
        assert_eq!(pass_rows(10, 16, row), 10);
        assert_eq!(pass_rows(4096, 16, row), 1024);
        let items = [(PathBuf::from("a"), 0), (PathBuf::from("b"), 1)];
        let v = view_items(&items, 6, 2);
        let got: Vec<_> = v.iter().map(|i| (i.image, i.first)).collect();
        assert_eq!(got, [(0, 0), (0, 2), (0, 4), (1, 0), (1, 2), (1, 4)]);
    }
}
