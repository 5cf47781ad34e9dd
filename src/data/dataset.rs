//! Where a run's labelled images are, one resolution for every command that reads class
//! folders (`train-head --data`, `features --data`, `eval --data`): the data folder as given
//! (one sub-folder per class), or a split dataset (`DIR/train` and `DIR/val`, each with the
//! class folders) recognised as one, and the layouts that would otherwise label by the wrong
//! "classes" refused with a hint: class folders one level down, and `train/` + `val/` holding
//! images directly (a "train" vs "val" model).
//!
//! Class folders are scanned recursively (`cat/2019/*.jpg` is a cat), so without this
//! `DIR` holding `train/` and `val/` silently trained a two-class "train vs val" model, and
//! `features --data DIR` exported the classes "train" and "val".

use std::path::{Path, PathBuf};

use super::inputs::is_image_path;
use crate::error::{Error, Result};

/// The names a split dataset's validation folder goes by (torchvision/ImageNet `val`, Kaggle's
/// `valid`, Keras' `validation`), in the order they are looked for.
pub const VAL_NAMES: [&str; 3] = ["val", "valid", "validation"];

/// Where the training and validation images of a run are.
#[derive(Clone, Debug, PartialEq)]
pub struct DataDirs {
    /// The training folder (one sub-folder per class).
    pub train: PathBuf,
    /// The validation folder: the one given, a split dataset's, or none (a split of `train`).
    pub val: Option<PathBuf>,
    /// `train` and `val` are `DIR/train` and `DIR/val` of a split dataset `DIR`.
    pub split_dataset: bool,
}

fn sub_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn has_images(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.filter_map(|e| e.ok())
            .any(|e| e.path().is_file() && is_image_path(&e.path()))
    })
}

fn name(p: &Path) -> String {
    p.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// Resolves `data` (and the validation folder, if one was given): a split dataset gives its
/// `train/` and `val/`; class folders that hold no images, only the same sub-folders, are
/// refused (the classes are one level down). An unreadable or plain class-folder `data` is
/// returned as is, for [`ClassFolders::scan`](super::ClassFolders::scan) to check.
pub fn resolve(data: &Path, val: Option<&Path>) -> Result<DataDirs> {
    let dirs = sub_dirs(data);
    let find = |n: &str| dirs.iter().find(|d| name(d) == n);
    let split_val = VAL_NAMES.iter().find_map(|n| find(n));
    if let (Some(train), Some(split_val)) = (find("train"), split_val) {
        if has_images(train) && has_images(split_val) {
            return Err(Error::input(
                data.to_path_buf(),
                crate::error::InputErrorKind::Malformed,
                format!(
                    "its train/ and {v}/ hold images directly, which would label them as two \
                     classes \"train\" and \"{v}\"; a split dataset's train/ and {v}/ each hold \
                     one folder per class (train/cat/1.jpg, {v}/cat/2.jpg)",
                    v = name(split_val)
                ),
            ));
        }
        if !sub_dirs(train).is_empty() && !has_images(train) {
            if let Some(v) = val {
                return Err(Error::input(
                    data.to_path_buf(),
                    crate::error::InputErrorKind::Malformed,
                    format!(
                        "is a split dataset (train/ and {}/), whose {} is the validation set, \
                         but a validation folder {} was given too; give the dataset alone, or \
                         {} as the training data with your validation folder",
                        name(split_val),
                        split_val.display(),
                        v.display(),
                        train.display()
                    ),
                ));
            }
            return Ok(DataDirs {
                train: train.clone(),
                val: Some(split_val.clone()),
                split_dataset: true,
            });
        }
    }
    check_not_nested(data, &dirs)?;
    Ok(DataDirs {
        train: data.to_path_buf(),
        val: val.map(Path::to_path_buf),
        split_dataset: false,
    })
}

/// Refuses class folders that hold no images of their own, only one set of sub-folders
/// (`DIR/train/cat`, `DIR/test/cat`, or a lone `DIR/images/cat`): the classes are a level down.
/// Class folders with differently named sub-folders (`cat/2019`, `dog/indoor`) are fine.
fn check_not_nested(data: &Path, dirs: &[PathBuf]) -> Result<()> {
    if dirs.is_empty() || dirs.iter().any(|d| has_images(d)) {
        return Ok(());
    }
    let names = |d: &Path| sub_dirs(d).iter().map(|s| name(s)).collect::<Vec<_>>();
    let first = names(&dirs[0]);
    if first.len() < 2 || dirs.iter().any(|d| names(d) != first) {
        return Ok(());
    }
    let folders: Vec<String> = dirs.iter().map(|d| name(d)).collect();
    let hint = if dirs.len() == 1 {
        format!("use {} as the data folder", dirs[0].display())
    } else {
        let train = dirs.iter().find(|d| name(d) == "train").unwrap_or(&dirs[0]);
        format!(
            "it looks split into {}: train on one (e.g. {}) and validate on another",
            folders.join(", "),
            train.display()
        )
    };
    Err(Error::input(
        data.to_path_buf(),
        crate::error::InputErrorKind::Malformed,
        format!(
            "its folder(s) {} hold no images, only the same sub-folders {}: the class folders are \
             one level down; {hint} (a folder with train/ and val/ is read as a split dataset)",
            folders.join(", "),
            first.join(", ")
        ),
    ))
}
