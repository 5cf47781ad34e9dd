//! Joining the parts of a sharded run, after checking they belong together.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

use super::stream::npy_header;
use super::*;

/// What [`merge`] wrote.
#[derive(Clone, Debug)]
pub struct MergeReport {
    /// Parts merged.
    pub parts: usize,
    /// The run they all came from.
    pub run: RunIdentity,
    /// Lines of the merged `.jsonl`.
    pub inputs: usize,
    /// Rows of the merged `.npy` files.
    pub rows: usize,
    /// Inputs that failed.
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
    Error::input(
        dir.to_path_buf(),
        crate::error::InputErrorKind::Malformed,
        message,
    )
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

/// Whether `name` is a part's file name (`part-IIIII-of-NNNNN.*`), of any run.
fn is_part_name(name: &str) -> bool {
    let Some((stem, _)) = name.split_once('.') else {
        return false;
    };
    let Some((i, n)) = stem
        .strip_prefix("part-")
        .and_then(|r| r.split_once("-of-"))
    else {
        return false;
    };
    [i, n]
        .iter()
        .all(|x| x.len() == 5 && x.bytes().all(|b| b.is_ascii_digit()))
}

/// Refuses merged files that would replace a part (`merge DIR DIR/part-00000-of-00003` names
/// part 0's own `.jsonl`): none may be a file the merge reads (also through links), nor carry
/// a part's name inside `dir` (the part of another run there would be lost). Checked before
/// anything is written.
fn check_merged_paths(
    dir: &Path,
    out: &Path,
    kinds: &[String],
    manifests: &[(PathBuf, Manifest)],
) -> Result<()> {
    let dests: Vec<PathBuf> = kinds.iter().map(|k| merged_path(out, k)).collect();
    for d in &dests {
        let in_dir = crate::clobber::same_file(&crate::fsutil::parent_dir(d), dir);
        if in_dir
            && d.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_part_name)
        {
            return Err(merge_err(
                out,
                format!(
                    "the merged file {} would have a part's name in {}; choose an output prefix that is not part-IIIII-of-NNNNN",
                    d.display(),
                    dir.display()
                ),
            ));
        }
    }
    let mut parts: Vec<PathBuf> = Vec::new();
    for (manifest, m) in manifests {
        parts.push(manifest.clone());
        parts.extend(m.files.iter().map(|f| dir.join(&f.name)));
    }
    let inputs: Vec<(&str, &Path)> = parts.iter().map(|p| ("part", p.as_path())).collect();
    let outputs: Vec<(&str, &Path)> = dests.iter().map(|p| ("merged file", p.as_path())).collect();
    crate::clobber::check_outputs(&inputs, &outputs)
}

/// Copies `src` from `offset` to the end into `out`, returning the SHA-256 of the whole of
/// `src` (checked against the manifest afterwards).
fn copy_hashed(src: &Path, offset: u64, out: &mut StreamFile) -> Result<(u64, String)> {
    let mut f = File::open(src).map_err(|e| Error::read(src, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(|e| Error::read(src, e))?;
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
    let entries = std::fs::read_dir(dir).map_err(|e| Error::read(dir, e))?;
    let mut found: BTreeMap<usize, BTreeMap<usize, PathBuf>> = BTreeMap::new();
    for e in entries {
        let e = e.map_err(|e| Error::read(dir, e))?;
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
        // What killed runs of this part left (kill -9: no handler ran), now that it is done.
        if let Ok(shard) = Shard::new(*i, count) {
            PartPaths::new(&crate::fsutil::parent_dir(p), shard).remove_stale_temps();
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

    check_merged_paths(dir, out, &kinds, &manifests)?;

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
