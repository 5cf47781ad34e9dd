//! The plan for one input size: every buffer bound and every dispatch recorded, so that a
//! forward pass only uploads, submits and reads back.

use super::super::Layer;
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
    /// `(op label, dispatches)` in execution order.
    pub steps: Vec<(String, Vec<Dispatch>)>,
    pub(super) input_len: usize,
}

impl Network {
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
            for (layer, info) in spec.layers.iter().zip(&infos) {
                if matches!(layer, Layer::Dense { .. }) {
                    let words = kernels::dense::scratch_words_f16(batch, info.input.len());
                    need = need.max(kernels::conv2d::scratch_words(ctx, words));
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

        let mut steps = Vec::new();
        let mut cur = Slot::Input;
        let last = self.ops.len().saturating_sub(1);
        for (k, op) in self.ops.iter().enumerate() {
            let li = op.layer();
            let info = &infos[li];
            let in_place = matches!(op, Op::Relu { .. });
            let dst = if in_place {
                cur
            } else if Some(k) == self.features_op {
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
            staging_bytes: (4 * batch * (2 * classes + feature_len)).max(4) as u64,
            steps,
            input_len,
        })
    }
}
