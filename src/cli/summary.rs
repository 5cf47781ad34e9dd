use std::process::ExitCode;

use alexnet_wgpu::model::Arch;
use alexnet_wgpu::model::Weights;
use clap::Args;

#[derive(Args)]
pub struct SummaryArgs {
    /// Preset to describe (default widths), unless --weights gives the widths (default: torchvision, or what the weights say).
    #[arg(long)]
    arch: Option<Arch>,
    /// Describe the network these weights define (their widths and class count).
    #[arg(long, value_name = "FILE")]
    weights: Option<std::path::PathBuf>,
}

pub fn run(args: SummaryArgs) -> anyhow::Result<ExitCode> {
    let spec = match &args.weights {
        Some(p) => Weights::load(p, args.arch)?.spec(),
        None => {
            let arch = args.arch.unwrap_or(Arch::Torchvision);
            arch.spec(&arch.default_widths())
        }
    };
    let infos = spec.infer()?;
    println!(
        "AlexNet ({}), input {}x{}x{}",
        spec.arch, spec.input[0], spec.input[1], spec.input[2]
    );
    println!(
        "{:<4} {:<44} {:>14} {:>12} {:>10}",
        "#", "layer", "output", "params", "MFLOP"
    );
    let (mut params, mut flops) = (0usize, 0f64);
    for (i, (layer, info)) in spec.layers.iter().zip(&infos).enumerate() {
        let p: usize = info
            .params
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        params += p;
        flops += info.flops;
        let mf = if info.flops > 0.0 {
            format!("{:.1}", info.flops / 1e6)
        } else {
            String::new()
        };
        let ps = if p > 0 { p.to_string() } else { String::new() };
        println!(
            "{:<4} {:<44} {:>14} {:>12} {:>10}",
            i + 1,
            layer.describe(),
            info.output.to_string(),
            ps,
            mf
        );
    }
    println!(
        "total: {params} parameters ({:.1} MiB as f32), {:.3} GFLOP per image (multiply-add = 2)",
        params as f64 * 4.0 / 1048576.0,
        flops / 1e9
    );
    Ok(ExitCode::SUCCESS)
}
