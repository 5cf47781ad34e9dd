//! The `FineTune` builder (the library side of `alexnet train-head`) on the reduced-width
//! torchvision backbone and the 3-class fixture folders: what it returns, that `save` writes a
//! model `classify` reads, that it matches the command bit for bit, and that settings which
//! cannot train are errors.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;

use crate::common;

use alexnet_wgpu::fine_tune::{FineTune, Progress};
use alexnet_wgpu::model::Weights;
use alexnet_wgpu::train::{HeadKind, Optimizer};
use alexnet_wgpu::weights::read_tensors;
use alexnet_wgpu::{images_in, AlexNet, Error};
use common::root;

fn backbone_path() -> PathBuf {
    root().join("tests/fixtures/torchvision_small.npz")
}

fn data() -> PathBuf {
    root().join("tests/fixtures/train_data")
}

fn alexnet(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_alexnet"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run alexnet");
    assert!(
        o.status.success(),
        "{args:?}: exit {:?}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn tensors(p: &Path) -> Vec<(String, Vec<f32>)> {
    read_tensors(p)
        .unwrap()
        .into_iter()
        .filter_map(|t| t.data.ok().map(|d| (t.key, d)))
        .collect()
}

#[test]
fn fine_tune_from_conv4_matches_train_head() {
    let ctx = common::ctx();
    let w = Weights::load(backbone_path(), None).unwrap();
    let epochs_seen = Rc::new(RefCell::new(Vec::new()));
    let events = Rc::new(RefCell::new(Vec::<String>::new()));
    let (e1, e2) = (epochs_seen.clone(), events.clone());
    let trained = FineTune::new(&ctx, &w)
        .train_from(HeadKind::Conv(4))
        .optimizer(Optimizer::Sgd { momentum: 0.9 })
        .lr(0.002)
        .batch(16)
        .epochs(2)
        .seed(5)
        .on_epoch(move |r| e1.borrow_mut().push(r.epoch))
        .on_progress(move |p| {
            let name = match p {
                Progress::Classes { .. } => "classes",
                Progress::Extracting { .. } => "extracting",
                Progress::Extracted { .. } => "extracted",
                Progress::Training { .. } => "training",
                Progress::Epoch(_) => "epoch",
                _ => "other",
            };
            let mut v = e2.borrow_mut();
            if v.last().map(String::as_str) != Some(name) {
                v.push(name.into());
            }
        })
        .fit(data())
        .unwrap();
    assert_eq!(trained.classes, ["cat", "coffee", "rocket"]);
    assert_eq!(trained.history.len(), 2);
    assert_eq!(*epochs_seen.borrow(), [1, 2]);
    assert_eq!(
        *events.borrow(),
        [
            "classes",
            "extracting",
            "extracted",
            "extracting",
            "extracted",
            "training",
            "epoch"
        ]
    );
    // 60 images: 48 training, 12 validation (a stratified 20%).
    assert_eq!((trained.train_rows, trained.val_rows), (48, 12));
    assert!(trained.skipped.is_empty());
    let m = trained.metrics.as_ref().expect("validation metrics");
    assert_eq!(m.count, 12);
    assert_eq!(trained.val_accuracy(), Some(m.accuracy));
    assert_eq!(trained.model.widths.classes, 3);
    assert_eq!(trained.steps.len(), 2 * 3);

    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib.npz");
    trained.save(&lib).unwrap();
    // In memory as on disk: the class names, and the outputs of the file read back.
    let mine = AlexNet::from_trained(&ctx, &trained).unwrap();
    assert_eq!(mine.classes(), ["cat", "coffee", "rocket"]);
    let reread = AlexNet::from_file(&lib).unwrap();
    let some = &images_in(data()).unwrap()[..4];
    let (a, b) = (
        mine.classify(some, 3).unwrap(),
        reread.classify(some, 3).unwrap(),
    );
    for (a, b) in a.iter().zip(&b) {
        assert_eq!(a.path, b.path);
        for (p, q) in a.top.iter().zip(&b.top) {
            assert_eq!(p.label, q.label, "{}", a.path.display());
            assert!((p.prob - q.prob).abs() < 1e-5, "{p:?} vs {q:?}");
        }
    }
    let out = alexnet(&[
        "classify",
        "--weights",
        lib.to_str().unwrap(),
        "--top",
        "1",
        "assets/images/rocket.jpg",
    ]);
    assert!(
        ["cat", "coffee", "rocket"].iter().any(|c| out.contains(c)),
        "{out}"
    );
    // The command with the same settings saves the same model, bit for bit.
    let cli = dir.path().join("cli.npz");
    alexnet(&[
        "train-head",
        "--weights",
        backbone_path().to_str().unwrap(),
        "--data",
        data().to_str().unwrap(),
        "--train-from",
        "conv4",
        "--optimizer",
        "sgd",
        "--lr",
        "0.002",
        "--batch",
        "16",
        "--epochs",
        "2",
        "--seed",
        "5",
        "--out",
        cli.to_str().unwrap(),
    ]);
    assert_eq!(
        tensors(&lib),
        tensors(&cli),
        "library and CLI models differ"
    );
    // An extension with no model format is an error, not a panic.
    assert!(matches!(
        trained.save(dir.path().join("m.txt")),
        Err(Error::Invalid(_))
    ));
}

