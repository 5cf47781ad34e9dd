//! `.safetensors` and `.onnx` weights: the same reduced-width nets as `tests/it/network.rs`,
//! written by the real libraries (`scripts/make_format_fixtures.py`: safetensors, onnx), give
//! the same logits as onnxruntime on the same weights; the zoo-style BVLC model loads as
//! `caffe` at its declared 224 input (Caffe's rounding-up pools); our ONNX export runs in
//! onnxruntime (logits committed by the script) and is re-read by our importer; hostile files
//! are refused.
//!
//! Tolerance: max |diff| <= 1e-4 x max |logit| against onnxruntime (float32 on both sides with a
//! different summation order, as in tests/it/network.rs). Weights read back from a file we wrote
//! must be bit-identical.

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use alexnet_wgpu::error::Error;
use alexnet_wgpu::fetch::{fetch_weights, FetchOptions, Fetched};
use alexnet_wgpu::model::formats::ExportOptions;
use alexnet_wgpu::model::{Arch, Network, Weights};
use alexnet_wgpu::weights::meta::ModelMeta;
use alexnet_wgpu::weights::onnx::proto::{
    data_type, GraphProto, ModelProto, NodeProto, StringStringEntryProto, TensorProto,
    ValueInfoProto,
};
use alexnet_wgpu::weights::read_tensors;
use common::{assert_close, ctx};
use common::{fixture, fixture_npy as npy};
use prost::Message;
use sha2::{Digest, Sha256};

const TOL: f32 = 1e-4;

fn logits(w: &Weights, input: &str) -> Vec<f32> {
    let ctx = ctx();
    let mut net = Network::new(&ctx, w).unwrap();
    let (shape, x) = npy(input);
    net.forward(&x, shape[0], shape[2], shape[3], false)
        .unwrap()
        .logits
}

fn same_tensors(a: &Weights, b: &Weights, what: &str) {
    assert_eq!(a.arch, b.arch, "{what}: arch");
    assert_eq!(a.widths, b.widths, "{what}: widths");
    assert_eq!(
        a.tensors.keys().collect::<Vec<_>>(),
        b.tensors.keys().collect::<Vec<_>>()
    );
    for (k, v) in &a.tensors {
        assert!(v == &b.tensors[k], "{what}: tensor {k} differs");
    }
}

fn err_text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

#[test]
fn safetensors_gives_the_npz_weights_and_onnxruntime_logits() {
    let st = Weights::load(fixture("torchvision_small.safetensors"), None).unwrap();
    let npz = Weights::load(fixture("torchvision_small.npz"), None).unwrap();
    same_tensors(&st, &npz, "safetensors vs npz");
    let (_, want) = npy("torchvision_logits.npy");
    assert_close(
        "torchvision_small.safetensors",
        &logits(&st, "input_224.npy"),
        &want,
        TOL,
    );
}

#[test]
fn torch_export_layout_onnx_loads_as_torchvision() {
    let npz = Weights::load(fixture("torchvision_small.npz"), None).unwrap();
    let (_, want) = npy("torchvision_logits.npy");
    for f in ["torchvision_small_torch.onnx", "torchvision_small_ext.onnx"] {
        let w = Weights::load(fixture(f), None).unwrap();
        assert_eq!(w.arch, Arch::Torchvision, "{f}");
        assert!(!w.pool_ceil, "{f}: torch's pools round down");
        same_tensors(&w, &npz, f);
        assert_close(f, &logits(&w, "input_224.npy"), &want, TOL);
    }
}

