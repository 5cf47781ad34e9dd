//! The `alexnet` command: parses arguments and hands over to the library.
// The CLI's doc comments are clap help texts ("[N, 9216]" is a shape, not a link).
#![allow(rustdoc::broken_intra_doc_links)]

mod cli;
#[cfg(unix)]
mod signals;

use std::process::ExitCode;

fn main() -> ExitCode {
    // Before anything reads the environment, on the one thread there is.
    cli::unset_empty_env_twins();
    let (args, matches) = cli::parse(std::env::args_os()).unwrap_or_else(|e| e.exit());
    cli::validate::install_logger();
    // SIGINT / SIGTERM / SIGHUP: remove every temporary file of a write in progress (a signal
    // runs no destructors), say what was kept, and exit with 128 + the signal's number as
    // shells expect (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP).
    let cleanup = |code: i32| {
        alexnet_wgpu::fsutil::abandon_pending_writes();
        eprintln!();
        eprintln!("{}", cli::interrupt_note());
        std::process::exit(code);
    };
    #[cfg(unix)]
    let _ = signals::install(move |sig| cleanup(128 + sig));
    // Windows has no signal numbers: Ctrl-C and closing the console both exit 130.
    #[cfg(not(unix))]
    let _ = ctrlc::set_handler(move || cleanup(130));
    let result = cli::run(args, &matches);
    // For tests and the curious: how often each pipeline was compiled in this process.
    if std::env::var_os("ALEXNET_REPORT_PIPELINES").is_some() {
        for (name, count) in alexnet_wgpu::gpu::compile_counts() {
            eprintln!("pipeline compiled: {name} x{count}");
        }
    }
    // Errors the driver's validation layer reported after the last read-back.
    let late = alexnet_wgpu::gpu::validation::take_driver_errors();
    let result = match result {
        Ok(_) if !late.is_empty() => Err(anyhow::anyhow!(
            "validation failed:\n  {}",
            late.join("\n  ")
        )),
        r => r,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if let Some(h) = cli::hint::hint(&e) {
                eprintln!("  {h}");
            }
            ExitCode::from(2)
        }
    }
}
