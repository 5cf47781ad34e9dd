//! Class names: the 1000 ImageNet names shipped in `assets/`, or the user's own list.

use std::path::Path;

use crate::error::{Error, Result};

/// ImageNet-1k class names in index order (from torchvision; see `assets/README.md`).
pub const IMAGENET: &str = include_str!("../assets/imagenet_classes.txt");

pub fn imagenet() -> Vec<String> {
    IMAGENET.lines().map(str::to_string).collect()
}

/// One name per line; blank trailing lines ignored.
pub fn read_labels(path: &Path) -> Result<Vec<String>> {
    let text = crate::fsutil::read_file_capped(path, crate::fsutil::MAX_TEXT_BYTES)?;
    Ok(text
        .trim_end()
        .lines()
        .map(|l| l.trim().to_string())
        .collect())
}

/// Names for `classes` outputs: the given list (which must match), ImageNet's for 1000
/// classes, else `class 0`, `class 1`, ...
pub fn names_for(classes: usize, given: Option<(Vec<String>, &Path)>) -> Result<Vec<String>> {
    match given {
        Some((names, _)) if names.len() == classes => Ok(names),
        Some((names, path)) => Err(Error::Input {
            path: path.to_path_buf(),
            message: format!(
                "has {} labels but the model has {classes} classes",
                names.len()
            ),
        }),
        None if classes == 1000 => Ok(imagenet()),
        None => Ok((0..classes).map(|i| format!("class {i}")).collect()),
    }
}
