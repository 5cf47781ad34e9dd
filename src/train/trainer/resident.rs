//! The training rows kept in GPU memory: when the whole cached feature set (the frozen part's
//! output, the same every epoch) fits a budget, it is uploaded once and each step gathers its
//! batch's rows on the GPU (`gather_rows.wgsl`, one dispatch per buffer of the set at the start
//! of the step's one compute pass; only the batch's row indices are uploaded per step),
//! instead of gathering them on the host and uploading them every step. The rows are copied bit
//! for bit, so a run is bit-identical to the per-step upload.

use std::ops::Range;

use super::Trainer;
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::kernels::{gather_rows, Dispatch};

/// Buffers the resident rows may be split across.
pub const MAX_PARTS: usize = 4;

/// Rows uploaded per write while the set is made resident (bounds the staging memory).
const UPLOAD_BYTES: usize = 64 << 20;

/// The resident feature set: `parts` of whole rows, in row order.
pub(super) struct Resident {
    /// Each buffer's (first row, rows).
    ranges: Vec<(usize, usize)>,
    dim: usize,
    rows: usize,
    /// The step's row indices (`max_batch` u32).
    idx: wgpu::Buffer,
    /// One gather per buffer (the buffers live in their bind groups).
    gathers: Vec<Dispatch>,
}

/// How `rows` rows of `dim` f32 are split into at most [`MAX_PARTS`] buffers of at most
/// `part_cap` bytes each, all of them within `budget` bytes: the rows per part, or `None` when
/// they do not fit (then each step uploads its batch).
pub fn resident_parts(rows: usize, dim: usize, budget: u64, part_cap: u64) -> Option<Vec<usize>> {
    let row_bytes = (dim as u64).checked_mul(4)?;
    if rows == 0 || dim == 0 || (rows as u64).checked_mul(row_bytes)? > budget {
        return None;
    }
    let per = usize::try_from(part_cap / row_bytes).ok()?;
    if per == 0 || rows.div_ceil(per) > MAX_PARTS {
        return None;
    }
    let mut parts = vec![per; rows / per];
    if !rows.is_multiple_of(per) {
        parts.push(rows % per);
    }
    Some(parts)
}

/// The default budget on this adapter: what may be kept resident (bytes) and the most one buffer
/// may hold. A part is at most half of `max_buffer_size`, the binding limit and 1 GiB; the whole is 2 GiB on a
/// GPU and 0 on a CPU adapter, whose "device memory" is the host memory the cache already
/// takes, where a per-step upload moves nothing over a bus and one copy per row measured
/// slower than it (lavapipe, fc8 at batch 128: docs/performance.md).
pub fn default_budget(ctx: &GpuContext) -> (u64, u64) {
    let part_cap = (ctx.device.limits().max_buffer_size / 2)
        .min(ctx.max_binding())
        .min(1 << 30);
    let total = if ctx.info.device_type == wgpu::DeviceType::Cpu {
        0
    } else {
        2 << 30
    };
    (total, part_cap)
}

impl Trainer {
    /// Uploads the `rows` training rows once (`read` gives any range of them, `[len, dim]`) when
    /// they fit `budget` (bytes; `None`: [`default_budget`]); returns whether they did. From then
    /// on [`Trainer::train_step_rows`] gathers batches on the GPU.
    pub fn make_resident(
        &mut self,
        rows: usize,
        budget: Option<u64>,
        read: &mut dyn FnMut(Range<usize>) -> Result<Vec<f32>>,
    ) -> Result<bool> {
        let (default, part_cap) = default_budget(&self.ctx);
        self.make_resident_split(rows, budget.unwrap_or(default), part_cap, read)
    }

