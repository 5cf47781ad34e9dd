//! `--train-from conv4` and `conv1` against PyTorch: the reduced-width net of each preset
//! fine-tuned from conv4 (conv1..conv3 frozen; conv4, conv5, fc6, fc7 and a new fc8 trained), and
//! the torchvision and Caffe nets and the zoo-style BVLC ONNX (max pools rounding up) from
//! conv1 (everything trained; conv1's K = 363 is not a multiple of 4, so its forward GEMM reads
//! a padded copy of its weights), for 4 SGD-momentum
//! steps with weight decay, batches of 2 then 1 (a remainder batch), against
//! `torch.optim.SGD` on `requires_grad` parameters in float64
//! (`scripts/make_conv_finetune_fixtures.py`, `tests/fixtures/finetune_conv{4,1}_*.npz`).
//!
//! Tolerances: each step's loss within 1e-4 relative, each trained layer's total update
//! (final - initial, weight and bias together) within 1e-3 relative in the L2 norm (1e-2 for
//! Caffe from conv1, where PyTorch's own float32 run is 5.8e-3 off its float64 one), each
//! tensor alone within 1e-2 (a bias gradient is one long sum with cancellation): we run in f32 (sums of up to ~4000
//! products, rounding ~1e-6 relative per layer, through four steps whose updates are 1e-3 to
//! 1e-1 of the values), PyTorch in f64. Frozen layers must be bit-identical in the saved model.
//! Also: `--resume` with convolutions training continues exactly (bit-identical to an
//! uninterrupted run), and `--lr-backbone-mult` scales only the layers below fc8.

use crate::common;
use crate::common::finetune_support;

use alexnet_wgpu::model::{Arch, Weights};
use alexnet_wgpu::train::conv_stack::ConvStack;
use alexnet_wgpu::train::head::conv_hosts;
use alexnet_wgpu::train::{fit, ConvPart, FeatureSet, HeadKind, HeadWeights, Optimizer};
use alexnet_wgpu::weights::read_tensors;
use common::{ctx, fixture};
use finetune_support::*;

#[test]
fn torchvision_from_conv4_follows_pytorch() {
    against_torch(
        "torchvision_small.npz",
        Arch::Torchvision,
        "input_224.npy",
        "torchvision",
        4,
    );
}

#[test]
fn caffe_from_conv4_follows_pytorch() {
    against_torch(
        "caffe_small.npz",
        Arch::Caffe,
        "input_227_caffe.npy",
        "caffe",
        4,
    );
}

#[test]
fn keras_from_conv4_follows_pytorch() {
    against_torch(
        "keras_small_pt.npz",
        Arch::Keras,
        "input_227_keras.npy",
        "keras",
        4,
    );
}

#[test]
fn torchvision_from_conv1_follows_pytorch() {
    against_torch(
        "torchvision_small.npz",
        Arch::Torchvision,
        "input_224.npy",
        "torchvision",
        1,
    );
}

#[test]
fn caffe_from_conv1_follows_pytorch() {
    against_torch(
        "caffe_small.npz",
        Arch::Caffe,
        "input_227_caffe.npy",
        "caffe",
        1,
    );
}

/// The zoo-style BVLC ONNX from conv1: its max pools round up (ONNX pads `[0, 0, 1, 1]`; they
/// used to be refused for training), at Caffe's 227 crop, on Caffe's fixture input / 64.
#[test]
fn bvlc_onnx_with_rounding_up_pools_from_conv1_follows_pytorch() {
    against_torch(
        "bvlc_small.onnx",
        Arch::Caffe,
        "input_227_caffe.npy/64",
        "bvlc",
        1,
    );
}

/// Resume with convolutions training (Adam, so both moments are checkpointed): an interrupted
/// and resumed run ends bit-identical to an uninterrupted one. Also `--lr-backbone-mult 0`
/// leaves every layer but fc8 unchanged (the factor reaches the convolutions).
#[test]
fn resume_with_convolutions_training_is_exact() {
    let ctx = ctx();
    let w = Weights::load(fixture("torchvision_small.npz"), Some(Arch::Torchvision)).unwrap();
    let x = read_tensors(&fixture("input_224.npy"))
        .unwrap()
        .remove(0)
        .data
        .unwrap();
    let set = frozen_rows(&ctx, &w, "conv4", &x, 3);
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
