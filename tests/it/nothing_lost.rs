//! Issue 28's defects in the newest commands, each end to end with files that really load (so
//! that before the fix the command ran to exit 0 and replaced the input): `lpips` outputs
//! against its images, weights, pair list and each other; `train-head --log-steps` / `--plot`
//! against the images inside `--data` and `--val`; an ONNX model's external data file as
//! `convert`'s output; weights and the tuner cache that are FIFOs or `/dev/zero`. The walk over
//! every subcommand is `files_tests` in the binary (`cargo test --release --bin alexnet`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, fixture, stderr};
use alexnet_wgpu::weights::onnx::proto::{ModelProto, StringStringEntryProto};
use prost::Message;

fn alexnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_alexnet"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Exit 2 naming the refusal, and `keep` (a file, or a symbolic link) unchanged.
fn assert_refused(args: &[&str], keep: &Path) {
    let link = std::fs::read_link(keep).ok();
    let before = std::fs::read(keep).unwrap();
    let o = alexnet(args);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
    assert!(
        [
            "would overwrite",
            "would replace",
            "name the same file",
            "would write"
        ]
        .iter()
        .any(|w| e.contains(w)),
        "{args:?}: {e}"
    );
    assert_eq!(
        std::fs::read(keep).unwrap(),
        before,
        "{args:?}: {keep:?} changed"
    );
    assert_eq!(
        std::fs::read_link(keep).ok(),
        link,
        "{args:?}: {keep:?} replaced"
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn lpips_outputs_never_replace_an_input_or_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let trunk = common::lpips_trunk::trunk_npz(d);
    let w = s(&trunk);
    let imgs = d.join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    let (a, b) = (imgs.join("a.png"), imgs.join("b.png"));
    std::fs::copy(fixture("lpips/sq_a.png"), &a).unwrap();
    std::fs::copy(fixture("lpips/sq_b.png"), &b).unwrap();
    let list = d.join("pairs.txt");
    std::fs::write(&list, format!("{}\t{}\n", a.display(), b.display())).unwrap();
    let m = d.join("m.npy");
    std::fs::write(&m, b"old matrix").unwrap();
    let spatial = d.join("maps");
    std::fs::create_dir(&spatial).unwrap();
    let map1 = spatial.join("pair-00001.npy");
    std::fs::write(&map1, b"old map").unwrap();
    let w_in_maps = spatial.join("pair-00002.npy");
    std::fs::copy(&trunk, &w_in_maps).unwrap();

    // --out over an input image, the weights, the pair list and an entry of it.
    assert_refused(&["lpips", "--weights", w, "--out", s(&a), s(&a), s(&b)], &a);
    assert_refused(&["lpips", "--weights", w, "--out", w, s(&a), s(&b)], &trunk);
    let l = s(&list);
    assert_refused(&["lpips", "--weights", w, "--pairs", l, "--out", l], &list);
    assert_refused(&["lpips", "--weights", w, "--pairs", l, "--out", s(&b)], &b);
    // The same list on standard input: its pairs are compared once read.
    let before = std::fs::read(&b).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_alexnet"))
        .args(["lpips", "--weights", w, "--pairs", "-", "--out", s(&b)])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        std::fs::read(&list).unwrap().as_slice(),
    )
    .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("would overwrite"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&b).unwrap(), before);
    // --matrix-out over an image of the --all-pairs folder, the weights, --out.
    let all = ["lpips", "--weights", w, "--all-pairs", s(&imgs)];
    assert_refused(&[&all[..], &["--matrix-out", s(&a)]].concat(), &a);
    assert_refused(&[&all[..], &["--matrix-out", w]].concat(), &trunk);
    assert_refused(
        &[&all[..], &["--matrix-out", s(&m), "--out", s(&m)]].concat(),
        &m,
    );
    // --spatial's pair-NNNNN.npy over --out, over the weights, over an input.
    let sp = ["lpips", "--weights", w, "--spatial", s(&spatial)];
    assert_refused(
        &[&sp[..], &["--out", s(&map1), s(&a), s(&b)]].concat(),
        &map1,
    );
    // ... and its heatmap pair-NNNNN.png over --out.
    let png1 = spatial.join("pair-00001.png");
    std::fs::write(&png1, b"old heatmap").unwrap();
    assert_refused(
        &[&sp[..], &["--out", s(&png1), s(&a), s(&b)]].concat(),
        &png1,
    );
    assert_refused(
        &[
            "lpips",
            "--weights",
            s(&w_in_maps),
            "--spatial",
            s(&spatial),
            s(&a),
            s(&b),
        ],
        &w_in_maps,
    );
    // A --matrix-out that is a symbolic link to an input: the input stays, the link stays.
    #[cfg(unix)]
    {
        let link = d.join("link.npy");
        std::os::unix::fs::symlink(&a, &link).unwrap();
        assert_refused(&[&all[..], &["--matrix-out", s(&link)]].concat(), &link);
        assert_refused(&[&all[..], &["--matrix-out", s(&link)]].concat(), &a);
    }
    // The same run with outputs elsewhere works (the refusals above are not of the run).
    let o = alexnet(&[&all[..], &["--matrix-out", s(&d.join("ok.npy"))]].concat());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn train_head_logs_and_plots_never_replace_images_of_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let val = d.join("val");
    for (to, from) in [(&data, "train_data"), (&val, "train_data")] {
        for class in std::fs::read_dir(fixture(from)).unwrap().flatten() {
            let dest = to.join(class.file_name());
            std::fs::create_dir_all(&dest).unwrap();
            for f in std::fs::read_dir(class.path()).unwrap().flatten() {
                std::fs::copy(f.path(), dest.join(f.file_name())).unwrap();
            }
        }
    }
    let first = |root: &Path| -> (PathBuf, PathBuf) {
        let mut classes: Vec<PathBuf> = std::fs::read_dir(root)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        classes.sort();
        let mut imgs: Vec<PathBuf> = std::fs::read_dir(&classes[0])
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        imgs.sort();
        (classes[0].clone(), imgs[0].clone())
    };
    let (class, img) = first(&data);
    let (vclass, vimg) = first(&val);
    // An image that --plot would replace.
    let curves = class.join("curves.png");
    std::fs::copy(&img, &curves).unwrap();
    let vcurves = vclass.join("curves.png");
    std::fs::copy(&vimg, &vcurves).unwrap();
    let w = fixture("torchvision_small.npz");
    let out = d.join("m.npz");
    let base = [
        "train-head",
        "--weights",
        s(&w),
        "--data",
        s(&data),
        "--epochs",
        "1",
        "--out",
        s(&out),
    ];
    assert_refused(&[&base[..], &["--log-steps", s(&img)]].concat(), &img);
    assert_refused(&[&base[..], &["--plot", s(&class)]].concat(), &curves);
    let with_val = [&base[..], &["--val", s(&val)]].concat();
    assert_refused(&[&with_val[..], &["--log-steps", s(&vimg)]].concat(), &vimg);
    assert_refused(&[&with_val[..], &["--plot", s(&vclass)]].concat(), &vcurves);
    assert!(!out.exists());
}

