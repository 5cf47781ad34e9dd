//! The scheduler's GPU assignment through the binary (the mapping itself is unit-tested on
//! fake adapter lists in `src/gpu/assign.rs` and `src/cli/gpu_env.rs`): a
//! `CUDA_VISIBLE_DEVICES` naming a GPU that is not there stops `classify` with a clear error
//! (never a quiet fallback to the best adapter), `alexnet adapters` says why and exits 1, a
//! named adapter wins over the assignment and says so, and values that restrict nothing are
//! passed over. No machine this suite runs on has eight GPUs, so GPU 7 is never there.

use std::process::{Command, Output};

use crate::common::{fixture, root, stderr};

const SCHEDULER_VARS: [&str; 5] = [
    "CUDA_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "NVIDIA_VISIBLE_DEVICES",
    "SLURM_STEP_GPUS",
    "SLURM_JOB_GPUS",
];

/// `alexnet ARGS` with only the given scheduler variables (and adapter name) set.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_alexnet"));
    c.args(args)
        .current_dir(root())
        .env_remove("WGPU_ADAPTER_NAME");
    for v in SCHEDULER_VARS {
        c.env_remove(v);
    }
    c.envs(env.iter().copied());
    c.output().expect("run alexnet")
}

#[test]
fn an_assignment_naming_no_adapter_is_an_error_and_a_named_adapter_wins() {
    let weights = fixture("torchvision_small.npz");
    let classify = [
        "classify",
        "--weights",
        weights.to_str().unwrap(),
        "assets/images/chelsea.jpg",
    ];
    let o = run(
        &classify,
        &[("CUDA_VISIBLE_DEVICES", "7"), ("SLURM_JOB_GPUS", "7")],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("cannot use the GPU assignment CUDA_VISIBLE_DEVICES=7: GPU 7 is not among"),
        "{e}"
    );
    assert!(
        e.contains("in PCI bus order") || e.contains("no GPU adapter here"),
        "{e}"
    );
    assert!(e.contains("hint: `alexnet adapters`"), "{e}");
    assert!(o.stdout.is_empty(), "nothing classified");

    let o = run(
        &["adapters"],
        &[("CUDA_VISIBLE_DEVICES", "7"), ("SLURM_JOB_GPUS", "7")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("<- chosen"), "{out}");
    assert!(
        out.contains("note: SLURM_JOB_GPUS=7 is not used (CUDA_VISIBLE_DEVICES comes first)"),
        "{out}"
    );
    assert!(
        stderr(&o).contains("no adapter would be opened"),
        "{}",
        stderr(&o)
    );

    // The adapter the suite runs on, named: the assignment is set aside, and says so.
    let best = run(&["adapters", "--json"], &[]);
    assert!(best.status.success(), "{}", stderr(&best));
    let list: Vec<serde_json::Value> = serde_json::from_slice(&best.stdout).unwrap();
    let chosen: Vec<&serde_json::Value> = list.iter().filter(|a| a["chosen"] == true).collect();
    assert_eq!(chosen.len(), 1, "{list:?}");
    assert!(chosen[0]["why"]
        .as_str()
        .unwrap()
        .contains("no name or GPU assignment"));
    let name = chosen[0]["name"].as_str().unwrap();
    let o = run(
        &["adapters"],
        &[("CUDA_VISIBLE_DEVICES", "7"), ("WGPU_ADAPTER_NAME", name)],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("(the scheduler's CUDA_VISIBLE_DEVICES=7 is not used)"),
        "{out}"
    );
    let o = run(
        &classify,
        &[("CUDA_VISIBLE_DEVICES", "7"), ("WGPU_ADAPTER_NAME", name)],
    );
    assert!(o.status.success(), "{}", stderr(&o));

    // Values that restrict nothing, and a malformed list (an error, not "no restriction").
    let o = run(&["adapters"], &[("NVIDIA_VISIBLE_DEVICES", "all")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout)
        .contains("NVIDIA_VISIBLE_DEVICES=\"all\" restricts nothing"));
    let o = run(&["adapters"], &[("CUDA_VISIBLE_DEVICES", "0,,1")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("an empty entry in the list"),
        "{}",
        stderr(&o)
    );
}
