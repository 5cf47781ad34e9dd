//! The trainer's values read back and written: the current head, and the optimizer state and
//! step count that checkpoints save and restore.

use super::super::config::OptimizerState;
use super::super::head::{ConvPart, DenseHost, HeadWeights};
use super::{Layer, Trainer};
use crate::error::{Error, Result};
use crate::gpu::read_back_f32;

impl Trainer {
    fn read_parts(&self, bufs: &[wgpu::Buffer], l: &Layer) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(l.meta.out * l.meta.inp);
        for ((_, rows, _), b) in l.dense.weight.parts.iter().zip(bufs) {
            out.extend(read_back_f32(&self.ctx, b, rows * l.meta.inp)?);
        }
        Ok(out)
    }

    /// The current head values.
    pub fn head(&self) -> Result<HeadWeights> {
        let mut layers = Vec::new();
        for l in &self.layers {
            let bufs: Vec<wgpu::Buffer> = l
                .dense
                .weight
                .parts
                .iter()
                .map(|(_, _, b)| b.clone())
                .collect();
            layers.push(DenseHost {
                weight: self.read_parts(&bufs, l)?,
                bias: read_back_f32(&self.ctx, &l.dense.bias, l.meta.out)?,
                ..l.meta.clone()
            });
        }
        let conv = match (&self.conv, &self.conv_meta) {
            (Some(stack), Some(meta)) => Some(ConvPart {
                convs: stack.read_convs(&self.ctx)?,
                ..meta.clone()
            }),
            _ => None,
        };
        Ok(HeadWeights {
            kind: self.kind,
            layers,
            conv,
        })
    }

    /// Every value in the pad columns of the trained convolutions' stored weights, gradients
    /// and optimizer state ([`super::super::conv_stack::ConvStack::pad_values`]: conv1's rows
    /// of 364 for K = 363); all zero, as the backward kernels never write there.
    pub fn conv_pad_values(&self) -> Result<Vec<f32>> {
        match &self.conv {
            Some(stack) => stack.pad_values(&self.ctx),
            None => Ok(Vec::new()),
        }
    }

    /// Optimizer state per layer as `(name, weight-shaped, bias-shaped)` arrays, for checkpoints.
    pub fn optimizer_state(&self) -> Result<Vec<OptimizerState>> {
        let mut out = Vec::new();
        for p in self.conv.iter().flat_map(|c| &c.params) {
            for (k, state) in [(1, &p.state1), (2, &p.state2)] {
                if let [w, b] = state.as_slice() {
                    out.push((
                        format!("{}.state{k}", p.name),
                        p.oihw(read_back_f32(&self.ctx, w, p.stored_len())?),
                        read_back_f32(&self.ctx, b, p.shape.out_c)?,
                    ));
                }
            }
        }
        for l in &self.layers {
            for (k, state) in [(1, &l.state1), (2, &l.state2)] {
                if state.is_empty() {
                    continue;
                }
                let n = state.len() - 1;
                out.push((
                    format!("{}.state{k}", l.meta.name),
                    self.read_parts(&state[..n], l)?,
                    read_back_f32(&self.ctx, &state[n], l.meta.out)?,
                ));
            }
        }
        Ok(out)
    }

    fn write_parts(&self, bufs: &[wgpu::Buffer], l: &Layer, data: &[f32]) {
        for ((first, rows, _), b) in l.dense.weight.parts.iter().zip(bufs) {
            let slice = &data[first * l.meta.inp..(first + rows) * l.meta.inp];
            self.ctx
                .queue
                .write_buffer(b, 0, bytemuck::cast_slice(slice));
        }
    }

    /// Restores optimizer state saved by [`Trainer::optimizer_state`] and the step count.
    pub fn restore(
        &mut self,
        state: &[(String, Vec<f32>, Vec<f32>)],
        steps_done: u64,
    ) -> Result<()> {
        for (name, w, b) in state {
            let Some((layer, k)) = name.rsplit_once(".state") else {
                continue;
            };
            if let Some(p) = self
                .conv
                .iter()
                .flat_map(|c| &c.params)
                .find(|p| p.name == layer)
            {
                let bufs = if k == "1" { &p.state1 } else { &p.state2 };
                let [bw, bb] = bufs.as_slice() else {
                    return Err(Error::Invalid(format!(
                        "checkpoint state '{name}' does not fit this optimizer"
                    )));
                };
                if w.len() != p.shape.weight_len() || b.len() != p.shape.out_c {
                    return Err(Error::Invalid(format!(
                        "checkpoint state '{name}' does not fit this network"
                    )));
                }
                let w = p.stored(w);
                self.ctx.queue.write_buffer(bw, 0, bytemuck::cast_slice(&w));
                self.ctx.queue.write_buffer(bb, 0, bytemuck::cast_slice(b));
                continue;
            }
            let Some(l) = self.layers.iter().find(|l| l.meta.name == layer) else {
                continue;
            };
            let bufs = if k == "1" { &l.state1 } else { &l.state2 };
            if bufs.is_empty() || w.len() != l.meta.out * l.meta.inp || b.len() != l.meta.out {
                return Err(Error::Invalid(format!(
                    "checkpoint state '{name}' does not fit this head"
                )));
            }
            let n = bufs.len() - 1;
            self.write_parts(&bufs[..n], l, w);
            self.ctx
                .queue
                .write_buffer(&bufs[n], 0, bytemuck::cast_slice(b));
        }
        self.steps_done = steps_done;
        Ok(())
    }
}
