//! The yardsticks of `alexnet bench` and the prepared device sweep (issue 26).
//!
//! `scripts/gpu-sweep.sh` runs whole in small mode (`SWEEP_SMALL=1`) on lavapipe with the
//! reduced-width weights (~15 s on 2 cores), so that it cannot die on the card for a trivial
//! reason: every stage succeeds and `sweep.json` has the issues' shape (26's rows, 27's
//! `train` rows). PyTorch is a stand-in (`tests/fixtures/fake_torch`: shapes only, nothing
//! computed) so that both PyTorch scripts run end to end here and their rows reach the tables. It needs bash, python3 (the tables) and lavapipe: a
//! failure in CI (`CI` set; `.ci/install-lavapipe.sh` installs them), a note elsewhere.
//! The library side: per-step timings inside one pass against one pass per dispatch, and the
//! per-pass split into upload and GPU time.

use std::path::Path;
use std::process::Command;

use alexnet_wgpu::model::{Input, LayerTiming, Network, Weights};

use crate::common;

fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

fn runs(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn lavapipe_installed() -> bool {
    ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d"]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("lvp_icd"))
}

fn number(v: &serde_json::Value, what: &str) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"))
}

#[test]
fn small_sweep_runs_every_stage_and_writes_sweep_json() {
    let missing: Vec<&str> = [
        ("bash", runs("bash")),
        ("python3", runs("python3")),
        ("lavapipe", lavapipe_installed()),
    ]
    .iter()
    .filter(|(_, ok)| !ok)
    .map(|(n, _)| *n)
    .collect();
    if !missing.is_empty() {
        assert!(
            !in_ci(),
            "CI must install {missing:?} (.ci/install-lavapipe.sh)"
        );
        eprintln!("skipped: {missing:?} not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let pack = dir.path().join("run.tgz");
    let mut cmd = Command::new("bash");
    cmd.arg(common::root().join("scripts/gpu-sweep.sh"))
        .arg(&out)
        .env("SWEEP_SMALL", "1")
        .env("BIN", env!("CARGO_BIN_EXE_alexnet"))
        .env("WEIGHTS", common::fixture("torchvision_small.npz"))
        .env("PACK", &pack)
        .env("WGPU_BACKEND", "vulkan")
        .env("WGPU_ADAPTER_NAME", "llvmpipe")
        .env("TMPDIR", dir.path())
        .env("PYTHONPATH", common::fixture("fake_torch"));
    for var in [
        "DEBS",
        "ALEXNET_MATMUL",
        "ALEXNET_LIMITS",
        "ALEXNET_VALIDATE",
        "ALEXNET_F16",
        "ALEXNET_CONV_BACKWARD",
        "ALEXNET_CACHE_DIR",
        "VK_DRIVER_FILES",
        "TRAIN_FROM",
    ] {
        cmd.env_remove(var);
    }
    let t = std::time::Instant::now();
    let run = cmd.output().unwrap();
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "gpu-sweep.sh failed:\n{log}");
    assert!(
        t.elapsed().as_secs() < 180,
        "small mode must stay under 3 minutes"
    );

    // Every stage ran and succeeded.
    let stages = std::fs::read_to_string(out.join("stages.txt")).unwrap();
    for stage in [
        "probe",
        "selftest",
        "untuned",
        "kernels",
        "bench",
        "coop-off",
        "gemm",
        "torch",
        "train",
        "torch-train",
        "tables",
    ] {
        let line = stages
            .lines()
            .find(|l| l.starts_with(&format!("{stage} rc=")))
            .unwrap_or_else(|| panic!("stage {stage} missing:\n{stages}"));
        assert!(line.contains("rc=0 "), "{line}\n{log}");
    }
    let summary = std::fs::read_to_string(out.join("summary.txt")).unwrap();
    assert!(summary.contains("done when (issue 27)"), "{summary}");

    let sweep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    for key in ["card", "driver", "date"] {
        assert!(
            sweep[key].as_str().is_some_and(|s| !s.is_empty()),
            "{key}: {sweep}"
        );
    }
    let date = sweep["date"].as_str().unwrap();
    assert!(
        date.len() == 10 && date.as_bytes()[4] == b'-' && date.as_bytes()[7] == b'-',
        "{date}"
    );
    assert_eq!(sweep["selftest"]["failed"], 0, "{}", sweep["selftest"]);
    let rows = sweep["rows"].as_array().unwrap();
    let mut seen: Vec<(String, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["prec"].as_str().unwrap().to_string(),
                r["batch"].as_u64().unwrap(),
            )
        })
        .collect();
    seen.sort();
    let want: Vec<(String, u64)> = [("f16", 1), ("f16", 2), ("f32", 1), ("f32", 2)]
        .iter()
        .map(|(p, b)| (p.to_string(), *b))
        .collect();
    assert_eq!(seen, want, "{sweep}");
    for r in rows {
        // lavapipe has timestamp queries: the GPU-only rate is there.
        assert!(number(&r["ours_img_s"], "ours_img_s") > 0.0, "{r}");
        assert!(number(&r["ours_gpu_img_s"], "ours_gpu_img_s") > 0.0, "{r}");
        assert!(number(&r["ours_upload_ms"], "ours_upload_ms") > 0.0, "{r}");
        for key in ["torch_ieee_img_s", "torch_default_img_s", "torch_f16_img_s"] {
            let v = &r[key];
            assert!(
                v.is_null() || v.as_f64().is_some_and(|x| x > 0.0),
                "{key}: {r}"
            );
            assert!(r.get(key).is_some(), "{key} absent: {r}");
        }
    }
    // The fake PyTorch ran (on the CPU, so no f16 rows): its numbers reach the f32 rows.
    assert_eq!(sweep["torch"], "0.0+fake", "{sweep}");
    for r in rows {
        assert!(r["torch_f16_img_s"].is_null(), "{r}");
        assert!(
            number(&r["torch_ieee_img_s"], "torch_ieee_img_s") > 0.0,
            "{r}"
        );
    }

    // Training rows (issue 27): one per first trained layer and batch, ours in f32 with one
    // submission per step, beside PyTorch's same steps.
    let train = sweep["train"].as_array().unwrap();
    let mut seen: Vec<(String, u64)> = train
        .iter()
        .map(|r| {
            (
                r["from"].as_str().unwrap().to_string(),
                r["batch"].as_u64().unwrap(),
            )
        })
        .collect();
    seen.sort();
    let want: Vec<(String, u64)> = ["conv1", "conv4", "fc8"]
        .iter()
        .flat_map(|f| [(f.to_string(), 1), (f.to_string(), 2)])
        .collect();
    assert_eq!(seen, want, "{sweep}");
    for r in train {
        assert_eq!(r["prec"], "f32", "{r}");
        assert!(number(&r["ours_img_s"], "ours_img_s") > 0.0, "{r}");
        assert!(
            number(&r["ours_resident_step_ms"], "ours_resident_step_ms") > 0.0,
            "{r}"
        );
        assert_eq!(r["ours_submissions"], 1, "{r}");
        for key in ["torch_ieee_img_s", "torch_default_img_s"] {
            assert!(number(&r[key], key) > 0.0, "{key}: {r}");
        }
        assert!(r["torch_f16_img_s"].is_null(), "CPU: no f16 autocast: {r}");
    }
    assert_eq!(sweep["torch_train"], "0.0+fake", "{sweep}");
    // PyTorch's freezing, by hand for full-size torchvision with 10 classes: fc8 alone is
    // 4096 x 10 + 10; from conv4, conv4 (384 -> 256, 3 x 3), conv5 (256 -> 256, 3 x 3), fc6
    // (9216 -> 4096), fc7 and fc8; from conv1, every layer (AlexNet's 61,100,840 less the
    // 1000-class fc8 plus the 10-class one).
    let peer: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("torch_train.json")).unwrap())
            .unwrap();
    let fc8 = 4096 * 10 + 10;
    let conv4_up = (384 * 256 * 9 + 256)
        + (256 * 256 * 9 + 256)
        + (9216 * 4096 + 4096)
        + (4096 * 4096 + 4096)
        + fc8;
    let all = 61_100_840 - (4096 * 1000 + 1000) + fc8;
    for r in peer["results"].as_array().unwrap() {
        let want = match r["train_from"].as_str().unwrap() {
            "fc8" => fc8,
            "conv4" => conv4_up,
            "conv1" => all,
            other => panic!("unexpected row {other}"),
        };
        assert_eq!(r["trained_parameters"], want, "{r}");
    }

    let gemm = &sweep["gemm_tflops"];
    assert!(number(&gemm["f32"], "gemm_tflops.f32") > 0.0, "{gemm}");
    assert!(
        gemm.get("coop").is_some_and(|c| c.is_null() || c.is_f64()),
        "{gemm}"
    );

    // The bench yardsticks the rows came from.
    let ours: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("ours.json")).unwrap()).unwrap();
    assert_eq!(
        ours["layer_timing"], "gpu timestamps inside one pass",
        "lavapipe has TIMESTAMP_QUERY_INSIDE_PASSES"
    );
    let gemm_run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("gemm.json")).unwrap()).unwrap();
    let gemm_rows = gemm_run["gemm"].as_array().unwrap();
    assert!(gemm_rows
        .iter()
        .any(|g| g["shape"] == "square" && g["timing"] == "gpu timestamps"));
    // Each conv's GEMM shape, by hand for the reduced-width net's conv1 (12 filters of
    // 3 x 11 x 11 at stride 4, pad 2 on 224 x 224: 55 x 55 pixels; K = 363 rounded up to 8)
    // and conv2 at batch 2 (40 filters of 12 x 5 x 5 on 27 x 27).
    let dims = |shape: &str| {
        gemm_rows
            .iter()
            .find(|g| g["shape"] == shape && g["precision"] == "f32")
            .map(|g| [&g["m"], &g["n"], &g["k"]].map(|v| v.as_u64().unwrap()))
            .unwrap_or_else(|| panic!("no GEMM row {shape}"))
    };
    assert_eq!(dims("conv1 b1"), [12, 55 * 55, 368]);
    assert_eq!(dims("conv2 b2"), [40, 2 * 27 * 27, 304]);
    let adapters: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("adapters.json")).unwrap()).unwrap();
    let a = &adapters[0];
    assert!(a["subgroup_min_size"].as_u64().unwrap() >= 1, "{a}");
    assert!(a["cooperative_matrix_configs"].is_array(), "{a}");

    // Packed after the last stage: a gzip holding sweep.json.
    let bytes = std::fs::read(&pack).unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "not a gzip: {}", pack.display());
    let list = Command::new("tar").arg("-tzf").arg(&pack).output().unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("run/sweep.json"));
    assert!(!Path::new(&format!("{}.part", pack.display())).exists());
}

