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
use std::io::{BufRead, BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data::inputs::{collect_inputs, is_image_path, InputItem, InputSource};
use crate::error::{Error, Result};
use crate::fsutil::{parent_dir, write_atomic, PendingFile};

/// The most shards a run can have (part names hold five digits).
pub const MAX_SHARDS: usize = 99_999;

/// The manifest format's version.
pub const MANIFEST_VERSION: u32 = 1;

/// Part `index` (0-based) of `count` contiguous parts of the input list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// The whole list as one part.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

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
    let mut out = Vec::new();
    for line in reader.lines() {
        let line = line.map_err(|e| Error::io(source, e))?;
        let line = line.strip_suffix('\r').unwrap_or(&line);
        if !line.trim().is_empty() {
            out.push(PathBuf::from(line));
        }
    }
    Ok(out)
}

/// Inputs from listed paths: a path with an image extension is taken as one image without
/// touching the file system (so listing ten million files costs no `stat` per file; a missing
/// file fails when it is decoded), anything else (a folder, a `.npy` batch) is expanded like a
/// command-line path.
pub fn expand_listed(paths: &[PathBuf]) -> Result<Vec<InputItem>> {
    let mut out = Vec::with_capacity(paths.len());
    for p in paths {
        if is_image_path(p) {
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
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, hex(h.finalize())))
}

/// A file written through a temporary file beside it and renamed into place by
/// [`StreamFile::finish`]; dropped unfinished (or on a signal), it leaves nothing.
pub struct StreamFile {
    pending: PendingFile,
    w: BufWriter<File>,
    dest: PathBuf,
}

impl StreamFile {
    pub fn create(dest: &Path) -> Result<StreamFile> {
        let mut pending = PendingFile::new_in(&parent_dir(dest), ".alexnet-", ".tmp")?;
        let file = pending
            .file_mut()
            .try_clone()
            .map_err(|e| Error::io(dest, e))?;
        Ok(StreamFile {
            pending,
            w: BufWriter::new(file),
            dest: dest.to_path_buf(),
        })
    }

    pub fn writer(&mut self) -> &mut BufWriter<File> {
        &mut self.w
    }

    /// Flushes what was written so far to the temporary file (not to its final name).
    pub fn flush(&mut self) -> Result<()> {
        self.w.flush().map_err(|e| Error::io(&self.dest, e))
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.w
            .write_all(bytes)
            .map_err(|e| Error::io(&self.dest, e))
    }

    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Syncs and renames the file to its destination.
    pub fn finish(mut self) -> Result<()> {
        self.flush()?;
        self.pending.persist(&self.dest)
    }
}

/// The `.npy` header we write: always 128 bytes, so the row count can be filled in at the end.
const NPY_HEADER_LEN: usize = 128;

