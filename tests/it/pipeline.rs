//! The pipelined input path (`data::stream`: decoding on all cores into two reused host
//! buffers, batch n+1 submitted before batch n is read back) against the sequential path
//! (decode a batch, `Network::forward`, wait, next batch) on real images and the small
//! torchvision network: the same rows in the same order, bit for bit (the same plan runs the
//! same kernels on the same inputs; only the scheduling differs), across batch boundaries, a
//! partial last batch, sub-batches under a lowered binding limit, a broken image mid-stream
//! and augmented views. The scheduler's order of submissions and read-backs (the overlap
//! itself) is unit-tested with a fake GPU in src/data/stream.rs.

use crate::common;

use std::path::{Path, PathBuf};

use alexnet_wgpu::data::stream::{self, Shape};
use alexnet_wgpu::data::{prepare, prepare_into, ClassFolders, LoadOptions, Preprocess};
use alexnet_wgpu::gpu::GpuContext;
use alexnet_wgpu::model::{NetStage, Network, Weights};
use alexnet_wgpu::train::{extract_pool5_with, stream_pool5, PoolBatch};
use common::ctx;
use common::root;

fn weights() -> Weights {
    Weights::load(root().join("tests/fixtures/torchvision_small.npz"), None).unwrap()
}

/// 11 inputs: the repository's images (small, large, EXIF-rotated, CMYK, PNG), a broken file
/// at index 5, and repeats; with batch 4 that is 4 + 4 + 3 (a partial last batch).
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let broken = dir.join("broken.jpg");
    std::fs::write(&broken, b"not a jpeg at all").unwrap();
    let a = |p: &str| root().join(p);
    vec![
        a("assets/images/chelsea.jpg"),
        a("tests/fixtures/input/large_2000x1500.jpg"),
        a("assets/images/camera.png"),
        a("tests/fixtures/input/exif_rotate90.jpg"),
        a("tests/fixtures/input/cmyk.jpg"),
        broken,
        a("assets/images/coffee.jpg"),
        a("tests/fixtures/input/upright.jpg"),
        a("assets/images/astronaut.jpg"),
        a("assets/images/rocket.jpg"),
        a("assets/images/chelsea.jpg"),
    ]
}

/// `paths` as a two-class folder set, alternating labels.
fn two_classes(paths: &[PathBuf]) -> ClassFolders {
    ClassFolders {
        classes: vec!["a".into(), "b".into()],
        items: paths
            .iter()
            .enumerate()
            .map(|(i, p)| (p.clone(), i % 2))
            .collect(),
    }
}

/// The sequential path: each batch decoded, its good images run by `forward` and waited for.
/// Returns per input `Some(logits ++ features)` or `None` for a failed one.
fn sequential(
    net: &mut Network,
    paths: &[PathBuf],
    pre: &Preprocess,
    batch: usize,
) -> Vec<Option<Vec<f32>>> {
    let mut out = Vec::new();
    for chunk in paths.chunks(batch) {
        let tensors: Vec<_> = chunk
            .iter()
            .map(|p| prepare(p, pre, LoadOptions::default()).ok())
            .collect();
        let input: Vec<f32> = tensors.iter().flatten().flatten().copied().collect();
        let n = tensors.iter().flatten().count();
        let res = (n > 0).then(|| net.forward(&input, n, pre.crop, pre.crop, true).unwrap());
        let mut j = 0;
        for t in &tensors {
            out.push(t.as_ref().map(|_| {
                let r = res.as_ref().unwrap();
                let (c, f) = (r.classes, r.feature_len);
                j += 1;
                let mut row = r.logits[(j - 1) * c..j * c].to_vec();
                row.extend_from_slice(&r.features.as_ref().unwrap()[(j - 1) * f..j * f]);
                row
            }));
        }
    }
    out
}

