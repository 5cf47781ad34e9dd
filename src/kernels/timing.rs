//! GPU time of individual dispatches with timestamp queries: one compute pass per dispatch,
//! its two timestamps written at the pass's start and end (`TIMESTAMP_QUERY`; no
//! `TIMESTAMP_QUERY_INSIDE_PASSES` needed). Used by `bench --per-layer` and the tuner; callers
//! fall back to wall clock where [`has_timestamps`] is false.

use super::Dispatch;
use crate::error::Result;
use crate::gpu::GpuContext;

/// Whether this device can time dispatches ([`gpu_ms`]).
pub fn has_timestamps(ctx: &GpuContext) -> bool {
    ctx.features.contains(wgpu::Features::TIMESTAMP_QUERY)
}

/// Runs `dispatches` in order, one compute pass each, in one submission, and returns each one's
/// GPU time in milliseconds. Needs [`has_timestamps`].
pub fn gpu_ms(ctx: &GpuContext, dispatches: &[&Dispatch]) -> Result<Vec<f64>> {
    let n = dispatches.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    let queries = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
        label: Some("dispatch timestamps"),
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
            label: Some("timed dispatches"),
        });
    for (i, d) in dispatches.iter().enumerate() {
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
    Ok((0..n)
        .map(|i| ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * period / 1e6)
        .collect())
}
