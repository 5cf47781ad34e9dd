use std::path::Path;

use alexnet_wgpu::train::{plot, EpochRecord, Metrics};
use anyhow::Context;

/// Writes `curves.png` and, with validation metrics, `confusion.png` into `dir`.
pub fn write(dir: &Path, history: &[EpochRecord], metrics: Option<&Metrics>) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    plot::curves(&dir.join("curves.png"), history)?;
    if let Some(m) = metrics {
        plot::confusion(&dir.join("confusion.png"), m)?;
    }
    eprintln!("plots written to {}", dir.display());
    Ok(())
}
