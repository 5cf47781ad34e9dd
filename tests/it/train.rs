//! Training kernels against CPU references (f64) and finite differences, and the GPU trainer
//! against a CPU implementation of the same protocol, step by step.

use crate::common;

use alexnet_wgpu::gpu::{read_back_f32, storage_buffer, upload_f32, SplitWeight};
use alexnet_wgpu::kernels;
use alexnet_wgpu::kernels::mm::Force;
use alexnet_wgpu::kernels::route::DenseBackwardRoute;
use alexnet_wgpu::kernels::{
    adam, cross_entropy, dense_backward, dropout, relu_backward, sgd, Kernels, MatmulPath,
};
use alexnet_wgpu::train::reference::train_cpu;
use alexnet_wgpu::train::{
    fit, DenseHost, FeatureSet, FitOptions, HeadKind, HeadWeights, Optimizer, Schedule,
    TrainConfig, Trainer,
};
use common::{assert_close, ctx, random};

#[test]
fn dense_backward_matches_reference_and_finite_differences() {
    let ctx = ctx();
    let (batch, inp, out) = (5, 37, 23);
    let w = random(out * inp, 1, 0.5);
    let x = random(batch * inp, 2, 1.0);
    let dy = random(batch * out, 3, 1.0);
    // `dense_backward.wgsl` (the CPU adapters' route), and the GPUs' `mm.wgsl` tiles over the
    // operands where they lie, unsplit and split over K (partial sums, then a reduce that
    // adds the later weight parts' input gradients).
    let blocked = |split| {
        MatmulPath::Blocked(Force {
            split,
            ..Force::default()
        })
    };
    let paths = [MatmulPath::Gemm, blocked(None), blocked(Some(2))];
    for (path, rows_per_part) in paths.into_iter().flat_map(|p| [(p, usize::MAX), (p, 7)]) {
        let tk = Kernels::with_path(&ctx, path);
        let route = tk.dense_backward_route(batch, inp, rows_per_part.min(out));
        assert_eq!(
            matches!(route, DenseBackwardRoute::Mm { .. }),
            path != MatmulPath::Gemm,
            "{path:?}: {route:?}"
        );
        let ws =
            SplitWeight::upload_with_rows_per_part(&ctx, "w", &w, out, inp, rows_per_part).unwrap();
        let (xb, dyb) = (
            upload_f32(&ctx, "x", &x).unwrap(),
            upload_f32(&ctx, "dy", &dy).unwrap(),
        );
        let dx = storage_buffer(&ctx, "dx", batch * inp, "").unwrap();
        let dw: Vec<_> = ws
            .parts
            .iter()
            .map(|(_, r, _)| storage_buffer(&ctx, "dw", r * inp, "").unwrap())
            .collect();
        let db = storage_buffer(&ctx, "db", out, "").unwrap();
        let mut ds = dense_backward::grad_input(&ctx, &tk, batch, &ws, &dyb, &dx).unwrap();
        ds.extend(
            dense_backward::grad_weight_bias(&ctx, &tk, batch, &ws, &xb, &dyb, &dw, &db).unwrap(),
        );
        kernels::run(&ctx, &ds).unwrap();
        let got_dw: Vec<f32> = ws
            .parts
            .iter()
            .zip(&dw)
            .flat_map(|((_, r, _), b)| read_back_f32(&ctx, b, r * inp).unwrap())
            .collect();
        let (rdx, rdw, rdb) = dense_backward::reference(&w, &x, &dy, batch, inp, out);
        assert_close(
            "dx",
            &read_back_f32(&ctx, &dx, batch * inp).unwrap(),
            &rdx,
            1e-5,
        );
        assert_close("dw", &got_dw, &rdw, 1e-5);
        assert_close("db", &read_back_f32(&ctx, &db, out).unwrap(), &rdb, 1e-5);
    }
    // Finite differences of f = sum(dy * (x w^T + b)) (f64, central, eps 1e-3; f is linear in
    // each parameter so the difference quotient is exact up to rounding).
    let f = |w: &[f32], x: &[f32]| -> f64 {
        let y = kernels::dense::reference(w, &vec![0.0; out], x, batch, false);
        y.iter().zip(&dy).map(|(a, b)| *a as f64 * *b as f64).sum()
    };
    let (rdx, rdw, _) = dense_backward::reference(&w, &x, &dy, batch, inp, out);
    for idx in [0, 17, out * inp - 1] {
        let (mut wp, mut wm) = (w.clone(), w.clone());
        wp[idx] += 1e-3;
        wm[idx] -= 1e-3;
        let fd = (f(&wp, &x) - f(&wm, &x)) / 2e-3;
        assert!(
            (fd - rdw[idx] as f64).abs() < 1e-3 * (1.0 + fd.abs()),
            "dw[{idx}]: fd {fd} vs {}",
            rdw[idx]
        );
    }
    for idx in [0, 40, batch * inp - 1] {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp[idx] += 1e-3;
        xm[idx] -= 1e-3;
        let fd = (f(&w, &xp) - f(&w, &xm)) / 2e-3;
        assert!(
            (fd - rdx[idx] as f64).abs() < 1e-3 * (1.0 + fd.abs()),
            "dx[{idx}]: fd {fd} vs {}",
            rdx[idx]
        );
    }
}

