//! The GPU network: weights uploaded once, a plan (buffers, bind groups, dispatches) built once
//! per input geometry, every batch recorded into one command encoder.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::dense::GpuDense;
use super::ops::{fuse, Op};
use super::Weights;
use super::{Layer, NetSpec};
use crate::error::{Error, Result};
use crate::gpu::{upload_f32, GpuContext};
use crate::kernels::{Kernels, MatmulPath, Precision};

mod pixels;
mod plan;
mod timed;

pub use pixels::Input;
pub use plan::Plan;
pub use timed::PassTiming;

/// What one forward pass returns, row-major per image.
#[derive(Clone, Debug, Default)]
pub struct Output {
    /// Images.
    pub batch: usize,
    /// `[batch, classes]`: the last layer's output.
    pub logits: Vec<f32>,
    /// `[batch, classes]`: softmax of the logits (computed on the GPU).
    pub probs: Vec<f32>,
    /// `[batch, features]`: the flattened input of the first dense layer (pool5), when asked.
    pub features: Option<Vec<f32>>,
    /// Outputs per image (the row length of `logits` and `probs`).
    pub classes: usize,
    /// Floats per image in `features` (9216 for the full-size presets).
    pub feature_len: usize,
}

enum Param {
    Conv {
        weight: wgpu::Buffer,
        bias: wgpu::Buffer,
    },
    Dense(GpuDense),
}

/// A planned network on the GPU: the weights uploaded, the ops fused, a plan (bound buffers and dispatches) per batch and input size.
pub struct Network {
    /// The device.
    pub ctx: GpuContext,
    /// The network description.
    pub spec: NetSpec,
    kernels: Kernels,
    precision: Precision,
    params: HashMap<String, Param>,
    plans: HashMap<(usize, usize, usize), Plan>,
    ops: Vec<Op>,
    /// Index into `ops` of the op whose output is flattened (pool5), if any.
    features_op: Option<usize>,
    /// The normalisation table that pixel inputs are normalised by on the GPU.
    lut: pixels::NormLut,
    /// Outputs of the last layer.
    pub classes: usize,
}

impl Network {
    /// Uploads the weights (dense matrices split under the binding limit) and compiles kernels.
    pub fn new(ctx: &GpuContext, weights: &Weights) -> Result<Self> {
        Self::with_precision(ctx, weights, Precision::F32)
    }

    /// As [`Network::new`], with the weights stored as `precision` (converted once, here).
    /// [`Precision::F16`] runs convolutions and dense layers with `im2col_f16.wgsl` +
    /// `gemm_f16.wgsl` on every adapter (f32 accumulation and activations).
    pub fn with_precision(
        ctx: &GpuContext,
        weights: &Weights,
        precision: Precision,
    ) -> Result<Self> {
        Self::with_path(ctx, weights, precision, ctx.matmul_path())
    }

    /// As [`Network::with_precision`] with the matmul path forced (tests run every variant on
    /// one adapter; the runtime options' matmul path does the same for the binary).
    pub fn with_path(
        ctx: &GpuContext,
        weights: &Weights,
        precision: Precision,
        path: MatmulPath,
    ) -> Result<Self> {
        Self::with_kernels(ctx, weights, precision, Kernels::with_path(ctx, path))
    }

