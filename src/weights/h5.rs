//! Keras weights in HDF5, read with a pure-Rust HDF5 decoder (no libhdf5).
//!
//! Layouts, all turned into Keras-style keys `<layer>/kernel`, `<layer>/bias` (naming.rs then
//! maps `conv2d`.. / `dense`.. and converts HWIO and the NHWC flatten order):
//! - Keras 3 `.weights.h5` (`model.save_weights`): `layers/<layer>/vars/0` (kernel) and
//!   `vars/1` (bias); nested models add `layers/<model>/layers/<layer>/...`.
//! - Keras 2 `save_weights` `.h5` ("legacy h5"): the root's attribute `layer_names` lists the
//!   layers; each layer group's attribute `weight_names` lists its datasets
//!   (`conv2d/kernel:0` ...), relative to the layer group.
//! - A full legacy model `.h5` (`model.save("m.h5")`): the same below the `model_weights` group.
//! - A `.keras` archive (Keras 3 `model.save`): a zip whose `model.weights.h5` is read as above.
//! - Anything else: every float dataset, keyed by its path.
//!
//! Crate choice: `hdf5-reader` (read-only decoder of the netcdf-rust project) has no C library
//! or build script, reads every layout h5py writes (superblocks v0-v3, v1/v2 B-trees, compact
//! and dense link storage, chunked and filtered data), and is hardened and fuzzed against
//! malformed files. The `hdf5`/`hdf5-metno` bindings would need libhdf5 on every machine.

use std::path::Path;

use hdf5_reader::error::Error as H5Error;
use hdf5_reader::group::Group;
use hdf5_reader::{Datatype, Hdf5File};

use super::raw::{file_err, RawTensor};
use crate::error::Result;

/// A chunked dataset may decode to at most this many times the file's bytes (deflate's largest
/// ratio is 1032:1; an uncompressed or contiguous dataset is at most the file itself).
pub const MAX_EXPANSION: u64 = 1032;

/// HDF5 files start with this signature (at offset 0, 512, 1024 ... when a user block is used).
const SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// Reads the weights of a Keras `.h5` / `.hdf5` / `.weights.h5` / `.keras` file.
pub fn read_h5(path: &Path) -> Result<Vec<RawTensor>> {
    let bytes = crate::fsutil::read_regular_capped(path, super::raw::MAX_WEIGHTS_FILE)?;
    if bytes.starts_with(b"PK") {
        let inner = weights_from_keras_zip(path, &bytes)?;
        return read_h5_vec(path, inner);
    }
    read_h5_vec(path, bytes)
}

/// [`read_h5`] of a file's bytes already in memory; `path` only names it in errors.
pub fn read_h5_bytes(path: &Path, bytes: &[u8]) -> Result<Vec<RawTensor>> {
    if bytes.starts_with(b"PK") {
        let inner = weights_from_keras_zip(path, bytes)?;
        return read_h5_vec(path, inner);
    }
    read_h5_vec(path, bytes.to_vec())
}

fn weights_from_keras_zip(path: &Path, bytes: &[u8]) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| {
        file_err(
            path,
            format!("not a readable .keras (zip) archive: {e}; is the file truncated?"),
        )
    })?;
    let name = zip
        .file_names()
        .find(|n| n.ends_with("model.weights.h5"))
        .map(str::to_string)
        .ok_or_else(|| {
            file_err(
                path,
                "the zip archive has no model.weights.h5: not a Keras 3 .keras file",
            )
        })?;
    let mut f = zip
        .by_name(&name)
        .map_err(|e| file_err(path, format!("zip member '{name}': {e}")))?;
    if f.compression() != zip::CompressionMethod::Stored {
        return Err(file_err(
            path,
            format!(
                "zip member '{name}' is compressed ({}), which is not supported; extract it \
                 (`unzip {} {name}`) and pass the .weights.h5 file",
                f.compression(),
                path.display()
            ),
        ));
    }
    let mut out = Vec::with_capacity(f.size().min(bytes.len() as u64) as usize);
    f.read_to_end(&mut out)
        .map_err(|e| file_err(path, format!("zip member '{name}': {e} (truncated?)")))?;
    Ok(out)
}

/// What a whole file may decode to: its datasets together at most [`MAX_DECODED_FILE`] bytes
/// beyond the file's own size (each dataset alone is bounded by the file times deflate's
/// ratio; 16 chunked datasets just under that inflated 5.8 GB from a 17 MB file).
pub struct Budget {
    len: u64,
    decoded: std::cell::Cell<u64>,
}

