//! Per-epoch checkpoints: the current and best heads, the optimizer state and the progress of
//! the run, in one `.npz` written atomically, so `--resume` continues exactly where an
//! interrupted run stopped (same weights as an uninterrupted run).

use std::path::Path;

use super::config::OptimizerState;
use super::features::FeatureSet;
use super::fit_options::{EpochRecord, FitOptions, StepRecord};
use super::head::HeadWeights;
use crate::error::{Error, Result};
use crate::weights::{read_strings, read_tensors, write_npz, NpzEntry};

/// Progress state saved in checkpoints.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Progress {
    pub(crate) version: u32,
    pub(crate) epochs_done: usize,
    pub(crate) steps_done: u64,
    pub(crate) best_epoch: Option<usize>,
    pub(crate) best_val_loss: Option<f64>,
    pub(crate) history: Vec<EpochRecord>,
    pub(crate) steps: Vec<StepRecord>,
    /// The options of the run that wrote it (a resumed run must use the same).
    pub(crate) fingerprint: String,
}

/// `rows`: what the training rows are ([`super::rows::TrainRows::kind`]); left out for cached
/// rows, so checkpoints written before it was recorded still resume.
pub(crate) fn fingerprint(
    opts: &FitOptions,
    train: &FeatureSet,
    rows: &str,
    head: &HeadWeights,
) -> String {
    let rows = if rows == super::rows::CACHED {
        String::new()
    } else {
        format!("|{rows}")
    };
    format!(
        "{:?}|{}|{}|{}|{:?}|{}|{:?}|{}x{}{rows}|{:?}|{:?}",
        opts.config,
        opts.epochs,
        opts.batch,
        opts.lr,
        opts.schedule,
        opts.shuffle,
        opts.steps,
        train.len(),
        train.dim,
        head.layers
            .iter()
            .map(|l| (l.inp, l.out))
            .collect::<Vec<_>>(),
        head.conv
            .iter()
            .flat_map(|c| &c.convs)
            .map(|c| (&c.name, c.shape))
            .collect::<Vec<_>>()
    )
}

/// `(name, weight shape, bias shape, weight, bias)` of every trained layer, convolutions first.
type Entry<'h> = (String, Vec<usize>, Vec<usize>, &'h [f32], &'h [f32]);

fn head_entries<'h>(head: &'h HeadWeights, prefix: &str) -> Vec<Entry<'h>> {
    let convs = head.conv.iter().flat_map(|c| &c.convs).map(|c| {
        let s = c.shape;
        (
            format!("{prefix}{}", c.name),
            vec![s.out_c, s.in_c / s.groups, s.kernel, s.kernel],
            vec![s.out_c],
            &c.weight[..],
            &c.bias[..],
        )
    });
    let dense = head.layers.iter().map(|l| {
        (
            format!("{prefix}{}", l.name),
            vec![l.out, l.inp],
            vec![l.out],
            &l.weight[..],
            &l.bias[..],
        )
    });
    convs.chain(dense).collect()
}

pub(crate) fn save_checkpoint(
    path: &Path,
    head: &HeadWeights,
    best: &HeadWeights,
    state: &[OptimizerState],
    progress: &Progress,
) -> Result<()> {
    let json = vec![serde_json::to_string(progress).expect("serialisable")];
    let mut shapes = Vec::new();
    for (h, prefix) in [(head, "head/"), (best, "best/")] {
        for (name, ws, bs, w, b) in head_entries(h, prefix) {
            shapes.push((format!("{name}.weight"), ws, w));
            shapes.push((format!("{name}.bias"), bs, b));
        }
    }
    let state_shapes: Vec<(String, [usize; 1], [usize; 1])> = state
        .iter()
        .map(|(n, w, b)| (n.clone(), [w.len()], [b.len()]))
        .collect();
    let mut entries: Vec<(String, NpzEntry)> = shapes
        .iter()
        .map(|(n, s, d)| (n.clone(), NpzEntry::F32(s, d)))
        .collect();
    for ((n, w, b), (_, ws, bs)) in state.iter().zip(&state_shapes) {
        entries.push((format!("opt/{n}.weight"), NpzEntry::F32(ws, w)));
        entries.push((format!("opt/{n}.bias"), NpzEntry::F32(bs, b)));
    }
    entries.push(("progress".into(), NpzEntry::Str(&json)));
    write_npz(path, &entries)
}

pub(crate) type Checkpoint = (HeadWeights, HeadWeights, Vec<OptimizerState>, Progress);

pub(crate) fn load_checkpoint(path: &Path, like: &HeadWeights) -> Result<Checkpoint> {
    let bad = |m: String| {
        Error::input(
            path.to_path_buf(),
            crate::error::InputErrorKind::Malformed,
            m,
        )
    };
    let progress: Progress = read_strings(path, "progress")?
        .and_then(|j| j.first().and_then(|s| serde_json::from_str(s).ok()))
        .ok_or_else(|| bad("not a train-head checkpoint (no 'progress')".into()))?;
    let tensors: std::collections::BTreeMap<String, Vec<f32>> = read_tensors(path)?
        .into_iter()
        .filter_map(|t| t.data.ok().map(|d| (t.key, d)))
        .collect();
    let get = |k: &str| {
        tensors
            .get(k)
            .cloned()
            .ok_or_else(|| bad(format!("missing '{k}'")))
    };
    let mut heads = Vec::new();
    for prefix in ["head/", "best/"] {
        let mut h = like.clone();
        for l in h.layers.iter_mut() {
            l.weight = get(&format!("{prefix}{}.weight", l.name))?;
            l.bias = get(&format!("{prefix}{}.bias", l.name))?;
            if l.weight.len() != l.out * l.inp || l.bias.len() != l.out {
                return Err(bad(format!("'{prefix}{}' does not fit this head", l.name)));
            }
        }
        for c in h.conv.iter_mut().flat_map(|c| c.convs.iter_mut()) {
            c.weight = get(&format!("{prefix}{}.weight", c.name))?;
            c.bias = get(&format!("{prefix}{}.bias", c.name))?;
            if c.weight.len() != c.shape.weight_len() || c.bias.len() != c.shape.out_c {
                return Err(bad(format!(
                    "'{prefix}{}' does not fit this network",
                    c.name
                )));
            }
        }
        heads.push(h);
    }
    let mut state = Vec::new();
    let names = like
        .conv
        .iter()
        .flat_map(|c| &c.convs)
        .map(|c| &c.name)
        .chain(like.layers.iter().map(|l| &l.name));
    for layer in names {
        for k in 1..=2 {
            let name = format!("{layer}.state{k}");
            if let (Some(w), Some(b)) = (
                tensors.get(&format!("opt/{name}.weight")),
                tensors.get(&format!("opt/{name}.bias")),
            ) {
                state.push((name, w.clone(), b.clone()));
            }
        }
    }
    let best = heads.pop().expect("two heads");
    let head = heads.pop().expect("two heads");
    Ok((head, best, state, progress))
}
