//! The training loop: epochs over cached features, learning-rate schedule, validation, early
//! stopping, and a checkpoint after every epoch (`checkpoint.rs`) that `--resume` continues
//! exactly.

use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::checkpoint::{fingerprint, load_checkpoint, save_checkpoint, Progress};
use super::features::FeatureSet;
pub use super::fit_options::{EpochRecord, FitOptions, Keep, StepRecord};
use super::head::HeadWeights;
use super::rows::{Cached, TrainRows};
pub use super::schedule::Schedule;
use super::trainer::{Stats, Trainer};
use crate::error::{Error, Result};
use crate::gpu::GpuContext;

/// What [`fit`] returns: the kept head and the run's records.
pub struct FitOutcome {
    /// The head of the epoch `keep` chose: `best_epoch` (lowest validation loss; the last
    /// epoch without validation) or the last epoch trained.
    pub head: HeadWeights,
    /// Which of the two `head` is.
    pub kept: Keep,
    /// The epoch (1-based) whose head was returned.
    pub kept_epoch: usize,
    /// The epoch (1-based) with the lowest validation loss (the last without validation).
    pub best_epoch: usize,
    /// Epochs trained in all (with a resumed run's earlier ones).
    pub epochs_done: usize,
    /// Every epoch's record.
    pub history: Vec<EpochRecord>,
    /// Every optimizer step's record.
    pub steps: Vec<StepRecord>,
    /// Logits of the validation set with the returned head.
    pub val_logits: Option<Vec<f32>>,
    /// Whether the training rows were uploaded to the GPU once and gathered there each step
    /// (they fit [`FitOptions::resident_budget`]) rather than uploaded per step.
    pub resident: bool,
}

fn labels_u32(set: &FeatureSet, idx: &[usize]) -> Vec<u32> {
    idx.iter().map(|&i| set.labels[i] as u32).collect()
}

fn gather(set: &FeatureSet, idx: &[usize]) -> Vec<f32> {
    let mut x = Vec::with_capacity(idx.len() * set.dim);
    for &i in idx {
        x.extend_from_slice(set.row(i));
    }
    x
}

/// Evaluates `set` in batches: (stats, logits when `want_logits`, else empty). The stats are
/// summed on the GPU and read back once.
pub fn evaluate(
    trainer: &mut Trainer,
    set: &FeatureSet,
    batch: usize,
    want_logits: bool,
) -> Result<(Stats, Vec<f32>)> {
    let mut logits = Vec::with_capacity(set.len() * trainer.classes());
    let idx: Vec<usize> = (0..set.len()).collect();
    for chunk in idx.chunks(batch) {
        logits.extend(trainer.evaluate(
            &gather(set, chunk),
            &labels_u32(set, chunk),
            want_logits,
        )?);
    }
    Ok((trainer.take_eval_stats()?, logits))
}

/// Trains `init` on `train`, validating on `val` after every epoch.
pub fn fit(
    ctx: &GpuContext,
    init: &HeadWeights,
    train: &FeatureSet,
    val: Option<&FeatureSet>,
    opts: &FitOptions,
    on_epoch: &mut dyn FnMut(&EpochRecord),
) -> Result<FitOutcome> {
    fit_rows(ctx, init, train, &mut Cached(train), val, opts, on_epoch)
}

