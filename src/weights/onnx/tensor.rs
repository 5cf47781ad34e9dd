//! Initializer tensors of an ONNX file: inline `raw_data` or typed fields, or external data
//! files beside the model; every size checked against the file before anything is allocated.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path};

use super::super::RawTensor;
use super::proto::{data_type, TensorProto, DATA_LOCATION_EXTERNAL};
use super::read::{file_err, Reader};
use crate::error::{Error, Result};

impl Reader<'_> {
    /// A tensor's values as f32, under `key`; sizes are checked before anything is allocated.
    pub(super) fn raw(&self, t: &TensorProto, key: &str) -> Result<RawTensor> {
        let name = &t.name;
        let mut shape = Vec::with_capacity(t.dims.len().min(8));
        let mut count: usize = 1;
        for &d in &t.dims {
            let d = usize::try_from(d).map_err(|_| {
                self.err(format!(
                    "tensor '{name}': negative dimension in {:?}",
                    t.dims
                ))
            })?;
            count = count.checked_mul(d).ok_or_else(|| {
                self.err(format!(
                    "tensor '{name}': the shape {:?} is too large",
                    t.dims
                ))
            })?;
            shape.push(d);
        }
        let (elsize, kind) = match t.data_type {
            data_type::FLOAT => (4, "float32"),
            data_type::DOUBLE => (8, "float64"),
            data_type::FLOAT16 => (2, "float16"),
            data_type::BFLOAT16 => (2, "bfloat16"),
            other => {
                return Ok(RawTensor {
                    key: key.to_string(),
                    shape,
                    data: Err(format!(
                        "the ONNX tensor '{name}' has data type {other} ({}); weights must be float32 (float16, bfloat16 and float64 are converted)",
                        dtype_name(other)
                    )),
                })
            }
        };
        let nbytes = count.checked_mul(elsize).ok_or_else(|| {
            self.err(format!(
                "tensor '{name}': the shape {:?} is too large",
                t.dims
            ))
        })?;
        let external;
        let bytes: &[u8] = if t.data_location == DATA_LOCATION_EXTERNAL {
            external = self.external(t, nbytes)?;
            &external
        } else if !t.raw_data.is_empty() || count == 0 {
            &t.raw_data
        } else {
            // Typed fields.
            let n = match t.data_type {
                data_type::FLOAT => t.float_data.len(),
                data_type::DOUBLE => t.double_data.len(),
                _ => t.int32_data.len(),
            };
            if n != count {
                return Err(self.err(format!(
                    "tensor '{name}': shape {:?} needs {count} values, the file holds {n}",
                    t.dims
                )));
            }
            let data: Vec<f32> = match t.data_type {
                data_type::FLOAT => t.float_data.clone(),
                data_type::DOUBLE => t.double_data.iter().map(|&v| v as f32).collect(),
                data_type::FLOAT16 => t
                    .int32_data
                    .iter()
                    .map(|&v| half::f16::from_bits(v as u16).to_f32())
                    .collect(),
                _ => t
                    .int32_data
                    .iter()
                    .map(|&v| half::bf16::from_bits(v as u16).to_f32())
                    .collect(),
            };
            return Ok(RawTensor {
                key: key.to_string(),
                shape,
                data: Ok(data),
            });
        };
        if bytes.len() != nbytes {
            return Err(self.err(format!(
                "tensor '{name}': shape {:?} of {kind} needs {nbytes} bytes, the file holds {} (is it truncated?)",
                t.dims,
                bytes.len()
            )));
        }
        let data: Vec<f32> = match t.data_type {
            data_type::FLOAT => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            data_type::DOUBLE => bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                .collect(),
            data_type::FLOAT16 => bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            _ => bytes
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        };
        Ok(RawTensor {
            key: key.to_string(),
            shape,
            data: Ok(data),
        })
    }

    /// The bytes of an externally stored tensor: `location` relative to the model's folder (no
    /// absolute paths, no `..`), `offset` and `length` checked against the file.
    fn external(&self, t: &TensorProto, nbytes: usize) -> Result<Vec<u8>> {
        let name = &t.name;
        let get = |k: &str| {
            t.external_data
                .iter()
                .find(|e| e.key == k)
                .map(|e| e.value.as_str())
        };
        let location = get("location").ok_or_else(|| {
            self.err(format!(
                "tensor '{name}' is stored externally but names no location"
            ))
        })?;
        let rel = Path::new(location);
        if rel.as_os_str().is_empty()
            || !rel.components().all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(self.err(format!(
                "tensor '{name}': the external data location '{location}' must be a relative path inside the model's folder"
            )));
        }
        let num = |k: &str| -> Result<Option<u64>> {
            get(k)
                .map(|v| {
                    v.trim().parse::<u64>().map_err(|_| {
                        self.err(format!(
                            "tensor '{name}': external data {k} '{v}' is not a number"
                        ))
                    })
                })
                .transpose()
        };
        let offset = num("offset")?.unwrap_or(0);
        let length = num("length")?;
        if let Some(l) = length {
            if l != nbytes as u64 {
                return Err(self.err(format!(
                    "tensor '{name}': external data length {l} does not match the {nbytes} bytes of shape {:?}",
                    t.dims
                )));
            }
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let file_path = dir.join(rel);
        let mut f = std::fs::File::open(&file_path).map_err(|e| {
            file_err(
                &file_path,
                format!(
                    "external data of tensor '{name}' (named by {}): {e}",
                    self.path.display()
                ),
            )
        })?;
        let flen = f.metadata().map_err(|e| Error::io(&file_path, e))?.len();
        if offset
            .checked_add(nbytes as u64)
            .is_none_or(|end| end > flen)
        {
            return Err(file_err(
                &file_path,
                format!(
                    "external data of tensor '{name}': {nbytes} bytes at offset {offset} run past the end of the {flen}-byte file (is it truncated?)"
                ),
            ));
        }
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| Error::io(&file_path, e))?;
        let mut buf = vec![0u8; nbytes];
        f.read_exact(&mut buf)
            .map_err(|e| Error::io(&file_path, e))?;
        Ok(buf)
    }
}

/// Integer values of a shape tensor (int64 or int32, raw or typed).
pub(super) fn ints_of(t: &TensorProto) -> Vec<i64> {
    match t.data_type {
        data_type::INT64 if !t.raw_data.is_empty() => t
            .raw_data
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect(),
        data_type::INT32 if !t.raw_data.is_empty() => t
            .raw_data
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")) as i64)
            .collect(),
        data_type::INT32 => t.int32_data.iter().map(|&v| v as i64).collect(),
        _ => t.int64_data.clone(),
    }
}

pub(super) fn dtype_name(t: i32) -> &'static str {
    match t {
        2 => "uint8",
        3 => "int8",
        4 => "uint16",
        5 => "int16",
        6 => "int32",
        7 => "int64",
        8 => "string",
        9 => "bool",
        12 => "uint32",
        13 => "uint64",
        14 | 15 => "complex",
        _ => "not a float type",
    }
}
