//! The library's error type: every variant names what the user has to look at. The library
//! names no command-line flags or environment variables: the `alexnet` binary adds those
//! hints (`cli::hint`).
//!
//! There is deliberately no `From<std::io::Error>`: every I/O error of the library names its
//! file ([`Error::io`]). A program that mixes its own I/O with this crate's calls can return
//! `Box<dyn std::error::Error>` (or `anyhow::Result`) from `main`. `Debug` prints the same
//! message as `Display`, so `fn main() -> alexnet_wgpu::Result<()>` reports errors readably.

use std::path::PathBuf;

mod input;

pub use input::{InputError, InputErrorKind};

/// Everything that can go wrong in this crate, one variant per kind of problem. Grouped:
/// the adapter and device ([`Error::NoAdapter`] .. [`Error::OverLimit`]), inputs
/// ([`Error::Input`], [`Error::WeightMismatch`], [`Error::Io`]), the network and arguments
/// ([`Error::Shape`], [`Error::Invalid`]), training ([`Error::Diverged`] ..
/// [`Error::CheckpointMismatch`]) and the weights cache and downloads ([`Error::Download`] ..
/// [`Error::NoCacheDir`]). `#[non_exhaustive]`: match with a `_` arm.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No adapter at all (`filter` empty: no Vulkan/Metal/DX12 driver), or none matching the
    /// backend or name asked for (`filter` says which; `list_adapters` lists
    /// them).
    #[error("{}", no_adapter(filter))]
    NoAdapter {
        /// What was asked for, as a phrase (" named 'x' on vulkan"); empty when nothing was.
        filter: String,
    },

    /// The adapter was found but refused to open a device (driver failure, limits or
    /// features it does not have). (The cause is shown in the message, so it is not also the
    /// error's `source()`: printers that walk the chain would repeat it.)
    #[error("could not open a device on adapter '{adapter}': {cause}")]
    RequestDevice {
        /// The adapter's name.
        adapter: String,
        /// wgpu's reason.
        cause: wgpu::RequestDeviceError,
    },

    /// A job scheduler's GPU assignment that names no adapter, or cannot be read.
    #[error("cannot use the GPU assignment {origin}: {detail}")]
    GpuAssignment {
        /// Where the caller found the assignment.
        origin: String,
        /// What is wrong with it.
        detail: String,
    },

    /// A backend name other than vulkan, metal, dx12 or gl.
    #[error("unknown backend '{0}' (expected vulkan, metal, dx12 or gl)")]
    UnknownBackend(String),

    /// The device failed while running (lost device, out of memory, a failed read-back).
    #[error("GPU error: {0}")]
    Gpu(String),

    /// The device lacks a feature or limit a requested path needs (f16 shaders, a matmul
    /// tile's workgroup size).
    #[error("not supported by this device: {0}")]
    Unsupported(String),

    /// With validation on: wgpu or the Vulkan validation layer reported errors.
    #[error("validation failed on {adapter}:\n  {}", messages.join("\n  "))]
    Validation {
        /// The adapter's name.
        adapter: String,
        /// Each validation message.
        messages: Vec<String>,
    },

    /// A buffer the work needs is over one of the adapter's limits (usually a batch too
    /// large for the binding size).
    #[error(
        "{what} needs a buffer of {needed} bytes, over this adapter's limit of {limit} bytes ({limit_name}).\n  hint: {hint}"
    )]
    OverLimit {
        /// The buffer.
        what: String,
        /// Its size in bytes.
        needed: u64,
        /// The adapter's limit in bytes.
        limit: u64,
        /// The limit's name in `wgpu::Limits`.
        limit_name: &'static str,
        /// What would fit.
        hint: String,
    },

    /// One input (an image, a weights, checkpoint or features file, a list, a folder) cannot
    /// be used: missing, unreadable, corrupt, truncated, too small or large, of an
    /// unsupported format, or empty. [`InputError::kind`] says which.
    #[error(transparent)]
    Input(InputError),

    /// A weights file that parses but does not fit the network (missing keys, wrong shapes).
    #[error("{path}: the weights do not fit the '{arch}' network:\n{}", problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    WeightMismatch {
        /// The weights file.
        path: PathBuf,
        /// The preset it was matched against.
        arch: String,
        /// Each key or shape at fault.
        problems: Vec<String>,
    },

    /// Reading or writing a file failed outside what [`Error::Input`] covers: writing an
    /// output, renaming it into place, a temporary file. (Not the error's `source()` either,
    /// for the same reason as [`Error::RequestDevice`].)
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        cause: std::io::Error,
    },

    /// A network description whose shapes do not chain (from weights or a preset), or a
    /// tensor of the wrong shape for the call.
    #[error("invalid network: {0}")]
    Shape(String),

    /// Data or an argument that does not fit what it is given to (a batch of 0, features of
    /// the wrong width for a head, a label past the class count, no training samples, a
    /// setting out of range).
    #[error("{0}")]
    Invalid(String),

    /// A loss or a weight turned NaN or infinite: training stopped before the epoch's
    /// checkpoint was written, so the last one on disk (if any) is the last good one.
    #[error(
        "training diverged in epoch {epoch}: {what} is not finite; no model was returned{}",
        match checkpoint {
            Some(p) => format!(", and the last good checkpoint {} was kept", p.display()),
            None => String::new(),
        }
    )]
    Diverged {
        /// The epoch (1-based).
        epoch: usize,
        /// The loss or parameter that went non-finite.
        what: String,
        /// The last good checkpoint, when one was written.
        checkpoint: Option<PathBuf>,
    },

    /// Resuming was asked for without a checkpoint file to resume from.
    #[error("resuming needs a checkpoint file, and none was given")]
    ResumeWithoutCheckpoint,

    /// The checkpoint to resume from was written with other options or data.
    #[error("{path}: this checkpoint was written by a run with other options or data")]
    CheckpointMismatch {
        /// The checkpoint.
        path: PathBuf,
    },

    /// A download that failed once the server answered (an HTTP error status, a cut-off
    /// body, a size other than expected).
    #[error("downloading {url}: {message}")]
    Download {
        /// What was downloaded.
        url: String,
        /// What went wrong.
        message: String,
    },

    /// The server could not be reached at all (no network, DNS, refused, timed out).
    #[error("downloading {url}: {message}")]
    Unreachable {
        /// What was downloaded.
        url: String,
        /// What went wrong.
        message: String,
    },

    /// A download whose SHA-256 is not the expected one (it was not kept).
    #[error(
        "{url}: the SHA-256 of the download is {found}, which does not start with the expected \
         '{expected}'; the file is corrupt or not the one expected, and was not kept"
    )]
    HashMismatch {
        /// What was downloaded.
        url: String,
        /// The expected digest's prefix.
        expected: String,
        /// The download's digest.
        found: String,
    },

    /// Pre-trained weights were asked for and the cache does not hold them.
    #[error(
        "no weights given and no pre-trained weights in the cache ({path} does not exist; the \
         cache directory is the one set for this process or the platform's, and holds {file} \
         once downloaded)"
    )]
    NoCachedWeights {
        /// Where the weights would be.
        path: PathBuf,
        /// The file name they are cached under.
        file: &'static str,
    },

    /// No cache directory was set and the platform has none (`set_cache_dir`
    /// sets one).
    #[error("no cache directory: none was set and the platform has none (no HOME?)")]
    NoCacheDir,
}

