//! `train-head`, `eval` and `features` end to end on a small committed dataset
//! (tests/fixtures/train_data: 3 classes x 20 crops of different photos) with the
//! reduced-width torchvision backbone of tests/fixtures.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common;

use alexnet_wgpu::model::Weights;
use alexnet_wgpu::weights::read_tensors;
use common::root;

fn backbone() -> String {
    root()
        .join("tests/fixtures/torchvision_small.npz")
        .display()
        .to_string()
}

fn data() -> String {
    root()
        .join("tests/fixtures/train_data")
        .display()
        .to_string()
}

fn alexnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_alexnet"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run alexnet")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn train(out: &Path, extra: &[&str]) -> Output {
    let (b, d, o) = (backbone(), data(), out.display().to_string());
    let mut args = vec![
        "train-head",
        "--weights",
        &b,
        "--data",
        &d,
        "--head",
        "classifier",
        "--optimizer",
        "adam",
        "--lr",
        "0.001",
        "--dropout",
        "0.2",
        "--batch",
        "8",
        "--epochs",
        "12",
        "--seed",
        "3",
        "--out",
        &o,
    ];
    args.extend_from_slice(extra);
    alexnet(&args)
}

fn tensors(p: &Path) -> Vec<(String, Vec<f32>)> {
    read_tensors(p)
        .unwrap()
        .into_iter()
        .filter_map(|t| t.data.ok().map(|d| (t.key, d)))
        .collect()
}

#[test]
fn trains_a_classifier_head_that_classify_and_eval_use() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.npz");
    let log = dir.path().join("steps.csv");
    let plots = dir.path().join("plots");
    let stdout = ok(&train(
        &model,
        &[
            "--log-steps",
            log.to_str().unwrap(),
            "--plot",
            plots.to_str().unwrap(),
        ],
    ));
    for png in ["curves.png", "confusion.png"] {
        let img = image::open(plots.join(png)).unwrap();
        assert!(img.width() > 200 && img.height() > 100, "{png}");
    }
    // High validation accuracy on held-out crops (12 images, 4 per class).
    let acc: f64 = stdout
        .split("accuracy ")
        .nth(1)
        .unwrap()
        .split('%')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(acc >= 90.0, "validation accuracy {acc}%\n{stdout}");
    // The model is the backbone with a 3-class head, in torchvision names.
    let w = Weights::load(&model, None).unwrap();
    assert_eq!(w.widths.classes, 3);
    assert_eq!(w.get("fc8.weight").len(), 3 * 90);
    // The step log: one line per step (48 training images / 8 = 6 steps x 12 epochs).
    let csv = std::fs::read_to_string(&log).unwrap();
    assert_eq!(csv.lines().count(), 1 + 6 * 12, "{csv}");
    // classify prints the user's class names.
    let out = ok(&alexnet(&[
        "classify",
        "--weights",
        model.to_str().unwrap(),
        "--top",
        "1",
        "assets/images/rocket.jpg",
        "assets/images/coffee.jpg",
    ]));
    assert!(out.contains("rocket") && out.contains("coffee"), "{out}");
    // eval reads the class names from the model and scores the folders.
    let out = ok(&alexnet(&[
        "eval",
        "--weights",
        model.to_str().unwrap(),
        "--data",
        &data(),
        "--format",
        "json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["classes"], serde_json::json!(["cat", "coffee", "rocket"]));
    assert!(v["accuracy"].as_f64().unwrap() >= 0.9, "{out}");
    assert_eq!(v["count"], 60);
}

#[test]
fn same_seed_same_weights_and_resume_matches_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a.npz"),
        dir.path().join("b.npz"),
        dir.path().join("c.npz"),
    );
    ok(&train(&a, &[]));
    ok(&train(&b, &[]));
    assert_eq!(
        tensors(&a),
        tensors(&b),
        "two runs with the same seed differ"
    );
    // Interrupted after 5 of 12 epochs, then resumed.
    ok(&train(&c, &["--interrupt-after", "5"]));
    assert!(dir.path().join("c.ckpt.npz").exists());
    ok(&train(&c, &["--resume"]));
    assert_eq!(
        tensors(&a),
        tensors(&c),
        "resumed run differs from the uninterrupted one"
    );
}

#[test]
fn last_head_from_exported_features() {
    let dir = tempfile::tempdir().unwrap();
    let feats = dir.path().join("f.npz");
    ok(&alexnet(&[
        "features",
        "--weights",
        &backbone(),
        "--data",
        &data(),
        "--out",
        feats.to_str().unwrap(),
    ]));
    let t = read_tensors(&feats).unwrap();
    let f = t.iter().find(|t| t.key == "features").unwrap();
    assert_eq!(f.shape, vec![60, 1008]);
    let model = dir.path().join("m.npz");
    let o = alexnet(&[
        "train-head",
        "--weights",
        &backbone(),
        "--features",
        feats.to_str().unwrap(),
        "--epochs",
        "5",
        "--batch",
        "16",
        "--keep",
        "last",
        "--out",
        model.to_str().unwrap(),
    ]);
    let out = ok(&o);
    assert!(out.contains("validation: accuracy"), "{out}");
    // The summary says which epoch was saved.
    let err = stderr_of(&o);
    assert!(
        err.contains("(--keep last: epoch 5 of 5, the last; the lowest validation loss was epoch "),
        "{err}"
    );
    assert_eq!(Weights::load(&model, None).unwrap().widths.classes, 3);
}

fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn bad_data_gets_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let b = backbone();
    let run = |d: &Path| {
        alexnet(&[
            "train-head",
            "--weights",
            &b,
            "--data",
            d.to_str().unwrap(),
            "--epochs",
            "1",
            "--out",
            root.join("x.npz").to_str().unwrap(),
        ])
    };

    // No images at all.
    let empty = root.join("empty");
    std::fs::create_dir_all(empty.join("a")).unwrap();
    std::fs::create_dir_all(empty.join("b")).unwrap();
    let o = run(&empty);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr_of(&o).contains("no images"), "{}", stderr_of(&o));

    // One empty class folder.
    let one_empty = root.join("one_empty");
    std::fs::create_dir_all(one_empty.join("b")).unwrap();
    std::fs::create_dir_all(one_empty.join("a")).unwrap();
    std::fs::copy(root_img("chelsea.jpg"), one_empty.join("a/x.jpg")).unwrap();
    let o = run(&one_empty);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr_of(&o).contains("class folder(s) with no images: b"),
        "{}",
        stderr_of(&o)
    );

    // A single class.
    let single = root.join("single");
    std::fs::create_dir_all(single.join("a")).unwrap();
    std::fs::copy(root_img("chelsea.jpg"), single.join("a/x.jpg")).unwrap();
    let o = run(&single);
    assert!(stderr_of(&o).contains("single class"), "{}", stderr_of(&o));

    // Augmented views: each training image is cached several times.
    let o = alexnet(&[
        "train-head",
        "--weights",
        &b,
        "--data",
        &data(),
        "--augment",
        "2",
        "--epochs",
        "1",
        "--out",
        root.join("z.npz").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(
        stderr_of(&o).contains("training features: 48 images -> 96 cached rows"),
        "{}",
        stderr_of(&o)
    );

    // Unreadable images are warned about and skipped; training still runs.
    let mixed = root.join("mixed");
    for (class, img) in [("cat", "chelsea.jpg"), ("cup", "coffee.jpg")] {
        std::fs::create_dir_all(mixed.join(class)).unwrap();
        for i in 0..3 {
            std::fs::copy(root_img(img), mixed.join(format!("{class}/{i}.jpg"))).unwrap();
        }
    }
    std::fs::write(mixed.join("cat/broken.jpg"), b"not an image").unwrap();
    let o = run(&mixed);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(
        stderr_of(&o).contains("broken.jpg")
            && stderr_of(&o).contains("1 unreadable image was skipped"),
        "{}",
        stderr_of(&o)
    );

    // --init-head with the wrong shape.
    let init = root.join("init.npz");
    alexnet_wgpu::weights::write_npz(
        &init,
        &[
            (
                "classifier.6.weight".into(),
                alexnet_wgpu::weights::NpzEntry::F32(&[5, 90], &[0.0; 450]),
            ),
            (
                "classifier.6.bias".into(),
                alexnet_wgpu::weights::NpzEntry::F32(&[5], &[0.0; 5]),
            ),
        ],
    )
    .unwrap();
    let o = alexnet(&[
        "train-head",
        "--weights",
        &b,
        "--data",
        mixed.to_str().unwrap(),
        "--init-head",
        init.to_str().unwrap(),
        "--out",
        root.join("y.npz").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr_of(&o).contains("expected shape [2, 90]") && stderr_of(&o).contains("[5, 90]"),
        "{}",
        stderr_of(&o)
    );
}

fn root_img(name: &str) -> PathBuf {
    root().join("assets/images").join(name)
}

/// One pipeline cache per device: a whole `train-head` run (feature extraction with the
/// network, the frozen fc7 cache, two trainers, validation) compiles each pipeline once.
#[test]
fn train_head_compiles_each_pipeline_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.npz");
    let (b, d, o) = (backbone(), data(), out.display().to_string());
    let run = Command::new(env!("CARGO_BIN_EXE_alexnet"))
        .args([
            "train-head",
            "--weights",
            &b,
            "--data",
            &d,
            "--epochs",
            "2",
            "--batch",
            "16",
            "--out",
            &o,
        ])
        .env("ALEXNET_REPORT_PIPELINES", "1")
        .current_dir(root())
        .output()
        .unwrap();
    ok(&run);
    let err = String::from_utf8_lossy(&run.stderr);
    let counts: Vec<(&str, usize)> = err
        .lines()
        .filter_map(|l| l.strip_prefix("pipeline compiled: "))
        .map(|l| {
            let (name, n) = l.rsplit_once(" x").unwrap();
            (name, n.parse().unwrap())
        })
        .collect();
    // The forward pass, the fc6/fc7 cache and the trainer's forward, loss and optimizer.
    for used in [
        "max_pool.wgsl",
        "softmax.wgsl",
        "cross_entropy.wgsl",
        "sgd.wgsl",
    ] {
        assert!(
            counts.iter().any(|(n, _)| *n == used),
            "{used} not reported:\n{err}"
        );
    }
    for (name, n) in &counts {
        assert_eq!(*n, 1, "{name} compiled {n} times:\n{err}");
    }
}

/// `--train-from conv4` end to end: the saved model has conv1..conv3 bit-identical to the
/// backbone and conv4..fc8 trained, `eval` reads it, the step log has every step, and
/// `--resume` after an interruption gives the uninterrupted run's model (checkpoints carry the
/// convolutions and their optimizer state). `--train-from fc7` keeps fc6 frozen.
#[test]
fn train_from_conv4_and_fc7() {
    let dir = tempfile::tempdir().unwrap();
    let (b, d) = (backbone(), data());
    let run = |out: &Path, from: &str, extra: &[&str]| {
        let o = out.display().to_string();
        let mut args = vec![
            "train-head",
            "--weights",
            &b,
            "--data",
            &d,
            "--train-from",
            from,
            "--optimizer",
            "sgd",
            "--lr",
            "0.002",
            "--batch",
            "16",
            "--epochs",
            "3",
            "--seed",
            "5",
            "--out",
            &o,
        ];
        args.extend_from_slice(extra);
        alexnet(&args)
    };
    let (a, c) = (dir.path().join("a.npz"), dir.path().join("c.npz"));
    let log = dir.path().join("steps.csv");
    ok(&run(&a, "conv4", &["--log-steps", log.to_str().unwrap()]));
    let base: std::collections::BTreeMap<_, _> = tensors(Path::new(&b)).into_iter().collect();
    let got: std::collections::BTreeMap<_, _> = tensors(&a).into_iter().collect();
    let key = |layer: &str, part: &str| {
        let i = ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"]
            .iter()
            .position(|l| *l == layer)
            .unwrap();
        if i < 5 {
            format!("features.{}.{part}", [0, 3, 6, 8, 10][i])
        } else {
            format!("classifier.{}.{part}", [1, 4][i - 5])
        }
    };
    for layer in ["conv1", "conv2", "conv3"] {
        for part in ["weight", "bias"] {
            assert!(
                got[&key(layer, part)] == base[&key(layer, part)],
                "{layer} changed"
            );
        }
    }
    for layer in ["conv4", "conv5", "fc6", "fc7"] {
        assert!(
            got[&key(layer, "weight")] != base[&key(layer, "weight")],
            "{layer} not trained"
        );
    }
    // 48 training images / 16 = 3 steps x 3 epochs.
    let csv = std::fs::read_to_string(&log).unwrap();
    assert_eq!(csv.lines().count(), 1 + 3 * 3, "{csv}");
    let out = ok(&alexnet(&[
        "eval",
        "--weights",
        a.to_str().unwrap(),
        "--data",
        &d,
        "--format",
        "json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["count"], 60);
    // Interrupted after 1 of 3 epochs, then resumed: the same model.
    ok(&run(&c, "conv4", &["--interrupt-after", "1"]));
    ok(&run(&c, "conv4", &["--resume"]));
    assert_eq!(tensors(&a), tensors(&c), "resumed conv4 run differs");

    let f7 = dir.path().join("f7.npz");
    ok(&run(&f7, "fc7", &[]));
    let got: std::collections::BTreeMap<_, _> = tensors(&f7).into_iter().collect();
    assert!(
        got[&key("fc6", "weight")] == base[&key("fc6", "weight")],
        "fc6 changed"
    );
    assert!(
        got[&key("fc7", "weight")] != base[&key("fc7", "weight")],
        "fc7 not trained"
    );
    // A layer name that does not exist is refused, naming the choices.
    let o = run(&f7, "conv6", &[]);
    assert!(!o.status.success());
    assert!(
        stderr_of(&o).contains("conv1..conv5, fc6, fc7 or fc8"),
        "{}",
        stderr_of(&o)
    );
}

/// `--augment` with convolutions training draws fresh views every epoch: the frozen part's
/// input and output differ between epochs, the same (seed, epoch) gives the same bytes on a new
/// source (what `--resume` relies on), and the CLI run is reproducible from `--seed` and
/// resumes exactly mid-run.
#[test]
fn train_from_conv4_fresh_augmentations() {
    use alexnet_wgpu::data::{ClassFolders, Preprocess};
    use alexnet_wgpu::train::{check_readable, frozen_stack, FreshViews, HeadKind, TrainRows};
    let ctx = common::ctx();
    let w = Weights::load(Path::new(&backbone()), None).unwrap();
    let pre = Preprocess::for_arch(w.arch);
    let all = ClassFolders::scan(Path::new(&data())).unwrap();
    let (set, bad) = check_readable(&all, &pre, Default::default());
    assert!(bad.is_empty(), "{bad:?}");
    let fresh = |seed| {
        let stack = frozen_stack(&ctx, &w, HeadKind::Conv(4), &pre, 4).unwrap();
        FreshViews::new(&ctx, stack, &set, 2, &pre, Default::default(), seed)
    };
    let idx = [0, 1, 7, 40];
    let (mut a, mut b) = (fresh(5), fresh(5));
    assert_eq!(a.labels(&set.classes).len(), 2 * set.items.len());
    let (a0, a1) = (a.rows(0, &idx).unwrap(), a.rows(1, &idx).unwrap());
    assert_ne!(a0, a1, "epoch 1 saw the views of epoch 0");
    assert_ne!(
        a.images(0, &[0]).unwrap(),
        a.images(0, &[1]).unwrap(),
        "the two views of an image are the same"
    );
    assert_eq!(
        b.rows(1, &idx).unwrap(),
        a1,
        "same seed and epoch, other bytes"
    );
    assert_eq!(
        b.rows(0, &idx).unwrap(),
        a0,
        "same seed and epoch, other bytes"
    );
    assert_ne!(fresh(6).rows(0, &idx).unwrap(), a0, "the seed is not used");

    let dir = tempfile::tempdir().unwrap();
    let (b, d) = (backbone(), data());
    let run = |out: &Path, seed: &str, extra: &[&str]| {
        let o = out.display().to_string();
        let mut args = vec![
            "train-head",
            "--weights",
            &b,
            "--data",
            &d,
            "--train-from",
            "conv4",
            "--augment",
            "1",
            "--lr",
            "0.002",
            "--batch",
            "16",
            "--epochs",
            "2",
            "--seed",
            seed,
            "--out",
            &o,
        ];
        args.extend_from_slice(extra);
        alexnet(&args)
    };
    let (a, a2, c, s6) = (
        dir.path().join("a.npz"),
        dir.path().join("a2.npz"),
        dir.path().join("c.npz"),
        dir.path().join("s6.npz"),
    );
    let log = dir.path().join("a.csv");
    let err = stderr_of(&ok_out(run(
        &a,
        "5",
        &["--log-steps", log.to_str().unwrap()],
    )));
    assert!(
        err.contains("-> 1 fresh augmented view each per epoch"),
        "{err}"
    );
    ok(&run(&a2, "5", &[]));
    assert_eq!(tensors(&a), tensors(&a2), "same --seed, other model");
    ok(&run(&c, "5", &["--interrupt-after", "1"]));
    ok(&run(&c, "5", &["--resume"]));
    assert_eq!(
        tensors(&a),
        tensors(&c),
        "resumed fresh-augmentation run differs"
    );
    ok(&run(&s6, "6", &[]));
    assert_ne!(tensors(&a), tensors(&s6), "--seed changes nothing");
    // 48 training images x 1 view / 16 = 3 steps x 2 epochs.
    let csv = std::fs::read_to_string(&log).unwrap();
    assert_eq!(csv.lines().count(), 1 + 3 * 2, "{csv}");
}

fn ok_out(o: Output) -> Output {
    ok(&o);
    o
}

/// A frozen-part cache over `--cache-budget-mb` goes to a temporary file beside `--out` and
/// gives the same model and per-step losses bit for bit as the in-memory cache; the file is
/// gone after the run (a `PendingFile`: also removed by the Ctrl-C handler, see fsutil.rs).
#[test]
fn train_from_conv4_cache_spills_to_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (b, d) = (backbone(), data());
    let run = |out: &Path, log: &Path, budget: &str| {
        let (o, l) = (out.display().to_string(), log.display().to_string());
        alexnet(&[
            "train-head",
            "--weights",
            &b,
            "--data",
            &d,
            "--train-from",
            "conv4",
            "--lr",
            "0.002",
            "--batch",
            "16",
            "--epochs",
            "2",
            "--seed",
            "3",
            "--out",
            &o,
            "--log-steps",
            &l,
            "--cache-budget-mb",
            budget,
        ])
    };
    let p = |n: &str| dir.path().join(n);
    let mem = stderr_of(&ok_out(run(&p("m.npz"), &p("m.csv"), "2048")));
    assert!(mem.contains("in memory"), "{mem}");
    let disk = stderr_of(&ok_out(run(&p("d.npz"), &p("d.csv"), "0")));
    assert!(disk.contains("on disk in"), "{disk}");
    assert!(disk.contains(".alexnet-cache-"), "{disk}");
    assert_eq!(
        tensors(&p("m.npz")),
        tensors(&p("d.npz")),
        "spilled cache, other model"
    );
    assert_eq!(
        std::fs::read_to_string(p("m.csv")).unwrap(),
        std::fs::read_to_string(p("d.csv")).unwrap(),
        "spilled cache, other losses"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.contains("alexnet-cache") || n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "cache file left behind: {left:?}");
}

/// The spill file itself: rows read back are the bytes written, in any order; it is in the
/// pending-file registry while it lives (so the Ctrl-C handler removes it) and gone on drop.
#[test]
fn spill_file_round_trip_and_cleanup() {
    use alexnet_wgpu::train::{SpillFile, TrainRows};
    let dir = tempfile::tempdir().unwrap();
    let rows = common::random(5 * 3, 1, 1.0);
    let mut f = SpillFile::new_in(dir.path(), 3).unwrap();
    let path = f.path().to_path_buf();
    assert!(alexnet_wgpu::fsutil::pending_count() >= 1);
    f.append(&rows[..6]).unwrap();
    f.append(&rows[6..]).unwrap();
    assert!(f.append(&rows[..2]).is_err(), "a partial row was accepted");
    assert_eq!(f.len(), 5);
    let got = f.rows(0, &[4, 0, 2]).unwrap();
    let want: Vec<f32> = [4, 0, 2]
        .iter()
        .flat_map(|&i| rows[i * 3..i * 3 + 3].to_vec())
        .collect();
    assert_eq!(got, want);
    assert!(f.rows(0, &[5]).is_err(), "a row past the end was read");
    drop(f);
    assert!(!path.exists(), "{} left behind", path.display());
}

#[test]
fn training_settings_that_cannot_train_are_refused_with_their_range() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.npz");
    let (b, d, o) = (backbone(), data(), out.display().to_string());
    for (flag, value, range) in [
        ("--lr", "nan", "finite number above 0"),
        ("--lr", "inf", "finite number above 0"),
        ("--lr", "-1", "finite number above 0"),
        ("--lr", "0", "finite number above 0"),
        ("--lr", "1e30", "at most 10"),
        ("--lr", "10.5", "at most 10"),
        ("--weight-decay", "nan", "finite number of 0 or more"),
        ("--weight-decay", "-0.1", "finite number of 0 or more"),
        ("--momentum", "nan", "from 0 up to, not including, 1"),
        ("--momentum", "-5", "from 0 up to, not including, 1"),
        ("--steps", "0", "1 or more"),
        ("--batch", "0", "1 or more"),
        ("--epochs", "0", "1 or more"),
        ("--dropout", "2", "from 0 up to, not including, 1"),
        ("--dropout", "1", "from 0 up to, not including, 1"),
        ("--dropout", "-1", "from 0 up to, not including, 1"),
        ("--val-split", "-0.1", "from 0 up to, not including, 1"),
        ("--val-split", "1.5", "from 0 up to, not including, 1"),
        ("--val-split", "nan", "from 0 up to, not including, 1"),
        ("--augment", "0", "1 or more"),
        ("--extract-batch", "0", "1 or more"),
        ("--lr-step-epochs", "0", "1 or more"),
        ("--batch", "x", "not a number"),
        ("--adam-beta1", "1", "from 0 up to, not including, 1"),
        ("--adam-beta2", "-0.1", "from 0 up to, not including, 1"),
        ("--adam-eps", "0", "finite number above 0"),
        ("--adam-eps", "nan", "finite number above 0"),
    ] {
        let arg = format!("{flag}={value}");
        let o = alexnet(&[
            "train-head",
            "--weights",
            &b,
            "--data",
            &d,
            "--head",
            "classifier",
            "--out",
            &o,
            &arg,
        ]);
        let e = stderr_of(&o);
        assert_eq!(o.status.code(), Some(2), "{arg}: {e}");
        assert!(e.contains(flag) && e.contains(range), "{arg}: {e}");
        assert!(!out.exists(), "{arg}: nothing written");
    }
}

#[test]
fn a_diverging_run_stops_without_saving_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    for (class, img) in [("cat", "chelsea.jpg"), ("cup", "coffee.jpg")] {
        std::fs::create_dir_all(small.join(class)).unwrap();
        for i in 0..3 {
            std::fs::copy(root_img(img), small.join(format!("{class}/{i}.jpg"))).unwrap();
        }
    }
    let out = dir.path().join("m.npz");
    let o = alexnet(&[
        "train-head",
        "--weights",
        &backbone(),
        "--data",
        small.to_str().unwrap(),
        "--head",
        "classifier",
        "--lr",
        "10",
        "--batch",
        "2",
        "--epochs",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    let e = stderr_of(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("training diverged in epoch") && e.contains("is not finite"),
        "{e}"
    );
    assert!(e.contains("hint: a lower --lr"), "{e}");
    assert!(!out.exists(), "no model saved: {e}");
    // The checkpoint on disk, if any, is the last finite one.
    let ck = dir.path().join("m.ckpt.npz");
    if ck.exists() {
        assert!(e.contains("last good checkpoint"), "{e}");
        for (name, v) in tensors(&ck) {
            assert!(v.iter().all(|x| x.is_finite()), "{name} in the checkpoint");
        }
    }
}

#[test]
fn features_that_cannot_train_are_refused_naming_the_file() {
    use alexnet_wgpu::weights::{write_npz, NpzEntry};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.npz");
    let b = backbone();
    // (file, features [2, 4], labels, classes, what the error says)
    type Case<'a> = (&'a str, Vec<f32>, Vec<i64>, Vec<&'a str>, &'a str);
    let cases: [Case; 5] = [
        (
            "empty_class.npz",
            vec![0.5; 8],
            vec![0, 1],
            vec!["a", "b", "c"],
            "1 of 3 classes without rows ('c')",
        ),
        (
            "one.npz",
            vec![0.5; 8],
            vec![0, 0],
            vec!["a"],
            "single class ('a')",
        ),
        (
            "one_used.npz",
            vec![0.5; 8],
            vec![1, 1],
            vec!["a", "b"],
            "rows of a single class ('b', of 2 classes)",
        ),
        (
            "twice.npz",
            vec![0.5; 8],
            vec![0, 1],
            vec!["a", "a"],
            "class 'a' is named more than once",
        ),
        (
            "nan.npz",
            vec![0.5, 0.5, 0.5, 0.5, 0.5, f32::NAN, 0.5, 0.5],
            vec![0, 1],
            vec!["a", "b"],
            "NaN or infinite value (row 1, column 1)",
        ),
    ];
    for (name, features, labels, classes, want) in cases {
        let path = dir.path().join(name);
        let classes: Vec<String> = classes.iter().map(|s| s.to_string()).collect();
        write_npz(
            &path,
            &[
                ("features".into(), NpzEntry::F32(&[2, 4], &features)),
                ("labels".into(), NpzEntry::I64(&[2], &labels)),
                ("classes".into(), NpzEntry::Str(&classes)),
            ],
        )
        .unwrap();
        let o = alexnet(&[
            "train-head",
            "--weights",
            &b,
            "--features",
            path.to_str().unwrap(),
            "--epochs",
            "1",
            "--out",
            out.to_str().unwrap(),
        ]);
        let e = stderr_of(&o);
        assert_eq!(o.status.code(), Some(2), "{name}: {e}");
        assert!(e.contains(name) && e.contains(want), "{name}: {e}");
        assert!(!out.exists(), "{name}: no model");
    }
}

/// `train-head --help` groups its flags under headings, in the order a run uses them, and says
/// what the command trains. (Old: one flat list of ~35 flags, a stale "new last layer" about.)
#[test]
fn help_groups_the_flags_under_headings() {
    let o = alexnet(&["train-head", "--help"]);
    let help = ok(&o);
    assert!(help.contains("any layer from conv1 up"), "{help}");
    let headings = [
        "Model:",
        "Data:",
        "What to train:",
        "Optimizer:",
        "Schedule and stopping:",
        "Augmentation and memory:",
        "Image decoding:",
        "Output and checkpoints:",
        "GPU:",
    ];
    let at = |s: &str| {
        help.lines()
            .position(|l| l == s || l.trim_start().starts_with(s))
            .unwrap_or_else(|| panic!("{s} not in\n{help}"))
    };
    let lines: Vec<usize> = headings.iter().map(|h| at(h)).collect();
    assert!(lines.windows(2).all(|w| w[0] < w[1]), "{help}");
    // Each flag under its heading.
    for (flag, heading) in [
        ("--weights", 0),
        ("--data", 1),
        ("--val-split", 1),
        ("--train-from", 2),
        ("--init-head", 2),
        ("--optimizer", 3),
        ("--adam-beta2", 3),
        ("--epochs", 4),
        ("--keep <", 4),
        ("--cache-budget-mb", 5),
        ("--exact-resize", 6),
        ("--keep-checkpoint", 7),
        ("--resume", 7),
        ("--backend", 8),
    ] {
        let l = at(flag);
        assert!(
            l > lines[heading] && lines.get(heading + 1).is_none_or(|&n| l < n),
            "{flag} not under {}:\n{help}",
            headings[heading]
        );
    }
}

/// `--adam-beta1/--adam-beta2/--adam-eps` reach the optimizer: three Adam steps of the
/// classifier head (fc6, fc7 and a new fc8, no dropout) on 12 pool5 rows in batches of 4 (one
/// class per batch, so the moments average different gradients and the betas matter) match the
/// f64 CPU protocol with those betas, which is far from the same protocol with the defaults.
/// (Old code: the flags did not exist; the betas were fixed at 0.9/0.999.)
#[test]
fn adam_hyper_parameters_follow_the_cpu_reference() {
    use alexnet_wgpu::train::reference::train_cpu;
    use alexnet_wgpu::train::{FeatureSet, HeadKind, HeadWeights, Optimizer, TrainConfig};
    let dir = tempfile::tempdir().unwrap();
    let (rows, dim, seed) = (12, 1008, 7);
    let set = FeatureSet {
        features: common::random(rows * dim, 11, 1.0)
            .iter()
            .map(|v| v.abs())
            .collect(),
        dim,
        labels: (0..rows).map(|i| i / 4).collect(),
        paths: Vec::new(),
        classes: vec!["a".into(), "b".into(), "c".into()],
    };
    let feats = dir.path().join("f.npz");
    set.save(&feats, "pool5").unwrap();
    let model = dir.path().join("m.npz");
    let (beta1, beta2, eps, lr) = (0.5f32, 0.9f32, 1e-3f32, 0.01f32);
    let o = alexnet(&[
        "train-head",
        "--weights",
        &backbone(),
        "--features",
        feats.to_str().unwrap(),
        "--head",
        "classifier",
        "--dropout",
        "0",
        "--optimizer",
        "adam",
        "--adam-beta1",
        &beta1.to_string(),
        "--adam-beta2",
        &beta2.to_string(),
        "--adam-eps",
        &eps.to_string(),
        "--lr",
        &lr.to_string(),
        "--batch",
        "4",
        "--steps",
        "3",
        "--val-split",
        "0",
        "--no-shuffle",
        "--seed",
        &seed.to_string(),
        "--out",
        model.to_str().unwrap(),
    ]);
    ok(&o);

    let w = Weights::load(PathBuf::from(backbone()), None).unwrap();
    let head = HeadWeights::new(HeadKind::Classifier, &w, 3, seed).unwrap();
    let batches: Vec<(Vec<f32>, Vec<u32>)> = (0..3)
        .map(|b| {
            let r = b * 4..(b + 1) * 4;
            (
                set.features[r.start * dim..r.end * dim].to_vec(),
                set.labels[r].iter().map(|&l| l as u32).collect(),
            )
        })
        .collect();
    let cpu = |beta1, beta2| {
        let cfg = TrainConfig {
            optimizer: Optimizer::Adam { beta1, beta2, eps },
            weight_decay: 0.0,
            dropout: 0.0,
            seed,
            lr_backbone_mult: 1.0,
        };
        train_cpu(&head, &cfg, &batches, &[lr; 3]).pop().unwrap().1
    };
    let (want, defaults) = (
        cpu(beta1, beta2),
        cpu(Optimizer::ADAM_BETA1, Optimizer::ADAM_BETA2),
    );
    let got = Weights::load(&model, None).unwrap();
    for ((layer, want), default) in head.layers.iter().zip(&want.layers).zip(&defaults.layers) {
        for (part, init, want, default) in [
            ("weight", &layer.weight, &want.weight, &default.weight),
            ("bias", &layer.bias, &want.bias, &default.bias),
        ] {
            let name = format!("{}.{part}", layer.name);
            let delta =
                |v: &[f32]| -> Vec<f32> { v.iter().zip(init).map(|(a, b)| a - b).collect() };
            let (d_got, d_want, d_default) = (delta(got.get(&name)), delta(want), delta(default));
            let err = common::rel_max_diff(&d_got, &d_want);
            let apart = common::rel_max_diff(&d_default, &d_want);
            assert!(err <= 1e-4, "{name}: update off the reference by {err:e}");
            assert!(
                apart > 0.05,
                "{name}: the betas barely matter here ({apart:e})"
            );
        }
    }
}

/// A split dataset made of the fixture: `P/train/<class>` with 4 images per class and
/// `P/<val>/<class>` with the next 2.
fn split_dataset(p: &Path, val: &str) {
    for class in ["cat", "coffee", "rocket"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(Path::new(&data()).join(class))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for (i, f) in files.iter().take(6).enumerate() {
            let part = if i < 4 { "train" } else { val };
            let d = p.join(part).join(class);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::copy(f, d.join(f.file_name().unwrap())).unwrap();
        }
    }
}

/// `--data P` with `P/train` and `P/val` trains on one and validates on the other (old code
/// trained a 2-class "train vs val" model), says so and names the classes with their counts
/// before the caching pass; piped, the caching pass and every epoch print plain progress lines;
/// the checkpoint is removed after a successful run unless --keep-checkpoint; two runs with the
/// same seed write byte-identical models (zip timestamps fixed). Nested layouts that are not a
/// split dataset are refused with a hint, as is `--val` next to a split dataset.
#[test]
fn a_split_dataset_folder_trains_on_train_and_validates_on_val() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("dataset");
    split_dataset(&p, "val");
    let b = backbone();
    let run = |data: &Path, out: &Path, extra: &[&str]| {
        let mut args = vec![
            "train-head",
            "--weights",
            &b,
            "--data",
            data.to_str().unwrap(),
            "--epochs",
            "2",
            "--batch",
            "4",
            "--extract-batch",
            "4",
            "--seed",
            "1",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        alexnet(&args)
    };
    let (a, bm) = (dir.path().join("a.npz"), dir.path().join("b.npz"));
    let o = run(&p, &a, &[]);
    ok(&o);
    let e = stderr_of(&o);
    let said = format!(
        "{} is a split dataset: training on {}, validating on {}",
        p.display(),
        p.join("train").display(),
        p.join("val").display()
    );
    assert!(e.contains(&said), "{e}");
    let classes =
        "3 classes (12 training images + 6 for validation): cat 4+2, coffee 4+2, rocket 4+2";
    let (at_classes, at_caching) = (e.find(classes), e.find("training features: 12 images"));
    assert!(
        at_classes.is_some() && at_caching.is_some() && at_classes < at_caching,
        "{e}"
    );
    assert!(
        e.contains(
            "training from fc8: 3 classes, 12 training rows, 6 validation rows, 3 steps per epoch"
        ),
        "{e}"
    );
    // Piped stderr: plain progress lines instead of (hidden) bars.
    for line in [
        "training features: 4/12 images, ",
        "training features: 8/12 images, ",
        "validation features: 4/6 images, ",
    ] {
        assert!(e.contains(line), "no '{line}' in\n{e}");
    }
    for epoch in ["epoch   1: train loss ", "epoch   2: train loss "] {
        let l = e
            .lines()
            .find(|l| l.starts_with(epoch))
            .unwrap_or_else(|| panic!("{e}"));
        assert!(l.contains("val loss") && l.ends_with(" s"), "{l}");
    }
    assert_eq!(Weights::load(&a, None).unwrap().widths.classes, 3);
    // `eval` counts in the singular (old: "1 images could not be read").
    std::fs::write(p.join("val/cat/broken.jpg"), b"not an image").unwrap();
    let o = alexnet(&[
        "eval",
        "--weights",
        a.to_str().unwrap(),
        "--data",
        p.join("val").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr_of(&o));
    assert!(
        stderr_of(&o).contains("1 image could not be read"),
        "{}",
        stderr_of(&o)
    );
    let report = String::from_utf8_lossy(&o.stdout);
    assert!(report.contains("on 6 images"), "{report}");
    std::fs::remove_file(p.join("val/cat/broken.jpg")).unwrap();
    // The checkpoint is gone once the model is written...
    assert!(!dir.path().join("a.ckpt.npz").exists(), "{e}");
    assert!(e.contains("removed the checkpoint"), "{e}");
    // ... unless asked for; and the same seed gives the same bytes.
    ok(&run(&p, &bm, &["--keep-checkpoint"]));
    assert!(dir.path().join("b.ckpt.npz").is_file());
    assert!(
        std::fs::read(&a).unwrap() == std::fs::read(&bm).unwrap(),
        "two runs with one seed wrote different bytes"
    );

    // --val next to a split dataset is refused.
    let o = run(
        &p,
        &dir.path().join("c.npz"),
        &["--val", p.join("val").to_str().unwrap()],
    );
    let e = stderr_of(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("split dataset") && e.contains("validation folder"),
        "{e}"
    );
    // train/ + test/ is not recognised (train + val|valid|validation only): refused with a hint.
    let q = dir.path().join("tt");
    split_dataset(&q, "test");
    let o = run(&q, &dir.path().join("d.npz"), &[]);
    let e = stderr_of(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("one level down")
            && e.contains("cat, coffee, rocket")
            && e.contains(&format!("e.g. {}", q.join("train").display())),
        "{e}"
    );
    // The class folders one level down.
    let r = dir.path().join("nested");
    std::fs::create_dir_all(&r).unwrap();
    std::fs::rename(q.join("test"), r.join("images")).unwrap();
    let o = run(&r, &dir.path().join("e.npz"), &[]);
    let e = stderr_of(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains(&format!(
            "use {} as the data folder",
            r.join("images").display()
        )),
        "{e}"
    );
    assert!(!dir.path().join("c.npz").exists() && !dir.path().join("d.npz").exists());
}

/// Adam's flags with `--optimizer sgd` are refused, not ignored.
#[test]
fn adam_flags_without_adam_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let o = alexnet(&[
        "train-head",
        "--weights",
        &backbone(),
        "--data",
        &data(),
        "--adam-beta2",
        "0.99",
        "--out",
        dir.path().join("x.npz").to_str().unwrap(),
    ]);
    let e = stderr_of(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("--adam-beta2") && e.contains("--optimizer adam"),
        "{e}"
    );
}