/// The pipelined path over the same inputs, in the order `emit` sees them.
fn pipelined(
    net: &mut Network,
    paths: &[PathBuf],
    pre: &Preprocess,
    batch: usize,
    threads: usize,
) -> (Vec<Option<Vec<f32>>>, Vec<String>) {
    let fill = |p: &PathBuf, out: &mut [f32]| -> alexnet_wgpu::Result<()> {
        prepare_into(p, pre, LoadOptions::default(), out).map(|_| ())
    };
    let shape = Shape {
        batch,
        rows_per_item: 1,
        row_len: 3 * pre.crop * pre.crop,
        threads,
    };
    let mut stage = NetStage {
        net,
        h: pre.crop,
        w: pre.crop,
        want_features: true,
    };
    let (mut rows, mut errors, mut next) = (Vec::new(), Vec::new(), 0usize);
    let times = stream::run(paths, shape, &fill, &mut stage, &mut |d| {
        assert_eq!(d.first, next, "batches in order");
        next += d.items.len();
        let mut j = 0;
        for (p, st) in d.items.iter().zip(&d.status) {
            match st {
                Ok(()) => {
                    let r = d.out.as_ref().unwrap();
                    let (c, f) = (r.classes, r.feature_len);
                    let mut row = r.logits[j * c..(j + 1) * c].to_vec();
                    row.extend_from_slice(&r.features.as_ref().unwrap()[j * f..(j + 1) * f]);
                    rows.push(Some(row));
                    j += 1;
                }
                Err(e) => {
                    errors.push(format!("{}: {e}", p.display()));
                    rows.push(None);
                }
            }
        }
        assert_eq!(
            j,
            d.out.as_ref().map_or(0, |o| o.batch),
            "one row per good item"
        );
        Ok(())
    })
    .unwrap();
    assert_eq!(times.items, paths.len());
    assert_eq!(times.batches, paths.len().div_ceil(batch));
    assert!(times.gpu_s > 0.0 && times.decode_s > 0.0, "{times:?}");
    assert!(times.summary().contains("-bound"), "{}", times.summary());
    (rows, errors)
}

fn assert_same(what: &str, got: &[Option<Vec<f32>>], want: &[Option<Vec<f32>>]) {
    assert_eq!(got.len(), want.len(), "{what}: inputs");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        match (g, w) {
            (Some(g), Some(w)) => {
                assert!(g == w, "{what}: input {i} differs from the sequential path")
            }
            (None, None) => {}
            _ => panic!("{what}: input {i} failed on one path only"),
        }
    }
}

fn check(ctx: &GpuContext, batch: usize, threads: usize) {
    let dir = tempfile::tempdir().unwrap();
    let paths = inputs(dir.path());
    let w = weights();
    let pre = Preprocess::for_arch(w.arch);
    let mut net = Network::new(ctx, &w).unwrap();
    let want = sequential(&mut net, &paths, &pre, batch);
    let (got, errors) = pipelined(&mut net, &paths, &pre, batch, threads);
    assert_same(&format!("batch {batch}, {threads} threads"), &got, &want);
    assert!(got[5].is_none() && got.iter().filter(|r| r.is_none()).count() == 1);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("broken.jpg"), "{errors:?}");
}

/// Batches of 4 (4 + 4 + 3, the broken image in the second) on 3 threads, and batches of 1
/// on 1 thread: bit for bit the sequential path.
#[test]
fn pipelined_rows_equal_the_sequential_path() {
    let ctx = ctx();
    check(&ctx, 4, 3);
    check(&ctx, 1, 1);
}

/// A batch over the binding limit runs as sub-batches (lowered limit: 8 images of 224 do not
/// fit, 3 do): pipelined and sequential both split it, with the same rows.
#[test]
fn pipelined_sub_batches_equal_the_sequential_path() {
    let mut small = ctx();
    small.limits.max_storage_buffer_binding_size = 2 << 20;
    let w = weights();
    let mut net = Network::new(&small, &w).unwrap();
    let sub = net.fitting_batch(8, 224, 224).unwrap();
    assert!((1..8).contains(&sub), "sub-batch {sub}");
    drop(net);
    check(&small, 8, 2);
}

