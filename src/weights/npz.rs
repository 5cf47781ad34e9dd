//! Reading NumPy `.npy` / `.npz` files into f32 tensors, and writing them atomically.

use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

use npyz::{DType, TypeChar, WriterBuilder};

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// One array as found in a file, converted to f32 (or the reason it could not be).
#[derive(Clone, Debug)]
pub struct RawTensor {
    pub key: String,
    pub shape: Vec<usize>,
    /// `Err(reason)` for dtypes we refuse (integers, objects, strings...).
    pub data: std::result::Result<Vec<f32>, String>,
}

fn file_err(path: &Path, message: impl Into<String>) -> Error {
    Error::WeightFile {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn describe_dtype(dtype: &DType) -> String {
    match dtype {
        DType::Plain(ts) => ts.to_string(),
        other => format!("{other:?}"),
    }
}

fn read_npy<R: Read>(npy: npyz::NpyFile<R>, key: &str, path: &Path) -> Result<RawTensor> {
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let dtype = npy.dtype();
    if npy.order() == npyz::Order::Fortran && shape.len() > 1 {
        return Ok(RawTensor {
            key: key.to_string(),
            shape,
            data: Err("stored in Fortran order; save it with np.ascontiguousarray".into()),
        });
    }
    let bad = |why: String| RawTensor {
        key: key.to_string(),
        shape: shape.clone(),
        data: Err(why),
    };
    let io =
        |e: std::io::Error| file_err(path, format!("array '{key}': {e} (is the file truncated?)"));
    let ts = match &dtype {
        DType::Plain(ts) => ts.clone(),
        other => {
            return Ok(bad(format!(
                "dtype {} is a structured type; need float32",
                describe_dtype(other)
            )))
        }
    };
    let data = match (ts.type_char(), ts.size_field()) {
        (TypeChar::Float, 4) => npy.into_vec::<f32>().map_err(io)?,
        (TypeChar::Float, 8) => npy.into_vec::<f64>().map_err(io)?.into_iter().map(|v| v as f32).collect(),
        (TypeChar::Float, 2) => npy
            .into_vec::<half::f16>()
            .map_err(io)?
            .into_iter()
            .map(f32::from)
            .collect(),
        (TypeChar::Object, _) => {
            return Ok(bad(
                "holds pickled Python objects (dtype object), which are never loaded; save plain float arrays".into(),
            ))
        }
        (TypeChar::Int | TypeChar::Uint | TypeChar::Bool, _) => {
            return Ok(bad(format!(
                "dtype {ts} is an integer type; weights must be float32 (float16 and float64 are converted)"
            )))
        }
        _ => return Ok(bad(format!("dtype {ts} is not supported; need float32"))),
    };
    Ok(RawTensor {
        key: key.to_string(),
        shape,
        data: Ok(data),
    })
}

/// Every array of an `.npz` file, a single `.npy` file, or a directory of `.npy` files (keys are
/// the paths below the directory without `.npy`, with `/` separators), in key order.
pub fn read_tensors(path: &Path) -> Result<Vec<RawTensor>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let mut out = if meta.is_dir() {
        read_dir(path)?
    } else if has_ext(path, "pth") || has_ext(path, "pt") {
        super::pth::read_pth(path)?
    } else if has_ext(path, "h5") || has_ext(path, "hdf5") || has_ext(path, "keras") {
        super::h5::read_h5(path)?
    } else if has_ext(path, "safetensors") {
        super::safetensors::read_safetensors(path)?
    } else if has_ext(path, "onnx") {
        super::onnx::read_onnx_tensors(path)?
    } else if has_ext(path, "npy") {
        let key = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let npy = npyz::NpyFile::new(BufReader::new(file))
            .map_err(|e| file_err(path, format!("not a valid .npy file: {e}")))?;
        vec![read_npy(npy, &key, path)?]
    } else {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        read_npz(BufReader::new(file), path)?
    };
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

fn has_ext(path: &Path, ext: &str) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

fn read_npz<R: Read + Seek>(reader: R, path: &Path) -> Result<Vec<RawTensor>> {
    let mut archive = npyz::npz::NpzArchive::new(reader).map_err(|e| {
        file_err(
            path,
            format!(
                "not a readable .npz (zip) archive: {e}; is the file truncated or not an .npz?"
            ),
        )
    })?;
    let names: Vec<String> = archive.array_names().map(str::to_string).collect();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let npy = archive
            .by_name(&name)
            .map_err(|e| {
                file_err(
                    path,
                    format!("array '{name}': {e} (is the file truncated?)"),
                )
            })?
            .ok_or_else(|| file_err(path, format!("array '{name}' is listed but missing")))?;
        out.push(read_npy(npy, &name, path)?);
    }
    Ok(out)
}

fn read_dir(dir: &Path) -> Result<Vec<RawTensor>> {
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
        let file = File::open(p).map_err(|e| Error::io(p, e))?;
        let npy = npyz::NpyFile::new(BufReader::new(file))
            .map_err(|e| file_err(p, format!("not a valid .npy file: {e}")))?;
        out.push(read_npy(npy, &key, p)?);
    }
    if out.is_empty() {
        return Err(file_err(dir, "the directory holds no .npy files"));
    }
    Ok(out)
}

