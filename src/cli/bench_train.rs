//! `alexnet bench --train-from fc8,fc6,conv5,...`: training steps per second of each choice on
//! full-size random weights, split into forward, backward and optimizer time (`Trainer::
//! profile_step`). The frozen part is not timed: it runs once per image, before training.

use alexnet_wgpu::gpu::GpuContext;
use alexnet_wgpu::model::Weights;
use alexnet_wgpu::train::{HeadKind, HeadWeights, Optimizer, TrainConfig, Trainer};

use super::bench_format::Format;

pub fn run(
    ctx: &GpuContext,
    weights: &Weights,
    kinds: &[HeadKind],
    batches: &[usize],
    iters: usize,
    format: Format,
) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    if matches!(format, Format::Table) {
        println!(
            "{:<11} {:>5} {:>10} {:>10} {:>10} {:>10} {:>9}",
            "train-from", "batch", "step ms", "forward", "backward", "optimizer", "images/s"
        );
    }
    for &kind in kinds {
        let head = HeadWeights::new(kind, weights, 10, 0)?;
        for &batch in batches {
            let cfg = TrainConfig {
                optimizer: Optimizer::Sgd { momentum: 0.9 },
                weight_decay: 0.0,
                dropout: 0.0,
                seed: 0,
                lr_backbone_mult: 1.0,
            };
            let mut t = Trainer::new(ctx, &head, cfg, batch, 1)?;
            let x: Vec<f32> = (0..batch * head.input_len())
                .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
                .collect();
            let labels: Vec<u32> = (0..batch as u32).map(|i| i % 10).collect();
            let (f, b, o) = t.profile_step(&x, &labels, 1e-4, iters)?;
            let total = f + b + o;
            let ips = batch as f64 / total;
            let share = |v: f64| 100.0 * v / total;
            match format {
                Format::Table => println!(
                    "{:<11} {:>5} {:>10.1} {:>9.0}% {:>9.0}% {:>9.0}% {:>9.2}",
                    kind.first_layer(),
                    batch,
                    1e3 * total,
                    share(f),
                    share(b),
                    share(o),
                    ips
                ),
                Format::Json => rows.push(serde_json::json!({
                    "train_from": kind.first_layer(), "batch": batch, "step_s": total,
                    "forward_s": f, "backward_s": b, "optimizer_s": o, "images_per_s": ips,
                })),
            }
        }
    }
    if matches!(format, Format::Json) {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    }
    Ok(())
}
