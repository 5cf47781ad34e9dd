//! One forward pass taken apart for `bench`: the input upload alone (wall clock around the
//! host copy into the plan's mapped upload buffer, the copy to the device, its submission and
//! wait: what `Network::submit` does) and the GPU time of the pass (timestamps at the start
//! and end of the one compute pass the forward records, the normalisation of pixels
//! included).

use std::time::Instant;

use super::{Input, Network};
use crate::error::{Error, Result};
use crate::kernels::{self, Dispatch};

/// What [`Network::time_pass`] measured, in milliseconds.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct PassTiming {
    /// Wall time of uploading the input alone: the host copy into the mapped upload buffer,
    /// the copy to the device, a submission, its wait.
    pub upload_ms: f64,
    /// GPU time of the forward's compute pass (timestamps at its start and end); `None`
    /// where the adapter has no timestamp queries.
    pub gpu_ms: Option<f64>,
}

impl Network {
    /// Uploads `batch` images as [`Network::submit_input`] does and runs the forward pass of
    /// the same plan (for pixels, their normalisation first), timing the two apart
    /// (sub-batches, when the batch passes the binding limit, are summed). Nothing is read back.
    pub fn time_pass(
        &mut self,
        input: Input<'_>,
        batch: usize,
        h: usize,
        w: usize,
    ) -> Result<PassTiming> {
        let sub = self.fitting_batch(batch, h, w)?;
        let per_image = (input.len() / batch.max(1)).max(1);
        let ctx = self.ctx.clone();
        let timestamps = kernels::timing::has_timestamps(&ctx);
        let (mut upload_ms, mut gpu_ms) = (0.0, 0.0);
        for chunk in input.chunks(sub * per_image) {
            let n = chunk.len() / per_image;
            self.plan(n.max(1), h, w)?;
            if let Input::Pixels(_, table) = chunk {
                self.lut.load(&ctx, table);
            }
            let plan = self
                .plans
                .get_mut(&(n.max(1), h, w))
                .expect("plan built above");
            if chunk.len() != plan.input_len {
                return Err(Error::Shape(format!(
                    "input holds {} values, expected {batch} x 3 x {h} x {w}",
                    input.len()
                )));
            }
            if matches!(chunk, Input::Pixels(..)) {
                plan.pixel_input(&ctx, &self.kernels, &self.lut.buffer)?;
            }
            // The upload as `submit` does it: into the plan's mapped upload buffer, copied to
            // the device input (or pixel) buffer by a submission of its own here.
            let t = Instant::now();
            let mut encoder = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("upload"),
                });
            let upload = plan.stage_input(&ctx, &mut encoder, chunk)?;
            ctx.queue.submit([encoder.finish()]);
            let upload = super::plan::remap_upload(upload);
            ctx.device
                .poll(wgpu::PollType::wait_indefinitely())
                .map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))?;
            upload_ms += t.elapsed().as_secs_f64() * 1e3;
            plan.recycle_upload(upload);
            if timestamps {
                let normalise = match (chunk, &plan.pixels) {
                    (Input::Pixels(..), Some(px)) => Some(&px.normalise),
                    _ => None,
                };
                let all: Vec<&Dispatch> = normalise
                    .into_iter()
                    .chain(plan.steps.iter().flat_map(|(_, ds)| ds))
                    .collect();
                gpu_ms += kernels::timing::pass_ms(&ctx, &all)?;
            }
        }
        ctx.check()?;
        Ok(PassTiming {
            upload_ms,
            gpu_ms: timestamps.then_some(gpu_ms),
        })
    }
}
