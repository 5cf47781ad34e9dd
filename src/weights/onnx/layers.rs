//! The layers of the chain, one handler per operator: each checks its node's attributes, reads
//! its weights (marking the initializers used) and tracks the spatial size through it.

use std::collections::{HashMap, HashSet};

use super::super::RawTensor;
use super::graph::{float, int, ints, Constants, WeightOf};
use super::proto::{GraphProto, NodeProto};
use super::reader::Reader;
use super::tensor::ints_of;
use super::window::window_out;
use super::{OnnxLayer, OnnxOp};
use crate::error::Result;

/// Following the graph's chain of layers from its input: what is known so far.
pub(super) struct Chain<'r> {
    pub(super) reader: &'r Reader<'r>,
    pub(super) graph: &'r GraphProto,
    pub(super) consts: &'r Constants<'r>,
    /// The nodes reading each value (Shape nodes left out).
    pub(super) consumers: &'r HashMap<&'r str, Vec<usize>>,
    /// Spatial size as we go, when the input's is declared.
    pub(super) hw: Option<[usize; 2]>,
    pub(super) layers: Vec<OnnxLayer>,
    pub(super) tensors: Vec<RawTensor>,
    pub(super) used: HashSet<String>,
    pub(super) n_conv: usize,
    pub(super) n_dense: usize,
    pub(super) visited: HashSet<usize>,
    // Channels of the last convolution, and whether the flatten was in NHWC order (set by
    // a Transpose [0, 2, 3, 1] before it; its node named for messages).
    pub(super) channels: Option<usize>,
    pub(super) nhwc_transpose: Option<String>,
    pub(super) nhwc_flatten: Option<(String, Option<[usize; 2]>)>,
}

