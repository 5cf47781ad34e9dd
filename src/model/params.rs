//! The validated parameter set: raw tensors from any weights file, checked against a preset
//! (inferred from the key names and shapes when not given), mapped from the file's key names and
//! converted to our canonical layout (conv OIHW, dense `[out, in]` over the NCHW flatten order).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::naming::{self, Scheme};
use super::{Arch, Layer, NetSpec, Shape, Widths};
use crate::error::{Error, Result};
use crate::weights::{write_npz, NpzEntry, RawTensor};

/// `(file key, file shape, data)` of one parameter.
pub type FileTensor = (String, Vec<usize>, Vec<f32>);

/// Weights in our layout, by canonical name (`conv1.weight` ... `fc8.bias`).
#[derive(Clone, Debug)]
pub struct Weights {
    /// The preset.
    pub arch: Arch,
    /// The channel counts.
    pub widths: Widths,
    /// Canonical name (`conv1.weight`) -> values in our layout.
    pub tensors: BTreeMap<String, Vec<f32>>,
    /// Where they came from (for messages).
    pub source: PathBuf,
    /// The naming scheme of the source file.
    pub scheme: Scheme,
    /// Max pools round their output size up (Caffe's pooling), as an ONNX file said.
    pub pool_ceil: bool,
}

impl Weights {
    /// The network these weights describe.
    pub fn spec(&self) -> NetSpec {
        let mut spec = self.arch.spec(&self.widths);
        if self.pool_ceil {
            for l in &mut spec.layers {
                if let Layer::MaxPool { ceil, .. } = l {
                    *ceil = true;
                }
            }
        }
        spec
    }

