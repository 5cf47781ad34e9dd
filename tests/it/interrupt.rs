//! Signals: Ctrl-C (SIGINT) or SIGTERM during `train-head` leaves the last complete
//! checkpoint, no temporary file, a note saying how to resume, and exit status 128 + the
//! signal's number (130 for SIGINT, 143 for SIGTERM; both used to exit 130).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::root;
use alexnet_wgpu::fsutil::{abandon_pending_writes, PendingFile};

fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".alexnet-"))
        .collect()
}

fn interrupted_train_head(signal: &str, code: i32) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.npz");
    let ckpt = dir.path().join("m.ckpt.npz");
    let fixtures = root().join("tests/fixtures");
    let child = Command::new(env!("CARGO_BIN_EXE_alexnet"))
        .args(["train-head", "--weights"])
        .arg(fixtures.join("torchvision_small.npz"))
        .arg("--data")
        .arg(fixtures.join("train_data"))
        // Epochs without end: a checkpoint is being written most of the time.
        .args([
            "--head",
            "classifier",
            "--epochs",
            "1000000",
            "--batch",
            "8",
            "--out",
        ])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !ckpt.is_file() {
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A few more epochs, so the signal may land in the middle of a checkpoint write.
    std::thread::sleep(Duration::from_millis(700));
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "{err}");
    assert!(
        err.contains("--resume") && err.contains(ckpt.to_str().unwrap()),
        "{err}"
    );
    assert_eq!(temp_files(dir.path()), Vec::<String>::new());
    assert!(!out.exists(), "no model is written by an interrupted run");
    // The checkpoint left is a complete one.
    let t = alexnet_wgpu::weights::read_tensors(&ckpt).unwrap();
    assert!(t.iter().any(|t| t.key == "progress"));
}

#[test]
fn sigint_during_train_head_keeps_the_last_checkpoint() {
    interrupted_train_head("-INT", 130);
}

#[test]
fn sigterm_during_train_head_keeps_the_last_checkpoint() {
    interrupted_train_head("-TERM", 143);
}

/// What the handler does, in process: pending temporary files are removed and never renamed.
/// It locks the registry for good, and every test of this binary shares the process (any
/// atomic write after it would wait for ever), so [`child_abandon_removes_pending_temp_files`]
/// runs in a child process of its own.
#[test]
fn abandon_removes_pending_temp_files() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "interrupt::child_abandon_removes_pending_temp_files",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "the child test failed or did not run:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run by [`abandon_removes_pending_temp_files`] in a child process.
#[test]
#[ignore = "run by abandon_removes_pending_temp_files in a child process"]
fn child_abandon_removes_pending_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = PendingFile::new_in(dir.path(), ".alexnet-", ".tmp").unwrap();
    std::io::Write::write_all(f.file_mut(), b"half").unwrap();
    let path = f.path().to_path_buf();
    assert!(path.is_file());
    let removed = abandon_pending_writes();
    assert!(removed.contains(&path), "{removed:?}");
    assert!(!path.exists());
    std::mem::forget(f); // its drop would wait on the registry for ever
}
