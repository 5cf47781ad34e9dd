//! A batch's input as the host hands it over: normalised f32 rows, or cropped 8-bit pixels
//! that the plan uploads as bytes (a quarter of the f32 tensor: 38.5 MB instead of 154 MB at
//! batch 256 at 224x224) and normalises on the GPU (`normalize_u8.wgsl`) into the same f32
//! input buffer, through the table the CPU path uses, so the network sees bit-identical values.

use crate::data::NormTable;
use crate::error::Result;
use crate::gpu::GpuContext;
use crate::kernels::Dispatch;

/// One batch's input, `batch` images of `h` x `w`.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// Normalised rows, `[batch, 3, h, w]` f32 (uploaded as they are).
    Floats(&'a [f32]),
    /// Cropped pixels, `[batch, h, w, 3]` bytes in the network's channel order
    /// (`data::crop_pixels`), normalised on the GPU by the table
    /// (`data::norm_table` of the preset that cropped them).
    Pixels(&'a [u8], &'a NormTable),
}

impl<'a> Input<'a> {
    /// Values (floats or bytes): `batch * 3 * h * w` for a whole batch.
    pub fn len(&self) -> usize {
        match self {
            Input::Floats(x) => x.len(),
            Input::Pixels(x, _) => x.len(),
        }
    }

    /// Whether it holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes the upload copies.
    pub(super) fn bytes(&self) -> &'a [u8] {
        match *self {
            Input::Floats(x) => bytemuck::cast_slice(x),
            Input::Pixels(x, _) => x,
        }
    }

    /// Consecutive pieces of at most `values` values each (sub-batches).
    pub(super) fn chunks(self, values: usize) -> Vec<Input<'a>> {
        let values = values.max(1);
        match self {
            Input::Floats(x) => x.chunks(values).map(Input::Floats).collect(),
            Input::Pixels(x, t) => x.chunks(values).map(|c| Input::Pixels(c, t)).collect(),
        }
    }
}

/// The network's normalisation table on the GPU (`3 * 256` f32, made once per network): the
/// one every plan's normalise dispatch binds, rewritten when a batch brings another preset's.
pub(super) struct NormLut {
    pub(super) buffer: wgpu::Buffer,
    loaded: Option<Box<NormTable>>,
}

impl NormLut {
    pub(super) fn new(ctx: &GpuContext) -> Result<NormLut> {
        Ok(NormLut {
            buffer: crate::gpu::storage_buffer(ctx, "normalisation table", 3 * 256, "")?,
            loaded: None,
        })
    }

    /// Makes `table` the one the GPU reads from the next submission on (a queue write, ordered
    /// after every pass already submitted, so a pass in flight keeps the table it was sent
    /// with); a no-op when it is already loaded (768 floats compared per batch).
    pub(super) fn load(&mut self, ctx: &GpuContext, table: &NormTable) {
        if self.loaded.as_deref() != Some(table) {
            ctx.queue
                .write_buffer(&self.buffer, 0, bytemuck::cast_slice(table.as_slice()));
            self.loaded = Some(Box::new(*table));
        }
    }
}

/// A plan's pixel input: the device buffer the bytes are copied into, and the dispatch that
/// normalises them into the plan's f32 input buffer.
pub(super) struct PixelInput {
    pub(super) buffer: wgpu::Buffer,
    pub(super) normalise: Dispatch,
}
