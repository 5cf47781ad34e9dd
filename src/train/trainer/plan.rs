//! What a step dispatches, built once per batch size: the forward pass (with dropout and the
//! fused cross-entropy), the backward pass, and one optimizer update per parameter buffer.

use super::super::config::Optimizer;
use super::super::head::HeadKind;
use super::step::{Step, StepPlan};
use super::{dropout_seed, Trainer};
use crate::error::Result;
use crate::kernels::Dispatch;
use crate::kernels::{adam, cross_entropy, dense_backward, dropout, relu_backward, sgd};

impl Trainer {
    /// The learning-rate factor of a trained layer: 1 for the new last layer, the backbone
    /// factor for the others.
    fn lr_mult(&self, name: &str) -> f32 {
        if name == "fc8" {
            1.0
        } else {
            self.cfg.lr_backbone_mult
        }
    }

    fn update(
        &self,
        len: usize,
        grad: &wgpu::Buffer,
        param: &wgpu::Buffer,
        s1: &wgpu::Buffer,
        s2: Option<&wgpu::Buffer>,
    ) -> Result<Dispatch> {
        match (self.cfg.optimizer, s2) {
            (Optimizer::Adam { .. }, Some(s2)) => {
                adam::dispatch(&self.ctx, &self.fk, len, grad, param, s1, s2)
            }
            _ => sgd::dispatch(&self.ctx, &self.fk, len, grad, param, s1),
        }
    }

    pub(super) fn build_updates(&self) -> Result<Vec<(Dispatch, usize, f32)>> {
        let mut out = Vec::new();
        if let Some(stack) = &self.conv {
            for p in &stack.params {
                let mult = self.lr_mult(&p.name);
                let (gw, gb) = (
                    p.grad_w.as_ref().expect("trained"),
                    p.grad_b.as_ref().expect("trained"),
                );
                let (wl, bl) = (p.stored_len(), p.shape.out_c);
                out.push((
                    self.update(wl, gw, &p.weight, &p.state1[0], p.state2.first())?,
                    wl,
                    mult,
                ));
                out.push((
                    self.update(bl, gb, &p.bias, &p.state1[1], p.state2.get(1))?,
                    bl,
                    mult,
                ));
            }
        }
        for l in &self.layers {
            let mult = self.lr_mult(&l.meta.name);
            let params: Vec<(&wgpu::Buffer, usize)> = l
                .dense
                .weight
                .parts
                .iter()
                .map(|(_, rows, buf)| (buf, rows * l.meta.inp))
                .chain(std::iter::once((&l.dense.bias, l.meta.out)))
                .collect();
            let grads: Vec<&wgpu::Buffer> =
                l.grad_w.iter().chain(std::iter::once(&l.grad_b)).collect();
            for (j, ((param, len), grad)) in params.into_iter().zip(grads).enumerate() {
                let d = match self.cfg.optimizer {
                    Optimizer::Sgd { .. } => {
                        sgd::dispatch(&self.ctx, &self.fk, len, grad, param, &l.state1[j])?
                    }
                    Optimizer::Adam { .. } => adam::dispatch(
                        &self.ctx,
                        &self.fk,
                        len,
                        grad,
                        param,
                        &l.state1[j],
                        &l.state2[j],
                    )?,
                };
                out.push((d, len, mult));
            }
        }
        Ok(out)
    }

    /// Dropout comes before fc6 and fc7 (as in every preset), when they are trained.
    fn has_dropout(&self, layer: usize) -> bool {
        self.kind != HeadKind::Last
            && self.cfg.dropout > 0.0
            && matches!(self.layers[layer].meta.name.as_str(), "fc6" | "fc7")
    }

