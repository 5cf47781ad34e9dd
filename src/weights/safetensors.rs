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
    Error::input(
        path.to_path_buf(),
        crate::error::InputErrorKind::Malformed,
        message.into(),
    )
}

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    crate::fsutil::read_regular_capped(path, super::raw::MAX_WEIGHTS_FILE)
}

fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(bytes).map_err(|e| {
        let what = match culprit(bytes) {
            Some(t) => format!("{t} ({e})"),
            None => format!("{e} (is the file truncated or not a .safetensors?)"),
        };
        file_err(path, format!("not a readable .safetensors file: {what}"))
    })
}

/// Bytes per element of the dtypes the crate reads whole bytes of (`None`: another name).
fn dtype_size(name: &str) -> Option<u64> {
    Some(match name {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" => 1,
        "I16" | "U16" | "F16" | "BF16" => 2,
        "I32" | "U32" | "F32" => 4,
        "I64" | "U64" | "F64" | "C64" => 8,
        _ => return None,
    })
}

/// The first tensor whose header entry the crate refuses, with what is wrong with it (the
/// crate's own errors name no tensor for a bad dtype or a byte count that does not fit).
fn culprit(bytes: &[u8]) -> Option<String> {
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let end = 8usize.checked_add(usize::try_from(n).ok()?)?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(bytes.get(8..end)?).ok()?;
    let data_len = (bytes.len() - end) as u64;
    for (name, v) in header.iter().filter(|(k, _)| *k != "__metadata__") {
        let t = format!("tensor '{name}'");
        let Some(dtype) = v.get("dtype").and_then(|d| d.as_str()) else {
            return Some(format!("{t} has no dtype"));
        };
        let shape: Option<Vec<u64>> = v
            .get("shape")
            .and_then(|s| s.as_array())
            .and_then(|s| s.iter().map(|d| d.as_u64()).collect());
        let Some(shape) = shape else {
            return Some(format!("{t} has no shape of whole numbers"));
        };
        let offs: Option<Vec<u64>> = v
            .get("data_offsets")
            .and_then(|s| s.as_array())
            .and_then(|s| s.iter().map(|d| d.as_u64()).collect());
        let Some([s, e]) = offs.as_deref().and_then(|o| <[u64; 2]>::try_from(o).ok()) else {
            return Some(format!("{t} has no data_offsets [begin, end]"));
        };
        if s > e || e > data_len {
            return Some(format!(
                "{t}: data_offsets [{s}, {e}] do not fit the file's {data_len} data bytes"
            ));
        }
        let Some(size) = dtype_size(dtype) else {
            // Sub-byte types are the crate's to judge; an unknown name is named here.
            if dtype.starts_with("F4") || dtype.starts_with("F6") {
                continue;
            }
            return Some(format!("{t}: unknown dtype '{dtype}'"));
        };
        let need = shape.iter().try_fold(size, |a, &d| a.checked_mul(d));
        match need {
            Some(need) if need == e - s => {}
            Some(need) => {
                return Some(format!(
                    "{t}: shape {shape:?} of {dtype} needs {need} bytes, its data_offsets [{s}, {e}] hold {}",
                    e - s
                ))
            }
            None => return Some(format!("{t}: shape {shape:?} of {dtype} overflows")),
        }
    }
    None
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

/// [`read_safetensors`] of the tensors whose name `keep` accepts: the file is read (and its
/// header checked) whole, the others are not decoded.
pub fn read_safetensors_matching(
    path: &Path,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Vec<RawTensor>> {
    decode_matching(path, &read_bytes(path)?, keep)
}

/// [`read_safetensors`] of a file's bytes in memory (`path` names it in errors).
pub fn read_safetensors_bytes(path: &Path, bytes: &[u8]) -> Result<Vec<RawTensor>> {
    decode_matching(path, bytes, &|_| true)
}

fn decode_matching(
    path: &Path,
    bytes: &[u8],
    keep: &dyn Fn(&str) -> bool,
) -> Result<Vec<RawTensor>> {
    let st = parse(path, bytes)?;
    let mut out: Vec<RawTensor> = st
        .tensors()
        .into_iter()
        .filter(|(key, _)| keep(key))
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
    let mut f = crate::fsutil::open_regular(path)?;
    // Only the header: 8-byte length, then that much JSON (bounded by the file's size).
    let len = f.metadata().map_err(|e| Error::read(path, e))?.len();
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
    std::io::Read::read_exact(&mut f, &mut head[8..]).map_err(|e| Error::read(path, e))?;
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
