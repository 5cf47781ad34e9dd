//! Class names: the 1000 ImageNet names shipped in `assets/`, or the user's own list.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// ImageNet-1k class names in index order (from torchvision; see `assets/README.md`).
pub const IMAGENET: &str = include_str!("../assets/imagenet_classes.txt");

/// The 1000 ImageNet class names, in torchvision's order.
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

/// Class names handed to a run, and the file they came from (`None`: a library caller's list),
/// for the error when their count does not match the network's outputs.
#[derive(Clone, Debug)]
pub struct GivenNames {
    /// The names.
    pub names: Vec<String>,
    /// The file they came from, if any.
    pub from: Option<PathBuf>,
}

impl GivenNames {
    /// A list from the caller.
    pub fn listed(names: Vec<String>) -> Self {
        GivenNames { names, from: None }
    }

    /// A `--labels` file: one name per line.
    pub fn read(path: &Path) -> Result<Self> {
        Ok(GivenNames {
            names: read_labels(path)?,
            from: Some(path.to_path_buf()),
        })
    }
}

/// The one class-name resolution (the library facade and `alexnet classify` both ask it):
/// `listed` (the caller's list or a `--labels` file) wins; else the model file's own (a
/// train-head model keeps its class folders' names in its metadata); else none, and
/// [`names_for`] falls back to ImageNet's or `class i`. A model file whose metadata cannot be
/// read is an error, not a silent fall-back to default names.
pub fn given(listed: Option<GivenNames>, model_file: Option<&Path>) -> Result<Option<GivenNames>> {
    if listed.is_some() {
        return Ok(listed);
    }
    let Some(path) = model_file else {
        return Ok(None);
    };
    Ok(
        crate::weights::meta::ModelMeta::read(path)?.map(|m| GivenNames {
            names: m.classes,
            from: Some(path.to_path_buf()),
        }),
    )
}

/// Names for `classes` outputs: the given list (which must match), ImageNet's for 1000
/// classes, else `class 0`, `class 1`, ...
pub fn names_for(classes: usize, given: Option<GivenNames>) -> Result<Vec<String>> {
    match given {
        Some(g) if g.names.len() == classes => Ok(g.names),
        Some(GivenNames {
            names,
            from: Some(path),
        }) => Err(Error::input(
            path,
            crate::error::InputErrorKind::Malformed,
            format!(
                "has {} labels but the model has {classes} classes",
                names.len()
            ),
        )),
        Some(GivenNames { names, from: None }) => Err(Error::Invalid(format!(
            "{} class names for a network with {classes} outputs",
            names.len()
        ))),
        None if classes == 1000 => Ok(imagenet()),
        None => Ok((0..classes).map(|i| format!("class {i}")).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_list_then_the_defaults() {
        let two = GivenNames::listed(vec!["a".into(), "b".into()]);
        assert_eq!(names_for(2, Some(two.clone())).unwrap(), ["a", "b"]);
        assert!(names_for(3, Some(two))
            .unwrap_err()
            .to_string()
            .contains("2 class names for a network with 3 outputs"));
        let filed = GivenNames {
            names: vec!["a".into()],
            from: Some(PathBuf::from("l.txt")),
        };
        let e = names_for(2, Some(filed)).unwrap_err().to_string();
        assert!(
            e.contains("l.txt") && e.contains("1 labels but the model has 2"),
            "{e}"
        );
        assert_eq!(names_for(1000, None).unwrap()[0], imagenet()[0]);
        assert_eq!(names_for(2, None).unwrap(), ["class 0", "class 1"]);
        // A list given wins over the model file, which is then not even read.
        let listed = GivenNames::listed(vec!["x".into()]);
        let g = given(Some(listed), Some(Path::new("/no/such/model.npz"))).unwrap();
        assert_eq!(g.unwrap().names, ["x"]);
        assert!(given(None, None).unwrap().is_none());
    }
}
