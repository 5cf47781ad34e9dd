//! Where `fit` reads its training rows from: the in-memory cache ([`FeatureSet`]), the same
//! cache spilled to a temporary file when it exceeds the memory budget ([`SpillFile`]), or,
//! for `--train-from convN --augment`, fresh augmentations run through the frozen part at every
//! step ([`FreshViews`]).
//!
//! Each source is a pure function of (epoch, row index): a resumed run reads exactly what the
//! uninterrupted run read, with no generator state to save in the checkpoint.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rand::SeedableRng;

use super::conv_stack::ConvStack;
use super::features::{view_seed, wide_preprocess, FeatureSet};
use crate::data::{augment, load_view, par_map, ClassFolders, LoadOptions, Preprocess};
use crate::error::{Error, Result};
use crate::fsutil::PendingFile;
use crate::gpu::GpuContext;

/// A source of training rows for [`super::fit::fit_rows`].
pub trait TrainRows {
    /// Rows `idx` as seen in epoch `epoch` (0-based), `[idx.len(), dim]`.
    fn rows(&mut self, epoch: usize, idx: &[usize]) -> Result<Vec<f32>>;

    /// What the rows are, for the checkpoint's fingerprint: a run resumed with rows of
    /// another kind (cached views vs fresh draws per epoch, another seed) would silently
    /// follow another trajectory, so it is refused instead.
    fn kind(&self) -> String {
        CACHED.into()
    }

    /// How many rows there are when they are the same every epoch (a cache: they may be
    /// uploaded to the GPU once), `None` when each epoch draws new ones.
    fn fixed_rows(&self) -> Option<usize> {
        None
    }
}

/// [`TrainRows::kind`] of rows that are the same every epoch (in memory or spilled).
pub const CACHED: &str = "cached rows";

/// The in-memory cache: the same rows every epoch.
pub struct Cached<'a>(pub &'a FeatureSet);

impl TrainRows for Cached<'_> {
    fn fixed_rows(&self) -> Option<usize> {
        Some(self.0.len())
    }

    fn rows(&mut self, _epoch: usize, idx: &[usize]) -> Result<Vec<f32>> {
        let set = self.0;
        let mut x = Vec::with_capacity(idx.len() * set.dim);
        for &i in idx {
            x.extend_from_slice(set.row(i));
        }
        Ok(x)
    }
}

/// The frozen part's output on disk: rows of `dim` little-endian f32 in a temporary file in the
/// output's folder. The file is a [`PendingFile`]: removed when this is dropped and by the
/// Ctrl-C handler (`fsutil::abandon_pending_writes`), never renamed into place, so no cache
/// file outlives the run.
pub struct SpillFile {
    file: PendingFile,
    dim: usize,
    rows: usize,
    /// Set when a write failed: the file is incomplete.
    failed: bool,
}