fn small_net(ctx: &alexnet_wgpu::gpu::GpuContext) -> (Network, Vec<f32>, [usize; 3]) {
    let w = Weights::load(common::fixture("torchvision_small.npz"), None).unwrap();
    let [_, h, wd] = w.spec().input;
    let net = Network::new(ctx, &w).unwrap();
    let batch = 2;
    (
        net,
        common::random(batch * 3 * h * wd, 11, 1.0),
        [batch, h, wd],
    )
}

#[test]
fn layers_timed_inside_one_pass_match_the_plan_and_one_pass_per_dispatch() {
    let ctx = common::ctx();
    let (mut net, input, [batch, h, w]) = small_net(&ctx);
    net.forward(&input, batch, h, w, false).unwrap();
    if !net.has_timestamps() {
        eprintln!("skipped: no timestamp queries on this adapter");
        return;
    }
    let per_dispatch = net
        .time_layers(batch, h, w, LayerTiming::PassPerDispatch)
        .unwrap();
    let labels = |s: &[alexnet_wgpu::model::StepTiming]| -> Vec<String> {
        s.iter().map(|t| t.label.clone()).collect()
    };
    assert!(per_dispatch.iter().map(|s| s.ms).sum::<f64>() > 0.0);
    if net.layer_timing() != LayerTiming::InPass {
        let err = net
            .time_layers(batch, h, w, LayerTiming::InPass)
            .unwrap_err();
        assert!(err.to_string().contains("inside one pass"), "{err}");
        return;
    }
    let in_pass = net.time_layers(batch, h, w, LayerTiming::InPass).unwrap();
    assert_eq!(labels(&in_pass), labels(&per_dispatch));
    for (a, b) in in_pass.iter().zip(&per_dispatch) {
        assert_eq!(a.variants, b.variants);
        assert_eq!(a.flops, b.flops);
        assert!(a.ms >= 0.0 && a.ms.is_finite(), "{}: {}", a.label, a.ms);
    }
    // The convolutions do nearly all the work: their steps cannot all be ~0.
    let conv: f64 = in_pass
        .iter()
        .filter(|s| s.label.starts_with("conv"))
        .map(|s| s.ms)
        .sum();
    assert!(conv > 0.0, "{in_pass:?}");
    // The wall-clock fallback still names every step.
    let wall = net
        .time_layers(batch, h, w, LayerTiming::WallClock)
        .unwrap();
    assert_eq!(labels(&wall), labels(&per_dispatch));
}