impl Chain<'_> {
    pub(super) fn conv(&mut self, node: &NodeProto, label: &str) -> Result<OnnxOp> {
        let r = self.reader;
        let consts = self.consts;
        let wname = node
            .input
            .get(1)
            .ok_or_else(|| r.err(format!("{label} has no weight input")))?;
        let (w, perm) = consts.weight(wname).ok_or_else(|| {
            r.err(format!(
                "{label}: the weight '{wname}' is not an initializer (a weight computed in the graph is not supported)"
            ))
        })?;
        let wt = r.raw_permuted(w, &format!("conv{}.weight", self.n_conv + 1), perm, label)?;
        self.used.insert(w.name.clone());
        if wt.shape.len() != 4 {
            return Err(r.err(format!(
                "{label}: the weight '{wname}' has shape {:?}; a 2-D convolution's is [out, in/groups, kh, kw]",
                wt.shape
            )));
        }
        let out_c = wt.shape[0];
        let bias = match node.input.get(2).filter(|b| !b.is_empty()) {
            Some(b) => {
                let bt = consts.tensor(b).ok_or_else(|| {
                    r.err(format!("{label}: the bias '{b}' is not an initializer"))
                })?;
                self.used.insert(b.clone());
                r.raw(bt, &format!("conv{}.bias", self.n_conv + 1))?
            }
            None => RawTensor {
                key: format!("conv{}.bias", self.n_conv + 1),
                shape: vec![out_c],
                data: Ok(vec![0.0; out_c]),
            },
        };
        self.used.insert(wname.clone());
        let kernel = ints(node, "kernel_shape")
            .unwrap_or_else(|| wt.shape[2..].iter().map(|&d| d as i64).collect());
        let strides = ints(node, "strides").unwrap_or_else(|| vec![1, 1]);
        let dil = ints(node, "dilations").unwrap_or_else(|| vec![1, 1]);
        let pads = r.pads(node, label, &kernel, &strides, self.hw)?;
        let group = int(node, "group", 1);
        let kernel = r.pair(label, "kernel_shape", &kernel)?;
        let stride = r.pair(label, "strides", &strides)?;
        if dil.iter().any(|&d| d != 1) {
            return Err(r.err(format!(
                "{label}: dilations {dil:?}; AlexNet's convolutions are not dilated"
            )));
        }
        let groups = usize::try_from(group)
            .ok()
            .filter(|&g| g >= 1)
            .ok_or_else(|| r.err(format!("{label}: group {group} is invalid")))?;
        self.hw = self.hw.and_then(|[h, w]| {
            Some([
                window_out(h, kernel[0], stride[0], [pads[0], pads[2]], false)?,
                window_out(w, kernel[1], stride[1], [pads[1], pads[3]], false)?,
            ])
        });
        self.n_conv += 1;
        self.channels = Some(out_c);
        self.tensors.push(wt);
        self.tensors.push(bias);
        Ok(OnnxOp::Conv {
            out: out_c,
            kernel,
            stride,
            pads,
            groups,
        })
    }

    /// MaxPool or AveragePool.
    pub(super) fn pool(&mut self, node: &NodeProto, label: &str) -> Result<OnnxOp> {
        let r = self.reader;
        let kernel = ints(node, "kernel_shape")
            .ok_or_else(|| r.err(format!("{label} has no kernel_shape")))?;
        let strides = ints(node, "strides").unwrap_or_else(|| vec![1, 1]);
        let pads = r.pads(node, label, &kernel, &strides, self.hw)?;
        let kernel = r.pair(label, "kernel_shape", &kernel)?;
        let stride = r.pair(label, "strides", &strides)?;
        let ceil = int(node, "ceil_mode", 0) != 0;
        if node.output.len() > 1 && node.output[1..].iter().any(|o| !o.is_empty()) {
            return Err(r.err(format!(
                "{label} also outputs the indices of the maxima; not an AlexNet layer"
            )));
        }
        if ints(node, "dilations").is_some_and(|d| d.iter().any(|&x| x != 1)) {
            return Err(r.err(format!("{label} is dilated")));
        }
        let in_hw = self.hw;
        self.hw = self.hw.and_then(|[h, w]| {
            Some([
                window_out(h, kernel[0], stride[0], [pads[0], pads[2]], ceil)?,
                window_out(w, kernel[1], stride[1], [pads[1], pads[3]], ceil)?,
            ])
        });
        Ok(if node.op_type == "MaxPool" {
            OnnxOp::MaxPool {
                kernel,
                stride,
                pads,
                ceil,
                in_hw,
                out_hw: self.hw,
            }
        } else {
            OnnxOp::AveragePool {
                kernel,
                stride,
                pads,
                in_hw,
                out_hw: self.hw,
            }
        })
    }

    pub(super) fn global_average_pool(&mut self) -> OnnxOp {
        self.hw = Some([1, 1]);
        OnnxOp::AveragePool {
            kernel: [0, 0],
            stride: [1, 1],
            pads: [0; 4],
            in_hw: None,
            out_hw: self.hw,
        }
    }

    pub(super) fn flatten(&mut self, node: &NodeProto, label: &str) -> Result<OnnxOp> {
        let r = self.reader;
        let axis = int(node, "axis", 1);
        if axis != 1 {
            return Err(r.err(format!(
                "{label}: axis {axis}; an AlexNet flattens from axis 1"
            )));
        }
        self.nhwc_flatten = self.nhwc_transpose.take().map(|t| (t, self.hw));
        Ok(OnnxOp::Flatten)
    }

    /// A Reshape is a flatten (`out` is its output).
    pub(super) fn reshape(&mut self, node: &NodeProto, label: &str, out: &str) -> Result<OnnxOp> {
        let r = self.reader;
        let consts = self.consts;
        let graph = self.graph;
        let consumers = self.consumers;
        match node
            .input
            .get(1)
            .and_then(|s| consts.tensor(s))
            .map(ints_of)
        {
            Some(shape) if shape.len() != 2 => {
                return Err(r.err(format!(
                    "{label}: reshapes to {shape:?}; an AlexNet flattens to [N, features]"
                )));
            }
            Some(_) => {}
            // A target computed in the graph (tf2onnx: batch from a Shape branch,
            // then the feature count): accepted only right before a dense layer,
            // whose weight then decides how many features there are.
            None => {
                let next = consumers.get(out).map(Vec::as_slice);
                let dense_next = matches!(next, Some([one])
                    if matches!(graph.node[*one].op_type.as_str(), "Gemm" | "MatMul"));
                if !dense_next {
                    return Err(r.err(format!(
                        "{label}: the target shape is not a constant and no dense layer follows; an AlexNet reshapes to [N, features]"
                    )));
                }
            }
        }
        self.nhwc_flatten = self.nhwc_transpose.take().map(|t| (t, self.hw));
        Ok(OnnxOp::Flatten)
    }

    /// A Transpose is not a layer: only the NHWC one before the flatten is allowed.
    pub(super) fn transpose(&mut self, node: &NodeProto, label: &str, out: &str) -> Result<()> {
        let r = self.reader;
        let graph = self.graph;
        let consumers = self.consumers;
        // Keras flattens NHWC: a Transpose [0, 2, 3, 1] right before the flatten.
        let perm = ints(node, "perm").unwrap_or_default();
        let next = consumers.get(out).map(Vec::as_slice);
        let flatten_next = matches!(next, Some([one])
            if matches!(graph.node[*one].op_type.as_str(), "Flatten" | "Reshape"));
        if perm != [0, 2, 3, 1] || !flatten_next || self.n_dense > 0 {
            return Err(r.err(format!(
                "{label}: perm {perm:?}; the only Transpose an AlexNet graph may have after its input is [0, 2, 3, 1] right before the flatten (NHWC order, as Keras)"
            )));
        }
        self.nhwc_transpose = Some(label.to_string());
        // Not a layer of ours: the order it makes is undone in fc6's rows.
        Ok(())
    }

    pub(super) fn gemm(&mut self, node: &NodeProto, label: &str) -> Result<OnnxOp> {
        let r = self.reader;
        let consts = self.consts;
        if int(node, "transA", 0) != 0 {
            return Err(r.err(format!("{label}: transA=1 is not a dense layer")));
        }
        let (alpha, beta) = (float(node, "alpha", 1.0), float(node, "beta", 1.0));
        let trans_b = int(node, "transB", 0) != 0;
        let k = self.n_dense + 6;
        let (mut w, b) = r.dense(
            node,
            label,
            node.input.get(2),
            (trans_b, alpha, beta),
            k,
            &|n: &str| consts.weight(n),
            &mut self.used,
        )?;
        if self.n_dense == 0 {
            r.unflatten_nhwc(&mut w, self.nhwc_flatten.take(), self.channels, label)?;
        }
        self.n_dense += 1;
        let out = w.shape[0];
        self.tensors.push(w);
        self.tensors.push(b);
        Ok(OnnxOp::Dense { out })
    }

    /// A MatMul (with the Add of its bias, when one follows) is a dense layer, pushed here;
    /// returns the value the chain continues from.
    pub(super) fn matmul(&mut self, node: &NodeProto, label: &str, out: String) -> Result<String> {
        let r = self.reader;
        let consts = self.consts;
        let graph = self.graph;
        let consumers = self.consumers;
        // MatMul(x, W[in, out]) followed by Add(_, b).
        let add = consumers
            .get(out.as_str())
            .and_then(|v| match v.as_slice() {
                [one] if graph.node[*one].op_type == "Add" => Some(*one),
                _ => None,
            });
        let bias_name = add.and_then(|a| {
            graph.node[a]
                .input
                .iter()
                .find(|i| **i != out && consts.is_const(i))
        });
        let k = self.n_dense + 6;
        let (mut w, b) = r.dense(
            node,
            label,
            bias_name,
            (false, 1.0, 1.0),
            k,
            &|n: &str| consts.weight(n),
            &mut self.used,
        )?;
        if self.n_dense == 0 {
            r.unflatten_nhwc(&mut w, self.nhwc_flatten.take(), self.channels, label)?;
        }
        self.n_dense += 1;
        let o = w.shape[0];
        self.tensors.push(w);
        self.tensors.push(b);
        self.layers.push(OnnxLayer {
            node: label.to_string(),
            op: OnnxOp::Dense { out: o },
        });
        let mut current = out;
        if let (Some(a), Some(_)) = (add, bias_name) {
            self.visited.insert(a);
            current = graph.node[a].output[0].clone();
        }
        Ok(current)
    }
}

