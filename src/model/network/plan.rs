//! The plan for one input size: every buffer bound and every dispatch recorded, so that a
//! forward pass only uploads, submits and reads back.

use super::super::{Layer, LayerInfo};
use super::{Network, Op, Param};
use crate::error::{Error, Result};
use crate::gpu::storage_buffer;
use crate::kernels::{self, Dispatch, Precision};

/// Which buffer an op reads or writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Input,
    Ping,
    Pong,
    Features,
    Logits,
}

/// Everything bound for one (batch, height, width).
pub struct Plan {
    /// Images per pass.
    pub batch: usize,
    pub(super) input: wgpu::Buffer,
    pub(super) logits: wgpu::Buffer,
    pub(super) probs: wgpu::Buffer,
    pub(super) features: Option<wgpu::Buffer>,
    /// Mappable copies of `[logits | probabilities | features]` not in use by a submitted
    /// batch: one per batch in flight (two when the next batch is submitted before the
    /// previous one is read back), reused by every batch after.
    pub(super) staging: Vec<wgpu::Buffer>,
    pub(super) staging_bytes: u64,
    /// Upload buffers (host-visible, mapped for writing) not in use by a submitted batch: the
    /// input goes through one of these, reused by every batch after, instead of through
    /// `queue.write_buffer`, whose staging allocation for a large batch (154 MB of f32 at
    /// batch 256) is fresh device memory every pass. Pixels and f32 rows need different sizes
    /// (1 and 4 bytes per value); a batch takes any free buffer large enough.
    pub(super) uploads: Vec<wgpu::Buffer>,
    /// The pixel input (device bytes and the normalise dispatch), made on the first batch of
    /// pixels.
    pub(super) pixels: Option<super::pixels::PixelInput>,
    /// `(op label, dispatches)` in execution order.
    pub steps: Vec<(String, Vec<Dispatch>)>,
    pub(super) input_len: usize,
}

impl Network {
    /// The ops this input size runs, and which of them the features are read after: the
    /// fused list less each adaptive average pool whose output size is its input's (an
    /// identity: torchvision's 6x6 pool at 224 input), the op before it then writing where the
    /// pool would have. Kept where the op before is an in-place ReLU (it has no output of its
    /// own to redirect).
    fn ops_at(&self, infos: &[LayerInfo]) -> (Vec<Op>, Option<usize>) {
        let mut ops: Vec<Op> = Vec::with_capacity(self.ops.len());
        let mut features_op = None;
        for (k, op) in self.ops.iter().enumerate() {
            let info = &infos[op.layer()];
            let identity = matches!(op, Op::AvgPool { .. })
                && info.input == info.output
                && matches!(ops.last(), Some(prev) if !matches!(prev, Op::Relu { .. }));
            if identity {
                if Some(k) == self.features_op {
                    features_op = Some(ops.len() - 1);
                }
                continue;
            }
            if Some(k) == self.features_op {
                features_op = Some(ops.len());
            }
            ops.push(*op);
        }
        (ops, features_op)
    }

