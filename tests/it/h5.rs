//! Keras weights in HDF5 written by Keras itself (scripts/make_weight_fixtures.py): Keras 3
//! `.weights.h5` and `.keras`, Keras 2 `save_weights` `.h5` and full-model `.h5`. The converted
//! network gives onnxruntime's logits; damaged files are refused with the reason.

use crate::common;

use std::process::Command;

use alexnet_wgpu::model::Weights;
use alexnet_wgpu::model::{Arch, Network};
use alexnet_wgpu::weights::read_tensors;
use common::{assert_close, ctx};
use common::{fixture, fixture_npy as npy};

/// The keras-preset net at fixture widths, as written by Keras 3 (`save_weights`) and Keras 2
/// (`save_weights` and `model.save`), all from the weights of `keras_small.npz`.
const KERAS_SMALL: [&str; 3] = [
    "keras_small.weights.h5",
    "keras_small_k2.h5",
    "keras_small_k2_model.h5",
];

#[test]
fn keras_files_give_onnxruntime_logits() {
    let reference = Weights::load(fixture("keras_small.npz"), None).unwrap();
    let ctx = ctx();
    let (shape, x) = npy("input_227_keras.npy");
    let (_, want) = npy("keras_logits.npy");
    for file in KERAS_SMALL {
        let w = Weights::load(fixture(file), None).unwrap();
        assert_eq!(w.arch, Arch::Keras, "{file}");
        assert_eq!(w.widths, reference.widths, "{file}");
        assert_eq!(
            w.tensors, reference.tensors,
            "{file}: same weights as the .npz"
        );
        let mut net = Network::new(&ctx, &w).unwrap();
        let out = net
            .forward(&x, shape[0], shape[2], shape[3], false)
            .unwrap();
        assert_close(&format!("{file} logits"), &out.logits, &want, 1e-4);
    }
}

#[test]
fn every_keras_layout_reads_the_same_tensors() {
    // A tiny conv + dense model saved by Keras 3 (.weights.h5, .keras archive, legacy model
    // .h5) and Keras 2 (save_weights .h5, model.save .h5).
    let want = read_tensors(&fixture("keras_tiny_expected.npz")).unwrap();
    let keys: Vec<&str> = want.iter().map(|t| t.key.as_str()).collect();
    assert_eq!(
        keys,
        ["conv2d/bias", "conv2d/kernel", "dense/bias", "dense/kernel"]
    );
    for file in [
        "keras_tiny.weights.h5",
        "keras_tiny.keras",
        "keras_tiny_k3_model.h5",
        "keras_tiny_k2.h5",
        "keras_tiny_k2_model.h5",
    ] {
        let got = read_tensors(&fixture(file)).unwrap();
        assert_eq!(got.len(), want.len(), "{file}: {got:?}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.key, w.key, "{file}");
            assert_eq!(g.shape, w.shape, "{file}: {}", g.key);
            assert_eq!(g.data, w.data, "{file}: {}", g.key);
        }
    }
}

#[test]
fn damaged_or_foreign_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let full = std::fs::read(fixture("keras_small_k2.h5")).unwrap();
    for (name, bytes) in [
        ("cut_head.h5", &full[..4096]),
        ("cut_half.h5", &full[..full.len() / 2]),
        ("cut_tail.h5", &full[..full.len() - 100]),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let msg = match Weights::load(&p, None) {
            Ok(_) => panic!("{name} loaded but must be refused"),
            Err(e) => e.to_string(),
        };
        assert!(msg.contains(name) && msg.contains("truncated"), "{msg}");
    }

    let p = dir.path().join("text.h5");
    std::fs::write(&p, b"not hdf5 at all").unwrap();
    let msg = read_tensors(&p).unwrap_err().to_string();
    assert!(msg.contains("not an HDF5 file"), "{msg}");

    // A zip named .keras without model.weights.h5.
    let p = dir.path().join("empty.keras");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&p).unwrap());
    z.start_file("config.json", zip::write::FileOptions::default())
        .unwrap();
    z.finish().unwrap();
    let msg = read_tensors(&p).unwrap_err().to_string();
    assert!(msg.contains("model.weights.h5"), "{msg}");

    // A truncated .keras archive.
    let keras = std::fs::read(fixture("keras_tiny.keras")).unwrap();
    let p = dir.path().join("cut.keras");
    std::fs::write(&p, &keras[..keras.len() / 2]).unwrap();
    let msg = read_tensors(&p).unwrap_err().to_string();
    assert!(
        msg.contains("cut.keras") && msg.contains("truncated"),
        "{msg}"
    );
}

#[test]
fn convert_writes_an_npz_that_loads_identically() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("k.npz");
    let o = Command::new(env!("CARGO_BIN_EXE_alexnet"))
        .arg("convert")
        .arg(fixture("keras_small_k2_model.h5"))
        .arg(&out)
        .args(["--arch", "keras"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let src = Weights::load(fixture("keras_small_k2_model.h5"), None).unwrap();
    // The .npz is in PyTorch layout with Caffe names; the keras preset is inferred back.
    let back = Weights::load(&out, None).unwrap();
    assert_eq!(back.arch, Arch::Keras);
    assert_eq!(back.tensors, src.tensors);
}