    /// Deterministic random weights (He-scaled normal-ish uniform), for benchmarks and tests.
    pub fn random(arch: Arch, widths: Widths, seed: u64) -> Result<Weights> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let spec = arch.spec(&widths);
        let mut tensors = BTreeMap::new();
        for (name, shape) in spec.param_shapes()? {
            let len: usize = shape.iter().product();
            let data = if name.ends_with(".bias") {
                (0..len).map(|_| rng.random_range(-0.05f32..0.05)).collect()
            } else {
                let fan_in: usize = shape[1..].iter().product();
                let a = (6.0 / fan_in as f32).sqrt();
                (0..len).map(|_| rng.random_range(-a..a)).collect()
            };
            tensors.insert(name, data);
        }
        Ok(Weights {
            arch,
            widths,
            tensors,
            source: PathBuf::from(format!("<random seed {seed}>")),
            scheme: Scheme::for_arch(arch),
            pool_ceil: false,
        })
    }

    /// The tensor `name` (panics when absent: validated weights hold every one).
    pub fn get(&self, name: &str) -> &[f32] {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("weights were validated but '{name}' is missing"))
    }

    /// Writes the weights with the names and layout of the file they came from (PyTorch layout
    /// with torchvision or Caffe names, or Keras layout and names), atomically, followed by
    /// `extra` entries (metadata).
    pub fn save_npz(&self, path: &Path, extra: Vec<(String, NpzEntry<'_>)>) -> Result<()> {
        self.save_npz_as(path, self.scheme, extra)
    }

    /// As [`Weights::save_npz`] in the given naming scheme.
    pub fn save_npz_as(
        &self,
        path: &Path,
        scheme: Scheme,
        extra: Vec<(String, NpzEntry<'_>)>,
    ) -> Result<()> {
        let converted = self.file_tensors(scheme)?;
        let mut entries: Vec<(String, NpzEntry<'_>)> = converted
            .iter()
            .map(|(k, s, d)| (k.clone(), NpzEntry::F32(s, d)))
            .collect();
        entries.extend(extra);
        write_npz(path, &entries)
    }

    /// `(file key, file shape, data)` of every parameter in the names and layout of `scheme`.
    pub fn file_tensors(&self, scheme: Scheme) -> Result<Vec<FileTensor>> {
        let spec = self.spec();
        let shapes = spec.param_shapes()?;
        let flat_src = flatten_source(&spec)?;
        let first_dense = shapes
            .iter()
            .find(|(n, _)| n.starts_with("fc"))
            .map(|(n, _)| n.clone());
        Ok(shapes
            .iter()
            .map(|(name, shape)| {
                let nhwc = (Some(name) == first_dense.as_ref())
                    .then_some(flat_src)
                    .flatten();
                (
                    scheme.file_key(name),
                    naming::file_shape(scheme, shape),
                    naming::from_our_layout(scheme, shape, self.get(name), nhwc),
                )
            })
            .collect())
    }
}

/// Per-image shape of the feature map that the first dense layer flattens.
pub fn flatten_source(spec: &NetSpec) -> Result<Option<[usize; 3]>> {
    let infos = spec.infer()?;
    Ok(spec
        .layers
        .iter()
        .zip(&infos)
        .find(|(l, _)| matches!(l, Layer::Flatten))
        .and_then(|(_, info)| match info.input {
            Shape::Map(m) => Some(m),
            Shape::Flat(_) => None,
        }))
}

fn shape_str(s: &[usize]) -> String {
    format!(
        "[{}]",
        s.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Guesses the preset when the user gave none.
fn infer_arch(mapped: &MappedTensors<'_>) -> Arch {
    let scheme = mapped.scheme;
    let out_ch = |name: &str| {
        mapped
            .raw(name)
            .and_then(|t| naming::out_channels(scheme, &t.shape))
    };
    let in_ch = |name: &str| {
        mapped
            .raw(name)
            .and_then(|t| naming::in_channels(scheme, &t.shape))
    };
    match scheme {
        Scheme::Torchvision => Arch::Torchvision,
        Scheme::Caffe | Scheme::Keras => {
            // Grouped conv2 (input channels = conv1's / 2) is the BVLC net; a 64-wide conv1 in
            // Keras layout is torchvision's net exported by Keras; the rest is the plain net.
            match (out_ch("conv1.weight"), in_ch("conv2.weight")) {
                (Some(c1), Some(i2)) if i2 * 2 == c1 => Arch::Caffe,
                (Some(64), _) => Arch::Torchvision,
                _ => Arch::Keras,
            }
        }
    }
}

/// The tensors of one weights file with its naming scheme detected and its keys mapped to our
/// canonical names: the one place where file names and layouts become ours, used by whole
/// weight files ([`from_raw`]) and by partial ones (a head to start training from).
pub struct MappedTensors<'a> {
    /// The file.
    pub path: &'a Path,
    /// Its naming scheme.
    pub scheme: Scheme,
    /// Canonical name (`conv1.weight`, or `?key` for a key in the scheme's namespace that maps
    /// to no parameter) -> the file's key.
    pub mapping: BTreeMap<String, String>,
    by_key: BTreeMap<&'a str, &'a RawTensor>,
}

impl<'a> MappedTensors<'a> {
    /// Detects the naming scheme of `raw` (read from `path`) and maps its keys.
    pub fn new(path: &'a Path, raw: &'a [RawTensor]) -> Result<Self> {
        let keys: Vec<&str> = raw.iter().map(|t| t.key.as_str()).collect();
        let scheme = Scheme::detect(&keys).ok_or_else(|| {
            Error::input(
                path.to_path_buf(),
                crate::error::InputErrorKind::Malformed,
                format!(
                "no AlexNet weights recognised among the keys [{}]; expected torchvision names \
                 (features.0.weight ...), Caffe names (conv1.weight ... fc8.bias) or Keras names \
                 (conv2d/kernel ... dense_2/bias)",
                keys.iter().take(12).cloned().collect::<Vec<_>>().join(", ")
            ),
            )
        })?;
        let mapping = naming::map_keys(scheme, &keys);
        let by_key = raw.iter().map(|t| (t.key.as_str(), t)).collect();
        Ok(MappedTensors {
            path,
            scheme,
            mapping,
            by_key,
        })
    }

    /// The raw tensor mapped to canonical name `canon`, if the file has one.
    pub fn raw(&self, canon: &str) -> Option<&'a RawTensor> {
        self.mapping
            .get(canon)
            .and_then(|k| self.by_key.get(k.as_str()).copied())
    }

    /// The file's keys, in key order.
    pub fn keys(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.by_key.keys().copied()
    }

    /// Parameter `canon` of our `shape`, checked (shape, finite values) and converted to our
    /// layout: `Ok(None)` when the file does not have it, `Err` with the problem otherwise.
    /// `nhwc_source` is the `[C, H, W]` map a Keras dense kernel flattens (fc6's rows).
    pub fn convert(
        &self,
        canon: &str,
        shape: &[usize],
        nhwc_source: Option<[usize; 3]>,
    ) -> std::result::Result<Option<Vec<f32>>, String> {
        let Some(t) = self.raw(canon) else {
            return Ok(None);
        };
        let key = &t.key;
        let data = t
            .data
            .as_ref()
            .map_err(|why| format!("key '{key}': {why}"))?;
        let want = naming::file_shape(self.scheme, shape);
        if t.shape != want {
            return Err(format!(
                "key '{key}': expected shape {}, found {}",
                shape_str(&want),
                shape_str(&t.shape)
            ));
        }
        if let Some(bad) = data.iter().position(|v| !v.is_finite()) {
            return Err(format!(
                "key '{key}': holds a non-finite value ({}) at flat index {bad}",
                data[bad]
            ));
        }
        let nhwc = nhwc_source.filter(|_| self.scheme == Scheme::Keras);
        Ok(Some(naming::to_our_layout(self.scheme, shape, data, nhwc)))
    }
}

/// Checks raw tensors against the preset and converts them; reports every problem at once.
pub fn from_raw(path: &Path, raw: Vec<RawTensor>, arch: Option<Arch>) -> Result<Weights> {
    let mapped = MappedTensors::new(path, &raw)?;
    let scheme = mapped.scheme;
    // torchvision's names belong to torchvision's net alone (the Caffe and Keras names are
    // also used for the other nets, in either layout): another preset would silently build a
    // different network from the file's widths.
    if let (Scheme::Torchvision, Some(a)) = (scheme, arch) {
        if a != Arch::Torchvision {
            return Err(Error::WeightMismatch {
                path: path.to_path_buf(),
                arch: a.to_string(),
                problems: vec![format!(
                    "the keys are torchvision's names (features.0.weight ... classifier.6.bias), \
                     which only the 'torchvision' network has, not the '{a}' one asked for; \
                     load it without naming a preset, or as 'torchvision'"
                )],
            });
        }
    }
    let arch = arch.unwrap_or_else(|| infer_arch(&mapped));

    // Widths come from the file (so reduced-width and k-class models load); gaps keep defaults.
    let mut widths = arch.default_widths();
    for (i, slot) in widths.conv.iter_mut().enumerate() {
        if let Some(c) = mapped
            .raw(&format!("conv{}.weight", i + 1))
            .and_then(|t| naming::out_channels(scheme, &t.shape))
        {
            *slot = c;
        }
    }
    for (name, slot) in [
        ("fc6", &mut widths.fc6),
        ("fc7", &mut widths.fc7),
        ("fc8", &mut widths.classes),
    ] {
        let from_weight = mapped
            .raw(&format!("{name}.weight"))
            .and_then(|t| naming::out_channels(scheme, &t.shape));
        let from_bias = mapped
            .raw(&format!("{name}.bias"))
            .and_then(|t| (t.shape.len() == 1).then_some(t.shape[0]));
        if let Some(n) = from_weight.or(from_bias) {
            *slot = n;
        }
    }

    let spec = arch.spec(&widths);
    let expected = spec.param_shapes().map_err(|e| Error::WeightMismatch {
        path: path.to_path_buf(),
        arch: arch.to_string(),
        problems: vec![format!(
            "the channel counts found in the file do not chain: {e}"
        )],
    })?;
    let flat_src = flatten_source(&spec)?;
    let first_dense = first_dense_weight(&expected);

    let mut problems = Vec::new();
    let mut tensors = BTreeMap::new();
    for (canon, shape) in &expected {
        let nhwc = (Some(canon) == first_dense.as_ref())
            .then_some(flat_src)
            .flatten();
        match mapped.convert(canon, shape, nhwc) {
            Ok(Some(data)) => {
                tensors.insert(canon.clone(), data);
            }
            Ok(None) => problems.push(format!(
                "missing key '{}' (expected shape {})",
                scheme.file_key(canon),
                shape_str(&naming::file_shape(scheme, shape))
            )),
            Err(problem) => problems.push(problem),
        }
    }
    let mapped_keys: std::collections::BTreeSet<&str> =
        mapped.mapping.values().map(String::as_str).collect();
    let expected_names: std::collections::BTreeSet<&str> =
        expected.iter().map(|(n, _)| n.as_str()).collect();
    for (canon, key) in &mapped.mapping {
        if !expected_names.contains(canon.as_str()) {
            problems.push(format!(
                "unexpected key '{key}' (the '{arch}' network has no such parameter)"
            ));
        }
    }
    for k in mapped.keys() {
        if !mapped_keys.contains(k) && !naming::is_metadata_key(k) {
            problems.push(format!("unexpected key '{k}'"));
        }
    }
    if !problems.is_empty() {
        return Err(Error::WeightMismatch {
            path: path.to_path_buf(),
            arch: arch.to_string(),
            problems,
        });
    }
    Ok(Weights {
        arch,
        widths,
        tensors,
        source: path.to_path_buf(),
        scheme,
        pool_ceil: false,
    })
}

/// The name of the first dense layer's weight (the one whose rows follow the flatten order).
fn first_dense_weight(shapes: &[(String, Vec<usize>)]) -> Option<String> {
    shapes
        .iter()
        .find(|(n, _)| n.starts_with("fc"))
        .map(|(n, _)| n.clone())
}
