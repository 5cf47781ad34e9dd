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

/// Whether process `pid` is alive (on this machine). A process we may not signal is alive;
/// where this cannot be told (not unix), every process is taken as alive, so nothing is removed.
fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    #[cfg(unix)]
    {
        let Ok(p) = libc::pid_t::try_from(pid) else {
            return true;
        };
        // SAFETY: kill(2) with signal 0 sends nothing, it only checks that `p` exists.
        let r = unsafe { libc::kill(p, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    true
}

/// The process id in the name of a temporary file of `key` (`.alexnet-{key}-{pid}-XXXXXX{suffix}`,
/// `suffix` usually `.tmp`, the six characters tempfile's), or `None` when `name` is not one.
fn temp_owner(name: &str, key: &str, suffix: &str) -> Option<u32> {
    let rest = name
        .strip_prefix(".alexnet-")?
        .strip_prefix(key)?
        .strip_prefix('-')?;
    let (pid, rest) = rest.split_once('-')?;
    let random = rest.strip_suffix(suffix)?;
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if random.len() != 6 || !random.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    pid.parse().ok()
}

/// Removes the temporary files of `key` in `dir` left by processes that are gone (a kill -9, a
/// power cut: no handler ran). Those of live processes are kept, ours included, so a run never
/// touches the temporary files of another run writing now; a key names one final file (or one
/// run's cache), so other parts' files are never candidates. Returns the paths removed.
pub fn remove_stale_temps(dir: &Path, key: &str) -> Vec<PathBuf> {
    remove_stale_temps_with_suffix(dir, key, ".tmp")
}

/// [`remove_stale_temps`] of temporary files named with `suffix` instead of `.tmp`
/// ([`PendingFile::keyed_with_suffix`]: a download keeps its format's extension, which the
/// reader dispatches on).
pub fn remove_stale_temps_with_suffix(dir: &Path, key: &str, suffix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| temp_owner(n, key, suffix)) else {
            continue;
        };
        if !process_alive(pid) && std::fs::remove_file(e.path()).is_ok() {
            log::info!("removed {}, left by process {pid}", e.path().display());
            removed.push(e.path());
        }
    }
    removed
}