#[test]
fn settings_that_cannot_train_are_errors() {
    let ctx = common::ctx();
    let w = Weights::load(backbone_path(), None).unwrap();
    let base = || FineTune::new(&ctx, &w);
    let invalid = |r: alexnet_wgpu::Result<_>, want: &str| match r {
        Err(Error::Invalid(m)) => assert!(m.contains(want), "{m}"),
        Err(e) => panic!("{want}: {e}"),
        Ok(_) => panic!("{want}: accepted"),
    };
    invalid(base().lr(f32::NAN).fit(data()), "learning rate");
    invalid(base().lr(1e30).fit(data()), "at most 10");
    invalid(base().batch(0).fit(data()), "batch 0");
    invalid(base().epochs(0).fit(data()), "epochs 0");
    invalid(base().dropout(1.0).fit(data()), "dropout");
    invalid(base().val_split(1.0).fit(data()), "validation share");
    invalid(
        base()
            .optimizer(Optimizer::Sgd { momentum: -0.1 })
            .fit(data()),
        "momentum",
    );
    invalid(base().lr_backbone_mult(-1.0).fit(data()), "factor");
    let adam = |beta1, beta2, eps| base().optimizer(Optimizer::Adam { beta1, beta2, eps });
    invalid(adam(1.0, 0.999, 1e-8).fit(data()), "Adam beta1 1");
    invalid(adam(0.9, -0.5, 1e-8).fit(data()), "Adam beta2 -0.5");
    invalid(adam(0.9, 0.999, 0.0).fit(data()), "Adam eps 0");
    assert_eq!(
        Optimizer::adam(),
        Optimizer::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8
        }
    );
    assert!(matches!(
        base().resume(true).fit(data()),
        Err(Error::ResumeWithoutCheckpoint)
    ));
    invalid(
        base()
            .train_from(HeadKind::Conv(4))
            .fit_features(&Default::default()),
        "needs images",
    );
    assert!(base().fit(root().join("no/such/folder")).is_err());
    // A validation folder with other classes than the training data.
    let val = tempfile::tempdir().unwrap();
    for class in ["a", "b"] {
        std::fs::create_dir(val.path().join(class)).unwrap();
        std::fs::copy(
            data().join("cat/cat_00.jpg"),
            val.path().join(class).join("x.jpg"),
        )
        .unwrap();
    }
    invalid(base().val_folder(val.path()).fit(data()), "has classes");
}

/// `fit(P)` on a split dataset (`P/train/<class>`, `P/valid/<class>`) trains on `train` and
/// validates on `valid`, reporting both and the classes with their counts before any image is
/// read; a validation folder next to it is refused. (Old code: classes "train" and "valid".)
#[test]
fn fit_recognises_a_split_dataset() {
    let ctx = common::ctx();
    let w = Weights::load(backbone_path(), None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ds");
    for class in ["cat", "coffee", "rocket"] {
        for (part, i) in [("train", 0), ("train", 1), ("train", 2), ("valid", 3)] {
            let d = p.join(part).join(class);
            std::fs::create_dir_all(&d).unwrap();
            let name = format!("{class}_{i:02}.jpg");
            std::fs::copy(data().join(class).join(&name), d.join(&name)).unwrap();
        }
    }
    let seen = Rc::new(RefCell::new(Vec::<String>::new()));
    let s = seen.clone();
    let trained = FineTune::new(&ctx, &w)
        .epochs(1)
        .on_progress(move |p| match p {
            Progress::SplitDataset { dir, train, val } => s.borrow_mut().push(format!(
                "split {} {} {}",
                dir.file_name().unwrap().to_string_lossy(),
                train.file_name().unwrap().to_string_lossy(),
                val.file_name().unwrap().to_string_lossy()
            )),
            Progress::Classes { names, train, val } => s
                .borrow_mut()
                .push(format!("classes {names:?} {train:?} {val:?}")),
            Progress::Extracting { done: 0, .. } => s.borrow_mut().push("extracting".into()),
            _ => {}
        })
        .fit(&p)
        .unwrap();
    assert_eq!(trained.classes, ["cat", "coffee", "rocket"]);
    assert_eq!((trained.train_rows, trained.val_rows), (9, 3));
    assert_eq!(
        *seen.borrow(),
        [
            "split ds train valid",
            r#"classes ["cat", "coffee", "rocket"] [3, 3, 3] [1, 1, 1]"#,
            "extracting",
            "extracting"
        ]
    );
    match FineTune::new(&ctx, &w).val_folder(p.join("valid")).fit(&p) {
        Err(Error::Input(e)) => {
            assert!(e.message.contains("split dataset"), "{e}")
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a validation folder next to a split dataset was accepted"),
    }
}
