//! ONNX models: reading an AlexNet's weights by following its graph, and writing a standard
//! opset-13 graph. Raw tensors and the layer facts read from the nodes; which preset they are is
//! `model`'s business.
//!
//! Protobuf: `prost` with the ONNX message types in [`proto`], committed as Rust source.

mod external;
mod graph;
mod layers;
pub mod proto;
mod read;
mod reader;
mod tensor;
mod window;
mod write;

pub use external::external_data_files;
pub use read::{read_onnx, read_onnx_bytes};
pub use window::window_out;
pub use write::{encode, write_onnx, OnnxExport};

use super::RawTensor;

/// One layer found on the path from the graph's input to its output.
#[derive(Clone, Debug, PartialEq)]
pub enum OnnxOp {
    /// `Conv`.
    Conv {
        /// Output channels.
        out: usize,
        /// `[kh, kw]`.
        kernel: [usize; 2],
        /// `[sh, sw]`.
        stride: [usize; 2],
        /// `[top, left, bottom, right]`.
        pads: [usize; 4],
        /// Channel groups.
        groups: usize,
    },
    /// `Relu`.
    Relu,
    /// `LRN`, with its attributes.
    Lrn {
        /// Channels in the window.
        size: usize,
        /// Scale.
        alpha: f32,
        /// Exponent.
        beta: f32,
        /// Additive constant.
        bias: f32,
    },
    /// `MaxPool`.
    MaxPool {
        /// `[kh, kw]`.
        kernel: [usize; 2],
        /// `[sh, sw]`.
        stride: [usize; 2],
        /// `[top, left, bottom, right]`.
        pads: [usize; 4],
        /// `ceil_mode=1`.
        ceil: bool,
        /// Spatial sizes at the input size the graph declares (None: not declared).
        in_hw: Option<[usize; 2]>,
        /// Spatial output size at the declared input size.
        out_hw: Option<[usize; 2]>,
    },
    /// `AveragePool`, or `GlobalAveragePool` (kernel `[0, 0]`).
    AveragePool {
        /// `[kh, kw]` (`[0, 0]`: global).
        kernel: [usize; 2],
        /// `[sh, sw]`.
        stride: [usize; 2],
        /// `[top, left, bottom, right]`.
        pads: [usize; 4],
        /// Spatial sizes at the input size the graph declares (None: not declared).
        in_hw: Option<[usize; 2]>,
        /// Spatial output size at the declared input size.
        out_hw: Option<[usize; 2]>,
    },
    /// `Flatten` (axis 1) or `Reshape` to `[N, features]`.
    Flatten,
    /// `Gemm`, or `MatMul` followed by `Add`.
    Dense {
        /// Outputs.
        out: usize,
    },
    /// `Softmax`.
    Softmax,
    /// `Dropout`, `Identity`.
    Identity,
}

/// A layer and the node it was read from (for messages).
#[derive(Clone, Debug, PartialEq)]
pub struct OnnxLayer {
    /// `node 'conv1_1' (Conv)`.
    pub node: String,
    /// What the node computes.
    pub op: OnnxOp,
}

/// What an `.onnx` file holds.
#[derive(Clone, Debug)]
pub struct OnnxModel {
    /// Weights in PyTorch layout (conv OIHW, dense `[out, in]`, fc6's inputs in NCHW flatten
    /// order whatever the graph's), named by position along the
    /// graph: `conv1.weight` ... `conv5.bias`, `fc6.weight` ... `fc8.bias` (a missing bias is
    /// zeros).
    pub tensors: Vec<RawTensor>,
    /// The layers on the path from input to output, in order.
    pub layers: Vec<OnnxLayer>,
    /// The graph input's name.
    pub input_name: String,
    /// The input's declared dimensions in NCHW order (None: symbolic); empty when not declared.
    pub input_dims: Vec<Option<usize>>,
    /// The input is NHWC, transposed to NCHW by the graph's first node (Keras exports);
    /// `input_dims` are then read through that Transpose.
    pub input_nhwc: bool,
    /// `metadata_props`.
    pub metadata: Vec<(String, String)>,
    /// The default domain's opset version.
    pub opset: Option<i64>,
}

impl OnnxModel {
    /// The declared `[C, H, W]` of one input image, when every one of them is fixed.
    pub fn input_chw(&self) -> Option<[usize; 3]> {
        match self.input_dims.as_slice() {
            [_, Some(c), Some(h), Some(w)] => Some([*c, *h, *w]),
            _ => None,
        }
    }

    /// The `metadata_props` value of `key`.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The raw tensors of an `.onnx` file (for `weights::read_tensors`).
pub fn read_onnx_tensors(path: &std::path::Path) -> crate::error::Result<Vec<RawTensor>> {
    Ok(read_onnx(path)?.tensors)
}