/// `torchvision_small_torch.onnx` with every initializer moved to one external data file
/// `name` beside it (offset and length given, as onnx's `save_model` writes them).
fn with_external_data(dir: &Path, name: &str) -> PathBuf {
    let mut model = ModelProto::decode(
        std::fs::read(fixture("torchvision_small_torch.onnx"))
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    let mut data = Vec::new();
    for t in &mut model.graph.as_mut().unwrap().initializer {
        let bytes: Vec<u8> = if !t.raw_data.is_empty() {
            std::mem::take(&mut t.raw_data)
        } else if !t.float_data.is_empty() {
            std::mem::take(&mut t.float_data)
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect()
        } else {
            continue;
        };
        let entry = |k: &str, v: String| StringStringEntryProto {
            key: k.into(),
            value: v,
        };
        t.data_location = 1;
        t.external_data = vec![
            entry("location", name.into()),
            entry("offset", data.len().to_string()),
            entry("length", bytes.len().to_string()),
        ];
        data.extend_from_slice(&bytes);
    }
    std::fs::write(dir.join(name), &data).unwrap();
    let path = dir.join("model.onnx");
    std::fs::write(&path, model.encode_to_vec()).unwrap();
    path
}

#[test]
fn an_onnx_models_external_data_is_an_input() {
    let dir = tempfile::tempdir().unwrap();
    let model = with_external_data(dir.path(), "ext.onnx");
    let ext = dir.path().join("ext.onnx");
    // The model loads (its weights are those of the file it was made from)...
    let got = alexnet_wgpu::model::Weights::load(&model, None).unwrap();
    let want =
        alexnet_wgpu::model::Weights::load(fixture("torchvision_small_torch.onnx"), None).unwrap();
    assert_eq!(got.tensors, want.tensors);
    // ...so its external data file is an input of every command that reads it, and of the
    // library's conversion.
    let before = std::fs::read(&ext).unwrap();
    let e = alexnet_wgpu::fetch::convert_file(&model, &ext, None).unwrap_err();
    assert!(e.to_string().contains("would overwrite"), "{e}");
    assert_eq!(std::fs::read(&ext).unwrap(), before);
    assert_refused(&["convert", s(&model), s(&ext)], &ext);
    assert_refused(&["export", "--weights", s(&model), s(&ext)], &ext);
    let ext_npy = dir.path().join("ext.npy");
    std::fs::copy(&ext, &ext_npy).unwrap();
    let model2 = with_external_data(dir.path(), "ext.npy");
    assert_refused(
        &[
            "classify",
            "--weights",
            s(&model2),
            "--logits-out",
            s(&ext_npy),
            s(&common::root().join("assets/images/camera.png")),
        ],
        &ext_npy,
    );
}

/// Runs `f` on another thread; fails when it has not returned within 10 s (a FIFO opened for
/// reading blocks until a writer comes).
fn within_10_s<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{what}: still reading after 10 s"))
}

