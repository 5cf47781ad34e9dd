//! What to do next, for the errors where the command line is the answer. The library's errors
//! say what went wrong without naming flags; the binary adds the flag or command that fixes it.

use std::path::Path;

use alexnet_wgpu::Error;

/// A hint for the first library error in `e`'s chain that has one.
pub fn hint(e: &anyhow::Error) -> Option<String> {
    let lib = e.chain().find_map(|c| c.downcast_ref::<Error>())?;
    Some(match lib {
        Error::NoCachedWeights { path, file } => format!(
            "hint: run `alexnet fetch-weights` to download torchvision's pre-trained AlexNet \
             (about 233 MB) into the cache, or pass --weights FILE (.npz, .pth, .h5).\n  \
             offline: copy a converted file to {p} (`alexnet convert \
             alexnet-owt-7be5be79.pth {p}` on any machine), or set --cache-dir / {env} to a \
             folder holding {file}",
            p = path.display(),
            env = super::CACHE_ENV,
        ),
        Error::NoCacheDir => format!(
            "hint: --cache-dir DIR (or {}) names a folder for the pre-trained weights",
            super::CACHE_ENV
        ),
        Error::NoAdapter { filter } if filter.is_empty() => {
            "hint: `alexnet adapters` lists what wgpu finds; --backend / WGPU_BACKEND \
             chooses the graphics API"
                .into()
        }
        Error::NoAdapter { .. } => "hint: `alexnet adapters` lists the adapters; --adapter / \
             WGPU_ADAPTER_NAME matches part of a name, --backend / WGPU_BACKEND the API"
            .into(),
        Error::GpuAssignment { .. } => "hint: `alexnet adapters` shows the GPUs in PCI bus order \
             and which one each variable names; --adapter NAME (or WGPU_ADAPTER_NAME) picks one \
             by name instead"
            .into(),
        Error::Unreachable { .. } => "hint: no network? download the file on another machine and \
             run `alexnet convert FILE.pth OUT.npz`, then pass --weights OUT.npz or copy it to \
             the cache (see `alexnet fetch-weights --help`)"
            .into(),
        Error::OverLimit { .. } => "hint: a smaller --batch needs smaller buffers".into(),
        Error::CheckpointMismatch { .. } => {
            "hint: resume with the same options and data, or drop --resume to start over".into()
        }
        Error::Diverged { .. } => "hint: a lower --lr (10x lower, say) usually trains; start \
             over without --resume, as the checkpoint is of these options"
            .into(),
        Error::ResumeWithoutCheckpoint => "hint: --resume continues from --out's checkpoint".into(),
        _ => return None,
    })
}

/// One failed input's line for stderr: the library's message, and the flag that gets past it
/// where there is one (a truncated JPEG: `--allow-truncated`).
pub fn input_failure(e: &Error) -> String {
    match e {
        Error::Input(i) if i.kind == alexnet_wgpu::InputErrorKind::Truncated => {
            format!("{e}\n  hint: --allow-truncated decodes what is there")
        }
        _ => e.to_string(),
    }
}

/// Printed when a signal stops `train-head`: where the last complete checkpoint is.
pub fn resume_note(checkpoint: &Path) -> String {
    if checkpoint.is_file() {
        format!(
            "interrupted: the last complete checkpoint is {}; run the same command with --resume \
             to continue from it",
            checkpoint.display()
        )
    } else {
        "interrupted before the first epoch ended: no checkpoint was written".into()
    }
}
