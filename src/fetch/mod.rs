//! Pre-trained weights: download torchvision's AlexNet, check its hash, convert it to our `.npz`
//! and keep it in the user's cache directory, where the model commands look when `--weights` is
//! not given.
//!
//! The download goes to a temporary file in the cache directory and only a verified, converted
//! file is renamed into place, so an interrupted or corrupt download is never taken for a good
//! one.

use std::path::{Path, PathBuf};

#[cfg(feature = "cli")]
mod download;

use crate::error::{Error, Result};
use crate::model::Weights;
use crate::weights::{pth, read_tensors};
#[cfg(feature = "cli")]
pub use download::fetch_weights;

/// torchvision's `AlexNet_Weights.IMAGENET1K_V1`.
pub const TORCHVISION_URL: &str = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth";
/// torchvision checks that the file's SHA-256 starts with the hash in its name.
pub const TORCHVISION_SHA256_PREFIX: &str = "7be5be79";
/// The ONNX model zoo's BVLC AlexNet (Caffe's net converted through Caffe2), for the `caffe`
/// preset.
pub const CAFFE_URL: &str = "https://github.com/onnx/models/raw/main/validated/vision/classification/alexnet/model/bvlcalexnet-12.onnx";
/// The whole SHA-256 of `bvlcalexnet-12.onnx` (243,863,787 bytes), as published in the zoo's
/// `ONNX_HUB_MANIFEST.json` (`model_sha`, which is also its Git LFS object id).
pub const CAFFE_SHA256: &str = "6b0da9510f27f234ee96a85dc3809dd210150fdefad87f6850f9788513216945";
/// The size of `bvlcalexnet-12.onnx`: a download stops there.
pub const CAFFE_BYTES: u64 = 243_863_787;
/// The size of `alexnet-owt-7be5be79.pth` (torchvision's `_file_size` 233.087 MB): a download
/// stops there.
pub const TORCHVISION_BYTES: u64 = 244_408_911;
/// The most a download from another `--url` may send (AlexNet's files are under 250 MB).
pub const MAX_DOWNLOAD_BYTES: u64 = 1 << 30;
/// The converted Caffe weights' file name in the cache directory.
pub const CACHED_CAFFE_FILE: &str = "alexnet-caffe.npz";
/// The cache directory set by the program ([`set_cache_dir`]; the `alexnet` binary sets it
/// from its cache-directory option or environment variable).
static CACHE_DIR: std::sync::RwLock<Option<PathBuf>> = std::sync::RwLock::new(None);

/// Sets the cache directory for this process (`None`: the platform's default again).
pub fn set_cache_dir(dir: Option<PathBuf>) {
    *CACHE_DIR.write().unwrap_or_else(|e| e.into_inner()) =
        dir.filter(|d| !d.as_os_str().is_empty());
}
/// The converted weights' file name in the cache directory.
pub const CACHED_FILE: &str = "alexnet-torchvision.npz";

/// The cache directory: the one [`set_cache_dir`] set, else the platform's cache folder (XDG
/// on Linux: `$XDG_CACHE_HOME` or `~/.cache`; `~/Library/Caches` on macOS; `%LOCALAPPDATA%`
/// on Windows) followed by `alexnet-wgpu`.
pub fn cache_dir() -> Result<PathBuf> {
    if let Some(dir) = CACHE_DIR.read().unwrap_or_else(|e| e.into_inner()).clone() {
        return Ok(dir);
    }
    dirs::cache_dir()
        .map(|d| d.join("alexnet-wgpu"))
        .ok_or(Error::NoCacheDir)
}

/// Where `fetch-weights` stores the converted weights.
pub fn cached_weights_path() -> Result<PathBuf> {
    Ok(cache_dir()?.join(CACHED_FILE))
}

/// Where `fetch-weights --arch caffe` stores the converted BVLC weights.
pub fn cached_caffe_weights_path() -> Result<PathBuf> {
    Ok(cache_dir()?.join(CACHED_CAFFE_FILE))
}

