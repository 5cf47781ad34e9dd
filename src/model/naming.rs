//! Key names and tensor layouts of the three weight conventions.

use std::collections::BTreeMap;

use super::Arch;

/// How a weights file names and lays out its tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// `features.0.weight` ... `classifier.6.bias`, PyTorch layout.
    Torchvision,
    /// `conv1.weight` ... `fc8.bias`, PyTorch layout.
    Caffe,
    /// `conv2d/kernel` ... `dense_2/bias` (optionally `model/` prefixed, `:0` suffixed), Keras
    /// layout: conv kernels HWIO, dense kernels `[in, out]` over the NHWC flatten order.
    Keras,
}

const CANON_LAYERS: [&str; 8] = [
    "conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8",
];
const TORCHVISION_KEYS: [&str; 8] = [
    "features.0",
    "features.3",
    "features.6",
    "features.8",
    "features.10",
    "classifier.1",
    "classifier.4",
    "classifier.6",
];

/// Keys a model file may carry besides the weights (class names, metadata).
pub fn is_metadata_key(key: &str) -> bool {
    key.starts_with("meta/") || key.starts_with("meta.") || key.starts_with("__")
}

/// `sequential/conv2d_3/kernel:0` -> (`conv2d_3`, `kernel`).
fn keras_parts(key: &str) -> Option<(&str, &str)> {
    let key = key.strip_suffix(":0").unwrap_or(key);
    let mut parts = key.rsplit('/');
    let leaf = parts.next()?;
    let layer = parts.next()?;
    matches!(leaf, "kernel" | "bias").then_some((layer, leaf))
}

/// `conv2d` -> 0, `conv2d_4` -> 4 for layers of the given Keras base name.
fn keras_index(layer: &str, base: &str) -> Option<usize> {
    let rest = layer.strip_prefix(base)?;
    if rest.is_empty() {
        return Some(0);
    }
    rest.strip_prefix('_')?.parse().ok()
}

impl Scheme {
    /// The naming scheme most of `keys` follow (None when no AlexNet keys are recognised).
    pub fn detect(keys: &[&str]) -> Option<Scheme> {
        let count = |f: &dyn Fn(&str) -> bool| keys.iter().filter(|k| f(k)).count();
        let tv = count(&|k| k.starts_with("features.") || k.starts_with("classifier."));
        let caffe = count(&|k| CANON_LAYERS.iter().any(|l| k.starts_with(&format!("{l}."))));
        let keras = count(&|k| {
            keras_parts(k).is_some_and(|(l, _)| {
                keras_index(l, "conv2d")
                    .or(keras_index(l, "dense"))
                    .is_some()
            })
        });
        let best = [
            (tv, Scheme::Torchvision),
            (caffe, Scheme::Caffe),
            (keras, Scheme::Keras),
        ]
        .into_iter()
        .max_by_key(|(n, _)| *n)?;
        (best.0 > 0).then_some(best.1)
    }

    /// The scheme a preset's own files use.
    pub fn for_arch(arch: Arch) -> Scheme {
        match arch {
            Arch::Torchvision => Scheme::Torchvision,
            Arch::Caffe => Scheme::Caffe,
            Arch::Keras => Scheme::Keras,
        }
    }

    /// The standard file key for a canonical name (`conv2.weight` -> `features.3.weight`).
    pub fn file_key(self, canon: &str) -> String {
        let (layer, leaf) = canon.split_once('.').unwrap_or((canon, ""));
        let idx = CANON_LAYERS.iter().position(|l| *l == layer);
        match (self, idx) {
            (Scheme::Torchvision, Some(i)) => format!("{}.{leaf}", TORCHVISION_KEYS[i]),
            (Scheme::Keras, Some(i)) => {
                let (base, n) = if i < 5 {
                    ("conv2d", i)
                } else {
                    ("dense", i - 5)
                };
                let name = if n == 0 {
                    base.to_string()
                } else {
                    format!("{base}_{n}")
                };
                format!("{name}/{}", if leaf == "weight" { "kernel" } else { leaf })
            }
            _ => canon.to_string(),
        }
    }
}