#[test]
fn cross_entropy_gradient_matches_reference_and_finite_differences() {
    let ctx = ctx();
    let tk = Kernels::new(&ctx);
    let (batch, classes) = (70, 9); // more rows than the 64-wide workgroup
    let logits = random(batch * classes, 4, 5.0);
    let labels: Vec<u32> = (0..batch as u32)
        .map(|i| (i * 7) % classes as u32)
        .collect();
    let lb = upload_f32(&ctx, "logits", &logits).unwrap();
    let lab = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: (batch * 4) as u64,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    ctx.queue
        .write_buffer(&lab, 0, bytemuck::cast_slice(&labels));
    let grad = storage_buffer(&ctx, "grad", batch * classes, "").unwrap();
    let stats = storage_buffer(&ctx, "stats", cross_entropy::STATS_HEADER + 1, "").unwrap();
    let d = cross_entropy::dispatch(&ctx, &tk, batch, classes, &lb, &lab, &grad, &stats).unwrap();
    kernels::run(&ctx, &[d]).unwrap();
    let (loss, correct, want) = cross_entropy::reference(&logits, &labels, classes);
    assert_close(
        "ce grad",
        &read_back_f32(&ctx, &grad, batch * classes).unwrap(),
        &want,
        1e-5,
    );
    let s = read_back_f32(&ctx, &stats, 5).unwrap();
    assert!(
        ((s[0] as f64) / batch as f64 - loss).abs() < 1e-5 * loss.abs().max(1.0),
        "loss {} vs {loss}",
        s[0] / batch as f32
    );
    assert_eq!((s[1] as usize, s[2] as usize), (correct, batch));
    assert!((s[4] as f64 - loss).abs() < 1e-5 * loss.abs().max(1.0));
    // Finite differences of the mean loss.
    for idx in [0, 13, batch * classes - 1] {
        let (mut p, mut m) = (logits.clone(), logits.clone());
        p[idx] += 1e-3;
        m[idx] -= 1e-3;
        let fd = (cross_entropy::reference(&p, &labels, classes).0
            - cross_entropy::reference(&m, &labels, classes).0)
            / 2e-3;
        assert!(
            (fd - want[idx] as f64).abs() < 1e-5,
            "grad[{idx}]: fd {fd} vs {}",
            want[idx]
        );
    }
}

