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

/// An all-pairs distance matrix, row-major `[n, n]`, exactly symmetric with an exactly zero
/// diagonal; with its per-layer terms (`[n * n]`, the diagonal all zero) when asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    pub n: usize,
    pub values: Vec<f32>,
    pub layers: Option<Vec<[f32; 5]>>,
}

/// How far a matrix has got, for a progress display: images featurised, then pairs reduced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatrixProgress {
    Features { done: usize, total: usize },
    Pairs { done: usize, total: usize },
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
        let all_features = (n as u64).saturating_mul(feature_bytes);
        if all_features.saturating_add(work_bytes) <= budget {
            let trunk_batch = batch_of(budget - all_features);
            MatrixPlan {
                trunk_batch,
                resident: true,
                // Whole trunk batches, so that a batch is copied into one block.
                block: (per_binding.min(n) / trunk_batch).max(1) * trunk_batch,
                pairs,
            }
        } else {
            MatrixPlan {
                trunk_batch: batch_of(budget),
                resident: false,
                block: ((budget / 2 / feature_bytes) as usize)
                    .max(1)
                    .min(per_binding)
                    .min(n),
                pairs,
            }
        }
    }

    /// The matrix of `n` images that `load(i)` gives one at a time (in trunk batches, so that
    /// never more than a batch of decoded images is held), with the per-layer terms when
    /// `per_layer`, reporting to `progress` after each trunk batch and each block of pairs.
    /// The first image's size is every image's size (another is refused, naming both).
    pub fn matrix_of(
        &self,
        n: usize,
        mut load: impl FnMut(usize) -> Result<RgbImage>,
        per_layer: bool,
        progress: &mut dyn FnMut(MatrixProgress),
    ) -> Result<Matrix> {
        let mut matrix = Matrix {
            n,
            values: vec![0f32; n * n],
            layers: per_layer.then(|| vec![[0f32; 5]; n * n]),
        };
        if n == 0 {
            return Ok(matrix);
        }
        let first = load(0)?;
        check_size(&first)?;
        if n == 1 {
            return Ok(matrix);
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

        // Reduce: the pairs within block I and between I and every later block J.
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
                let (mi, mj) = (ei - si, ej - sj);
                let mut pairs: Box<dyn Iterator<Item = (usize, usize)>> = if bi == bj {
                    Box::new((0..mi).flat_map(move |a| (a + 1..mi).map(move |b| (a, b))))
                } else {
                    Box::new((0..mi).flat_map(move |a| (0..mj).map(move |b| (a, b))))
                };
                loop {
                    let idx: Vec<(usize, usize)> = pairs.by_ref().take(plan.pairs).collect();
                    if idx.is_empty() {
                        break;
                    }
                    let mut red = self.record_reduce(&sizes, feats_i, feats_j, &idx, false)?;
                    crate::kernels::run(&self.ctx, &std::mem::take(&mut red.dispatches))?;
                    for (&(a, b), terms) in idx.iter().zip(red.terms(&self.ctx)?) {
                        let (i, j) = (si + a, sj + b);
                        let d = Distance::from_layers(terms).distance;
                        matrix.values[i * n + j] = d;
                        matrix.values[j * n + i] = d;
                        if let Some(l) = &mut matrix.layers {
                            l[i * n + j] = terms;
                            l[j * n + i] = terms;
                        }
                    }
                    pairs_done += idx.len();
                    progress(MatrixProgress::Pairs {
                        done: pairs_done,
                        total: total_pairs,
                    });
                }
            }
        }
        Ok(matrix)
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