fn npy_header(rows: usize, cols: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let mut h = b"\x93NUMPY\x01\x00".to_vec();
    let len = NPY_HEADER_LEN - 10;
    h.extend_from_slice(&(len as u16).to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h.resize(NPY_HEADER_LEN - 1, b' ');
    h.push(b'\n');
    h
}

/// A float32 `[rows, cols]` `.npy` written row by row (memory stays one batch whatever the row
/// count), renamed into place by [`NpyWriter::finish`].
pub struct NpyWriter {
    file: StreamFile,
    cols: usize,
    rows: usize,
}

impl NpyWriter {
    pub fn create(dest: &Path, cols: usize) -> Result<NpyWriter> {
        let mut file = StreamFile::create(dest)?;
        file.write_all(&npy_header(0, cols))?;
        Ok(NpyWriter {
            file,
            cols,
            rows: 0,
        })
    }

    /// Appends whole rows (`data.len()` a multiple of `cols`).
    pub fn push(&mut self, data: &[f32]) -> Result<()> {
        assert!(
            data.len().is_multiple_of(self.cols),
            "NpyWriter::push: {} values are not whole rows of {}",
            data.len(),
            self.cols
        );
        self.rows += data.len().checked_div(self.cols).unwrap_or(0);
        for v in data {
            self.file.write_all(&v.to_le_bytes())?;
        }
        Ok(())
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Writes the final shape into the header and renames the file into place.
    pub fn finish(mut self) -> Result<usize> {
        self.file.flush()?;
        let dest = self.file.dest.clone();
        let f = self.file.w.get_mut();
        f.seek(SeekFrom::Start(0))
            .and_then(|_| f.write_all(&npy_header(self.rows, self.cols)))
            .map_err(|e| Error::io(&dest, e))?;
        self.file.finish()?;
        Ok(self.rows)
    }
}

/// Reads the header of a C-order float32 2-D `.npy`: (`[rows, cols]`, offset of the data).
pub fn read_npy_header(path: &Path) -> Result<([usize; 2], u64)> {
    let bad = |m: String| Error::Input {
        path: path.to_path_buf(),
        message: m,
    };
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut pre = [0u8; 10];
    f.read_exact(&mut pre)
        .map_err(|_| bad("not a .npy file (too short)".into()))?;
    if &pre[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file (no \\x93NUMPY magic)".into()));
    }
    let (len, start) = match pre[6] {
        1 => (u16::from_le_bytes([pre[8], pre[9]]) as usize, 10u64),
        2 | 3 => {
            let mut more = [0u8; 2];
            f.read_exact(&mut more)
                .map_err(|_| bad("truncated .npy header".into()))?;
            (
                u32::from_le_bytes([pre[8], pre[9], more[0], more[1]]) as usize,
                12u64,
            )
        }
        v => return Err(bad(format!(".npy version {v} is not supported"))),
    };
    let mut dict = vec![0u8; len];
    f.read_exact(&mut dict)
        .map_err(|_| bad("truncated .npy header".into()))?;
    let dict = String::from_utf8_lossy(&dict).replace(' ', "");
    if !dict.contains("'descr':'<f4'") || !dict.contains("'fortran_order':False") {
        return Err(bad(format!(
            "expected a C-order float32 ('<f4') array, found header {dict}"
        )));
    }
    let shape = dict
        .split_once("'shape':(")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(s, _)| s)
        .ok_or_else(|| bad(format!("no shape in the .npy header {dict}")))?;
    let dims: Vec<usize> = shape
        .split(',')
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad(format!("bad shape in the .npy header {dict}")))?;
    match dims.as_slice() {
        [r, c] => Ok(([*r, *c], start + len as u64)),
        _ => Err(bad(format!("expected a 2-D array, found shape {dims:?}"))),
    }
}

/// One data file of a part, as its manifest records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartFile {
    /// `jsonl`, `logits` or `features`.
    pub kind: String,
    /// The file's name in the part's folder.
    pub name: String,
    pub bytes: u64,
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
    pub version: u32,
    pub index: usize,
    #[serde(flatten)]
    pub run: RunIdentity,
    /// The part's first input in the whole list.
    pub start: usize,
    /// Inputs in this part (lines of its `.jsonl`).
    pub inputs: usize,
    /// Inputs that ran (rows of its `.npy` files).
    pub rows: usize,
    /// Inputs that failed (error lines in its `.jsonl`).
    pub failed: usize,
    pub files: Vec<PartFile>,
}

/// Where part `shard` of a run in `dir` lives.
#[derive(Clone, Debug)]
pub struct PartPaths {
    pub dir: PathBuf,
    pub shard: Shard,
}

impl PartPaths {
    pub fn new(dir: &Path, shard: Shard) -> PartPaths {
        PartPaths {
            dir: dir.to_path_buf(),
            shard,
        }
    }

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
    pub fn read(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let m: Manifest = serde_json::from_str(&text).map_err(|e| Error::Input {
            path: path.to_path_buf(),
            message: format!("not a part manifest: {e}"),
        })?;
        if m.version != MANIFEST_VERSION {
            return Err(Error::Input {
                path: path.to_path_buf(),
                message: format!(
                    "manifest version {} (this build reads {MANIFEST_VERSION})",
                    m.version
                ),
            });
        }
        Ok(m)
    }
}