#[test]
fn relu_backward_dropout_and_optimizers_match_reference() {
    let ctx = ctx();
    let tk = Kernels::new(&ctx);
    let n = 1000;
    let a = random(n, 5, 1.0);
    let g = random(n, 6, 1.0);
    let (ab, gb) = (
        upload_f32(&ctx, "a", &a).unwrap(),
        upload_f32(&ctx, "g", &g).unwrap(),
    );
    kernels::run(
        &ctx,
        &[relu_backward::dispatch(&ctx, &tk, n, &ab, &gb).unwrap()],
    )
    .unwrap();
    assert_eq!(
        read_back_f32(&ctx, &gb, n).unwrap(),
        relu_backward::reference(&a, &g)
    );

    let x = random(n, 7, 1.0);
    let xb = upload_f32(&ctx, "x", &x).unwrap();
    let p = dropout::DropoutParams::new(n, 1234, 5, 0.3);
    kernels::run(&ctx, &[dropout::dispatch(&ctx, &tk, p, &xb).unwrap()]).unwrap();
    let got = read_back_f32(&ctx, &xb, n).unwrap();
    assert_close("dropout", &got, &dropout::reference(&x, 1234, 5, 0.3), 1e-6);
    let dropped = got.iter().filter(|v| **v == 0.0).count();
    assert!(
        (250..350).contains(&dropped),
        "{dropped} of {n} dropped at rate 0.3"
    );

    // The optimizers at a length that takes their vec4 variant (a multiple of 4) and one
    // that takes the scalar shader.
    assert_eq!(
        tk.optimizer("sgd.wgsl", n).1,
        4,
        "{n} values: the vec4 variant"
    );
    assert_eq!(tk.optimizer("adam.wgsl", n + 3).1, 1, "odd length: scalar");
    for n in [n, n + 3] {
        // SGD with momentum: two steps (the first sets buf = g).
        let param = random(n, 8, 1.0);
        let grad = random(n, 9, 1.0);
        let (pb, grb, bufb) = (
            upload_f32(&ctx, "p", &param).unwrap(),
            upload_f32(&ctx, "g", &grad).unwrap(),
            storage_buffer(&ctx, "buf", n, "").unwrap(),
        );
        let d = sgd::dispatch(&ctx, &tk, n, &grb, &pb, &bufb).unwrap();
        let (mut rp, mut rb): (Vec<f64>, Vec<f64>) =
            (param.iter().map(|&v| v as f64).collect(), vec![0.0; n]);
        let g64: Vec<f64> = grad.iter().map(|&v| v as f64).collect();
        for first in [true, false] {
            let sp = sgd::SgdParams {
                len: n as u32,
                first: first as u32,
                _pad: [0; 2],
                lr: 0.1,
                momentum: 0.9,
                weight_decay: 0.01,
                _pad1: 0.0,
            };
            ctx.queue
                .write_buffer(&d._params, 0, bytemuck::bytes_of(&sp));
            kernels::run(&ctx, std::slice::from_ref(&d)).unwrap();
            sgd::reference(&mut rp, &mut rb, &g64, first, 0.1, 0.9, 0.01);
        }
        let rp32: Vec<f32> = rp.iter().map(|&v| v as f32).collect();
        assert_close(
            &format!("sgd, {n} values"),
            &read_back_f32(&ctx, &pb, n).unwrap(),
            &rp32,
            1e-6,
        );

        // Adam: two steps.
        let (pb, mb, vb) = (
            upload_f32(&ctx, "p", &param).unwrap(),
            storage_buffer(&ctx, "m", n, "").unwrap(),
            storage_buffer(&ctx, "v", n, "").unwrap(),
        );
        let d = adam::dispatch(&ctx, &tk, n, &grb, &pb, &mb, &vb).unwrap();
        let (mut rp, mut rm, mut rv): (Vec<f64>, Vec<f64>, Vec<f64>) = (
            param.iter().map(|&v| v as f64).collect(),
            vec![0.0; n],
            vec![0.0; n],
        );
        for t in 1..=2 {
            let ap = adam::AdamParams {
                len: n as u32,
                _pad: [0; 3],
                lr: 0.01,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.001,
                bias_correction1: 1.0 - 0.9f32.powi(t),
                bias_correction2: 1.0 - 0.999f32.powi(t),
                _pad1: 0.0,
            };
            ctx.queue
                .write_buffer(&d._params, 0, bytemuck::bytes_of(&ap));
            kernels::run(&ctx, std::slice::from_ref(&d)).unwrap();
            adam::reference(
                &mut rp,
                &mut rm,
                &mut rv,
                &g64,
                t as u32,
                0.01,
                (0.9, 0.999),
                1e-8,
                0.001,
            );
        }
        let rp32: Vec<f32> = rp.iter().map(|&v| v as f32).collect();
        assert_close(
            &format!("adam, {n} values"),
            &read_back_f32(&ctx, &pb, n).unwrap(),
            &rp32,
            1e-6,
        );
    }
}