/// The key of the temporary files of `dest`: its file name.
pub fn temp_key(dest: &Path) -> String {
    dest.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A temporary file beside its destination, removed on drop and on [`abandon_pending_writes`].
///
/// Named `.alexnet-{key}-{pid}-XXXXXX.tmp` ([`PendingFile::keyed`]): a kill -9 runs no
/// handler, and a later run of the same work (same key) removes what dead processes left
/// ([`remove_stale_temps`]) while leaving alone the files of runs still going.
pub struct PendingFile {
    tmp: Option<tempfile::NamedTempFile>,
    path: PathBuf,
}

impl PendingFile {
    /// A new temporary file in `dir`, named `{prefix}XXXXXX{suffix}`.
    pub fn new_in(dir: &Path, prefix: &str, suffix: &str) -> Result<PendingFile> {
        // The registry is locked before the file exists and until it is registered: a signal
        // handler's abandon_pending_writes() that comes in between waits for the insert and
        // removes the file, rather than missing one created a moment before.
        let mut set = pending();
        let mut builder = tempfile::Builder::new();
        builder.prefix(prefix).suffix(suffix);
        // Outputs get the mode other tools give new files (0666 less the umask, applied by
        // open(2)), not tempfile's private 0600.
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        let tmp = builder.tempfile_in(dir).map_err(|e| Error::io(dir, e))?;
        let path = tmp.path().to_path_buf();
        set.insert(path.clone());
        drop(set);
        Ok(PendingFile {
            tmp: Some(tmp),
            path,
        })
    }

    /// A new temporary file in `dir` for `key` (a destination's file name, see [`temp_key`]),
    /// after removing the stale ones of `key` there.
    pub fn keyed(dir: &Path, key: &str) -> Result<PendingFile> {
        PendingFile::keyed_with_suffix(dir, key, ".tmp")
    }

    /// [`PendingFile::keyed`] named `.alexnet-{key}-{pid}-XXXXXX{suffix}`, after removing the
    /// stale ones of `key` with that suffix.
    pub fn keyed_with_suffix(dir: &Path, key: &str, suffix: &str) -> Result<PendingFile> {
        remove_stale_temps_with_suffix(dir, key, suffix);
        PendingFile::new_in(
            dir,
            &format!(".alexnet-{key}-{}-", std::process::id()),
            suffix,
        )
    }

    /// [`PendingFile::keyed`] beside `dest`, keyed by its file name.
    pub fn for_dest(dest: &Path) -> Result<PendingFile> {
        PendingFile::keyed(&parent_dir(dest), &temp_key(dest))
    }

    /// The temporary file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary file, to write to.
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
    let mut tmp = PendingFile::for_dest(path)?;
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

/// The most bytes read from a small text file: class names (1000 ImageNet names are 10 KB), a
/// part manifest, the tuner's cache.
pub const MAX_TEXT_BYTES: u64 = 16 << 20;

/// The most bytes read from a list of paths (`--list`, `-`, `--pairs`): ten million paths of
/// a hundred bytes.
pub const MAX_LIST_BYTES: u64 = 1 << 30;

/// The longest line of a list of paths (Linux's PATH_MAX is 4096; two paths and a separator
/// in a `--pairs` line fit many times over).
pub const MAX_LIST_LINE: u64 = 64 << 10;

fn too_big(source: &Path, message: String) -> Error {
    Error::input(
        source.to_path_buf(),
        crate::error::InputErrorKind::TooLarge,
        message,
    )
}

/// Reads a whole UTF-8 text of at most `cap` bytes from `reader` (`source` names it in errors).
/// Every text file the tools read goes through this or [`read_lines_capped`]: before, `--labels
/// /dev/zero` grew a string until the process was killed for memory.
pub fn read_text_capped(reader: impl std::io::Read, source: &Path, cap: u64) -> Result<String> {
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(reader, cap + 1), &mut bytes)
        .map_err(|e| Error::read(source, e))?;
    if bytes.len() as u64 > cap {
        return Err(too_big(
            source,
            format!(
                "is over {cap} bytes, the most read from a text file here (is it the right file?)"
            ),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        Error::input(
            source,
            crate::error::InputErrorKind::Malformed,
            format!("is not UTF-8 text: {e}"),
        )
    })
}

/// [`read_text_capped`] of the file at `path`.
pub fn read_file_capped(path: &Path, cap: u64) -> Result<String> {
    let f = File::open(path).map_err(|e| Error::read(path, e))?;
    read_text_capped(f, path, cap)
}

/// The lines of a list (a trailing `\n` and `\r` removed), each at most [`MAX_LIST_LINE`] bytes
/// and all together at most [`MAX_LIST_BYTES`]: each line is read through its own `take`, so a
/// file without newlines (`/dev/zero`) is refused after one line's worth, not after a gigabyte.
pub fn read_lines_capped(mut reader: impl std::io::BufRead, source: &Path) -> Result<Vec<String>> {
    let (mut out, mut total, mut buf) = (Vec::new(), 0u64, Vec::new());
    loop {
        buf.clear();
        let n = std::io::BufRead::read_until(
            &mut std::io::Read::take(&mut reader, MAX_LIST_LINE + 1),
            b'\n',
            &mut buf,
        )
        .map_err(|e| Error::read(source, e))? as u64;
        if n == 0 {
            return Ok(out);
        }
        total += n;
        if n > MAX_LIST_LINE {
            return Err(too_big(
                source,
                format!(
                    "line {} is over {MAX_LIST_LINE} bytes (a list has one path per line; is it \
                     the right file?)",
                    out.len() + 1
                ),
            ));
        }
        if total > MAX_LIST_BYTES {
            return Err(too_big(
                source,
                format!("is over {MAX_LIST_BYTES} bytes, the most read from a list"),
            ));
        }
        let line = std::str::from_utf8(&buf).map_err(|e| {
            Error::input(
                source,
                crate::error::InputErrorKind::Malformed,
                format!("line {}: not UTF-8 text: {e}", out.len() + 1),
            )
        })?;
        let line = line.strip_suffix('\n').unwrap_or(line);
        out.push(line.strip_suffix('\r').unwrap_or(line).to_string());
    }
}

/// What kind of file `meta` describes, for messages about files that are not regular.
fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
    }
    if t.is_dir() {
        "a folder"
    } else {
        "not a regular file"
    }
}