    /// As [`Network::with_path`] with the kernels given (tests bring a tuner table of their
    /// own: [`Kernels::with_tuned`]).
    pub fn with_kernels(
        ctx: &GpuContext,
        weights: &Weights,
        precision: Precision,
        kernels: Kernels,
    ) -> Result<Self> {
        let spec = weights.spec();
        let infos = spec.infer()?;
        let mut params = HashMap::new();
        let (ops, features_op) = fuse(&spec.layers);
        for (i, (layer, info)) in spec.layers.iter().zip(&infos).enumerate() {
            match layer {
                Layer::Conv { name, .. } => {
                    let w = weights.get(&format!("{name}.weight"));
                    let b = weights.get(&format!("{name}.bias"));
                    let shape = layer
                        .conv_shape(1, info.input.as_map())
                        .expect("a conv layer");
                    // Laid out once for the kernels that read it, at every batch size.
                    let weight = kernels.conv_layout(precision).upload(
                        ctx,
                        &format!("{name}.weight"),
                        &shape,
                        w,
                    )?;
                    params.insert(
                        name.to_string(),
                        Param::Conv {
                            weight,
                            bias: upload_f32(ctx, &format!("{name}.bias"), b)?,
                        },
                    );
                }
                Layer::Dense { name, .. } => {
                    // With the ReLU that `fuse` folded into it, if any.
                    let relu = ops
                        .iter()
                        .any(|op| matches!(op, Op::Dense { layer: l, relu: true } if *l == i));
                    params.insert(
                        name.to_string(),
                        Param::Dense(GpuDense::from_weights(
                            ctx,
                            weights,
                            name,
                            relu,
                            precision,
                            kernels.coop,
                        )?),
                    );
                }
                _ => {}
            }
        }
        let classes = infos.last().map(|i| i.output.len()).unwrap_or(0);
        let lut = pixels::NormLut::new(ctx)?;
        Ok(Network {
            lut,
            ctx: ctx.clone(),
            kernels,
            precision,
            spec,
            params,
            plans: HashMap::new(),
            ops,
            features_op,
            classes,
        })
    }

    /// How the weights are stored.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Length of the flattened features (pool5), if the network flattens.
    pub fn feature_len(&self) -> Option<usize> {
        let infos = self.spec.infer().ok()?;
        self.spec
            .layers
            .iter()
            .zip(&infos)
            .find(|(l, _)| matches!(l, Layer::Flatten))
            .map(|(_, i)| i.output.len())
    }

    /// Builds (once) the plan for `batch` images of `h` x `w`.
    pub fn plan(&mut self, batch: usize, h: usize, w: usize) -> Result<&Plan> {
        if !self.plans.contains_key(&(batch, h, w)) {
            let plan = self.build_plan(batch, h, w)?;
            self.plans.insert((batch, h, w), plan);
        }
        Ok(&self.plans[&(batch, h, w)])
    }

    /// Which kernels each layer runs for `batch` images of `h` x `w`, in execution order:
    /// `(layer, dispatch labels)` (the routes the plan took: adapter, precision, tuner table).
    pub fn kernel_plan(
        &mut self,
        batch: usize,
        h: usize,
        w: usize,
    ) -> Result<Vec<(String, Vec<String>)>> {
        let plan = self.plan(batch, h, w)?;
        Ok(plan
            .steps
            .iter()
            .map(|(layer, ds)| (layer.clone(), ds.iter().map(|d| d.label.clone()).collect()))
            .collect())
    }

    /// Runs `batch` images (`[batch, 3, h, w]`, row-major) and reads back logits, probabilities
    /// and (when asked) the flattened features: [`Network::submit`] then [`Network::collect`].
    pub fn forward(
        &mut self,
        input: &[f32],
        batch: usize,
        h: usize,
        w: usize,
        want_features: bool,
    ) -> Result<Output> {
        self.forward_input(Input::Floats(input), batch, h, w, want_features)
    }

    /// [`Network::forward`] of an input given as f32 rows or as pixels ([`Input`]).
    pub fn forward_input(
        &mut self,
        input: Input<'_>,
        batch: usize,
        h: usize,
        w: usize,
        want_features: bool,
    ) -> Result<Output> {
        let pending = self.submit_input(input, batch, h, w, want_features)?;
        Ok(self.collect(pending)?.0)
    }

    /// Uploads `batch` images and submits their forward pass without waiting for it: the
    /// caller decodes (and submits) the next batch while this one runs, then reads this one
    /// back with [`Network::collect`]. The input is copied out of `input` before this returns
    /// (into one of the plan's mapped upload buffers, whose copy to the device input buffer
    /// starts the submission, so it runs after every pass already submitted and overwriting
    /// the input of a batch still running is safe), so the host buffer can be refilled at once. A batch whose buffers would pass the adapter's
    /// binding limit is submitted as sub-batches that fit (the largest the limit allows),
    /// their outputs concatenated by `collect`.
    pub fn submit(
        &mut self,
        input: &[f32],
        batch: usize,
        h: usize,
        w: usize,
        want_features: bool,
    ) -> Result<Pending> {
        self.submit_input(Input::Floats(input), batch, h, w, want_features)
    }

