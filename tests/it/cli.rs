//! The `alexnet` command end to end: logits written by `classify` against onnxruntime's for
//! each preset (the acceptance check), image folders, bad inputs and exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{fixture, npy, root, stderr};
use alexnet_wgpu::weights::{read_tensors, write_npy};

fn alexnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_alexnet"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run alexnet")
}

/// Tolerance 1e-4 x max |logit|: see tests/it/network.rs.
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
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "header + three rows: {csv}");
    assert_eq!(lines[0], "input,rank,class,label,probability,logit,error");
    // The failed input has a row too, with its error, as in the JSON formats.
    assert!(
        lines[1].contains("a.jpg") && lines[1].ends_with(','),
        "{csv}"
    );
    assert!(
        lines[2].contains("b.jpg,,,,,,") && lines[2].len() > "b.jpg,,,,,,".len() + 10,
        "{csv}"
    );
    assert!(
        lines[3].contains("c.jpg") && lines[3].ends_with(','),
        "{csv}"
    );
    assert_eq!(npy(&logits).0, vec![2, 7]);
    // --top 0 would print no class at all.
    let o = alexnet(&[
        "classify",
        "--weights",
        fixture("caffe_small.npz").to_str().unwrap(),
        "--top",
        "0",
        "assets/images/chelsea.jpg",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--top") && stderr(&o).contains("1 or more"),
        "{}",
        stderr(&o)
    );
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
    // The library's message names the filter (not the drivers to install: some adapter
    // answered, just not this one); the binary's hint names its command and flags.
    assert!(
        e.contains("no GPU adapter matching ")
            && e.contains("name containing 'no-such-adapter-anywhere'")
            && e.contains("`alexnet adapters` lists the adapters")
            && e.contains("WGPU_ADAPTER_NAME")
            && !e.contains("mesa-vulkan-drivers"),
        "{e}"
    );
}