/// train-head's feature cache through the pipeline: augmented views are the same whatever
/// the batch (a per-image generator), one row per view, the broken image skipped; and
/// `stream_pool5` hands over batches in order. Tolerance 1e-5 x max |feature| between batch
/// sizes: the plans differ (another batch size), so the GEMM tiles may sum in another order.
#[test]
fn feature_cache_views_stay_put_across_batch_sizes() {
    let ctx = ctx();
    let dir = tempfile::tempdir().unwrap();
    let paths = inputs(dir.path());
    let w = weights();
    let pre = Preprocess::for_arch(w.arch);
    let mut net = Network::new(&ctx, &w).unwrap();
    let data = two_classes(&paths);
    let opts = LoadOptions::default();
    let a = extract_pool5_with(&mut net, &data, &pre, opts, 2, 7, 4, &|_| {}).unwrap();
    let b = extract_pool5_with(&mut net, &data, &pre, opts, 2, 7, 6, &|_| {}).unwrap();
    assert_eq!(a.skipped.len(), 1);
    assert!(a.skipped[0].path.ends_with("broken.jpg"));
    assert_eq!(a.skipped[0].kind, alexnet_wgpu::InputErrorKind::Decode);
    assert_eq!(a.set.len(), 2 * 10);
    assert_eq!(a.set.labels, b.set.labels);
    assert_eq!(a.set.paths, b.set.paths);
    common::assert_close("views", &a.set.features, &b.set.features, 1e-5);
    // Views of one image differ (random crops), rows of two runs agree.
    assert!(a.set.row(0) != a.set.row(1));
    let mut firsts = Vec::new();
    stream_pool5(
        &mut net,
        &data.items,
        &pre,
        opts,
        0,
        0,
        3,
        &mut |b: PoolBatch| {
            firsts.push(b.first);
            assert_eq!(
                b.features.len(),
                b.status.iter().filter(|s| s.is_ok()).count() * a.set.dim
            );
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(firsts, [0, 3, 6, 9]);
}

/// The frozen-convolution cache of `--train-from conv4` (`extract_frozen`, now through the
/// pipelined loader) against the sequential path: each good image prepared alone and run
/// through the same frozen stack, one at a time. Same rows in the same order, the broken image
/// skipped, at batch 4 (4 + 4 + 3) and 3, and with a spill file (same bytes); 1e-5 x max
/// between batch sizes (another batch, another GEMM plan).
#[test]
fn frozen_conv_cache_rows_equal_the_sequential_path() {
    use alexnet_wgpu::train::{extract_frozen, frozen_stack, HeadKind};
    let ctx = ctx();
    let dir = tempfile::tempdir().unwrap();
    let paths = inputs(dir.path());
    let w = weights();
    let pre = Preprocess::for_arch(w.arch);
    let kind = HeadKind::Conv(4);
    let data = two_classes(&paths);
    let opts = LoadOptions::default();
    let mut one = frozen_stack(&ctx, &w, kind, &pre, 1).unwrap();
    let mut want = Vec::new();
    let mut want_paths = Vec::new();
    for p in &paths {
        if let Ok(x) = prepare(p, &pre, opts) {
            want.extend(one.run(&ctx, &x, 1).unwrap());
            want_paths.push(p.display().to_string());
        }
    }
    let mut in_memory = Vec::new();
    for batch in [4, 3] {
        let (ex, spill) = extract_frozen(
            &ctx,
            &w,
            kind,
            &data,
            &pre,
            opts,
            0,
            0,
            batch,
            None,
            &|_| {},
        )
        .unwrap();
        assert!(spill.is_none());
        assert_eq!(ex.skipped.len(), 1, "batch {batch}");
        assert!(ex.skipped[0].path.ends_with("broken.jpg"));
        assert_eq!(ex.set.paths, want_paths, "batch {batch}");
        assert_eq!(ex.set.labels.len(), 10);
        common::assert_close(&format!("batch {batch}"), &ex.set.features, &want, 1e-5);
        in_memory.push(ex.set.features);
    }
    // Over a zero budget the rows go to a spill file, the same bytes as in memory (batch 4).
    let (ex, spill) = extract_frozen(
        &ctx,
        &w,
        kind,
        &data,
        &pre,
        opts,
        0,
        0,
        4,
        Some((0, dir.path())),
        &|_| {},
    )
    .unwrap();
    let spill = spill.expect("spilled over a zero budget");
    assert!(ex.set.features.is_empty());
    assert_eq!(spill.len(), 10);
    let bytes = std::fs::read(spill.path()).unwrap();
    let on_disk: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(on_disk, in_memory[0]);
}

fn alexnet(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_alexnet"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run alexnet")
}

/// `--timings` on `classify` and `features` reports both sides, their overlap and which one
/// bounds the run (on lavapipe either can win, so only the form is checked); train-head's
/// feature cache takes the same decoding options as classify.
#[test]
fn timings_say_which_side_bounds_the_run() {
    let w = root().join("tests/fixtures/torchvision_small.npz");
    let w = w.to_str().unwrap();
    for args in [
        vec![
            "classify",
            "--weights",
            w,
            "--batch",
            "2",
            "--timings",
            "assets/images",
        ],
        vec![
            "features",
            "--weights",
            w,
            "--batch",
            "2",
            "--timings",
            "--format",
            "jsonl",
            "assets/images",
        ],
    ] {
        let o = alexnet(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{args:?}: {err}");
        assert!(
            err.contains("5 inputs in") && err.contains("3 batches"),
            "{err}"
        );
        assert!(
            err.contains("decode-bound: GPU idle") || err.contains("GPU-bound: decoders waited"),
            "{err}"
        );
        assert!(
            err.contains("GPU busy") && err.contains("overlapped"),
            "{err}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.npz");
    let data = root().join("tests/fixtures/train_data");
    let o = alexnet(&[
        "train-head",
        "--weights",
        w,
        "--data",
        data.to_str().unwrap(),
        "--epochs",
        "1",
        "--exact-resize",
        "--ignore-orientation",
        "--out",
        model.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(model.exists());
}

/// The library's one runner (`model::run`, under `classify`, `embed`, `eval` and the pool5
/// stream), on images as those send them (8-bit pixels normalised on the GPU): per item, in
/// input order, the sequential f32 path's logits and features bit for bit (the GPU reads the
/// CPU's normalisation table: `tests/it/pixels.rs`), the broken image as its error,
/// `batch_end` on each batch's last item (4 + 4 + 3); and an error from the callback (here on
/// the f32 route) stops the run and comes back as the caller's own value.
#[test]
fn the_runner_yields_the_sequential_rows_per_item_and_returns_the_callbacks_error() {
    use alexnet_wgpu::model::{run, Fill, RunError, RunShape};
    let ctx = ctx();
    let dir = tempfile::tempdir().unwrap();
    let paths = inputs(dir.path());
    let w = weights();
    let pre = Preprocess::for_arch(w.arch);
    let mut net = Network::new(&ctx, &w).unwrap();
    let want = sequential(&mut net, &paths, &pre, 4);
    let fill = |p: &PathBuf, out: &mut [f32]| -> alexnet_wgpu::Result<()> {
        prepare_into(p, &pre, LoadOptions::default(), out).map(|_| ())
    };
    let fill_pixels = |p: &PathBuf, out: &mut [u8]| -> alexnet_wgpu::Result<()> {
        alexnet_wgpu::data::prepare_pixels_into(p, &pre, LoadOptions::default(), out).map(|_| ())
    };
    let shape = RunShape {
        threads: 3,
        ..RunShape::images(4, pre.crop, pre.crop)
    };
    let (mut got, mut ends, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    let pixels = Fill::Pixels(&fill_pixels, &pre);
    run::run(&mut net, &paths, pixels, shape, true, &mut |r| {
        assert_eq!(r.index, got.len(), "items in input order");
        assert_eq!(r.item, &paths[r.index]);
        if r.batch_end {
            ends.push(r.index);
        }
        got.push(match r.row {
            Ok(row) => {
                assert_eq!(row.logits.len(), row.probs.len());
                Some([row.logits, row.features].concat())
            }
            Err(e) => {
                errors.push(e.to_string());
                None
            }
        });
        Ok::<(), ()>(())
    })
    .unwrap();
    assert_same("runner, batch 4", &got, &want);
    assert_eq!(ends, [3, 7, 10]);
    assert!(
        errors.len() == 1 && errors[0].contains("broken.jpg"),
        "{errors:?}"
    );

    #[derive(Debug, PartialEq)]
    struct Stop(usize);
    let mut seen = 0;
    let r = run::run(
        &mut net,
        &paths,
        Fill::Floats(&fill),
        shape,
        false,
        &mut |r| {
            seen += 1;
            match r.index {
                2 => Err(Stop(2)),
                _ => Ok(()),
            }
        },
    );
    assert!(matches!(r, Err(RunError::Callback(Stop(2)))), "{r:?}");
    assert_eq!(seen, 3, "the run stops at the callback's error");
}
