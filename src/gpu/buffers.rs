use wgpu::util::DeviceExt;

use super::GpuContext;
use crate::error::{Error, Result};

fn check_binding(ctx: &GpuContext, what: &str, bytes: u64, hint: &str) -> Result<()> {
    if bytes > ctx.max_binding() {
        return Err(Error::OverLimit {
            what: what.to_string(),
            needed: bytes,
            limit: ctx.max_binding(),
            limit_name: "max_storage_buffer_binding_size",
            hint: hint.to_string(),
        });
    }
    Ok(())
}

/// A zeroed storage buffer of `len` f32 values, checked against the adapter's binding limit.
pub fn storage_buffer(
    ctx: &GpuContext,
    label: &str,
    len: usize,
    hint: &str,
) -> Result<wgpu::Buffer> {
    let bytes = (len.max(1) * 4) as u64;
    check_binding(ctx, label, bytes, hint)?;
    Ok(ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: bytes,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    }))
}

/// A storage buffer holding `data`.
pub fn upload_f32(ctx: &GpuContext, label: &str, data: &[f32]) -> Result<wgpu::Buffer> {
    upload(ctx, label, data)
}

/// A storage buffer holding any plain values (f32, or packed f16 pairs as u32), checked against
/// the binding limit.
pub fn upload<T: bytemuck::Pod>(ctx: &GpuContext, label: &str, data: &[T]) -> Result<wgpu::Buffer> {
    let bytes = std::mem::size_of_val(data) as u64;
    check_binding(
        ctx,
        label,
        bytes,
        "split the tensor with SplitWeight (a bug if you see this for model weights)",
    )?;
    // wgpu refuses zero-sized bindings; four zero bytes keep empty tensors legal.
    let contents: &[u8] = if data.is_empty() {
        bytemuck::bytes_of(&0u32)
    } else {
        bytemuck::cast_slice(data)
    };
    Ok(ctx
        .device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
        }))
}

/// A uniform buffer holding one `#[repr(C)]` params struct.
pub fn uniform_buffer<T: bytemuck::Pod>(ctx: &GpuContext, label: &str, params: &T) -> wgpu::Buffer {
    ctx.device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::bytes_of(params),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        })
}

/// Copies the first `len` floats of `buffer` to the host (blocking).
pub fn read_back_f32(ctx: &GpuContext, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
    let mut encoder = ctx
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("read-back"),
        });
    let staging = copy_to_staging(ctx, &mut encoder, buffer, 0, len);
    ctx.queue.submit([encoder.finish()]);
    map_staging(ctx, &staging, len)
}

/// Records a copy of `len` floats from `offset` (in floats) into a fresh mappable buffer.
pub fn copy_to_staging(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    buffer: &wgpu::Buffer,
    offset: usize,
    len: usize,
) -> wgpu::Buffer {
    let bytes = (len.max(1) * 4) as u64;
    let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("staging"),
        size: bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    if len > 0 {
        encoder.copy_buffer_to_buffer(buffer, (offset * 4) as u64, &staging, 0, bytes);
    }
    staging
}

/// Waits for the GPU and returns the staging buffer's first `len` floats.
pub fn map_staging(ctx: &GpuContext, staging: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
    map_staging_as(ctx, staging, len)
}

/// Waits for the GPU and returns the staging buffer's first `len` values of type `T`.
pub fn map_staging_as<T: bytemuck::Pod>(
    ctx: &GpuContext,
    staging: &wgpu::Buffer,
    len: usize,
) -> Result<Vec<T>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let slice = staging.slice(..);
    let (tx, rx) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    ctx.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))?;
    rx.recv()
        .map_err(|e| Error::Gpu(format!("read-back callback lost: {e}")))?
        .map_err(|e| Error::Gpu(format!("mapping the read-back buffer: {e}")))?;
    let view = slice
        .get_mapped_range()
        .map_err(|e| Error::Gpu(format!("mapping the read-back buffer: {e}")))?;
    let out = bytemuck::cast_slice::<u8, T>(&view)[..len].to_vec();
    drop(view);
    staging.unmap();
    ctx.check()?;
    Ok(out)
}

/// A row-major `[rows, cols]` matrix stored as several buffers of whole rows, each within the
/// adapter's storage binding limit (fc6 is 144 MiB; lavapipe and WebGPU cap a binding at 128 MiB).
pub struct SplitWeight {
    /// Rows of the whole matrix.
    pub rows: usize,
    /// Columns of the whole matrix.
    pub cols: usize,
    /// `(first_row, row_count, buffer)`, in row order.
    pub parts: Vec<(usize, usize, wgpu::Buffer)>,
}

impl SplitWeight {
    /// Uploads a `[rows, cols]` row-major matrix in as many row ranges as the adapter's binding limit needs.
    pub fn upload(
        ctx: &GpuContext,
        label: &str,
        data: &[f32],
        rows: usize,
        cols: usize,
    ) -> Result<Self> {
        assert_eq!(
            data.len(),
            rows * cols,
            "SplitWeight::upload: data does not match its shape"
        );
        let row_bytes = (cols.max(1) * 4) as u64;
        let rows_per_part = (ctx.max_binding() / row_bytes) as usize;
        if rows_per_part == 0 {
            return Err(Error::OverLimit {
                what: format!("one row of {label}"),
                needed: row_bytes,
                limit: ctx.max_binding(),
                limit_name: "max_storage_buffer_binding_size",
                hint: "this adapter cannot hold one row of the matrix in a binding".into(),
            });
        }
        Self::upload_with_rows_per_part(ctx, label, data, rows, cols, rows_per_part)
    }

    /// As [`SplitWeight::upload`] with an explicit part size (tests force splits with it).
    pub fn upload_with_rows_per_part(
        ctx: &GpuContext,
        label: &str,
        data: &[f32],
        rows: usize,
        cols: usize,
        rows_per_part: usize,
    ) -> Result<Self> {
        let rows_per_part = rows_per_part.max(1);
        let mut parts = Vec::new();
        let mut first = 0;
        while first < rows || (rows == 0 && parts.is_empty()) {
            let count = rows_per_part.min(rows - first);
            let buf = upload_f32(
                ctx,
                &format!("{label}[{first}..{}]", first + count),
                &data[first * cols..(first + count) * cols],
            )?;
            parts.push((first, count, buf));
            first += count;
            if rows == 0 {
                break;
            }
        }
        Ok(SplitWeight { rows, cols, parts })
    }
}
