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

impl Network<'_> {
    /// Whether per-step times come from GPU timestamps (else from wall clock per submission).
    pub fn has_timestamps(&self) -> bool {
        self.ctx.features.contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Times each step of one forward pass of the plan for (batch, h, w): with timestamp
    /// queries (one compute pass per step) when the adapter has them, else by submitting and
    /// waiting for each step alone. The input buffer's current contents are used.
    pub fn time_steps(&mut self, batch: usize, h: usize, w: usize) -> Result<Vec<StepTiming>> {
        let ctx = self.ctx;
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
        let n = plan.steps.iter().map(|(_, ds)| ds.len()).sum::<usize>();
        let queries = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("step timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count: 2 * n as u32,
        });
        let bytes = (2 * n * 8) as u64;
        let resolve = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps staging"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("profile"),
            });
        for (i, d) in plan.steps.iter().flat_map(|(_, ds)| ds).enumerate() {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(&d.label),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &queries,
                    beginning_of_pass_write_index: Some(2 * i as u32),
                    end_of_pass_write_index: Some(2 * i as u32 + 1),
                }),
            });
            d.record(&mut pass);
        }
        encoder.resolve_query_set(&queries, 0..2 * n as u32, &resolve, 0);
        encoder.copy_buffer_to_buffer(&resolve, 0, &staging, 0, bytes);
        ctx.queue.submit([encoder.finish()]);
        let ticks: Vec<u64> = crate::gpu::map_staging_as(ctx, &staging, 2 * n)?;
        let period = ctx.queue.get_timestamp_period() as f64;
        let mut i = 0;
        let mut out = Vec::with_capacity(plan.steps.len());
        for (label, ds) in &plan.steps {
            let mut kernels: Vec<(String, f64)> = Vec::new();
            for d in ds {
                let ms = ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * period / 1e6;
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
