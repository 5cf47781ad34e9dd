//! Issue 27: the cached training rows kept in GPU memory when they fit (uploaded once, each
//! step's batch gathered on the GPU; a budget forces it either way) vs uploaded every step
//! (a budget of 0): the same weights and step losses bit for bit, for a dense head and for `--train-from conv4`, and
//! with the rows split across several buffers.

use crate::common::finetune_support::{frozen_rows, options, trained};
use crate::common::{ctx, fixture, random};
use alexnet_wgpu::model::{Arch, Weights};
use alexnet_wgpu::train::{
    fit, DenseHost, FeatureSet, FitOptions, FitOutcome, HeadKind, HeadWeights, Optimizer,
    TrainConfig, Trainer,
};
use alexnet_wgpu::weights::read_tensors;

fn both(head: &HeadWeights, set: &FeatureSet, opts: &FitOptions) -> (FitOutcome, FitOutcome) {
    let ctx = ctx();
    let run = |budget| {
        let opts = FitOptions {
            resident_budget: budget,
            ..opts.clone()
        };
        fit(&ctx, head, set, None, &opts, &mut |_| {}).unwrap()
    };
    let (gpu, host) = (run(Some(64 << 20)), run(Some(0)));
    assert!(gpu.resident, "the rows fit 64 MiB: resident path");
    assert!(!host.resident, "a budget of 0: per-step upload");
    // The adapter's default: resident on a GPU, not on a CPU adapter (lavapipe in CI).
    let cpu = ctx.info.device_type == wgpu::DeviceType::Cpu;
    assert_eq!(run(None).resident, !cpu);
    (gpu, host)
}

/// Every trained tensor of `a` and `b` (convolutions included) the same bits.
fn assert_same(a: &HeadWeights, b: &HeadWeights) {
    let (ta, tb) = (trained(a), trained(b));
    assert_eq!(ta.len(), tb.len());
    for ((name, wa, ba), (_, wb, bb)) in ta.iter().zip(&tb) {
        assert!(wa == wb, "{name} weight differs");
        assert!(ba == bb, "{name} bias differs");
    }
}

fn classifier(inp: usize) -> HeadWeights {
    let dims = [(inp, 24, true), (24, 16, true), (16, 3, false)];
    HeadWeights {
        kind: HeadKind::Classifier,
        layers: dims
            .iter()
            .enumerate()
            .map(|(i, &(inp, out, relu))| DenseHost {
                name: ["fc6", "fc7", "fc8"][i].into(),
                inp,
                out,
                relu,
                weight: random(out * inp, 7 + i as u64, (3.0 / inp as f32).sqrt()),
                bias: random(out, 17 + i as u64, 0.1),
            })
            .collect(),
        conv: None,
    }
}

fn rows(n: usize, dim: usize) -> FeatureSet {
    FeatureSet {
        features: random(n * dim, 3, 1.0),
        dim,
        labels: (0..n).map(|i| i % 3).collect(),
        paths: vec![],
        classes: vec!["a".into(), "b".into(), "c".into()],
    }
}

/// Dense head, Adam, dropout, shuffled, a partial last batch: 3 epochs of 30 rows by 7.
#[test]
fn resident_rows_train_the_dense_head_bit_identically() {
    let set = rows(30, 20);
    let mut opts = options(1e-2, 12);
    opts.batch = 7;
    opts.shuffle = true;
    opts.config = TrainConfig {
        optimizer: Optimizer::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
        weight_decay: 1e-4,
        dropout: 0.3,
        seed: 5,
        lr_backbone_mult: 1.0,
    };
    let head = classifier(20);
    let (gpu, host) = both(&head, &set, &opts);
    let losses = |o: &FitOutcome| o.steps.iter().map(|s| s.loss).collect::<Vec<_>>();
    assert_eq!(losses(&gpu).len(), 12);
    assert_eq!(losses(&gpu), losses(&host));
    assert_same(&gpu.head, &host.head);
    assert!(
        gpu.head.layers[2].weight != head.layers[2].weight,
        "it trained"
    );
}

