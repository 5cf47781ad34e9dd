//! Weights to and from the self-describing formats: an ONNX graph's layers matched against a
//! preset (and its pooling rounding honoured), ONNX export of any preset, `.safetensors`, and
//! writing by the output file's extension.

use std::collections::HashMap;
use std::path::Path;

use super::naming::Scheme;
use super::{Arch, Layer, Shape, Weights};
use crate::error::{Error, Result};
use crate::kernels::max_pool::out_size_rounded;
use crate::weights::onnx::{OnnxExport, OnnxModel, OnnxOp};
use crate::weights::NpzEntry;

/// Output formats by extension, for messages.
pub const OUTPUT_FORMATS: &str = ".npz, .safetensors, .onnx";

/// The preset an ONNX graph's layers describe: LRN or grouped convolutions are Caffe's net,
/// a padded first convolution torchvision's, the rest the plain (Keras) net.
fn infer_arch(m: &OnnxModel) -> Arch {
    let lrn = m.layers.iter().any(|l| matches!(l.op, OnnxOp::Lrn { .. }));
    let groups = m
        .layers
        .iter()
        .any(|l| matches!(l.op, OnnxOp::Conv { groups, .. } if groups > 1));
    let first_pad = m.layers.iter().find_map(|l| match l.op {
        OnnxOp::Conv { pads, .. } => Some(pads[0]),
        _ => None,
    });
    if lrn || groups {
        Arch::Caffe
    } else if first_pad == Some(2) {
        Arch::Torchvision
    } else {
        Arch::Keras
    }
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1e-6)
}