    pub(super) fn build_plan(&self, batch: usize, h: usize, w: usize) -> Result<Plan> {
        if batch == 0 {
            return Err(Error::Invalid("batch size must be at least 1".into()));
        }
        let ctx = &self.ctx;
        let spec = self.spec.with_input_hw(h, w);
        let infos = spec.infer()?;
        let hint = "use a smaller batch";
        let input_len = batch * spec.input.iter().product::<usize>();
        let input = storage_buffer(ctx, "input", input_len, hint)?;

        // Two ping-pong buffers sized for the largest intermediate activation.
        let max_act = infos.iter().map(|i| i.output.len()).max().unwrap_or(1) * batch;
        let ping = storage_buffer(ctx, "activations A", max_act, hint)?;
        let pong = storage_buffer(ctx, "activations B", max_act, hint)?;
        // im2col scratch: the largest patch matrix of the convolutions whose route runs
        // `im2col` (f16: or the packed input of a dense layer), in 32-bit words, capped (convs
        // then go in chunks). `None` when nothing runs `im2col`.
        let precision = self.precision;
        let conv_shapes: Vec<_> = spec
            .layers
            .iter()
            .zip(&infos)
            .filter_map(|(layer, info)| layer.conv_shape(batch, info.input.as_map()))
            .collect();
        let mut need = self
            .kernels
            .conv_scratch_words(ctx, &conv_shapes, precision)?
            .unwrap_or(0);
        if precision == Precision::F16 {
            for layer in &spec.layers {
                if let Layer::Dense { name, .. } = layer {
                    if let Some(Param::Dense(dense)) = self.params.get(*name) {
                        let words = dense.scratch_words(batch)?;
                        need = need.max(kernels::conv2d::scratch_words(ctx, words));
                    }
                }
            }
        }
        let scratch = if need > 0 {
            Some(storage_buffer(ctx, "im2col", need, hint)?)
        } else {
            None
        };
        let classes = infos.last().map(|i| i.output.len()).unwrap_or(1);
        let logits = storage_buffer(ctx, "logits", batch * classes, hint)?;
        let probs = storage_buffer(ctx, "probabilities", batch * classes, hint)?;
        let features = match self.features_op {
            Some(op) => {
                let layer = self.ops[op].layer();
                Some(storage_buffer(
                    ctx,
                    "features",
                    batch * infos[layer].output.len(),
                    hint,
                )?)
            }
            None => None,
        };

        let buf = |s: Slot| -> &wgpu::Buffer {
            match s {
                Slot::Input => &input,
                Slot::Ping => &ping,
                Slot::Pong => &pong,
                Slot::Features => features
                    .as_ref()
                    .expect("features slot only with a flatten"),
                Slot::Logits => &logits,
            }
        };

        let (ops, features_op) = self.ops_at(&infos);
        let mut steps = Vec::new();
        let mut cur = Slot::Input;
        let last = ops.len().saturating_sub(1);
        for (k, op) in ops.iter().enumerate() {
            let li = op.layer();
            let info = &infos[li];
            let in_place = matches!(op, Op::Relu { .. });
            let dst = if in_place {
                cur
            } else if Some(k) == features_op {
                Slot::Features
            } else if k == last {
                Slot::Logits
            } else if cur == Slot::Ping {
                Slot::Pong
            } else {
                Slot::Ping
            };
            let [c, ih, iw] = info.input.as_map();
            let dispatches = match (op, &spec.layers[li]) {
                (Op::Conv { relu, .. }, layer @ Layer::Conv { name, .. }) => {
                    let Some(Param::Conv { weight, bias }) = self.params.get(*name) else {
                        unreachable!("conv params uploaded in new()")
                    };
                    let shape = layer.conv_shape(batch, [c, ih, iw]).expect("a conv layer");
                    self.kernels.conv_route(&shape, precision)?.dispatch(
                        ctx,
                        &self.kernels,
                        &shape,
                        *relu,
                        weight,
                        bias,
                        buf(cur),
                        buf(dst),
                        scratch.as_ref(),
                    )?
                }
                (Op::Dense { .. }, Layer::Dense { name, .. }) => {
                    let Some(Param::Dense(dense)) = self.params.get(*name) else {
                        unreachable!("dense params uploaded in new()")
                    };
                    dense.forward(
                        ctx,
                        &self.kernels,
                        batch,
                        buf(cur),
                        buf(dst),
                        scratch.as_ref(),
                    )?
                }
                (Op::MaxPool { .. }, layer @ Layer::MaxPool { .. }) => {
                    let pool = layer.pool_shape(batch, [c, ih, iw]).expect("a max pool");
                    let pipeline = self.kernels.max_pool();
                    vec![kernels::max_pool::dispatch(
                        ctx,
                        &pipeline,
                        &pool,
                        buf(cur),
                        buf(dst),
                    )?]
                }
                (Op::Lrn { .. }, Layer::Lrn(lrn)) => vec![kernels::lrn::dispatch(
                    ctx,
                    &self.kernels.lrn(),
                    lrn,
                    batch,
                    c,
                    ih * iw,
                    buf(cur),
                    buf(dst),
                )?],
                (Op::AvgPool { .. }, layer @ Layer::AdaptiveAvgPool { .. }) => {
                    let pool = layer
                        .adaptive_pool_shape(batch, [c, ih, iw])
                        .expect("an adaptive pool");
                    let pipeline = self.kernels.adaptive_avg_pool();
                    vec![kernels::adaptive_avg_pool::dispatch(
                        ctx,
                        &pipeline,
                        &pool,
                        buf(cur),
                        buf(dst),
                    )?]
                }
                (Op::Softmax { .. }, Layer::Softmax) => {
                    let cols = info.input.len();
                    vec![kernels::softmax::dispatch(
                        ctx,
                        &self.kernels.softmax(),
                        batch,
                        cols,
                        buf(cur),
                        buf(dst),
                    )?]
                }
                (Op::Relu { .. }, Layer::Relu) => {
                    vec![kernels::relu::dispatch(
                        ctx,
                        &self.kernels.relu(),
                        batch * info.input.len(),
                        buf(cur),
                    )?]
                }
                (op, layer) => unreachable!("op {op:?} built from layer {layer:?}"),
            };
            steps.push((spec.layers[li].describe(), dispatches));
            cur = dst;
        }
        if cur != Slot::Logits {
            // The network ends in a layer that was not placed in the logits buffer (e.g. an
            // in-place ReLU): nothing to do, the last op's buffer is read instead below.
            return Err(Error::Shape(
                "the network must end in a layer that writes a new tensor (dense, softmax, pool...)".into(),
            ));
        }
        steps.push((
            "softmax (probabilities)".into(),
            vec![kernels::softmax::dispatch(
                ctx,
                &self.kernels.softmax(),
                batch,
                classes,
                &logits,
                &probs,
            )?],
        ));
        let feature_len = self.feature_len().unwrap_or(0);
        Ok(Plan {
            batch,
            input,
            logits,
            probs,
            features,
            staging: Vec::new(),
            uploads: Vec::new(),
            pixels: None,
            staging_bytes: (4 * batch * (2 * classes + feature_len)).max(4) as u64,
            steps,
            input_len,
        })
    }
}

