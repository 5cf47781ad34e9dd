//! GPU time of dispatches with timestamp queries: one compute pass per dispatch, its two
//! timestamps written at the pass's start and end ([`gpu_ms`]: `TIMESTAMP_QUERY` alone), all
//! in one pass with timestamps between them ([`gpu_ms_in_pass`]: also
//! `TIMESTAMP_QUERY_INSIDE_PASSES`), or one pass timed whole ([`pass_ms`]). Used by `bench`
//! and the tuner; callers fall back to wall clock where [`has_timestamps`] is false.

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
    let ticks = resolve(ctx, encoder, &queries, 2 * n as u32)?;
    let period = ctx.queue.get_timestamp_period() as f64;
    Ok((0..n)
        .map(|i| ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * period / 1e6)
        .collect())
}

/// Whether this device can write timestamps between the dispatches of one compute pass
/// (`TIMESTAMP_QUERY_INSIDE_PASSES`, requested when the adapter has it): [`gpu_ms_in_pass`].
pub fn has_in_pass_timestamps(ctx: &GpuContext) -> bool {
    has_timestamps(ctx)
        && ctx
            .features
            .contains(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES)
}

/// Runs `dispatches` in order in ONE compute pass, as a forward pass records them, with a
/// timestamp before the first and after each, and returns each one's GPU time in
/// milliseconds (the time between its neighbouring timestamps: barriers between dispatches
/// count towards the later one). Needs [`has_in_pass_timestamps`].
pub fn gpu_ms_in_pass(ctx: &GpuContext, dispatches: &[&Dispatch]) -> Result<Vec<f64>> {
    let n = dispatches.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    let count = n as u32 + 1;
    let queries = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
        label: Some("in-pass timestamps"),
        ty: wgpu::QueryType::Timestamp,
        count,
    });
    let mut encoder = ctx
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("timed pass"),
        });
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("timed pass"),
            timestamp_writes: None,
        });
        pass.write_timestamp(&queries, 0);
        for (i, d) in dispatches.iter().enumerate() {
            d.record(&mut pass);
            pass.write_timestamp(&queries, i as u32 + 1);
        }
    }
    let ticks = resolve(ctx, encoder, &queries, count)?;
    let period = ctx.queue.get_timestamp_period() as f64;
    Ok((0..n)
        .map(|i| ticks[i + 1].saturating_sub(ticks[i]) as f64 * period / 1e6)
        .collect())
}

/// Resolves `count` timestamps of `queries` at the end of `encoder`, submits it and waits
/// for the ticks.
pub fn resolve(
    ctx: &GpuContext,
    mut encoder: wgpu::CommandEncoder,
    queries: &wgpu::QuerySet,
    count: u32,
) -> Result<Vec<u64>> {
    let bytes = 8 * count as u64;
    let resolved = ctx.device.create_buffer(&wgpu::BufferDescriptor {
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
    encoder.resolve_query_set(queries, 0..count, &resolved, 0);
    encoder.copy_buffer_to_buffer(&resolved, 0, &staging, 0, bytes);
    ctx.queue.submit([encoder.finish()]);
    crate::gpu::map_staging_as(ctx, &staging, count as usize)
}

/// Runs `dispatches` in one compute pass timed whole (timestamps at its start and end, as a
/// forward pass is) and returns its GPU time in milliseconds. Needs [`has_timestamps`].
pub fn pass_ms(ctx: &GpuContext, dispatches: &[&Dispatch]) -> Result<f64> {
    let queries = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
        label: Some("pass timestamps"),
        ty: wgpu::QueryType::Timestamp,
        count: 2,
    });
    let mut encoder = ctx
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("timed pass"),
        });
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("timed pass"),
            timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                query_set: &queries,
                beginning_of_pass_write_index: Some(0),
                end_of_pass_write_index: Some(1),
            }),
        });
        for d in dispatches {
            d.record(&mut pass);
        }
    }
    let ticks = resolve(ctx, encoder, &queries, 2)?;
    let period = ctx.queue.get_timestamp_period() as f64;
    Ok(ticks[1].saturating_sub(ticks[0]) as f64 * period / 1e6)
}