/// The most bytes the datasets of one file decode to, beyond its own size: a float64 AlexNet
/// (488 MB) three times over.
pub const MAX_DECODED_FILE: u64 = 3 << 29;

impl Budget {
    fn new(len: u64) -> Budget {
        Budget {
            len,
            decoded: std::cell::Cell::new(0),
        }
    }

    /// Counts a dataset's `nbytes` before it is read, refusing it past the budget.
    fn charge(&self, path: &Path, at: &str, nbytes: u64) -> Result<()> {
        let total = self.decoded.get().saturating_add(nbytes);
        if total > self.len.saturating_add(MAX_DECODED_FILE) {
            return Err(file_err(
                path,
                format!(
                    "dataset '/{at}': the datasets read so far decode to {total} bytes, over the \
                     {} this tool decodes from a {}-byte file (a decompression bomb?)",
                    self.len.saturating_add(MAX_DECODED_FILE),
                    self.len
                ),
            ));
        }
        self.decoded.set(total);
        Ok(())
    }
}

fn read_h5_vec(path: &Path, bytes: Vec<u8>) -> Result<Vec<RawTensor>> {
    let has_sig = [0usize, 512, 1024, 2048]
        .iter()
        .any(|&o| bytes.get(o..o + 8) == Some(SIGNATURE.as_slice()));
    if !has_sig {
        return Err(file_err(
            path,
            "not an HDF5 file (no HDF5 signature); expected Keras weights saved as .h5",
        ));
    }
    let h5err = |e: H5Error| {
        file_err(
            path,
            format!("cannot read the HDF5 file: {e} (is the file truncated or damaged?)"),
        )
    };
    // The decoder is hardened against malformed files; the guard turns any panic it might
    // still have on a hostile file into an error instead of aborting the command.
    let result = std::panic::catch_unwind(move || -> Result<Vec<RawTensor>> {
        let len = bytes.len() as u64;
        let file = Hdf5File::from_vec(bytes).map_err(h5err)?;
        // Like libhdf5: a file shorter than the end address its superblock records is cut off.
        let sb = file.superblock();
        let eof = sb.base_address.saturating_add(sb.eof_address);
        if eof > len {
            return Err(file_err(
                path,
                format!("the file is truncated: {len} bytes, but its HDF5 superblock says {eof}"),
            ));
        }
        let root = file.root_group().map_err(h5err)?;
        read_root(path, &root, &Budget::new(len))
    });
    match result {
        Ok(r) => r,
        Err(_) => Err(file_err(
            path,
            "the HDF5 decoder failed on this file (damaged or unsupported HDF5 structure)",
        )),
    }
}

