//! The all-pairs matrix of n images: each image's trunk runs once (n forward passes, not n²),
//! the n(n-1)/2 pairs are reduced on the GPU block by block, and memory stays within the
//! metric's budget however large n is.
//!
//! The images are featurised in trunk batches (decoded one batch at a time through the
//! caller's `load`, never all at once). When every image's five ReLU outputs fit the budget
//! together, each batch's outputs are copied (on the GPU) into blocks as large as a storage
//! binding allows, usually one block for all n, and the pairs within and between blocks are
//! reduced from them ("resident"): few large dispatches, few waits. Otherwise each batch's outputs are read
//! back and appended to a temporary file ([`spill`]), and the pairs are reduced between blocks
//! read back from it, two blocks on the GPU at a time ("spilled"): uploading a block costs far
//! less than running its trunk again. No per-pair map is ever allocated (the kernel's maps
//! are off), so the GPU holds features, pair indices and five terms per pair of a block.
//!
//! The results stream out ([`Lpips::matrix_blocks`]) in bands of whole rows, so the host never
//! holds the n x n matrix either: a band is rows `r0..r1` of the upper triangle (every pair
//! (i, j) with r0 <= i < r1 and i < j < n), sorted by i then j, and bands come in row order, so
//! the concatenated bands are every pair in sorted (i, j) order. A band holds at most
//! [`MatrixPlan::band_pairs`] pairs (but always one whole row), a quarter of the budget on the
//! host. [`Lpips::matrix_of`] collects the bands into a [`Matrix`] for callers that want it.

use std::ops::Range;

use image::RgbImage;

use crate::error::{Error, Result};
use crate::gpu::{storage_buffer, upload_f32};

use super::metric::{check_size, feature_floats, Lpips};
use super::outputs::Distance;
use super::spill::FeatureFile;
use super::trunk::{self, CHANNELS};

/// The most images one trunk batch of the matrix holds. Small images need large batches to
/// fill the convolutions' GEMMs (at 64x64 conv5 has 9 positions per image): 400 images in
/// batches of 16 took 25% more CPU on lavapipe than in one batch; the budget limits large
/// images' batches anyway (10 MB per 256x256 image).
const TRUNK_BATCH: usize = 128;

/// GPU bytes per pair of a reduction: five f32 terms and two u32 image indices.
const PAIR_BYTES: u64 = 28;

/// The most pairs one reduction dispatch takes (28 MiB of terms and indices).
const MAX_PAIRS: usize = 1 << 20;

/// Host bytes per pair of a band ([`PairBlock`]): two indices and a [`Distance`].
const BAND_PAIR_BYTES: u64 = std::mem::size_of::<(usize, usize, Distance)>() as u64;

/// An all-pairs distance matrix, row-major `[n, n]`, exactly symmetric with an exactly zero
/// diagonal; with its per-layer terms (`[n * n]`, the diagonal all zero) when asked for.
/// Its closest pairs and lookups by path: [`Matrix::closest_pairs`], [`Matrix::between`].
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    /// Images (rows and columns).
    pub n: usize,
    /// `n * n` distances, row-major: `values[i * n + j]`.
    pub values: Vec<f32>,
    /// The five per-layer terms of each pair, in the same order, when asked for.
    pub layers: Option<Vec<[f32; 5]>>,
    /// The images' files, `paths[i]` for row i, when the matrix was made from files
    /// ([`Lpips::matrix_files`]); empty for images given in memory.
    pub paths: Vec<std::path::PathBuf>,
}

/// One band of the matrix's pairs, as [`Lpips::matrix_blocks`] hands it on: every pair (i, j)
/// with i in `rows` and i < j < n, sorted by i then j (global image indices), each with its
/// distance and five per-layer terms.
#[derive(Clone, Debug, PartialEq)]
pub struct PairBlock {
    /// The matrix rows `i` whose pairs this band holds.
    pub rows: Range<usize>,
    /// `(i, j, distance)` for every i in `rows`, i < j < n.
    pub pairs: Vec<(usize, usize, Distance)>,
}

/// How far a matrix has got, for a progress display: images featurised, then pairs reduced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatrixProgress {
    /// Images run through the trunk.
    Features {
        /// Done so far.
        done: usize,
        /// In all.
        total: usize,
    },
    /// Pairs reduced.
    Pairs {
        /// Done so far.
        done: usize,
        /// In all (n(n-1)/2).
        total: usize,
    },
}

