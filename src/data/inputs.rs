//! Turning command-line paths into an ordered list of inputs.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

const IMAGE_EXTS: &[&str] = &["jpg", "jpeg", "png", "bmp", "gif", "tif", "tiff", "webp"];

/// Where one input comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputSource {
    /// An image file.
    Image(PathBuf),
    /// Item `index` of a preprocessed `[N, 3, H, W]` float32 `.npy` batch.
    NpyItem(PathBuf, usize),
}

/// One input, in the order the user gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputItem {
    /// Where the input comes from.
    pub source: InputSource,
}

impl InputItem {
    /// How outputs name the input (the path; `path[index]` for a `.npy` item).
    pub fn name(&self) -> String {
        match &self.source {
            InputSource::Image(p) => p.display().to_string(),
            InputSource::NpyItem(p, i) => format!("{}[{i}]", p.display()),
        }
    }
}

/// Whether `p` has an image extension the input pipeline reads (.jpg, .jpeg, .png, .bmp, .gif, .tif, .tiff, .webp).
pub fn is_image_path(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTS.contains(&e.to_ascii_lowercase().as_str()))
}

fn is_npy(p: &Path) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"))
}

/// Every image file below `dir` (recursively, following links), sorted by path. Entries with an
/// image extension that are not regular files (a FIFO, a socket, a dangling link) are listed
/// too, not skipped silently: each then fails when it is read, named and counted with the
/// inputs that failed (reading refuses what is not a regular file, see
/// `fsutil::read_regular`).
pub fn list_images(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .into_iter()
        .filter_map(|e| match e {
            Ok(e) if e.file_type().is_dir() => None,
            Ok(e) => Some(e.into_path()),
            // A dangling link (its target cannot be stat'ed); not a link loop, which is a
            // folder's problem, nor an unreadable folder.
            Err(e) if e.loop_ancestor().is_none() && e.depth() > 0 => {
                e.path().map(Path::to_path_buf)
            }
            Err(_) => None,
        })
        .filter(|p| is_image_path(p))
        .collect();
    found.sort();
    found
}

/// Reads the shape of a `.npy` batch without loading it.
pub fn npy_batch_shape(path: &Path) -> Result<[usize; 4]> {
    let file = std::fs::File::open(path).map_err(|e| Error::read(path, e))?;
    let npy = npyz::NpyFile::new(std::io::BufReader::new(file)).map_err(|e| {
        Error::input(
            path.to_path_buf(),
            crate::error::InputErrorKind::Malformed,
            format!("not a valid .npy file: {e}"),
        )
    })?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    if let npyz::DType::Plain(ts) = npy.dtype() {
        let kind = match ts.type_char() {
            npyz::TypeChar::Float => None,
            npyz::TypeChar::Int | npyz::TypeChar::Uint | npyz::TypeChar::Bool => {
                Some("an integer type")
            }
            _ => Some("not a floating-point type"),
        };
        if let Some(kind) = kind {
            return Err(Error::input(
                path.to_path_buf(),
                crate::error::InputErrorKind::Malformed,
                format!(
                    "dtype {ts} is {kind}; an input batch must hold preprocessed (normalised) \
                     float32 values of shape [N, 3, H, W] (float16 and float64 are converted); \
                     raw 0-255 pixels should be given as image files instead"
                ),
            ));
        }
    } else {
        return Err(Error::input(
            path.to_path_buf(),
            crate::error::InputErrorKind::Malformed,
            "a structured dtype; an input batch must be float32 [N, 3, H, W]",
        ));
    }
    match shape.as_slice() {
        [n, 3, h, w] => Ok([*n, 3, *h, *w]),
        [3, h, w] => Ok([1, 3, *h, *w]),
        _ => Err(Error::input(
            path.to_path_buf(),
            crate::error::InputErrorKind::Malformed,
            format!(
                "expected a preprocessed float32 batch of shape [N, 3, H, W] (NCHW), found {shape:?}"
            ),
        )),
    }
}

/// Loads a `.npy` batch: (`[N, 3, H, W]`, data). A NaN or infinite value is refused, naming
/// the first item that holds one (it would silently become a probability).
pub fn load_npy_batch(path: &Path) -> Result<([usize; 4], Vec<f32>)> {
    let shape = npy_batch_shape(path)?;
    let mut t = crate::weights::read_tensors(path)?;
    let data = t.remove(0).data.map_err(|why| {
        Error::input(
            path.to_path_buf(),
            crate::error::InputErrorKind::Malformed,
            why,
        )
    })?;
    if let Some(at) = data.iter().position(|v| !v.is_finite()) {
        let per_item = (shape[1] * shape[2] * shape[3]).max(1);
        let (item, offset) = (at / per_item, at % per_item);
        let (c, y, x) = (
            offset / (shape[2] * shape[3]),
            offset / shape[3] % shape[2],
            offset % shape[3],
        );
        return Err(Error::input(
            path.to_path_buf(),
            crate::error::InputErrorKind::Malformed,
            format!(
                "item {item} holds {} at [channel {c}, y {y}, x {x}]; input values must be finite",
                data[at]
            ),
        ));
    }
    Ok((shape, data))
}

/// Expands files and folders (walked recursively, sorted by path) into inputs, in order.
/// `.npy` batches are read and checked in full here (they are read again when used).
pub fn collect_inputs(paths: &[PathBuf]) -> Result<Vec<InputItem>> {
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| Error::read(path, e))?;
        if meta.is_dir() {
            out.extend(list_images(path).into_iter().map(|p| InputItem {
                source: InputSource::Image(p),
            }));
        } else if is_npy(path) && meta.is_file() {
            // Checked whole here (dtype, shape, finite values), so a bad batch stops the run
            // before any work, like every other unusable argument.
            let ([n, ..], _) = load_npy_batch(path)?;
            out.extend((0..n).map(|i| InputItem {
                source: InputSource::NpyItem(path.clone(), i),
            }));
        } else {
            // Anything else, a FIFO too, is an image to read: reading refuses what is not a
            // regular file, as a failed input (fsutil::read_regular).
            out.push(InputItem {
                source: InputSource::Image(path.clone()),
            });
        }
    }
    Ok(out)
}
