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

use super::graph::{attr, float, int, node_label, Constants};
use super::layers::Chain;
use super::proto::{DimValue, ModelProto};
use super::reader::{file_err, Reader};
use super::{OnnxLayer, OnnxModel, OnnxOp};
use crate::error::Result;

/// Largest ONNX file we parse in memory (protobuf's own limit is 2 GiB).
pub(super) const MAX_FILE: u64 = 2 << 30;

/// Reads an `.onnx` file (initializers inline or in external data files beside it).
pub fn read_onnx(path: &Path) -> Result<OnnxModel> {
    let len = crate::fsutil::regular_file(path)?.len();
    if len > MAX_FILE {
        return Err(file_err(
            path,
            format!(
                "{len} bytes is over the 2 GiB protobuf limit; store the weights as external data"
            ),
        ));
    }
    let bytes = crate::fsutil::read_regular_capped(path, MAX_FILE)?;
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

impl Reader<'_> {
    fn run(&self) -> Result<OnnxModel> {
        let graph = self
            .model
            .graph
            .as_ref()
            .ok_or_else(|| self.err("the ONNX model has no graph"))?;
        let consts = Constants::of(graph);

        let inputs: Vec<_> = graph
            .input
            .iter()
            .filter(|i| !consts.is_const(&i.name))
            .collect();
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
        let hw: Option<[usize; 2]> = match input_dims.as_slice() {
            [_, _, Some(h), Some(w)] => Some([*h, *w]),
            _ => None,
        };

        let mut chain = Chain {
            reader: self,
            graph,
            consts: &consts,
            consumers: &consumers,
            hw,
            layers: Vec::new(),
            tensors: Vec::new(),
            used: HashSet::new(),
            n_conv: 0,
            n_dense: 0,
            visited: HashSet::new(),
            channels: None,
            nhwc_transpose: None,
            nhwc_flatten: None,
        };
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
            if !chain.visited.insert(idx) {
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
            let op = match node.op_type.as_str() {
                "Conv" => chain.conv(node, &label)?,
                "Relu" => OnnxOp::Relu,
                "LRN" => OnnxOp::Lrn {
                    size: usize::try_from(int(node, "size", 0)).unwrap_or(0),
                    alpha: float(node, "alpha", 1e-4),
                    beta: float(node, "beta", 0.75),
                    bias: float(node, "bias", 1.0),
                },
                "MaxPool" | "AveragePool" => chain.pool(node, &label)?,
                "GlobalAveragePool" => chain.global_average_pool(),
                "Flatten" => chain.flatten(node, &label)?,
                "Reshape" => chain.reshape(node, &label, &out)?,
                "Transpose" => {
                    chain.transpose(node, &label, &out)?;
                    current = out;
                    continue;
                }
                "Gemm" => chain.gemm(node, &label)?,
                "MatMul" => {
                    current = chain.matmul(node, &label, out)?;
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
            chain.layers.push(OnnxLayer { node: label, op });
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
            if data_like && !chain.used.contains(&t.name) {
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
            tensors: chain.tensors,
            layers: chain.layers,
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
}