/// How a matrix of n images of one size keeps to the memory budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatrixPlan {
    /// Images per trunk batch.
    pub trunk_batch: usize,
    /// Whether every image's features stay on the GPU (otherwise: a temporary file).
    pub resident: bool,
    /// Images per block of the pair reduction (a multiple of the trunk batch when resident).
    pub block: usize,
    /// Pairs per reduction dispatch (a block of n images has up to n² pairs).
    pub pairs: usize,
    /// The most pairs of one [`PairBlock`] handed on (a band of rows), unless one row has more.
    pub band_pairs: usize,
}

impl Lpips {
    /// All pairs of `images` (all the same size): each image's trunk runs once, the n(n-1)/2
    /// pairs i < j are reduced on the GPU, and the matrix is filled symmetrically with an
    /// exactly zero diagonal. See [`Lpips::matrix_of`] for images decoded on demand.
    pub fn matrix(&self, images: &[&RgbImage]) -> Result<Matrix> {
        self.matrix_of(images.len(), |i| Ok(images[i].clone()), false, &mut |_| {})
    }

    /// The plan [`Lpips::matrix_of`] follows for `n` images of `h` x `w` under this budget:
    /// resident when the n images' features and at least one image's trunk fit the budget
    /// together (the trunk batch is then what the budget has left), spilled otherwise (trunk
    /// batches within the budget, and reduction blocks of which two fit it). A block's layer
    /// buffer also fits the adapter's storage binding limit.
    pub fn matrix_plan(&self, n: usize, h: usize, w: usize) -> MatrixPlan {
        let budget = self.memory_bytes.max(1);
        let n = n.max(1);
        let feature_bytes = feature_floats(h, w).unwrap_or(1) as u64 * 4;
        let work_bytes = trunk::working_floats(h, w).unwrap_or(1) as u64 * 4;
        let widest_layer = trunk::layer_sizes(h, w)
            .and_then(|s| (0..5).map(|k| CHANNELS[k] * s[k][0] * s[k][1]).max())
            .unwrap_or(1) as u64
            * 4;
        let per_binding = (self.ctx.max_binding() / widest_layer).max(1) as usize;
        let batch_of = |bytes: u64| {
            ((bytes / work_bytes) as usize)
                .clamp(1, TRUNK_BATCH)
                .min(per_binding)
                .min(n)
        };
        // A pair costs 28 bytes (5 f32 terms, 2 u32 indices) on the GPU and more on the host
        // while its results are stored: an eighth of the budget, within the binding limit.
        let pairs = ((budget / 8 / PAIR_BYTES) as usize)
            .min((self.ctx.max_binding() / 20) as usize)
            .clamp(1, MAX_PAIRS);
        // A band of results waits on the host until its rows are complete: a quarter of the
        // budget.
        let band_pairs = ((budget / 4 / BAND_PAIR_BYTES) as usize).max(1);
        let all_features = (n as u64).saturating_mul(feature_bytes);
        if all_features.saturating_add(work_bytes) <= budget {
            let trunk_batch = batch_of(budget - all_features);
            MatrixPlan {
                trunk_batch,
                resident: true,
                // Whole trunk batches, so that a batch is copied into one block.
                block: (per_binding.min(n) / trunk_batch).max(1) * trunk_batch,
                pairs,
                band_pairs,
            }
        } else {
            MatrixPlan {
                trunk_batch: batch_of(budget),
                resident: false,
                // A spilled block is also a band (the rows of block I are reduced against each
                // later block J uploaded once): its rows' pairs fit the band's share, so that
                // no block is uploaded once per band. Smaller blocks upload more (n²/2/block
                // images in all) but keep the host within the budget for any n.
                block: ((budget / 2 / feature_bytes) as usize)
                    .min(band_pairs / (n - 1).max(1))
                    .max(1)
                    .min(per_binding)
                    .min(n),
                pairs,
                band_pairs,
            }
        }
    }

