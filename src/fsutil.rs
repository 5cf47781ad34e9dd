//! Files that appear whole or not at all.
//!
//! Every writer of the crate goes through [`write_atomic`] (or a [`PendingFile`] for streamed
//! writes such as downloads): the data goes to a temporary file in the destination's folder,
//! is synced, and is renamed over the destination, so a crash never leaves a half-written file
//! under the final name.
//!
//! A signal does not run destructors, so temporary files are also kept in a process-wide
//! registry: [`abandon_pending_writes`] (what the binary's SIGINT/SIGTERM handler calls) removes
//! every one of them and blocks any rename that has not happened yet, so after it the
//! destination holds either its old or its new content, and no `.alexnet-*.tmp` is left behind.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::error::{Error, Result};

/// Temporary files not yet renamed into place or removed.
static PENDING: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

fn pending() -> MutexGuard<'static, BTreeSet<PathBuf>> {
    // A panic while holding the lock leaves the set itself consistent.
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// The folder `path` will be written in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A temporary file beside its destination, removed on drop and on [`abandon_pending_writes`].
pub struct PendingFile {
    tmp: Option<tempfile::NamedTempFile>,
    path: PathBuf,
}

impl PendingFile {
    /// A new temporary file in `dir`, named `{prefix}XXXXXX{suffix}`.
    pub fn new_in(dir: &Path, prefix: &str, suffix: &str) -> Result<PendingFile> {
        let tmp = tempfile::Builder::new()
            .prefix(prefix)
            .suffix(suffix)
            .tempfile_in(dir)
            .map_err(|e| Error::io(dir, e))?;
        let path = tmp.path().to_path_buf();
        pending().insert(path.clone());
        Ok(PendingFile {
            tmp: Some(tmp),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file_mut(&mut self) -> &mut File {
        self.tmp
            .as_mut()
            .expect("present until persisted")
            .as_file_mut()
    }

    /// Syncs the data and renames the file to `dest` (atomic on one file system).
    pub fn persist(mut self, dest: &Path) -> Result<()> {
        let tmp = self.tmp.take().expect("present until persisted");
        tmp.as_file().sync_all().map_err(|e| Error::io(dest, e))?;
        // Holding the registry lock across the rename: an abandon that comes first removes the
        // file (the rename then fails and the old destination stays); one that comes later
        // finds the rename done.
        let mut set = pending();
        let result = tmp.persist(dest).map_err(|e| Error::io(dest, e.error));
        set.remove(&self.path);
        result.map(|_| ())
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        let mut set = pending();
        if let Some(tmp) = self.tmp.take() {
            let _ = tmp.close();
        }
        set.remove(&self.path);
    }
}

/// Writes `path` through a temporary file in the same folder and a rename, so a crash or
/// Ctrl-C never leaves a half-written file under the final name.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<()> {
    let dir = parent_dir(path);
    let mut tmp = PendingFile::new_in(&dir, ".alexnet-", ".tmp")?;
    write(tmp.file_mut()).map_err(|e| Error::io(path, e))?;
    tmp.persist(path)
}

/// For a process about to exit on a signal: removes every pending temporary file and keeps any
/// later rename from happening (the registry stays locked for the rest of the process's life).
/// Returns the paths removed.
pub fn abandon_pending_writes() -> Vec<PathBuf> {
    let set = pending();
    let removed: Vec<PathBuf> = set.iter().cloned().collect();
    for p in &removed {
        let _ = std::fs::remove_file(p);
    }
    std::mem::forget(set);
    removed
}

/// How many temporary files are pending now (for tests).
pub fn pending_count() -> usize {
    pending().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_whole_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.bin");
        write_atomic(&p, |f| std::io::Write::write_all(f, b"one")).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        let err = write_atomic(&p, |f| {
            std::io::Write::write_all(f, b"half")?;
            Err(std::io::Error::other("interrupted"))
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"one", "old content kept");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
    }
}