/// The cached weights, or an error saying how to get them (never touches the network).
pub fn cached_weights() -> Result<PathBuf> {
    let path = cached_weights_path()?;
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::NoCachedWeights {
            path,
            file: CACHED_FILE,
        })
    }
}

/// What `fetch_weights` does.
#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// Where to download from.
    pub url: String,
    /// Lower-case hex; the download's SHA-256 must start with it.
    pub sha256_prefix: String,
    /// Where the converted `.npz` goes.
    pub dest: PathBuf,
    /// Download again even when `dest` exists.
    pub force: bool,
    /// Show a progress bar on stderr (hidden anyway when stderr is not a terminal).
    pub progress: bool,
    /// The download stops with an error past this many bytes (the official files' sizes, or
    /// [`MAX_DOWNLOAD_BYTES`] for another URL).
    pub max_bytes: u64,
}

impl FetchOptions {
    /// torchvision's official weights into the cache directory.
    pub fn torchvision() -> Result<FetchOptions> {
        Ok(FetchOptions {
            url: TORCHVISION_URL.to_string(),
            sha256_prefix: TORCHVISION_SHA256_PREFIX.to_string(),
            dest: cached_weights_path()?,
            force: false,
            progress: true,
            max_bytes: TORCHVISION_BYTES,
        })
    }
}

/// What `fetch_weights` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fetched {
    /// `dest` already existed; nothing was downloaded.
    Cached(PathBuf),
    /// Downloaded, verified and converted.
    Downloaded {
        /// The converted weights.
        path: PathBuf,
        /// Bytes downloaded.
        bytes: u64,
        /// The download's SHA-256, lower-case hex.
        sha256: String,
    },
}

/// Converts any supported weights file (.npz, .npy folder, .pth/.pt, .h5/.keras) to our `.npz`
/// (checked against the preset, written atomically); returns the loaded weights.
pub fn convert_file(
    input: &Path,
    output: &Path,
    arch: Option<crate::model::Arch>,
) -> Result<Weights> {
    let is = |p: &Path, x: &str| p.extension().is_some_and(|e| e.eq_ignore_ascii_case(x));
    // The output may replace neither the input nor an ONNX model's external data files (which
    // are read only while loading, after the output's name is chosen).
    let external = if is(input, "onnx") && input.is_file() {
        crate::weights::onnx::external_data_files(input).unwrap_or_default()
    } else {
        Vec::new()
    };
    let inputs: Vec<(&str, &Path)> = std::iter::once(input)
        .chain(external.iter().map(PathBuf::as_path))
        .map(|p| ("", p))
        .collect();
    crate::clobber::check_outputs(&inputs, &[("", output)])?;
    let w = if is(input, "onnx") {
        // Checked layer by layer against the preset.
        Weights::load(input, arch)?
    } else {
        let raw = if input.is_file() && input.extension().is_none() {
            // A download without extension: an .npz is a zip of .npy members, anything else
            // is read as a PyTorch file.
            if crate::weights::read::is_npz(input) {
                read_tensors(input)?
            } else {
                pth::read_pth(input)?
            }
        } else {
            read_tensors(input)?
        };
        crate::model::params::from_raw(input, raw, arch)?
    };
    // A train-head model keeps its class names and preprocessing.
    let meta = crate::weights::meta::ModelMeta::read(input)?;
    if is(output, "npz") {
        match &meta {
            Some(m) => {
                let (json, names) = m.to_strings();
                w.save_npz(output, crate::weights::meta::entries(&json, &names))?
            }
            None => w.save_npz(output, vec![])?,
        }
    } else {
        let pairs = match &meta {
            Some(m) => m.to_pairs(),
            None => vec![
                ("arch".to_string(), w.arch.to_string()),
                (
                    "preprocess".to_string(),
                    serde_json::to_string(&crate::data::Preprocess::for_arch(w.arch))
                        .expect("serialisable"),
                ),
            ],
        };
        w.save_as(output, &pairs)?;
    }
    Ok(w)
}