    /// The matrix of `n` images that `load(i)` gives one at a time, collected from
    /// [`Lpips::matrix_blocks`] into n x n values (and the per-layer terms when `per_layer`):
    /// for callers that want the whole matrix in memory (`4 n²` bytes, `24 n²` more with the
    /// terms); stream the blocks instead for large n.
    pub fn matrix_of(
        &self,
        n: usize,
        load: impl FnMut(usize) -> Result<RgbImage>,
        per_layer: bool,
        progress: &mut dyn FnMut(MatrixProgress),
    ) -> Result<Matrix> {
        let mut matrix = Matrix {
            n,
            values: vec![0f32; n * n],
            layers: per_layer.then(|| vec![[0f32; 5]; n * n]),
            paths: Vec::new(),
        };
        self.matrix_blocks(n, load, progress, &mut |block| {
            for &(i, j, d) in &block.pairs {
                matrix.values[i * n + j] = d.distance;
                matrix.values[j * n + i] = d.distance;
                if let Some(l) = &mut matrix.layers {
                    l[i * n + j] = d.layers;
                    l[j * n + i] = d.layers;
                }
            }
            Ok(())
        })?;
        Ok(matrix)
    }

    /// The n(n-1)/2 pairs i < j of the `n` images that `load(i)` gives one at a time (in trunk
    /// batches, so that never more than a batch of decoded images is held), handed to `sink`
    /// band by band as they are read back (see the module: bands of whole rows, in sorted
    /// (i, j) order, each within [`MatrixPlan::band_pairs`]), so that memory stays within the
    /// budget for any n. Reports to `progress` after each trunk batch and each dispatch of
    /// pairs. The first image's size is every image's size (another is refused, naming both).
    /// An error of `sink` stops the matrix and is returned.
    pub fn matrix_blocks(
        &self,
        n: usize,
        mut load: impl FnMut(usize) -> Result<RgbImage>,
        progress: &mut dyn FnMut(MatrixProgress),
        sink: &mut dyn FnMut(&PairBlock) -> Result<()>,
    ) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let first = load(0)?;
        check_size(&first)?;
        if n == 1 {
            return Ok(());
        }
        let (w, h) = first.dimensions();
        let (h, w) = (h as usize, w as usize);
        let plan = self.matrix_plan(n, h, w);
        let sizes = trunk::layer_sizes(h, w).expect("checked above");
        let total_pairs = n * (n - 1) / 2;
        let mut pairs_done = 0;
        let mut first = Some(first);

        // Featurise: each trunk batch's outputs kept on the GPU, or appended to the file.
        let block_layers = |len: usize| -> Result<Vec<wgpu::Buffer>> {
            (0..5)
                .map(|k| {
                    let floats = len * CHANNELS[k] * sizes[k][0] * sizes[k][1];
                    storage_buffer(
                        &self.ctx,
                        "lpips feature block",
                        floats,
                        "use a smaller memory budget",
                    )
                })
                .collect()
        };
        let mut resident: Vec<Vec<wgpu::Buffer>> = Vec::new();
        let mut file = if plan.resident {
            None
        } else {
            Some(FeatureFile::create(
                self.spill_dir.clone(),
                feature_floats(h, w).expect("checked above"),
            )?)
        };
        for start in (0..n).step_by(plan.trunk_batch) {
            let end = (start + plan.trunk_batch).min(n);
            let mut batch = Vec::with_capacity(end - start);
            for i in start..end {
                let img = match first.take() {
                    Some(img) if i == 0 => img,
                    _ => load(i)?,
                };
                if img.dimensions() != (w as u32, h as u32) {
                    let (iw, ih) = img.dimensions();
                    return Err(Error::Invalid(format!(
                        "the images of a matrix must have the same size: image 0 is {w}x{h}, \
                         image {i} is {iw}x{ih}"
                    )));
                }
                batch.push(img);
            }
            let refs: Vec<&RgbImage> = batch.iter().collect();
            let mut acts = self.featurise(&refs)?;
            crate::kernels::run(&self.ctx, &std::mem::take(&mut acts.dispatches))?;
            drop(batch);
            match &mut file {
                None => {
                    let (b, at) = (start / plan.block, start % plan.block);
                    if at == 0 {
                        resident.push(block_layers((n - start).min(plan.block))?);
                    }
                    self.copy_into_block(&acts.relu, &resident[b], &sizes, at, end - start);
                }
                Some(f) => f.append(&self.ctx, &acts.relu, &acts.sizes, end - start)?,
            }
            progress(MatrixProgress::Features {
                done: end,
                total: n,
            });
        }

