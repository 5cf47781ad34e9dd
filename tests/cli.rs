//! The `alexnet` command end to end: logits written by `classify` against onnxruntime's for
//! each preset (the acceptance check), image folders, bad inputs and exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use alexnet_wgpu::weights::{read_tensors, write_npy};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

fn alexnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_alexnet"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run alexnet")
}

fn npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let t = read_tensors(path).unwrap().remove(0);
    (t.shape, t.data.unwrap())
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Tolerance 1e-4 x max |logit|: see tests/network.rs.
fn assert_logits_match(got: &Path, want: &str) {
    let (gs, g) = npy(got);
    let (ws, w) = npy(&fixture(want));
    assert_eq!(gs, ws, "logits shape");
    let scale = w.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = g
        .iter()
        .zip(&w)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        diff <= 1e-4 * scale,
        "{want}: max |diff| {diff} > 1e-4 x {scale}"
    );
}

#[test]
fn classify_reproduces_onnxruntime_logits_for_every_preset() {
    let dir = tempfile::tempdir().unwrap();
    for (arch, weights, input, want) in [
        (
            "torchvision",
            "torchvision_small.npz",
            "input_224.npy",
            "torchvision_logits.npy",
        ),
        (
            "caffe",
            "caffe_small.npz",
            "input_227_caffe.npy",
            "caffe_logits.npy",
        ),
        (
            "keras",
            "keras_small.npz",
            "input_227_keras.npy",
            "keras_logits.npy",
        ),
    ] {
        let out = dir.path().join(format!("{arch}.npy"));
        let o = alexnet(&[
            "classify",
            "--arch",
            arch,
            "--weights",
            fixture(weights).to_str().unwrap(),
            "--batch",
            "2",
            "--logits-out",
            out.to_str().unwrap(),
            fixture(input).to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{arch}: {}", stderr(&o));
        assert_logits_match(&out, want);
    }
}

#[test]
fn classify_folder_as_json_with_features_and_user_labels() {
    let dir = tempfile::tempdir().unwrap();
    let labels = dir.path().join("labels.txt");
    std::fs::write(&labels, "a\nb\nc\nd\ne\nf\ng\n").unwrap();
    let feats = dir.path().join("f.npy");
    let o = alexnet(&[
        "classify",
        "--weights",
        fixture("torchvision_small.npz").to_str().unwrap(),
        "--format",
        "json",
        "--top",
        "3",
        "--labels",
        labels.to_str().unwrap(),
        "--features-out",
        feats.to_str().unwrap(),
        "assets/images",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = v.as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["input"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "assets/images/astronaut.jpg",
            "assets/images/camera.png",
            "assets/images/chelsea.jpg",
            "assets/images/coffee.jpg",
            "assets/images/rocket.jpg"
        ]
    );
    for r in rows {
        let top = r["top"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        let label = top[0]["label"].as_str().unwrap();
        assert!(["a", "b", "c", "d", "e", "f", "g"].contains(&label));
        let p: Vec<f64> = top
            .iter()
            .map(|t| t["probability"].as_f64().unwrap())
            .collect();
        assert!(p[0] >= p[1] && p[1] >= p[2], "sorted by probability: {p:?}");
    }
    let (shape, _) = npy(&feats);
    assert_eq!(shape, vec![5, 28 * 6 * 6]);
}

#[test]
fn a_broken_image_is_reported_and_the_rest_still_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        root().join("assets/images/chelsea.jpg"),
        dir.path().join("a.jpg"),
    )
    .unwrap();
    std::fs::write(dir.path().join("b.jpg"), b"not a jpeg").unwrap();
    std::fs::copy(
        root().join("assets/images/coffee.jpg"),
        dir.path().join("c.jpg"),
    )
    .unwrap();
    let logits = dir.path().join("l.npy");
    let o = alexnet(&[
        "classify",
        "--weights",
        fixture("caffe_small.npz").to_str().unwrap(),
        "--format",
        "csv",
        "--top",
        "1",
        "--logits-out",
        logits.to_str().unwrap(),
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("b.jpg"), "{}", stderr(&o));
    let csv = String::from_utf8_lossy(&o.stdout);
    assert_eq!(csv.lines().count(), 3, "header + two rows: {csv}");
    assert!(csv.contains("a.jpg") && csv.contains("c.jpg"));
    assert_eq!(npy(&logits).0, vec![2, 7]);
}

#[test]
fn bad_usage_gets_a_clear_error() {
    let o = alexnet(&["classify", "assets/images/chelsea.jpg"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--weights"), "{}", stderr(&o));

    let dir = tempfile::tempdir().unwrap();
    let labels = dir.path().join("labels.txt");
    std::fs::write(&labels, "only\ntwo\n").unwrap();
    let o = alexnet(&[
        "classify",
        "--weights",
        fixture("torchvision_small.npz").to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
        "assets/images/chelsea.jpg",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("2 labels but the model has 7 classes"),
        "{}",
        stderr(&o)
    );

    // A batch that is not [N, 3, H, W].
    let bad = dir.path().join("bad.npy");
    write_npy(&bad, &[2, 5], &[0.0; 10]).unwrap();
    let o = alexnet(&[
        "classify",
        "--weights",
        fixture("torchvision_small.npz").to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("bad.npy") && stderr(&o).contains("[N, 3, H, W]"),
        "{}",
        stderr(&o)
    );

    let o = alexnet(&[
        "classify",
        "--weights",
        fixture("bad_shapes.npz").to_str().unwrap(),
        "assets/images/chelsea.jpg",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("features.3.weight"), "{}", stderr(&o));
}

#[test]
fn adapters_and_summary() {
    let o = alexnet(&["adapters"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("max storage binding"));
    let o = alexnet(&["summary", "--arch", "torchvision"]);
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("61100840 parameters"), "{s}");
    assert!(s.contains("1.428 GFLOP per image"), "{s}");
}

#[test]
fn no_adapter_says_what_to_install() {
    let o = Command::new(env!("CARGO_BIN_EXE_alexnet"))
        .args([
            "classify",
            "--weights",
            fixture("torchvision_small.npz").to_str().unwrap(),
            "assets/images/chelsea.jpg",
        ])
        .env("WGPU_ADAPTER_NAME", "no-such-adapter-anywhere")
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("no GPU adapter found") && e.contains("mesa-vulkan-drivers"),
        "{e}"
    );
}

#[test]
fn classify_and_bench_with_f16_precision() {
    // f16 weights: onnxruntime's logits within 5e-3 x max |logit| (see tests/network.rs).
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("f16.npy");
    let o = alexnet(&[
        "classify",
        "--precision",
        "f16",
        "--weights",
        fixture("torchvision_small.npz").to_str().unwrap(),
        "--logits-out",
        out.to_str().unwrap(),
        fixture("input_224.npy").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (gs, g) = npy(&out);
    let (ws, w) = npy(&fixture("torchvision_logits.npy"));
    assert_eq!(gs, ws, "logits shape");
    let scale = w.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = g
        .iter()
        .zip(&w)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        diff <= 5e-3 * scale,
        "f16: max |diff| {diff} > 5e-3 x {scale}"
    );

    // bench compares both precisions in one run and reports f16's logit error against f32.
    let o = alexnet(&[
        "bench",
        "--weights",
        fixture("torchvision_small.npz").to_str().unwrap(),
        "--batch",
        "2",
        "--iters",
        "1",
        "--precision",
        "f32,f16",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let results = doc["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["precision"], "f32");
    assert_eq!(results[1]["precision"], "f16");
    let err = results[1]["logit_error_vs_f32"].as_f64().unwrap();
    assert!(err > 0.0 && err < 5e-3, "f16 logit error vs f32: {err}");

    let o = alexnet(&["classify", "--precision", "f8", "x.png"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("f32 or f16"), "{}", stderr(&o));
}

/// The matmul path real GPUs take (`Tiled`: conv2d.wgsl / dense.wgsl) runs here only when
/// forced; check it end to end against onnxruntime too, and that bench times each layer.
#[test]
fn gpu_matmul_path_matches_onnxruntime_and_bench_times_layers() {
    let dir = tempfile::tempdir().unwrap();
    for (weights, input, want) in [
        (
            "torchvision_small.npz",
            "input_224.npy",
            "torchvision_logits.npy",
        ),
        ("caffe_small.npz", "input_227_caffe.npy", "caffe_logits.npy"),
        ("keras_small.npz", "input_227_keras.npy", "keras_logits.npy"),
    ] {
        let out = dir.path().join(want);
        let o = Command::new(env!("CARGO_BIN_EXE_alexnet"))
            .args([
                "classify",
                "--weights",
                fixture(weights).to_str().unwrap(),
                "--logits-out",
                out.to_str().unwrap(),
            ])
            .arg(fixture(input))
            .env("ALEXNET_MATMUL", "tiled")
            .current_dir(root())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert_logits_match(&out, want);
    }
    let o = alexnet(&[
        "bench",
        "--weights",
        fixture("caffe_small.npz").to_str().unwrap(),
        "--batch",
        "1",
        "--iters",
        "1",
        "--per-layer",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let layers = doc["results"][0]["layers"].as_array().unwrap();
    assert!(
        layers
            .iter()
            .any(|l| l["label"].as_str().unwrap().starts_with("conv2")),
        "{layers:?}"
    );
    assert!(
        layers
            .iter()
            .any(|l| l["label"] == "lrn size 5 alpha 0.0001 beta 0.75 k 1"),
        "{layers:?}"
    );
}