/// Writes a float32 `.npy` array of the given shape (atomically).
pub fn write_npy(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    assert_eq!(
        shape.iter().product::<usize>(),
        data.len(),
        "write_npy: shape does not match data"
    );
    write_atomic(path, |file| {
        let mut w = std::io::BufWriter::new(file);
        let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let mut npy = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&shape)
            .writer(&mut w)
            .begin_nd()?;
        npy.extend(data.iter().copied())?;
        npy.finish()?;
        std::io::Write::flush(&mut w)
    })
}

/// An array to store in an `.npz`.
pub enum NpzEntry<'a> {
    F32(&'a [usize], &'a [f32]),
    I64(&'a [usize], &'a [i64]),
    /// A 1-D numpy unicode array (`<U{n}`): class names, paths, a JSON document.
    Str(&'a [String]),
}

/// Writes an uncompressed `.npz` (what `np.savez` writes), atomically.
pub fn write_npz(path: &Path, entries: &[(String, NpzEntry<'_>)]) -> Result<()> {
    write_atomic(path, |file| {
        let mut npz = npyz::npz::NpzWriter::new(std::io::BufWriter::new(file));
        for (name, entry) in entries {
            let opts = zip::write::FileOptions::default()
                .compression_method(zip::CompressionMethod::Stored);
            match entry {
                NpzEntry::F32(shape, data) => {
                    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
                    let mut w = npz
                        .array::<f32>(name, opts)?
                        .default_dtype()
                        .shape(&shape)
                        .begin_nd()?;
                    w.extend(data.iter().copied())?;
                    w.finish()?;
                }
                NpzEntry::I64(shape, data) => {
                    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
                    let mut w = npz
                        .array::<i64>(name, opts)?
                        .default_dtype()
                        .shape(&shape)
                        .begin_nd()?;
                    w.extend(data.iter().copied())?;
                    w.finish()?;
                }
                NpzEntry::Str(items) => {
                    let width = items
                        .iter()
                        .map(|t| t.chars().count())
                        .max()
                        .unwrap_or(0)
                        .max(1);
                    let dtype = npyz::DType::Plain(
                        format!("<U{width}")
                            .parse::<npyz::TypeStr>()
                            .expect("valid unicode type string"),
                    );
                    let mut w = npz
                        .array::<str>(name, opts)?
                        .dtype(dtype)
                        .shape(&[items.len() as u64])
                        .begin_nd()?;
                    for t in items.iter() {
                        w.push(t.as_str())?;
                    }
                    w.finish()?;
                }
            }
        }
        let mut inner = npz.zip_writer().finish()?;
        std::io::Write::flush(&mut inner)
    })
}

/// A 1-D string array (`<U` or `|S`) of an `.npz`, or `None` when the key is absent.
pub fn read_strings(path: &Path, key: &str) -> Result<Option<Vec<String>>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut archive = npyz::npz::NpzArchive::new(BufReader::new(file))
        .map_err(|e| file_err(path, format!("not a readable .npz (zip) archive: {e}")))?;
    let Some(npy) = archive
        .by_name(key)
        .map_err(|e| file_err(path, format!("array '{key}': {e}")))?
    else {
        return Ok(None);
    };
    npy.into_vec::<String>()
        .map(Some)
        .map_err(|e| file_err(path, format!("array '{key}' is not a string array: {e}")))
}