/// The metadata of the regular file at `path` (links followed); anything else refused before
/// it is opened: opening a FIFO blocks until something writes to it (before this, `classify W
/// fifo.jpg` hung forever), and a device such as `/dev/zero` never ends.
pub fn regular_file(path: &Path) -> Result<std::fs::Metadata> {
    let meta = std::fs::metadata(path).map_err(|e| match std::fs::read_link(path) {
        Ok(target) if e.kind() == std::io::ErrorKind::NotFound => Error::input(
            path.to_path_buf(),
            crate::error::InputErrorKind::NotFound,
            format!(
                "is a dangling symbolic link (to {}, which does not exist)",
                target.display()
            ),
        ),
        _ => Error::read(path, e),
    })?;
    if !meta.is_file() {
        return Err(Error::input(
            path.to_path_buf(),
            crate::error::InputErrorKind::NotAFile,
            format!(
                "is {}, not a regular file; inputs are read whole",
                kind_of(&meta)
            ),
        ));
    }
    Ok(meta)
}

/// Reads a whole input file, refusing anything that is not a regular file (see
/// [`regular_file`]).
pub fn read_regular(path: &Path) -> Result<Vec<u8>> {
    regular_file(path)?;
    std::fs::read(path).map_err(|e| Error::read(path, e))
}

/// [`read_regular`] of a file of at most `cap` bytes (checked before reading, and again while
/// reading, for a file that grows): every weights file is read through this.
pub fn read_regular_capped(path: &Path, cap: u64) -> Result<Vec<u8>> {
    let meta = regular_file(path)?;
    let over = || {
        Error::input(
            path.to_path_buf(),
            crate::error::InputErrorKind::TooLarge,
            format!("is over {cap} bytes, the most read from a file of this kind"),
        )
    };
    if meta.len() > cap {
        return Err(over());
    }
    let f = File::open(path).map_err(|e| Error::read(path, e))?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::io::Read::read_to_end(&mut std::io::Read::take(f, cap + 1), &mut bytes)
        .map_err(|e| Error::read(path, e))?;
    if bytes.len() as u64 > cap {
        return Err(over());
    }
    Ok(bytes)
}

/// Opens a regular file for reading (see [`regular_file`]).
pub fn open_regular(path: &Path) -> Result<File> {
    regular_file(path)?;
    File::open(path).map_err(|e| Error::read(path, e))
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

    #[test]
    fn stale_temps_of_dead_processes_are_removed_and_only_those() {
        let dir = tempfile::tempdir().unwrap();
        // A process that has exited (its pid is free until reused, unlikely within the test).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let me = std::process::id();
        let files = [
            (format!(".alexnet-part.jsonl-{dead}-aB3xYz.tmp"), true),
            // Alive: ours; another key; not our naming.
            (format!(".alexnet-part.jsonl-{me}-aB3xYz.tmp"), false),
            (format!(".alexnet-part.jsonl.x-{dead}-aB3xYz.tmp"), false),
            (format!(".alexnet-part.jsonl-{dead}-aB3xYz.tmp.keep"), false),
            ("part.jsonl".to_string(), false),
        ];
        for (n, _) in &files {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        assert_eq!(temp_owner(&files[0].0, "part.jsonl", ".tmp"), Some(dead));
        let removed = remove_stale_temps(dir.path(), "part.jsonl");
        assert_eq!(removed, vec![dir.path().join(&files[0].0)]);
        for (n, gone) in &files {
            assert_eq!(!dir.path().join(n).exists(), *gone, "{n}");
        }
        // A new write of the same destination removes the stale ones first.
        std::fs::write(dir.path().join(&files[0].0), b"x").unwrap();
        write_atomic(&dir.path().join("part.jsonl"), |f| {
            std::io::Write::write_all(f, b"y")
        })
        .unwrap();
        assert!(!dir.path().join(&files[0].0).exists());
    }
}
