//! What a model file written by `train-head` says about itself: class names, preset,
//! preprocessing and head, stored beside the weights as numpy string arrays.

use std::path::Path;

use super::npz::{read_strings, NpzEntry};
use crate::error::Result;

/// Key of the metadata document (npz array name, safetensors `__metadata__` / ONNX
/// `metadata_props` key).
pub const META_KEY: &str = "meta/json";

/// Version of the `meta/json` document.
pub const META_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
/// The metadata a saved model carries (`meta/json`).
pub struct ModelMeta {
    /// "alexnet-wgpu model".
    pub format: String,
    /// [`META_VERSION`].
    pub version: u32,
    /// The preset.
    pub arch: String,
    /// The class names.
    pub classes: Vec<String>,
    /// The trained head's kind, for trained models.
    pub head: Option<String>,
    /// The preprocessing, as JSON.
    pub preprocess: Option<serde_json::Value>,
}

impl ModelMeta {
    /// The metadata of `path` if it is an `.npz`, `.safetensors` or `.onnx` that carries it.
    pub fn read(path: &Path) -> Result<Option<ModelMeta>> {
        let ext = |x: &str| path.extension().is_some_and(|e| e.eq_ignore_ascii_case(x));
        if path.is_file() && ext("safetensors") {
            let m = super::safetensors::read_metadata(path)?;
            return Ok(m.get(META_KEY).and_then(|j| serde_json::from_str(j).ok()));
        }
        if path.is_file() && ext("onnx") {
            let m = super::onnx::read_onnx(path)?;
            return Ok(m.meta(META_KEY).and_then(|j| serde_json::from_str(j).ok()));
        }
        if !path.is_file() || !ext("npz") {
            return Ok(None);
        }
        let Some(json) = read_strings(path, "meta/json")? else {
            return Ok(None);
        };
        Ok(json.first().and_then(|j| serde_json::from_str(j).ok()))
    }

    /// String metadata for `.safetensors` / ONNX: the whole document under `meta/json`, and the
    /// class names and preprocessing as JSON on their own for other tools.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut v = vec![
            (
                META_KEY.to_string(),
                serde_json::to_string(self).expect("serialisable"),
            ),
            (
                "classes".to_string(),
                serde_json::to_string(&self.classes).expect("serialisable"),
            ),
            ("arch".to_string(), self.arch.clone()),
        ];
        if let Some(p) = &self.preprocess {
            v.push(("preprocess".to_string(), p.to_string()));
        }
        v
    }

    /// `(key, value)` entries to store with the weights; the owned strings live in `self`.
    pub fn to_strings(&self) -> (Vec<String>, Vec<String>) {
        (
            vec![serde_json::to_string(self).expect("serialisable")],
            self.classes.clone(),
        )
    }
}

/// npz entries for metadata strings made by [`ModelMeta::to_strings`].
pub fn entries<'a>(json: &'a [String], classes: &'a [String]) -> Vec<(String, NpzEntry<'a>)> {
    vec![
        ("meta/json".to_string(), NpzEntry::Str(json)),
        ("meta/classes".to_string(), NpzEntry::Str(classes)),
    ]
}
