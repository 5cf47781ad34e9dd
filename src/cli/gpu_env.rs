//! The GPU a job scheduler gave this process, from the environment: the library reads no
//! variable, so the binary reads them here and passes the assignment in
//! (`gpu::AdapterChoice::assignment`), used when no adapter is named.

use alexnet_wgpu::gpu::Assignment;

/// The variables, first set wins: what CUDA (Slurm sets it for each task's GPUs, Kubernetes'
/// NVIDIA device plugin in the container), ROCm and the NVIDIA container toolkit read, then
/// Slurm's own step and job lists (absolute indices on the node).
pub const VARIABLES: [&str; 5] = [
    "CUDA_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "NVIDIA_VISIBLE_DEVICES",
    "SLURM_STEP_GPUS",
    "SLURM_JOB_GPUS",
];

/// Values that restrict nothing: the container toolkit's `all`/`none`/`void`, Slurm's
/// `NoDevFiles` (GPUs without device files).
const NO_RESTRICTION: [&str; 4] = ["all", "none", "void", "NoDevFiles"];

/// What the environment says, as `alexnet adapters` explains it: the assignment (`None`
/// where no variable restricts the choice) and notes on the variables passed over.
pub struct FromEnv {
    pub assignment: Option<Assignment>,
    pub notes: Vec<String>,
}

/// Reads the variables through `get` (the process environment in the binary, a map in the
/// tests) and the UUIDs' PCI bus ids from NVIDIA's driver where one is installed.
pub fn from_env(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<FromEnv> {
    let mut notes = Vec::new();
    for var in VARIABLES {
        let Some(value) = get(var) else { continue };
        let value = value.trim();
        if value.is_empty() || NO_RESTRICTION.contains(&value) {
            notes.push(format!("{var}={value:?} restricts nothing"));
            continue;
        }
        let mut assignment = Assignment::parse(format!("{var}={value}"), value)?;
        if assignment
            .devices
            .iter()
            .any(|d| matches!(d, alexnet_wgpu::gpu::DeviceRef::Uuid(_)))
        {
            assignment.uuid_bus_ids = nvidia_uuids(std::path::Path::new(NVIDIA_PROC));
        }
        for later in VARIABLES.iter().skip_while(|v| **v != var).skip(1) {
            if let Some(v) = get(later) {
                notes.push(format!("{later}={v} is not used ({var} comes first)"));
            }
        }
        return Ok(FromEnv {
            assignment: Some(assignment),
            notes,
        });
    }
    Ok(FromEnv {
        assignment: None,
        notes,
    })
}

/// One folder per GPU, named by its PCI bus id, each with an `information` file holding a
/// `GPU UUID:` line (NVIDIA's Linux driver).
const NVIDIA_PROC: &str = "/proc/driver/nvidia/gpus";

/// `(uuid, bus id)` of every GPU NVIDIA's driver lists under `dir` (none where it has no such
/// folder). Reads at most 64 KiB per file.
fn nvidia_uuids(dir: &std::path::Path) -> Vec<(String, String)> {
    use std::io::Read;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let bus = e.file_name().to_string_lossy().to_string();
        let mut text = String::new();
        let Ok(f) = std::fs::File::open(e.path().join("information")) else {
            continue;
        };
        if f.take(64 << 10).read_to_string(&mut text).is_err() {
            continue;
        }
        if let Some(uuid) = text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == "GPU UUID").then(|| v.trim().to_string())
        }) {
            out.push((uuid, bus));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alexnet_wgpu::gpu::DeviceRef;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn the_first_restricting_variable_wins() {
        let got = from_env(env(&[
            ("SLURM_JOB_GPUS", "2,3"),
            ("CUDA_VISIBLE_DEVICES", "2"),
        ]))
        .unwrap();
        let a = got.assignment.unwrap();
        assert_eq!(a.origin, "CUDA_VISIBLE_DEVICES=2");
        assert_eq!(a.devices, vec![DeviceRef::Index(2)]);
        assert!(got.notes[0].contains("SLURM_JOB_GPUS=2,3 is not used"));
        // Slurm's lists alone (no CUDA variable): the step's before the job's.
        let a = from_env(env(&[("SLURM_JOB_GPUS", "0,1"), ("SLURM_STEP_GPUS", "1")]))
            .unwrap()
            .assignment
            .unwrap();
        assert_eq!(a.origin, "SLURM_STEP_GPUS=1");
        let a = from_env(env(&[("ROCR_VISIBLE_DEVICES", "1")]))
            .unwrap()
            .assignment;
        assert_eq!(a.unwrap().devices, vec![DeviceRef::Index(1)]);
    }

    #[test]
    fn values_that_restrict_nothing_and_none_set() {
        for v in ["all", "void", "none", "", "NoDevFiles"] {
            let got = from_env(env(&[("NVIDIA_VISIBLE_DEVICES", v)])).unwrap();
            assert!(got.assignment.is_none(), "{v:?}");
            assert!(got.notes[0].contains("restricts nothing"));
        }
        assert!(from_env(env(&[])).unwrap().assignment.is_none());
        // Kubernetes' device plugin names the container's GPU by UUID.
        let a = from_env(env(&[("NVIDIA_VISIBLE_DEVICES", "GPU-8f3c0d2e-aaaa")]))
            .unwrap()
            .assignment
            .unwrap();
        assert_eq!(a.devices, vec![DeviceRef::Uuid("GPU-8f3c0d2e-aaaa".into())]);
        // A malformed list is an error, not "no restriction".
        assert!(from_env(env(&[("CUDA_VISIBLE_DEVICES", "0,,1")])).is_err());
    }

    #[test]
    fn nvidia_driver_uuids_are_read_by_bus_id() {
        let dir = tempfile::tempdir().unwrap();
        for (bus, uuid) in [("0000:18:00.0", "GPU-aaaa"), ("0000:3b:00.0", "GPU-bbbb")] {
            std::fs::create_dir(dir.path().join(bus)).unwrap();
            std::fs::write(
                dir.path().join(bus).join("information"),
                format!("Model: \t\t NVIDIA H100\nGPU UUID: \t {uuid}\nBus Location: \t {bus}\n"),
            )
            .unwrap();
        }
        std::fs::create_dir(dir.path().join("0000:af:00.0")).unwrap(); // no information file
        let mut got = nvidia_uuids(dir.path());
        got.sort();
        assert_eq!(
            got,
            vec![
                ("GPU-aaaa".to_string(), "0000:18:00.0".to_string()),
                ("GPU-bbbb".to_string(), "0000:3b:00.0".to_string())
            ]
        );
        assert!(nvidia_uuids(&dir.path().join("absent")).is_empty());
    }
}
