//! The one layer walker: a spec's layers fused into the operations the GPU runs (a ReLU folds
//! into the convolution or dense layer before it; flatten and dropout run no kernel). The
//! inference network (`network::Network`) and training's convolutional stack
//! (`train::ConvStack`) both walk this list, so a fusion rule or a new layer kind lands once.

use super::Layer;

/// One fused operation; `layer` indexes the spec's layers (the op's geometry is that layer's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A convolution, with its ReLU fused when `relu`.
    Conv {
        /// The spec's layer index.
        layer: usize,
        /// A ReLU follows and is fused.
        relu: bool,
    },
    /// A dense layer, with its ReLU fused when `relu`.
    Dense {
        /// The spec's layer index.
        layer: usize,
        /// A ReLU follows and is fused.
        relu: bool,
    },
    /// Max pooling.
    MaxPool {
        /// The spec's layer index.
        layer: usize,
    },
    /// Local response normalisation.
    Lrn {
        /// The spec's layer index.
        layer: usize,
    },
    /// Adaptive average pooling.
    AvgPool {
        /// The spec's layer index.
        layer: usize,
    },
    /// Softmax.
    Softmax {
        /// The spec's layer index.
        layer: usize,
    },
    /// A ReLU that follows no convolution or dense layer (run in place).
    Relu {
        /// The spec's layer index.
        layer: usize,
    },
}

impl Op {
    /// The spec layer this op computes.
    pub fn layer(&self) -> usize {
        match *self {
            Op::Conv { layer, .. }
            | Op::Dense { layer, .. }
            | Op::MaxPool { layer }
            | Op::Lrn { layer }
            | Op::AvgPool { layer }
            | Op::Softmax { layer }
            | Op::Relu { layer } => layer,
        }
    }
}

/// `layers` fused: the ops in order, and the index of the op whose output the first flatten
/// reads (pool5: the features), if any. A ReLU fused after that op is still part of what is
/// flattened (it runs in the same dispatch).
pub fn fuse(layers: &[Layer]) -> (Vec<Op>, Option<usize>) {
    let mut ops: Vec<Op> = Vec::new();
    let mut features_op = None;
    for (i, layer) in layers.iter().enumerate() {
        match layer {
            Layer::Conv { .. } => ops.push(Op::Conv {
                layer: i,
                relu: false,
            }),
            Layer::Dense { .. } => ops.push(Op::Dense {
                layer: i,
                relu: false,
            }),
            Layer::Relu => match ops.last_mut() {
                Some(Op::Conv { relu, .. } | Op::Dense { relu, .. }) if !*relu => *relu = true,
                _ => ops.push(Op::Relu { layer: i }),
            },
            Layer::MaxPool { .. } => ops.push(Op::MaxPool { layer: i }),
            Layer::Lrn(_) => ops.push(Op::Lrn { layer: i }),
            Layer::AdaptiveAvgPool { .. } => ops.push(Op::AvgPool { layer: i }),
            Layer::Softmax => ops.push(Op::Softmax { layer: i }),
            Layer::Flatten => {
                if features_op.is_none() && !ops.is_empty() {
                    features_op = Some(ops.len() - 1);
                }
            }
            Layer::Dropout(_) => {}
        }
    }
    (ops, features_op)
}