    /// [`Network::submit`] of an input given as f32 rows or as pixels ([`Input`]): pixels
    /// are uploaded as bytes and normalised on the GPU as the pass's first dispatch.
    pub fn submit_input(
        &mut self,
        input: Input<'_>,
        batch: usize,
        h: usize,
        w: usize,
        want_features: bool,
    ) -> Result<Pending> {
        let sub = self.fitting_batch(batch, h, w)?;
        let per_image = input.len() / batch.max(1);
        let mut pieces = Vec::new();
        if sub == batch {
            pieces.push(self.submit_whole(input, batch, h, w, want_features)?);
        } else {
            for chunk in input.chunks(sub * per_image.max(1)) {
                let n = chunk.len() / per_image.max(1);
                pieces.push(self.submit_whole(chunk, n, h, w, want_features)?);
            }
        }
        Ok(Pending {
            pieces,
            want_features,
        })
    }

    /// Checks, without blocking, which submitted batches have finished (their read-back
    /// callbacks record when).
    pub fn poll(&self) {
        let _ = self.ctx.device.poll(wgpu::PollType::Poll);
    }

    /// Waits for a submitted batch and reads it back; also returns when the GPU was seen to
    /// finish it (the read-back callback's time: exact while waiting here, within the
    /// caller's [`Network::poll`] interval otherwise).
    pub fn collect(&mut self, pending: Pending) -> Result<(Output, Instant)> {
        let mut out = Output {
            classes: self.classes,
            feature_len: self.feature_len().unwrap_or(0),
            features: pending.want_features.then(Vec::new),
            ..Default::default()
        };
        let mut finished = None;
        for piece in pending.pieces {
            let (part, at) = self.collect_piece(piece)?;
            finished = Some(finished.map_or(at, |f: Instant| f.max(at)));
            out.batch += part.batch;
            out.logits.extend(part.logits);
            out.probs.extend(part.probs);
            match (&mut out.features, part.features) {
                (Some(f), Some(p)) => f.extend(p),
                (f, None) => *f = None,
                _ => {}
            }
        }
        Ok((out, finished.unwrap_or_else(Instant::now)))
    }

