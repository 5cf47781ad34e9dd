//! Writing a chain of layers as a standard ONNX graph (opset 13): Conv, Relu, LRN, MaxPool,
//! AveragePool, Flatten, Gemm (transB=1), Softmax; weights inline as float32 `raw_data`.

use std::path::Path;

use prost::Message;

use super::proto::{
    attribute_type, data_type, AttributeProto, DimValue, Dimension, GraphProto, ModelProto,
    NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto,
    TypeProto, TypeProtoTensor, ValueInfoProto,
};
use super::OnnxOp;
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// What to write.
pub struct OnnxExport<'a> {
    /// The layers in order; `Identity` layers are left out of the graph.
    pub layers: Vec<OnnxOp>,
    /// `(name, shape, data)` in PyTorch layout: the weight then the bias of each Conv and Dense
    /// layer, in layer order.
    pub tensors: Vec<(String, Vec<usize>, &'a [f32])>,
    /// The graph input's name.
    pub input_name: String,
    /// `[C, H, W]` of one image; the batch dimension is symbolic (`N`).
    pub input_chw: [usize; 3],
    /// The graph output's name.
    pub output_name: String,
    /// The graph's name.
    pub graph_name: String,
    /// `metadata_props`.
    pub metadata: Vec<(String, String)>,
    /// The default domain's opset version.
    pub opset: i64,
}

fn ints(name: &str, v: &[usize]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::INTS,
        ints: v.iter().map(|&x| x as i64).collect(),
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::INT,
        i: v,
        ..Default::default()
    }
}

fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::FLOAT,
        f: v,
        ..Default::default()
    }
}

fn value_info(name: &str, dims: &[Option<usize>]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: data_type::FLOAT,
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension {
                            value: Some(match d {
                                Some(v) => DimValue::DimValue(*v as i64),
                                None => DimValue::DimParam("N".into()),
                            }),
                            denotation: String::new(),
                        })
                        .collect(),
                }),
            }),
            denotation: String::new(),
        }),
        doc_string: String::new(),
    }
}

/// Encodes the model (for tests and for [`write_onnx`]).
pub fn encode(e: &OnnxExport<'_>) -> Result<Vec<u8>> {
    let mut nodes = Vec::new();
    let mut tensors = e.tensors.iter();
    let mut current = e.input_name.clone();
    let mut initializer = Vec::new();
    let mut take = |what: &str| -> Result<String> {
        let (name, shape, data) = tensors
            .next()
            .ok_or_else(|| Error::Shape(format!("ONNX export: no tensor left for a {what}")))?;
        if shape.iter().product::<usize>() != data.len() {
            return Err(Error::Shape(format!(
                "ONNX export: tensor '{name}' has {} values for shape {shape:?}",
                data.len()
            )));
        }
        initializer.push(TensorProto {
            dims: shape.iter().map(|&d| d as i64).collect(),
            data_type: data_type::FLOAT,
            name: name.clone(),
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        Ok(name.clone())
    };
    let mut counts = std::collections::HashMap::<&str, usize>::new();
    let n = e.layers.iter().filter(|l| **l != OnnxOp::Identity).count();
    let mut emitted = 0;
    for layer in &e.layers {
        let (op, inputs, attrs): (&str, Vec<String>, Vec<AttributeProto>) = match layer {
            OnnxOp::Identity => continue,
            OnnxOp::Conv {
                kernel,
                stride,
                pads,
                groups,
                ..
            } => {
                let w = take("Conv weight")?;
                let b = take("Conv bias")?;
                (
                    "Conv",
                    vec![current.clone(), w, b],
                    vec![
                        ints("kernel_shape", kernel),
                        ints("strides", stride),
                        ints("pads", pads),
                        ints("dilations", &[1, 1]),
                        int("group", *groups as i64),
                    ],
                )
            }
            OnnxOp::Relu => ("Relu", vec![current.clone()], vec![]),
            OnnxOp::Lrn {
                size,
                alpha,
                beta,
                bias,
            } => (
                "LRN",
                vec![current.clone()],
                vec![
                    int("size", *size as i64),
                    float("alpha", *alpha),
                    float("beta", *beta),
                    float("bias", *bias),
                ],
            ),
            OnnxOp::MaxPool {
                kernel,
                stride,
                pads,
                ceil,
                ..
            } => (
                "MaxPool",
                vec![current.clone()],
                vec![
                    ints("kernel_shape", kernel),
                    ints("strides", stride),
                    ints("pads", pads),
                    int("ceil_mode", *ceil as i64),
                ],
            ),
            OnnxOp::AveragePool {
                kernel,
                stride,
                pads,
                ..
            } => (
                "AveragePool",
                vec![current.clone()],
                vec![
                    ints("kernel_shape", kernel),
                    ints("strides", stride),
                    ints("pads", pads),
                ],
            ),
            OnnxOp::Flatten => ("Flatten", vec![current.clone()], vec![int("axis", 1)]),
            OnnxOp::Dense { .. } => {
                let w = take("Gemm weight")?;
                let b = take("Gemm bias")?;
                (
                    "Gemm",
                    vec![current.clone(), w, b],
                    vec![float("alpha", 1.0), float("beta", 1.0), int("transB", 1)],
                )
            }
            OnnxOp::Softmax => ("Softmax", vec![current.clone()], vec![int("axis", 1)]),
        };
        emitted += 1;
        let k = counts.entry(op).or_insert(0);
        *k += 1;
        let name = format!("{}_{}", op.to_ascii_lowercase(), k);
        let out = if emitted == n {
            e.output_name.clone()
        } else {
            format!("{name}_out")
        };
        nodes.push(NodeProto {
            input: inputs,
            output: vec![out.clone()],
            name,
            op_type: op.into(),
            attribute: attrs,
            ..Default::default()
        });
        current = out;
    }
    if tensors.next().is_some() {
        return Err(Error::Shape(
            "ONNX export: more tensors than Conv and Dense layers".into(),
        ));
    }
    let classes = e
        .layers
        .iter()
        .rev()
        .find_map(|l| match l {
            OnnxOp::Dense { out } => Some(*out),
            _ => None,
        })
        .ok_or_else(|| Error::Shape("ONNX export: the network has no dense layer".into()))?;
    let [c, h, w] = e.input_chw;
    let model = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: e.opset,
        }],
        producer_name: "alexnet-wgpu".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(GraphProto {
            node: nodes,
            name: e.graph_name.clone(),
            initializer,
            input: vec![value_info(
                &e.input_name,
                &[None, Some(c), Some(h), Some(w)],
            )],
            output: vec![value_info(&e.output_name, &[None, Some(classes)])],
            ..Default::default()
        }),
        metadata_props: e
            .metadata
            .iter()
            .map(|(k, v)| StringStringEntryProto {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        ..Default::default()
    };
    Ok(model.encode_to_vec())
}

/// Writes the model to `path` atomically.
pub fn write_onnx(path: &Path, e: &OnnxExport<'_>) -> Result<()> {
    let bytes = encode(e)?;
    write_atomic(path, |file| std::io::Write::write_all(file, &bytes))
}