impl Plan {
    /// Copies `input` (its length checked by the caller; for pixels, the plan's pixel input
    /// made first, [`Plan::pixel_input`]) into a mapped upload buffer of this plan (made,
    /// mapped, on first use; reused after) and records its copy into the device input buffer
    /// (f32) or pixel buffer (bytes) in `encoder`, before anything else is recorded. Returns
    /// the upload buffer: once the submission is done it is mapped again ([`remap_upload`])
    /// and handed back with [`Plan::recycle_upload`].
    pub(super) fn stage_input(
        &mut self,
        ctx: &crate::gpu::GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        input: super::Input<'_>,
    ) -> Result<wgpu::Buffer> {
        let data = input.bytes();
        let dst = match input {
            super::Input::Floats(_) => &self.input,
            super::Input::Pixels(..) => {
                &self
                    .pixels
                    .as_ref()
                    .expect("the pixel input is made before pixels are staged")
                    .buffer
            }
        };
        // Copies and mapped ranges are whole 4-byte words: a batch of pixels whose byte count
        // is not (odd widths, one image) copies up to 3 bytes of padding, never read.
        let bytes = (data.len() as u64).next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT);
        let buf = match self.uploads.iter().position(|b| b.size() >= bytes) {
            Some(i) => self.uploads.swap_remove(i),
            None => ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("input upload"),
                size: bytes.max(4),
                usage: wgpu::BufferUsages::MAP_WRITE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: true,
            }),
        };
        {
            let mut view = buf
                .slice(..bytes)
                .get_mapped_range_mut()
                .map_err(|e| Error::Gpu(format!("mapping the input upload buffer: {e}")))?;
            view.slice(..data.len()).copy_from_slice(data);
        }
        buf.unmap();
        encoder.copy_buffer_to_buffer(&buf, 0, dst, 0, bytes);
        Ok(buf)
    }

    /// Makes (once) this plan's pixel input, whose normalise dispatch reads `lut`.
    pub(super) fn pixel_input(
        &mut self,
        ctx: &crate::gpu::GpuContext,
        ks: &kernels::Kernels,
        lut: &wgpu::Buffer,
    ) -> Result<&super::pixels::PixelInput> {
        if self.pixels.is_none() {
            let values = self.input_len;
            let plane = values / (kernels::normalize_u8::CHANNELS * self.batch.max(1));
            if plane * kernels::normalize_u8::CHANNELS * self.batch != values {
                return Err(Error::Shape(format!(
                    "an input of {values} values is not {} images of 3 channels",
                    self.batch
                )));
            }
            // Bytes packed four to a word; the storage buffer is counted in 32-bit words.
            let buffer = storage_buffer(
                ctx,
                "input pixels",
                values.div_ceil(4),
                "use a smaller batch",
            )?;
            let normalise = kernels::normalize_u8::dispatch(
                ctx,
                ks,
                self.batch,
                plane,
                &buffer,
                lut,
                &self.input,
            )?;
            self.pixels = Some(super::pixels::PixelInput { buffer, normalise });
        }
        Ok(self.pixels.as_ref().expect("made above"))
    }

    /// Takes back an upload buffer whose mapping for writing has completed.
    pub(super) fn recycle_upload(&mut self, upload: Upload) {
        let state = upload
            .mapped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some((Ok(()), _)) = state {
            self.uploads.push(upload.buffer);
        }
        // Not (yet) mapped or failed: dropped; the next batch makes a new one.
    }
}

/// An upload buffer of a submitted batch, being mapped for writing again.
pub(super) struct Upload {
    pub(super) buffer: wgpu::Buffer,
    mapped: super::MapDone,
}

/// Asks for `buffer` to be mapped for writing once the submission that reads it is done (the
/// callback runs in a later poll).
pub(super) fn remap_upload(buffer: wgpu::Buffer) -> Upload {
    let mapped = super::map_async(&buffer, wgpu::MapMode::Write);
    Upload { buffer, mapped }
}
