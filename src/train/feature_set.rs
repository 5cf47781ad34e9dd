//! The cached rows training reads: activations `[len, dim]` with their labels, paths and class
//! names, saved to and loaded from `.npz`.

use std::path::Path;

use crate::error::{Error, Result};
use crate::weights::{read_strings, read_tensors, write_npz, NpzEntry};

/// The key of a feature file naming the layer its rows come from.
pub const LAYER_KEY: &str = "layer";

/// The layer whose rows a feature file for training holds.
const TRAINED_FROM: &str = "pool5";

/// Cached activations with their labels: `features` is `[len, dim]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FeatureSet {
    /// `len * dim` floats, row-major.
    pub features: Vec<f32>,
    /// Floats per row.
    pub dim: usize,
    /// Each row's class.
    pub labels: Vec<usize>,
    /// Each row's source image.
    pub paths: Vec<String>,
    /// The class names.
    pub classes: Vec<String>,
}

impl FeatureSet {
    /// Rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.features[i * self.dim..(i + 1) * self.dim]
    }

    /// Writes `features` `[N, dim]` f32, `labels` `[N]` i64, `paths` and `classes` (strings),
    /// and `layer` (one string: where the rows were taken, `pool5`, `fc6` or `fc7`).
    pub fn save(&self, path: &Path, layer: &str) -> Result<()> {
        let labels: Vec<i64> = self.labels.iter().map(|&l| l as i64).collect();
        let shape = [self.len(), self.dim];
        let lshape = [self.len()];
        write_npz(
            path,
            &[
                ("features".into(), NpzEntry::F32(&shape, &self.features)),
                ("labels".into(), NpzEntry::I64(&lshape, &labels)),
                ("paths".into(), NpzEntry::Str(&self.paths)),
                ("classes".into(), NpzEntry::Str(&self.classes)),
                (LAYER_KEY.into(), NpzEntry::Str(&[layer.to_string()])),
            ],
        )
    }

    /// Reads a file of pool5 rows written by [`FeatureSet::save`], or by numpy with only
    /// `features` and `labels`: without `classes` the classes are named `0`..`k-1` (k = the
    /// largest label + 1), without `paths` the rows have none. Training starts from pool5, so
    /// a file whose `layer` says otherwise (fc6 or fc7 rows) is refused; a file without
    /// `layer` (numpy's, or written before the key existed) holds pool5 rows.
    pub fn load(path: &Path) -> Result<FeatureSet> {
        let bad = |m: String| {
            Error::input(
                path.to_path_buf(),
                crate::error::InputErrorKind::Malformed,
                m,
            )
        };
        if let Some(layer) = read_strings(path, LAYER_KEY)? {
            if layer != [TRAINED_FROM] {
                return Err(bad(format!(
                    "holds {} features (its '{LAYER_KEY}'), expected {TRAINED_FROM} features: \
                     training starts from pool5 (extract the features at layer pool5)",
                    layer.join(", ")
                )));
            }
        }
        let classes = read_strings(path, "classes")?;
        let paths = read_strings(path, "paths")?.unwrap_or_default();
        let mut features = None;
        let mut labels = None;
        for t in read_tensors(path)? {
            match t.key.as_str() {
                "features" => features = Some(t),
                "labels" => labels = Some(t),
                _ => {}
            }
        }
        let f = features.ok_or_else(|| bad("no 'features' array".into()))?;
        if f.shape.len() != 2 {
            return Err(bad(format!(
                "'features': expected shape [N, F], found {:?}",
                f.shape
            )));
        }
        let data = f.data.map_err(|e| bad(format!("'features': {e}")))?;
        // Labels are integers: read them directly (read_tensors refuses integer weights).
        let n = f.shape[0];
        let labels: Vec<usize> = match labels {
            Some(_) => read_labels(path)?,
            None => return Err(bad("no 'labels' array".into())),
        };
        if labels.len() != n {
            return Err(bad(format!("{} labels for {n} feature rows", labels.len())));
        }
        let classes = match classes {
            Some(c) => c,
            None => {
                // Classes 0..=max, each needing rows: more classes than rows cannot be (and a
                // label of 2^40 would name 2^40 classes), so refuse before naming them.
                let k = labels.iter().max().map_or(0, |&m| m.saturating_add(1));
                if k > n {
                    return Err(bad(format!(
                        "label {} makes {k} classes (0..{}, no 'classes' array) but there are                          only {n} rows: classes without rows cannot train",
                        k - 1,
                        k - 1
                    )));
                }
                (0..k).map(|c| c.to_string()).collect()
            }
        };
        if let Some(l) = labels.iter().find(|&&l| l >= classes.len()) {
            return Err(bad(format!("label {l} but only {} classes", classes.len())));
        }
        // Two classes of one name could never be told apart by the names the model keeps.
        let mut seen = std::collections::BTreeSet::new();
        if let Some(c) = classes.iter().find(|c| !seen.insert(c.as_str())) {
            return Err(bad(format!(
                "class '{c}' is named more than once in 'classes'"
            )));
        }
        // A NaN or infinite feature turns every loss and weight it touches into NaN.
        let dim = f.shape[1];
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(bad(format!(
                "'features' holds a NaN or infinite value (row {}, column {})",
                i / dim.max(1),
                i % dim.max(1)
            )));
        }
        Ok(FeatureSet {
            features: data,
            dim: f.shape[1],
            labels,
            paths,
            classes,
        })
    }
}