#[test]
fn classify_and_bench_with_f16_precision() {
    // f16 weights: onnxruntime's logits within 5e-3 x max |logit| (see tests/it/network.rs).
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

/// `bench --backward` (once an ignored test of the backward kernels): on each conv backward
/// path, grad input and grad weight + bias timed at torchvision's five conv shapes.
#[test]
fn bench_backward_times_both_conv_backward_paths() {
    for path in ["gemm", "direct"] {
        let o = alexnet(&[
            "bench",
            "--backward",
            "--conv-backward",
            path,
            "--batch",
            "1",
            "--iters",
            "1",
            "--warmup",
            "0",
            "--format",
            "json",
        ]);
        assert!(o.status.success(), "{path}: {}", stderr(&o));
        let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(doc["conv_backward"], path);
        let rows = doc["results"].as_array().unwrap();
        let layers: Vec<&str> = rows.iter().map(|r| r["layer"].as_str().unwrap()).collect();
        // The convolutions on the chosen conv backward, then the dense layers on the matmul
        // path's dense backward route.
        assert_eq!(
            layers,
            ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
        );
        for r in rows {
            for key in [
                "grad_input_ms",
                "grad_input_gflops_per_s",
                "grad_weight_bias_ms",
                "grad_weight_bias_gflops_per_s",
            ] {
                let v = r[key].as_f64().unwrap();
                assert!(v.is_finite() && v > 0.0, "{path} {key}: {r}");
            }
        }
    }
    // Forward-pass options make no sense with it: refused, not ignored.
    let o = alexnet(&["bench", "--backward", "--tune"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// Copies fixture `name` into `dir`.
fn copy_fixture(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::copy(fixture(name), &p).unwrap();
    p
}

/// Runs `args`, expects exit 2 with every one of `want` in the message, and `keep` unchanged.
fn assert_refused(args: &[&str], want: &[&str], keep: &Path) {
    let before = std::fs::read(keep).unwrap();
    let o = alexnet(args);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
    for w in want {
        assert!(e.contains(w), "{args:?}: no {w:?} in: {e}");
    }
    assert_eq!(
        std::fs::read(keep).unwrap(),
        before,
        "{args:?}: {keep:?} changed"
    );
}

#[test]
fn outputs_that_would_replace_an_input_or_each_other_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let w = copy_fixture(d, "torchvision_small.npz");
    let ws = w.to_str().unwrap();
    let img = d.join("img.png");
    std::fs::copy(root().join("assets/images/camera.png"), &img).unwrap();
    let imgs = img.to_str().unwrap();
    let data = fixture("train_data");

    // The photo itself, through a symbolic link and through a hard link.
    assert_refused(
        &["classify", "--weights", ws, "--logits-out", imgs, imgs],
        &["--logits-out", "would overwrite the input", "img.png"],
        &img,
    );
    #[cfg(unix)]
    {
        let link = d.join("link.npy");
        std::os::unix::fs::symlink(&img, &link).unwrap();
        assert_refused(
            &[
                "classify",
                "--weights",
                ws,
                "--features-out",
                link.to_str().unwrap(),
                imgs,
            ],
            &["--features-out", "link.npy"],
            &img,
        );
        let hard = d.join("hard.npy");
        std::fs::hard_link(&img, &hard).unwrap();
        assert_refused(
            &[
                "classify",
                "--weights",
                ws,
                "--logits-out",
                hard.to_str().unwrap(),
                imgs,
            ],
            &["--logits-out", "hard.npy"],
            &img,
        );
    }
    // A file found in an input folder.
    let folder = d.join("folder");
    std::fs::create_dir(&folder).unwrap();
    let inner = folder.join("inner.jpg");
    std::fs::copy(root().join("assets/images/chelsea.jpg"), &inner).unwrap();
    assert_refused(
        &[
            "classify",
            "--weights",
            ws,
            "--logits-out",
            inner.to_str().unwrap(),
            folder.to_str().unwrap(),
        ],
        &["--logits-out", "inner.jpg"],
        &inner,
    );
    // A preprocessed batch.
    let batch = copy_fixture(d, "input_224.npy");
    let bs = batch.to_str().unwrap();
    assert_refused(
        &["classify", "--weights", ws, "--logits-out", bs, bs],
        &["--logits-out", "input_224.npy"],
        &batch,
    );
    // The weights.
    assert_refused(
        &["classify", "--weights", ws, "--logits-out", ws, imgs],
        &["--logits-out", "--weights"],
        &w,
    );
    assert_refused(
        &[
            "features",
            "--weights",
            ws,
            "--data",
            data.to_str().unwrap(),
            "--out",
            ws,
        ],
        &["--out", "--weights"],
        &w,
    );
    assert_refused(&["convert", ws, ws], &["would overwrite the input"], &w);
    let onnx = copy_fixture(d, "torchvision_small_torch.onnx");
    let onnxs = onnx.to_str().unwrap();
    assert_refused(
        &["export", "--weights", onnxs, onnxs],
        &["--weights", "would overwrite"],
        &onnx,
    );
    // train-head: the backbone unless --replace-weights says so; an output named twice.
    let th = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["train-head", "--weights", ws, "--data"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.push(data.to_str().unwrap().into());
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let args = th(&["--out", ws]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_refused(&args, &["--out", "--weights", "--replace-weights"], &w);
    let m = d.join("m.npz");
    std::fs::write(&m, b"old model").unwrap();
    let ms = m.to_str().unwrap();
    let args = th(&["--out", ms, "--log-steps", ms]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_refused(&args, &["--out", "--log-steps", "same file"], &m);
    let args = th(&[
        "--out",
        ms,
        "--log-steps",
        d.join("m.ckpt.npz").to_str().unwrap(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_refused(&args, &["checkpoint", "--log-steps"], &m);
    // --replace-weights lets --out be the backbone (here the run then stops at its missing
    // --data, after the output check), but no other output.
    let missing = d.join("no_such_data");
    let o = alexnet(&[
        "train-head",
        "--weights",
        ws,
        "--data",
        missing.to_str().unwrap(),
        "--replace-weights",
        "--out",
        ws,
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no_such_data") && !stderr(&o).contains("would"),
        "{}",
        stderr(&o)
    );
    let args = th(&["--replace-weights", "--out", ms, "--log-steps", ws]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_refused(&args, &["--log-steps", "--weights"], &w);

    // Two outputs of one run.
    let x = d.join("x.npy");
    let xs = x.to_str().unwrap();
    std::fs::write(&x, b"old").unwrap();
    assert_refused(
        &[
            "classify",
            "--weights",
            ws,
            "--logits-out",
            xs,
            "--features-out",
            xs,
            imgs,
        ],
        &["--logits-out", "--features-out", "same file"],
        &x,
    );
}

/// The first third of a JPEG: PIL and torchvision raise an error; it used to be classified
/// with confidence (both decode paths filled the missing rows with grey). Now a failed input on
/// the fast and the exact path, in classify and features, unless --allow-truncated.
#[test]
fn a_truncated_jpeg_is_a_failed_input_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let whole = std::fs::read(root().join("assets/images/chelsea.jpg")).unwrap();
    let cut = dir.path().join("cut.jpg");
    std::fs::write(&cut, &whole[..whole.len() / 3]).unwrap();
    let weights = fixture("torchvision_small.npz");
    let (w, c) = (weights.to_str().unwrap(), cut.to_str().unwrap());
    for exact in [&[][..], &["--exact-resize"][..]] {
        let mut args = vec!["classify", "--weights", w, c, "assets/images/coffee.jpg"];
        args.extend_from_slice(exact);
        let o = alexnet(&args);
        assert_eq!(o.status.code(), Some(1), "{exact:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("cut.jpg")
                && stderr(&o).contains("truncated")
                && stderr(&o).contains("1 of 2 inputs failed"),
            "{}",
            stderr(&o)
        );
        assert!(!String::from_utf8_lossy(&o.stdout).contains("cut.jpg"));
        args.push("--allow-truncated");
        let o = alexnet(&args);
        assert_eq!(o.status.code(), Some(0), "{exact:?}: {}", stderr(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("cut.jpg"));
    }
    let data = dir.path().join("data");
    for (class, name) in [("a", "chelsea.jpg"), ("b", "coffee.jpg")] {
        std::fs::create_dir_all(data.join(class)).unwrap();
        std::fs::copy(
            root().join("assets/images").join(name),
            data.join(class).join(name),
        )
        .unwrap();
    }
    std::fs::copy(&cut, data.join("b/cut.jpg")).unwrap();
    let out = dir.path().join("f.npz");
    let o = alexnet(&[
        "features",
        "--weights",
        w,
        "--out",
        out.to_str().unwrap(),
        data.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cut.jpg") && stderr(&o).contains("truncated"),
        "{}",
        stderr(&o)
    );
}

/// Runs alexnet with `stdin` as its standard input, killed after 60 s (what used to hang).
fn alexnet_bounded(args: &[&str], stdin: std::process::Stdio) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_alexnet"))
        .args(args)
        .current_dir(root())
        .stdin(stdin)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run alexnet");
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed().as_secs() > 60 {
            let _ = child.kill();
            panic!("alexnet {args:?} still running after 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Reads that had no bound: `--labels /dev/zero` and `--list /dev/zero` grew a string until
/// the process was killed for memory, and so did `-` fed from /dev/zero; a FIFO given as an
/// image blocked forever; FIFOs and dangling links in a folder were skipped without a word.
#[cfg(unix)]
#[test]
fn unbounded_and_blocking_inputs_are_refused() {
    let weights = fixture("torchvision_small.npz");
    let w = weights.to_str().unwrap();
    let img = "assets/images/chelsea.jpg";
    for (args, want) in [
        (
            vec!["classify", "--weights", w, "--labels", "/dev/zero", img],
            "/dev/zero",
        ),
        (
            vec!["classify", "--weights", w, "--list", "/dev/zero"],
            "/dev/zero",
        ),
        (vec!["classify", "--weights", w, "-"], "<stdin>"),
    ] {
        let zero = std::fs::File::open("/dev/zero").unwrap();
        let o = alexnet_bounded(&args, zero.into());
        assert!(!o.status.success(), "{args:?}");
        // A device is refused before it is read; standard input after the cap.
        assert!(
            stderr(&o).contains(want)
                && (stderr(&o).contains("bytes") || stderr(&o).contains("is a device")),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.jpg");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    std::os::unix::fs::symlink(dir.path().join("gone.jpg"), dir.path().join("dangling.jpg"))
        .unwrap();
    std::fs::copy(root().join(img), dir.path().join("real.jpg")).unwrap();
    // Named on the command line, and found in a folder: each a failed input, the rest run.
    for args in [
        vec!["classify", "--weights", w, fifo.to_str().unwrap(), img],
        vec!["classify", "--weights", w, dir.path().to_str().unwrap()],
    ] {
        let o = alexnet_bounded(&args, std::process::Stdio::null());
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("pipe.jpg") && err.contains("FIFO"), "{err}");
        assert!(String::from_utf8_lossy(&o.stdout).contains(".jpg"));
        if args.len() == 4 {
            assert!(err.contains("dangling.jpg"), "{err}");
            assert!(err.contains("2 of 3 inputs failed"), "{err}");
        }
    }
}

#[test]
fn eval_scores_a_one_class_folder() {
    // A model with class names; the folder holds one of them only.
    let dir = tempfile::tempdir().unwrap();
    let w = alexnet_wgpu::model::Weights::load(fixture("torchvision_small.npz"), None).unwrap();
    let classes: Vec<String> = (0..w.widths.classes)
        .map(|i| {
            if i == 3 {
                "cat".into()
            } else {
                format!("c{i}")
            }
        })
        .collect();
    let meta = alexnet_wgpu::weights::meta::ModelMeta {
        format: "alexnet-wgpu model".into(),
        version: alexnet_wgpu::weights::meta::META_VERSION,
        arch: "torchvision".into(),
        classes,
        head: None,
        preprocess: None,
    };
    let (json, names) = meta.to_strings();
    let model = dir.path().join("m.npz");
    w.save_npz(&model, alexnet_wgpu::weights::meta::entries(&json, &names))
        .unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("cat")).unwrap();
    std::fs::copy(
        root().join("assets/images/chelsea.jpg"),
        data.join("cat/chelsea.jpg"),
    )
    .unwrap();
    let o = alexnet(&[
        "eval",
        "--weights",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["count"], 1, "{v}");
}

/// The three photos of `input_224.npy`, in its order.
const TAP_PHOTOS: [&str; 3] = [
    "assets/images/chelsea.jpg",
    "assets/images/coffee.jpg",
    "assets/images/astronaut.jpg",
];

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |m, x| m.max(x.abs()))
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

/// `features --layer fc6|fc7` on the photos of `input_224`, written with --out (the `layer`
/// recorded) and printed with --format jsonl (the same rows), against two independent
/// references: PyTorch's classifier[2] / classifier[5] (`torchvision_taps.npz`, computed from
/// PIL's preprocessing, so within the preprocessing's difference: 2 % of the largest value,
/// measured under 0.5 %), and the CPU reference network (f64 sums) on our own exact-path
/// tensors, to 1e-4. A pre-ReLU fc7, or fc6 given for fc7, is off by far more than either.
#[test]
fn features_at_fc6_and_fc7_match_pytorch_and_the_cpu_reference() {
    use alexnet_wgpu::data::{prepare, LoadOptions, Preprocess};
    use alexnet_wgpu::kernels::dense;
    use alexnet_wgpu::model::{reference::forward_cpu, Weights};

    let dir = tempfile::tempdir().unwrap();
    let weights = fixture("torchvision_small.npz");
    let ws = weights.to_str().unwrap();
    let taps = read_tensors(&fixture("torchvision_taps.npz")).unwrap();
    // The CPU reference: pool5 of our exact-path tensors, then fc6 -> ReLU -> fc7 -> ReLU.
    let w = Weights::load(&weights, None).unwrap();
    let pre = Preprocess::for_arch(w.arch);
    let exact = LoadOptions {
        exact: true,
        ..Default::default()
    };
    let x: Vec<f32> = TAP_PHOTOS
        .iter()
        .flat_map(|p| prepare(&root().join(p), &pre, exact).unwrap())
        .collect();
    let pool5 = forward_cpu(&w, &x, 3, pre.crop, pre.crop)
        .unwrap()
        .1
        .unwrap();
    let fc = |x: &[f32], name: &str| {
        let (wt, b) = (format!("{name}.weight"), format!("{name}.bias"));
        dense::reference(w.get(&wt), w.get(&b), x, 3, true)
    };
    let fc6 = fc(&pool5, "fc6");
    let fc7 = fc(&fc6, "fc7");
    for (layer, cpu) in [("fc6", &fc6), ("fc7", &fc7)] {
        let torch = taps.iter().find(|t| t.key == layer).unwrap();
        let out = dir.path().join(format!("{layer}.npz"));
        let mut args = vec![
            "features",
            "--weights",
            ws,
            "--layer",
            layer,
            "--exact-resize",
        ];
        args.extend(TAP_PHOTOS);
        let o = alexnet(&[&args[..], &["--out", out.to_str().unwrap()]].concat());
        assert!(o.status.success(), "{layer}: {}", stderr(&o));
        let got = read_tensors(&out)
            .unwrap()
            .into_iter()
            .find(|t| t.key == "features")
            .unwrap();
        assert_eq!(got.shape, torch.shape, "{layer}");
        let got = got.data.unwrap();
        let layer_key = alexnet_wgpu::weights::read_strings(&out, "layer").unwrap();
        assert_eq!(layer_key, Some(vec![layer.to_string()]));
        let want = torch.data.as_ref().unwrap();
        let (d, scale) = (max_diff(&got, want), max_abs(want));
        eprintln!(
            "{layer}: CLI vs PyTorch max |diff| {d} ({:.3} %)",
            100.0 * d / scale
        );
        assert!(
            d <= 0.02 * scale,
            "{layer} vs PyTorch: {d} > 2 % of {scale}"
        );
        let d = max_diff(&got, cpu);
        assert!(
            d <= 1e-4 * max_abs(cpu),
            "{layer} vs the CPU reference: {d}"
        );
        // --format jsonl: the same rows, in input order.
        let o = alexnet(&[&args[..], &["--format", "jsonl"]].concat());
        assert!(o.status.success(), "{layer}: {}", stderr(&o));
        let lines: Vec<serde_json::Value> = String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let dim = torch.shape[1];
        assert_eq!(lines.len(), 3);
        for (i, l) in lines.iter().enumerate() {
            assert_eq!(l["input"], TAP_PHOTOS[i]);
            let row: Vec<f32> = l["features"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            assert_eq!(row, got[i * dim..(i + 1) * dim], "{layer}: row {i}");
        }
    }
}

/// `features --data DIR` with a single class folder extracts its features (one class is a
/// training problem, not a feature-extraction one); `train-head --features` then refuses the
/// file for holding one class, and an fc7 file for its layer, naming the file, the layer and
/// the one expected.
#[test]
fn features_of_a_single_class_folder_and_train_head_refusing_fc7_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let class = data.join("coffee");
    std::fs::create_dir_all(&class).unwrap();
    for p in ["assets/images/coffee.jpg", "assets/images/chelsea.jpg"] {
        let name = Path::new(p).file_name().unwrap();
        std::fs::copy(root().join(p), class.join(name)).unwrap();
    }
    let weights = fixture("torchvision_small.npz");
    let ws = weights.to_str().unwrap();
    let ds = data.to_str().unwrap();
    for layer in ["pool5", "fc7"] {
        let out = dir.path().join(format!("{layer}.npz"));
        let os = out.to_str().unwrap();
        // pool5 by default: the single-class case runs as before `--layer` existed.
        let mut args = vec!["features", "--weights", ws, "--data", ds, "--out", os];
        if layer != "pool5" {
            args.extend(["--layer", layer]);
        }
        let o = alexnet(&args);
        assert!(o.status.success(), "{layer}: {}", stderr(&o));
        assert!(stderr(&o).contains("2 images x"), "{}", stderr(&o));
        let set = alexnet_wgpu::train::FeatureSet::load(&out);
        let o = alexnet(&["train-head", "--weights", ws, "--features", os]);
        assert!(!o.status.success(), "{layer}: train-head accepted {os}");
        let e = stderr(&o);
        if layer == "pool5" {
            let set = set.unwrap();
            assert_eq!(
                (set.len(), set.dim, &set.classes[..]),
                (2, 1008, &["coffee".to_string()][..])
            );
            assert!(e.contains("single class"), "{e}");
        } else {
            assert!(set.is_err());
            assert!(
                e.contains(os) && e.contains("fc7") && e.contains("expected pool5"),
                "{e}"
            );
        }
    }
}

/// Under `--validate` with every backend probed (no `WGPU_BACKEND`): the GL backend's EGL probe
/// fails at error level on a machine without a GL driver ("DRI2: failed to load driver"),
/// which used to fail the Vulkan device's first read-back. Only the device's own backend's
/// driver messages count now (`gpu::validation::concerns_backend`).
#[test]
fn validate_ignores_other_backends_probing_errors() {
    let o = Command::new(env!("CARGO_BIN_EXE_alexnet"))
        .args([
            "classify",
            "--validate",
            "--weights",
            fixture("torchvision_small.npz").to_str().unwrap(),
            "assets/images/chelsea.jpg",
        ])
        .env_remove("WGPU_BACKEND")
        .env_remove("ALEXNET_VALIDATE")
        .current_dir(root())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Piped (stderr not a terminal, where the bar draws nothing), `features` prints plain progress
/// lines (as `eval` and `train-head` do, through the same `cli::meter`), and says "1 image".
#[test]
fn features_prints_progress_lines_when_piped() {
    let dir = tempfile::tempdir().unwrap();
    let weights = fixture("torchvision_small.npz");
    let data = root().join("tests/fixtures/train_data");
    let out = dir.path().join("f.npz");
    let o = alexnet(&[
        "features",
        "--weights",
        weights.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--batch",
        "16",
        "--out",
        out.to_str().unwrap(),
    ]);
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    assert!(e.contains("features: 16/60 images"), "{e}");
    let o = alexnet(&[
        "features",
        "--weights",
        weights.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "assets/images/chelsea.jpg",
    ]);
    let e = stderr(&o);
    assert!(o.status.success() && e.contains("(1 image x"), "{e}");
}
