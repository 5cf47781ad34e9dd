//! The house rules, checked on the source: each top-level module imports only the layers
//! below it (so each can be read alone, from `error` up to `cli`), none reaches itself through
//! `crate::`, and no source file grows past 600 lines.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Top-level modules, bottom up, with the modules each may import (`crate::NAME`).
const LAYERS: &[(&str, &[&str])] = &[
    ("error", &[]),
    // Runtime options (matmul path, limits, validation): plain values, carried by the context.
    ("options", &["error"]),
    ("fsutil", &["error"]),
    ("clobber", &["error", "fsutil"]),
    ("gpu", &["error", "options"]),
    ("kernels", &["error", "gpu", "options"]),
    ("weights", &["error", "fsutil"]),
    // Class names: a list, ImageNet's, or a train-head model file's own (its metadata).
    ("labels", &["error", "fsutil", "weights"]),
    // Decoding and preprocessing know no network: the GPU side of the decode/GPU pipeline
    // (`data::stream::GpuStage`) is implemented by `model`, and the preset transforms are
    // plain values that `model` picks per preset.
    ("data", &["error", "fsutil", "weights"]),
    (
        "model",
        &[
            "error", "fsutil", "gpu", "kernels", "weights", "options", "data",
        ],
    ),
    (
        "train",
        &[
            "error", "fsutil", "gpu", "kernels", "weights", "model", "data", "options",
        ],
    ),
    (
        "fetch",
        &["error", "fsutil", "clobber", "weights", "model", "data"],
    ),
    (
        "shard",
        &["error", "fsutil", "weights", "model", "data", "clobber"],
    ),
    (
        "lpips",
        &[
            "error", "fsutil", "gpu", "kernels", "weights", "model", "data",
        ],
    ),
    (
        "fine_tune",
        &[
            "error", "fsutil", "gpu", "kernels", "weights", "model", "data", "train", "labels",
            "options",
        ],
    ),
    (
        "selftest",
        &[
            "error", "gpu", "kernels", "weights", "model", "data", "train", "lpips", "options",
        ],
    ),
    // The facade, over everything but the binary.
    (
        "api",
        &[
            "error",
            "options",
            "fsutil",
            "labels",
            "gpu",
            "kernels",
            "weights",
            "model",
            "data",
            "train",
            "fetch",
            "lpips",
            "fine_tune",
            "selftest",
        ],
    ),
];

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// The `crate::NAME` paths a file names (comments included: a doc link is a dependency too).
fn crate_imports(src: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = src;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + 7..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let before = rest[..i].chars().last();
        // `alexnet_wgpu::...` paths and words ending in "crate" are not crate-relative paths.
        if !name.is_empty() && !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            out.insert(name);
        }
        rest = after;
    }
    out
}

#[test]
fn modules_import_only_the_layers_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut problems = Vec::new();
    for (module, allowed) in LAYERS {
        let dir = src.join(module);
        let files = if dir.is_dir() {
            rust_files(&dir)
        } else {
            vec![src.join(format!("{module}.rs"))]
        };
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for name in crate_imports(&text) {
                if name == *module {
                    problems.push(format!(
                        "{}: reaches its own module through crate::{name} (use super::)",
                        f.display()
                    ));
                } else if !allowed.contains(&name.as_str()) {
                    problems.push(format!(
                        "{}: {module} imports crate::{name}, which is not below it",
                        f.display()
                    ));
                }
            }
        }
    }
    // Every top-level module of lib.rs has a place in the layers.
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    for line in lib.lines() {
        if let Some(m) = line
            .strip_prefix("pub mod ")
            .or_else(|| line.strip_prefix("mod "))
        {
            let m = m.trim_end_matches(';');
            if !LAYERS.iter().any(|(n, _)| *n == m) {
                problems.push(format!(
                    "lib.rs: module {m} has no layer in tests/it/layering.rs"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn no_source_file_is_over_600_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let long: Vec<String> = rust_files(&src)
        .into_iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(&f).unwrap().lines().count();
            (n > 600).then(|| format!("{}: {n} lines", f.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "split these by concern:\n{}",
        long.join("\n")
    );
}
