//! What `train-head` shows of a run's [`Progress`]: the data it found (a split dataset, the
//! classes with their image counts, before the long caching pass), progress of the caching
//! passes (a bar, or plain lines when stderr is piped), one line per pass and per epoch, and
//! warnings for skipped images.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use alexnet_wgpu::fine_tune::Progress;

use super::super::meter::Meter;
use super::super::plural::count;

/// "cat 16+4, dog 12+3" (training + validation images per class), or without validation
/// "cat 16, dog 12".
fn class_counts(names: &[String], train: &[usize], val: &[usize]) -> String {
    let with_val = val.iter().any(|&n| n > 0);
    names
        .iter()
        .zip(train)
        .zip(val)
        .map(|((n, t), v)| {
            if with_val {
                format!("{n} {t}+{v}")
            } else {
                format!("{n} {t}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The display callback for [`FineTune::on_progress`](alexnet_wgpu::fine_tune::FineTune::on_progress).
pub(super) fn show(
    pb: &Rc<RefCell<Option<Meter>>>,
    checkpoint: &Path,
    cache_budget_mb: u64,
    batch_asked: usize,
) -> impl FnMut(&Progress<'_>) + 'static {
    let pb = pb.clone();
    let checkpoint = checkpoint.to_path_buf();
    move |p: &Progress<'_>| {
        let mut pb = pb.borrow_mut();
        let clear = |pb: &mut Option<Meter>| {
            if let Some(m) = pb.take() {
                m.finish();
            }
        };
        match *p {
            Progress::SplitDataset { dir, train, val } => eprintln!(
                "{} is a split dataset: training on {}, validating on {}",
                dir.display(),
                train.display(),
                val.display()
            ),
            Progress::Classes { names, train, val } => {
                let (t, v): (usize, usize) = (train.iter().sum(), val.iter().sum());
                let t = count(t, "training image", "training images");
                let split = if v > 0 {
                    format!("{t} + {v} for validation")
                } else {
                    format!("{t}, no validation")
                };
                eprintln!(
                    "{} ({split}): {}",
                    count(names.len(), "class", "classes"),
                    class_counts(names, train, val)
                );
            }
            Progress::Extracting { what, done, total } => {
                pb.get_or_insert_with(|| Meter::new(total, what, "images"))
                    .set(done);
            }
            Progress::Skipped { path, error } => {
                clear(&mut pb);
                eprintln!("warning: skipped unreadable image {}: {error}", path.display());
            }
            Progress::Extracted {
                what,
                images,
                rows,
                dim,
                seconds,
                spill,
            } => {
                clear(&mut pb);
                let place = match spill {
                    Some(f) => format!(
                        "on disk in {} (over --cache-budget-mb {cache_budget_mb})",
                        f.display()
                    ),
                    None => "in memory".into(),
                };
                eprintln!(
                    "{what}: {} -> {} of {dim} floats ({:.1} KB each, {:.1} MB {place}) in {seconds:.1} s ({:.2} images/s)",
                    count(images, "image", "images"),
                    count(rows, "cached row", "cached rows"),
                    dim as f64 * 4.0 / 1e3,
                    (rows * dim) as f64 * 4.0 / 1e6,
                    images as f64 / seconds.max(1e-9)
                );
            }
            Progress::FreshViews { images, views } => eprintln!(
                "training images: {} -> {views} fresh augmented {} each per epoch, through the frozen layers at every step",
                count(images, "image", "images"),
                if views == 1 { "view" } else { "views" }
            ),
            // (The fc6 activations of `--train-from fc7` have never had a line.)
            Progress::Activations {
                layer: "fc7",
                rows,
                seconds,
            } => eprintln!(
                "fc7 activations for {} in {seconds:.2} s",
                count(rows, "row", "rows")
            ),
            Progress::Training {
                first_layer,
                classes,
                train_rows,
                val_rows,
                batch,
                steps_per_epoch,
                epochs,
            } => {
                super::super::set_interrupt_checkpoint(Some(checkpoint.clone()));
                if batch < batch_asked {
                    eprintln!(
                        "--batch {batch_asked} is more than the {}: batches of {batch}",
                        count(train_rows, "training row", "training rows")
                    );
                }
                eprintln!(
                    "training from {first_layer}: {}, {}, {}, {} per epoch",
                    count(classes, "class", "classes"),
                    count(train_rows, "training row", "training rows"),
                    count(val_rows, "validation row", "validation rows"),
                    count(steps_per_epoch, "step", "steps")
                );
                // Piped, the per-epoch lines are the progress.
                *pb = Some(Meter::bar_only(epochs, "epochs"));
            }
            Progress::Epoch(r) => {
                let v = match (r.val_loss, r.val_accuracy) {
                    (Some(l), Some(a)) => format!("  val loss {l:.4} acc {:.1}%", 100.0 * a),
                    _ => String::new(),
                };
                let line = || {
                    eprintln!(
                        "epoch {:>3}: train loss {:.4} acc {:.1}%{v}  lr {:.4}  {:.2} s",
                        r.epoch,
                        r.train_loss,
                        100.0 * r.train_accuracy,
                        r.lr,
                        r.seconds
                    )
                };
                match pb.as_mut() {
                    Some(m) => {
                        m.set(r.epoch);
                        m.suspend(line);
                    }
                    None => line(),
                }
            }
            _ => {}
        }
    }
}
