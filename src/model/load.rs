//! Loading weights from any file: an `.onnx` by following its graph, every other format as raw
//! tensors by key (see [`crate::weights::read_tensors`]), then checked against the preset.

use std::path::Path;

use super::formats::from_onnx;
use super::params::{from_raw, Weights};
use super::Arch;
use crate::error::Result;
use crate::weights::read_tensors;

impl Weights {
    /// Loads and checks `path`; `arch: None` infers the preset from key names and shapes (for
    /// an `.onnx`, from the layers of its graph).
    pub fn load(path: impl AsRef<Path>, arch: Option<Arch>) -> Result<Weights> {
        let path = path.as_ref();
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
        {
            let model = crate::weights::onnx::read_onnx(path)?;
            return from_onnx(path, model, arch);
        }
        let raw = read_tensors(path)?;
        from_raw(path, raw, arch)
    }
}