    fn build_plan(&self, batch: usize) -> Result<StepPlan> {
        let (ctx, n) = (&self.ctx, self.layers.len());
        let classes = self.layers[n - 1].meta.out;
        let input_of = |i: usize| {
            if i == 0 {
                &self.x0
            } else {
                &self.layers[i - 1].act
            }
        };
        let mut fwd_train = Vec::new();
        let mut fwd_eval = Vec::new();
        if let Some(stack) = &self.conv {
            fwd_train.extend(stack.forward(ctx, batch)?.into_iter().map(Step::Fixed));
            fwd_eval.extend(stack.forward(ctx, batch)?.into_iter().map(Step::Fixed));
        }
        for (i, l) in self.layers.iter().enumerate() {
            if self.has_dropout(i) {
                let len = batch * l.meta.inp;
                let p = dropout::DropoutParams::new(
                    len,
                    dropout_seed(self.cfg.seed, i as u32),
                    0,
                    self.cfg.dropout,
                );
                fwd_train.push(Step::Dropout(
                    dropout::dispatch(ctx, &self.fk, p, input_of(i))?,
                    i as u32,
                ));
            }
            let mk = || {
                l.dense
                    .forward(ctx, &self.fk, batch, input_of(i), &l.act, None)
            };
            fwd_train.extend(mk()?.into_iter().map(Step::Fixed));
            fwd_eval.extend(mk()?.into_iter().map(Step::Fixed));
        }
        let logits = &self.layers[n - 1].act;
        let ce = |stats| {
            cross_entropy::dispatch(
                ctx,
                &self.fk,
                batch,
                classes,
                logits,
                &self.labels,
                &self.grad_logits,
                stats,
            )
        };
        let mut train = fwd_train;
        train.push(Step::CrossEntropy(ce(&self.stats)?));
        let mut eval = fwd_eval;
        eval.push(Step::CrossEntropy(ce(&self.eval_stats)?));

        for i in (0..n).rev() {
            let l = &self.layers[i];
            let dy = if i == n - 1 {
                &self.grad_logits
            } else {
                self.layers[i + 1]
                    .grad_in
                    .as_ref()
                    .expect("grad_in of upper layer")
            };
            let gw = dense_backward::grad_weight_bias(
                ctx,
                &self.fk,
                batch,
                &l.dense.weight,
                input_of(i),
                dy,
                &l.grad_w,
                &l.grad_b,
            )?;
            train.extend(gw.into_iter().map(Step::Fixed));
            if let Some(gin) = &l.grad_in {
                let gi =
                    dense_backward::grad_input(ctx, &self.fk, batch, &l.dense.weight, dy, gin)?;
                train.extend(gi.into_iter().map(Step::Fixed));
                if self.has_dropout(i) {
                    let len = batch * l.meta.inp;
                    let p = dropout::DropoutParams::new(
                        len,
                        dropout_seed(self.cfg.seed, i as u32),
                        0,
                        self.cfg.dropout,
                    );
                    train.push(Step::Dropout(
                        dropout::dispatch(ctx, &self.fk, p, gin)?,
                        i as u32,
                    ));
                }
                // The layer below's ReLU (its output is this layer's input, after dropout);
                // below fc6 comes the convolutional part, whose backward applies its own.
                if i > 0 && self.layers[i - 1].meta.relu {
                    train.push(Step::Fixed(relu_backward::dispatch(
                        ctx,
                        &self.fk,
                        batch * l.meta.inp,
                        input_of(i),
                        gin,
                    )?));
                }
            }
        }
        if let Some(stack) = &self.conv {
            let dy = self.layers[0].grad_in.as_ref().expect("grad_in of fc6");
            train.extend(stack.backward(ctx, batch, dy)?.into_iter().map(Step::Fixed));
        }
        Ok(StepPlan { train, eval })
    }

    /// Builds the dispatches for `batch` rows the first time that size is seen.
    pub(super) fn ensure_plan(&mut self, batch: usize) -> Result<()> {
        if !self.plans.contains_key(&batch) {
            let plan = self.build_plan(batch)?;
            self.plans.insert(batch, plan);
        }
        Ok(())
    }
}