impl SpillFile {
    /// A new, empty cache file in `dir` for rows of `dim` values.
    pub fn new_in(dir: &Path, dim: usize) -> Result<SpillFile> {
        Ok(SpillFile {
            // Keyed "cache": a run removes what killed runs left in the folder (fsutil).
            file: PendingFile::keyed(dir, "cache")?,
            dim,
            rows: 0,
            failed: false,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Rows written.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no row was written.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends `x`, a whole number of rows.
    pub fn append(&mut self, x: &[f32]) -> Result<()> {
        if !x.len().is_multiple_of(self.dim) {
            return Err(Error::Invalid(format!(
                "{} values are not whole rows of {}",
                x.len(),
                self.dim
            )));
        }
        let path = self.file.path().to_path_buf();
        let f = self.file.file_mut();
        let mut w = BufWriter::new(f);
        let r = w.write_all(bytemuck::cast_slice(x)).and_then(|_| w.flush());
        if let Err(e) = r {
            self.failed = true;
            return Err(Error::io(&path, e));
        }
        self.rows += x.len() / self.dim;
        Ok(())
    }
}

impl TrainRows for SpillFile {
    fn fixed_rows(&self) -> Option<usize> {
        Some(self.rows)
    }

    fn rows(&mut self, _epoch: usize, idx: &[usize]) -> Result<Vec<f32>> {
        let path = self.file.path().to_path_buf();
        if self.failed {
            return Err(Error::Invalid(format!(
                "the cache file {} is incomplete (a write failed)",
                path.display()
            )));
        }
        let (dim, rows) = (self.dim, self.rows);
        let f: &mut File = self.file.file_mut();
        let mut x = vec![0f32; idx.len() * dim];
        for (k, &i) in idx.iter().enumerate() {
            if i >= rows {
                return Err(Error::Invalid(format!(
                    "row {i} of a cache of {rows} rows ({})",
                    path.display()
                )));
            }
            let out = bytemuck::cast_slice_mut(&mut x[k * dim..(k + 1) * dim]);
            f.seek(SeekFrom::Start((i * dim * 4) as u64))
                .and_then(|_| f.read_exact(out))
                .map_err(|e| Error::io(&path, e))?;
        }
        Ok(x)
    }
}

/// `--augment` with convolutions training: every step decodes its images, draws a fresh
/// random crop and flip per (image, view, epoch), and runs the frozen part on them. The draw is
/// seeded by (`seed`, image path, view, epoch) alone, so it does not depend on the batching,
/// the thread count or where a run was resumed.
pub struct FreshViews<'a> {
    ctx: &'a GpuContext,
    stack: ConvStack,
    items: Vec<(PathBuf, usize)>,
    views: usize,
    pre: Preprocess,
    opts: LoadOptions,
    seed: u64,
}

impl<'a> FreshViews<'a> {
    /// `stack` is the frozen part (built for at least the training batch); `data` the training
    /// images, each of which must decode (`check_readable` filters them first).
    pub fn new(
        ctx: &'a GpuContext,
        stack: ConvStack,
        data: &ClassFolders,
        views: usize,
        pre: &Preprocess,
        opts: LoadOptions,
        seed: u64,
    ) -> FreshViews<'a> {
        FreshViews {
            ctx,
            stack,
            items: data.items.clone(),
            views: views.max(1),
            pre: *pre,
            opts,
            seed,
        }
    }

    /// The labels (and paths) of the rows, `views` per image, and the row width.
    pub fn labels(&self, classes: &[String]) -> FeatureSet {
        let mut set = FeatureSet {
            dim: self.stack.output_len(),
            classes: classes.to_vec(),
            ..Default::default()
        };
        for (path, label) in &self.items {
            for _ in 0..self.views {
                set.labels.push(*label);
                set.paths.push(path.display().to_string());
            }
        }
        set
    }

    /// The preprocessed (augmented) input rows `idx` of epoch `epoch`, before the frozen part.
    pub fn images(&self, epoch: usize, idx: &[usize]) -> Result<Vec<f32>> {
        let wide = wide_preprocess(&self.pre);
        let views = par_map(idx, |&r| -> Result<Vec<f32>> {
            let (path, _) = self
                .items
                .get(r / self.views)
                .ok_or_else(|| Error::Invalid(format!("row {r} of {} images", self.items.len())))?;
            let img = load_view(path, &wide, self.opts)?;
            // The view's own seed (as in the cache) mixed with the epoch.
            let h = view_seed(path, self.seed, r % self.views)
                ^ ((epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(h);
            Ok(augment(&img, &self.pre, &mut rng))
        });
        let mut x = Vec::with_capacity(idx.len() * self.stack.input_len());
        for v in views {
            x.extend(v?);
        }
        Ok(x)
    }
}

impl TrainRows for FreshViews<'_> {
    fn rows(&mut self, epoch: usize, idx: &[usize]) -> Result<Vec<f32>> {
        let x = self.images(epoch, idx)?;
        self.stack.run(self.ctx, &x, idx.len())
    }

    fn kind(&self) -> String {
        format!(
            "fresh views x{} per epoch, seed {}, {:?}",
            self.views, self.seed, self.pre
        )
    }
}

/// The images of `data` that decode (at the augmentation's size), and the ones that do not
/// with the reason: `--augment` with convolutions training decodes every image at every step,
/// so an unreadable one is set aside once before training, as the cached extraction does.
pub fn check_readable(
    data: &ClassFolders,
    pre: &Preprocess,
    opts: LoadOptions,
) -> (ClassFolders, Vec<crate::error::InputError>) {
    let wide = wide_preprocess(pre);
    let ok = par_map(&data.items, |(p, _)| load_view(p, &wide, opts).map(|_| ()));
    let mut kept = ClassFolders {
        classes: data.classes.clone(),
        items: Vec::new(),
    };
    let mut skipped = Vec::new();
    for (item, r) in data.items.iter().zip(ok) {
        match r {
            Ok(()) => kept.items.push(item.clone()),
            Err(e) => skipped.push(e.into_input(&item.0, crate::error::InputErrorKind::Decode)),
        }
    }
    (kept, skipped)
}