impl Reader<'_> {
    /// A dense layer's weight `[out, in]` and bias `[out]`, from a weight that is `[out, in]`
    /// (`trans_b`) or `[in, out]`.
    /// `(trans_b, alpha, beta)` as Gemm's attributes.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn dense<'t>(
        &self,
        node: &NodeProto,
        label: &str,
        bias: Option<&String>,
        (trans_b, alpha, beta): (bool, f32, f32),
        k: usize,
        weight: &WeightOf<'t, '_>,
        used: &mut HashSet<String>,
    ) -> Result<(RawTensor, RawTensor)> {
        let wname = node
            .input
            .get(1)
            .ok_or_else(|| self.err(format!("{label} has no weight input")))?;
        let (w, perm) = weight(wname).ok_or_else(|| {
            self.err(format!(
                "{label}: the weight '{wname}' is not an initializer"
            ))
        })?;
        used.insert(w.name.clone());
        let mut wt = self.raw_permuted(w, &format!("fc{k}.weight"), perm, label)?;
        let [a, b] = wt.shape[..] else {
            return Err(self.err(format!(
                "{label}: the weight '{wname}' has shape {:?}; a dense layer's is 2-D",
                wt.shape
            )));
        };
        let (out, inp) = if trans_b { (a, b) } else { (b, a) };
        if let Ok(d) = &mut wt.data {
            if !trans_b {
                let mut t = vec![0f32; d.len()];
                for i in 0..inp {
                    for o in 0..out {
                        t[o * inp + i] = d[i * out + o];
                    }
                }
                *d = t;
            }
            if alpha != 1.0 {
                d.iter_mut().for_each(|v| *v *= alpha);
            }
        }
        wt.shape = vec![out, inp];
        let bt = match bias.filter(|b| !b.is_empty()) {
            Some(bn) => {
                let t = match weight(bn) {
                    Some((t, None)) => t,
                    _ => {
                        return Err(
                            self.err(format!("{label}: the bias '{bn}' is not an initializer"))
                        )
                    }
                };
                used.insert(t.name.clone());
                let mut bt = self.raw(t, &format!("fc{k}.bias"))?;
                // A [1, out] bias broadcasts like [out].
                if bt.shape.len() == 2 && bt.shape[0] == 1 {
                    bt.shape.remove(0);
                }
                if let Ok(d) = &mut bt.data {
                    if beta != 1.0 {
                        d.iter_mut().for_each(|v| *v *= beta);
                    }
                }
                bt
            }
            None => RawTensor {
                key: format!("fc{k}.bias"),
                shape: vec![out],
                data: Ok(vec![0.0; out]),
            },
        };
        Ok((wt, bt))
    }
}
