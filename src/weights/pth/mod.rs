//! PyTorch `.pth` / `.pt` files read without executing anything.
//!
//! `torch.save` writes a zip (`<name>/data.pkl`, a pickle, plus one raw little-endian file per
//! tensor storage, `<name>/data/<key>`); files from before PyTorch 1.6 are a sequence of pickles
//! followed by the raw storages ("legacy" format). Both are read here, the pickles by the
//! restricted machine of `pickle`; this module says what its allowed globals build (storages
//! from persistent ids, tensors from `_rebuild_tensor_v2`) and gathers the tensors' data.
//!
//! Sizes read from the file never drive an allocation on their own: a storage is the bytes that
//! are in the file (the zip members read, together, are at most the archive; a legacy storage is
//! a slice of the file), and the tensors gathered from storages hold at most
//! [`MAX_GATHER_RATIO`] times the storages' elements (tied weights share a storage; a forged file
//! naming one storage a million times would otherwise multiply it).

use std::collections::HashMap;
use std::io::{Read, Seek};
use std::path::Path;

use super::pickle::{run_pickle, Value};
use super::raw::{file_err, RawTensor};
use crate::error::{Error, Result};

mod tensors;

pub use tensors::MAX_GATHER_RATIO;
use tensors::{state_dict, tensors_from, Persist};

/// Reads the state_dict of a `.pth` / `.pt` file (zip or legacy format).
pub fn read_pth(path: &Path) -> Result<Vec<RawTensor>> {
    read_pth_matching(path, &|_| true)
}

/// [`read_pth`] of the entries whose key `keep` accepts. In the zip format the storages of the
/// others are never read (a state_dict's classifier is most of an AlexNet file); the legacy
/// format is one stream, read whole and filtered.
pub fn read_pth_matching(path: &Path, keep: &dyn Fn(&str) -> bool) -> Result<Vec<RawTensor>> {
    let mut file = crate::fsutil::open_regular(path)?;
    let mut magic = [0u8; 4];
    let n = file.read(&mut magic).map_err(|e| Error::read(path, e))?;
    file.rewind().map_err(|e| Error::read(path, e))?;
    match kind(&magic[..n]) {
        Some(Kind::Zip) => {
            let len = file.metadata().map_err(|e| Error::read(path, e))?.len();
            read_zip(path, std::io::BufReader::new(file), len, keep)
        }
        Some(Kind::Legacy) => {
            let bytes = crate::fsutil::read_regular_capped(path, super::raw::MAX_WEIGHTS_FILE)?;
            let mut all = read_legacy(path, &bytes)?;
            all.retain(|t| keep(&t.key));
            Ok(all)
        }
        None => Err(not_pytorch(path)),
    }
}

/// [`read_pth`] of a file's bytes already in memory; `path` only names it in errors.
pub fn read_pth_bytes(path: &Path, bytes: &[u8]) -> Result<Vec<RawTensor>> {
    match kind(bytes) {
        Some(Kind::Zip) => read_zip(
            path,
            std::io::Cursor::new(bytes),
            bytes.len() as u64,
            &|_| true,
        ),
        Some(Kind::Legacy) => read_legacy(path, bytes),
        None => Err(not_pytorch(path)),
    }
}

enum Kind {
    Zip,
    Legacy,
}

fn kind(magic: &[u8]) -> Option<Kind> {
    if magic.starts_with(b"PK") {
        Some(Kind::Zip)
    } else if magic.len() >= 2 && magic[0] == 0x80 {
        Some(Kind::Legacy)
    } else {
        None
    }
}

fn not_pytorch(path: &Path) -> Error {
    file_err(
        path,
        "not a PyTorch file: neither a zip archive (torch.save since PyTorch 1.6) nor a legacy \
         pickle stream",
    )
}