fn no_adapter(filter: &str) -> String {
    if filter.is_empty() {
        "no GPU adapter found: no Vulkan, Metal or DX12 driver answered. On Linux install \
         Mesa's Vulkan drivers for the lavapipe software adapter (Debian/Ubuntu: `apt-get \
         install mesa-vulkan-drivers libvulkan1`)"
            .into()
    } else {
        format!("no GPU adapter{filter}")
    }
}

/// The message, as `Display` (what `fn main() -> Result<()>` prints on an error).
impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// This crate's `Result`, with [`Error`] as the error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<InputError> for Error {
    fn from(e: InputError) -> Self {
        Error::Input(e)
    }
}

impl Error {
    /// An [`Error::Input`] of `kind` about `path`.
    pub fn input(
        path: impl Into<PathBuf>,
        kind: InputErrorKind,
        message: impl Into<String>,
    ) -> Self {
        Error::Input(InputError::new(path, kind, message))
    }

    /// A failed read of the input `path`: [`Error::Input`], of kind
    /// [`InputErrorKind::NotFound`] when nothing is there, [`InputErrorKind::Unreadable`]
    /// otherwise.
    pub fn read(path: impl AsRef<std::path::Path>, e: std::io::Error) -> Self {
        Error::Input(InputError::from_io(path.as_ref(), &e))
    }

    /// The failure of one input, as a per-image result carries it: an [`Error::Input`]'s
    /// [`InputError`] as it is; any other error of that input (a buffer over a limit, say) as
    /// an [`InputError`] about `path` of `fallback` kind with the error's message.
    pub fn into_input(self, path: &std::path::Path, fallback: InputErrorKind) -> InputError {
        match self {
            Error::Input(e) => e,
            other => InputError::new(path, fallback, other.to_string()),
        }
    }

    /// An [`Error::Io`] about `path` (writing, renaming, temporary files).
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            cause: source,
        }
    }
}
