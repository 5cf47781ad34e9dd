//! Sharded, resumable batch runs: which slice of the inputs a process runs, the part files it
//! writes (streamed, then renamed into place), their manifests, and joining the parts.
//!
//! A part is `DIR/part-IIIII-of-NNNNN.*`: `.jsonl` (one line per input, in input order),
//! `.logits.npy` / `.features.npy` (one row per input that ran) and `.manifest.json`. The
//! manifest is written last and records the size and SHA-256 of every data file, so a part
//! counts as finished only when its manifest exists and every file it names matches; a process
//! killed at any point leaves either the previous complete part or none that [`merge`] accepts.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data::inputs::{collect_inputs, is_image_path, InputItem, InputSource};
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

mod merge;
mod stream;

pub use merge::{merge, merged_path, MergeReport};
pub use stream::{npy_header, read_npy_header, NpyWriter, StreamFile};

/// The most shards a run can have (part names hold five digits).
pub const MAX_SHARDS: usize = 99_999;

/// The manifest format's version.
pub const MANIFEST_VERSION: u32 = 1;

/// Part `index` (0-based) of `count` contiguous parts of the input list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This part, 0-based.
    pub index: usize,
    /// Parts in all.
    pub count: usize,
}

impl Shard {
    /// The whole list as one part.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Part `index` of `count`; refused (with the reason) unless `index < count` and `count` is 1 to `MAX_SHARDS`.
    pub fn new(index: usize, count: usize) -> std::result::Result<Shard, String> {
        if count == 0 || count > MAX_SHARDS {
            return Err(format!(
                "the shard count must be 1 to {MAX_SHARDS}, found {count}"
            ));
        }
        if index >= count {
            return Err(format!(
                "shard index {index} is out of range for {count} shards (indices are 0-based: 0 to {})",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// The inputs of this part among `total`: contiguous, sizes differing by at most one, and
    /// the ranges of parts `0..count` tile `0..total` in order.
    pub fn range(&self, total: usize) -> Range<usize> {
        let at = |i: usize| (i as u128 * total as u128 / self.count as u128) as usize;
        at(self.index)..at(self.index + 1)
    }

    /// `part-IIIII-of-NNNNN`.
    pub fn stem(&self) -> String {
        format!("part-{:05}-of-{:05}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    /// `I/N`, e.g. `0/3`.
    fn from_str(s: &str) -> std::result::Result<Shard, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("expected I/N (e.g. 0/3), found '{s}'"))?;
        let num = |t: &str| {
            t.trim()
                .parse::<usize>()
                .map_err(|_| format!("expected I/N with whole numbers (e.g. 0/3), found '{s}'"))
        };
        Shard::new(num(i)?, num(n)?)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Reads a list of paths, one per line (blank lines are skipped, a trailing `\r` is removed).
pub fn read_path_list(reader: impl BufRead, source: &Path) -> Result<Vec<PathBuf>> {
    // Bounded in line length and in all (see fsutil::read_lines_capped).
    Ok(crate::fsutil::read_lines_capped(reader, source)?
        .into_iter()
        .filter(|l| !l.trim().is_empty())
        .map(PathBuf::from)
        .collect())
}

/// Inputs from listed paths: a path with an image extension is taken as one image without
/// touching the file system (so listing ten million files costs no `stat` per file; a missing
/// file fails when it is decoded), anything else (a folder, a `.npy` batch) is expanded like a
/// command-line path. A listed path that cannot be stat'ed (missing, unreadable) is one input
/// that fails when it is read, with or without an image extension: one bad line of a long
/// list does not stop the run.
pub fn expand_listed(paths: &[PathBuf]) -> Result<Vec<InputItem>> {
    let mut out = Vec::with_capacity(paths.len());
    for p in paths {
        if is_image_path(p) || std::fs::metadata(p).is_err() {
            out.push(InputItem {
                source: InputSource::Image(p.clone()),
            });
        } else {
            out.extend(collect_inputs(std::slice::from_ref(p))?);
        }
    }
    Ok(out)
}

fn hex(d: impl AsRef<[u8]>) -> String {
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a list of names (each followed by a newline): identifies the input list.
pub fn hash_names<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> String {
    let mut h = Sha256::new();
    for n in names {
        h.update(n.as_ref().as_bytes());
        h.update(b"\n");
    }
    hex(h.finalize())
}

/// SHA-256 of loaded tensors (name, length and little-endian f32 values, in the order given):
/// identifies a model whatever file format it came in.
pub fn hash_tensors<'a>(tensors: impl IntoIterator<Item = (&'a str, &'a [f32])>) -> String {
    let mut h = Sha256::new();
    for (name, data) in tensors {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((data.len() as u64).to_le_bytes());
        h.update(bytemuck::cast_slice::<f32, u8>(data));
    }
    hex(h.finalize())
}

/// Size and SHA-256 of a file.
pub fn hash_file(path: &Path) -> Result<(u64, String)> {
    let mut f = File::open(path).map_err(|e| Error::read(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(|e| Error::read(path, e))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, hex(h.finalize())))
}

/// One data file of a part, as its manifest records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartFile {
    /// `jsonl`, `logits` or `features`.
    pub kind: String,
    /// The file's name in the part's folder.
    pub name: String,
    /// Its size.
    pub bytes: u64,
    /// Its SHA-256, lower-case hex.
    pub sha256: String,
}

/// What a part was made from; two parts belong to the same run when these are equal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunIdentity {
    /// The command that made it (`classify`, `features`).
    pub command: String,
    /// How many parts the run has.
    pub count: usize,
    /// Inputs in the whole list, over all parts.
    pub total_inputs: usize,
    /// [`hash_names`] of the whole input list.
    pub list_sha256: String,
    /// [`hash_tensors`] of the model.
    pub model_sha256: String,
    /// Every option that changes what is written (preset, precision, top-k, labels, ...).
    pub options: BTreeMap<String, serde_json::Value>,
}

/// `part-IIIII-of-NNNNN.manifest.json`: written after the part's data files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The manifest format's version.
    pub version: u32,
    /// The part's index.
    pub index: usize,
    #[serde(flatten)]
    /// What produced it (model, options, inputs).
    pub run: RunIdentity,
    /// The part's first input in the whole list.
    pub start: usize,
    /// Inputs in this part (lines of its `.jsonl`).
    pub inputs: usize,
    /// Inputs that ran (rows of its `.npy` files).
    pub rows: usize,
    /// Inputs that failed (error lines in its `.jsonl`).
    pub failed: usize,
    /// The part's data files.
    pub files: Vec<PartFile>,
}

/// Where part `shard` of a run in `dir` lives.
#[derive(Clone, Debug)]
pub struct PartPaths {
    /// The run's output folder.
    pub dir: PathBuf,
    /// The part.
    pub shard: Shard,
}

impl PartPaths {
    /// Part `shard` of a run in `dir`.
    pub fn new(dir: &Path, shard: Shard) -> PartPaths {
        PartPaths {
            dir: dir.to_path_buf(),
            shard,
        }
    }

    /// The part's manifest file.
    pub fn manifest(&self) -> PathBuf {
        self.dir
            .join(format!("{}.manifest.json", self.shard.stem()))
    }

    /// The data file of a kind: `jsonl` -> `.jsonl`, `logits` -> `.logits.npy`, ...
    pub fn file(&self, kind: &str) -> PathBuf {
        self.dir.join(file_name(&self.shard.stem(), kind))
    }

    /// The manifest, if this part is complete: its manifest parses, it is this shard's, and
    /// every file it names has the recorded size and SHA-256. `None` when any of that fails.
    pub fn complete(&self) -> Option<Manifest> {
        let m = Manifest::read(&self.manifest()).ok()?;
        if m.index != self.shard.index || m.run.count != self.shard.count {
            return None;
        }
        for f in &m.files {
            match hash_file(&self.dir.join(&f.name)) {
                Ok((bytes, sha)) if bytes == f.bytes && sha == f.sha256 => {}
                _ => return None,
            }
        }
        Some(m)
    }

    /// Removes the temporary files a killed run of this part left (kill -9 runs no handler):
    /// those of its manifest and of each of its data files, when their process is gone. A
    /// rewrite of a file does this itself; this is for a part that is skipped as complete and
    /// for merge, which write none of them.
    pub fn remove_stale_temps(&self) {
        let stem = self.shard.stem();
        for name in [
            format!("{stem}.manifest.json"),
            file_name(&stem, "jsonl"),
            file_name(&stem, "logits"),
            file_name(&stem, "features"),
        ] {
            crate::fsutil::remove_stale_temps(&self.dir, &name);
        }
    }

    /// Removes the manifest (before a part is rewritten, so old manifest and new data never
    /// meet).
    pub fn invalidate(&self) -> Result<()> {
        let p = self.manifest();
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&p, e)),
            _ => Ok(()),
        }
    }