/// What [`merge`] wrote.
#[derive(Clone, Debug)]
pub struct MergeReport {
    pub parts: usize,
    pub run: RunIdentity,
    /// Lines of the merged `.jsonl`.
    pub inputs: usize,
    /// Rows of the merged `.npy` files.
    pub rows: usize,
    pub failed: usize,
    /// The files written, by kind.
    pub outputs: Vec<(String, PathBuf)>,
}

/// `{prefix}.jsonl`, `{prefix}.logits.npy`, ...: the merged file of a kind.
pub fn merged_path(prefix: &Path, kind: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_os_string();
    match kind {
        "jsonl" => s.push(".jsonl"),
        k => s.push(format!(".{k}.npy")),
    }
    PathBuf::from(s)
}

fn merge_err(dir: &Path, message: String) -> Error {
    Error::Input {
        path: dir.to_path_buf(),
        message,
    }
}

/// Parses `part-IIIII-of-NNNNN.manifest.json`.
fn manifest_name(name: &str) -> Option<(usize, usize)> {
    let rest = name.strip_prefix("part-")?.strip_suffix(".manifest.json")?;
    let (i, n) = rest.split_once("-of-")?;
    if i.len() != 5 || n.len() != 5 {
        return None;
    }
    Some((i.parse().ok()?, n.parse().ok()?))
}