fn read_root(path: &Path, root: &Group, len: &Budget) -> Result<Vec<RawTensor>> {
    let h5err = |what: &str, e: H5Error| file_err(path, format!("{what}: {e}"));
    let (groups, _) = root.member_names().map_err(|e| h5err("listing '/'", e))?;
    let mut out = if has_attr(root, "layer_names") {
        read_legacy(path, root, "", len)?
    } else if groups.iter().any(|g| g == "model_weights") {
        let mw = root
            .group("model_weights")
            .map_err(|e| h5err("group '/model_weights'", e))?;
        read_legacy(path, &mw, "model_weights/", len)?
    } else if groups.iter().any(|g| g == "layers") {
        let mut out = Vec::new();
        read_keras3(path, root, "", "", &mut out, 0, len)?;
        out
    } else {
        let mut out = Vec::new();
        read_all(path, root, "", &mut out, 0, len)?;
        out
    };
    if out.is_empty() {
        return Err(file_err(
            path,
            "the HDF5 file holds no weights (no layers/<name>/vars, no layer_names attribute, \
             no float datasets)",
        ));
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

fn has_attr(g: &Group, name: &str) -> bool {
    g.attributes()
        .map(|attrs| attrs.iter().any(|a| a.name == name))
        .unwrap_or(false)
}

/// A string-list attribute; Keras splits long ones into `name0`, `name1`, ...
fn string_list_attr(path: &Path, g: &Group, name: &str, at: &str) -> Result<Vec<String>> {
    let attrs = g
        .attributes()
        .map_err(|e| file_err(path, format!("attributes of '/{at}': {e}")))?;
    let read = |a: &hdf5_reader::Attribute| {
        // h5py stores an empty list as an empty float64 array.
        if a.num_elements().is_ok_and(|n| n == 0) {
            return Ok(Vec::new());
        }
        a.read_strings().map_err(|e| {
            file_err(
                path,
                format!(
                    "attribute '{}' of '/{at}' is not a list of strings: {e}",
                    a.name
                ),
            )
        })
    };
    if let Some(a) = attrs.iter().find(|a| a.name == name) {
        return read(a);
    }
    let mut out = Vec::new();
    for i in 0.. {
        let chunk = format!("{name}{i}");
        match attrs.iter().find(|a| a.name == chunk) {
            Some(a) => out.extend(read(a)?),
            None => break,
        }
    }
    Ok(out)
}

/// Keras 2 `save_weights` layout (also inside `model_weights` of a full-model file).
fn read_legacy(path: &Path, g: &Group, at: &str, len: &Budget) -> Result<Vec<RawTensor>> {
    let layers = string_list_attr(path, g, "layer_names", at)?;
    let mut out = Vec::new();
    for layer in layers {
        let lg = g.group(&layer).map_err(|e| {
            file_err(
                path,
                format!("layer '{layer}' is listed in layer_names but missing: {e}"),
            )
        })?;
        let lat = format!("{at}{layer}");
        for wname in string_list_attr(path, &lg, "weight_names", &lat)? {
            let key = format!("{lat}/{wname}");
            let ds = open_dataset(path, &lg, &wname, &key)?;
            // `conv2d/kernel:0` (Keras 2), `kernel` (Keras 3 legacy writer) -> `<layer>/kernel`.
            let leaf = wname.rsplit('/').next().unwrap_or(&wname);
            let leaf = leaf.strip_suffix(":0").unwrap_or(leaf);
            out.push(read_dataset(
                path,
                &ds,
                format!("{layer}/{leaf}"),
                &key,
                len,
            )?);
        }
    }
    Ok(out)
}

fn open_dataset(path: &Path, g: &Group, rel: &str, key: &str) -> Result<hdf5_reader::Dataset> {
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    let Some((last, dirs)) = parts.split_last() else {
        return Err(file_err(path, format!("empty weight name under '/{key}'")));
    };
    let mut cur = g.clone();
    for d in dirs {
        cur = cur
            .group(d)
            .map_err(|e| file_err(path, format!("weight '/{key}' is missing: {e}")))?;
    }
    cur.dataset(last)
        .map_err(|e| file_err(path, format!("weight '/{key}' is missing: {e}")))
}

/// Keras 3 layout: `layers/<name>/vars/<i>`, recursively for nested models.
fn read_keras3(
    path: &Path,
    g: &Group,
    at: &str,
    prefix: &str,
    out: &mut Vec<RawTensor>,
    depth: usize,
    len: &Budget,
) -> Result<()> {
    if depth > 16 {
        return Err(file_err(path, format!("groups nest too deeply at '/{at}'")));
    }
    let err = |what: String, e: H5Error| file_err(path, format!("{what}: {e}"));
    let (groups, _) = g
        .member_names()
        .map_err(|e| err(format!("listing '/{at}'"), e))?;
    if groups.iter().any(|n| n == "vars") && !prefix.is_empty() {
        let vars = g
            .group("vars")
            .map_err(|e| err(format!("group '/{at}vars'"), e))?;
        let (_, names) = vars
            .member_names()
            .map_err(|e| err(format!("listing '/{at}vars'"), e))?;
        let mut idx: Vec<(usize, String)> = names
            .into_iter()
            .map(|n| (n.parse::<usize>().unwrap_or(usize::MAX), n))
            .collect();
        idx.sort();
        let layer = prefix.trim_end_matches('/');
        let two = idx.len() <= 2;
        for (i, n) in &idx {
            let leaf = match (two, i) {
                (true, 0) => "kernel".to_string(),
                (true, 1) => "bias".to_string(),
                _ => format!("vars_{n}"),
            };
            let key = format!("{at}vars/{n}");
            let ds = vars
                .dataset(n)
                .map_err(|e| err(format!("dataset '/{key}'"), e))?;
            out.push(read_dataset(
                path,
                &ds,
                format!("{layer}/{leaf}"),
                &key,
                len,
            )?);
        }
    }
    if groups.iter().any(|n| n == "layers") {
        let layers = g
            .group("layers")
            .map_err(|e| err(format!("group '/{at}layers'"), e))?;
        let (names, _) = layers
            .member_names()
            .map_err(|e| err(format!("listing '/{at}layers'"), e))?;
        for name in names {
            let sub = layers
                .group(&name)
                .map_err(|e| err(format!("group '/{at}layers/{name}'"), e))?;
            read_keras3(
                path,
                &sub,
                &format!("{at}layers/{name}/"),
                &format!("{prefix}{name}/"),
                out,
                depth + 1,
                len,
            )?;
        }
    }
    Ok(())
}

/// Fallback: every dataset, keyed by its path.
fn read_all(
    path: &Path,
    g: &Group,
    at: &str,
    out: &mut Vec<RawTensor>,
    depth: usize,
    len: &Budget,
) -> Result<()> {
    if depth > 16 {
        return Err(file_err(path, format!("groups nest too deeply at '/{at}'")));
    }
    let (groups, datasets) = g
        .members()
        .map_err(|e| file_err(path, format!("listing '/{at}': {e}")))?;
    for ds in datasets {
        let key = format!("{at}{}", ds.name());
        if matches!(ds.dtype(), Datatype::FloatingPoint { .. }) {
            out.push(read_dataset(path, &ds, key.clone(), &key, len)?);
        }
    }
    for sub in groups {
        let name = sub.name().rsplit('/').next().unwrap_or("").to_string();
        read_all(path, &sub, &format!("{at}{name}/"), out, depth + 1, len)?;
    }
    Ok(())
}

fn read_dataset(
    path: &Path,
    ds: &hdf5_reader::Dataset,
    key: String,
    at: &str,
    budget: &Budget,
) -> Result<RawTensor> {
    let shape: Vec<usize> = ds.shape().iter().map(|&d| d as usize).collect();
    let data = match ds.dtype() {
        Datatype::FloatingPoint { size, .. } if matches!(size, 2 | 4 | 8) => {
            let size = *size as usize;
            // Before anything is allocated: the data must fit in the file (times deflate's
            // ratio when it is chunked, and so perhaps compressed).
            let n = shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .and_then(|n| n.checked_mul(size).map(|b| (n, b)));
            let file_len = budget.len;
            let limit = if ds.chunks().is_some() {
                file_len.saturating_mul(MAX_EXPANSION)
            } else {
                file_len
            };
            let Some((n, nbytes)) = n.filter(|&(_, b)| b as u64 <= limit) else {
                return Err(file_err(
                    path,
                    format!(
                        "dataset '/{at}': shape {shape:?} of {size}-byte floats does not fit in \
                         the {file_len}-byte file (is it damaged?)"
                    ),
                ));
            };
            budget.charge(path, at, nbytes as u64)?;
            let bytes = ds.read_native_bytes().map_err(|e| {
                file_err(
                    path,
                    format!("dataset '/{at}': {e} (is the file truncated?)"),
                )
            })?;
            if bytes.len() != nbytes {
                return Err(file_err(
                    path,
                    format!(
                        "dataset '/{at}': {} bytes for shape {shape:?} of {size}-byte floats \
                         ({n} elements)",
                        bytes.len()
                    ),
                ));
            }
            Ok(match size {
                2 => bytes
                    .chunks_exact(2)
                    .map(|c| half::f16::from_ne_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                4 => bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                _ => bytes
                    .chunks_exact(8)
                    .map(|c| {
                        let mut a = [0u8; 8];
                        a.copy_from_slice(c);
                        f64::from_ne_bytes(a) as f32
                    })
                    .collect(),
            })
        }
        Datatype::FixedPoint { size, signed, .. } => Err(format!(
            "dtype {}int{} is an integer type; weights must be float32 (float16 and float64 \
             are converted)",
            if *signed { "" } else { "u" },
            *size as usize * 8
        )),
        other => Err(format!(
            "HDF5 type {other:?} is not supported; need float32"
        )),
    };
    Ok(RawTensor { key, shape, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_files_datasets_share_one_decoding_budget() {
        let p = Path::new("bomb.h5");
        let b = Budget::new(17 << 20);
        // Each just under a GiB: the first two fit, the third is refused before it is read.
        b.charge(p, "a", 1 << 30).unwrap();
        b.charge(p, "b", (1 << 29) + (16 << 20)).unwrap();
        let e = b.charge(p, "c", 1 << 30).unwrap_err().to_string();
        assert!(e.contains("bomb.h5") && e.contains("'/c'"), "{e}");
    }
}