fn read_zip<R: Read + Seek>(
    path: &Path,
    reader: R,
    archive_len: u64,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Vec<RawTensor>> {
    let mut zip = zip::ZipArchive::new(reader).map_err(|e| {
        file_err(
            path,
            format!("not a readable PyTorch zip archive: {e}; is the file truncated?"),
        )
    })?;
    let names: Vec<String> = zip.file_names().map(str::to_string).collect();
    let pkl = names
        .iter()
        .filter(|n| n.ends_with("data.pkl") && n.matches('/').count() <= 1)
        .min_by_key(|n| n.len())
        .cloned()
        .ok_or_else(|| {
            file_err(
                path,
                "the zip archive has no data.pkl: not a file written by torch.save",
            )
        })?;
    let prefix = pkl.strip_suffix("data.pkl").unwrap_or("").to_string();
    // The members read, together, are at most the archive: members that overlap (one storage's
    // bytes listed under many names) cannot multiply the file.
    let mut budget = archive_len;
    let mut read_entry = |name: &str| -> Result<Vec<u8>> {
        let mut f = zip.by_name(name).map_err(|e| {
            file_err(
                path,
                format!("zip member '{name}': {e} (is the file truncated?)"),
            )
        })?;
        if f.compression() != zip::CompressionMethod::Stored {
            return Err(file_err(
                path,
                format!(
                    "zip member '{name}' is compressed ({}); torch.save stores members \
                     uncompressed: re-save the file with torch.save",
                    f.compression()
                ),
            ));
        }
        budget = budget.checked_sub(f.compressed_size()).ok_or_else(|| {
            file_err(
                path,
                format!(
                    "zip member '{name}': the members read so far hold more bytes than the \
                     {archive_len}-byte archive (overlapping members: a forged archive)"
                ),
            )
        })?;
        // Capacity bounded by the archive's size, whatever the member header claims.
        let mut buf = Vec::with_capacity(f.size().min(archive_len) as usize);
        f.read_to_end(&mut buf).map_err(|e| {
            file_err(
                path,
                format!("zip member '{name}': {e} (is the file truncated?)"),
            )
        })?;
        Ok(buf)
    };
    let big_endian = if names.iter().any(|n| *n == format!("{prefix}byteorder")) {
        let b = read_entry(&format!("{prefix}byteorder"))?;
        b.trim_ascii() == b"big"
    } else {
        false
    };
    let pickle = read_entry(&pkl)?;
    let (root, _) =
        run_pickle(&pickle, 0, &Persist::Zip).map_err(|m| file_err(path, format!("{pkl}: {m}")))?;
    tensors_from(
        path,
        &root,
        |key| read_entry(&format!("{prefix}data/{key}")),
        big_endian,
        keep,
    )
}

/// Legacy (pre-1.6) format: magic, protocol, sys_info and the object as four pickles, then the
/// list of storage keys as a pickle, then each storage as `u64 numel` + raw bytes in that order.
fn read_legacy(path: &Path, bytes: &[u8]) -> Result<Vec<RawTensor>> {
    const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
    let err = |m: String| file_err(path, m);
    let (magic, pos) = run_pickle(bytes, 0, &Persist::Refuse).map_err(&err)?;
    if !matches!(&magic, Value::BigInt(b) if b.as_slice() == MAGIC) {
        return Err(err(
            "not a PyTorch file: a bare pickle without torch's magic number (only files \
             written by torch.save are read)"
                .into(),
        ));
    }
    let (_proto, pos) = run_pickle(bytes, pos, &Persist::Refuse).map_err(&err)?;
    let (sys_info, pos) = run_pickle(bytes, pos, &Persist::Refuse).map_err(&err)?;
    let little = match &sys_info {
        Value::Dict(d) => d.iter().all(|(k, v)| {
            !matches!(k, Value::Str(s) if &**s == "little_endian") || matches!(v, Value::Bool(true))
        }),
        _ => true,
    };
    let (root, pos) = run_pickle(bytes, pos, &Persist::Legacy).map_err(&err)?;
    let (keys, mut pos) = run_pickle(bytes, pos, &Persist::Refuse).map_err(&err)?;
    let Value::List(keys) = keys else {
        return Err(err("the storage key list is missing".into()));
    };
    // Element sizes come from the storage types named in the object pickle.
    let mut sizes: HashMap<String, usize> = HashMap::new();
    if let Ok(entries) = state_dict(&root) {
        for (_, t) in entries {
            sizes.insert(t.storage.key.clone(), t.storage.dtype.size());
        }
    }
    let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
    for k in keys.iter() {
        let key = match k {
            Value::Str(s) => s.to_string(),
            other => return Err(err(format!("storage key is a {}", other.kind()))),
        };
        let Some(&elsize) = sizes.get(&key) else {
            return Err(err(format!(
                "storage '{key}' has an unknown element size (no tensor refers to it)"
            )));
        };
        let head = bytes.get(pos..pos + 8).ok_or_else(|| {
            err(format!(
                "storage '{key}' is cut off (is the file truncated?)"
            ))
        })?;
        let mut a = [0u8; 8];
        a.copy_from_slice(head);
        let numel = if little {
            u64::from_le_bytes(a)
        } else {
            u64::from_be_bytes(a)
        };
        let len = usize::try_from(numel)
            .ok()
            .and_then(|n| n.checked_mul(elsize))
            .ok_or_else(|| err(format!("storage '{key}' has an absurd size {numel}")))?;
        pos += 8;
        let data = bytes.get(pos..pos.saturating_add(len)).ok_or_else(|| {
            err(format!(
                "storage '{key}' needs {len} bytes but the file ends first (is it truncated?)"
            ))
        })?;
        pos += len;
        storages.insert(key, data.to_vec());
    }
    tensors_from(
        path,
        &root,
        |key| {
            storages
                .remove(key)
                .ok_or_else(|| file_err(path, format!("storage '{key}' is missing")))
        },
        !little,
        &|_| true,
    )
}