        // Reduce, band by band: the rows r0..r1 of block I against block I (j > i) and every
        // later block J, collected, put in (i, j) order and handed on.
        let blocks: Vec<(usize, usize)> = (0..n)
            .step_by(plan.block)
            .map(|s| (s, (s + plan.block).min(n)))
            .collect();
        for (bi, &(si, ei)) in blocks.iter().enumerate() {
            let spilled_i = match &mut file {
                Some(f) => Some(self.upload_block(f, si, ei, &sizes)?),
                None => None,
            };
            let feats_i = spilled_i.as_ref().unwrap_or_else(|| &resident[bi]);
            let mut r0 = si;
            while r0 < ei.min(n - 1) {
                let r1 = r0 + (plan.band_pairs / (n - r0 - 1)).clamp(1, ei - r0);
                let mut band = Vec::with_capacity((r0..r1).map(|i| n - i - 1).sum());
                for (bj, &(sj, ej)) in blocks.iter().enumerate().skip(bi) {
                    let spilled_j = match &mut file {
                        Some(f) if bj != bi => Some(self.upload_block(f, sj, ej, &sizes)?),
                        _ => None,
                    };
                    let feats_j = match (&spilled_j, &file) {
                        (Some(b), _) => b,
                        (None, Some(_)) => feats_i,
                        (None, None) => &resident[bj],
                    };
                    let ((a0, a1), mj) = ((r0 - si, r1 - si), ej - sj);
                    let mut pairs: Box<dyn Iterator<Item = (usize, usize)>> = if bi == bj {
                        Box::new((a0..a1).flat_map(move |a| (a + 1..mj).map(move |b| (a, b))))
                    } else {
                        Box::new((a0..a1).flat_map(move |a| (0..mj).map(move |b| (a, b))))
                    };
                    loop {
                        let idx: Vec<(usize, usize)> = pairs.by_ref().take(plan.pairs).collect();
                        if idx.is_empty() {
                            break;
                        }
                        let mut red = self.record_reduce(&sizes, feats_i, feats_j, &idx, false)?;
                        crate::kernels::run(&self.ctx, &std::mem::take(&mut red.dispatches))?;
                        for (&(a, b), terms) in idx.iter().zip(red.terms(&self.ctx)?) {
                            band.push((si + a, sj + b, Distance::from_layers(terms)));
                        }
                        pairs_done += idx.len();
                        progress(MatrixProgress::Pairs {
                            done: pairs_done,
                            total: total_pairs,
                        });
                    }
                }
                // Already sorted when there is one block J; otherwise row i's pairs came
                // block by block.
                band.sort_unstable_by_key(|&(i, j, _)| (i, j));
                sink(&PairBlock {
                    rows: r0..r1,
                    pairs: band,
                })?;
                r0 = r1;
            }
        }
        Ok(())
    }

    /// Copies a trunk batch's five outputs (`count` images) into a block from image `at` on.
    fn copy_into_block(
        &self,
        relu: &[wgpu::Buffer],
        block: &[wgpu::Buffer],
        sizes: &[[usize; 2]; 5],
        at: usize,
        count: usize,
    ) {
        let mut encoder = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("lpips block copy"),
            });
        for k in 0..5 {
            let bytes = (CHANNELS[k] * sizes[k][0] * sizes[k][1] * 4) as u64;
            encoder.copy_buffer_to_buffer(
                &relu[k],
                0,
                &block[k],
                at as u64 * bytes,
                count as u64 * bytes,
            );
        }
        self.ctx.queue.submit([encoder.finish()]);
    }

    /// Images `start..end` of the file as five GPU buffers `[end - start, C_k, h_k * w_k]`.
    fn upload_block(
        &self,
        file: &mut FeatureFile,
        start: usize,
        end: usize,
        sizes: &[[usize; 2]; 5],
    ) -> Result<Vec<wgpu::Buffer>> {
        let layers = file.read_block(start, end, sizes)?;
        layers
            .iter()
            .map(|l| upload_f32(&self.ctx, "lpips feature block", l))
            .collect()
    }
}
