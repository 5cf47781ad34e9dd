//! What a path argument is on disk, for [`super::check`]: the regular-file checks of inputs and
//! outputs, where an output that may not exist yet would be (through symlinks), a list file's
//! entries and an ONNX file's external data files.

use std::path::{Path, PathBuf};

use anyhow::bail;

/// `path` with its nearest existing ancestor canonicalized (the rest appended as given): where
/// an output that may not exist yet would be, through symlinks.
pub(super) fn resolved(path: &Path) -> Option<PathBuf> {
    let path = std::path::absolute(path).ok()?;
    let mut base = path.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(base) {
            return Some(rest.iter().rev().fold(real, |p, c| p.join(c)));
        }
        rest.push(base.file_name()?.to_os_string());
        base = base.parent()?;
    }
}

/// What kind of thing `meta` is, for a refusal.
pub(super) fn kind(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
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
    if meta.is_dir() {
        "a folder"
    } else {
        "not a regular file"
    }
}

/// An input read whole must be a regular file (or, for weights, a folder of `.npy`): a FIFO
/// would block the run, `/dev/zero` never ends. A missing file is the command's to report.
pub(super) fn regular_input(label: &str, path: &Path, folder_ok: bool) -> anyhow::Result<()> {
    if let Ok(meta) = std::fs::metadata(path) {
        if !(meta.is_file() || folder_ok && meta.is_dir()) {
            bail!(
                "{label} {}: is {}, not a regular file; it is read whole",
                path.display(),
                kind(&meta)
            );
        }
    }
    Ok(())
}

/// An output that exists must be a regular file: it is written beside and renamed over, which
/// would replace a FIFO or a device node (as root, even `/dev/null`).
pub(super) fn regular_output(label: &str, path: &Path) -> anyhow::Result<()> {
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.is_dir() {
            bail!(
                "{label} {}: is a folder, expected a file name",
                path.display()
            );
        }
        if !meta.is_file() {
            bail!(
                "{label} {}: is {}, not a regular file; outputs are written to a new file and renamed into place",
                path.display(),
                kind(&meta)
            );
        }
    }
    Ok(())
}

/// The paths a list names (errors are the command's to report when it reads the list).
pub(super) fn list_entries(path: &Path, pairs: bool) -> Vec<PathBuf> {
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let Ok(lines) = alexnet_wgpu::fsutil::read_lines_capped(std::io::BufReader::new(file), path)
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in &lines {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if pairs {
            let parts: Vec<&str> = if line.contains('\t') {
                line.split('\t').filter(|s| !s.is_empty()).collect()
            } else {
                line.split_whitespace().collect()
            };
            out.extend(parts.into_iter().map(PathBuf::from));
        } else {
            out.push(PathBuf::from(line));
        }
    }
    out
}

/// The external data files an `.onnx` names (none for other formats, or when the model cannot
/// be read: the loader then says why).
pub(super) fn external_data(path: &Path) -> Vec<PathBuf> {
    let onnx = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
    if !onnx || !path.is_file() {
        return Vec::new();
    }
    alexnet_wgpu::weights::onnx::external_data_files(path).unwrap_or_default()
}
