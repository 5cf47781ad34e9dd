//! Reading an ONNX AlexNet by following its graph from the input: each Conv, Gemm or
//! MatMul(+Add) in order gives one layer's weights, whatever the initializers are called (the
//! model zoo's `conv1_w_0`, torch's `features.0.weight`, tf2onnx's `.../kernel:0`).
//!
//! Keras-to-ONNX graphs (tf2onnx, which Keras 3's `model.export(format="onnx")` runs) take an
//! NHWC input through a `Transpose` to NCHW, and flatten in NHWC order (a `Transpose` back, then
//! a `Reshape` whose target shape is computed from a `Shape` side branch): the input's declared
//! dimensions are read through the first Transpose, `Shape` branches are not part of the chain,
//! and the dense layer after an NHWC flatten has its rows reordered to our NCHW order. A weight
//! fed through a `Transpose` of an initializer (an unfolded HWIO kernel) is transposed here.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use prost::Message;

use super::super::RawTensor;
use super::proto::{AttributeProto, DimValue, ModelProto, NodeProto, TensorProto};
use super::reader::{file_err, Reader};
use super::tensor::ints_of;
use super::{OnnxLayer, OnnxModel, OnnxOp};
use crate::error::{Error, Result};

/// Largest ONNX file we parse in memory (protobuf's own limit is 2 GiB).
const MAX_FILE: u64 = 2 << 30;