/// Canonical name (`conv1.weight` ... `fc8.bias`) -> the file's key, for the keys that map.
/// Keras layers are matched by order of their auto-numbered names, so a model built after
/// others (`conv2d_5` ... `conv2d_9`) maps too.
pub fn map_keys(scheme: Scheme, keys: &[&str]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match scheme {
        Scheme::Torchvision | Scheme::Caffe => {
            for key in keys {
                for canon_layer in CANON_LAYERS {
                    for leaf in ["weight", "bias"] {
                        let canon = format!("{canon_layer}.{leaf}");
                        if scheme.file_key(&canon) == *key {
                            out.insert(canon, key.to_string());
                        }
                    }
                }
                // Anything else in the scheme's namespace is reported as unexpected.
                if !out.values().any(|v| v == key)
                    && (key.starts_with("features.") || key.starts_with("classifier."))
                {
                    out.insert(format!("?{key}"), key.to_string());
                }
            }
        }
        Scheme::Keras => {
            for (base, first) in [("conv2d", 0usize), ("dense", 5usize)] {
                let mut layers: Vec<(usize, &str)> = keys
                    .iter()
                    .filter_map(|k| keras_parts(k))
                    .filter_map(|(l, _)| keras_index(l, base).map(|i| (i, l)))
                    .collect();
                layers.sort();
                layers.dedup();
                let slots = if base == "conv2d" { 5 } else { 3 };
                for (pos, (_, layer)) in layers.iter().enumerate() {
                    for key in keys {
                        let Some((l, leaf)) = keras_parts(key) else {
                            continue;
                        };
                        if l != *layer {
                            continue;
                        }
                        let canon = if pos < slots {
                            let leaf = if leaf == "kernel" { "weight" } else { "bias" };
                            format!("{}.{leaf}", CANON_LAYERS[first + pos])
                        } else {
                            format!("?{key}")
                        };
                        out.insert(canon, key.to_string());
                    }
                }
            }
        }
    }
    out
}

/// The shape the file must have for a parameter of our shape.
pub fn file_shape(scheme: Scheme, ours: &[usize]) -> Vec<usize> {
    match (scheme, ours) {
        (Scheme::Keras, [o, i, kh, kw]) => vec![*kh, *kw, *i, *o],
        (Scheme::Keras, [o, i]) => vec![*i, *o],
        _ => ours.to_vec(),
    }
}

/// Output channels of a weight tensor as stored in the file.
pub fn out_channels(scheme: Scheme, shape: &[usize]) -> Option<usize> {
    match (scheme, shape) {
        (Scheme::Keras, [_, _, _, o]) | (Scheme::Keras, [_, o]) => Some(*o),
        (Scheme::Keras, _) => None,
        (_, [o, ..]) if shape.len() >= 2 => Some(*o),
        _ => None,
    }
}

/// Input channels (per group) of a weight tensor as stored in the file.
pub fn in_channels(scheme: Scheme, shape: &[usize]) -> Option<usize> {
    match (scheme, shape) {
        (Scheme::Keras, [_, _, i, _]) | (Scheme::Keras, [i, _]) => Some(*i),
        (Scheme::Keras, _) => None,
        (_, [_, i, ..]) => Some(*i),
        _ => None,
    }
}

/// For a Keras-layout tensor of our `shape`, the Keras flat index of each of our elements, in
/// our order (None: the layouts agree). `nhwc_source` is the `[C, H, W]` map a Keras dense
/// kernel flattens in NHWC order: its rows map to our NCHW order.
fn keras_indices(
    scheme: Scheme,
    shape: &[usize],
    nhwc_source: Option<[usize; 3]>,
) -> Option<Vec<usize>> {
    match (scheme, shape) {
        (Scheme::Keras, &[o, i, kh, kw]) => {
            let mut idx = Vec::with_capacity(o * i * kh * kw);
            for co in 0..o {
                for ci in 0..i {
                    for y in 0..kh {
                        for x in 0..kw {
                            idx.push(((y * kw + x) * i + ci) * o + co);
                        }
                    }
                }
            }
            Some(idx)
        }
        (Scheme::Keras, &[o, i]) => {
            let row_of = |ours: usize| match nhwc_source {
                Some([c, h, w]) if c * h * w == i => (ours % (h * w)) * c + ours / (h * w),
                _ => ours,
            };
            Some(
                (0..o)
                    .flat_map(|oo| (0..i).map(move |k| row_of(k) * o + oo))
                    .collect(),
            )
        }
        _ => None,
    }
}

/// Converts a tensor of our `shape` from the file's layout (see `keras_indices`).
pub fn to_our_layout(
    scheme: Scheme,
    shape: &[usize],
    data: &[f32],
    nhwc_source: Option<[usize; 3]>,
) -> Vec<f32> {
    match keras_indices(scheme, shape, nhwc_source) {
        Some(idx) => idx.iter().map(|&k| data[k]).collect(),
        None => data.to_vec(),
    }
}

/// The inverse of [`to_our_layout`]: our tensor in the file layout of `scheme`.
pub fn from_our_layout(
    scheme: Scheme,
    shape: &[usize],
    data: &[f32],
    nhwc_source: Option<[usize; 3]>,
) -> Vec<f32> {
    match keras_indices(scheme, shape, nhwc_source) {
        Some(idx) => {
            let mut out = vec![0f32; data.len()];
            for (ours, &k) in idx.iter().enumerate() {
                out[k] = data[ours];
            }
            out
        }
        None => data.to_vec(),
    }
}