#[test]
fn zoo_style_bvlc_onnx_loads_as_caffe_at_its_declared_224_input() {
    let (_, want) = npy("bvlc_small_logits.npy");
    let npz = Weights::load(fixture("caffe_small.npz"), None).unwrap();
    for f in ["bvlc_small.onnx", "bvlc_small_ceil.onnx"] {
        let w = Weights::load(fixture(f), None).unwrap();
        assert_eq!(w.arch, Arch::Caffe, "{f}");
        assert!(w.pool_ceil, "{f}: the pools must round up at 224");
        let mut plain = w.clone();
        plain.pool_ceil = false;
        same_tensors(&plain, &npz, f);
        // Declared size: 224 (the preset's own is 227).
        let got = logits(&w, "input_224_caffe.npy");
        assert_close(f, &got, &want, TOL);
        // Rounding down at 224 leaves pool5 at 5x5, which fc6 (28x6x6 inputs) cannot take: the
        // flag matters.
        let fc6 = |w: &Weights| {
            w.spec()
                .with_input_hw(224, 224)
                .param_shapes()
                .unwrap()
                .into_iter()
                .find(|(n, _)| n == "fc6.weight")
                .unwrap()
                .1
        };
        assert_eq!(fc6(&w), vec![100, 28 * 6 * 6]);
        assert_eq!(fc6(&plain), vec![100, 28 * 5 * 5]);
    }
    // At 227 the two roundings agree: the caffe fixture's logits still hold.
    let w = Weights::load(fixture("bvlc_small.onnx"), None).unwrap();
    let (_, want) = npy("caffe_logits.npy");
    assert_close(
        "bvlc_small.onnx at 227",
        &logits(&w, "input_227_caffe.npy"),
        &want,
        TOL,
    );
}

/// `(file, onnxruntime's logits of that file)`, written by `scripts/make_export_fixtures.py`.
fn exported(file: &str) -> (Weights, Vec<f32>) {
    let w = Weights::load(fixture(file), None).unwrap_or_else(|e| panic!("{file}: {e}"));
    let (_, ort) = npy(&file.replace(".onnx", "_logits.npy"));
    (w, ort)
}

#[test]
fn real_torch_onnx_exports_load_as_torchvision() {
    // torch.onnx.export of torchvision's AlexNet (reduced widths): the TorchScript exporter
    // (Flatten, Gemm, opset 17) and the dynamo exporter (Reshape to [-1, 1008], opset 18+).
    let npz = Weights::load(fixture("torchvision_small.npz"), None).unwrap();
    for f in [
        "torchvision_small_legacy.onnx",
        "torchvision_small_dynamo.onnx",
    ] {
        let (w, ort) = exported(f);
        assert_eq!(w.arch, Arch::Torchvision, "{f}");
        assert!(!w.pool_ceil, "{f}");
        same_tensors(&w, &npz, f);
        assert_close(f, &logits(&w, "input_224.npy"), &ort, TOL);
    }
}

#[test]
fn keras_onnx_exports_load_as_keras() {
    // Keras 3's model.export(format="onnx") (tf2onnx): NHWC input through a Transpose, NHWC
    // flatten (Transpose, then a Reshape fed by a Shape branch), MatMul [in, out] + Add; and the
    // same graph with HWIO conv kernels through Transpose nodes (no constant folding). fc6's
    // rows come out in our NCHW order: the weights equal the .npz's exactly.
    let npz = Weights::load(fixture("keras_small.npz"), None).unwrap();
    for f in ["keras_small_export.onnx", "keras_small_export_hwio.onnx"] {
        let m = alexnet_wgpu::weights::onnx::read_onnx(&fixture(f)).unwrap();
        assert!(m.input_nhwc, "{f}");
        assert_eq!(m.input_chw(), Some([3, 227, 227]), "{f}");
        let (w, ort) = exported(f);
        assert_eq!(w.arch, Arch::Keras, "{f}");
        same_tensors(&w, &npz, f);
        assert_close(f, &logits(&w, "input_227_keras.npy"), &ort, TOL);
    }
}

#[test]
fn an_odd_transpose_or_computed_reshape_is_refused_naming_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixture("keras_small_export.onnx")).unwrap();
    let edit = |f: &dyn Fn(&mut ModelProto)| {
        let mut m = ModelProto::decode(good.as_slice()).unwrap();
        f(&mut m);
        m.encode_to_vec()
    };
    let perm = |m: &mut ModelProto, node: &str, p: Vec<i64>| {
        let g = m.graph.as_mut().unwrap();
        let n = g.node.iter_mut().find(|n| n.name == node).unwrap();
        n.attribute
            .iter_mut()
            .find(|a| a.name == "perm")
            .unwrap()
            .ints = p;
    };
    let flatten_t = {
        let m = ModelProto::decode(good.as_slice()).unwrap();
        let g = m.graph.unwrap();
        g.node
            .iter()
            .find(|n| n.op_type == "Transpose" && n.input[0] != "input")
            .unwrap()
            .name
            .clone()
    };
    let first_t = "sequential_1/conv2d_1/BiasAdd__6";
    for (name, bytes, want) in [
        (
            "flatten_perm.onnx",
            edit(&|m| perm(m, &flatten_t, vec![0, 1, 3, 2])),
            flatten_t.clone(),
        ),
        (
            "input_perm.onnx",
            edit(&|m| perm(m, first_t, vec![0, 2, 3, 1])),
            first_t.to_string(),
        ),
    ] {
        let p = write(dir.path(), name, &bytes);
        let e = err_text(Weights::load(&p, None).unwrap_err());
        assert!(
            e.contains(name) && e.contains(&want) && e.contains("perm"),
            "{e}"
        );
    }
}