/// Reads an `.onnx` file (initializers inline or in external data files beside it).
pub fn read_onnx(path: &Path) -> Result<OnnxModel> {
    let len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if len > MAX_FILE {
        return Err(file_err(
            path,
            format!(
                "{len} bytes is over the 2 GiB protobuf limit; store the weights as external data"
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    read_onnx_bytes(path, &bytes)
}

/// [`read_onnx`] of a file's bytes in memory: `path` names it in errors, and external data
/// files are looked for beside it.
pub fn read_onnx_bytes(path: &Path, bytes: &[u8]) -> Result<OnnxModel> {
    if bytes.len() as u64 > MAX_FILE {
        return Err(file_err(path, "over the 2 GiB protobuf limit"));
    }
    let model = ModelProto::decode(bytes).map_err(|e| {
        file_err(
            path,
            format!(
                "not a readable ONNX model (protobuf): {e}; is the file truncated or not an .onnx?"
            ),
        )
    })?;
    Reader {
        path,
        model: &model,
    }
    .run()
}

/// A weight input by name: its initializer, and the perm of a Transpose it goes through.
type WeightOf<'t, 'c> = dyn Fn(&str) -> Option<(&'t TensorProto, Option<Vec<i64>>)> + 'c;

/// An attribute by name.
fn attr<'n>(node: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn node_label(node: &NodeProto, index: usize) -> String {
    if node.name.is_empty() {
        format!("node {index} ({})", node.op_type)
    } else {
        format!("node '{}' ({})", node.name, node.op_type)
    }
}

impl Reader<'_> {
    fn run(&self) -> Result<OnnxModel> {
        let graph = self
            .model
            .graph
            .as_ref()
            .ok_or_else(|| self.err("the ONNX model has no graph"))?;
        let init: HashMap<&str, &TensorProto> = graph
            .initializer
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();
        // Constant nodes' tensors count as initializers (Reshape shapes, sometimes weights).
        let mut constants: HashMap<&str, &TensorProto> = HashMap::new();
        for n in &graph.node {
            if n.op_type == "Constant" {
                if let (Some(out), Some(t)) = (
                    n.output.first(),
                    attr(n, "value").and_then(|a| a.t.as_ref()),
                ) {
                    constants.insert(out.as_str(), t);
                }
            }
        }
        // Weights computed by a Transpose of an initializer: (its input, perm).
        let mut transposed: HashMap<&str, (&str, Vec<i64>)> = HashMap::new();
        for n in &graph.node {
            if let ([x], [y]) = (n.input.as_slice(), n.output.as_slice()) {
                if n.op_type == "Transpose"
                    && (init.contains_key(x.as_str()) || constants.contains_key(x.as_str()))
                {
                    let perm = attr(n, "perm").map(|a| a.ints.clone()).unwrap_or_default();
                    transposed.insert(y.as_str(), (x.as_str(), perm));
                }
            }
        }
        let is_const = |name: &str| {
            init.contains_key(name) || constants.contains_key(name) || transposed.contains_key(name)
        };
        let tensor = |name: &str| init.get(name).or(constants.get(name)).copied();
        // A weight input: an initializer, or a Transpose of one (returned with its perm).
        let weight = |name: &str| -> Option<(&TensorProto, Option<Vec<i64>>)> {
            match tensor(name) {
                Some(t) => Some((t, None)),
                None => {
                    let (src, perm) = transposed.get(name)?;
                    Some((tensor(src)?, Some(perm.clone())))
                }
            }
        };

        let inputs: Vec<_> = graph.input.iter().filter(|i| !is_const(&i.name)).collect();
        let input = match inputs.as_slice() {
            [one] => *one,
            [] => return Err(self.err("the graph has no input")),
            more => {
                return Err(self.err(format!(
                    "the graph has {} inputs ({}); an AlexNet has one image input",
                    more.len(),
                    more.iter()
                        .map(|i| i.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        };
        let input_dims: Vec<Option<usize>> = input
            .r#type
            .as_ref()
            .and_then(|t| t.tensor_type.as_ref())
            .and_then(|t| t.shape.as_ref())
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| match d.value {
                        Some(DimValue::DimValue(v)) if v > 0 => usize::try_from(v).ok(),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, n) in graph.node.iter().enumerate() {
            for inp in &n.input {
                // A Shape node reads only the dimensions (tf2onnx computes a Reshape's target
                // from one): not a layer of the chain.
                if n.op_type != "Shape" {
                    consumers.entry(inp.as_str()).or_default().push(i);
                }
            }
        }
        let mut input_dims = input_dims;
        let mut current = input.name.clone();
        // An NHWC input (Keras): a Transpose to NCHW before the first layer.
        let mut input_nhwc = false;
        if let Some([first]) = consumers.get(current.as_str()).map(Vec::as_slice) {
            let n = &graph.node[*first];
            if n.op_type == "Transpose" {
                let perm = attr(n, "perm").map(|a| a.ints.clone()).unwrap_or_default();
                if perm != [0, 3, 1, 2] {
                    return Err(self.err(format!(
                        "{}: perm {perm:?} on the input; an NHWC image input is transposed with [0, 3, 1, 2]",
                        node_label(n, *first)
                    )));
                }
                if input_dims.len() == 4 {
                    input_dims = vec![input_dims[0], input_dims[3], input_dims[1], input_dims[2]];
                }
                input_nhwc = true;
                current = n
                    .output
                    .first()
                    .ok_or_else(|| self.err(format!("{} has no output", node_label(n, *first))))?
                    .clone();
            }
        }
        if !input_dims.is_empty() && input_dims.len() != 4 {
            return Err(self.err(format!(
                "the input '{}' has {} dimensions; an image batch has 4 (N, C, H, W)",
                input.name,
                input_dims.len()
            )));
        }
        // Spatial size as we go, when the input's is declared.
        let mut hw: Option<[usize; 2]> = match input_dims.as_slice() {
            [_, _, Some(h), Some(w)] => Some([*h, *w]),
            _ => None,
        };

        let mut layers = Vec::new();
        let mut tensors: Vec<RawTensor> = Vec::new();
        let mut used = HashSet::new();
        let (mut n_conv, mut n_dense) = (0usize, 0usize);
        let mut visited = HashSet::new();
        // Channels of the last convolution, and whether the flatten was in NHWC order (set by
        // a Transpose [0, 2, 3, 1] before it; its node named for messages).
        let mut channels: Option<usize> = None;
        let mut nhwc_transpose: Option<String> = None;
        let mut nhwc_flatten: Option<(String, Option<[usize; 2]>)> = None;
        loop {
            let next: Vec<usize> = consumers.get(current.as_str()).cloned().unwrap_or_default();
            let idx = match next.as_slice() {
                [] => break,
                [one] => *one,
                more => {
                    return Err(self.err(format!(
                    "the value '{current}' feeds {} nodes ({}); an AlexNet is a chain of layers",
                    more.len(),
                    more.iter()
                        .map(|&i| node_label(&graph.node[i], i))
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
                }
            };
            if !visited.insert(idx) {
                return Err(self.err("the graph has a cycle"));
            }
            let node = &graph.node[idx];
            let label = node_label(node, idx);
            if node.input.first() != Some(&current) {
                return Err(self.err(format!(
                    "{label} takes the activations as a second input; not an AlexNet layer"
                )));
            }
            if !node.domain.is_empty() && node.domain != "ai.onnx" {
                return Err(self.err(format!(
                    "{label} is from the operator domain '{}'; an AlexNet uses standard ONNX operators",
                    node.domain
                )));
            }
            let out = node
                .output
                .first()
                .ok_or_else(|| self.err(format!("{label} has no output")))?
                .clone();
            let ints = |name: &str| attr(node, name).map(|a| a.ints.clone());
            let int = |name: &str, default: i64| attr(node, name).map_or(default, |a| a.i);
            let float = |name: &str, default: f32| attr(node, name).map_or(default, |a| a.f);
            let op = match node.op_type.as_str() {
                "Conv" => {
                    let wname = node
                        .input
                        .get(1)
                        .ok_or_else(|| self.err(format!("{label} has no weight input")))?;
                    let (w, perm) = weight(wname).ok_or_else(|| {
                        self.err(format!(
                            "{label}: the weight '{wname}' is not an initializer (a weight computed in the graph is not supported)"
                        ))
                    })?;
                    let wt =
                        self.raw_permuted(w, &format!("conv{}.weight", n_conv + 1), perm, &label)?;
                    used.insert(w.name.clone());
                    if wt.shape.len() != 4 {
                        return Err(self.err(format!(
                            "{label}: the weight '{wname}' has shape {:?}; a 2-D convolution's is [out, in/groups, kh, kw]",
                            wt.shape
                        )));
                    }
                    let out_c = wt.shape[0];
                    let bias = match node.input.get(2).filter(|b| !b.is_empty()) {
                        Some(b) => {
                            let bt = tensor(b).ok_or_else(|| {
                                self.err(format!("{label}: the bias '{b}' is not an initializer"))
                            })?;
                            used.insert(b.clone());
                            self.raw(bt, &format!("conv{}.bias", n_conv + 1))?
                        }
                        None => RawTensor {
                            key: format!("conv{}.bias", n_conv + 1),
                            shape: vec![out_c],
                            data: Ok(vec![0.0; out_c]),
                        },
                    };
                    used.insert(wname.clone());
                    let kernel = ints("kernel_shape")
                        .unwrap_or_else(|| wt.shape[2..].iter().map(|&d| d as i64).collect());
                    let strides = ints("strides").unwrap_or_else(|| vec![1, 1]);
                    let dil = ints("dilations").unwrap_or_else(|| vec![1, 1]);
                    let pads = self.pads(node, &label, &kernel, &strides, hw)?;
                    let group = int("group", 1);
                    let kernel = self.pair(&label, "kernel_shape", &kernel)?;
                    let stride = self.pair(&label, "strides", &strides)?;
                    if dil.iter().any(|&d| d != 1) {
                        return Err(self.err(format!(
                            "{label}: dilations {dil:?}; AlexNet's convolutions are not dilated"
                        )));
                    }
                    let groups = usize::try_from(group)
                        .ok()
                        .filter(|&g| g >= 1)
                        .ok_or_else(|| self.err(format!("{label}: group {group} is invalid")))?;
                    hw = hw.and_then(|[h, w]| {
                        Some([
                            window_out(h, kernel[0], stride[0], [pads[0], pads[2]], false)?,
                            window_out(w, kernel[1], stride[1], [pads[1], pads[3]], false)?,
                        ])
                    });
                    n_conv += 1;
                    channels = Some(out_c);
                    tensors.push(wt);
                    tensors.push(bias);
                    OnnxOp::Conv {
                        out: out_c,
                        kernel,
                        stride,
                        pads,
                        groups,
                    }
                }
                "Relu" => OnnxOp::Relu,
                "LRN" => OnnxOp::Lrn {
                    size: usize::try_from(int("size", 0)).unwrap_or(0),
                    alpha: float("alpha", 1e-4),
                    beta: float("beta", 0.75),
                    bias: float("bias", 1.0),
                },
                "MaxPool" | "AveragePool" => {
                    let kernel = ints("kernel_shape")
                        .ok_or_else(|| self.err(format!("{label} has no kernel_shape")))?;
                    let strides = ints("strides").unwrap_or_else(|| vec![1, 1]);
                    let pads = self.pads(node, &label, &kernel, &strides, hw)?;
                    let kernel = self.pair(&label, "kernel_shape", &kernel)?;
                    let stride = self.pair(&label, "strides", &strides)?;
                    let ceil = int("ceil_mode", 0) != 0;
                    if node.output.len() > 1 && node.output[1..].iter().any(|o| !o.is_empty()) {
                        return Err(self.err(format!(
                            "{label} also outputs the indices of the maxima; not an AlexNet layer"
                        )));
                    }
                    if ints("dilations").is_some_and(|d| d.iter().any(|&x| x != 1)) {
                        return Err(self.err(format!("{label} is dilated")));
                    }
                    let in_hw = hw;
                    hw = hw.and_then(|[h, w]| {
                        Some([
                            window_out(h, kernel[0], stride[0], [pads[0], pads[2]], ceil)?,
                            window_out(w, kernel[1], stride[1], [pads[1], pads[3]], ceil)?,
                        ])
                    });
                    if node.op_type == "MaxPool" {
                        OnnxOp::MaxPool {
                            kernel,
                            stride,
                            pads,
                            ceil,
                            in_hw,
                            out_hw: hw,
                        }
                    } else {
                        OnnxOp::AveragePool {
                            kernel,
                            stride,
                            pads,
                            in_hw,
                            out_hw: hw,
                        }
                    }
                }
                "GlobalAveragePool" => {
                    hw = Some([1, 1]);
                    OnnxOp::AveragePool {
                        kernel: [0, 0],
                        stride: [1, 1],
                        pads: [0; 4],
                        in_hw: None,
                        out_hw: hw,
                    }
                }
                "Flatten" => {
                    let axis = int("axis", 1);
                    if axis != 1 {
                        return Err(self.err(format!(
                            "{label}: axis {axis}; an AlexNet flattens from axis 1"
                        )));
                    }
                    nhwc_flatten = nhwc_transpose.take().map(|t| (t, hw));
                    OnnxOp::Flatten
                }
                "Reshape" => {
                    match node.input.get(1).and_then(|s| tensor(s)).map(ints_of) {
                        Some(shape) if shape.len() != 2 => {
                            return Err(self.err(format!(
                                "{label}: reshapes to {shape:?}; an AlexNet flattens to [N, features]"
                            )));
                        }
                        Some(_) => {}
                        // A target computed in the graph (tf2onnx: batch from a Shape branch,
                        // then the feature count): accepted only right before a dense layer,
                        // whose weight then decides how many features there are.
                        None => {
                            let next = consumers.get(out.as_str()).map(Vec::as_slice);
                            let dense_next = matches!(next, Some([one])
                                if matches!(graph.node[*one].op_type.as_str(), "Gemm" | "MatMul"));
                            if !dense_next {
                                return Err(self.err(format!(
                                    "{label}: the target shape is not a constant and no dense layer follows; an AlexNet reshapes to [N, features]"
                                )));
                            }
                        }
                    }
                    nhwc_flatten = nhwc_transpose.take().map(|t| (t, hw));
                    OnnxOp::Flatten
                }
                "Transpose" => {
                    // Keras flattens NHWC: a Transpose [0, 2, 3, 1] right before the flatten.
                    let perm = ints("perm").unwrap_or_default();
                    let next = consumers.get(out.as_str()).map(Vec::as_slice);
                    let flatten_next = matches!(next, Some([one])
                        if matches!(graph.node[*one].op_type.as_str(), "Flatten" | "Reshape"));
                    if perm != [0, 2, 3, 1] || !flatten_next || n_dense > 0 {
                        return Err(self.err(format!(
                            "{label}: perm {perm:?}; the only Transpose an AlexNet graph may have after its input is [0, 2, 3, 1] right before the flatten (NHWC order, as Keras)"
                        )));
                    }
                    nhwc_transpose = Some(label.clone());
                    // Not a layer of ours: the order it makes is undone in fc6's rows.
                    current = out;
                    continue;
                }
                "Gemm" => {
                    if int("transA", 0) != 0 {
                        return Err(self.err(format!("{label}: transA=1 is not a dense layer")));
                    }
                    let (alpha, beta) = (float("alpha", 1.0), float("beta", 1.0));
                    let trans_b = int("transB", 0) != 0;
                    let k = n_dense + 6;
                    let (mut w, b) = self.dense(
                        node,
                        &label,
                        node.input.get(2),
                        (trans_b, alpha, beta),
                        k,
                        &weight,
                        &mut used,
                    )?;
                    if n_dense == 0 {
                        self.unflatten_nhwc(&mut w, nhwc_flatten.take(), channels, &label)?;
                    }
                    n_dense += 1;
                    let out = w.shape[0];
                    tensors.push(w);
                    tensors.push(b);
                    OnnxOp::Dense { out }
                }
                "MatMul" => {
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
                            .find(|i| **i != out && is_const(i))
                    });
                    let k = n_dense + 6;
                    let (mut w, b) = self.dense(
                        node,
                        &label,
                        bias_name,
                        (false, 1.0, 1.0),
                        k,
                        &weight,
                        &mut used,
                    )?;
                    if n_dense == 0 {
                        self.unflatten_nhwc(&mut w, nhwc_flatten.take(), channels, &label)?;
                    }
                    n_dense += 1;
                    let o = w.shape[0];
                    tensors.push(w);
                    tensors.push(b);
                    layers.push(OnnxLayer {
                        node: label,
                        op: OnnxOp::Dense { out: o },
                    });
                    current = out;
                    if let (Some(a), Some(_)) = (add, bias_name) {
                        visited.insert(a);
                        current = graph.node[a].output[0].clone();
                    }
                    continue;
                }
                "Softmax" => OnnxOp::Softmax,
                "Dropout" | "Identity" => OnnxOp::Identity,
                other => {
                    return Err(self.err(format!(
                        "{label}: the operator {other} is not part of an AlexNet (expected Conv, \
                         Relu, LRN, MaxPool, Flatten/Reshape, Gemm/MatMul, Dropout, Softmax)"
                    )))
                }
            };
            layers.push(OnnxLayer { node: label, op });
            current = out;
        }
        if !graph.output.iter().any(|o| o.name == current) {
            return Err(self.err(format!(
                "following the graph from its input ends at '{current}', which is not a graph output"
            )));
        }
        // Initializers the chain did not use: another network's parameters, or a weight fed to a
        // node off the chain.
        for t in &graph.initializer {
            let data_like = t.dims.iter().product::<i64>() > 16;
            if data_like && !used.contains(&t.name) {
                return Err(self.err(format!(
                    "the initializer '{}' (shape {:?}) is used by no layer on the path from the input to the output",
                    t.name, t.dims
                )));
            }
        }
        let metadata = self
            .model
            .metadata_props
            .iter()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect();
        Ok(OnnxModel {
            tensors,
            layers,
            input_name: input.name.clone(),
            input_dims,
            input_nhwc,
            metadata,
            opset: self
                .model
                .opset_import
                .iter()
                .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
                .map(|o| o.version),
        })
    }

    /// `[h, w]` from a 2-element attribute.
    fn pair(&self, label: &str, name: &str, v: &[i64]) -> Result<[usize; 2]> {
        match v {
            [a, b] if *a > 0 && *b > 0 && *a < 1 << 20 && *b < 1 << 20 => {
                Ok([*a as usize, *b as usize])
            }
            _ => Err(self.err(format!(
                "{label}: {name} {v:?}; expected two positive values (a 2-D layer)"
            ))),
        }
    }

    /// `[top, left, bottom, right]` from `pads` / `auto_pad`.
    fn pads(
        &self,
        node: &NodeProto,
        label: &str,
        kernel: &[i64],
        strides: &[i64],
        hw: Option<[usize; 2]>,
    ) -> Result<[usize; 4]> {
        let auto = attr(node, "auto_pad")
            .map(|a| String::from_utf8_lossy(&a.s).to_string())
            .unwrap_or_default();
        match auto.as_str() {
            "" | "NOTSET" => {}
            "VALID" => return Ok([0; 4]),
            "SAME_UPPER" | "SAME_LOWER" => {
                let [h, w] = hw.ok_or_else(|| {
                    self.err(format!(
                        "{label}: auto_pad {auto} needs the input size, which the graph does not declare"
                    ))
                })?;
                let [kh, kw] = self.pair(label, "kernel_shape", kernel)?;
                let [sh, sw] = self.pair(label, "strides", strides)?;
                let total = |n: usize, k: usize, s: usize| {
                    let out = n.div_ceil(s);
                    ((out - 1) * s + k).saturating_sub(n)
                };
                let (th, tw) = (total(h, kh, sh), total(w, kw, sw));
                let lower = auto == "SAME_LOWER";
                let split = |t: usize| {
                    if lower {
                        (t - t / 2, t / 2)
                    } else {
                        (t / 2, t - t / 2)
                    }
                };
                let ((t, b), (l, r)) = (split(th), split(tw));
                return Ok([t, l, b, r]);
            }
            other => {
                return Err(self.err(format!("{label}: unknown auto_pad '{other}'")));
            }
        }
        match attr(node, "pads").map(|a| a.ints.as_slice()) {
            None => Ok([0; 4]),
            Some(p @ [_, _, _, _]) if p.iter().all(|&v| (0..1 << 20).contains(&v)) => {
                Ok([p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize])
            }
            Some(p) => Err(self.err(format!(
                "{label}: pads {p:?}; expected four non-negative values (top, left, bottom, right)"
            ))),
        }
    }

    /// A dense layer's weight `[out, in]` and bias `[out]`, from a weight that is `[out, in]`
    /// (`trans_b`) or `[in, out]`.
    /// `(trans_b, alpha, beta)` as Gemm's attributes.
    #[allow(clippy::too_many_arguments)]
    fn dense<'t>(
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

/// Output size of a sliding window over `n` values with `pads` (begin, end) of padding (ONNX's
/// formula; `ceil` as `ceil_mode=1`). `None` when the window does not fit.
pub fn window_out(n: usize, k: usize, s: usize, pads: [usize; 2], ceil: bool) -> Option<usize> {
    let span = (n + pads[0] + pads[1]).checked_sub(k)?;
    if s == 0 {
        return None;
    }
    let mut out = if ceil { span.div_ceil(s) } else { span / s } + 1;
    // A last window that would start in the end padding is dropped (as PyTorch and onnxruntime).
    if ceil && out > 1 && (out - 1) * s >= n + pads[0] {
        out -= 1;
    }
    Some(out)
}