    /// [`Trainer::make_resident`] with the budget and the most bytes one buffer may hold given
    /// (tests split a small set across several buffers with it; never above the binding
    /// limit).
    pub fn make_resident_split(
        &mut self,
        rows: usize,
        budget: u64,
        part_cap: u64,
        read: &mut dyn FnMut(Range<usize>) -> Result<Vec<f32>>,
    ) -> Result<bool> {
        self.resident = None;
        let dim = self.input_len();
        let part_cap = part_cap.min(self.ctx.max_binding());
        let Some(sizes) = resident_parts(rows, dim, budget, part_cap) else {
            return Ok(false);
        };
        let chunk = (UPLOAD_BYTES / (dim * 4)).max(1);
        let idx = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("resident row indices"),
            size: (self.max_batch * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let (mut gathers, mut ranges) = (Vec::new(), Vec::new());
        let mut first = 0;
        for n in sizes {
            let buf = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("resident training rows"),
                size: (n * dim * 4) as u64,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut at = 0;
            while at < n {
                let len = chunk.min(n - at);
                let x = read(first + at..first + at + len)?;
                if x.len() != len * dim {
                    return Err(Error::Invalid(format!(
                        "{} values for {len} rows of {dim}",
                        x.len()
                    )));
                }
                self.ctx
                    .queue
                    .write_buffer(&buf, (at * dim * 4) as u64, bytemuck::cast_slice(&x));
                // Flush the staged write so at most one chunk is staged at a time.
                self.ctx.queue.submit([]);
                at += len;
            }
            gathers.push(gather_rows::dispatch(
                &self.ctx,
                &self.fk,
                (dim, self.max_batch, first, n),
                &buf,
                &idx,
                self.input_buffer(),
            )?);
            ranges.push((first, n));
            first += n;
        }
        self.resident = Some(Resident {
            ranges,
            dim,
            rows,
            idx,
            gathers,
        });
        Ok(true)
    }

    /// Whether the training rows are in GPU memory ([`Trainer::make_resident`]).
    pub fn is_resident(&self) -> bool {
        self.resident.is_some()
    }

    /// [`Trainer::train_step`] on rows `idx` of the resident set, gathered on the GPU inside the
    /// step's one submission. Bit-identical to `train_step` on the same rows uploaded.
    pub fn train_step_rows(
        &mut self,
        idx: &[usize],
        labels: &[u32],
        lr: f32,
        slot: usize,
    ) -> Result<()> {
        let r = self
            .resident
            .as_ref()
            .ok_or_else(|| Error::Invalid("no training rows are resident on the GPU".into()))?;
        if idx.len() != labels.len() {
            return Err(Error::Invalid(format!(
                "{} rows and {} labels",
                idx.len(),
                labels.len()
            )));
        }
        if let Some(bad) = idx.iter().find(|&&i| i >= r.rows) {
            return Err(Error::Invalid(format!(
                "row {bad} of {} resident rows",
                r.rows
            )));
        }
        self.check_batch(labels.len())?;
        self.upload_labels(labels)?;
        let idx32: Vec<u32> = idx.iter().map(|&i| i as u32).collect();
        self.ctx
            .queue
            .write_buffer(&r.idx, 0, bytemuck::cast_slice(&idx32));
        for (d, &(first, n)) in r.gathers.iter().zip(&r.ranges) {
            let p = gather_rows::GatherRowsParams::new(r.dim, idx.len(), first, n)?;
            self.write_uniform(d, &p);
        }
        self.run_step(labels.len(), lr, slot, true)
    }

    /// Records the resident set's gathers (the batch's rows into the trainer's input).
    pub(super) fn record_gather(&self, pass: &mut wgpu::ComputePass<'_>) {
        if let Some(r) = &self.resident {
            for d in &r.gathers {
                d.record(pass);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_split_whole_rows_within_the_caps() {
        // 10 rows of 4 floats (16 bytes): one part when it fits, whole rows per part.
        assert_eq!(resident_parts(10, 4, 1 << 20, 1 << 20), Some(vec![10]));
        assert_eq!(resident_parts(10, 4, 160, 64), Some(vec![4, 4, 2]));
        assert_eq!(resident_parts(10, 4, 159, 1 << 20), None); // over the budget
        assert_eq!(resident_parts(10, 4, 1 << 20, 15), None); // not one row per part
        assert_eq!(resident_parts(10, 4, 1 << 20, 32), None); // 5 parts > MAX_PARTS
        assert_eq!(resident_parts(0, 4, 1 << 20, 1 << 20), None);
    }
}
