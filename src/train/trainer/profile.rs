//! Step timings for `alexnet bench --train-from`: the real step (one submission, as `fit`
//! runs it) and its split into forward, backward and optimizer.

use super::Trainer;
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::kernels::Dispatch;

/// The real step's timing ([`Trainer::time_step`]).
#[derive(Clone, Copy, Debug)]
pub struct StepTime {
    /// Median wall seconds of a step: the batch's upload, its one submission and the wait.
    pub seconds: f64,
    /// Command buffers one step submitted.
    pub submissions: u64,
}

fn wait(ctx: &GpuContext) -> Result<()> {
    ctx.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map(|_| ())
        .map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

impl Trainer {
    /// Times `iters` real training steps on a batch (`train_step`: upload, forward, loss,
    /// backward and optimizer recorded into one command buffer), each waited for, after one
    /// warm-up step (which compiles every pipeline). The parameters are updated `iters` + 1
    /// times; the epoch's stats are read back and reset at the end.
    pub fn time_step(
        &mut self,
        x: &[f32],
        labels: &[u32],
        lr: f32,
        iters: usize,
    ) -> Result<StepTime> {
        self.train_step(x, labels, lr, 0)?;
        wait(&self.ctx)?;
        let mut times = Vec::new();
        let mut submissions = 0;
        for _ in 0..iters.max(1) {
            let before = self.submissions();
            let t = std::time::Instant::now();
            self.train_step(x, labels, lr, 0)?;
            wait(&self.ctx)?;
            times.push(t.elapsed().as_secs_f64());
            submissions = submissions.max(self.submissions() - before);
        }
        self.take_epoch_stats(1)?;
        Ok(StepTime {
            seconds: median(times),
            submissions,
        })
    }

    /// [`Trainer::time_step`] with the batch resident in GPU memory (as `fit` runs when the
    /// cached rows fit, [`Trainer::make_resident`]): each step uploads its row indices and
    /// gathers the rows on the GPU (in reverse order, as a shuffled epoch would), instead of
    /// uploading them, whatever the adapter's default budget (0 on CPU adapters). `None` when
    /// the batch does not fit MAX_PARTS buffers.
    pub fn time_step_resident(
        &mut self,
        x: &[f32],
        labels: &[u32],
        lr: f32,
        iters: usize,
    ) -> Result<Option<StepTime>> {
        let (batch, dim) = (labels.len(), self.input_len());
        if x.len() != batch * dim {
            return Err(Error::Invalid(format!(
                "{} inputs for {batch} rows of {dim}",
                x.len()
            )));
        }
        let (_, part_cap) = super::default_budget(&self.ctx);
        let mut read = |r: std::ops::Range<usize>| Ok(x[r.start * dim..r.end * dim].to_vec());
        if !self.make_resident_split(batch, u64::MAX, part_cap, &mut read)? {
            return Ok(None);
        }
        let idx: Vec<usize> = (0..batch).rev().collect();
        let labels: Vec<u32> = idx.iter().map(|&i| labels[i]).collect();
        let result = (|| {
            self.train_step_rows(&idx, &labels, lr, 0)?;
            wait(&self.ctx)?;
            let mut times = Vec::new();
            let mut submissions = 0;
            for _ in 0..iters.max(1) {
                let before = self.submissions();
                let t = std::time::Instant::now();
                self.train_step_rows(&idx, &labels, lr, 0)?;
                wait(&self.ctx)?;
                times.push(t.elapsed().as_secs_f64());
                submissions = submissions.max(self.submissions() - before);
            }
            self.take_epoch_stats(1)?;
            Ok(StepTime {
                seconds: median(times),
                submissions,
            })
        })();
        self.resident = None;
        result.map(Some)
    }

    /// Times one training step on a batch split into three separately submitted parts, each
    /// waited for (the real step, [`Trainer::time_step`], is one submission): the forward pass with the loss (`evaluate`'s dispatches), forward + backward (the
    /// step without updates; backward = the difference) and the optimizer updates alone.
    /// Returns seconds (forward, backward, optimizer), medians over `iters` (for `alexnet bench
    /// --train-from`; the parameters are updated `iters` times).
    pub fn profile_step(
        &mut self,
        x: &[f32],
        labels: &[u32],
        lr: f32,
        iters: usize,
    ) -> Result<(f64, f64, f64)> {
        self.train_step(x, labels, lr, 0)?; // warm-up: compiles every pipeline
        let batch = labels.len();
        wait(&self.ctx)?;
        let (mut f, mut fb, mut o) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..iters.max(1) {
            let plan = &self.plans[&batch];
            let t = std::time::Instant::now();
            self.record(&plan.eval, &[]);
            wait(&self.ctx)?;
            f.push(t.elapsed().as_secs_f64());
            let t = std::time::Instant::now();
            self.record(&plan.train, &[]);
            wait(&self.ctx)?;
            fb.push(t.elapsed().as_secs_f64());
            let updates: Vec<&Dispatch> = self.updates.iter().map(|(d, _, _)| d).collect();
            let t = std::time::Instant::now();
            self.record(&[], &updates);
            wait(&self.ctx)?;
            o.push(t.elapsed().as_secs_f64());
        }
        let (f, fb, o) = (median(f), median(fb), median(o));
        self.take_eval_stats()?;
        self.take_epoch_stats(1)?;
        Ok((f, (fb - f).max(0.0), o))
    }
}
