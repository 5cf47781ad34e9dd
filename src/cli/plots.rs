use std::path::Path;

use alexnet_wgpu::train::{EpochRecord, Metrics};

pub fn write(
    _dir: &Path,
    _history: &[EpochRecord],
    _metrics: Option<&Metrics>,
) -> anyhow::Result<()> {
    anyhow::bail!("--plot is not available yet")
}
