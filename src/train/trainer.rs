//! The GPU trainer: forward, fused softmax cross-entropy, backward and optimizer updates of the
//! trained layers (the dense head, and from `--train-from conv1..conv5` the convolutional part
//! before it, `conv_stack.rs`), every step recorded into one command buffer; loss and accuracy
//! accumulate on the GPU and are read back once per epoch.

use std::collections::HashMap;

pub use super::config::{Optimizer, OptimizerState, TrainConfig};
use super::conv_stack::ConvStack;
use super::head::{DenseHost, HeadKind, HeadWeights};
use crate::error::{Error, Result};
use crate::gpu::{read_back_f32, storage_buffer, GpuContext};
use crate::kernels::{adam, cross_entropy, dropout, sgd};
use crate::kernels::{Dispatch, Kernels, Precision};
use crate::model::dense::GpuDense;

mod plan;
mod profile;
mod resident;
mod state;
mod step;

pub use profile::StepTime;
pub use resident::{default_budget, resident_parts, MAX_PARTS};
use step::{Step, StepPlan};

/// Loss and accuracy summed on the GPU over an epoch (or an evaluation).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Summed loss.
    pub loss_sum: f64,
    /// Correct predictions.
    pub correct: f64,
    /// Rows.
    pub count: f64,
    /// Mean loss of each step's batch (before its update), in step order.
    pub step_losses: Vec<f32>,
}

impl Stats {
    /// Mean loss.
    pub fn loss(&self) -> f64 {
        self.loss_sum / self.count.max(1.0)
    }
    /// Share correct.
    pub fn accuracy(&self) -> f64 {
        self.correct / self.count.max(1.0)
    }
}

struct Layer {
    meta: DenseHost,
    /// The layer on the GPU, run forward by the network's own dense code.
    dense: GpuDense,
    grad_w: Vec<wgpu::Buffer>,
    grad_b: wgpu::Buffer,
    /// Momentum buffers (SGD) or first moments (Adam), per weight part, then the bias.
    state1: Vec<wgpu::Buffer>,
    /// Second moments (Adam only).
    state2: Vec<wgpu::Buffer>,
    /// Output activations `[max_batch, out]`.
    act: wgpu::Buffer,
    /// Gradient with respect to the input `[max_batch, inp]` (all but the first layer).
    grad_in: Option<wgpu::Buffer>,
}

/// Trains a head (and a convolutional part) on the GPU: forward, loss, backward and optimizer steps.
pub struct Trainer {
    ctx: GpuContext,
    fk: Kernels,
    /// Which layers it trains.
    pub kind: HeadKind,
    /// The arithmetic.
    pub cfg: TrainConfig,
    layers: Vec<Layer>,
    /// The trained convolutional part (`--train-from conv1..conv5`): its output is `x0`.
    conv: Option<ConvStack>,
    /// Its layer list and input shape (values read back from `conv`).
    conv_meta: Option<super::head::ConvPart>,
    x0: wgpu::Buffer,
    labels: wgpu::Buffer,
    grad_logits: wgpu::Buffer,
    stats: wgpu::Buffer,
    eval_stats: wgpu::Buffer,
    stat_slots: usize,
    max_batch: usize,
    plans: HashMap<usize, StepPlan>,
    /// One optimizer dispatch per parameter buffer: (dispatch, element count, lr factor).
    updates: Vec<(Dispatch, usize, f32)>,
    /// Optimizer steps taken so far (drives Adam's bias correction, SGD's first step and
    /// the dropout masks).
    pub steps_done: u64,
    /// Command buffers submitted so far (`bench --train-from` shows one per step).
    submissions: std::sync::atomic::AtomicU64,
    /// The training rows in GPU memory, when they fit (`resident.rs`).
    resident: Option<resident::Resident>,
}

