//! Issue 28's last rough edges, each refused before any output or work, or done as asked:
//! `lpips --all-pairs FILE` (exit 0 with nothing), `--spatial` that cannot be a folder (an
//! error after the CSV header was printed), `--validate good.jpg` (the path taken as the
//! flag's value), `train-head --batch` over the rows (an adapter-limit error after caching),
//! and the "ZipWriter drop failed" line on a full disk. (`--lr 1e30`: `train_head.rs`
//! `training_settings_that_cannot_train_are_refused_with_their_range`.)

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::common::{self, fixture, lpips_trunk::trunk_npz, stderr};

fn alexnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_alexnet"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Exit 2, the message, and nothing on standard output (no CSV header before the error).
fn refused_before_output(o: &Output, want: &str) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{want}: {e}");
    assert!(e.contains(want), "{want}: {e}");
    assert!(
        o.stdout.is_empty(),
        "{want}: output before the error: {:?}",
        o.stdout
    );
}

#[test]
fn lpips_refuses_what_it_cannot_do_before_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let trunk = trunk_npz(dir.path());
    let (a, b) = (fixture("lpips/sq_a.png"), fixture("lpips/sq_b.png"));
    let lpips = |extra: &[&str]| {
        let mut args = vec!["lpips", "--weights", s(&trunk), "--format", "csv"];
        args.extend_from_slice(extra);
        alexnet(&args)
    };
    // A file as --all-pairs: one image, no pair, exit 0 with nothing, before.
    refused_before_output(&lpips(&["--all-pairs", s(&a)]), "not a folder");
    refused_before_output(
        &lpips(&["--all-pairs", s(&dir.path().join("missing"))]),
        "--all-pairs",
    );
    // --spatial where no folder can be made: refused before the header.
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    refused_before_output(
        &lpips(&["--spatial", s(&file.join("maps")), s(&a), s(&b)]),
        "--spatial",
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

#[test]
fn an_optional_switch_takes_only_a_switch_word_as_its_value() {
    let w = fixture("torchvision_small.npz");
    let img = common::root().join("assets/images/chelsea.jpg");
    let o = alexnet(&["classify", "--weights", s(&w), "--validate", s(&img)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("class"),
        "{:?}",
        String::from_utf8_lossy(&o.stdout)
    );
    // A switch word still is the value.
    let o = alexnet(&["classify", "--weights", s(&w), "--validate", "off", s(&img)]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn a_batch_over_the_training_rows_takes_the_rows_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.npz");
    let o = alexnet(&[
        "train-head",
        "--weights",
        s(&fixture("torchvision_small.npz")),
        "--data",
        s(&fixture("train_data")),
        "--epochs",
        "1",
        "--batch",
        "1000000",
        "--out",
        s(&out),
    ]);
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    assert!(
        e.contains("--batch 1000000 is more than the 48 training rows: batches of 48"),
        "{e}"
    );
    assert!(out.exists());
}

/// A full disk, as a file-size limit (`ulimit -f`, SIGXFSZ ignored: writes fail with EFBIG):
/// the error, once, no zip noise, nothing left behind.
#[cfg(unix)]
#[test]
fn a_write_that_fails_says_so_once_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.npz");
    let script = format!(
        "trap '' XFSZ; ulimit -f 200; exec '{}' convert '{}' '{}'",
        env!("CARGO_BIN_EXE_alexnet"),
        s(&fixture("torchvision_small.npz")),
        s(&out)
    );
    let o = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("File too large"), "{e}");
    assert!(!e.contains("ZipWriter"), "zip's drop noise: {e}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
