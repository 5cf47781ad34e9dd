//! The frozen dense layers run on cached pool5 rows (fc6 and fc7 for `--head last`, fc6 for
//! `--train-from fc7`), once, to make the rows the trained layers start from.

use super::feature_set::FeatureSet;
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::kernels::Precision;
use crate::model::dense::{DenseStack, GpuDense};
use crate::model::Weights;

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
        .map(|name| GpuDense::from_weights(ctx, backbone, name, true, Precision::F32, None))
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

/// The frozen fc6 -> ReLU -> fc7 -> ReLU of `backbone` applied to pool5 rows on the GPU
/// (what the `last` head trains on), by the network's own dense forward.
pub fn frozen_fc7(ctx: &GpuContext, backbone: &Weights, pool5: &FeatureSet) -> Result<FeatureSet> {
    frozen_dense(ctx, backbone, &["fc6", "fc7"], pool5)
}