pub(crate) fn dropout_seed(seed: u64, tag: u32) -> u32 {
    (seed as u32) ^ ((seed >> 32) as u32) ^ tag.wrapping_mul(0x9E37_79B9)
}

impl Trainer {
    /// Uploads `head` and allocates everything for batches of up to `max_batch` and epochs of up
    /// to `steps_per_epoch` steps (for the per-step loss log).
    pub fn new(
        ctx: &GpuContext,
        head: &HeadWeights,
        cfg: TrainConfig,
        max_batch: usize,
        steps_per_epoch: usize,
    ) -> Result<Self> {
        if max_batch == 0 {
            return Err(Error::Invalid("batch size must be at least 1".into()));
        }
        let hint = "use a smaller batch";
        let conv = match &head.conv {
            Some(c) => {
                let stack = ConvStack::new(
                    ctx,
                    &c.layers,
                    c.input,
                    &c.convs,
                    max_batch,
                    Some(cfg.optimizer),
                )?;
                if stack.output_len() != head.layers[0].inp {
                    return Err(Error::Invalid(format!(
                        "the convolutional part gives {} values per image but {} takes {}",
                        stack.output_len(),
                        head.layers[0].name,
                        head.layers[0].inp
                    )));
                }
                Some(stack)
            }
            None => None,
        };
        let mut layers = Vec::new();
        for (i, l) in head.layers.iter().enumerate() {
            let dense = GpuDense::upload(
                ctx,
                &l.name,
                &l.weight,
                &l.bias,
                l.out,
                l.inp,
                l.relu,
                Precision::F32,
            )?;
            let weight = &dense.weight;
            let zeros_like = |label: &str| -> Result<Vec<wgpu::Buffer>> {
                let mut v = weight
                    .parts
                    .iter()
                    .map(|(_, rows, _)| storage_buffer(ctx, label, rows * l.inp, hint))
                    .collect::<Result<Vec<_>>>()?;
                v.push(storage_buffer(ctx, label, l.out, hint)?);
                Ok(v)
            };
            let mut grads = zeros_like("gradient")?;
            let grad_b = grads.pop().expect("bias gradient");
            let state1 = zeros_like("optimizer state")?;
            let state2 = match cfg.optimizer {
                Optimizer::Adam { .. } => zeros_like("optimizer state")?,
                Optimizer::Sgd { .. } => Vec::new(),
            };
            layers.push(Layer {
                dense,
                grad_w: grads,
                grad_b,
                state1,
                state2,
                act: storage_buffer(ctx, "activations", max_batch * l.out, hint)?,
                grad_in: if i > 0 || conv.is_some() {
                    Some(storage_buffer(
                        ctx,
                        "input gradient",
                        max_batch * l.inp,
                        hint,
                    )?)
                } else {
                    None
                },
                meta: DenseHost {
                    weight: Vec::new(),
                    bias: Vec::new(),
                    ..l.clone()
                },
            });
        }
        let classes = head.classes();
        let stat_slots = steps_per_epoch.max(1);
        let labels = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("labels"),
            size: (max_batch * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut trainer = Trainer {
            ctx: ctx.clone(),
            fk: Kernels::new(ctx),
            kind: head.kind,
            cfg,
            x0: match &conv {
                Some(c) => c.output().clone(),
                None => storage_buffer(ctx, "head input", max_batch * head.input_len(), hint)?,
            },
            labels,
            grad_logits: storage_buffer(ctx, "logit gradient", max_batch * classes, hint)?,
            stats: storage_buffer(ctx, "stats", cross_entropy::STATS_HEADER + stat_slots, hint)?,
            eval_stats: storage_buffer(ctx, "eval stats", cross_entropy::STATS_HEADER + 1, hint)?,
            stat_slots,
            max_batch,
            plans: HashMap::new(),
            updates: Vec::new(),
            steps_done: 0,
            submissions: Default::default(),
            resident: None,
            layers,
            conv,
            conv_meta: head.conv.clone(),
        };
        trainer.updates = trainer.build_updates()?;
        Ok(trainer)
    }

    fn write_uniform<T: bytemuck::Pod>(&self, d: &Dispatch, value: &T) {
        self.ctx
            .queue
            .write_buffer(&d._params, 0, bytemuck::bytes_of(value));
    }

    /// Values per input row (the head's, or the trained convolutional part's).
    pub fn input_len(&self) -> usize {
        match &self.conv {
            Some(c) => c.input_len(),
            None => self.layers[0].meta.inp,
        }
    }

    /// The buffer a batch's input rows go to.
    fn input_buffer(&self) -> &wgpu::Buffer {
        match &self.conv {
            Some(c) => &c.input,
            None => &self.x0,
        }
    }

    fn check_batch(&self, batch: usize) -> Result<()> {
        if batch == 0 || batch > self.max_batch {
            return Err(Error::Invalid(format!(
                "a batch of {batch} rows (at most {})",
                self.max_batch
            )));
        }
        Ok(())
    }

    fn upload_labels(&self, labels: &[u32]) -> Result<()> {
        let classes = self.classes() as u32;
        if let Some(bad) = labels.iter().find(|&&l| l >= classes) {
            return Err(Error::Invalid(format!(
                "label {bad} out of range for {classes} classes"
            )));
        }
        self.ctx
            .queue
            .write_buffer(&self.labels, 0, bytemuck::cast_slice(labels));
        Ok(())
    }

    fn upload_batch(&self, x: &[f32], labels: &[u32]) -> Result<usize> {
        let batch = labels.len();
        let inp = self.input_len();
        if batch == 0 || batch > self.max_batch || x.len() != batch * inp {
            return Err(Error::Invalid(format!(
                "a batch of {batch} labels and {} inputs (expected {batch} x {inp}, at most {} rows)",
                x.len(),
                self.max_batch
            )));
        }
        self.upload_labels(labels)?;
        self.ctx
            .queue
            .write_buffer(self.input_buffer(), 0, bytemuck::cast_slice(x));
        Ok(batch)
    }

    /// Command buffers this trainer has submitted (a training step is one).
    pub fn submissions(&self) -> u64 {
        self.submissions.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Outputs of the last layer: the class count.
    pub fn classes(&self) -> usize {
        self.layers.last().map(|l| l.meta.out).unwrap_or(0)
    }

    fn record(&self, steps: &[Step], extra: &[&Dispatch]) {
        self.record_with(steps, extra, false)
    }

    /// Records, with `gather`, the batch's gather from the resident rows, then `steps` and
    /// `extra`, as one command buffer.
    fn record_with(&self, steps: &[Step], extra: &[&Dispatch], gather: bool) {
        let mut encoder = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("train step"),
            });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("train step"),
                timestamp_writes: None,
            });
            if gather {
                self.record_gather(&mut pass);
            }
            for s in steps {
                match s {
                    Step::Fixed(d) | Step::Dropout(d, _) | Step::CrossEntropy(d) => {
                        d.record(&mut pass)
                    }
                }
            }
            for d in extra {
                d.record(&mut pass);
            }
        }
        self.ctx.queue.submit([encoder.finish()]);
        self.submissions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// One optimizer step on a batch (`x` is `[batch, input_len]`); `slot` is the step's index
    /// within the epoch (for the per-step loss log). Nothing is read back.
    pub fn train_step(&mut self, x: &[f32], labels: &[u32], lr: f32, slot: usize) -> Result<()> {
        let batch = self.upload_batch(x, labels)?;
        self.run_step(batch, lr, slot, false)
    }

    /// The step on the uploaded (or, with `gather`, resident) batch of `batch` rows.
    fn run_step(&mut self, batch: usize, lr: f32, slot: usize, gather: bool) -> Result<()> {
        self.ensure_plan(batch)?;
        let plan = &self.plans[&batch];
        let classes = self.classes();
        let t = self.steps_done;
        for s in &plan.train {
            match s {
                Step::Dropout(d, tag) => {
                    let len = batch * self.layers[*tag as usize].meta.inp;
                    let p = dropout::DropoutParams::new(
                        len,
                        dropout_seed(self.cfg.seed, *tag),
                        t as u32,
                        self.cfg.dropout,
                    );
                    self.write_uniform(d, &p);
                }
                Step::CrossEntropy(d) => self.write_uniform(
                    d,
                    &cross_entropy::CrossEntropyParams::new(batch, classes, slot % self.stat_slots),
                ),
                Step::Fixed(_) => {}
            }
        }
        for (d, len, mult) in &self.updates {
            let lr = lr * mult;
            match self.cfg.optimizer {
                Optimizer::Sgd { momentum } => self.write_uniform(
                    d,
                    &sgd::SgdParams {
                        len: *len as u32,
                        first: (t == 0) as u32,
                        _pad: [0; 2],
                        lr,
                        momentum,
                        weight_decay: self.cfg.weight_decay,
                        _pad1: 0.0,
                    },
                ),
                Optimizer::Adam { beta1, beta2, eps } => {
                    let step = (t + 1) as i32;
                    self.write_uniform(
                        d,
                        &adam::AdamParams {
                            len: *len as u32,
                            _pad: [0; 3],
                            lr,
                            beta1,
                            beta2,
                            eps,
                            weight_decay: self.cfg.weight_decay,
                            bias_correction1: 1.0 - beta1.powi(step),
                            bias_correction2: 1.0 - beta2.powi(step),
                            _pad1: 0.0,
                        },
                    )
                }
            }
        }
        let updates: Vec<&Dispatch> = self.updates.iter().map(|(d, _, _)| d).collect();
        self.record_with(&plan.train, &updates, gather);
        self.steps_done += 1;
        Ok(())
    }

    /// Reads and resets the epoch's stats (`steps` per-step losses).
    pub fn take_epoch_stats(&self, steps: usize) -> Result<Stats> {
        self.take_stats(&self.stats, steps.min(self.stat_slots))
    }

    fn take_stats(&self, buf: &wgpu::Buffer, steps: usize) -> Result<Stats> {
        let v = read_back_f32(&self.ctx, buf, cross_entropy::STATS_HEADER + steps)?;
        let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
        encoder.clear_buffer(buf, 0, None);
        self.ctx.queue.submit([encoder.finish()]);
        self.submissions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Stats {
            loss_sum: v[0] as f64,
            correct: v[1] as f64,
            count: v[2] as f64,
            step_losses: v[cross_entropy::STATS_HEADER..].to_vec(),
        })
    }

    /// Forward pass without dropout or updates: adds the batch's loss and accuracy to the
    /// evaluation stats (see [`Trainer::take_eval_stats`]) and, when `want_logits`, reads the
    /// logits back (otherwise nothing is read back).
    pub fn evaluate(&mut self, x: &[f32], labels: &[u32], want_logits: bool) -> Result<Vec<f32>> {
        let batch = self.upload_batch(x, labels)?;
        self.ensure_plan(batch)?;
        let plan = &self.plans[&batch];
        let classes = self.classes();
        for s in &plan.eval {
            if let Step::CrossEntropy(d) = s {
                self.write_uniform(
                    d,
                    &cross_entropy::CrossEntropyParams::new(batch, classes, 0),
                );
            }
        }
        self.record(&plan.eval, &[]);
        if !want_logits {
            return Ok(Vec::new());
        }
        read_back_f32(
            &self.ctx,
            &self.layers[self.layers.len() - 1].act,
            batch * classes,
        )
    }

    /// The evaluation sums since the last call (and resets them).
    pub fn take_eval_stats(&self) -> Result<Stats> {
        self.take_stats(&self.eval_stats, 0)
    }
}
