//! `alexnet selftest`: every kernel and path against its CPU reference on the chosen adapter
//! (the library's `selftest`), as a table or JSON; exit 1 on any mismatch.

use std::process::ExitCode;

use alexnet_wgpu::selftest::{self, Check};
use clap::Args;

use super::GpuArgs;

#[derive(Args)]
pub struct SelftestArgs {
    #[command(flatten)]
    gpu: GpuArgs,
    /// Print JSON: adapter, limits, validation, every check, and the counts.
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct AdapterJson {
    name: String,
    backend: String,
    driver: String,
    device_type: String,
}

#[derive(serde::Serialize)]
struct Report<'a> {
    adapter: AdapterJson,
    limits: String,
    validation: Option<String>,
    checks: &'a [Check],
    /// Kernels not checked on this adapter, and why.
    skipped: Vec<Skipped>,
    passed: usize,
    failed: usize,
}

#[derive(serde::Serialize)]
struct Skipped {
    kernel: &'static str,
    path: &'static str,
    reason: String,
}

pub fn run(args: SelftestArgs) -> anyhow::Result<ExitCode> {
    let ctx = args.gpu.context()?;
    let bar = super::meter::bar(0, "selftest");
    let checks = selftest::run(&ctx, &mut |done, total, check| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        if !check.ok {
            bar.suspend(|| {
                eprintln!(
                    "FAILED {} {} {}: {}",
                    check.kernel,
                    check.path,
                    check.shape,
                    check.error.clone().unwrap_or_else(|| format!(
                        "max rel err {:.3e} > {:.0e}",
                        check.max_rel_err, check.tol
                    ))
                )
            });
        }
    });
    bar.finish_and_clear();
    let failed = checks.iter().filter(|c| !c.ok).count();
    let passed = checks.len() - failed;
    // The tensor-core cases run only where the device has cooperative matrices.
    let skipped: Vec<Skipped> = alexnet_wgpu::kernels::coop::hardware_absent(&ctx)
        .map(|reason| Skipped {
            kernel: "conv2d",
            path: "coop",
            reason,
        })
        .into_iter()
        .collect();
    if args.json {
        let report = Report {
            adapter: AdapterJson {
                name: ctx.info.name.clone(),
                backend: format!("{:?}", ctx.info.backend),
                driver: format!("{} {}", ctx.info.driver, ctx.info.driver_info)
                    .trim()
                    .to_string(),
                device_type: format!("{:?}", ctx.info.device_type),
            },
            limits: ctx.options.limits.to_string(),
            validation: ctx.options.validate.then(super::validate::describe),
            checks: &checks,
            skipped,
            passed,
            failed,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "adapter: {} (limits: {}, validation: {})",
            ctx.adapter_label(),
            ctx.options.limits,
            if ctx.options.validate {
                super::validate::describe()
            } else {
                "off".into()
            }
        );
        println!(
            "{:<27} {:<26} {:<34} {:>11} {:>7} {:>9}  ok",
            "kernel", "path", "shape", "max rel err", "tol", "ms"
        );
        for c in &checks {
            println!(
                "{:<27} {:<26} {:<34} {:>11.2e} {:>7.0e} {:>9.1}  {}",
                c.kernel,
                c.path,
                c.shape,
                c.max_rel_err,
                c.tol,
                c.ms,
                if c.ok { "ok" } else { "FAILED" }
            );
        }
        for s in &skipped {
            println!("{:<27} {:<26} skipped: {}", s.kernel, s.path, s.reason);
        }
        println!("selftest: {passed} passed, {failed} failed");
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
