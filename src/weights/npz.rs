//! Reading NumPy `.npy` / `.npz` files into f32 tensors, and writing them atomically.
//!
//! Sizes in a file never drive an allocation on their own: an `.npy` header is read only when
//! the file holds it (and it is at most [`MAX_NPY_HEADER`] bytes), array data grows with what is
//! actually read, and the members of an `.npz` read together are at most the archive (members
//! that overlap cannot multiply the file). A member is stored or deflated (what numpy writes),
//! declares at most [`MAX_DEFLATE_RATIO`] times its compressed bytes, and is read no further
//! than it declares, so an archive never expands past about a thousand times its size (bzip2
//! and zstd members, whose ratios have no such bound, are refused).

use std::io::{BufReader, Read, Seek};
use std::path::Path;

use npyz::{DType, TypeChar, WriterBuilder};

use super::raw::{file_err, RawTensor};
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// The largest `.npy` header read (numpy itself refuses headers over 10 000 bytes by default).
pub const MAX_NPY_HEADER: usize = 1 << 20;

/// Deflate's largest possible expansion (a 258-byte match per 2 bits, about 1032:1): a member
/// declaring more than this many times its compressed size is forged.
pub const MAX_DEFLATE_RATIO: u64 = 1032;

/// A zip member's declared size, checked against its compression (see the module docs).
fn member_size(file: &zip::read::ZipFile<'_>, name: &str, path: &Path) -> Result<u64> {
    let (size, packed) = (file.size(), file.compressed_size());
    let fits = match file.compression() {
        zip::CompressionMethod::Stored => size == packed,
        zip::CompressionMethod::Deflated => {
            size <= packed.saturating_mul(MAX_DEFLATE_RATIO).saturating_add(1024)
        }
        other => {
            return Err(file_err(
                path,
                format!(
                    "array '{name}' is compressed with {other}; numpy writes members stored or deflated (np.savez / np.savez_compressed)"
                ),
            ))
        }
    };
    if !fits {
        return Err(file_err(
            path,
            format!(
                "array '{name}' declares {size} bytes from {packed} {} bytes, more than its compression can give (a forged archive)",
                if file.compression() == zip::CompressionMethod::Stored { "stored" } else { "deflated" }
            ),
        ));
    }
    Ok(size)
}

/// The most bytes a deflated `.npz` member may inflate to: 1 GiB, over three times the largest
/// AlexNet tensor (fc6, 151 MB as float32, 302 MB as float64) and a `np.savez_compressed`
/// feature matrix of 29,000 rows of 9216. The ratio check above still lets a 4 MB archive
/// declare 4 GB; this refuses it before inflating anything. Stored members (what this crate and
/// `np.savez` write) are not capped: their bytes are on disk already.
pub const MAX_INFLATED_MEMBER: u64 = 1 << 30;

/// The most bytes all the deflated members of one `.npz` may inflate to together: 1.5 GiB,
/// three times a float64 AlexNet (488 MB).
pub const MAX_INFLATED_FILE: u64 = 3 << 29;

/// The deepest bracket nesting of an `.npy` header handed to npyz. Its Python-literal parser
/// (py_literal, a PEG) backtracks exponentially in the nesting: 8 levels took 7 s, 12 took 6
/// minutes (found by the `npz` fuzz target). A plain array's header nests 2 deep (dict, shape
/// tuple), a flat structured dtype 4.
pub const MAX_NPY_NESTING: usize = 4;

