//! A dataset as one sub-folder per class (the Keras / torchvision ImageFolder convention).

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::inputs::list_images;
use crate::error::{Error, Result};

/// Labelled image paths; class names are the sorted folder names.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClassFolders {
    /// The class names: the sub-folders' names, sorted.
    pub classes: Vec<String>,
    /// `(path, class index)`, sorted by class then path.
    pub items: Vec<(PathBuf, usize)>,
}

fn data_err(dir: &Path, message: String) -> Error {
    Error::input(
        dir.to_path_buf(),
        crate::error::InputErrorKind::Malformed,
        message,
    )
}

impl ClassFolders {
    /// Scans `dir`: every sub-folder is a class, every image below it (recursively) a sample.
    /// An empty class, a single class or no images at all is an error.
    pub fn scan(dir: &Path) -> Result<ClassFolders> {
        Self::scan_min(dir, 2)
    }

    /// [`ClassFolders::scan`] of labelled images for anything but training a classifier: a
    /// single class is fine to score a model on (`eval`: how well it finds that one class) or
    /// to extract features of (`features --data`).
    pub fn scan_labelled(dir: &Path) -> Result<ClassFolders> {
        Self::scan_min(dir, 1)
    }

    fn scan_min(dir: &Path, min_classes: usize) -> Result<ClassFolders> {
        let entries = std::fs::read_dir(dir).map_err(|e| Error::read(dir, e))?;
        let mut class_dirs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        class_dirs.sort();
        if class_dirs.is_empty() {
            return Err(data_err(
                dir,
                "has no class sub-folders; expected one folder of images per class (DIR/cat/*.jpg, DIR/dog/*.jpg, ...)".into(),
            ));
        }
        let mut out = ClassFolders::default();
        let mut empty = Vec::new();
        for (ci, cdir) in class_dirs.iter().enumerate() {
            let name = cdir
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            let files = list_images(cdir);
            if files.is_empty() {
                empty.push(name.clone());
            }
            out.items.extend(files.into_iter().map(|p| (p, ci)));
            out.classes.push(name);
        }
        if out.items.is_empty() {
            return Err(data_err(
                dir,
                "holds no images (jpg, png, bmp, gif, tiff, webp) in its class folders".into(),
            ));
        }
        if !empty.is_empty() {
            return Err(data_err(
                dir,
                format!("class folder(s) with no images: {}", empty.join(", ")),
            ));
        }
        if out.classes.len() < min_classes {
            return Err(data_err(
                dir,
                format!(
                    "has a single class ('{}'); training a classifier needs at least two",
                    out.classes[0]
                ),
            ));
        }
        Ok(out)
    }

    /// Samples per class, in class order.
    pub fn count_per_class(&self) -> Vec<usize> {
        let mut n = vec![0; self.classes.len()];
        for (_, c) in &self.items {
            n[*c] += 1;
        }
        n
    }

    /// Stratified split: about `fraction` of each class (at least one image when the class has
    /// two or more) goes to validation, chosen with `seed`. Returns (train, validation).
    pub fn split(&self, fraction: f64, seed: u64) -> (ClassFolders, ClassFolders) {
        let labels: Vec<usize> = self.items.iter().map(|(_, c)| *c).collect();
        let (tr, va) = stratified_split(&labels, self.classes.len(), fraction, seed);
        let pick = |idx: Vec<usize>| ClassFolders {
            classes: self.classes.clone(),
            items: idx.into_iter().map(|i| self.items[i].clone()).collect(),
        };
        (pick(tr), pick(va))
    }
}

/// Indices (train, validation), both sorted: about `fraction` of each class to validation (at
/// least one of a class with two or more samples, never all of a class), chosen with `seed`.
pub fn stratified_split(
    labels: &[usize],
    classes: usize,
    fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for c in 0..classes {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == c).collect();
        idx.shuffle(&mut rng);
        let mut n_val = (idx.len() as f64 * fraction).round() as usize;
        if fraction > 0.0 && n_val == 0 && idx.len() >= 2 {
            n_val = 1;
        }
        n_val = n_val.min(idx.len().saturating_sub(1));
        val.extend_from_slice(&idx[..n_val]);
        train.extend_from_slice(&idx[n_val..]);
    }
    train.sort_unstable();
    val.sort_unstable();
    (train, val)
}
