//! `--train-from conv4` against PyTorch: the reduced-width net of each preset fine-tuned from
//! conv4 (conv1..conv3 frozen; conv4, conv5, fc6, fc7 and a new fc8 trained) for 4 SGD-momentum
//! steps with weight decay, batches of 2 then 1 (a remainder batch), against
//! `torch.optim.SGD` on `requires_grad` parameters in float64
//! (`scripts/make_conv_finetune_fixtures.py`, `tests/fixtures/finetune_conv4_*.npz`).
//!
//! Tolerances: each step's loss within 1e-4 relative, each trained layer's total update
//! (final - initial, weight and bias together) within 1e-3 relative in the L2 norm, each
//! tensor alone within 1e-2 (a bias gradient is one long sum with cancellation): we run in f32 (sums of up to ~4000
//! products, rounding ~1e-6 relative per layer, through four steps whose updates are 1e-3 to
//! 1e-1 of the values), PyTorch in f64. Frozen layers must be bit-identical in the saved model.
//! Also: `--resume` with convolutions training continues exactly (bit-identical to an
//! uninterrupted run), and `--lr-backbone-mult` scales only the layers below fc8.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use alexnet_wgpu::model::{Arch, Weights};
use alexnet_wgpu::train::conv_stack::ConvStack;
use alexnet_wgpu::train::export::with_head;
use alexnet_wgpu::train::head::conv_hosts;
use alexnet_wgpu::train::{
    fit, ConvPart, FeatureSet, FitOptions, HeadKind, HeadWeights, Keep, Optimizer, Schedule,
    TrainConfig,
};
use alexnet_wgpu::weights::read_tensors;
use common::ctx;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn tensors(path: &Path) -> BTreeMap<String, Vec<f32>> {
    read_tensors(path)
        .unwrap()
        .into_iter()
        .map(|t| (t.key, t.data.unwrap()))
        .collect()
}

/// The frozen part's output (the input of conv4) for the fixture images, on the GPU.
fn frozen_rows(
    ctx: &alexnet_wgpu::gpu::GpuContext,
    w: &Weights,
    x: &[f32],
    n: usize,
) -> FeatureSet {
    let (prefix, _, _) = ConvPart::split(w, "conv4").unwrap();
    let s = w.arch.input_size();
    let input = [3, s, s];
    let convs = conv_hosts(w, &prefix, input).unwrap();
    let mut stack = ConvStack::new(ctx, &prefix, input, &convs, n, None).unwrap();
    let features = stack.run(ctx, x, n).unwrap();
    FeatureSet {
        dim: stack.output_len(),
        features,
        labels: (0..n).map(|i| i % 3).collect(),
        paths: vec![],
        classes: vec!["0".into(), "1".into(), "2".into()],
    }
}

fn options(lr: f32, steps: usize) -> FitOptions {
    FitOptions {
        epochs: 100,
        steps: Some(steps),
        batch: 2,
        lr,
        schedule: Schedule::Constant,
        shuffle: false,
        patience: None,
        keep: Keep::Last,
        config: TrainConfig {
            optimizer: Optimizer::Sgd { momentum: 0.9 },
            weight_decay: 5e-4,
            dropout: 0.0,
            seed: 0,
            lr_backbone_mult: 1.0,
        },
        checkpoint: None,
        resume: false,
        interrupt_after: None,
    }
}

/// (name, weight, bias) of every trained tensor pair of `h`.
fn trained(h: &HeadWeights) -> Vec<(String, Vec<f32>, Vec<f32>)> {
    let mut out: Vec<_> = h
        .conv
        .iter()
        .flat_map(|c| &c.convs)
        .map(|c| (c.name.clone(), c.weight.clone(), c.bias.clone()))
        .collect();
    out.extend(
        h.layers
            .iter()
            .map(|l| (l.name.clone(), l.weight.clone(), l.bias.clone())),
    );
    out
}

fn l2(v: impl Iterator<Item = f64>) -> f64 {
    v.map(|x| x * x).sum::<f64>().sqrt()
}