/// `pad_rows.wgsl` against its CPU reference: conv1's shape (64 x 363 -> 364), a width already
/// padded, and odd sizes; the padding must be zeros even over a buffer that held other values.
#[test]
fn pad_rows_matches_reference() {
    use alexnet_wgpu::kernels::pad_rows;
    let ctx = ctx();
    let tk = Kernels::new(&ctx);
    for (rows, cols, padded) in [(64, 363, 364), (7, 8, 8), (5, 1, 4), (3, 13, 20)] {
        let src = random(rows * cols, 31, 1.0);
        let sb = upload_f32(&ctx, "src", &src).unwrap();
        let db = upload_f32(&ctx, "dst", &vec![7.0; rows * padded]).unwrap();
        let d = pad_rows::dispatch(&ctx, &tk, (rows, cols, padded), &sb, &db).unwrap();
        kernels::run(&ctx, &[d]).unwrap();
        let got = read_back_f32(&ctx, &db, rows * padded).unwrap();
        let want = pad_rows::reference(&src, rows, cols, padded);
        assert_eq!(got, want, "{rows}x{cols} -> {padded}");
    }
    let sb = upload_f32(&ctx, "src", &[1.0; 8]).unwrap();
    assert!(pad_rows::dispatch(&ctx, &tk, (2, 4, 3), &sb, &sb).is_err());
}

fn small_head(kind: HeadKind, seed: u64) -> HeadWeights {
    let dims: Vec<(usize, usize, bool)> = match kind {
        HeadKind::Last => vec![(48, 5, false)],
        _ => vec![(60, 40, true), (40, 48, true), (48, 5, false)],
    };
    let layers = dims
        .iter()
        .enumerate()
        .map(|(i, &(inp, out, relu))| DenseHost {
            name: ["fc6", "fc7", "fc8"][3 - dims.len() + i].into(),
            inp,
            out,
            relu,
            weight: random(out * inp, seed + i as u64, (3.0 / inp as f32).sqrt()),
            bias: random(out, seed + 10 + i as u64, 0.1),
        })
        .collect();
    HeadWeights {
        kind,
        layers,
        conv: None,
    }
}

/// The GPU trainer and the CPU protocol agree on each step's loss (before the update) and on
/// every parameter after it, within 1e-5 relative (f32 vs f64 over a few steps).
fn check_protocol(kind: HeadKind, optimizer: Optimizer, dropout: f32) {
    let ctx = ctx();
    let head = small_head(kind, 40);
    let cfg = TrainConfig {
        optimizer,
        weight_decay: 1e-3,
        dropout,
        seed: 77,
        lr_backbone_mult: 1.0,
    };
    let inp = head.input_len();
    let batches: Vec<(Vec<f32>, Vec<u32>)> = (0..4)
        .map(|s| {
            let b = if s == 3 { 3 } else { 8 }; // a short last batch too
            let x: Vec<f32> = random(b * inp, 100 + s, 1.0)
                .into_iter()
                .map(|v| v.max(0.0) * 2.0)
                .collect();
            (x, (0..b as u32).map(|i| (i + s as u32) % 5).collect())
        })
        .collect();
    let lrs = [0.05f32, 0.05, 0.02, 0.02];
    let want = train_cpu(&head, &cfg, &batches, &lrs);
    let mut tr = Trainer::new(&ctx, &head, cfg, 8, 4).unwrap();
    for (t, ((x, y), lr)) in batches.iter().zip(lrs).enumerate() {
        tr.train_step(x, y, lr, t).unwrap();
        let got = tr.head().unwrap();
        for (g, w) in got.layers.iter().zip(&want[t].1.layers) {
            assert_close(
                &format!("{kind:?} step {t} {} weight", g.name),
                &g.weight,
                &w.weight,
                1e-5,
            );
            assert_close(
                &format!("{kind:?} step {t} {} bias", g.name),
                &g.bias,
                &w.bias,
                1e-5,
            );
        }
    }
    let stats = tr.take_epoch_stats(4).unwrap();
    for (t, (l, (w, _))) in stats.step_losses.iter().zip(&want).enumerate() {
        assert!(
            (*l as f64 - w).abs() <= 1e-5 * w.abs(),
            "{kind:?} step {t} loss {l} vs {w}"
        );
    }
    assert_eq!(stats.count as usize, 27);
}

#[test]
fn last_head_sgd_momentum_follows_the_cpu_protocol() {
    check_protocol(HeadKind::Last, Optimizer::Sgd { momentum: 0.9 }, 0.0);
}

#[test]
fn classifier_head_with_dropout_follows_the_cpu_protocol() {
    check_protocol(HeadKind::Classifier, Optimizer::Sgd { momentum: 0.9 }, 0.5);
}

#[test]
fn adam_follows_the_cpu_protocol() {
    check_protocol(
        HeadKind::Classifier,
        Optimizer::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
        0.0,
    );
}