/// Loads an ONNX model's weights as a preset, after checking its layers, one by one, against the
/// preset's; a layer that does not fit is named in the error.
pub fn from_onnx(path: &Path, m: OnnxModel, arch: Option<Arch>) -> Result<Weights> {
    let arch = arch.unwrap_or_else(|| infer_arch(&m));
    let mismatch = |problem: String| Error::WeightMismatch {
        path: path.to_path_buf(),
        arch: arch.to_string(),
        problems: vec![problem],
    };
    if let Some(c) = m.input_dims.get(1).copied().flatten() {
        if c != 3 {
            return Err(mismatch(format!(
                "the input '{}' has {c} channels; an AlexNet takes 3",
                m.input_name
            )));
        }
    }
    // The layer structure (kernels, strides, groups, pools) does not depend on the widths: check
    // it first, so that a graph of another preset is refused naming its first odd node.
    let spec = arch.spec(&arch.default_widths());
    let declared = m.input_chw();
    let ours: Vec<&Layer> = spec
        .layers
        .iter()
        .filter(|l| !matches!(l, Layer::Dropout(_)))
        .collect();
    let theirs: Vec<_> = m
        .layers
        .iter()
        .filter(|l| l.op != OnnxOp::Identity)
        .collect();
    let (mut i, mut j) = (0, 0);
    let mut ceil_needed: Option<(bool, String)> = None;
    while i < ours.len() {
        let layer = ours[i];
        let Some(t) = theirs.get(j) else {
            return Err(mismatch(format!(
                "the graph ends before the preset's layer {} ({})",
                i + 1,
                layer.describe()
            )));
        };
        let bad = |why: String| mismatch(format!("{}: {why}", t.node));
        match (layer, &t.op) {
            (
                Layer::Conv {
                    kernel,
                    stride,
                    pad,
                    groups,
                    ..
                },
                OnnxOp::Conv {
                    kernel: k,
                    stride: s,
                    pads,
                    groups: g,
                    ..
                },
            ) => {
                if *k != [*kernel; 2] || *s != [*stride; 2] || *pads != [*pad; 4] || g != groups {
                    return Err(bad(format!(
                        "kernel {k:?} stride {s:?} pads {pads:?} group {g}; the preset's layer is {}",
                        layer.describe()
                    )));
                }
            }
            (Layer::Relu, OnnxOp::Relu) => {}
            (
                Layer::Lrn(l),
                OnnxOp::Lrn {
                    size,
                    alpha,
                    beta,
                    bias,
                },
            ) => {
                if *size != l.size
                    || !close(*alpha, l.alpha)
                    || !close(*beta, l.beta)
                    || !close(*bias, l.k)
                {
                    return Err(bad(format!(
                        "size {size} alpha {alpha} beta {beta} bias {bias}; the preset's layer is {}",
                        layer.describe()
                    )));
                }
            }
            (
                Layer::MaxPool { kernel, stride, .. },
                OnnxOp::MaxPool {
                    kernel: k,
                    stride: s,
                    pads,
                    ceil,
                    in_hw,
                    out_hw,
                },
            ) => {
                if *k != [*kernel; 2] || *s != [*stride; 2] || pads[0] != 0 || pads[1] != 0 {
                    return Err(bad(format!(
                        "kernel {k:?} stride {s:?} pads {pads:?}; the preset's layer is {} with no leading padding",
                        layer.describe()
                    )));
                }
                // Which rounding the file means: at its declared size, compare its output size
                // with ours rounded down and up (end padding is how converters write Caffe's
                // rounding up); without a declared size, trust the attributes.
                let wants_ceil = match (in_hw, out_hw) {
                    (Some([ih, iw]), Some([oh, ow])) => {
                        let fl = [
                            out_size_rounded(*ih, *kernel, *stride, false)?,
                            out_size_rounded(*iw, *kernel, *stride, false)?,
                        ];
                        let ce = [
                            out_size_rounded(*ih, *kernel, *stride, true)?,
                            out_size_rounded(*iw, *kernel, *stride, true)?,
                        ];
                        if [*oh, *ow] == fl && fl == ce {
                            None
                        } else if [*oh, *ow] == ce {
                            Some(true)
                        } else if [*oh, *ow] == fl {
                            Some(false)
                        } else {
                            return Err(bad(format!(
                                "pads {pads:?} ceil_mode {} turn {ih}x{iw} into {oh}x{ow}, which is neither rounding down ({}x{}) nor up ({}x{})",
                                *ceil as u8, fl[0], fl[1], ce[0], ce[1]
                            )));
                        }
                    }
                    _ => Some(*ceil || pads[2] > 0 || pads[3] > 0),
                };
                if let Some(c) = wants_ceil {
                    match &ceil_needed {
                        Some((prev, node)) if *prev != c => {
                            return Err(bad(format!(
                                "rounds its output size {} while {node} rounds {}; mixed pooling rounding is not supported",
                                if c { "up" } else { "down" },
                                if *prev { "up" } else { "down" }
                            )))
                        }
                        _ => ceil_needed = Some((c, t.node.clone())),
                    }
                }
            }
            (Layer::AdaptiveAvgPool { h, w }, op) => {
                // torch.onnx.export writes AdaptiveAvgPool2d as an AveragePool at the traced size,
                // or nothing when it is the identity there.
                match op {
                    OnnxOp::AveragePool {
                        out_hw: Some(o), ..
                    } if *o == [*h, *w] => {}
                    OnnxOp::AveragePool {
                        kernel: [1, 1],
                        stride: [1, 1],
                        ..
                    } => {}
                    OnnxOp::Flatten => {
                        i += 1;
                        continue;
                    }
                    _ => {
                        return Err(bad(format!(
                            "expected the preset's {} here",
                            layer.describe()
                        )))
                    }
                }
            }
            (Layer::Flatten, OnnxOp::Flatten) => {}
            (Layer::Dense { .. }, OnnxOp::Dense { .. }) => {}
            (Layer::Softmax, OnnxOp::Softmax) => {}
            _ => {
                return Err(bad(format!(
                    "expected the preset's layer {} ({}) here",
                    i + 1,
                    layer.describe()
                )))
            }
        }
        i += 1;
        j += 1;
    }
    for t in &theirs[j.min(theirs.len())..] {
        if t.op != OnnxOp::Softmax {
            return Err(mismatch(format!(
                "{}: the preset's network has ended (its last layer is fc8)",
                t.node
            )));
        }
    }
    let mut w = super::params::from_raw(path, m.tensors, Some(arch))?;
    w.pool_ceil = ceil_needed.is_some_and(|(c, _)| c);
    // The network must work at the size the file declares, with the same parameter shapes
    // (fc6 takes what pool5 gives there).
    if let Some([_, h, wd]) = declared {
        let at = w
            .spec()
            .with_input_hw(h, wd)
            .param_shapes()
            .map_err(|e| mismatch(format!("at the declared input size {h}x{wd}: {e}")))?;
        let own = w.spec().param_shapes()?;
        if let Some(((name, got), (_, want))) = at.iter().zip(&own).find(|(a, b)| a.1 != b.1) {
            return Err(mismatch(format!(
                "at the declared input size {h}x{wd}, {name} would need shape {got:?}, but the file's is {want:?}"
            )));
        }
    }
    Ok(w)
}

