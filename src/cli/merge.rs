use std::path::PathBuf;
use std::process::ExitCode;

use alexnet_wgpu::shard::{merge, merged_path};
use alexnet_wgpu::train::FeatureSet;
use anyhow::Context;
use clap::Args;

#[derive(Args)]
pub struct MergeArgs {
    /// The --out-dir of the shards: part-IIIII-of-NNNNN.* files.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Output prefix: writes OUT.jsonl and OUT.logits.npy / OUT.features.npy (whichever the
    /// parts have); parts of `features --data` also give OUT.npz (with the parts' `layer`;
    /// `train-head --features` reads pool5's).
    #[arg(value_name = "OUT")]
    out: PathBuf,
}

pub fn run(args: MergeArgs) -> anyhow::Result<ExitCode> {
    let report = merge(&args.dir, &args.out)?;
    let mut written: Vec<PathBuf> = report.outputs.iter().map(|(_, p)| p.clone()).collect();
    if let Some(classes) = report.run.options.get("classes").and_then(|c| c.as_array()) {
        // Class folders: the .npz that train-head --features reads.
        let classes: Vec<String> = classes
            .iter()
            .map(|c| c.as_str().unwrap_or_default().to_string())
            .collect();
        let mut npz = args.out.clone().into_os_string();
        npz.push(".npz");
        let npz = PathBuf::from(npz);
        let set = feature_set(&args.out, classes)
            .with_context(|| format!("joining the merged features into {}", npz.display()))?;
        // Parts written before `--layer` existed hold pool5 rows.
        let layer = report
            .run
            .options
            .get("layer")
            .and_then(|l| l.as_str())
            .unwrap_or("pool5");
        set.save(&npz, layer)?;
        written.push(npz);
    }
    eprintln!(
        "merged {} parts ({} inputs, {} ran, {} failed) into {}",
        report.parts,
        report.inputs,
        report.rows,
        report.failed,
        written
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if report.failed > 0 {
        // Not an error of the merge: the outputs are complete, like each part's.
        eprintln!(
            "warning: {} of {} inputs failed (their error lines are in {})",
            report.failed,
            report.inputs,
            merged_path(&args.out, "jsonl").display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The merged features with their labels and paths (from the merged `.jsonl`).
fn feature_set(out: &std::path::Path, classes: Vec<String>) -> anyhow::Result<FeatureSet> {
    let t = alexnet_wgpu::weights::read_tensors(&merged_path(out, "features"))?.remove(0);
    let dim = t.shape.get(1).copied().unwrap_or(0);
    let features = t.data.map_err(|e| anyhow::anyhow!(e))?;
    let mut set = FeatureSet {
        features,
        dim,
        classes,
        ..Default::default()
    };
    let jsonl = merged_path(out, "jsonl");
    for line in std::fs::read_to_string(&jsonl)?.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        if v.get("error").is_some() {
            continue;
        }
        let label = v["label"]
            .as_u64()
            .with_context(|| format!("{}: a line without a label: {line}", jsonl.display()))?;
        set.labels.push(label as usize);
        set.paths
            .push(v["input"].as_str().unwrap_or_default().to_string());
    }
    anyhow::ensure!(
        set.labels.len() * dim == set.features.len(),
        "{} rows of labels for {} rows of features",
        set.labels.len(),
        set.features.len() / dim.max(1)
    );
    Ok(set)
}
