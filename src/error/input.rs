//! [`InputError`]: why one input (an image, a weights file, a list, a folder) could not be
//! used, as a value a program can `match` on ([`InputError::kind`]) besides its message.

use std::path::{Path, PathBuf};

/// What was wrong with an input. `#[non_exhaustive]`: match with a `_` arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum InputErrorKind {
    /// Nothing at that path (or a symbolic link to nothing).
    NotFound,
    /// Something that is not what was asked for: a folder, FIFO or device where a regular file
    /// is read, a file where a folder is listed.
    NotAFile,
    /// The file exists but reading it failed (permissions, an I/O error).
    Unreadable,
    /// An image whose bytes no decoder accepts (corrupt, or not an image at all).
    Decode,
    /// A JPEG that ends before its end-of-image marker (a cut-off download or copy).
    Truncated,
    /// An image too small for the network (LPIPS needs at least `MIN_SIDE`
    /// px per side).
    TooSmall,
    /// Over a size limit: an image's pixel count (a decompression bomb, a forged header), one
    /// image's GPU buffer over the adapter's limit, or a file over the bytes read from its kind.
    TooLarge,
    /// A format or file kind this crate does not read (an extension, a tensor layout or
    /// element type it has no reader for).
    Unsupported,
    /// A file of a known format whose content is wrong for its use: a weights, checkpoint,
    /// features, list or manifest file that does not parse or lacks what it must hold.
    Malformed,
    /// A folder or list with nothing to use in it (no images, no training samples).
    Empty,
}

/// Why one input could not be used: the per-image failure of
/// `Classification::error` and `Embeddings::failed`, and what
/// `Error::Input` holds. `Display` is `path: message`.
///
/// ```
/// use alexnet_wgpu::{InputError, InputErrorKind};
///
/// fn describe(e: &InputError) -> &'static str {
///     match e.kind {
///         InputErrorKind::NotFound => "missing",
///         InputErrorKind::Decode | InputErrorKind::Truncated => "corrupt",
///         _ => "unusable",
///     }
/// }
/// let e = InputError::new("cat.jpg", InputErrorKind::Truncated, "the JPEG data ends early");
/// assert_eq!(describe(&e), "corrupt");
/// assert_eq!(e.to_string(), "cat.jpg: the JPEG data ends early");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("{}: {message}", path.display())]
pub struct InputError {
    /// The input, as given.
    pub path: PathBuf,
    /// What kind of problem it is.
    pub kind: InputErrorKind,
    /// What went wrong, for people (without the path, which `Display` puts first).
    pub message: String,
}

impl InputError {
    /// An error of `kind` about `path`.
    pub fn new(path: impl Into<PathBuf>, kind: InputErrorKind, message: impl Into<String>) -> Self {
        InputError {
            path: path.into(),
            kind,
            message: message.into(),
        }
    }

    /// A failed read of `path`: [`InputErrorKind::NotFound`] when nothing is there,
    /// [`InputErrorKind::Unreadable`] otherwise.
    pub fn from_io(path: &Path, e: &std::io::Error) -> Self {
        let kind = match e.kind() {
            std::io::ErrorKind::NotFound => InputErrorKind::NotFound,
            std::io::ErrorKind::IsADirectory | std::io::ErrorKind::NotADirectory => {
                InputErrorKind::NotAFile
            }
            _ => InputErrorKind::Unreadable,
        };
        InputError::new(path, kind, e.to_string())
    }
}
