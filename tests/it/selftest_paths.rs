//! `alexnet selftest --matmul P` passes on this adapter (lavapipe in CI) for one path of every
//! form `--matmul` accepts (`MatmulPath::forms`): a forced path changes what the trainer and
//! the LPIPS trunk run on, and a judge that fails a correct adapter under one of them (issue
//! 28's defect 16: Adam's check at 1.0-1.8e-5 against a fixed 1e-5 on every path but `gemm`) is
//! worse than none.

use std::process::Command;

use alexnet_wgpu::kernels::MatmulPath;

use crate::common::root;

#[test]
fn selftest_passes_under_every_forced_matmul_path() {
    let forms = MatmulPath::forms();
    assert!(forms.len() >= 12, "{forms:?}");
    for path in forms {
        let name = path.name();
        assert_eq!(MatmulPath::parse(&name), Ok(path), "{name} round trip");
        let out = Command::new(env!("CARGO_BIN_EXE_alexnet"))
            .args(["selftest", "--json", "--matmul", &name])
            .env_remove("ALEXNET_MATMUL")
            .current_dir(root())
            .output()
            .expect("run alexnet");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "--matmul {name}: {e}, exit {:?}\n{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let failed: Vec<_> = report["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .filter(|c| c["ok"] != true)
            .collect();
        assert!(failed.is_empty(), "--matmul {name}: {failed:#?}");
        assert_eq!(out.status.code(), Some(0), "--matmul {name}");
        // The training checks ran, and Adam's computed tolerance kept its teeth.
        let adam = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["kernel"] == "train_step" && c["path"] == "adam")
            .expect("the Adam check");
        assert!(adam["tol"].as_f64().unwrap() < 1e-4, "{adam}");
    }
}
