//! The library's error type: every variant names what the user has to look at.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no GPU adapter found{filter}.\n  hint: on Linux install Mesa's Vulkan drivers for the lavapipe software adapter \
         (Debian/Ubuntu: `apt-get install mesa-vulkan-drivers libvulkan1`); \
         check `alexnet adapters` and the WGPU_BACKEND / WGPU_ADAPTER_NAME variables"
    )]
    NoAdapter { filter: String },

    #[error("could not open a device on adapter '{adapter}': {source}")]
    RequestDevice {
        adapter: String,
        #[source]
        source: wgpu::RequestDeviceError,
    },

    #[error("unknown backend '{0}' (expected vulkan, metal, dx12 or gl)")]
    UnknownBackend(String),

    #[error("GPU error: {0}")]
    Gpu(String),

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

    #[error("invalid network: {0}")]
    Shape(String),

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

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("downloading {url}: {message}")]
    Download { url: String, message: String },

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
        "no --weights given and no pre-trained weights in the cache ({path} does not exist).\n  \
         hint: run `alexnet fetch-weights` to download torchvision's pre-trained AlexNet \
         (about 233 MB) into the cache, or pass --weights FILE (.npz, .pth, .h5).\n  \
         offline: copy a converted file to {path} (`alexnet convert \
         alexnet-owt-7be5be79.pth {path}` on any machine), or set {env} to a folder holding \
         {file}"
    )]
    NoCachedWeights {
        path: PathBuf,
        env: &'static str,
        file: &'static str,
    },

    #[error(
        "no cache directory: the platform has none (no HOME?).\n  hint: set {env} to a folder \
         for the pre-trained weights"
    )]
    NoCacheDir { env: &'static str },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
