//! The convolutional part of AlexNet on the GPU for `--train-from conv1..conv5`: a run of
//! layers (convolutions with fused ReLU, LRN, max and adaptive average pools) that keeps every
//! op's output for the backward pass, and, when trained, the gradients and optimizer state of
//! its convolutions. The frozen part below the first trained layer is the same stack without
//! gradients, run forward once per image to fill the cache.
//!
//! Forward convolutions run what the network's own route picks for each shape
//! (`Kernels::conv_route`: the matmul path, the tuner's entry, the heuristics), so training and
//! inference run the same kernel for the same shape. Those GEMMs read weight rows padded to a
//! multiple of 4 (`ConvLayout::PaddedRows`), the same layout as OIHW exactly when K = in_c /
//! groups * k^2 is a multiple of 4 (conv2..conv5 of every preset). A trained convolution whose
//! K is not (conv1: K = 363, rows of 364) keeps its weights, their gradient and the optimizer
//! state in the padded layout for the whole run: the GEMM backward kernels read and write rows
//! of any stride and never touch the pad column, whose gradient is therefore zero, so the
//! optimizer keeps the weights' pad zero (`ConvStack::pad_values` shows it). Values are padded
//! on upload and stripped on read-back ([`ConvParam::row`]). Only the direct backward loops
//! (`ALEXNET_CONV_BACKWARD=direct`, OIHW only) keep OIHW weights with a padded copy refreshed by
//! `pad_rows.wgsl` at the start of every forward pass.

use std::collections::HashMap;

use super::config::Optimizer;
use super::head::ConvHost;
use crate::error::{Error, Result};
use crate::gpu::{read_back_f32, storage_buffer, upload_f32, GpuContext};
use crate::kernels::conv2d::{self, Conv2dShape};
use crate::kernels::conv_gemm_backward::ConvGemmScratch;
use crate::kernels::pad_rows;
use crate::kernels::route::ConvLayout;
use crate::kernels::{self, Dispatch, Kernels, Precision};
use crate::model::ops::{fuse, Op};
use crate::model::Layer;

mod backward;

/// One convolution's buffers. Trained ones also hold gradients and optimizer state.
pub struct ConvParam {
    /// Its parameter name ("conv4").
    pub name: String,
    /// Geometry for one image.
    pub shape: Conv2dShape,
    /// OIHW rows of [`ConvParam::row`] values (K, or K padded to whole vec4 with zeros for
    /// the GEMMs).
    pub weight: wgpu::Buffer,
    /// The bias.
    pub bias: wgpu::Buffer,
    /// Values per stored row of `weight`, of its gradient and of its optimizer state.
    pub row: usize,
    /// Trained on the direct backward loops with K not a multiple of 4 on a GEMM path: the
    /// rows-padded copy of `weight` the forward GEMM reads, refreshed before each forward pass.
    padded: Option<wgpu::Buffer>,
    /// The weight gradient (trained convolutions), laid out like `weight`.
    pub grad_w: Option<wgpu::Buffer>,
    /// The bias gradient (trained convolutions).
    pub grad_b: Option<wgpu::Buffer>,
    /// Momentum (SGD) or first moments (Adam): weight-shaped (as stored), bias-shaped.
    pub state1: Vec<wgpu::Buffer>,
    /// Second moments (Adam only).
    pub state2: Vec<wgpu::Buffer>,
}

impl ConvParam {
    /// Values of the stored weight (and of its gradient and optimizer state).
    pub fn stored_len(&self) -> usize {
        self.shape.out_c * self.row
    }

    /// OIHW `values` in the stored layout (the pad zero).
    pub fn stored(&self, values: &[f32]) -> Vec<f32> {
        match self.row == self.shape.k() {
            true => values.to_vec(),
            false => conv2d::weight_for_gemm(&self.shape, values),
        }
    }

    /// Stored `values` as OIHW (the pad dropped).
    pub fn oihw(&self, values: Vec<f32>) -> Vec<f32> {
        let k = self.shape.k();
        match self.row == k {
            true => values,
            false => values
                .chunks_exact(self.row)
                .flat_map(|r| r[..k].to_vec())
                .collect(),
        }
    }
}

/// One fused op of the stack ([`fuse`]) with its geometry for one image.
struct OpInfo {
    op: Op,
    /// Index into `params` (convolutions).
    conv: Option<usize>,
    input: [usize; 3],
    output: [usize; 3],
}

