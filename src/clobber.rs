//! Refusing, before any work, an output that would overwrite one of the run's inputs or
//! another output of the same run.
//!
//! Every writer replaces its destination by rename ([`crate::fsutil::write_atomic`]), so an
//! output named like an input destroys the input only at the end of the run, after all the
//! work: `classify --logits-out photo.png photo.png` would leave a `.npy` named `photo.png`,
//! `features --out W.npz` would replace the weights. Commands therefore hand their inputs and
//! outputs to [`check_outputs`] first.
//!
//! Two paths are the same file when their canonical paths are equal (symbolic links and `..`
//! resolved; for a file that does not exist yet its folder is resolved and its name kept) or,
//! on Unix, when both exist with the same (device, inode) (hard links). The labels the caller
//! gives (flag names in the binary) only go into the messages.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// What identifies a file: its canonical path and, when it exists, its (device, inode).
#[derive(Clone, Debug)]
pub struct FileId {
    canonical: PathBuf,
    inode: Option<(u64, u64)>,
}

impl FileId {
    /// The identity of the file at `path` (its canonical path and, where the platform has them, device and inode).
    pub fn of(path: &Path) -> FileId {
        FileId {
            canonical: canonical(path),
            inode: inode(path),
        }
    }

    /// Whether both name the same file.
    pub fn same(&self, other: &FileId) -> bool {
        self.canonical == other.canonical || (self.inode.is_some() && self.inode == other.inode)
    }
}

/// Whether `a` and `b` name the same file (or would, once written).
pub fn same_file(a: &Path, b: &Path) -> bool {
    FileId::of(a).same(&FileId::of(b))
}

/// The canonical path of `path`; for a path that does not exist (an output not written yet,
/// or a dangling link) its folder's canonical path joined with its name; failing that, the
/// absolute path as written.
fn canonical(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    let dir = crate::fsutil::parent_dir(path);
    match (std::fs::canonicalize(&dir), path.file_name()) {
        (Ok(d), Some(name)) => d.join(name),
        _ => std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
    }
}

#[cfg(unix)]
fn inode(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn inode(_path: &Path) -> Option<(u64, u64)> {
    None
}

fn shown(label: &str, path: &Path) -> String {
    if label.is_empty() {
        path.display().to_string()
    } else {
        format!("{label} {}", path.display())
    }
}

/// Fails when an output is one of `inputs` or is named by another output too. `inputs` and
/// `outputs` are (label, path), the label a flag name or empty for a positional argument; the
/// error names both labels and paths. Inputs that are
/// folders are compared as well (an output cannot replace a folder, but the message is
/// clearer than the write's error at the end of the run).
pub fn check_outputs(inputs: &[(&str, &Path)], outputs: &[(&str, &Path)]) -> Result<()> {
    let ins: Vec<FileId> = inputs.iter().map(|(_, p)| FileId::of(p)).collect();
    let outs: Vec<FileId> = outputs.iter().map(|(_, p)| FileId::of(p)).collect();
    for (i, ((olabel, opath), oid)) in outputs.iter().zip(&outs).enumerate() {
        if let Some(((ilabel, ipath), _)) = inputs.iter().zip(&ins).find(|(_, id)| id.same(oid)) {
            return Err(Error::Invalid(format!(
                "{} would overwrite the input {}: choose another output file",
                shown(olabel, opath),
                shown(ilabel, ipath)
            )));
        }
        if let Some(((label2, path2), _)) =
            outputs[..i].iter().zip(&outs).find(|(_, id)| id.same(oid))
        {
            return Err(Error::Invalid(format!(
                "{} and {} name the same file: one output would replace the other; give each its own file",
                shown(label2, path2),
                shown(olabel, opath)
            )));
        }
    }
    Ok(())
}

/// [`check_outputs`] against many inputs (every file of an input folder or list): only the
/// inputs with the file name of an output are compared, so a list of millions costs no
/// file-system calls. (A hard link under another name is not caught here; the explicit
/// inputs of a command go through [`check_outputs`], which does catch it.)
pub fn check_outputs_by_name<'a>(
    label: &str,
    inputs: impl IntoIterator<Item = &'a Path>,
    outputs: &[(&str, &Path)],
) -> Result<()> {
    let names: Vec<_> = outputs.iter().filter_map(|(_, p)| p.file_name()).collect();
    let candidates: Vec<&Path> = inputs
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| names.contains(&n)))
        .collect();
    let labelled: Vec<(&str, &Path)> = candidates.iter().map(|p| (label, *p)).collect();
    check_outputs(&labelled, outputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_file_through_links_and_dot_dot() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("a.npz"), b"x").unwrap();
        assert!(same_file(&d.join("a.npz"), &d.join("sub/../a.npz")));
        // Not written yet: the folder is resolved, the name kept.
        assert!(same_file(&d.join("new.npy"), &d.join("sub/../new.npy")));
        assert!(!same_file(&d.join("a.npz"), &d.join("b.npz")));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(d.join("a.npz"), d.join("link.npz")).unwrap();
            assert!(same_file(&d.join("link.npz"), &d.join("a.npz")));
            std::fs::hard_link(d.join("a.npz"), d.join("hard.npz")).unwrap();
            assert!(same_file(&d.join("hard.npz"), &d.join("a.npz")));
        }
    }

    #[test]
    fn messages_name_the_labels_and_paths() {
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path().join("w.npz");
        std::fs::write(&w, b"x").unwrap();
        let e = check_outputs(&[("--weights", &w)], &[("--out", &w)])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--out") && e.contains("--weights") && e.contains("w.npz"),
            "{e}"
        );
        let x = dir.path().join("x.npy");
        let e = check_outputs(&[], &[("--logits-out", &x), ("--features-out", &x)])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--logits-out") && e.contains("--features-out"),
            "{e}"
        );
        let y = dir.path().join("y.npy");
        check_outputs(
            &[("--weights", &w)],
            &[("--logits-out", &x), ("--features-out", &y)],
        )
        .unwrap();
    }
}