fn blobs(n: usize, dim: usize, seed: u64) -> FeatureSet {
    // Three well separated classes: class c has mean +3 on coordinates c*4..c*4+4.
    let noise = random(n * dim, seed, 1.0);
    let labels: Vec<usize> = (0..n).map(|i| i % 3).collect();
    let features = (0..n * dim)
        .map(|j| {
            noise[j]
                + if (j % dim) / 4 == labels[j / dim] {
                    3.0
                } else {
                    0.0
                }
        })
        .collect();
    FeatureSet {
        features,
        dim,
        labels,
        paths: vec![],
        classes: vec!["a".into(), "b".into(), "c".into()],
    }
}

/// A new fc8 of zeros on `inp` features for `classes` classes (the blobs' head).
fn zero_fc8(inp: usize, classes: usize) -> HeadWeights {
    HeadWeights {
        kind: HeadKind::Last,
        layers: vec![DenseHost {
            name: "fc8".into(),
            inp,
            out: classes,
            relu: false,
            weight: vec![0.0; inp * classes],
            bias: vec![0.0; classes],
        }],
        conv: None,
    }
}

fn options(lr: f32, epochs: usize, patience: Option<usize>, schedule: Schedule) -> FitOptions {
    FitOptions {
        epochs,
        steps: None,
        batch: 16,
        lr,
        schedule,
        shuffle: true,
        patience,
        keep: alexnet_wgpu::train::Keep::Best,
        config: TrainConfig {
            optimizer: Optimizer::Sgd { momentum: 0.9 },
            weight_decay: 0.0,
            dropout: 0.0,
            seed: 1,
            lr_backbone_mult: 1.0,
        },
        checkpoint: None,
        resume: false,
        interrupt_after: None,
        resident_budget: None,
    }
}

#[test]
fn fit_learns_separable_features_and_early_stopping_keeps_the_best_epoch() {
    let ctx = ctx();
    let (train, val) = (blobs(96, 12, 1), blobs(30, 12, 2));
    let head = zero_fc8(12, 3);
    let out = fit(
        &ctx,
        &head,
        &train,
        Some(&val),
        &options(0.05, 10, None, Schedule::Cosine),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(out.history.len(), 10);
    let last = out.history.last().unwrap();
    assert!(
        last.val_accuracy.unwrap() > 0.95 && last.train_loss < out.history[0].train_loss,
        "{last:?}"
    );
    assert!(last.lr < 0.01, "cosine schedule ends near 0: {}", last.lr);

    // A learning rate that makes the loss blow up after the first epoch: with patience 2 the
    // run stops two epochs after its best and returns the best epoch's head.
    let out = fit(
        &ctx,
        &head,
        &train,
        Some(&val),
        &options(40.0, 30, Some(2), Schedule::Constant),
        &mut |_| {},
    )
    .unwrap();
    let best = out
        .history
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.val_loss.partial_cmp(&b.1.val_loss).unwrap())
        .unwrap()
        .0;
    assert_eq!(out.best_epoch, best + 1);
    assert_eq!(
        out.history.len(),
        best + 3,
        "{:?}",
        out.history.iter().map(|r| r.val_loss).collect::<Vec<_>>()
    );
    let mut check = Trainer::new(
        &ctx,
        &out.head,
        options(0.0, 1, None, Schedule::Constant).config,
        16,
        1,
    )
    .unwrap();
    let (stats, _) = alexnet_wgpu::train::fit::evaluate(&mut check, &val, 16, false).unwrap();
    assert!(
        (stats.loss() - out.history[best].val_loss.unwrap()).abs() < 1e-4 * stats.loss().max(1.0)
    );
}

#[test]
fn numpy_features_without_classes_or_paths_load_with_numbered_classes() {
    // np.savez(features=float32 [12, 4], labels=int64 [12]): scripts/make_finetune_fixtures.py.
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/numpy_features.npz");
    let set = FeatureSet::load(&path).unwrap();
    assert_eq!(set.classes, vec!["0", "1", "2"]);
    assert!(set.paths.is_empty());
    assert_eq!((set.len(), set.dim), (12, 4));
    assert_eq!(&set.labels[..4], &[0, 1, 2, 0]);
    // Row 1 is near the centre of class 1 ([0, 2, 0, 0] plus 0.1 noise).
    assert!((set.row(1)[1] - 2.0).abs() < 0.5, "{:?}", set.row(1));
}