    /// The largest batch up to `batch` whose plan fits the adapter's binding limit (every
    /// buffer of a plan grows linearly with the batch, so the first over-limit error says by
    /// how much to shrink). Only the plan that fits is kept.
    pub fn fitting_batch(&mut self, batch: usize, h: usize, w: usize) -> Result<usize> {
        let mut b = batch;
        loop {
            match self.plan(b, h, w) {
                Ok(_) => return Ok(b),
                Err(Error::OverLimit { needed, limit, .. }) if b > 1 && needed > limit => {
                    let shrunk = (b as u128 * limit as u128 / needed as u128) as usize;
                    b = shrunk.clamp(1, b - 1);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn submit_whole(
        &mut self,
        input: Input<'_>,
        batch: usize,
        h: usize,
        w: usize,
        want_features: bool,
    ) -> Result<Piece> {
        let classes = self.classes;
        let feature_len = self.feature_len().unwrap_or(0);
        let ctx = &self.ctx.clone();
        self.plan(batch, h, w)?;
        let plan = self
            .plans
            .get_mut(&(batch, h, w))
            .expect("plan built above");
        if input.len() != plan.input_len {
            return Err(Error::Shape(format!(
                "input holds {} values, expected {batch} x 3 x {h} x {w} = {}",
                input.len(),
                plan.input_len
            )));
        }
        let staging = plan.staging.pop().unwrap_or_else(|| {
            ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("read-back"),
                size: plan.staging_bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        let mut encoder = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("forward"),
            });
        if let Input::Pixels(_, table) = input {
            self.lut.load(ctx, table);
            plan.pixel_input(ctx, &self.kernels, &self.lut.buffer)?;
        }
        let upload = plan.stage_input(ctx, &mut encoder, input)?;
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("forward"),
                timestamp_writes: None,
            });
            if let (Input::Pixels(..), Some(px)) = (input, &plan.pixels) {
                px.normalise.record(&mut pass);
            }
            for (_, dispatches) in &plan.steps {
                for d in dispatches {
                    d.record(&mut pass);
                }
            }
        }
        let n = batch * classes;
        let bytes = |floats: usize| (floats * 4) as u64;
        encoder.copy_buffer_to_buffer(&plan.logits, 0, &staging, 0, bytes(n));
        encoder.copy_buffer_to_buffer(&plan.probs, 0, &staging, bytes(n), bytes(n));
        let feat_len = match (&plan.features, want_features) {
            (Some(f), true) if feature_len > 0 => {
                encoder.copy_buffer_to_buffer(
                    f,
                    0,
                    &staging,
                    bytes(2 * n),
                    bytes(batch * feature_len),
                );
                batch * feature_len
            }
            _ => 0,
        };
        let submission = ctx.queue.submit([encoder.finish()]);
        let upload = plan::remap_upload(upload);
        // Mapping is requested now; the callback runs (from a poll) once the pass is done.
        let done = map_async(&staging, wgpu::MapMode::Read);
        Ok(Piece {
            key: (batch, h, w),
            batch,
            staging,
            floats: 2 * n + feat_len,
            submission,
            done,
            upload,
        })
    }

    fn collect_piece(&mut self, piece: Piece) -> Result<(Output, Instant)> {
        let classes = self.classes;
        let feature_len = self.feature_len().unwrap_or(0);
        self.ctx
            .device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(piece.submission.clone()),
                timeout: None,
            })
            .map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))?;
        let state = piece.done.lock().unwrap_or_else(|e| e.into_inner()).take();
        let at = match state {
            Some((Ok(()), at)) => at,
            Some((Err(e), _)) => {
                return Err(Error::Gpu(format!("mapping the read-back buffer: {e}")))
            }
            None => return Err(Error::Gpu("read-back callback lost".into())),
        };
        let mut all = {
            let view = piece
                .staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| Error::Gpu(format!("mapping the read-back buffer: {e}")))?;
            bytemuck::cast_slice::<u8, f32>(&view)[..piece.floats].to_vec()
        };
        piece.staging.unmap();
        if let Some(plan) = self.plans.get_mut(&piece.key) {
            plan.staging.push(piece.staging);
            plan.recycle_upload(piece.upload);
        }
        let n = piece.batch * classes;
        let features = (piece.floats > 2 * n).then(|| all.split_off(2 * n));
        let probs = all.split_off(n);
        Ok((
            Output {
                batch: piece.batch,
                logits: all,
                probs,
                features,
                classes,
                feature_len,
            },
            at,
        ))
    }
}

/// Set by a buffer's map callback: the result and when it ran.
type MapDone = Arc<Mutex<Option<(std::result::Result<(), wgpu::BufferAsyncError>, Instant)>>>;

/// Asks for `buffer` to be mapped (the callback runs in a later poll, once the submissions that
/// use it are done) and returns the flag its callback sets.
fn map_async(buffer: &wgpu::Buffer, mode: wgpu::MapMode) -> MapDone {
    let done: MapDone = Arc::new(Mutex::new(None));
    let flag = done.clone();
    buffer.slice(..).map_async(mode, move |r| {
        *flag.lock().unwrap_or_else(|e| e.into_inner()) = Some((r, Instant::now()));
    });
    done
}

/// A batch submitted by [`Network::submit`], to be read back by [`Network::collect`].
pub struct Pending {
    pieces: Vec<Piece>,
    want_features: bool,
}

impl Pending {
    /// Whether the GPU has finished every part of this batch (as of the last poll).
    pub fn is_done(&self) -> bool {
        self.pieces
            .iter()
            .all(|p| p.done.lock().is_ok_and(|d| d.is_some()))
    }
}

/// One submitted (sub-)batch: its plan, its read-back buffer and the map callback's flag.
struct Piece {
    key: (usize, usize, usize),
    batch: usize,
    staging: wgpu::Buffer,
    floats: usize,
    submission: wgpu::SubmissionIndex,
    done: MapDone,
    /// The input's upload buffer, being mapped for the next batch.
    upload: plan::Upload,
}