/// The convolutional part of a network on the GPU, frozen or trained, with its forward and backward dispatches.
pub struct ConvStack {
    /// The layers the ops index.
    layers: Vec<Layer>,
    ops: Vec<OpInfo>,
    /// Each convolution's buffers, in order.
    pub params: Vec<ConvParam>,
    /// `[max_batch, input]`: what the stack reads (the frozen part's output, or images).
    pub input: wgpu::Buffer,
    input_shape: [usize; 3],
    /// Output of each op, `[max_batch, output]`.
    acts: Vec<wgpu::Buffer>,
    /// Gradient of each op's output except the last one's (given to [`ConvStack::backward`]).
    grads: Vec<wgpu::Buffer>,
    scratch: Option<wgpu::Buffer>,
    /// Scratch of the convolutions' backward GEMMs (trained stacks, unless
    /// `ALEXNET_CONV_BACKWARD=direct` asks for the direct loops of `conv_backward.wgsl`).
    gemm_scratch: Option<ConvGemmScratch>,
    max_batch: usize,
    fk: Kernels,
    /// Forward dispatches per batch size (for [`ConvStack::run`]).
    plans: HashMap<usize, Vec<Dispatch>>,
}

impl ConvStack {
    /// `layers` (no flatten or dense layer) on inputs of `input` `[C, H, W]`, the convolutions'
    /// values from `convs` in order; `train`: allocate gradients and this optimizer's state.
    pub fn new(
        ctx: &GpuContext,
        layers: &[Layer],
        input: [usize; 3],
        convs: &[ConvHost],
        max_batch: usize,
        train: Option<Optimizer>,
    ) -> Result<Self> {
        let hint = "use a smaller batch";
        let fk = Kernels::new(ctx);
        let mut ops: Vec<OpInfo> = Vec::new();
        let mut params = Vec::new();
        if let Some(other) = layers.iter().find(|l| {
            !matches!(
                l,
                Layer::Conv { .. }
                    | Layer::Relu
                    | Layer::MaxPool { .. }
                    | Layer::Lrn(_)
                    | Layer::AdaptiveAvgPool { .. }
            )
        }) {
            return Err(Error::Invalid(format!(
                "layer '{}' is not part of the convolutional part",
                other.describe()
            )));
        }
        let direct = ctx.options.conv_backward == crate::options::ConvBackward::Direct;
        let mut shape = input;
        let mut convs_left = convs.iter();
        for op in fuse(layers).0 {
            let layer = &layers[op.layer()];
            let c = shape[0];
            let (conv, out) = match (op, layer) {
                (Op::Conv { .. }, Layer::Conv { name, .. }) => {
                    let s = layer.conv_shape(1, shape).expect("a conv layer");
                    let (oh, ow) = s.out_hw()?;
                    let host = convs_left
                        .next()
                        .filter(|h| h.name == *name && h.shape == s)
                        .ok_or_else(|| {
                            Error::Invalid(format!("no values for {name} of shape {s:?}"))
                        })?;
                    if host.weight.len() != s.weight_len() || host.bias.len() != s.out_c {
                        return Err(Error::Invalid(format!(
                            "{name}: expected {} weights and {} biases, found {} and {}",
                            s.weight_len(),
                            s.out_c,
                            host.weight.len(),
                            host.bias.len()
                        )));
                    }
                    let layout = fk.conv_layout(Precision::F32);
                    let repad = layout == ConvLayout::PaddedRows && s.k() != s.kp();
                    // The direct backward loops read and write OIHW only.
                    let (weight, padded, row) = match (repad, train.is_some() && direct) {
                        (true, false) => (
                            upload_f32(ctx, name, &conv2d::weight_for_gemm(&s, &host.weight))?,
                            None,
                            s.kp(),
                        ),
                        (true, true) => (
                            upload_f32(ctx, name, &host.weight)?,
                            Some(storage_buffer(ctx, name, s.out_c * s.kp(), hint)?),
                            s.k(),
                        ),
                        (false, _) => (upload_f32(ctx, name, &host.weight)?, None, s.k()),
                    };
                    let zeros = |n: usize| storage_buffer(ctx, "conv training state", n, hint);
                    let pair = || -> Result<Vec<wgpu::Buffer>> {
                        Ok(vec![zeros(s.out_c * row)?, zeros(s.out_c)?])
                    };
                    let (grad_w, grad_b, state1, state2) = match train {
                        None => (None, None, Vec::new(), Vec::new()),
                        Some(opt) => (
                            Some(zeros(s.out_c * row)?),
                            Some(zeros(s.out_c)?),
                            pair()?,
                            match opt {
                                Optimizer::Adam { .. } => pair()?,
                                Optimizer::Sgd { .. } => Vec::new(),
                            },
                        ),
                    };
                    params.push(ConvParam {
                        name: name.to_string(),
                        shape: s,
                        weight,
                        bias: upload_f32(ctx, name, &host.bias)?,
                        row,
                        padded,
                        grad_w,
                        grad_b,
                        state1,
                        state2,
                    });
                    (Some(params.len() - 1), [s.out_c, oh, ow])
                }
                (Op::MaxPool { .. }, _) => {
                    let pool = layer.pool_shape(1, shape).expect("a max pool");
                    let (oh, ow) = pool.out_hw()?;
                    (None, [c, oh, ow])
                }
                (Op::Lrn { .. }, _) => (None, shape),
                (Op::AvgPool { .. }, _) => {
                    let pool = layer
                        .adaptive_pool_shape(1, shape)
                        .expect("an adaptive pool");
                    (None, [c, pool.out_h, pool.out_w])
                }
                _ => {
                    return Err(Error::Invalid(
                        "a ReLU that does not follow a convolution cannot be trained".into(),
                    ))
                }
            };
            ops.push(OpInfo {
                op,
                conv,
                input: shape,
                output: out,
            });
            shape = out;
        }
        let len = |s: [usize; 3]| s.iter().product::<usize>();
        let acts = ops
            .iter()
            .map(|o| storage_buffer(ctx, "activations", max_batch * len(o.output), hint))
            .collect::<Result<Vec<_>>>()?;
        let grads = match train {
            Some(_) => ops
                .iter()
                .take(ops.len().saturating_sub(1))
                .map(|o| {
                    storage_buffer(ctx, "activation gradient", max_batch * len(o.output), hint)
                })
                .collect::<Result<Vec<_>>>()?,
            None => Vec::new(),
        };
        // One scratch for every batch size the stack runs (up to `max_batch`).
        let at_max: Vec<Conv2dShape> = params
            .iter()
            .map(|p| Conv2dShape {
                batch: max_batch,
                ..p.shape
            })
            .collect();
        let scratch = match fk.conv_scratch_words_up_to(ctx, &at_max, Precision::F32)? {
            Some(words) => Some(storage_buffer(ctx, "im2col", words, hint)?),
            None => None,
        };
        let gemm_scratch = match train {
            Some(_) if !direct && !params.is_empty() => {
                let shapes: Vec<Conv2dShape> = params
                    .iter()
                    .map(|p| Conv2dShape {
                        batch: max_batch,
                        ..p.shape
                    })
                    .collect();
                Some(ConvGemmScratch::new(ctx, &shapes)?.with_mm_part(ctx, &fk, &shapes)?)
            }
            _ => None,
        };
        Ok(ConvStack {
            layers: layers.to_vec(),
            gemm_scratch,
            ops,
            params,
            input: storage_buffer(ctx, "conv part input", max_batch * len(input), hint)?,
            input_shape: input,
            acts,
            grads,
            scratch,
            max_batch,
            fk,
            plans: HashMap::new(),
        })
    }