    /// Records the finished data files (already in place) in the manifest, written last.
    #[allow(clippy::too_many_arguments)]
    pub fn write_manifest(
        &self,
        run: &RunIdentity,
        start: usize,
        inputs: usize,
        rows: usize,
        failed: usize,
        kinds: &[&str],
    ) -> Result<Manifest> {
        let mut files = Vec::new();
        for kind in kinds {
            let path = self.file(kind);
            let (bytes, sha256) = hash_file(&path)?;
            files.push(PartFile {
                kind: kind.to_string(),
                name: file_name(&self.shard.stem(), kind),
                bytes,
                sha256,
            });
        }
        let m = Manifest {
            version: MANIFEST_VERSION,
            index: self.shard.index,
            run: run.clone(),
            start,
            inputs,
            rows,
            failed,
            files,
        };
        let text = serde_json::to_string_pretty(&m).expect("a manifest serialises");
        write_atomic(&self.manifest(), |f| {
            f.write_all(text.as_bytes())?;
            f.write_all(b"\n")
        })?;
        Ok(m)
    }
}

/// `{stem}.jsonl`, `{stem}.logits.npy`, `{stem}.features.npy`.
pub fn file_name(stem: &str, kind: &str) -> String {
    match kind {
        "jsonl" => format!("{stem}.jsonl"),
        k => format!("{stem}.{k}.npy"),
    }
}

