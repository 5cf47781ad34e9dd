//! Per-step GPU timings of the forward pass (`alexnet bench --per-layer`): one timestamped
//! pass per dispatch of a plan, where the adapter has timestamp queries.

use super::Network;
use crate::error::Result;
use crate::kernels::{self, Dispatch};

/// GPU time of one step of the forward pass.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StepTiming {
    pub label: String,
    pub ms: f64,
    pub flops: f64,
    /// Per kernel when the step has several dispatches (e.g. im2col + gemm): `(label, ms)`,
    /// summed over dispatches of the same label (chunks, weight parts). Timestamps only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kernels: Vec<(String, f64)>,
    /// The distinct kernels (dispatch labels) the step runs, e.g. `conv2d(mm 128x64x16)`:
    /// which variant the path, tuner or heuristic chose. Always filled.
    pub variants: Vec<String>,
}

fn variants(ds: &[Dispatch]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for d in ds {
        if !out.contains(&d.label) {
            out.push(d.label.clone());
        }
    }
    out
}

impl Network {
    /// Whether per-step times come from GPU timestamps (else from wall clock per submission).
    pub fn has_timestamps(&self) -> bool {
        kernels::timing::has_timestamps(&self.ctx)
    }

    /// Times each step of one forward pass of the plan for (batch, h, w): with timestamp
    /// queries (one compute pass per step) when the adapter has them, else by submitting and
    /// waiting for each step alone. The input buffer's current contents are used.
    pub fn time_steps(&mut self, batch: usize, h: usize, w: usize) -> Result<Vec<StepTiming>> {
        let ctx = &self.ctx.clone();
        let timestamps = self.has_timestamps();
        let plan = self.plan(batch, h, w)?;
        let n = plan.steps.len();
        let flops = |ds: &[Dispatch]| ds.iter().map(|d| d.flops).sum::<f64>();
        if !timestamps {
            let mut out = Vec::with_capacity(n);
            for (label, ds) in &plan.steps {
                let t = std::time::Instant::now();
                kernels::run(ctx, ds)?;
                out.push(StepTiming {
                    label: label.clone(),
                    ms: t.elapsed().as_secs_f64() * 1e3,
                    flops: flops(ds),
                    kernels: Vec::new(),
                    variants: variants(ds),
                });
            }
            return Ok(out);
        }
        // One compute pass (two timestamps) per dispatch.
        let all: Vec<&Dispatch> = plan.steps.iter().flat_map(|(_, ds)| ds).collect();
        let times = kernels::timing::gpu_ms(ctx, &all)?;
        let mut i = 0;
        let mut out = Vec::with_capacity(plan.steps.len());
        for (label, ds) in &plan.steps {
            let mut kernels: Vec<(String, f64)> = Vec::new();
            for d in ds {
                let ms = times[i];
                i += 1;
                match kernels.iter_mut().find(|(l, _)| *l == d.label) {
                    Some((_, t)) => *t += ms,
                    None => kernels.push((d.label.clone(), ms)),
                }
            }
            let ms = kernels.iter().map(|(_, t)| t).sum();
            if kernels.len() < 2 {
                kernels.clear();
            }
            out.push(StepTiming {
                label: label.clone(),
                ms,
                flops: flops(ds),
                kernels,
                variants: variants(ds),
            });
        }
        Ok(out)
    }
}
