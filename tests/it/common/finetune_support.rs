//! What the PyTorch comparisons of `--train-from convN` share (tests/it/finetune_conv.rs, and
//! tests/it/finetune_conv_blocked.rs, which runs them on the GPU default matmul path): fixtures,
//! the frozen part's rows, the fit options of the fixture script, and the comparison itself
//! (tolerances: see tests/it/finetune_conv.rs).

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::{ctx, fixture};
use alexnet_wgpu::model::{Arch, Weights};
use alexnet_wgpu::train::conv_stack::ConvStack;
use alexnet_wgpu::train::export::with_head;
use alexnet_wgpu::train::head::conv_hosts;
use alexnet_wgpu::train::{
    fit, ConvPart, FeatureSet, FitOptions, HeadKind, HeadWeights, Keep, Optimizer, Schedule,
    TrainConfig,
};
use alexnet_wgpu::weights::read_tensors;

pub fn tensors(path: &Path) -> BTreeMap<String, Vec<f32>> {
    read_tensors(path)
        .unwrap()
        .into_iter()
        .map(|t| (t.key, t.data.unwrap()))
        .collect()
}

/// The frozen part's output (the input of `first`) for the fixture images, on the GPU.
pub fn frozen_rows(
    ctx: &alexnet_wgpu::gpu::GpuContext,
    w: &Weights,
    first: &str,
    x: &[f32],
    n: usize,
) -> FeatureSet {
    let (prefix, _, _) = ConvPart::split(w, first).unwrap();
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

pub fn options(lr: f32, steps: usize) -> FitOptions {
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
        resident_budget: None,
    }
}

/// (name, weight, bias) of every trained tensor pair of `h`.
pub fn trained(h: &HeadWeights) -> Vec<(String, Vec<f32>, Vec<f32>)> {
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

pub fn l2(v: impl Iterator<Item = f64>) -> f64 {
    v.map(|x| x * x).sum::<f64>().sqrt()
}

pub fn against_torch(weights: &str, arch: Arch, input: &str, preset: &str, first: usize) {
    against_torch_on(&ctx(), weights, arch, input, preset, first)
}

/// [`against_torch`] on a given context (one with other runtime options than the suite's).
pub fn against_torch_on(
    ctx: &alexnet_wgpu::gpu::GpuContext,
    weights: &str,
    arch: Arch,
    input: &str,
    preset: &str,
    first: usize,
) {
    let w = Weights::load(fixture(weights), Some(arch)).unwrap();
    let want = tensors(&fixture(&format!("finetune_conv{first}_{preset}.npz")));
    // `NAME.npy/64`: that input scaled by 1/64 (exact in f32, as the script does).
    let (file, scale) = match input.strip_suffix("/64") {
        Some(f) => (f, 1.0 / 64.0),
        None => (input, 1.0),
    };
    let x = read_tensors(&fixture(file))
        .unwrap()
        .remove(0)
        .data
        .unwrap();
    let x: Vec<f32> = x.into_iter().map(|v| v * scale).collect();
    let set = frozen_rows(ctx, &w, &format!("conv{first}"), &x, 3);

    let mut head = HeadWeights::new(HeadKind::Conv(first), &w, 3, 0).unwrap();
    head.set(
        "fc8",
        &want["init/fc8.weight"],
        &want["init/fc8.bias"],
        Path::new("fixture"),
    )
    .unwrap();
    let lr = want["lr"][0];
    let out = fit(ctx, &head, &set, None, &options(lr, 4), &mut |_| {}).unwrap();

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
    // Per layer 1e-3, except Caffe from conv1: every layer's update there hangs on sums over
    // 0..255 inputs with heavy cancellation, and PyTorch's own float32 run of the same script
    // is off its float64 run by up to 5.8e-3 per bias (conv1.bias 5.6e-3, conv2.bias 5.8e-3;
    // torchvision: <= 3e-5). Our f32 lands at 4.5e-3 on conv1 with the tiled and mm kernels,
    // below 1e-3 with im2col + GEMM: summation order alone. So 1e-2 there, as per tensor.
    let layer_tol = if preset == "caffe" && first == 1 {
        1e-2
    } else {
        1e-3
    };
    let names: Vec<String> = trained(&out.head).into_iter().map(|t| t.0).collect();
    let all = [
        "conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8",
    ];
    let (frozen, trained_names) = all.split_at(first - 1);
    assert_eq!(names, trained_names);
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
            rel <= layer_tol,
            "{preset} {name}: update off by {rel:e} relative"
        );
    }
    // Frozen layers bit-identical in the saved model; the trained ones changed.
    let saved = with_head(&w, &out.head);
    for name in frozen {
        for part in ["weight", "bias"] {
            let key = format!("{name}.{part}");
            assert!(
                saved.tensors[&key] == w.tensors[&key],
                "{preset} {key} changed"
            );
        }
    }
    for name in &trained_names[..trained_names.len() - 1] {
        let key = format!("{name}.weight");
        assert!(
            saved.tensors[&key] != w.tensors[&key],
            "{preset} {key} not saved"
        );
    }
}