/// The deepest `([{` nesting of a Python literal, outside quoted strings.
fn nesting(text: &[u8]) -> usize {
    let (mut depth, mut max, mut quote) = (0usize, 0usize, None);
    for &b in text {
        match (quote, b) {
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'\'' | b'"') => quote = Some(b),
            (None, b'(' | b'[' | b'{') => {
                depth += 1;
                max = max.max(depth);
            }
            (None, b')' | b']' | b'}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

fn describe_dtype(dtype: &DType) -> String {
    match dtype {
        DType::Plain(ts) => ts.to_string(),
        other => format!("{other:?}"),
    }
}

pub(crate) fn read_npy<R: Read>(
    npy: npyz::NpyFile<R>,
    key: &str,
    path: &Path,
) -> Result<RawTensor> {
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    // npyz multiplies the shape unchecked (wrapping in release builds).
    let Some(numel) = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) else {
        return Err(file_err(
            path,
            format!("array '{key}': shape {shape:?} overflows (a damaged header?)"),
        ));
    };
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
    if data.len() != numel {
        return Err(file_err(
            path,
            format!(
                "array '{key}': {} elements read for shape {shape:?} (a damaged header?)",
                data.len()
            ),
        ));
    }
    Ok(RawTensor {
        key: key.to_string(),
        shape,
        data: Ok(data),
    })
}

/// Opens an `.npy` stream of at most `available` bytes: checks the header's length against
/// it before npyz allocates the header (a version 2 header's length is a u32 of the file's
/// choosing).
pub(crate) fn open_npy<R: Read>(
    mut r: R,
    available: u64,
    key: &str,
    path: &Path,
) -> Result<npyz::NpyFile<std::io::Chain<std::io::Cursor<Vec<u8>>, R>>> {
    let bad = |m: String| file_err(path, format!("array '{key}': not a valid .npy file: {m}"));
    let mut header_end = None;
    let mut pre = Vec::with_capacity(12);
    (&mut r)
        .take(12)
        .read_to_end(&mut pre)
        .map_err(|e| bad(e.to_string()))?;
    if pre.len() >= 10 && pre.starts_with(b"\x93NUMPY") {
        let (len, start): (u64, usize) = match pre[6] {
            1 => (u16::from_le_bytes([pre[8], pre[9]]) as u64, 10),
            _ if pre.len() == 12 => (
                u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]]) as u64,
                12,
            ),
            _ => (0, 12),
        };
        if len > MAX_NPY_HEADER as u64 || len.saturating_add(start as u64) > available {
            return Err(bad(format!(
                "the header claims {len} bytes, but the array holds {available} bytes in all \
                 (and headers are at most {MAX_NPY_HEADER}); is the file truncated or damaged?"
            )));
        }
        // `pre` may hold the header's first bytes already (a version 1 header starts at 10).
        header_end = Some(start as u64 + len);
        let have = pre.len().saturating_sub(start) as u64;
        (&mut r)
            .take(len.saturating_sub(have))
            .read_to_end(&mut pre)
            .map_err(|e| bad(e.to_string()))?;
        let depth = nesting(&pre[start..]);
        if depth > MAX_NPY_NESTING {
            return Err(bad(format!(
                "the header nests {depth} brackets deep (an array's needs 2, at most \
                 {MAX_NPY_NESTING} are read)"
            )));
        }
    }
    let npy =
        npyz::NpyFile::new(std::io::Cursor::new(pre).chain(r)).map_err(|e| bad(e.to_string()))?;
    // The data the header's shape and dtype call for, against what the stream holds, before
    // any of it is read: a header claiming more than is there is refused now, not after
    // inflating (or allocating for) what the member declares.
    if let (Some(end), DType::Plain(ts)) = (header_end, npy.dtype()) {
        let needed = npy
            .shape()
            .iter()
            .try_fold(ts.num_bytes().unwrap_or(0) as u64, |a, &d| a.checked_mul(d));
        let holds = available.saturating_sub(end);
        match needed {
            Some(n) if n <= holds => {}
            _ => {
                return Err(file_err(
                    path,
                    format!(
                        "array '{key}': its header's shape {:?} of {ts} needs {} bytes, the \
                         array holds {holds} (a truncated or damaged file?)",
                        npy.shape(),
                        needed.map_or("more than 2^64".to_string(), |n| n.to_string())
                    ),
                ))
            }
        }
    }
    Ok(npy)
}