/// What goes with an export besides the weights.
#[derive(Clone, Debug, Default)]
pub struct ExportOptions {
    /// Append a Softmax: the graph outputs probabilities instead of logits.
    pub softmax: bool,
    /// `metadata_props` (class names, preprocessing...).
    pub metadata: Vec<(String, String)>,
}

/// The ONNX name of a parameter: the source scheme's key (torchvision or Caffe names), or the
/// canonical name for Keras (whose layout the ONNX tensors do not use).
fn onnx_key(scheme: Scheme, canon: &str) -> String {
    match scheme {
        Scheme::Keras => canon.to_string(),
        s => s.file_key(canon),
    }
}

impl Weights {
    /// The network as an opset-13 ONNX graph: input `[N, 3, H, W]` at the preset's size.
    pub fn to_onnx(&self, opts: &ExportOptions) -> Result<Vec<u8>> {
        let e = self.onnx_export(opts)?;
        crate::weights::onnx::encode(&e)
    }

    fn onnx_export(&self, opts: &ExportOptions) -> Result<OnnxExport<'_>> {
        let spec = self.spec();
        let infos = spec.infer()?;
        let mut layers = Vec::new();
        let mut tensors = Vec::new();
        for (layer, info) in spec.layers.iter().zip(&infos) {
            let op = match layer {
                Layer::Conv {
                    name,
                    out,
                    kernel,
                    stride,
                    pad,
                    groups,
                } => {
                    for leaf in ["weight", "bias"] {
                        let canon = format!("{name}.{leaf}");
                        let shape = info
                            .params
                            .iter()
                            .find(|(n, _)| *n == canon)
                            .map(|(_, s)| s.clone())
                            .expect("conv params");
                        tensors.push((onnx_key(self.scheme, &canon), shape, self.get(&canon)));
                    }
                    OnnxOp::Conv {
                        out: *out,
                        kernel: [*kernel; 2],
                        stride: [*stride; 2],
                        pads: [*pad; 4],
                        groups: *groups,
                    }
                }
                Layer::Dense { name, out } => {
                    for leaf in ["weight", "bias"] {
                        let canon = format!("{name}.{leaf}");
                        let shape = info
                            .params
                            .iter()
                            .find(|(n, _)| *n == canon)
                            .map(|(_, s)| s.clone())
                            .expect("dense params");
                        tensors.push((onnx_key(self.scheme, &canon), shape, self.get(&canon)));
                    }
                    OnnxOp::Dense { out: *out }
                }
                Layer::Relu => OnnxOp::Relu,
                Layer::Lrn(l) => OnnxOp::Lrn {
                    size: l.size,
                    alpha: l.alpha,
                    beta: l.beta,
                    bias: l.k,
                },
                Layer::MaxPool {
                    kernel,
                    stride,
                    ceil,
                } => OnnxOp::MaxPool {
                    kernel: [*kernel; 2],
                    stride: [*stride; 2],
                    pads: [0; 4],
                    ceil: *ceil,
                    in_hw: None,
                    out_hw: None,
                },
                Layer::AdaptiveAvgPool { h, w } => {
                    let [_, ih, iw] = info.input.as_map();
                    if (ih, iw) == (*h, *w) {
                        OnnxOp::Identity
                    } else if ih % h == 0 && iw % w == 0 {
                        OnnxOp::AveragePool {
                            kernel: [ih / h, iw / w],
                            stride: [ih / h, iw / w],
                            pads: [0; 4],
                            in_hw: None,
                            out_hw: None,
                        }
                    } else {
                        return Err(Error::Shape(format!(
                            "ONNX export: adaptive average pooling {ih}x{iw} -> {h}x{w} is not a plain AveragePool"
                        )));
                    }
                }
                Layer::Flatten => OnnxOp::Flatten,
                Layer::Dropout(_) => OnnxOp::Identity,
                Layer::Softmax => OnnxOp::Softmax,
            };
            layers.push(op);
        }
        if opts.softmax && !matches!(spec.layers.last(), Some(Layer::Softmax)) {
            layers.push(OnnxOp::Softmax);
        }
        let input_chw = match Shape::Map(spec.input) {
            Shape::Map(m) => m,
            Shape::Flat(_) => unreachable!(),
        };
        Ok(OnnxExport {
            layers,
            tensors,
            input_name: if self.arch == Arch::Caffe {
                "data_0".into()
            } else {
                "input".into()
            },
            input_chw,
            output_name: if opts.softmax {
                "probabilities".into()
            } else {
                "logits".into()
            },
            graph_name: format!("alexnet_{}", self.arch),
            metadata: opts.metadata.clone(),
            opset: 13,
        })
    }

    /// Writes the weights as an `.onnx` graph, atomically.
    pub fn save_onnx(&self, path: &Path, opts: &ExportOptions) -> Result<()> {
        let e = self.onnx_export(opts)?;
        crate::weights::onnx::write_onnx(path, &e)
    }

    /// Writes `.safetensors` in the names and layout of the source file, with string metadata.
    pub fn save_safetensors(&self, path: &Path, metadata: &HashMap<String, String>) -> Result<()> {
        let t = self.file_tensors(self.scheme)?;
        let views: Vec<(String, Vec<usize>, &[f32])> = t
            .iter()
            .map(|(k, s, d)| (k.clone(), s.clone(), d.as_slice()))
            .collect();
        crate::weights::safetensors::write_safetensors(path, &views, metadata)
    }

    /// Writes the weights in the format of `path`'s extension (.npz, .safetensors, .onnx), with
    /// string metadata (`(key, value)`: npz string arrays, safetensors `__metadata__`, ONNX
    /// `metadata_props`); any other extension is an error listing the supported ones.
    pub fn save_as(&self, path: impl AsRef<Path>, metadata: &[(String, String)]) -> Result<()> {
        let path = path.as_ref();
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "npz" => {
                // String arrays under `meta/` (the npz reader's metadata namespace).
                let values: Vec<Vec<String>> =
                    metadata.iter().map(|(_, v)| vec![v.clone()]).collect();
                let extra = metadata
                    .iter()
                    .zip(&values)
                    .map(|((k, _), v)| {
                        let key = if k.starts_with("meta/") {
                            k.clone()
                        } else {
                            format!("meta/{k}")
                        };
                        (key, NpzEntry::Str(v))
                    })
                    .collect();
                self.save_npz(path, extra)
            }
            "safetensors" => self.save_safetensors(path, &metadata.iter().cloned().collect()),
            "onnx" => self.save_onnx(
                path,
                &ExportOptions {
                    softmax: false,
                    metadata: metadata.to_vec(),
                },
            ),
            _ => Err(Error::input(
                path.to_path_buf(),
                crate::error::InputErrorKind::Unsupported,
                format!(
                    "cannot write weights as '{}' files; the output format follows the extension: {OUTPUT_FORMATS}",
                    if ext.is_empty() { "extension-less".to_string() } else { format!(".{ext}") }
                ),
            )),
        }
    }
}