impl Manifest {
    /// Reads and checks a manifest.
    pub fn read(path: &Path) -> Result<Manifest> {
        let text = crate::fsutil::read_file_capped(path, crate::fsutil::MAX_TEXT_BYTES)?;
        let m: Manifest = serde_json::from_str(&text).map_err(|e| {
            Error::input(
                path.to_path_buf(),
                crate::error::InputErrorKind::Malformed,
                format!("not a part manifest: {e}"),
            )
        })?;
        if m.version != MANIFEST_VERSION {
            return Err(Error::input(
                path.to_path_buf(),
                crate::error::InputErrorKind::Malformed,
                format!(
                    "manifest version {} (this build reads {MANIFEST_VERSION})",
                    m.version
                ),
            ));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_ranges_tile_the_list_in_order() {
        for total in [0usize, 1, 2, 7, 10, 101] {
            for count in [1usize, 2, 3, 7, 16] {
                let mut next = 0;
                for index in 0..count {
                    let r = Shard::new(index, count).unwrap().range(total);
                    assert_eq!(r.start, next, "total {total}, {index}/{count}");
                    assert!(r.len() <= total / count + 1 && r.len() >= total / count);
                    next = r.end;
                }
                assert_eq!(next, total);
            }
        }
    }

    #[test]
    fn shard_parsing() {
        assert_eq!(
            "2/3".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 3 }
        );
        for bad in ["3/3", "0/0", "1", "a/3", "-1/3", "0/100000"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert_eq!(Shard::new(7, 12).unwrap().stem(), "part-00007-of-00012");
    }

    #[test]
    fn streamed_npy_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.npy");
        let mut w = NpyWriter::create(&p, 3).unwrap();
        w.push(&[1.0, 2.0, 3.0]).unwrap();
        w.push(&[4.0, 5.0, 6.0, 7.0, 8.0, 9.0]).unwrap();
        assert!(!p.exists(), "nothing under the final name before finish");
        assert_eq!(w.finish().unwrap(), 3);
        let t = crate::weights::read_tensors(&p).unwrap().remove(0);
        assert_eq!(t.shape, [3, 3]);
        assert_eq!(
            t.data.unwrap(),
            (1..=9).map(|v| v as f32).collect::<Vec<_>>()
        );
        assert_eq!(read_npy_header(&p).unwrap(), ([3, 3], 128));
    }
}
