//! `cross_entropy.wgsl`: fused softmax cross-entropy forward + backward with running stats.

use super::{to_u32, Dispatch, Grid};
use crate::error::Result;
use crate::gpu::GpuContext;

use super::Kernels;

/// Mirrors `struct Params` in `cross_entropy.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)] // the fields are the shader's uniform block's, named as there
pub struct CrossEntropyParams {
    pub batch: u32,
    pub classes: u32,
    pub step_slot: u32,
    pub _pad: u32,
}

impl CrossEntropyParams {
    /// The params of `batch` rows of `classes` logits; `step_slot` is where in the stats buffer the step's sums go.
    pub fn new(batch: usize, classes: usize, step_slot: usize) -> Self {
        CrossEntropyParams {
            batch: batch as u32,
            classes: classes as u32,
            step_slot: step_slot as u32,
            _pad: 0,
        }
    }
}

/// `stats` layout: [loss sum, correct, count, unused, per-step mean loss...].
pub const STATS_HEADER: usize = 4;

#[allow(clippy::too_many_arguments)]
/// Softmax cross-entropy of `logits` against `labels`: its gradient into `grad`, loss and correct counts summed into `stats`.
pub fn dispatch(
    ctx: &GpuContext,
    k: &Kernels,
    batch: usize,
    classes: usize,
    logits: &wgpu::Buffer,
    labels: &wgpu::Buffer,
    grad: &wgpu::Buffer,
    stats: &wgpu::Buffer,
) -> Result<Dispatch> {
    // The params' values checked here; the trainer rewrites only `step_slot` afterwards.
    to_u32("cross-entropy batch", batch)?;
    to_u32("cross-entropy classes", classes)?;
    Ok(Dispatch::new(
        ctx,
        &k.cross_entropy(),
        "cross entropy",
        &CrossEntropyParams::new(batch, classes, 0),
        &[logits, labels, grad, stats],
        Grid::Groups([1, 1, 1]),
    )?
    .with_flops((batch * classes * 6) as f64))
}

/// CPU reference (f64): (mean loss, correct count, grad `[batch, classes]`).
pub fn reference(logits: &[f32], labels: &[u32], classes: usize) -> (f64, usize, Vec<f32>) {
    let batch = labels.len();
    let mut grad = vec![0f32; logits.len()];
    let (mut loss, mut correct) = (0f64, 0usize);
    for b in 0..batch {
        let row = &logits[b * classes..(b + 1) * classes];
        let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let arg = (0..classes).fold(0, |a, c| if row[c] > row[a] { c } else { a });
        let lse = row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln() + m;
        let label = labels[b] as usize;
        loss += lse - row[label] as f64;
        correct += (arg == label) as usize;
        for c in 0..classes {
            let p = (row[c] as f64 - lse).exp();
            grad[b * classes + c] = ((p - (c == label) as u8 as f64) / batch as f64) as f32;
        }
    }
    (loss / batch as f64, correct, grad)
}