#[test]
fn an_onnx_graph_that_is_not_the_preset_is_refused_naming_the_node() {
    let e =
        err_text(Weights::load(fixture("bvlc_small.onnx"), Some(Arch::Torchvision)).unwrap_err());
    assert!(e.contains("bvlc_small.onnx"), "{e}");
    assert!(e.contains("node"), "{e}");
    let e = err_text(
        Weights::load(fixture("torchvision_small_torch.onnx"), Some(Arch::Caffe)).unwrap_err(),
    );
    assert!(e.contains("torchvision_small_torch.onnx"), "{e}");
}

#[test]
fn our_onnx_export_matches_onnxruntime_and_reads_back() {
    for (preset, input, reference) in [
        ("torchvision", "input_224.npy", "torchvision_logits.npy"),
        ("caffe", "input_227_caffe.npy", "caffe_logits.npy"),
        ("keras", "input_227_keras.npy", "keras_logits.npy"),
    ] {
        let npz = Weights::load(fixture(&format!("{preset}_small.npz")), None).unwrap();
        // onnxruntime ran our committed export: its logits are ours within tolerance.
        let (_, ort) = npy(&format!("export_{preset}_logits.npy"));
        let ours = logits(&npz, input);
        assert_close(
            &format!("export_{preset}.onnx in onnxruntime"),
            &ours,
            &ort,
            TOL,
        );
        let (_, reference) = npy(reference);
        assert_close(
            &format!("export_{preset} vs {preset} reference"),
            &ort,
            &reference,
            TOL,
        );
        // The committed export and a fresh one read back as the same weights.
        let committed = Weights::load(fixture(&format!("export_{preset}.onnx")), None).unwrap();
        same_tensors(&committed, &npz, &format!("export_{preset}.onnx"));
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("m.onnx");
        npz.save_onnx(&out, &ExportOptions::default()).unwrap();
        let fresh = Weights::load(&out, None).unwrap();
        same_tensors(&fresh, &npz, &format!("fresh export of {preset}"));
        // Our encoder is deterministic: the fresh export is the committed file, byte for byte,
        // except for the producer version and metadata the CLI adds.
        let meta = ModelProto::decode(
            std::fs::read(fixture(&format!("export_{preset}.onnx")))
                .unwrap()
                .as_slice(),
        )
        .unwrap();
        let mine = ModelProto::decode(std::fs::read(&out).unwrap().as_slice()).unwrap();
        assert_eq!(
            meta.graph, mine.graph,
            "{preset}: graph differs from the committed export"
        );
        assert!(meta.metadata_props.iter().any(|p| p.key == "preprocess"));
    }
}

#[test]
fn a_model_with_classes_round_trips_through_safetensors_and_onnx() {
    let w = Weights::load(fixture("caffe_small.npz"), None).unwrap();
    let meta = ModelMeta {
        format: "alexnet-wgpu model".into(),
        version: 1,
        arch: "caffe".into(),
        classes: (0..7).map(|i| format!("class {i}")).collect(),
        head: Some("last".into()),
        preprocess: Some(serde_json::json!({"crop": 227})),
    };
    let dir = tempfile::tempdir().unwrap();
    for ext in ["safetensors", "onnx", "npz"] {
        let p = dir.path().join(format!("m.{ext}"));
        if ext == "npz" {
            let (j, n) = meta.to_strings();
            w.save_npz(&p, alexnet_wgpu::weights::meta::entries(&j, &n))
                .unwrap();
        } else {
            w.save_as(&p, &meta.to_pairs()).unwrap();
        }
        let back = Weights::load(&p, None).unwrap();
        same_tensors(&back, &w, ext);
        assert_eq!(ModelMeta::read(&p).unwrap().as_ref(), Some(&meta), "{ext}");
    }
    let e = err_text(w.save_as(dir.path().join("m.txt"), &[]).unwrap_err());
    assert!(e.contains(".npz, .safetensors, .onnx"), "{e}");
    assert!(!dir.path().join("m.txt").exists());
}