#[test]
fn keep_last_returns_the_last_epoch_and_keep_best_the_best() {
    let ctx = ctx();
    let (train, val) = (blobs(96, 12, 1), blobs(30, 12, 2));
    let head = zero_fc8(12, 3);
    // A diverging run (lr 40) of 6 epochs without patience: its best epoch is not its last.
    let mut opts = options(40.0, 6, None, Schedule::Constant);
    let best = fit(&ctx, &head, &train, Some(&val), &opts, &mut |_| {}).unwrap();
    opts.keep = alexnet_wgpu::train::Keep::Last;
    let last = fit(&ctx, &head, &train, Some(&val), &opts, &mut |_| {}).unwrap();
    let losses = |o: &alexnet_wgpu::train::FitOutcome| -> Vec<_> {
        o.history
            .iter()
            .map(|r| (r.train_loss, r.val_loss))
            .collect()
    };
    assert_eq!(
        losses(&best),
        losses(&last),
        "keep does not change training"
    );
    assert_eq!((last.kept_epoch, last.epochs_done), (6, 6));
    assert_eq!(best.kept_epoch, best.best_epoch);
    assert!(best.best_epoch < 6, "{:?}", best.history);
    let val_loss = |h: &HeadWeights| {
        let mut t = Trainer::new(&ctx, h, opts.config, 16, 1).unwrap();
        alexnet_wgpu::train::fit::evaluate(&mut t, &val, 16, false)
            .unwrap()
            .0
            .loss()
    };
    for (out, epoch) in [(&best, best.best_epoch), (&last, 6)] {
        let want = best.history[epoch - 1].val_loss.unwrap();
        let got = val_loss(&out.head);
        assert!(
            (got - want).abs() < 1e-4 * want.max(1.0),
            "epoch {epoch}: {got} vs {want}"
        );
    }
}

/// Rows that report another kind than cached rows (as `FreshViews` does), same values.
struct OtherKind<'a>(&'a FeatureSet);

impl alexnet_wgpu::train::TrainRows for OtherKind<'_> {
    fn rows(&mut self, epoch: usize, idx: &[usize]) -> alexnet_wgpu::error::Result<Vec<f32>> {
        alexnet_wgpu::train::Cached(self.0).rows(epoch, idx)
    }
    fn kind(&self) -> String {
        "fresh views x1 per epoch, seed 9".into()
    }
}

/// The checkpoint records what the training rows were: a run resumed with rows of another kind
/// (fresh augmented draws per epoch vs a cache) is refused with the checkpoint's name, and a
/// resume with the same kind continues.
#[test]
fn resume_with_rows_of_another_kind_is_refused() {
    use alexnet_wgpu::train::{fit_rows, Cached};
    let ctx = ctx();
    let train = blobs(32, 12, 1);
    let head = zero_fc8(12, 3);
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("run.ckpt");
    let mut opts = options(0.05, 3, None, Schedule::Constant);
    opts.checkpoint = Some(ck.clone());
    opts.interrupt_after = Some(1);
    let _ = fit_rows(
        &ctx,
        &head,
        &train,
        &mut Cached(&train),
        None,
        &opts,
        &mut |_| {},
    );
    assert!(ck.exists(), "an interrupted run leaves its checkpoint");
    opts.interrupt_after = None;
    opts.resume = true;
    let err = fit_rows(
        &ctx,
        &head,
        &train,
        &mut OtherKind(&train),
        None,
        &opts,
        &mut |_| {},
    )
    .err()
    .expect("resuming with other rows must fail");
    let msg = err.to_string();
    assert!(
        msg.contains("run.ckpt") && msg.contains("other options"),
        "{msg}"
    );
    let out = fit_rows(
        &ctx,
        &head,
        &train,
        &mut Cached(&train),
        None,
        &opts,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(out.history.len(), 3);
}

/// Every `.npz` member carries zip's fixed earliest time (1980-01-01 00:00), not the clock's:
/// two runs with one seed write byte-identical models. (Old code stamped the current time.)
#[test]
fn npz_members_carry_a_fixed_timestamp() {
    use alexnet_wgpu::weights::{write_npz, NpzEntry};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.npz");
    let names = vec!["a".to_string(), "bc".to_string()];
    write_npz(
        &path,
        &[
            ("w".into(), NpzEntry::F32(&[2], &[1.0, 2.0])),
            ("n".into(), NpzEntry::I64(&[1], &[7])),
            ("classes".into(), NpzEntry::Str(&names)),
        ],
    )
    .unwrap();
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&path).unwrap()).unwrap();
    assert_eq!(zip.len(), 3);
    for i in 0..zip.len() {
        let f = zip.by_index(i).unwrap();
        let t = f.last_modified();
        assert_eq!(
            (
                t.year(),
                t.month(),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            ),
            (1980, 1, 1, 0, 0, 0),
            "{} is stamped {t:?}",
            f.name()
        );
    }
}

