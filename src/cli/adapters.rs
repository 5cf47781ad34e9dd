use std::process::ExitCode;

use alexnet_wgpu::gpu::explain_choice;
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

/// Lists the adapters and marks the one a GPU command would open with these flags and this
/// environment (a scheduler's GPU assignment included), saying why; exit 1 when it would open
/// none (an assignment that names no adapter).
pub fn run(args: AdaptersArgs) -> anyhow::Result<ExitCode> {
    let env = super::gpu_env::from_env(super::env_var)?;
    let choice = args.gpu.choice()?;
    let report = explain_choice(&choice, args.gpu.limits)?;
    let (adapters, chosen) = (report.adapters, report.chosen);
    if adapters.is_empty() {
        // The same error and exit status as a failed device request, table or JSON (the JSON
        // is still the empty array, for scripts that read it).
        if args.json {
            println!("[]");
        }
        return Err(alexnet_wgpu::Error::NoAdapter {
            filter: choice.describe(),
        }
        .into());
    }
    let chosen_index = chosen.as_ref().ok().map(|(i, _)| *i);
    if args.json {
        // The array of adapters as before, each with `chosen`, the chosen one with `why`.
        let mut list = Vec::with_capacity(adapters.len());
        for (i, a) in adapters.iter().enumerate() {
            let mut v = serde_json::to_value(a)?;
            v["chosen"] = (chosen_index == Some(i)).into();
            if let (Some(k), Ok((_, why))) = (chosen_index, &chosen) {
                if k == i {
                    v["why"] = why.clone().into();
                }
            }
            list.push(v);
        }
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(match chosen {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        });
    }
    for (i, a) in adapters.iter().enumerate() {
        let mark = chosen_index == Some(i);
        println!(
            "{}{} ({}, {}){}",
            if mark { "* " } else { "  " },
            a.name,
            a.backend,
            a.device_type,
            if mark { "  <- chosen" } else { "" }
        );
        let bus = if a.pci_bus_id.is_empty() {
            "none reported"
        } else {
            a.pci_bus_id.as_str()
        };
        println!(
            "    driver: {} {}; PCI bus id: {bus}",
            a.driver, a.driver_info
        );
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
    for note in &env.notes {
        println!("note: {note}");
    }
    match chosen {
        Ok((i, why)) => {
            println!(
                "chosen: {} ({}), because {why}",
                adapters[i].name, adapters[i].backend
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: no adapter would be opened: {e}");
            eprintln!(
                "  hint: --adapter NAME (or WGPU_ADAPTER_NAME) names one instead of the assignment"
            );
            Ok(ExitCode::from(1))
        }
    }
}