/// [`fit`] with the training rows read from `rows` (a spilled cache, fresh augmentations);
/// `train` gives their labels and width (its `features` are not read).
pub fn fit_rows(
    ctx: &GpuContext,
    init: &HeadWeights,
    train: &FeatureSet,
    rows: &mut dyn TrainRows,
    val: Option<&FeatureSet>,
    opts: &FitOptions,
    on_epoch: &mut dyn FnMut(&EpochRecord),
) -> Result<FitOutcome> {
    if train.is_empty() {
        return Err(Error::Invalid("no training samples".into()));
    }
    if train.dim != init.input_len() {
        return Err(Error::Invalid(format!(
            "the features have {} values per sample but the head takes {}",
            train.dim,
            init.input_len()
        )));
    }
    // A batch larger than the rows takes only the rows (its buffers are sized by it).
    let batch = opts.batch.clamp(1, train.len());
    let steps_per_epoch = train.len().div_ceil(batch);
    let total_steps = opts.steps.unwrap_or(opts.epochs * steps_per_epoch);
    let epochs = total_steps.div_ceil(steps_per_epoch);
    let fp = fingerprint(opts, train, &rows.kind(), init);

    let (mut start_head, mut best_head, mut progress, state) =
        (init.clone(), init.clone(), Progress::default(), Vec::new());
    let mut state = state;
    if opts.resume {
        let ck = opts
            .checkpoint
            .as_ref()
            .ok_or(Error::ResumeWithoutCheckpoint)?;
        if ck.exists() {
            let (h, b, s, p) = load_checkpoint(ck, init)?;
            if p.fingerprint != fp {
                return Err(Error::CheckpointMismatch { path: ck.clone() });
            }
            (start_head, best_head, state, progress) = (h, b, s, p);
        }
    }
    progress.fingerprint = fp;
    progress.version = 1;
    let mut last_head = start_head.clone();
    let mut trainer = Trainer::new(ctx, &start_head, opts.config, batch, steps_per_epoch)?;
    if !state.is_empty() || progress.steps_done > 0 {
        trainer.restore(&state, progress.steps_done)?;
    }
    // Rows that are the same every epoch go to GPU memory once when they fit.
    let resident = match rows.fixed_rows() {
        Some(n) if n == train.len() => {
            trainer.make_resident(n, opts.resident_budget, &mut |r| {
                rows.rows(0, &r.collect::<Vec<_>>())
            })?
        }
        _ => false,
    };

    let mut since_best = progress
        .best_epoch
        .map(|b| progress.epochs_done.saturating_sub(b + 1))
        .unwrap_or(0);
    let first_epoch = progress.epochs_done;
    for epoch in progress.epochs_done..epochs {
        if opts
            .interrupt_after
            .is_some_and(|n| epoch - first_epoch >= n)
        {
            break;
        }
        if let Some(p) = opts.patience {
            if progress.best_val_loss.is_some() && since_best >= p {
                break;
            }
        }
        let t0 = std::time::Instant::now();
        let mut order: Vec<usize> = (0..train.len()).collect();
        if opts.shuffle {
            // Seeded by (seed, epoch): a resumed run sees the same order.
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
                opts.config.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            order.shuffle(&mut rng);
        }
        let mut lr_now = opts.lr;
        let mut steps_this_epoch = 0;
        let mut lrs = Vec::new();
        for (slot, chunk) in order.chunks(batch).enumerate() {
            let global = progress.steps_done as usize;
            if global >= total_steps {
                break;
            }
            lr_now = opts.schedule.lr(opts.lr, global, total_steps, epoch);
            if resident {
                trainer.train_step_rows(chunk, &labels_u32(train, chunk), lr_now, slot)?;
            } else {
                trainer.train_step(
                    &rows.rows(epoch, chunk)?,
                    &labels_u32(train, chunk),
                    lr_now,
                    slot,
                )?;
            }
            progress.steps_done += 1;
            steps_this_epoch += 1;
            lrs.push(lr_now);
        }
        let stats = trainer.take_epoch_stats(steps_this_epoch)?;
        // A NaN or infinite loss (a rate far too high, bad features) poisons every later step
        // and, kept by `Keep::Last` or a NaN-blind comparison, the saved model: stop before
        // this epoch's checkpoint replaces the last good one.
        let diverged = |what: String| Error::Diverged {
            epoch: epoch + 1,
            what,
            checkpoint: opts.checkpoint.clone().filter(|p| p.is_file()),
        };
        if !stats.loss().is_finite() {
            return Err(diverged(format!("the training loss ({})", stats.loss())));
        }
        let first_step = progress.steps_done as usize - steps_this_epoch;
        for (i, (loss, lr)) in stats.step_losses.iter().zip(&lrs).enumerate() {
            progress.steps.push(StepRecord {
                step: first_step + i,
                loss: *loss,
                lr: *lr,
            });
        }
        let (val_loss, val_acc) = match val {
            Some(v) if !v.is_empty() => {
                let (s, _) = evaluate(&mut trainer, v, batch, false)?;
                (Some(s.loss()), Some(s.accuracy()))
            }
            _ => (None, None),
        };
        if let Some(v) = val_loss.filter(|v| !v.is_finite()) {
            return Err(diverged(format!("the validation loss ({v})")));
        }
        let record = EpochRecord {
            epoch: epoch + 1,
            train_loss: stats.loss(),
            train_accuracy: stats.accuracy(),
            val_loss,
            val_accuracy: val_acc,
            lr: lr_now,
            seconds: t0.elapsed().as_secs_f64(),
        };
        on_epoch(&record);
        progress.history.push(record);
        progress.epochs_done = epoch + 1;
        let current = trainer.head()?;
        if let Some(name) = current.non_finite() {
            return Err(diverged(format!("a weight of {name}")));
        }
        last_head = current.clone();
        let improved = match (val_loss, progress.best_val_loss) {
            (Some(v), Some(b)) => v < b,
            (Some(_), None) => true,
            (None, _) => true,
        };
        if improved {
            progress.best_val_loss = val_loss.or(progress.best_val_loss);
            progress.best_epoch = Some(epoch);
            best_head = current.clone();
            since_best = 0;
        } else {
            since_best += 1;
        }
        if let Some(ck) = &opts.checkpoint {
            save_checkpoint(
                ck,
                &current,
                &best_head,
                &trainer.optimizer_state()?,
                &progress,
            )?;
        }
        if progress.steps_done as usize >= total_steps {
            break;
        }
    }
    let best_epoch = progress.best_epoch.map(|e| e + 1).unwrap_or(0);
    let (head, kept_epoch) = match opts.keep {
        Keep::Best => (best_head, best_epoch),
        Keep::Last => (last_head, progress.epochs_done),
    };
    let val_logits = match val {
        Some(v) if !v.is_empty() => {
            let mut eval = Trainer::new(ctx, &head, opts.config, batch, 1)?;
            Some(evaluate(&mut eval, v, batch, true)?.1)
        }
        _ => None,
    };
    Ok(FitOutcome {
        head,
        kept: opts.keep,
        kept_epoch,
        best_epoch,
        epochs_done: progress.epochs_done,
        history: progress.history,
        steps: progress.steps,
        val_logits,
        resident,
    })
}
