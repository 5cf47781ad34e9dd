//! The frozen part below the first trained layer, run once per image (per augmented view) to
//! fill the training cache: the layers before `convN` for `--train-from convN` (on the GPU,
//! `conv_stack.rs` without gradients), or fc6 (and fc7) on cached pool5 rows.

use super::conv_stack::ConvStack;
use super::features::{extract_rows, Extraction, FeatureSet};
use super::head::{conv_hosts, ConvPart, HeadKind};
use crate::data::{ClassFolders, LoadOptions, Preprocess};
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::kernels::Precision;
use crate::model::dense::{DenseStack, GpuDense};
use crate::model::Weights;

/// The cached rows for `--train-from convN` (`kind` = `HeadKind::Conv(n)`): the input of convN
/// for every image (the preprocessed image itself for conv1), `[C, H, W]` flattened per row.
#[allow(clippy::too_many_arguments)]
pub fn extract_frozen(
    ctx: &GpuContext,
    backbone: &Weights,
    kind: HeadKind,
    data: &ClassFolders,
    pre: &Preprocess,
    opts: LoadOptions,
    views: usize,
    seed: u64,
    batch: usize,
    on_progress: &dyn Fn(usize),
) -> Result<Extraction> {
    let HeadKind::Conv(n) = kind else {
        return Err(Error::Invalid(format!(
            "extract_frozen is for --train-from conv1..conv5, not {}",
            kind.first_layer()
        )));
    };
    let (prefix, _, _) = ConvPart::split(backbone, &format!("conv{n}"))?;
    let input = [3, pre.crop, pre.crop];
    let convs = conv_hosts(backbone, &prefix, input)?;
    let batch = batch.max(views.max(1));
    let mut stack = ConvStack::new(ctx, &prefix, input, &convs, batch, None)?;
    let dim = stack.output_len();
    extract_rows(
        data,
        pre,
        opts,
        views,
        seed,
        batch,
        dim,
        on_progress,
        &mut |x, rows| stack.run(ctx, x, rows),
    )
}

/// The frozen dense layers `names` (each followed by its ReLU) of `backbone` applied to pool5
/// rows on the GPU, by the network's own dense forward: fc6 and fc7 for `--head last`, fc6 for
/// `--train-from fc7`.
pub fn frozen_dense(
    ctx: &GpuContext,
    backbone: &Weights,
    names: &[&str],
    pool5: &FeatureSet,
) -> Result<FeatureSet> {
    let layers = names
        .iter()
        .map(|name| GpuDense::from_weights(ctx, backbone, name, true, Precision::F32))
        .collect::<Result<Vec<_>>>()?;
    if pool5.dim != layers[0].inp {
        return Err(Error::Invalid(format!(
            "the cached features have {} values per image but the backbone's fc6 takes {}",
            pool5.dim, layers[0].inp
        )));
    }
    let mut stack = DenseStack::new(ctx, layers, 64)?;
    let features = stack.forward(ctx, &pool5.features)?;
    Ok(FeatureSet {
        features,
        dim: stack.output_len(),
        ..pool5.clone()
    })
}
