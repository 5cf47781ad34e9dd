//! The raw tensor every reader returns: an array as found in a file, in the file's own key
//! names and layout, converted to f32 (or the reason it could not be).

use std::path::Path;

use crate::error::Error;

/// One array as found in a file, converted to f32 (or the reason it could not be).
#[derive(Clone, Debug)]
pub struct RawTensor {
    /// Its key in the file.
    pub key: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// `Err(reason)` for dtypes we refuse (integers, objects, strings...).
    pub data: std::result::Result<Vec<f32>, String>,
}

/// The error every reader returns for a malformed file.
pub(crate) fn file_err(path: &Path, message: impl Into<String>) -> Error {
    Error::input(
        path.to_path_buf(),
        crate::error::InputErrorKind::Malformed,
        message.into(),
    )
}

/// The largest weights file read whole (`.h5`, `.safetensors`, legacy `.pth`): a full-size
/// AlexNet is 233 MB in float32, 466 MB in float64.
pub const MAX_WEIGHTS_FILE: u64 = 4 << 30;
