//! The library's error type: every variant names what the user has to look at. The library
//! names no command-line flags or environment variables: the `alexnet` binary adds those
//! hints (`cli::hint`).
//!
//! There is deliberately no `From<std::io::Error>`: every I/O error of the library names its
//! file ([`Error::io`]). A program that mixes its own I/O with this crate's calls can return
//! `Box<dyn std::error::Error>` (or `anyhow::Result`) from `main`. `Debug` prints the same
//! message as `Display`, so `fn main() -> alexnet_wgpu::Result<()>` reports errors readably.

use std::path::PathBuf;

#[derive(thiserror::Error)]
pub enum Error {
    /// No adapter at all (`filter` empty: no Vulkan/Metal/DX12 driver), or none matching the
    /// backend or name asked for (`filter` says which; `gpu::list_adapters` lists them).
    #[error("{}", no_adapter(filter))]
    NoAdapter { filter: String },

    /// (The cause is shown in the message, so it is not also the error's `source()`: printers
    /// that walk the chain would repeat it.)
    #[error("could not open a device on adapter '{adapter}': {cause}")]
    RequestDevice {
        adapter: String,
        cause: wgpu::RequestDeviceError,
    },

    /// A job scheduler's GPU assignment that names no adapter, or cannot be read; `origin`
    /// is where the caller found it.
    #[error("cannot use the GPU assignment {origin}: {detail}")]
    GpuAssignment { origin: String, detail: String },

    #[error("unknown backend '{0}' (expected vulkan, metal, dx12 or gl)")]
    UnknownBackend(String),

    #[error("GPU error: {0}")]
    Gpu(String),

    #[error("not supported by this device: {0}")]
    Unsupported(String),

    #[error("validation failed on {adapter}:\n  {}", messages.join("\n  "))]
    Validation {
        adapter: String,
        messages: Vec<String>,
    },

    #[error(
        "{what} needs a buffer of {needed} bytes, over this adapter's limit of {limit} bytes ({limit_name}).\n  hint: {hint}"
    )]
    OverLimit {
        what: String,
        needed: u64,
        limit: u64,
        limit_name: &'static str,
        hint: String,
    },

    /// A network description whose shapes do not chain (from weights or a preset).
    #[error("invalid network: {0}")]
    Shape(String),

    /// Data or an argument that does not fit what it is given to (a batch of 0, features of
    /// the wrong width for a head, a label past the class count).
    #[error("{0}")]
    Invalid(String),

    #[error("no training samples")]
    NoTrainingSamples,

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
        epoch: usize,
        what: String,
        checkpoint: Option<PathBuf>,
    },

    #[error("resuming needs a checkpoint file, and none was given")]
    ResumeWithoutCheckpoint,

    #[error("{path}: this checkpoint was written by a run with other options or data")]
    CheckpointMismatch { path: PathBuf },

    #[error("{path}: {message}")]
    WeightFile { path: PathBuf, message: String },

    #[error("{path}: the weights do not fit the '{arch}' network:\n{}", problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    WeightMismatch {
        path: PathBuf,
        arch: String,
        problems: Vec<String>,
    },

    #[error("{path}: cannot read image: {message}")]
    Image { path: PathBuf, message: String },

    #[error("{path}: {message}")]
    Input { path: PathBuf, message: String },

    /// (Not the error's `source()` either, for the same reason as `RequestDevice`.)
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },

    #[error("downloading {url}: {message}")]
    Download { url: String, message: String },

    /// The server could not be reached at all (no network, DNS, refused, timed out).
    #[error("downloading {url}: {message}")]
    Unreachable { url: String, message: String },

    #[error(
        "{url}: the SHA-256 of the download is {found}, which does not start with the expected \
         '{expected}'; the file is corrupt or not the one expected, and was not kept"
    )]
    HashMismatch {
        url: String,
        expected: String,
        found: String,
    },

    #[error(
        "no weights given and no pre-trained weights in the cache ({path} does not exist; the \
         cache directory is the one set for this process or the platform's, and holds {file} \
         once downloaded)"
    )]
    NoCachedWeights { path: PathBuf, file: &'static str },

    /// (`fetch::set_cache_dir` names one.)
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

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            cause: source,
        }
    }
}
