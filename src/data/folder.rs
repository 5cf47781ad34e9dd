//! A dataset as one sub-folder per class (the Keras / torchvision ImageFolder convention).

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::data::inputs::is_image_path;
use crate::error::{Error, Result};

/// Labelled image paths; class names are the sorted folder names.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClassFolders {
    pub classes: Vec<String>,
    /// `(path, class index)`, sorted by class then path.
    pub items: Vec<(PathBuf, usize)>,
}

fn data_err(dir: &Path, message: String) -> Error {
    Error::Input {
        path: dir.to_path_buf(),
        message,
    }
}

impl ClassFolders {
    /// Scans `dir`: every sub-folder is a class, every image below it (recursively) a sample.
    /// An empty class, a single class or no images at all is an error.
    pub fn scan(dir: &Path) -> Result<ClassFolders> {
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
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
            let mut files: Vec<PathBuf> = walkdir::WalkDir::new(cdir)
                .follow_links(true)
                .into_iter()
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_file() && is_image_path(e.path()))
                .map(|e| e.into_path())
                .collect();
            files.sort();
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
        if out.classes.len() < 2 {
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
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut train = ClassFolders {
            classes: self.classes.clone(),
            items: Vec::new(),
        };
        let mut val = train.clone();
        for c in 0..self.classes.len() {
            let mut items: Vec<&(PathBuf, usize)> =
                self.items.iter().filter(|(_, k)| *k == c).collect();
            items.shuffle(&mut rng);
            let mut n_val = (items.len() as f64 * fraction).round() as usize;
            if fraction > 0.0 && n_val == 0 && items.len() >= 2 {
                n_val = 1;
            }
            n_val = n_val.min(items.len().saturating_sub(1));
            for (i, item) in items.into_iter().enumerate() {
                if i < n_val {
                    val.items.push(item.clone());
                } else {
                    train.items.push(item.clone());
                }
            }
        }
        train.items.sort();
        val.items.sort();
        (train, val)
    }
}
