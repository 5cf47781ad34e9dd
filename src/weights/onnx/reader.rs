//! The state of reading one ONNX file: the file (named in every error) and its decoded model.
//! The graph walk (`read.rs`) and the tensor decoding (`tensor.rs`) are both its methods.

use std::path::Path;

use super::proto::ModelProto;
use crate::error::Error;

/// An error about the weights file at `path`.
pub(super) fn file_err(path: &Path, message: impl Into<String>) -> Error {
    Error::input(
        path.to_path_buf(),
        crate::error::InputErrorKind::Malformed,
        message.into(),
    )
}

pub(super) struct Reader<'a> {
    pub(super) path: &'a Path,
    pub(super) model: &'a ModelProto,
}

impl Reader<'_> {
    /// An error about the file being read.
    pub(super) fn err(&self, message: impl Into<String>) -> Error {
        file_err(self.path, message)
    }
}
