//! The facade (`AlexNet`) against independent references: `forward` on onnxruntime's logits,
//! `classify` on the same batch as the CLI's pipeline, `embed` at pool5/fc6/fc7 against the
//! CPU reference network (f64 accumulation), `save` round trip; and the examples run on the
//! fixtures. Tolerances as tests/it/network.rs (1e-4 of the largest value: f32 sums in another
//! order than onnxruntime's or the f64 reference).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use alexnet_wgpu::kernels::dense;
use alexnet_wgpu::model::reference::forward_cpu;
use alexnet_wgpu::model::TapLayers;
use alexnet_wgpu::weights::read_tensors;
use alexnet_wgpu::{AlexNet, ImageBatch, InputErrorKind, Tap};
use common::fixture_npy as npy;
use common::{assert_close, fixture};

fn net() -> AlexNet {
    AlexNet::builder()
        .weights(fixture("torchvision_small.npz"))
        .options(common::env_options())
        .build()
        .unwrap()
}

#[test]
fn forward_matches_onnxruntime() {
    let net = net();
    let (shape, x) = npy("input_224.npy");
    let batch = ImageBatch::new(x, shape[0], shape[2], shape[3]).unwrap();
    let out = net.forward(&batch).unwrap();
    assert_close(
        "logits",
        &out.logits,
        &npy("torchvision_logits.npy").1,
        1e-4,
    );
    assert!(ImageBatch::new(vec![0.0; 5], 1, 2, 2).is_err());
}

fn images() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/images");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn classify_and_embed_follow_the_reference_network() {
    let net = net();
    let mut paths = images();
    paths.insert(1, PathBuf::from("no/such/image.jpg"));
    let results = net.classify(&paths, 3).unwrap();
    assert_eq!(results.len(), paths.len());
    let missing = results[1].error.as_ref().expect("the missing image failed");
    assert_eq!(missing.kind, InputErrorKind::NotFound, "{missing}");
    assert_eq!(missing.path, paths[1]);
    assert!(missing.to_string().contains("image.jpg"), "{missing}");
    let good: Vec<PathBuf> = images();
    let batch = ImageBatch::from_files(&good, net.transforms()).unwrap();
    let (h, w) = batch.size();
    let (want_logits, want_pool5) =
        forward_cpu(net.weights(), batch.as_slice(), good.len(), h, w).unwrap();
    let want_pool5 = want_pool5.unwrap();
    let classes = net.classes().len();
    for (i, r) in results.iter().filter(|r| r.error.is_none()).enumerate() {
        assert_eq!(r.path, good[i]);
        assert_eq!(r.top.len(), 3);
        let logits = &want_logits[i * classes..(i + 1) * classes];
        let best = (0..classes)
            .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
            .unwrap();
        assert_eq!(r.top[0].class, best, "{}", r.path.display());
        assert_eq!(r.top[0].label, net.classes()[best]);
        assert!(r.top.windows(2).all(|p| p[0].prob >= p[1].prob));
    }
    // Embeddings: pool5 straight from the reference, fc6 and fc7 through its dense layers.
    let n = good.len();
    let wts = net.weights();
    let fc = |x: &[f32], name: &str| {
        dense::reference(
            wts.get(&format!("{name}.weight")),
            wts.get(&format!("{name}.bias")),
            x,
            n,
            true,
        )
    };
    let fc6 = fc(&want_pool5, "fc6");
    let fc7 = fc(&fc6, "fc7");
    for (tap, want) in [
        (Tap::Pool5, &want_pool5),
        (Tap::Fc6, &fc6),
        (Tap::Fc7, &fc7),
    ] {
        let e = net.embed(&good, tap).unwrap();
        assert_eq!((e.len(), e.rows.len()), (n, want.len()), "{tap:?}");
        assert_close(&format!("{tap:?}"), &e.rows, want, 1e-4);
    }
}

