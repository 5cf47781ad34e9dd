//! Per-step GPU timings of the forward pass (`alexnet bench --per-layer`): timestamps between
//! the dispatches of the one real pass where the adapter has them inside passes, else one
//! timestamped pass per dispatch, else wall clock per step.

use super::Network;
use crate::error::Result;
use crate::kernels::{self, Dispatch};

/// GPU time of one step of the forward pass.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StepTiming {
    /// The step (layer and kernel).
    pub label: String,
    /// Milliseconds.
    pub ms: f64,
    /// Its floating-point operations.
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

/// How [`Network::time_layers`] times the steps of a pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerTiming {
    /// Timestamps between the dispatches of one compute pass, recorded as the forward does.
    InPass,
    /// One timestamped compute pass per dispatch (adds pass boundaries the forward lacks).
    PassPerDispatch,
    /// A submission and its wait per step, timed by the host clock.
    WallClock,
}

impl LayerTiming {
    /// As reports name it.
    pub fn name(self) -> &'static str {
        match self {
            LayerTiming::InPass => "gpu timestamps inside one pass",
            LayerTiming::PassPerDispatch => "gpu timestamps, one pass per dispatch",
            LayerTiming::WallClock => "wall clock per step",
        }
    }
}

/// Folds per-dispatch times (in the order of `steps`' dispatches) into per-step timings.
fn per_step(steps: &[(String, Vec<Dispatch>)], times: &[f64]) -> Vec<StepTiming> {
    let mut i = 0;
    let mut out = Vec::with_capacity(steps.len());
    for (label, ds) in steps {
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
            flops: ds.iter().map(|d| d.flops).sum(),
            kernels,
            variants: variants(ds),
        });
    }
    out
}

impl Network {
    /// Whether per-step times come from GPU timestamps (else from wall clock per submission).
    pub fn has_timestamps(&self) -> bool {
        kernels::timing::has_timestamps(&self.ctx)
    }

    /// How [`Network::time_layers`] times steps on this adapter: the best way it has.
    pub fn layer_timing(&self) -> LayerTiming {
        if kernels::timing::has_in_pass_timestamps(&self.ctx) {
            LayerTiming::InPass
        } else if self.has_timestamps() {
            LayerTiming::PassPerDispatch
        } else {
            LayerTiming::WallClock
        }
    }

    /// Times each step of one forward pass of the plan for (batch, h, w) the way `how` says
    /// ([`LayerTiming::InPass`] needs [`kernels::timing::has_in_pass_timestamps`],
    /// [`LayerTiming::PassPerDispatch`] [`Network::has_timestamps`]). The input buffer's
    /// current contents are used.
    pub fn time_layers(
        &mut self,
        batch: usize,
        h: usize,
        w: usize,
        how: LayerTiming,
    ) -> Result<Vec<StepTiming>> {
        let ctx = &self.ctx.clone();
        let missing = match how {
            LayerTiming::InPass => !kernels::timing::has_in_pass_timestamps(ctx),
            LayerTiming::PassPerDispatch => !self.has_timestamps(),
            LayerTiming::WallClock => false,
        };
        if missing {
            return Err(crate::error::Error::Invalid(format!(
                "this adapter cannot time layers by {}",
                how.name()
            )));
        }
        let plan = self.plan(batch, h, w)?;
        let all: Vec<&Dispatch> = plan.steps.iter().flat_map(|(_, ds)| ds).collect();
        let times = match how {
            LayerTiming::InPass => kernels::timing::gpu_ms_in_pass(ctx, &all)?,
            LayerTiming::PassPerDispatch => kernels::timing::gpu_ms(ctx, &all)?,
            LayerTiming::WallClock => {
                let mut out = Vec::with_capacity(all.len());
                for (_, ds) in &plan.steps {
                    let t = std::time::Instant::now();
                    kernels::run(ctx, ds)?;
                    // The step's time goes to its first dispatch (per-kernel splits need
                    // timestamps).
                    out.push(t.elapsed().as_secs_f64() * 1e3);
                    out.extend(std::iter::repeat_n(0.0, ds.len().saturating_sub(1)));
                }
                out
            }
        };
        let mut steps = per_step(&plan.steps, &times);
        if how == LayerTiming::WallClock {
            for s in &mut steps {
                s.kernels.clear();
            }
        }
        Ok(steps)
    }

    /// Times each step of one forward pass of the plan for (batch, h, w): with timestamp
    /// queries (one compute pass per step) when the adapter has them, else by submitting and
    /// waiting for each step alone. The input buffer's current contents are used.
    pub fn time_steps(&mut self, batch: usize, h: usize, w: usize) -> Result<Vec<StepTiming>> {
        let how = if self.has_timestamps() {
            LayerTiming::PassPerDispatch
        } else {
            LayerTiming::WallClock
        };
        self.time_layers(batch, h, w, how)
    }
}