/// `--train-from conv4` on the reduced-width torchvision net: the rows are conv3's output.
#[test]
fn resident_rows_train_from_conv4_bit_identically() {
    let ctx = ctx();
    let w = Weights::load(fixture("torchvision_small.npz"), Some(Arch::Torchvision)).unwrap();
    let x = read_tensors(&fixture("input_224.npy"))
        .unwrap()
        .remove(0)
        .data
        .unwrap();
    let set = frozen_rows(&ctx, &w, "conv4", &x, 3);
    let head = HeadWeights::new(HeadKind::Conv(4), &w, 3, 0).unwrap();
    let mut opts = options(1e-3, 4);
    opts.shuffle = true;
    opts.config.dropout = 0.5;
    let (gpu, host) = both(&head, &set, &opts);
    let losses = |o: &FitOutcome| o.steps.iter().map(|s| s.loss).collect::<Vec<_>>();
    assert_eq!(losses(&gpu), losses(&host));
    assert_same(&gpu.head, &host.head);
}

/// The rows split across four buffers (a part cap of 6 rows), gathered in a shuffled order
/// with runs of consecutive rows and rows from several parts in one batch, vs the same rows
/// uploaded; a row past the set is refused.
#[test]
fn resident_rows_split_across_buffers_gather_the_right_rows() {
    let ctx = ctx();
    let (n, dim, batch) = (23, 20, 5);
    let set = rows(n, dim);
    let head = classifier(dim);
    let cfg = options(1e-2, 1).config;
    let mut gpu = Trainer::new(&ctx, &head, cfg, batch, 8).unwrap();
    let mut host = Trainer::new(&ctx, &head, cfg, batch, 8).unwrap();
    let fitted = gpu
        .make_resident_split(n, 1 << 20, (6 * dim * 4) as u64, &mut |r| {
            Ok(set.features[r.start * dim..r.end * dim].to_vec())
        })
        .unwrap();
    assert!(fitted && gpu.is_resident());
    let order = [
        3, 4, 5, 6, 7, 22, 0, 1, 12, 11, 10, 9, 8, 2, 13, 14, 15, 16, 17, 18, 19, 20, 21,
    ];
    for (slot, idx) in order.chunks(batch).enumerate() {
        let labels: Vec<u32> = idx.iter().map(|&i| set.labels[i] as u32).collect();
        let x: Vec<f32> = idx.iter().flat_map(|&i| set.row(i).to_vec()).collect();
        gpu.train_step_rows(idx, &labels, 0.05, slot).unwrap();
        host.train_step(&x, &labels, 0.05, slot).unwrap();
    }
    let steps = order.len().div_ceil(batch);
    assert_eq!(
        gpu.take_epoch_stats(steps).unwrap(),
        host.take_epoch_stats(steps).unwrap()
    );
    assert_same(&gpu.head().unwrap(), &host.head().unwrap());
    let err = gpu.train_step_rows(&[0, 23], &[0, 1], 0.05, 0).unwrap_err();
    assert!(err.to_string().contains("row 23 of 23"), "{err}");
    // Too small a budget: not resident, and the steps say so.
    let mut small = Trainer::new(&ctx, &head, cfg, batch, 8).unwrap();
    assert!(!small
        .make_resident_split(
            n,
            (n * dim * 4 - 1) as u64,
            1 << 20,
            &mut |_| unreachable!()
        )
        .unwrap());
    assert!(small.train_step_rows(&[0], &[0], 0.05, 0).is_err());
}

/// A cache spilled to a file is made resident from the file (read once, in chunks) and trains
/// what the in-memory cache uploaded per step trains.
#[test]
fn a_spilled_cache_made_resident_trains_the_same_weights() {
    use alexnet_wgpu::train::{fit_rows, SpillFile};
    let ctx = ctx();
    let set = rows(30, 20);
    let head = classifier(20);
    let mut opts = options(1e-2, 8);
    opts.batch = 7;
    opts.shuffle = true;
    let dir = tempfile::tempdir().unwrap();
    let mut spill = SpillFile::new_in(dir.path(), 20).unwrap();
    spill.append(&set.features[..200]).unwrap();
    spill.append(&set.features[200..]).unwrap();
    let run = |rows: &mut dyn alexnet_wgpu::train::TrainRows, budget| {
        let opts = FitOptions {
            resident_budget: budget,
            ..opts.clone()
        };
        fit_rows(&ctx, &head, &set, rows, None, &opts, &mut |_| {}).unwrap()
    };
    let spilled = run(&mut spill, Some(64 << 20));
    assert!(spilled.resident);
    let uploaded = run(&mut alexnet_wgpu::train::Cached(&set), Some(0));
    assert!(!uploaded.resident);
    assert_same(&spilled.head, &uploaded.head);
}