#[test]
fn a_pass_splits_into_upload_and_gpu_time() {
    let ctx = common::ctx();
    let (mut net, input, [batch, h, w]) = small_net(&ctx);
    let want = net.forward(&input, batch, h, w, false).unwrap().logits;
    let t = net.time_pass(Input::Floats(&input), batch, h, w).unwrap();
    assert!(t.upload_ms > 0.0 && t.upload_ms.is_finite(), "{t:?}");
    match t.gpu_ms {
        Some(ms) => assert!(ms > 0.0 && ms.is_finite(), "{t:?}"),
        None => assert!(!net.has_timestamps()),
    }
    // Pixels (what `bench` times, as `classify` sends images): uploaded and normalised.
    let table = alexnet_wgpu::data::norm_table(&alexnet_wgpu::data::Preprocess::TORCHVISION);
    let pixels: Vec<u8> = (0..input.len()).map(|i| (i * 7) as u8).collect();
    let p = net
        .time_pass(Input::Pixels(&pixels, &table), batch, h, w)
        .unwrap();
    assert!(
        p.upload_ms > 0.0 && p.gpu_ms.is_some() == t.gpu_ms.is_some(),
        "{p:?}"
    );
    // The timed pass uploaded the same input and left the network as it was.
    assert_eq!(
        net.forward(&input, batch, h, w, false).unwrap().logits,
        want
    );
    // A wrong-sized input is refused, not uploaded.
    let err = net
        .time_pass(Input::Floats(&input[1..]), batch, h, w)
        .unwrap_err();
    assert!(err.to_string().contains("expected"), "{err}");
}

/// A batch over the binding limit is timed as the sub-batches `forward` runs (lowered limit: 8
/// images of 224 do not fit), their times summed.
#[test]
fn a_pass_over_the_binding_limit_is_timed_in_sub_batches() {
    let mut ctx = common::ctx();
    ctx.limits.max_storage_buffer_binding_size = 2 << 20;
    let w = Weights::load(common::fixture("torchvision_small.npz"), None).unwrap();
    let [_, h, wd] = w.spec().input;
    let mut net = Network::new(&ctx, &w).unwrap();
    let batch = 8;
    let sub = net.fitting_batch(batch, h, wd).unwrap();
    assert!((1..batch).contains(&sub), "sub-batch {sub}");
    let input = common::random(batch * 3 * h * wd, 12, 1.0);
    let one = net
        .time_pass(Input::Floats(&input[..sub * 3 * h * wd]), sub, h, wd)
        .unwrap();
    let all = net.time_pass(Input::Floats(&input), batch, h, wd).unwrap();
    assert!(all.upload_ms > 0.0, "{all:?}");
    if let (Some(a), Some(o)) = (all.gpu_ms, one.gpu_ms) {
        assert!(a > 0.0 && o > 0.0, "{all:?} {one:?}");
    }
}
