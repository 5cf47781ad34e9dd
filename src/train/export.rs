//! Writing a trained model: the backbone with the new head, plus its class names, preset and
//! preprocessing, in one `.npz` that `classify` and `eval` read directly.

use std::path::Path;

use super::HeadWeights;
use crate::data::Preprocess;
use crate::error::Result;
use crate::model::Weights;
use crate::weights::meta::{self, ModelMeta, META_VERSION};

/// The backbone with the head's layers replaced (fc8 resized to the new classes).
pub fn with_head(backbone: &Weights, head: &HeadWeights) -> Weights {
    let mut w = backbone.clone();
    for c in head.conv.iter().flat_map(|c| &c.convs) {
        w.tensors
            .insert(format!("{}.weight", c.name), c.weight.clone());
        w.tensors.insert(format!("{}.bias", c.name), c.bias.clone());
    }
    for l in &head.layers {
        w.tensors
            .insert(format!("{}.weight", l.name), l.weight.clone());
        w.tensors.insert(format!("{}.bias", l.name), l.bias.clone());
    }
    w.widths.classes = head.classes();
    w
}

/// Writes the whole model atomically.
pub fn save_model(
    path: &Path,
    backbone: &Weights,
    head: &HeadWeights,
    classes: &[String],
) -> Result<()> {
    let model = with_head(backbone, head);
    let m = ModelMeta {
        format: "alexnet-wgpu model".into(),
        version: META_VERSION,
        arch: backbone.arch.to_string(),
        classes: classes.to_vec(),
        head: Some(match head.kind {
            super::HeadKind::Last => "last".into(),
            super::HeadKind::Classifier => "classifier".into(),
            k => format!("from {}", k.first_layer()),
        }),
        preprocess: serde_json::to_value(Preprocess::for_arch(backbone.arch)).ok(),
    };
    save_with_meta(path, &model, &m)
}

/// Writes `model` atomically with its metadata (class names, preset, head) in the format of
/// `path`'s extension: `.npz`, `.safetensors` or `.onnx`.
pub fn save_with_meta(path: &Path, model: &Weights, m: &ModelMeta) -> Result<()> {
    let (json, names) = m.to_strings();
    let npz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npz"));
    if npz {
        return model.save_npz(path, meta::entries(&json, &names));
    }
    // .safetensors `__metadata__` / ONNX `metadata_props` (other extensions are refused).
    model.save_as(path, &m.to_pairs())
}