/// The arrays of an `.npz` archive whose names `keep` accepts (the other members are not read;
/// an archive with no arrays at all is still refused).
pub(crate) fn read_npz<R: Read + Seek>(
    mut reader: R,
    path: &Path,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Vec<RawTensor>> {
    let archive_len = reader
        .seek(std::io::SeekFrom::End(0))
        .and_then(|n| reader.rewind().map(|()| n))
        .map_err(|e| Error::read(path, e))?;
    let mut archive = npyz::npz::NpzArchive::new(reader).map_err(|e| {
        file_err(
            path,
            format!(
                "not a readable .npz (zip) archive: {e}; is the file truncated or not an .npz?"
            ),
        )
    })?;
    let mut names: Vec<String> = archive.array_names().map(str::to_string).collect();
    names.sort();
    if names.is_empty() {
        return Err(file_err(
            path,
            "the zip archive has no .npy members: not an .npz of arrays",
        ));
    }
    let zip = archive.zip_archive();
    // The whole archive's inflated total, from the members' declared sizes before any is
    // inflated: 16 members each just under the member cap inflated 5.4 GB from 17 MB.
    let mut inflated = 0u64;
    for name in names.iter().filter(|n| keep(n)) {
        let member = npyz::npz::file_name_from_array_name(name);
        if let Ok(file) = zip.by_name(&member) {
            // Each member's own checks first (the ratio), then the total.
            let size = member_size(&file, name, path)?;
            if file.compression() == zip::CompressionMethod::Deflated {
                inflated = inflated.saturating_add(size);
            }
        }
    }
    if inflated > MAX_INFLATED_FILE {
        return Err(file_err(
            path,
            format!(
                "its compressed members inflate to {inflated} bytes together, over the \
                 {MAX_INFLATED_FILE} this tool inflates from one file (a decompression bomb? \
                 save large arrays uncompressed, with np.savez)"
            ),
        ));
    }
    let mut out = Vec::with_capacity(names.len());
    let mut budget = archive_len;
    for name in names.into_iter().filter(|n| keep(n)) {
        let member = npyz::npz::file_name_from_array_name(&name);
        let file = match zip.by_name(&member) {
            Ok(f) => f,
            Err(zip::result::ZipError::FileNotFound) => {
                return Err(file_err(
                    path,
                    format!("array '{name}' is listed but missing"),
                ))
            }
            Err(e) => {
                return Err(file_err(
                    path,
                    format!("array '{name}': {e} (is the file truncated?)"),
                ))
            }
        };
        budget = budget.checked_sub(file.compressed_size()).ok_or_else(|| {
            file_err(
                path,
                format!(
                    "array '{name}': the members read so far hold more bytes than the \
                     {archive_len}-byte archive (overlapping members: a forged archive)"
                ),
            )
        })?;
        let size = member_size(&file, &name, path)?;
        if file.compression() == zip::CompressionMethod::Deflated && size > MAX_INFLATED_MEMBER {
            return Err(file_err(
                path,
                format!(
                    "member '{member}' is compressed and inflates to {size} bytes, over the \
                     {MAX_INFLATED_MEMBER} this tool inflates (a decompression bomb? save \
                     large arrays uncompressed, with np.savez)"
                ),
            ));
        }
        let npy = open_npy(file.take(size), size, &name, path)?;
        out.push(read_npy(npy, &name, path)?);
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
    /// A float32 array: shape and values.
    F32(&'a [usize], &'a [f32]),
    /// An int64 array: shape and values.
    I64(&'a [usize], &'a [i64]),
    /// A 1-D numpy unicode array (`<U{n}`): class names, paths, a JSON document.
    Str(&'a [String]),
}

/// Writes an uncompressed `.npz` (what `np.savez` writes), atomically.
pub fn write_npz(path: &Path, entries: &[(String, NpzEntry<'_>)]) -> Result<()> {
    write_atomic(path, |file| {
        // Quiet after an error: zip's writer finishes the file in `drop` and printed "ZipWriter
        // drop failed" beside the real error on a full disk.
        let sink = super::quiet_sink::QuietSink::new(std::io::BufWriter::new(file));
        let mut npz = npyz::npz::NpzWriter::new(sink);
        for (name, entry) in entries {
            // A fixed timestamp (zip's earliest, 1980-01-01 00:00) instead of the clock's:
            // the same arrays give the same bytes, so two runs with one seed can be compared
            // with `cmp` and a model's hash says what it holds, not when it was written.
            let opts = zip::write::FileOptions::default()
                .compression_method(zip::CompressionMethod::Stored)
                .last_modified_time(zip::DateTime::default());
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
        std::io::Write::flush(&mut inner)?;
        inner.check()
    })
}

/// A 1-D string array (`<U` or `|S`) of an `.npz`, or `None` when the key is absent.
pub fn read_strings(path: &Path, key: &str) -> Result<Option<Vec<String>>> {
    let file = crate::fsutil::open_regular(path)?;
    let mut archive = npyz::npz::NpzArchive::new(BufReader::new(file))
        .map_err(|e| file_err(path, format!("not a readable .npz (zip) archive: {e}")))?;
    let member = npyz::npz::file_name_from_array_name(key);
    let file = match archive.zip_archive().by_name(&member) {
        Ok(f) => f,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(file_err(path, format!("array '{key}': {e}"))),
    };
    let size = member_size(&file, key, path)?;
    let strings = open_npy(file.take(size), size, key, path)?
        .into_vec::<String>()
        .map_err(|e| file_err(path, format!("array '{key}' is not a string array: {e}")))?;
    Ok(Some(strings))
}