/// Copies `src` from `offset` to the end into `out`, returning the SHA-256 of the whole of
/// `src` (checked against the manifest afterwards).
fn copy_hashed(src: &Path, offset: u64, out: &mut StreamFile) -> Result<(u64, String)> {
    let mut f = File::open(src).map_err(|e| Error::io(src, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(|e| Error::io(src, e))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        let lo = offset.saturating_sub(n).min(k as u64) as usize;
        out.write_all(&buf[lo..k])?;
        n += k as u64;
    }
    Ok((n, hex(h.finalize())))
}

/// Joins the parts in `dir` into `{out}.jsonl` and one `{out}.KIND.npy` per array kind, after
/// checking that all N parts are there, complete, and made by the same run (command, model,
/// options, input list), and that they tile the input list in order. Nothing is written
/// unless every check passes (each output appears whole, by rename, at the end).
pub fn merge(dir: &Path, out: &Path) -> Result<MergeReport> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut found: BTreeMap<usize, BTreeMap<usize, PathBuf>> = BTreeMap::new();
    for e in entries {
        let e = e.map_err(|e| Error::io(dir, e))?;
        if let Some((i, n)) = e.file_name().to_str().and_then(manifest_name) {
            found.entry(n).or_default().insert(i, e.path());
        }
    }
    if found.is_empty() {
        return Err(merge_err(
            dir,
            "no part manifests (part-IIIII-of-NNNNN.manifest.json) here: no shard has finished"
                .into(),
        ));
    }
    if found.len() > 1 {
        let counts: Vec<String> = found
            .iter()
            .map(|(n, parts)| format!("{} of {n}", parts.len()))
            .collect();
        return Err(merge_err(
            dir,
            format!(
                "parts of runs with different shard counts are mixed here ({}); keep one run per folder",
                counts.join(", ")
            ),
        ));
    }
    let (&count, paths) = found.iter().next().expect("one count");
    let missing: Vec<String> = (0..count)
        .filter(|i| !paths.contains_key(i))
        .map(|i| i.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(merge_err(
            dir,
            format!(
                "{} of {count} parts are missing or unfinished (no manifest): shard {}; run them (again)",
                missing.len(),
                missing.join(", ")
            ),
        ));
    }
    let mut manifests = Vec::with_capacity(count);
    for (i, p) in paths {
        let m = Manifest::read(p)?;
        if m.index != *i || m.run.count != count {
            return Err(merge_err(
                p,
                format!(
                    "the manifest says part {} of {}, its name part {i} of {count}",
                    m.index, m.run.count
                ),
            ));
        }
        manifests.push((p.clone(), m));
    }
    let first = manifests[0].1.run.clone();
    let mut next = 0usize;
    for (p, m) in &manifests {
        if m.run != first {
            let what = if m.run.command != first.command {
                format!("command '{}' vs '{}'", m.run.command, first.command)
            } else if m.run.model_sha256 != first.model_sha256 {
                format!(
                    "model {} vs {} (other weights)",
                    m.run.model_sha256, first.model_sha256
                )
            } else if m.run.options != first.options {
                format!(
                    "options {} vs {}",
                    serde_json::to_string(&m.run.options).unwrap_or_default(),
                    serde_json::to_string(&first.options).unwrap_or_default()
                )
            } else {
                format!(
                    "input list ({} inputs, sha256 {}) vs ({} inputs, sha256 {})",
                    m.run.total_inputs, m.run.list_sha256, first.total_inputs, first.list_sha256
                )
            };
            return Err(merge_err(
                p,
                format!("this part is foreign to part 0's run: {what}; run this shard again with the same weights, options and inputs"),
            ));
        }
        if m.start != next {
            return Err(merge_err(
                p,
                format!(
                    "this part starts at input {}, expected {next} (parts must tile the input list)",
                    m.start
                ),
            ));
        }
        next += m.inputs;
    }
    if next != first.total_inputs {
        return Err(merge_err(
            dir,
            format!(
                "the parts hold {next} inputs, the run's list has {}",
                first.total_inputs
            ),
        ));
    }
    let kinds: Vec<String> = manifests[0]
        .1
        .files
        .iter()
        .map(|f| f.kind.clone())
        .collect();
    for (p, m) in &manifests {
        let k: Vec<String> = m.files.iter().map(|f| f.kind.clone()).collect();
        if k != kinds {
            return Err(merge_err(
                p,
                format!("this part has files {k:?}, part 0 has {kinds:?}"),
            ));
        }
    }

    let file_of = |m: &Manifest, kind: &str| -> PartFile {
        m.files
            .iter()
            .find(|f| f.kind == kind)
            .expect("kinds checked")
            .clone()
    };
    let check = |src: &Path, f: &PartFile, got: (u64, String)| -> Result<()> {
        if got.0 != f.bytes || got.1 != f.sha256 {
            return Err(merge_err(
                src,
                format!(
                    "does not match its manifest ({} bytes, sha256 {}; the manifest says {} bytes, {}): \
                     the part was changed or cut short; run this shard again",
                    got.0, got.1, f.bytes, f.sha256
                ),
            ));
        }
        Ok(())
    };
    let mut pending = Vec::new();
    for kind in &kinds {
        let dest = merged_path(out, kind);
        let mut file = StreamFile::create(&dest)?;
        if kind == "jsonl" {
            for (_, m) in &manifests {
                let f = file_of(m, kind);
                let src = dir.join(&f.name);
                let got = copy_hashed(&src, 0, &mut file)?;
                check(&src, &f, got)?;
            }
        } else {
            let mut cols = None;
            let mut rows = 0usize;
            for (_, m) in &manifests {
                let f = file_of(m, kind);
                let src = dir.join(&f.name);
                let ([r, c], _) = read_npy_header(&src)?;
                if *cols.get_or_insert(c) != c || r != m.rows {
                    return Err(merge_err(
                        &src,
                        format!(
                            "shape [{r}, {c}], expected [{}, {}]",
                            m.rows,
                            cols.unwrap_or(c)
                        ),
                    ));
                }
                rows += r;
            }
            let cols = cols.unwrap_or(0);
            file.write_all(&npy_header(rows, cols))?;
            for (_, m) in &manifests {
                let f = file_of(m, kind);
                let src = dir.join(&f.name);
                let (_, offset) = read_npy_header(&src)?;
                let got = copy_hashed(&src, offset, &mut file)?;
                check(&src, &f, got)?;
            }
        }
        pending.push((kind.clone(), dest, file));
    }
    let mut outputs = Vec::new();
    for (kind, dest, file) in pending {
        file.finish()?;
        outputs.push((kind, dest));
    }
    Ok(MergeReport {
        parts: count,
        run: first,
        inputs: next,
        rows: manifests.iter().map(|(_, m)| m.rows).sum(),
        failed: manifests.iter().map(|(_, m)| m.failed).sum(),
        outputs,
    })
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