fn against_torch(weights: &str, arch: Arch, input: &str, preset: &str) {
    let ctx = ctx();
    let w = Weights::load(&fixture(weights), Some(arch)).unwrap();
    let want = tensors(&fixture(&format!("finetune_conv4_{preset}.npz")));
    let x = read_tensors(&fixture(input))
        .unwrap()
        .remove(0)
        .data
        .unwrap();
    let set = frozen_rows(&ctx, &w, &x, 3);

    let mut head = HeadWeights::new(HeadKind::Conv(4), &w, 3, 0).unwrap();
    head.set(
        "fc8",
        &want["init/fc8.weight"],
        &want["init/fc8.bias"],
        Path::new("fixture"),
    )
    .unwrap();
    let lr = want["lr"][0];
    let out = fit(&ctx, &head, &set, None, &options(lr, 4), &mut |_| {}).unwrap();

    let losses = &want["loss"];
    assert_eq!(out.steps.len(), losses.len());
    for (s, l) in out.steps.iter().zip(losses) {
        let rel = ((s.loss - l) / l).abs();
        assert!(
            rel <= 1e-4,
            "{preset} step {}: loss {} vs torch {l} (rel {rel:e})",
            s.step,
            s.loss
        );
    }
    let names: Vec<String> = trained(&out.head).into_iter().map(|t| t.0).collect();
    assert_eq!(names, ["conv4", "conv5", "fc6", "fc7", "fc8"]);
    for ((name, w1, b1), (_, w0, b0)) in trained(&out.head).into_iter().zip(trained(&head)) {
        let (mut layer_err, mut layer_norm) = (0.0, 0.0);
        for (part, v1, v0) in [("weight", &w1, &w0), ("bias", &b1, &b0)] {
            let dt = &want[&format!("delta/{name}.{part}")];
            let d: Vec<f64> = v1
                .iter()
                .zip(v0)
                .map(|(a, b)| *a as f64 - *b as f64)
                .collect();
            let err = l2(d.iter().zip(dt).map(|(a, b)| a - *b as f64));
            let norm = l2(dt.iter().map(|&v| v as f64));
            assert!(
                norm > 0.0,
                "{preset} {name}.{part}: torch did not change it"
            );
            // A bias alone is held to 1e-2: Caffe's conv4 bias gradient sums dY over every
            // pixel with heavy cancellation (inputs 0..255), 4.5e-3 off in f32.
            assert!(
                err <= 1e-2 * norm,
                "{preset} {name}.{part}: update off by {:e} relative",
                err / norm
            );
            layer_err += err * err;
            layer_norm += norm * norm;
        }
        let rel = (layer_err / layer_norm).sqrt();
        assert!(
            rel <= 1e-3,
            "{preset} {name}: update off by {rel:e} relative"
        );
    }
    // Frozen layers bit-identical in the saved model; the trained ones changed.
    let saved = with_head(&w, &out.head);
    for name in ["conv1", "conv2", "conv3"] {
        for part in ["weight", "bias"] {
            let key = format!("{name}.{part}");
            assert!(
                saved.tensors[&key] == w.tensors[&key],
                "{preset} {key} changed"
            );
        }
    }
    for name in ["conv4", "conv5", "fc6", "fc7"] {
        let key = format!("{name}.weight");
        assert!(
            saved.tensors[&key] != w.tensors[&key],
            "{preset} {key} not saved"
        );
    }
}

#[test]
fn torchvision_from_conv4_follows_pytorch() {
    against_torch(
        "torchvision_small.npz",
        Arch::Torchvision,
        "input_224.npy",
        "torchvision",
    );
}

#[test]
fn caffe_from_conv4_follows_pytorch() {
    against_torch(
        "caffe_small.npz",
        Arch::Caffe,
        "input_227_caffe.npy",
        "caffe",
    );
}

#[test]
fn keras_from_conv4_follows_pytorch() {
    against_torch(
        "keras_small_pt.npz",
        Arch::Keras,
        "input_227_keras.npy",
        "keras",
    );
}

/// Resume with convolutions training (Adam, so both moments are checkpointed): an interrupted
/// and resumed run ends bit-identical to an uninterrupted one. Also `--lr-backbone-mult 0`
/// leaves every layer but fc8 unchanged (the factor reaches the convolutions).
#[test]
fn resume_with_convolutions_training_is_exact() {
    let ctx = ctx();
    let w = Weights::load(&fixture("torchvision_small.npz"), Some(Arch::Torchvision)).unwrap();
    let x = read_tensors(&fixture("input_224.npy"))
        .unwrap()
        .remove(0)
        .data
        .unwrap();
    let set = frozen_rows(&ctx, &w, &x, 3);
    let head = HeadWeights::new(HeadKind::Conv(5), &w, 3, 4).unwrap();
    // conv5 alone needs the frozen output of conv4: rebuild the rows from the conv4 input.
    let (_, layers4, input4) = ConvPart::split(&w, "conv4").unwrap();
    let conv4 = &layers4[..2];
    let mut s4 = ConvStack::new(
        &ctx,
        conv4,
        input4,
        &conv_hosts(&w, conv4, input4).unwrap(),
        3,
        None,
    )
    .unwrap();
    let rows5 = FeatureSet {
        features: s4.run(&ctx, &set.features, 3).unwrap(),
        dim: s4.output_len(),
        ..set.clone()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(1e-3, 6);
    opts.config.optimizer = Optimizer::Adam {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
    opts.config.dropout = 0.5;
    opts.shuffle = true;
    let whole = fit(&ctx, &head, &rows5, None, &opts, &mut |_| {}).unwrap();
    opts.checkpoint = Some(dir.path().join("m.ckpt.npz"));
    opts.interrupt_after = Some(1);
    let first = fit(&ctx, &head, &rows5, None, &opts, &mut |_| {}).unwrap();
    assert_eq!(first.epochs_done, 1);
    opts.interrupt_after = None;
    opts.resume = true;
    let resumed = fit(&ctx, &head, &rows5, None, &opts, &mut |_| {}).unwrap();
    assert_eq!(resumed.epochs_done, whole.epochs_done);
    assert!(
        resumed.head == whole.head,
        "resumed run differs from the uninterrupted one"
    );
    assert!(whole.head != head, "nothing trained");

    let mut frozen = options(1e-2, 2);
    frozen.config.lr_backbone_mult = 0.0;
    let out = fit(&ctx, &head, &rows5, None, &frozen, &mut |_| {}).unwrap();
    let (before, after) = (trained(&head), trained(&out.head));
    for ((name, w0, b0), (_, w1, b1)) in before.iter().zip(&after) {
        let same = w0 == w1 && b0 == b1;
        assert_eq!(same, name != "fc8", "{name} with --lr-backbone-mult 0");
    }
}
