//! Host memory sized by flags or by a file's values is refused before any work, naming what
//! it would take (issue 28, defects 6 and 7: `--augment 1000000` aborted, `--augment 4096`
//! segfaulted under a memory limit, `bench --batch 100000` and `classify --batch 20000` aborted,
//! a features label of 2^40 aborted on allocation; defect 8: `lpips --resize 100000x100000`).

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use alexnet_wgpu::weights::{write_npz, NpzEntry};

use crate::common::{fixture, root, stderr};

fn alexnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_alexnet"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run alexnet")
}

/// Exit 2, quickly, with `want` in the message; returns the output.
fn refused(args: &[&str], want: &str) -> Output {
    let t = Instant::now();
    let o = alexnet(args);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
    assert!(e.contains(want), "{args:?}: {e}");
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "{args:?}: not before work"
    );
    o
}

#[test]
fn batch_buffers_that_cannot_fit_are_refused_before_work() {
    let w = fixture("torchvision_small.npz");
    let w = w.to_str().unwrap();
    refused(
        &["bench", "--weights", w, "--batch", "100000", "--iters", "1"],
        "host memory per batch buffer",
    );
    // 2000 inputs (one image listed again and again) in one batch: 1.1 GiB of host rows.
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("list.txt");
    let image = root().join("assets/images/camera.png");
    std::fs::write(&list, format!("{}\n", image.display()).repeat(2000)).unwrap();
    let o = refused(
        &[
            "classify",
            "--weights",
            w,
            "--batch",
            "20000",
            "--format",
            "csv",
            "--list",
            list.to_str().unwrap(),
        ],
        "2000 images of 3x224x224 need 1.1 GiB",
    );
    assert!(stderr(&o).contains("over the 1.0 GiB limit"));
    assert!(o.stdout.is_empty(), "a CSV header before the refusal");
}

#[test]
fn augmented_views_that_cannot_fit_are_refused_before_caching() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.npz");
    let w = fixture("torchvision_small.npz");
    let data = fixture("train_data");
    for views in ["4096", "1000000"] {
        for from in [None, Some("conv4")] {
            let mut args = vec![
                "train-head",
                "--weights",
                w.to_str().unwrap(),
                "--data",
                data.to_str().unwrap(),
                "--augment",
                views,
                "--epochs",
                "1",
                "--out",
                out.to_str().unwrap(),
            ];
            if let Some(f) = from {
                args.extend(["--train-from", f]);
            }
            refused(
                &args,
                &format!("{views} augmented views of 3x224x224 of one image"),
            );
            assert!(!out.exists());
        }
    }
}

/// Without a `classes` array the labels name the classes 0..=max: a label of 2^40 is refused
/// from the count of rows, before 2^40 names are made.
#[test]
fn feature_labels_beyond_the_rows_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.npz");
    write_npz(
        &path,
        &[
            ("features".into(), NpzEntry::F32(&[2, 4], &[0.5; 8])),
            ("labels".into(), NpzEntry::I64(&[2], &[0, 1 << 40])),
        ],
    )
    .unwrap();
    let out = dir.path().join("m.npz");
    let w = fixture("torchvision_small.npz");
    refused(
        &[
            "train-head",
            "--weights",
            w.to_str().unwrap(),
            "--features",
            path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        "label 1099511627776 makes 1099511627777 classes",
    );
}

/// `lpips --resize` is bounded like the decoder (100000x100000 used to abort on allocation).
#[test]
fn an_lpips_resize_over_the_decoder_limit_is_refused() {
    let a = root().join("assets/images/camera.png");
    let a = a.to_str().unwrap();
    refused(
        &["lpips", "--resize", "100000x100000", a, a],
        "over the 179 MP limit",
    );
    let e = alexnet_wgpu::lpips::load_image(a, Some((100_000, 100_000))).unwrap_err();
    assert!(e.to_string().contains("over the 179 MP limit"), "{e}");
}