    /// Floats of one input.
    pub fn input_len(&self) -> usize {
        self.input_shape.iter().product()
    }

    /// `[C, H, W]` of one output.
    pub fn output_shape(&self) -> [usize; 3] {
        self.ops.last().map_or(self.input_shape, |o| o.output)
    }

    /// Floats of one output.
    pub fn output_len(&self) -> usize {
        self.output_shape().iter().product()
    }

    /// The last op's output (the input when there is no op).
    pub fn output(&self) -> &wgpu::Buffer {
        self.acts.last().unwrap_or(&self.input)
    }

    fn act_in(&self, i: usize) -> &wgpu::Buffer {
        if i == 0 {
            &self.input
        } else {
            &self.acts[i - 1]
        }
    }

    /// The forward pass of `batch` rows of `input` into every op's output.
    pub fn forward(&self, ctx: &GpuContext, batch: usize) -> Result<Vec<Dispatch>> {
        let mut out = Vec::new();
        for (i, o) in self.ops.iter().enumerate() {
            let (x, y) = (self.act_in(i), &self.acts[i]);
            let layer = &self.layers[o.op.layer()];
            match o.op {
                Op::Conv { relu, .. } => {
                    let p = &self.params[o.conv.expect("a conv op has params")];
                    let shape = Conv2dShape { batch, ..p.shape };
                    let weight = match &p.padded {
                        Some(padded) => {
                            let dims = (shape.out_c, shape.k(), shape.kp());
                            out.push(pad_rows::dispatch(ctx, &self.fk, dims, &p.weight, padded)?);
                            padded
                        }
                        None => &p.weight,
                    };
                    out.extend(self.fk.conv_route(&shape, Precision::F32)?.dispatch(
                        ctx,
                        &self.fk,
                        &shape,
                        relu,
                        weight,
                        &p.bias,
                        x,
                        y,
                        self.scratch.as_ref(),
                    )?);
                }
                Op::MaxPool { .. } => out.push(kernels::max_pool::dispatch(
                    ctx,
                    &self.fk.max_pool(),
                    &layer.pool_shape(batch, o.input).expect("a max pool"),
                    x,
                    y,
                )?),
                Op::Lrn { .. } => {
                    let (Layer::Lrn(l), [c, h, w]) = (layer, o.input) else {
                        unreachable!("an LRN op is an LRN layer")
                    };
                    out.push(kernels::lrn::dispatch(
                        ctx,
                        &self.fk.lrn(),
                        l,
                        batch,
                        c,
                        h * w,
                        x,
                        y,
                    )?)
                }
                Op::AvgPool { .. } => out.push(kernels::adaptive_avg_pool::dispatch(
                    ctx,
                    &self.fk.adaptive_avg_pool(),
                    &layer
                        .adaptive_pool_shape(batch, o.input)
                        .expect("an adaptive pool"),
                    x,
                    y,
                )?),
                _ => unreachable!("ConvStack::new admits no other op"),
            }
        }
        Ok(out)
    }
    /// Runs `batch` rows `x` forward and reads the output back (the frozen part's cache).
    pub fn run(&mut self, ctx: &GpuContext, x: &[f32], batch: usize) -> Result<Vec<f32>> {
        if batch == 0 || batch > self.max_batch || x.len() != batch * self.input_len() {
            return Err(Error::Invalid(format!(
                "{} values for {batch} rows of {} (at most {} rows)",
                x.len(),
                self.input_len(),
                self.max_batch
            )));
        }
        if self.ops.is_empty() {
            return Ok(x.to_vec());
        }
        if !self.plans.contains_key(&batch) {
            let plan = self.forward(ctx, batch)?;
            self.plans.insert(batch, plan);
        }
        ctx.queue
            .write_buffer(&self.input, 0, bytemuck::cast_slice(x));
        kernels::run(ctx, &self.plans[&batch])?;
        read_back_f32(ctx, self.output(), batch * self.output_len())
    }

    /// The convolutions' current values (OIHW).
    pub fn read_convs(&self, ctx: &GpuContext) -> Result<Vec<ConvHost>> {
        self.params
            .iter()
            .map(|p| {
                Ok(ConvHost {
                    name: p.name.clone(),
                    shape: p.shape,
                    weight: p.oihw(read_back_f32(ctx, &p.weight, p.stored_len())?),
                    bias: read_back_f32(ctx, &p.bias, p.shape.out_c)?,
                })
            })
            .collect()
    }

    /// Every value in the pad columns (past K in each stored row) of the trained
    /// convolutions' weights, gradients and optimizer state: zero when the backward kernels
    /// keep off them (empty where no row is padded).
    pub fn pad_values(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        for p in &self.params {
            let k = p.shape.k();
            let bufs = p
                .grad_w
                .iter()
                .chain(p.state1.first())
                .chain(p.state2.first());
            for b in std::iter::once(&p.weight).chain(bufs) {
                let v = read_back_f32(ctx, b, p.stored_len())?;
                out.extend(v.chunks_exact(p.row).flat_map(|r| r[k..].to_vec()));
            }
        }
        Ok(out)
    }
}
