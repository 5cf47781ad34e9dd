//! The frozen part below the first trained layer, run once per image (per augmented view) to
//! fill the training cache: the layers before `convN` for `--train-from convN` (on the GPU,
//! `conv_stack.rs` without gradients), or fc6 (and fc7) on cached pool5 rows.

use std::path::Path;

use super::conv_stack::ConvStack;
use super::features::{extract_rows, pass_rows, Extraction};
pub use super::frozen_dense::frozen_dense;
use super::head::{conv_hosts, ConvPart, HeadKind};
use super::rows::SpillFile;
use crate::data::{ClassFolders, LoadOptions, Preprocess};
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::model::Weights;

/// The frozen part below `convN` (`kind` = `HeadKind::Conv(n)`) as a forward-only stack for
/// batches of up to `batch` rows of preprocessed images; its output is the input of convN.
pub fn frozen_stack(
    ctx: &GpuContext,
    backbone: &Weights,
    kind: HeadKind,
    pre: &Preprocess,
    batch: usize,
) -> Result<ConvStack> {
    let HeadKind::Conv(n) = kind else {
        return Err(Error::Invalid(format!(
            "the frozen convolutions are for training from conv1..conv5, not {}",
            kind.first_layer()
        )));
    };
    let (prefix, _, _) = ConvPart::split(backbone, &format!("conv{n}"))?;
    let input = [3, pre.crop, pre.crop];
    let convs = conv_hosts(backbone, &prefix, input)?;
    ConvStack::new(ctx, &prefix, input, &convs, batch.max(1), None)
}

/// The cached rows for `--train-from convN` (`kind` = `HeadKind::Conv(n)`): the input of convN
/// for every image (the preprocessed image itself for conv1), `[C, H, W]` flattened per row.
///
/// With `spill = Some((budget_bytes, dir))` and rows that would take more than the budget
/// (`rows x dim x 4` bytes), the rows go to a [`SpillFile`] in `dir` as they are made instead
/// of into memory: the returned set then has its labels and paths but no `features`, and
/// training reads the file (the same bytes, so the same results bit for bit).
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
    spill: Option<(u64, &Path)>,
    on_progress: &dyn Fn(usize),
) -> Result<(Extraction, Option<SpillFile>)> {
    // The stack holds the most rows a forward pass takes: whole items of an image's views
    // (all of them, or their share under the host limit on one item).
    let mut stack = frozen_stack(
        ctx,
        backbone,
        kind,
        pre,
        pass_rows(views, batch, 3 * pre.crop * pre.crop),
    )?;
    let dim = stack.output_len();
    let bytes = (data.items.len() * views.max(1) * dim * 4) as u64;
    let mut file = match spill {
        Some((budget, dir)) if bytes > budget => Some(SpillFile::new_in(dir, dim)?),
        _ => None,
    };
    let ex = extract_rows(
        data,
        pre,
        opts,
        views,
        seed,
        batch,
        dim,
        on_progress,
        &mut |x, rows| {
            let out = stack.run(ctx, x, rows)?;
            match &mut file {
                // Spilled: the rows are on disk, nothing to keep in memory.
                Some(f) => f.append(&out).map(|_| Vec::new()),
                None => Ok(out),
            }
        },
    )?;
    Ok((ex, file))
}