/// The taps' frozen dense layers on PyTorch's own pool5 (`torchvision_pool5.npy`) give
/// PyTorch's fc6 and fc7 (`torchvision_taps.npz`: classifier[2] and classifier[5], the ReLUs
/// after fc6 and fc7), to 1e-4 of the largest value; pool5 passes through.
#[test]
fn tap_layers_reproduce_pytorch_fc6_and_fc7() {
    let net = net();
    let (shape, pool5) = npy("torchvision_pool5.npy");
    let taps = read_tensors(&common::fixture("torchvision_taps.npz")).unwrap();
    for (tap, want) in [(Tap::Fc6, &taps[0]), (Tap::Fc7, &taps[1])] {
        assert_eq!(want.key, tap.name());
        let mut layers = TapLayers::new(net.context(), net.weights(), tap, shape[1]).unwrap();
        let got = layers.apply(net.context(), &pool5).unwrap();
        assert_eq!([shape[0], layers.dim()], want.shape[..], "{tap}");
        assert_close(tap.name(), &got, want.data.as_ref().unwrap(), 1e-4);
    }
    let mut layers = TapLayers::new(net.context(), net.weights(), Tap::Pool5, shape[1]).unwrap();
    assert_eq!(layers.apply(net.context(), &pool5).unwrap(), &pool5[..]);
    // pool5 rows of the wrong width are refused, naming both widths.
    let err = TapLayers::new(net.context(), net.weights(), Tap::Fc7, 9216)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("9216") && err.contains("1008"), "{err}");
}

#[test]
fn save_round_trips_with_class_names() {
    let net = net();
    let dir = tempfile::tempdir().unwrap();
    for ext in ["npz", "safetensors", "onnx"] {
        let path = dir.path().join(format!("model.{ext}"));
        net.save(&path).unwrap();
        let again = AlexNet::from_file(&path).unwrap();
        assert_eq!(again.classes(), net.classes());
        let (shape, x) = npy("input_224.npy");
        let batch = ImageBatch::new(x, shape[0], shape[2], shape[3]).unwrap();
        assert_eq!(
            again.forward(&batch).unwrap().logits,
            net.forward(&batch).unwrap().logits,
            "{ext}"
        );
    }
    assert!(net.save(dir.path().join("model.txt")).is_err());
}

/// The examples, built by `cargo test`, run on the fixtures.
#[test]
fn examples_run_on_the_fixtures() {
    let examples = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples");
    let run = |name: &str, args: &[&std::ffi::OsStr]| -> String {
        let out = Command::new(examples.join(name))
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("examples/{name}: {e} (built by `cargo test`)"));
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let weights = fixture("torchvision_small.npz");
    let imgs = images();
    let text = run("classify", &[weights.as_os_str(), imgs[0].as_os_str()]);
    assert_eq!(text.lines().count(), 6, "{text}");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fc7.npy");
    let images_dir = imgs[0].parent().unwrap();
    run(
        "embed",
        &[weights.as_os_str(), images_dir.as_os_str(), out.as_os_str()],
    );
    let t = read_tensors(&out).unwrap().remove(0);
    assert_eq!(t.shape[0], imgs.len());
    let lpips = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lpips");
    let trunk = common::lpips_trunk::trunk_npz(dir.path());
    let text = run(
        "lpips",
        &[
            trunk.as_os_str(),
            lpips.join("sq_a.png").as_os_str(),
            lpips.join("sq_b.png").as_os_str(),
        ],
    );
    assert!(text.starts_with("LPIPS (v0.1): "), "{text}");
    let data = fixture("train_data");
    let model = dir.path().join("mine.npz");
    let text = run(
        "fine_tune",
        &[weights.as_os_str(), data.as_os_str(), model.as_os_str()],
    );
    assert!(text.contains("validation accuracy"), "{text}");
    let again = AlexNet::from_file(&model).unwrap();
    assert_eq!(again.classes().len(), 3);
}

/// `images_in`: every image below a folder, sorted, recursively; a missing or image-less
/// folder is an error naming it.
#[test]
fn images_in_lists_a_folder_sorted_and_names_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    for name in ["b.jpg", "a.PNG", "sub/c.webp", "notes.txt"] {
        std::fs::write(dir.path().join(name), b"x").unwrap();
    }
    let found = alexnet_wgpu::images_in(dir.path()).unwrap();
    let rel: Vec<_> = found
        .iter()
        .map(|p| p.strip_prefix(dir.path()).unwrap().to_path_buf())
        .collect();
    assert_eq!(
        rel,
        [
            Path::new("a.PNG"),
            Path::new("b.jpg"),
            Path::new("sub/c.webp")
        ]
    );
    let empty = tempfile::tempdir().unwrap();
    for bad in [empty.path().to_path_buf(), dir.path().join("missing")] {
        let e = alexnet_wgpu::images_in(&bad).unwrap_err().to_string();
        assert!(e.contains(&bad.display().to_string()), "{e}");
    }
}

/// The error's `Debug` is its message (what `fn main() -> alexnet_wgpu::Result<()>` prints).
#[test]
fn errors_debug_as_their_message() {
    let e = AlexNet::from_file("no/such/weights.npz").unwrap_err();
    assert_eq!(format!("{e:?}"), e.to_string());
    assert!(e.to_string().contains("no/such/weights.npz"), "{e}");
}
