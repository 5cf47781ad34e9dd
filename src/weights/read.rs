//! Which reader a path or a buffer goes to: `.npz`, `.npy` (or a directory of them), `.pth` /
//! `.pt`, `.h5` / `.hdf5` / `.keras`, `.safetensors`, `.onnx`.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use super::npz::{open_npy, read_npy, read_npz};
use super::raw::{file_err, RawTensor};
use super::{h5, pth};
use crate::error::{Error, Result};

/// A weight file format, as chosen from a file's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `.npz` (also any extension not listed below).
    Npz,
    /// A single `.npy` array.
    Npy,
    /// PyTorch `.pth` / `.pt` (zip or legacy).
    Pth,
    /// Keras `.h5` / `.hdf5` / `.weights.h5` / `.keras`.
    H5,
    /// `.safetensors`.
    Safetensors,
    /// `.onnx` (initializers found by following the graph).
    Onnx,
}

impl Format {
    /// The format a file of this name is read as.
    pub fn of_path(path: &Path) -> Format {
        if has_ext(path, "pth") || has_ext(path, "pt") {
            Format::Pth
        } else if has_ext(path, "h5") || has_ext(path, "hdf5") || has_ext(path, "keras") {
            Format::H5
        } else if has_ext(path, "safetensors") {
            Format::Safetensors
        } else if has_ext(path, "onnx") {
            Format::Onnx
        } else if has_ext(path, "npy") {
            Format::Npy
        } else {
            Format::Npz
        }
    }
}

/// Every array of an `.npz` file, a single `.npy` file, or a directory of `.npy` files (keys are
/// the paths below the directory without `.npy`, with `/` separators), a `.pth` state_dict or
/// Keras weights, in key order.
pub fn read_tensors(path: &Path) -> Result<Vec<RawTensor>> {
    read_tensors_matching(path, &|_| true)
}

/// [`read_tensors`] of the tensors whose key `keep` accepts, reading as little of the file as
/// its format allows: a `.pth` zip's or an `.npz`'s other members and a directory's other
/// `.npy` files are never opened, a `.safetensors` file's other tensors never decoded; the
/// legacy `.pth`, HDF5 and ONNX files are read whole and filtered. Every check of the full read
/// applies to what is read.
pub fn read_tensors_matching(path: &Path, keep: &dyn Fn(&str) -> bool) -> Result<Vec<RawTensor>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::read(path, e))?;
    let mut out = if meta.is_dir() {
        read_dir(path, keep)?
    } else {
        // A FIFO would block the open, a device never ends: refused before opening.
        crate::fsutil::regular_file(path)?;
        match Format::of_path(path) {
            Format::Pth => pth::read_pth_matching(path, keep)?,
            Format::H5 => h5::read_h5(path)?,
            Format::Safetensors => super::safetensors::read_safetensors_matching(path, keep)?,
            Format::Onnx => super::onnx::read_onnx_tensors(path)?,
            Format::Npy => {
                let file = File::open(path).map_err(|e| Error::read(path, e))?;
                let npy = open_npy(BufReader::new(file), meta.len(), &npy_key(path), path)?;
                vec![read_npy(npy, &npy_key(path), path)?]
            }
            Format::Npz => {
                let file = File::open(path).map_err(|e| Error::read(path, e))?;
                read_npz(BufReader::new(file), path, keep)?
            }
        }
    };
    out.retain(|t| keep(&t.key));
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// [`read_tensors`] of a file's bytes already in memory (fuzzing, files from elsewhere):
/// `format` says how to read them, `path` only names the file in errors (and the key of an
/// `.npy`).
pub fn read_tensors_from_bytes(
    format: Format,
    bytes: &[u8],
    path: &Path,
) -> Result<Vec<RawTensor>> {
    let mut out = match format {
        Format::Pth => pth::read_pth_bytes(path, bytes)?,
        Format::H5 => h5::read_h5_bytes(path, bytes)?,
        Format::Safetensors => super::safetensors::read_safetensors_bytes(path, bytes)?,
        // External data files are looked for beside `path`.
        Format::Onnx => super::onnx::read_onnx_bytes(path, bytes)?.tensors,
        Format::Npy => {
            let npy = open_npy(bytes, bytes.len() as u64, &npy_key(path), path)?;
            vec![read_npy(npy, &npy_key(path), path)?]
        }
        Format::Npz => read_npz(std::io::Cursor::new(bytes), path, &|_| true)?,
    };
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// Whether `path` is a zip archive holding `.npy` members (an `.npz`, whatever its name) and no
/// `data.pkl` (a PyTorch zip): how a file without extension is told apart.
pub(crate) fn is_npz(path: &Path) -> bool {
    let Ok(file) = crate::fsutil::open_regular(path) else {
        return false;
    };
    let Ok(zip) = zip::ZipArchive::new(BufReader::new(file)) else {
        return false;
    };
    let names: Vec<&str> = zip.file_names().collect();
    names.iter().any(|n| n.ends_with(".npy")) && !names.iter().any(|n| n.ends_with("data.pkl"))
}

fn npy_key(path: &Path) -> String {
    path.file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .to_string()
}

fn has_ext(path: &Path, ext: &str) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

fn read_dir(dir: &Path, keep: &dyn Fn(&str) -> bool) -> Result<Vec<RawTensor>> {
    let mut found = false;
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.map_err(|e| file_err(dir, e.to_string()))?;
        let p = entry.path();
        if !entry.file_type().is_file() || !has_ext(p, "npy") {
            continue;
        }
        let rel = p.strip_prefix(dir).unwrap_or(p).with_extension("");
        let key = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().to_string())
            .collect::<Vec<_>>()
            .join("/");
        found = true;
        if !keep(&key) {
            continue;
        }
        let file = File::open(p).map_err(|e| Error::read(p, e))?;
        let len = entry
            .metadata()
            .map_err(|e| file_err(p, e.to_string()))?
            .len();
        let npy = open_npy(BufReader::new(file), len, &key, p)?;
        out.push(read_npy(npy, &key, p)?);
    }
    if !found {
        return Err(file_err(dir, "the directory holds no .npy files"));
    }
    Ok(out)
}
