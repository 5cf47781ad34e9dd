//! The stack's backward pass: from the gradient of its output, each op's input gradient in
//! reverse order, and every trained convolution's weight and bias gradients.

use super::ConvStack;
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::kernels::conv2d::Conv2dShape;
use crate::kernels::conv_gemm_backward;
use crate::kernels::Dispatch;
use crate::kernels::{conv_backward, lrn_backward, pool_backward, relu_backward};
use crate::model::ops::Op;
use crate::model::Layer;

impl ConvStack {
    /// The backward pass of `batch` rows from `dy`, the gradient of the last op's output (it
    /// is modified: the last convolution's ReLU is applied to it in place when the stack ends
    /// in one): every convolution's weight and bias gradients, written.
    pub fn backward(
        &self,
        ctx: &GpuContext,
        batch: usize,
        dy: &wgpu::Buffer,
    ) -> Result<Vec<Dispatch>> {
        if self.ops.is_empty() {
            return Ok(Vec::new());
        }
        let tk = &self.fk;
        let mut out = Vec::new();
        let last = self.ops.len() - 1;
        for i in (0..=last).rev() {
            let o = &self.ops[i];
            let g_out = if i == last { dy } else { &self.grads[i] };
            // The gradient of this op's input (none for the first op: the input is frozen).
            let g_in = (i > 0).then(|| &self.grads[i - 1]);
            let x = self.act_in(i);
            let layer = &self.layers[o.op.layer()];
            match o.op {
                Op::Conv { relu, .. } => {
                    let p = &self.params[o.conv.expect("a conv op has params")];
                    let shape = Conv2dShape { batch, ..p.shape };
                    let [oc, oh, ow] = o.output;
                    if relu {
                        // The output is after the ReLU: positive exactly where its input was.
                        out.push(relu_backward::dispatch(
                            ctx,
                            tk,
                            batch * oc * oh * ow,
                            &self.acts[i],
                            g_out,
                        )?);
                    }
                    let (Some(gw), Some(gb)) = (&p.grad_w, &p.grad_b) else {
                        return Err(Error::Invalid(format!("{} is not trained", p.name)));
                    };
                    match &self.gemm_scratch {
                        Some(gs) => {
                            out.extend(conv_gemm_backward::grad_weight(
                                ctx,
                                tk,
                                &self.fk,
                                &shape,
                                x,
                                g_out,
                                (gw, p.row),
                                gs,
                            )?);
                            out.push(conv_backward::grad_bias(ctx, tk, &shape, g_out, gb)?);
                            if let Some(g_in) = g_in {
                                out.extend(conv_gemm_backward::grad_input(
                                    ctx,
                                    tk,
                                    &self.fk,
                                    &shape,
                                    (&p.weight, p.row),
                                    g_out,
                                    g_in,
                                    gs,
                                )?);
                            }
                        }
                        None => {
                            out.extend(conv_backward::grad_weight_bias(
                                ctx, tk, &shape, false, x, g_out, gw, gb,
                            )?);
                            if let Some(g_in) = g_in {
                                out.push(conv_backward::grad_input(
                                    ctx, tk, &shape, &p.weight, g_out, g_in,
                                )?);
                            }
                        }
                    }
                }
                Op::MaxPool { .. } => {
                    if let Some(g_in) = g_in {
                        out.push(pool_backward::max_pool(
                            ctx,
                            tk,
                            &layer.pool_shape(batch, o.input).expect("a max pool"),
                            x,
                            g_out,
                            g_in,
                        )?);
                    }
                }
                Op::Lrn { .. } => {
                    let (Layer::Lrn(l), [c, h, w]) = (layer, o.input) else {
                        unreachable!("an LRN op is an LRN layer")
                    };
                    if let Some(g_in) = g_in {
                        out.push(lrn_backward::dispatch(
                            ctx,
                            tk,
                            l,
                            batch,
                            c,
                            h * w,
                            x,
                            g_out,
                            g_in,
                        )?);
                    }
                }
                Op::AvgPool { .. } => {
                    if let Some(g_in) = g_in {
                        out.push(pool_backward::adaptive_avg_pool(
                            ctx,
                            tk,
                            &layer
                                .adaptive_pool_shape(batch, o.input)
                                .expect("an adaptive pool"),
                            g_out,
                            g_in,
                        )?);
                    }
                }
                _ => unreachable!("ConvStack::new admits no other op"),
            }
        }
        Ok(out)
    }
}
