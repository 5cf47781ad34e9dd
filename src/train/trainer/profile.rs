//! Step timings for `alexnet bench --train-from`.

use super::Trainer;
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::kernels::Dispatch;

impl Trainer {
    /// Times one training step on a batch in three separately submitted parts, each waited
    /// for: the forward pass with the loss (`evaluate`'s dispatches), forward + backward (the
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
        let wait = |ctx: &GpuContext| {
            ctx.device
                .poll(wgpu::PollType::wait_indefinitely())
                .map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))
        };
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
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (f, fb, o) = (median(f), median(fb), median(o));
        self.take_eval_stats()?;
        self.take_epoch_stats(1)?;
        Ok((f, (fb - f).max(0.0), o))
    }
}
