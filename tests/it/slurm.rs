//! `deploy/slurm_array.sh` on a real scheduler: `.ci/slurm-array-test.sh` starts a one-node
//! Slurm (munged, slurmctld, slurmd on localhost, state in a temporary folder), submits the
//! script unchanged as `sbatch --array=0-3` on the reduced-width fixture with the merge as an
//! `afterok` job, SIGKILLs task 2 (its job ends FAILED, the merge is cancelled, `alexnet
//! merge` refuses naming shard 2), resubmits task 2 alone with a new merge, and runs the
//! unsharded `classify --format jsonl`. Here: the merged rows equal the unsharded run's (same
//! inputs, order, classes; probabilities within 1e-5, logits within 1e-4 x max, as in
//! tests/it/shard.rs: the batches are composed differently).
//!
//! Where Slurm is not installed the test says so and passes, except under `CI` (then it
//! fails): `.ci/run` installs it (`.ci/install-slurm.sh`).

use std::process::Command;

use crate::common::{fixture, root, stderr};
use crate::shard::{assert_close, assert_same_predictions, jsonl};

/// The adapter a job-less run would open: the Slurm tasks get fake GPUs 0-3
/// (`CUDA_VISIBLE_DEVICES`), which name no adapter on a machine without GPUs, so the tasks
/// are told this adapter's name (a named adapter wins over the assignment).
fn adapter_name() -> String {
    let mut c = Command::new(env!("CARGO_BIN_EXE_alexnet"));
    c.args(["adapters", "--json"]);
    for v in [
        "CUDA_VISIBLE_DEVICES",
        "ROCR_VISIBLE_DEVICES",
        "NVIDIA_VISIBLE_DEVICES",
        "SLURM_STEP_GPUS",
        "SLURM_JOB_GPUS",
    ] {
        c.env_remove(v);
    }
    let o = c.output().expect("run alexnet adapters");
    assert!(o.status.success(), "{}", stderr(&o));
    let list: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let chosen = list
        .iter()
        .find(|a| a["chosen"] == true)
        .expect("a chosen adapter");
    chosen["name"].as_str().unwrap().to_string()
}

#[test]
fn array_job_with_a_killed_task_resubmitted_merges_to_the_unsharded_run() {
    let work = tempfile::tempdir().unwrap();
    let name = std::env::var("WGPU_ADAPTER_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(adapter_name);
    let o = Command::new("bash")
        .arg(root().join(".ci/slurm-array-test.sh"))
        .arg(env!("CARGO_BIN_EXE_alexnet"))
        .arg(fixture("torchvision_small.npz"))
        .arg(root().join("assets/images"))
        .arg(work.path())
        .env("WGPU_ADAPTER_NAME", &name)
        .current_dir(root())
        .output()
        .expect("run bash");
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    if o.status.code() == Some(77) {
        assert!(
            std::env::var_os("CI").is_none(),
            "Slurm is required in CI: {out}"
        );
        eprintln!("skipped: {out}");
        return;
    }
    assert!(o.status.success(), "{out}");
    eprintln!("{out}");
    let read = |p: &str| std::fs::read_to_string(work.path().join(p)).unwrap();
    let (merged, single) = (jsonl(&read("all.jsonl")), jsonl(&read("single.jsonl")));
    assert_eq!(merged.len(), 5, "one row per image of assets/images");
    assert_same_predictions(&merged, &single);
    assert_close(
        &work.path().join("all.logits.npy"),
        &work.path().join("single.logits.npy"),
    );
    // The scheduler gave each task its own (fake) GPU, and the binary read it.
    for i in 0..2 {
        let log = read(&format!("gpu-{i}.out"));
        assert!(log.contains(&format!("CUDA_VISIBLE_DEVICES={i}")), "{log}");
    }
}