#[test]
fn keras_names_round_trip_through_safetensors_and_softmax_exports_read_back() {
    let dir = tempfile::tempdir().unwrap();
    // Keras names and layout (HWIO, [in, out], fc6 rows NHWC) kept in a .safetensors.
    let k = Weights::load(fixture("keras_small.npz"), None).unwrap();
    let p = dir.path().join("k.safetensors");
    k.save_safetensors(&p, &Default::default()).unwrap();
    let keys: Vec<String> = read_tensors(&p)
        .unwrap()
        .into_iter()
        .map(|t| t.key)
        .collect();
    assert!(keys.iter().any(|k| k == "conv2d/kernel"), "{keys:?}");
    same_tensors(&Weights::load(&p, None).unwrap(), &k, "keras .safetensors");
    // `export --softmax`: probabilities out, Softmax last; our importer takes it back.
    let p = dir.path().join("p.onnx");
    k.save_onnx(
        &p,
        &ExportOptions {
            softmax: true,
            metadata: vec![],
        },
    )
    .unwrap();
    let m = ModelProto::decode(std::fs::read(&p).unwrap().as_slice()).unwrap();
    let g = m.graph.unwrap();
    assert_eq!(g.node.last().unwrap().op_type, "Softmax");
    assert_eq!(g.output[0].name, "probabilities");
    same_tensors(&Weights::load(&p, None).unwrap(), &k, "softmax export");
}

#[test]
fn convert_follows_the_output_extension_and_refuses_unknown_ones() {
    let dir = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_alexnet");
    for bad in ["out.txt", "out.onnxx", "out"] {
        let o = Command::new(exe)
            .args(["convert"])
            .arg(fixture("torchvision_small.npz"))
            .arg(dir.path().join(bad))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{bad}: {stderr}");
        assert!(
            stderr.contains(".npz, .safetensors, .onnx"),
            "{bad}: {stderr}"
        );
        assert!(!dir.path().join(bad).exists());
    }
    let npz = Weights::load(fixture("torchvision_small.npz"), None).unwrap();
    for ext in ["safetensors", "onnx", "npz"] {
        let out = dir.path().join(format!("w.{ext}"));
        let o = Command::new(exe)
            .args(["convert"])
            .arg(fixture("bvlc_small.onnx"))
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(Weights::load(&out, None).unwrap().arch, Arch::Caffe);
        let o = Command::new(exe)
            .args(["convert"])
            .arg(fixture("torchvision_small.npz"))
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        same_tensors(&Weights::load(&out, None).unwrap(), &npz, ext);
    }
}

#[test]
fn a_fine_tuned_model_exported_to_onnx_gives_our_logits_in_onnxruntime() {
    // `train-head --out finetuned_small.onnx` (scripts/make_export_fixtures.py) from the
    // reduced torchvision backbone on tests/fixtures/train_data, run by onnxruntime there.
    let (w, ort) = exported("finetuned_small.onnx");
    assert_eq!(w.arch, Arch::Torchvision);
    assert_eq!(w.widths.classes, 3);
    // The head was trained (the backbone's convolutions were not).
    let backbone = Weights::load(fixture("torchvision_small.npz"), None).unwrap();
    assert!(w.get("conv5.weight") == backbone.get("conv5.weight"));
    assert!(w.get("fc7.weight") != backbone.get("fc7.weight"));
    assert_close(
        "finetuned_small.onnx: ours vs onnxruntime",
        &logits(&w, "input_224.npy"),
        &ort,
        TOL,
    );
    let meta = ModelMeta::read(&fixture("finetuned_small.onnx"))
        .unwrap()
        .expect("train-head's metadata");
    assert_eq!(meta.classes, ["cat", "coffee", "rocket"]);
    assert!(meta.preprocess.is_some());
}

