//! Initializer tensors of an ONNX file: inline `raw_data` or typed fields, or external data
//! files beside the model; every size checked against the file before anything is allocated.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path};

use super::super::RawTensor;
use super::proto::{data_type, TensorProto, DATA_LOCATION_EXTERNAL};
use super::reader::{file_err, Reader};
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

    /// [`Reader::raw`], then transposed by `perm` (a weight fed through a Transpose node).
    pub(super) fn raw_permuted(
        &self,
        t: &TensorProto,
        key: &str,
        perm: Option<Vec<i64>>,
        label: &str,
    ) -> Result<RawTensor> {
        let mut r = self.raw(t, key)?;
        let Some(perm) = perm else { return Ok(r) };
        let n = r.shape.len();
        let mut seen = vec![false; n];
        let ok = perm.len() == n
            && perm.iter().all(|&p| {
                usize::try_from(p).is_ok_and(|p| p < n && !std::mem::replace(&mut seen[p], true))
            });
        if !ok {
            return Err(self.err(format!(
                "{label}: the weight '{}' of shape {:?} goes through a Transpose with perm {perm:?}, which is not a permutation of its axes",
                t.name, r.shape
            )));
        }
        let perm: Vec<usize> = perm.iter().map(|&p| p as usize).collect();
        let shape: Vec<usize> = perm.iter().map(|&p| r.shape[p]).collect();
        if let Ok(d) = &mut r.data {
            // Strides of the source, visited in the order of the output's axes.
            let mut src_stride = vec![1usize; n];
            for i in (0..n.saturating_sub(1)).rev() {
                src_stride[i] = src_stride[i + 1] * r.shape[i + 1];
            }
            let strides: Vec<usize> = perm.iter().map(|&p| src_stride[p]).collect();
            let mut out = Vec::with_capacity(d.len());
            let mut idx = vec![0usize; n];
            for _ in 0..d.len() {
                out.push(d[idx.iter().zip(&strides).map(|(i, s)| i * s).sum::<usize>()]);
                for a in (0..n).rev() {
                    idx[a] += 1;
                    if idx[a] < shape[a] {
                        break;
                    }
                    idx[a] = 0;
                }
            }
            *d = out;
        }
        r.shape = shape;
        Ok(r)
    }

    /// Reorders the input columns of the first dense weight `[out, in]` from an NHWC flatten
    /// (`(y, x, c)`, after a Transpose [0, 2, 3, 1]) to our NCHW flatten (`(c, y, x)`).
    /// `flatten`: the Transpose's node and the spatial size there, when the input's is declared
    /// (else the map is taken to be square); `channels`: the last convolution's outputs.
    pub(super) fn unflatten_nhwc(
        &self,
        w: &mut RawTensor,
        flatten: Option<(String, Option<[usize; 2]>)>,
        channels: Option<usize>,
        label: &str,
    ) -> Result<()> {
        let Some((transpose, hw)) = flatten else {
            return Ok(());
        };
        let [_, inp] = w.shape[..] else {
            return Ok(());
        };
        let c = channels.filter(|&c| c > 0 && inp % c == 0).ok_or_else(|| {
            self.err(format!(
                "{label}: {inp} inputs after the NHWC flatten of {transpose} are not a whole number of the last convolution's {channels:?} channels"
            ))
        })?;
        let [h, wd] = match hw {
            Some(hw) => hw,
            None => {
                let side = (inp / c).isqrt();
                [side, side]
            }
        };
        if c.checked_mul(h).and_then(|x| x.checked_mul(wd)) != Some(inp) {
            return Err(self.err(format!(
                "{label}: {inp} inputs after the NHWC flatten of {transpose}, but the map there is {c}x{h}x{wd}"
            )));
        }
        if let Ok(d) = &mut w.data {
            let hw = h * wd;
            let mut out = vec![0f32; d.len()];
            for (row_out, row_in) in out.chunks_exact_mut(inp).zip(d.chunks_exact(inp)) {
                for (k, v) in row_out.iter_mut().enumerate() {
                    // Ours: k = ch * hw + pos; NHWC: pos * c + ch.
                    *v = row_in[(k % hw) * c + k / hw];
                }
            }
            *d = out;
        }
        Ok(())
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
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let file_path = dir.join(rel);
        // The location's text stays inside the folder (checked above), but a symbolic link in
        // the folder may point anywhere (48 bytes of a system file became a bias): the real
        // paths are compared. Links that stay inside the folder are fine.
        let outside = |why: String| {
            self.err(format!(
                "tensor '{name}': the external data location '{location}' {why}"
            ))
        };
        let real_dir = std::fs::canonicalize(dir).map_err(|e| Error::read(dir, e))?;
        let real = std::fs::canonicalize(&file_path).map_err(|e| {
            file_err(
                &file_path,
                format!(
                    "external data of tensor '{name}' (named by {}): {e}",
                    self.path.display()
                ),
            )
        })?;
        if !real.starts_with(&real_dir) {
            return Err(outside(format!(
                "resolves to {}, outside the model's folder {} (a symbolic link?)",
                real.display(),
                real_dir.display()
            )));
        }
        // Opening a FIFO would block; a device never ends.
        if !std::fs::metadata(&real).is_ok_and(|m| m.is_file()) {
            return Err(outside("is not a regular file".into()));
        }
        let mut f = std::fs::File::open(&real).map_err(|e| {
            file_err(
                &file_path,
                format!(
                    "external data of tensor '{name}' (named by {}): {e}",
                    self.path.display()
                ),
            )
        })?;
        let flen = f.metadata().map_err(|e| Error::read(&file_path, e))?.len();
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
        // Without a `length`, the data runs from the offset to the end of the file, and must
        // be exactly the tensor's bytes (as onnx.numpy_helper requires): a longer file is
        // another file, or the wrong one.
        if length.is_none() && flen - offset != nbytes as u64 {
            return Err(file_err(
                &file_path,
                format!(
                    "external data of tensor '{name}': {} bytes from offset {offset} to the end of the file, but shape {:?} takes {nbytes} (give a length, or the right file)",
                    flen - offset,
                    t.dims
                ),
            ));
        }
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| Error::read(&file_path, e))?;
        let mut buf = vec![0u8; nbytes];
        f.read_exact(&mut buf)
            .map_err(|e| Error::read(&file_path, e))?;
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
