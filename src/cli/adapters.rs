use std::process::ExitCode;

use alexnet_wgpu::gpu::list_adapters;
use clap::Args;

use super::GpuArgs;

#[derive(Args)]
pub struct AdaptersArgs {
    #[command(flatten)]
    gpu: GpuArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: AdaptersArgs) -> anyhow::Result<ExitCode> {
    let adapters = list_adapters(&args.gpu.choice(), args.gpu.limits)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&adapters)?);
        return Ok(ExitCode::SUCCESS);
    }
    if adapters.is_empty() {
        // Same message as a failed device request, so the hint is the same everywhere.
        return Err(alexnet_wgpu::Error::NoAdapter {
            filter: String::new(),
        }
        .into());
    }
    for (i, a) in adapters.iter().enumerate() {
        println!(
            "{}{} ({}, {}){}",
            if i == 0 { "* " } else { "  " },
            a.name,
            a.backend,
            a.device_type,
            if i == 0 { "  <- default" } else { "" }
        );
        println!("    driver: {} {}", a.driver, a.driver_info);
        println!(
            "    max buffer {} MiB, max storage binding {} MiB, {} storage buffers/stage, {} B workgroup memory, {} invocations/workgroup",
            a.max_buffer_size >> 20,
            a.max_storage_buffer_binding_size >> 20,
            a.max_storage_buffers_per_shader_stage,
            a.max_compute_workgroup_storage_size,
            a.max_compute_invocations_per_workgroup
        );
        println!(
            "    limits in force: {} (--limits {})",
            if args.gpu.limits == alexnet_wgpu::options::LimitsProfile::WebGpu {
                "WebGPU's baseline"
            } else {
                "the adapter's"
            },
            args.gpu.limits
        );
        println!(
            "    timestamp queries: {} (inside passes: {}), shader f16: {}, subgroups: {} (size {}..{})",
            a.timestamp_query,
            a.timestamp_query_inside_passes,
            a.shader_f16,
            a.subgroup,
            a.subgroup_min_size,
            a.subgroup_max_size
        );
        let coop: Vec<String> = a
            .cooperative_matrix_configs
            .iter()
            .map(|c| {
                format!(
                    "{}x{}x{} {}->{}{}",
                    c.m,
                    c.n,
                    c.k,
                    c.ab,
                    c.cr,
                    if c.saturating_accumulation {
                        " (sat)"
                    } else {
                        ""
                    }
                )
            })
            .collect();
        println!(
            "    cooperative matrices: {}{}",
            if a.cooperative_matrix { "yes" } else { "no" },
            if coop.is_empty() {
                String::new()
            } else {
                format!(" ({})", coop.join(", "))
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