#[cfg(unix)]
#[test]
fn weights_and_the_tuner_cache_that_are_not_regular_files_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    for ext in ["onnx", "safetensors", "h5", "keras", "pth", "npz", "npy"] {
        let fifo = dir.path().join(format!("w-fifo.{ext}"));
        assert!(Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let zero = dir.path().join(format!("w-zero.{ext}"));
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        for (p, kind) in [(fifo, "FIFO"), (zero, "device")] {
            let started = Instant::now();
            let q = p.clone();
            let e = within_10_s(&p.display().to_string(), move || {
                alexnet_wgpu::model::Weights::load(&q, None)
                    .err()
                    .map(|e| e.to_string())
            })
            .unwrap_or_else(|| panic!("{}: loaded", p.display()));
            assert!(e.contains(kind) && e.contains("w-"), "{}: {e}", p.display());
            assert!(started.elapsed() < Duration::from_secs(2));
            // The model's class names are read the same way (classify, eval).
            let q = p.clone();
            let _ = within_10_s("ModelMeta::read", move || {
                alexnet_wgpu::weights::meta::ModelMeta::read(&q).map(|_| ())
            });
        }
    }
    // The tuner cache every GPU command reads: a warning, at once, and no entries.
    for (name, make) in [("fifo", true), ("zero", false)] {
        let p = dir.path().join(format!("tune-{name}.json"));
        if make {
            assert!(Command::new("mkfifo").arg(&p).status().unwrap().success());
        } else {
            std::os::unix::fs::symlink("/dev/zero", &p).unwrap();
        }
        let q = p.clone();
        let (file, warning) =
            within_10_s("tune::read", move || alexnet_wgpu::model::tune::read(&q));
        assert!(file.entries.is_empty());
        let w = warning.unwrap_or_default();
        assert!(w.contains("not a regular file"), "{w}");
    }
}
