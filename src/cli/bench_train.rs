//! `alexnet bench --train-from fc8,fc6,conv5,...`: training steps per second of each choice on
//! full-size random weights (or `--weights`). The step timed is the real one (`Trainer::
//! time_step`: the batch's upload and one submission, as `train-head` runs it); its split into
//! forward, backward and optimizer time comes from a separate run of the three parts, each
//! submitted and waited for alone (`Trainer::profile_step`). `resident ms` is the same step
//! with the batch kept in GPU memory and gathered there (`Trainer::time_step_resident`), as
//! `train-head` runs when its cached rows fit the adapter's budget. The frozen part is not timed: it
//! runs once per image, before training.

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
            "{:<11} {:>5} {:>10} {:>11} {:>11} {:>9} {:>10} {:>10} {:>10}",
            "train-from",
            "batch",
            "step ms",
            "resident ms",
            "submissions",
            "images/s",
            "forward",
            "backward",
            "optimizer"
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
            let step = t.time_step(&x, &labels, 1e-4, iters)?;
            let resident = t.time_step_resident(&x, &labels, 1e-4, iters)?;
            let resident_ms =
                resident.map_or("-".to_string(), |r| format!("{:.1}", 1e3 * r.seconds));
            let (f, b, o) = t.profile_step(&x, &labels, 1e-4, iters)?;
            let split = f + b + o;
            let ips = batch as f64 / step.seconds;
            let share = |v: f64| 100.0 * v / split;
            match format {
                Format::Table => println!(
                    "{:<11} {:>5} {:>10.1} {:>11} {:>11} {:>9.2} {:>9.0}% {:>9.0}% {:>9.0}%",
                    kind.first_layer(),
                    batch,
                    1e3 * step.seconds,
                    resident_ms,
                    step.submissions,
                    ips,
                    share(f),
                    share(b),
                    share(o),
                ),
                Format::Json => rows.push(serde_json::json!({
                    "train_from": kind.first_layer(), "batch": batch, "step_s": step.seconds,
                    "submissions_per_step": step.submissions, "images_per_s": ips,
                    "resident_step_s": resident.map(|r| r.seconds),
                    "split_step_s": split, "forward_s": f, "backward_s": b, "optimizer_s": o,
                })),
            }
        }
    }
    if matches!(format, Format::Json) {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    }
    Ok(())
}
