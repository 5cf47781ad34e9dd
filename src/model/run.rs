//! The one image-to-network runner: items are decoded on all cores (`fill`) and run through
//! the network batch by batch with decoding, upload and GPU work overlapped
//! (`data::stream::run` with the network as its GPU stage), and each item comes back, in input
//! order, as a typed row or as the reason it could not be read. `AlexNet::classify`/`embed`,
//! `alexnet classify`, `alexnet eval` and the pool5 feature stream are formatters over it.
//! Images are decoded into cropped 8-bit pixels and normalised on the GPU ([`Fill::Pixels`]);
//! rows that are not plain crops (augmented views, `.npy` tensors) come as f32
//! ([`Fill::Floats`]).

use crate::data::stream::{self, FillRows, PipeTimes};
use crate::data::{norm_table, Preprocess};
use crate::error::{Error, Result};

use super::{NetStage, Network, PixelStage};

/// How the decoders fill an item's rows (`rows_per_item` rows of `3 * h * w` values).
pub enum Fill<'f, T> {
    /// Normalised f32 rows, `[3, h, w]` each.
    Floats(&'f FillRows<'f, T, f32>),
    /// Cropped pixels, `[h, w, 3]` bytes each in the model's channel order
    /// (`data::prepare_pixels_into`), normalised on the GPU by the preset's table: a quarter
    /// of the bytes to upload.
    Pixels(&'f FillRows<'f, T, u8>, &'f Preprocess),
}

/// How the items are batched: items per forward pass, network input rows per item (one per
/// image; augmented views give several), the input's height and width, decoding threads.
#[derive(Clone, Copy, Debug)]
pub struct RunShape {
    /// Items per forward pass.
    pub batch: usize,
    /// Network input rows per item.
    pub rows_per_item: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Decoding threads.
    pub threads: usize,
}

impl RunShape {
    /// One row of `h` x `w` per item, decoded on every core.
    pub fn images(batch: usize, h: usize, w: usize) -> Self {
        RunShape {
            batch,
            rows_per_item: 1,
            h,
            w,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// One item's network outputs: its `rows_per_item` rows, each `classes` logits and
/// probabilities and (when asked for) `feature_len` pool5 features, row after row.
#[derive(Clone, Copy, Debug)]
pub struct Row<'a> {
    /// The item's logits, `classes` per row.
    pub logits: &'a [f32],
    /// The item's softmax probabilities, `classes` per row.
    pub probs: &'a [f32],
    /// Empty unless features were asked for.
    pub features: &'a [f32],
}

/// One item handed back: its index in the whole list, the item, and its row or why it could
/// not be read (its `fill` error). `batch_end` is set on the last item of each forward pass
/// (for callers that flush or report per batch).
pub struct Ran<'a, T> {
    /// The item's index in the whole list.
    pub index: usize,
    /// The item.
    pub item: &'a T,
    /// Its outputs, or why it could not be read.
    pub row: std::result::Result<Row<'a>, Error>,
    /// Set on the last item of each forward pass.
    pub batch_end: bool,
}

/// Why a run stopped: the network (or the pipeline) failed, or the caller's callback did (its
/// error as it returned it).
#[derive(Debug)]
pub enum RunError<E> {
    /// The network or the pipeline failed.
    Network(Error),
    /// The caller's callback returned this error.
    Callback(E),
}

impl From<RunError<Error>> for Error {
    fn from(e: RunError<Error>) -> Error {
        match e {
            RunError::Network(e) | RunError::Callback(e) => e,
        }
    }
}

/// A GPU stage's output for one batch, read item by item (the good items' rows, in order).
pub trait BatchRows {
    /// The `good`-th good item's `per_item` rows.
    fn item(&self, good: usize, per_item: usize, want_features: bool) -> Result<Row<'_>>;
}

impl BatchRows for super::Output {
    fn item(&self, good: usize, per_item: usize, want_features: bool) -> Result<Row<'_>> {
        let (c, f) = (self.classes * per_item, self.feature_len * per_item);
        let features = match (&self.features, want_features) {
            (Some(v), _) => &v[good * f..(good + 1) * f],
            (None, false) => &[][..],
            (None, true) => return Err(Error::Invalid("the network returned no features".into())),
        };
        Ok(Row {
            logits: &self.logits[good * c..(good + 1) * c],
            probs: &self.probs[good * c..(good + 1) * c],
            features,
        })
    }
}