/// The text confusion matrix names its columns (cut to the column width), stays aligned with
/// long names, and counts in the singular for one image. (Old code numbered the columns 0..n.)
#[test]
fn confusion_matrix_columns_are_named_and_aligned() {
    use alexnet_wgpu::train::Metrics;
    let classes: Vec<String> = ["cat", "dog", "a_very_long_class_name"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // True classes 0, 1, 2, 2; predicted 0, 2, 2, 2.
    let logits = [
        9.0, 0.0, 0.0, //
        0.0, 1.0, 5.0, //
        0.0, 0.0, 3.0, //
        1.0, 0.0, 2.0,
    ];
    let m = Metrics::from_logits(&classes, &logits, &[0, 1, 2, 2]);
    let r = m.report();
    let lines: Vec<&str> = r.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("confusion matrix"))
        .unwrap();
    let header = lines[at + 1];
    let cols: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(cols, ["cat", "dog", "a_very_…"], "{r}");
    let rows = &lines[at + 2..];
    assert_eq!(rows.len(), 3, "{r}");
    let width = |l: &str| l.chars().count();
    for row in rows {
        assert_eq!(width(row), width(header), "misaligned:\n{r}");
    }
    assert!(
        rows[0].starts_with("cat ") && rows[0].ends_with("1        0        0"),
        "{r}"
    );
    assert!(rows[1].ends_with("0        0        1"), "{r}");
    assert!(rows[2].starts_with("a_very_long_class_name"), "{r}");
    assert!(rows[2].ends_with("0        0        2"), "{r}");
    // Singular and plural.
    let one = Metrics::from_logits(&classes, &logits[..3], &[0]).report();
    assert!(one.starts_with("accuracy 100.00% on 1 image\n"), "{one}");
    assert!(r.starts_with("accuracy 75.00% on 4 images"), "{r}");
}

/// A trained convolution whose K is not a multiple of 4 (conv1: 3 x 11 x 11 = 363) keeps its
/// weights, gradient and optimizer state in the forward GEMM's rows of 364 for the whole run:
/// after Adam steps with weight decay (which would move any nonzero pad value) every pad
/// value of all four buffers is still exactly zero, on both GEMM paths, while conv1 trains.
#[test]
fn conv1_pad_column_stays_zero_through_training() {
    use alexnet_wgpu::model::{Arch, Weights};
    use alexnet_wgpu::options::RuntimeOptions;
    let w = Weights::load(
        common::fixture("torchvision_small.npz"),
        Some(Arch::Torchvision),
    )
    .unwrap();
    let head = HeadWeights::new(HeadKind::Conv(1), &w, 3, 0).unwrap();
    let conv1 = &head.conv.as_ref().unwrap().convs[0];
    assert_eq!(conv1.shape.k(), 363);
    for path in [MatmulPath::Gemm, MatmulPath::Blocked(Force::default())] {
        let ctx = common::ctx_with(RuntimeOptions {
            matmul: Some(path),
            ..common::env_options()
        });
        let cfg = TrainConfig {
            optimizer: Optimizer::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            weight_decay: 1e-2,
            dropout: 0.0,
            seed: 5,
            lr_backbone_mult: 1.0,
        };
        let mut t = Trainer::new(&ctx, &head, cfg, 2, 3).unwrap();
        let x = random(2 * t.input_len(), 9, 1.0);
        for slot in 0..3 {
            t.train_step(&x, &[0, 2], 1e-2, slot).unwrap();
        }
        let pad = t.conv_pad_values().unwrap();
        assert_eq!(pad.len(), 4 * conv1.shape.out_c, "{path:?}");
        assert!(pad.iter().all(|&v| v == 0.0), "{path:?}: {pad:?}");
        let after = t.head().unwrap();
        let moved = &after.conv.as_ref().unwrap().convs[0].weight;
        assert_eq!(moved.len(), conv1.weight.len());
        assert!(moved != &conv1.weight, "{path:?}: conv1 did not train");
    }
}
