//! Hugging Face `.safetensors` files (the `safetensors` crate): a JSON header of names, dtypes,
//! shapes and byte ranges, then the raw little-endian data. String metadata lives in the
//! header's `__metadata__` map.
//!
//! The crate checks the header (size limit, offsets in bounds, contiguous, no overlaps, shapes
//! matching byte counts) before we touch any data, and we allocate only per tensor, sized from
//! its validated byte range.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use super::RawTensor;
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

fn file_err(path: &Path, message: impl Into<String>) -> Error {
    Error::WeightFile {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(bytes).map_err(|e| {
        file_err(
            path,
            format!("not a readable .safetensors file: {e} (is the file truncated or not a .safetensors?)"),
        )
    })
}

fn decode(view: &TensorView<'_>) -> std::result::Result<Vec<f32>, String> {
    let b = view.data();
    Ok(match view.dtype() {
        Dtype::F32 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F64 => b
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        Dtype::F16 => b
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => b
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => {
            return Err(format!(
                "dtype {other:?} is not a float type; weights must be float32 (F16, BF16 and F64 are converted)"
            ))
        }
    })
}

/// Every tensor of a `.safetensors` file, converted to f32 (other dtypes are kept as an `Err`
/// reason for `model::params` to report).
pub fn read_safetensors(path: &Path) -> Result<Vec<RawTensor>> {
    read_safetensors_bytes(path, &read_bytes(path)?)
}

/// [`read_safetensors`] of a file's bytes in memory (`path` names it in errors).
pub fn read_safetensors_bytes(path: &Path, bytes: &[u8]) -> Result<Vec<RawTensor>> {
    let st = parse(path, bytes)?;
    let mut out: Vec<RawTensor> = st
        .tensors()
        .into_iter()
        .map(|(key, view)| RawTensor {
            key,
            shape: view.shape().to_vec(),
            data: decode(&view),
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// The header's `__metadata__` (empty when there is none).
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // Only the header: 8-byte length, then that much JSON (bounded by the file's size).
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut n = [0u8; 8];
    std::io::Read::read_exact(&mut f, &mut n).map_err(|_| {
        file_err(
            path,
            "not a .safetensors file: shorter than its 8-byte header length",
        )
    })?;
    let n = u64::from_le_bytes(n);
    if n > 100_000_000 || n + 8 > len {
        return Err(file_err(
            path,
            format!("not a readable .safetensors file: header length {n} does not fit the {len}-byte file"),
        ));
    }
    let mut head = vec![0u8; 8 + n as usize];
    head[..8].copy_from_slice(&n.to_le_bytes());
    std::io::Read::read_exact(&mut f, &mut head[8..]).map_err(|e| Error::io(path, e))?;
    metadata_of_header(path, &head[8..])
}

/// `__metadata__` of a header's JSON (the bytes after the 8-byte length).
pub fn metadata_of_header(path: &Path, json: &[u8]) -> Result<HashMap<String, String>> {
    // The crate's parser also checks the data against the buffer, which holds only the header
    // here: read `__metadata__` from the JSON directly.
    #[derive(serde::Deserialize)]
    struct Header {
        #[serde(rename = "__metadata__", default)]
        metadata: Option<HashMap<String, String>>,
    }
    let h: Header = serde_json::from_slice(json)
        .map_err(|e| file_err(path, format!("not a readable .safetensors header: {e}")))?;
    Ok(h.metadata.unwrap_or_default())
}

/// Writes float32 tensors `(name, shape, data)` and string metadata, atomically.
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, Vec<usize>, &[f32])],
    metadata: &HashMap<String, String>,
) -> Result<()> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, d)| d.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            TensorView::new(Dtype::F32, shape.clone(), b)
                .map(|v| (name.clone(), v))
                .map_err(|e| file_err(path, format!("tensor '{name}': {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let meta = (!metadata.is_empty()).then(|| metadata.clone());
    let buf = safetensors::serialize(views, meta)
        .map_err(|e| file_err(path, format!("cannot encode .safetensors: {e}")))?;
    write_atomic(path, |f| std::io::Write::write_all(f, &buf))
}