/// Feature rows `[rows, dim]` with no classifier (the frozen convolution stack's output). Empty
/// when the stage kept the rows elsewhere (spilled to disk): each item's features are then empty.
pub struct FeatureRows {
    /// `rows * dim` floats, row-major.
    pub data: Vec<f32>,
    /// Floats per row.
    pub dim: usize,
}

impl BatchRows for FeatureRows {
    fn item(&self, good: usize, per_item: usize, _want_features: bool) -> Result<Row<'_>> {
        let f = self.dim * per_item;
        let features = if self.data.is_empty() {
            &[][..]
        } else {
            self.data
                .get(good * f..(good + 1) * f)
                .ok_or_else(|| Error::Invalid("the stage returned too few rows".into()))?
        };
        Ok(Row {
            logits: &[],
            probs: &[],
            features,
        })
    }
}

/// Runs `items` through `fill` (decoding threads) and `net`, calling `emit` per item in input
/// order. An item whose `fill` fails gets its error and the others run; an error from the
/// network or from `emit` stops the run and is returned.
pub fn run<T: Sync, E>(
    net: &mut Network,
    items: &[T],
    fill: Fill<'_, T>,
    shape: RunShape,
    want_features: bool,
    emit: &mut dyn FnMut(Ran<'_, T>) -> std::result::Result<(), E>,
) -> std::result::Result<PipeTimes, RunError<E>> {
    let stage = NetStage {
        net,
        h: shape.h,
        w: shape.w,
        want_features,
    };
    match fill {
        Fill::Floats(fill) => {
            let mut stage = stage;
            run_stage(&mut stage, items, fill, shape, want_features, emit)
        }
        Fill::Pixels(fill, pre) => {
            let mut stage = PixelStage {
                stage,
                table: norm_table(pre),
            };
            run_stage(&mut stage, items, fill, shape, want_features, emit)
        }
    }
}

/// [`run`] over any GPU stage whose output reads item by item (the network, or training's
/// frozen convolution stack): the one call of the decode/GPU pipeline outside `data`.
pub fn run_stage<T: Sync, E, S>(
    stage: &mut S,
    items: &[T],
    fill: &FillRows<'_, T, S::Elem>,
    shape: RunShape,
    want_features: bool,
    emit: &mut dyn FnMut(Ran<'_, T>) -> std::result::Result<(), E>,
) -> std::result::Result<PipeTimes, RunError<E>>
where
    S: stream::GpuStage,
    S::Out: BatchRows,
{
    let per_item = shape.rows_per_item.max(1);
    let pipe = stream::Shape {
        batch: shape.batch,
        rows_per_item: per_item,
        row_len: 3 * shape.h * shape.w,
        threads: shape.threads,
    };
    let mut stopped: Option<E> = None;
    let result = stream::run(items, pipe, fill, stage, &mut |d| {
        let stream::Done {
            first,
            items: batch,
            status,
            out,
        } = d;
        let mut good = 0usize;
        let n = batch.len();
        for (k, (status, item)) in status.into_iter().zip(batch).enumerate() {
            let row = match status {
                Ok(()) => {
                    let out = out.as_ref().expect("rows were run");
                    let r = out.item(good, per_item, want_features)?;
                    good += 1;
                    Ok(r)
                }
                Err(e) => Err(e),
            };
            let ran = Ran {
                index: first + k,
                item,
                row,
                batch_end: k + 1 == n,
            };
            if let Err(e) = emit(ran) {
                stopped = Some(e);
                return Err(Error::Invalid("the caller stopped the run".into()));
            }
        }
        Ok(())
    });
    match (result, stopped) {
        (_, Some(e)) => Err(RunError::Callback(e)),
        (Ok(t), None) => Ok(t),
        (Err(e), None) => Err(RunError::Network(e)),
    }
}

/// The `k` best classes of one row, best first: by logit, ties in class order (the
/// probabilities are the logits' softmax, so the order is theirs, without the ties that
/// rounding makes among tiny probabilities).
pub fn top_k(logits: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    idx.truncate(k);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_by_logit_and_keeps_class_order_on_ties() {
        assert_eq!(top_k(&[0.5, 2.0, -1.0, 2.0, 1.0], 3), vec![1, 3, 4]);
        assert_eq!(top_k(&[1.0, 3.0], 5), vec![1, 0]);
        assert!(top_k(&[1.0], 0).is_empty());
    }
}