impl FeatureSet {
    /// Fails unless at least two classes have rows: a one-class "classifier" trains to 100%
    /// accuracy and says nothing (class folders are refused the same way, by
    /// [`crate::data::ClassFolders::scan`]). `path` is the file the set came from, for the
    /// message.
    pub fn check_trainable(&self, path: &Path) -> Result<()> {
        let mut rows = vec![0usize; self.classes.len()];
        for &l in &self.labels {
            if let Some(n) = rows.get_mut(l) {
                *n += 1;
            }
        }
        let with_rows: Vec<&str> = self
            .classes
            .iter()
            .zip(&rows)
            .filter(|(_, &n)| n > 0)
            .map(|(c, _)| c.as_str())
            .collect();
        let message = match (with_rows.len(), self.classes.len()) {
            (0, _) => "has no rows".to_string(),
            (1, 1) => format!(
                "has a single class ('{}'); training a classifier needs at least two",
                with_rows[0]
            ),
            (1, k) => format!(
                "has rows of a single class ('{}', of {k} classes); training a classifier needs at least two",
                with_rows[0]
            ),
            _ => {
                let empty: Vec<String> = self
                    .classes
                    .iter()
                    .zip(&rows)
                    .filter(|(_, &n)| n == 0)
                    .map(|(c, _)| format!("'{c}'"))
                    .collect();
                if empty.is_empty() {
                    return Ok(());
                }
                let shown = empty[..empty.len().min(5)].join(", ");
                format!(
                    "has {} of {} classes without rows ({shown}{}): their outputs would never \
                     train; remove them from 'classes'",
                    empty.len(),
                    self.classes.len(),
                    if empty.len() > 5 { ", ..." } else { "" }
                )
            }
        };
        Err(Error::input(
            path.to_path_buf(),
            crate::error::InputErrorKind::Malformed,
            message,
        ))
    }
}

fn read_labels(path: &Path) -> Result<Vec<usize>> {
    let file = crate::fsutil::open_regular(path)?;
    let mut npz = npyz::npz::NpzArchive::new(std::io::BufReader::new(file))
        .map_err(|e| Error::io(path, e))?;
    let npy = npz
        .by_name("labels")
        .map_err(|e| Error::io(path, e))?
        .ok_or_else(|| {
            Error::input(
                path.to_path_buf(),
                crate::error::InputErrorKind::Malformed,
                "no 'labels' array",
            )
        })?;
    let v: Vec<i64> = npy.into_vec().map_err(|e| {
        Error::input(
            path.to_path_buf(),
            crate::error::InputErrorKind::Malformed,
            format!("'labels' must be int64: {e}"),
        )
    })?;
    v.into_iter()
        .map(|l| {
            usize::try_from(l).map_err(|_| {
                Error::input(
                    path.to_path_buf(),
                    crate::error::InputErrorKind::Malformed,
                    format!("negative label {l}"),
                )
            })
        })
        .collect()
}