#[test]
fn train_head_writes_the_same_model_as_npz_safetensors_and_onnx() {
    let dir = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_alexnet");
    let mut models = Vec::new();
    for ext in ["npz", "safetensors", "onnx"] {
        let out = dir.path().join(format!("m.{ext}"));
        let o = Command::new(exe)
            .args(["train-head", "--weights"])
            .arg(fixture("torchvision_small.npz"))
            .arg("--data")
            .arg(fixture("train_data"))
            .args(["--epochs", "2", "--batch", "8", "--seed", "5", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{ext}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let meta = ModelMeta::read(&out).unwrap().expect("metadata");
        assert_eq!(meta.classes, ["cat", "coffee", "rocket"], "{ext}");
        models.push((Weights::load(&out, None).unwrap(), meta));
    }
    // Same seed, same training: the three files hold the same model.
    for (w, meta) in &models[1..] {
        same_tensors(w, &models[0].0, "train-head output");
        assert_eq!(meta, &models[0].1);
    }
}

// ---- hostile and broken files ----

fn tensor(name: &str, dims: &[i64], raw: Vec<u8>) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: data_type::FLOAT,
        name: name.into(),
        raw_data: raw,
        ..Default::default()
    }
}

/// A one-Conv graph whose weight is `w`.
fn conv_model(w: TensorProto) -> Vec<u8> {
    let node = NodeProto {
        input: vec!["x".into(), w.name.clone()],
        output: vec!["y".into()],
        name: "conv1_1".into(),
        op_type: "Conv".into(),
        ..Default::default()
    };
    ModelProto {
        ir_version: 7,
        graph: Some(GraphProto {
            node: vec![node],
            initializer: vec![w],
            input: vec![ValueInfoProto {
                name: "x".into(),
                ..Default::default()
            }],
            output: vec![ValueInfoProto {
                name: "y".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn truncated_and_hostile_onnx_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixture("bvlc_small.onnx")).unwrap();
    for cut in [10, good.len() / 2, good.len() - 3] {
        let p = write(dir.path(), "cut.onnx", &good[..cut]);
        let e = err_text(Weights::load(&p, None).unwrap_err());
        assert!(e.contains("cut.onnx"), "{e}");
    }
    // A shape of 2^62 elements over 16 bytes of data: refused before any allocation.
    let p = write(
        dir.path(),
        "huge.onnx",
        &conv_model(tensor("w", &[1 << 31, 1 << 31, 1, 1], vec![0; 16])),
    );
    let e = err_text(read_tensors(&p).unwrap_err());
    assert!(e.contains("huge.onnx") && e.contains("'w'"), "{e}");
    let p = write(
        dir.path(),
        "overflow.onnx",
        &conv_model(tensor("w", &[i64::MAX, i64::MAX, 2, 2], vec![0; 16])),
    );
    assert!(err_text(read_tensors(&p).unwrap_err()).contains("too large"));
    let p = write(
        dir.path(),
        "short.onnx",
        &conv_model(tensor("w", &[4, 3, 3, 3], vec![0; 16])),
    );
    let e = err_text(read_tensors(&p).unwrap_err());
    assert!(
        e.contains("needs 432 bytes") && e.contains("holds 16"),
        "{e}"
    );
    // External data outside the model's folder, or past the end of the file.
    write(dir.path(), "w.bin", &[0u8; 64]);
    write(dir.path(), "long.bin", &[0u8; 80]);
    for (loc, off, why) in [
        ("../w.bin", "0", "relative path inside"),
        ("/etc/passwd", "0", "relative path inside"),
        ("w.bin", "40", "past the end"),
        ("missing.bin", "0", "missing.bin"),
        // No length: the data runs to the end of the file, which must be the tensor's 64
        // bytes (as onnx.numpy_helper requires); 80 bytes is another file (it used to be read).
        ("long.bin", "0", "to the end of the file"),
        ("long.bin", "8", "to the end of the file"),
    ] {
        let mut t = tensor("w", &[4, 1, 2, 2], vec![]);
        t.data_location = 1;
        t.external_data = vec![
            StringStringEntryProto {
                key: "location".into(),
                value: loc.into(),
            },
            StringStringEntryProto {
                key: "offset".into(),
                value: off.into(),
            },
        ];
        let p = write(dir.path(), "ext.onnx", &conv_model(t));
        let e = err_text(read_tensors(&p).unwrap_err());
        assert!(e.contains(why), "{loc}: {e}");
    }
    // A symbolic link in the model's folder leading out of it is refused (it used to be read:
    // 48 bytes of a system file became a bias); one that stays inside is followed.
    #[cfg(unix)]
    {
        let m = dir.path().join("m");
        std::fs::create_dir(&m).unwrap();
        write(&m, "in.bin", &[0u8; 64]);
        std::os::unix::fs::symlink("in.bin", m.join("inside.bin")).unwrap();
        std::os::unix::fs::symlink("../w.bin", m.join("escape.bin")).unwrap();
        for (loc, refused) in [("inside.bin", false), ("escape.bin", true)] {
            let mut t = tensor("w", &[4, 1, 2, 2], vec![]);
            t.data_location = 1;
            t.external_data = vec![StringStringEntryProto {
                key: "location".into(),
                value: loc.into(),
            }];
            let p = write(&m, "ext.onnx", &conv_model(t));
            match read_tensors(&p) {
                Ok(_) => assert!(!refused, "{loc} was read"),
                Err(e) => {
                    let e = err_text(e);
                    assert!(refused, "{loc}: {e}");
                    assert!(
                        e.contains("escape.bin") && e.contains("outside the model's folder"),
                        "{e}"
                    );
                }
            }
        }
    }
    // Not a graph of ours: the first node that does not fit is named.
    let p = write(
        dir.path(),
        "one_conv.onnx",
        &conv_model(tensor("w", &[4, 3, 3, 3], vec![0; 432])),
    );
    let e = err_text(Weights::load(&p, None).unwrap_err());
    assert!(e.contains("one_conv.onnx"), "{e}");
}

#[test]
fn truncated_and_hostile_safetensors_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixture("torchvision_small.safetensors")).unwrap();
    for cut in [4, 100, good.len() - 1] {
        let p = write(dir.path(), "cut.safetensors", &good[..cut]);
        let e = err_text(Weights::load(&p, None).unwrap_err());
        assert!(e.contains("cut.safetensors"), "{e}");
    }
    // A header claiming 2^60 bytes.
    let mut bad = (1u64 << 60).to_le_bytes().to_vec();
    bad.extend_from_slice(b"{}");
    let p = write(dir.path(), "big.safetensors", &bad);
    assert!(err_text(Weights::load(&p, None).unwrap_err()).contains("big.safetensors"));
    // Integer weights are named with their dtype.
    let header = br#"{"features.0.weight":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}}"#;
    let mut f = (header.len() as u64).to_le_bytes().to_vec();
    f.extend_from_slice(header);
    f.extend_from_slice(&[0; 4]);
    let p = write(dir.path(), "int.safetensors", &f);
    let e = err_text(Weights::load(&p, None).unwrap_err());
    assert!(e.contains("I32"), "{e}");
}

// ---- fetch-weights --arch caffe against a local server ----

fn serve_once(body: Vec<u8>, max: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(max) {
            let Ok(mut s) = stream else { continue };
            s.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut r = BufReader::new(s.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
            let _ = s.flush();
        }
    });
    format!("http://127.0.0.1:{port}/bvlcalexnet-12.onnx")
}

#[test]
fn fetch_weights_caffe_downloads_checks_and_converts_an_onnx() {
    let body = std::fs::read(fixture("bvlc_small.onnx")).unwrap();
    let sha: String = Sha256::digest(&body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let url = serve_once(body, 2);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("alexnet-caffe.npz");
    let opts = |prefix: &str| FetchOptions {
        url: url.clone(),
        sha256_prefix: prefix.to_string(),
        dest: dest.clone(),
        force: false,
        progress: false,
        max_bytes: alexnet_wgpu::fetch::MAX_DOWNLOAD_BYTES,
    };
    // Wrong hash: nothing kept.
    let e = fetch_weights(&opts(&"0".repeat(64))).unwrap_err();
    assert!(matches!(e, Error::HashMismatch { .. }), "{e}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // The whole SHA-256, as pinned for the zoo's file.
    let got = fetch_weights(&opts(&sha)).unwrap();
    assert!(matches!(got, Fetched::Downloaded { .. }), "{got:?}");
    let w = Weights::load(&dest, None).unwrap();
    assert_eq!(w.arch, Arch::Caffe);
    same_tensors(
        &w,
        &Weights::load(fixture("caffe_small.npz"), None).unwrap(),
        "fetched",
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
