//! The LPIPS fixtures' trunk weights (tests/fixtures/lpips/README.md): a full-width
//! torchvision `features` trunk regenerated bit for bit from the documented integer formula,
//! so no 10 MB weights file is committed.

use std::path::{Path, PathBuf};

use alexnet_wgpu::weights::{write_npz, NpzEntry};

/// `(key, OIHW shape, fan_in)` of conv layer l = 0..4 of the formula.
pub const TRUNK: [(&str, [usize; 4]); 5] = [
    ("features.0", [64, 3, 11, 11]),
    ("features.3", [192, 64, 5, 5]),
    ("features.6", [384, 192, 3, 3]),
    ("features.8", [256, 384, 3, 3]),
    ("features.10", [256, 256, 3, 3]),
];

/// The fixture README's hash: u in [0, 1) from element `i` of layer stream `stream`.
pub fn hash_u(i: u64, stream: u64) -> f64 {
    let mut x = (i + 1)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// conv1..conv5 `(weight, bias)` by the formula.
pub fn trunk_params() -> Vec<(Vec<f32>, Vec<f32>)> {
    TRUNK
        .iter()
        .enumerate()
        .map(|(l, (_, shape))| {
            let l = l as u64;
            let fan_in: usize = shape[1..].iter().product();
            let a = (3.0 / fan_in as f64).sqrt();
            let n: usize = shape.iter().product();
            let w = (0..n as u64)
                .map(|i| ((hash_u(i, l + 1) - 0.5) * 2.0 * a) as f32)
                .collect();
            let b = (0..shape[0] as u64)
                .map(|o| ((hash_u(o, l + 101) - 0.5) * 0.1) as f32)
                .collect();
            (w, b)
        })
        .collect()
}

/// The formula's trunk as a torchvision-named `.npz` (what `--weights` takes).
pub fn trunk_npz(dir: &Path) -> PathBuf {
    let params = trunk_params();
    let path = dir.join("trunk.npz");
    let bias_shapes: Vec<[usize; 1]> = TRUNK.iter().map(|(_, s)| [s[0]]).collect();
    let mut entries = Vec::new();
    for (l, (key, shape)) in TRUNK.iter().enumerate() {
        entries.push((format!("{key}.weight"), NpzEntry::F32(shape, &params[l].0)));
        entries.push((
            format!("{key}.bias"),
            NpzEntry::F32(&bias_shapes[l], &params[l].1),
        ));
    }
    write_npz(&path, &entries).unwrap();
    path
}
