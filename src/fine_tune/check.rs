//! The settings a run refuses before it starts: zero counts, rates and shares out of range, a
//! resume without a checkpoint.

use super::FineTune;
use crate::error::{Error, Result};
use crate::train::{Optimizer, Schedule};

/// The largest learning rate a run accepts: far above any rate that trains a head or
/// fine-tunes convolutions (torchvision's AlexNet recipe: 0.01; fine-tuning: 1e-4 to 1e-1).
pub const MAX_LR: f32 = 10.0;

pub(super) fn invalid(msg: String) -> Error {
    Error::Invalid(msg)
}

impl FineTune {
    /// Refuses settings that cannot train, naming the accepted range.
    pub(super) fn check(&self) -> Result<()> {
        let count = |what: &str, n: usize| {
            if n == 0 {
                Err(invalid(format!("{what} 0: expected 1 or more")))
            } else {
                Ok(())
            }
        };
        count("epochs", self.epochs)?;
        count("batch", self.batch)?;
        count("extract batch", self.extract_batch)?;
        if let Some(s) = self.steps {
            count("steps", s)?;
        }
        if let Schedule::Step { every, gamma } = self.schedule {
            count("step schedule every", every)?;
            if !(gamma.is_finite() && gamma > 0.0) {
                return Err(invalid(format!(
                    "step schedule gamma {gamma}: expected a finite number above 0"
                )));
            }
        }
        // Above MAX_LR nothing trains: `--lr 1e30` used to save a model of finite garbage
        // (a loss of 1e29, 33 % accuracy) without a word; 10 already diverges to NaN on the
        // reduced-width fixtures.
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr <= MAX_LR) {
            return Err(invalid(format!(
                "learning rate {}: expected a finite number above 0 and at most {MAX_LR}",
                self.lr
            )));
        }
        if !(self.lr_backbone_mult.is_finite() && self.lr_backbone_mult >= 0.0) {
            return Err(invalid(format!(
                "backbone learning-rate factor {}: expected a finite factor of 0 or more",
                self.lr_backbone_mult
            )));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(invalid(format!(
                "weight decay {}: expected a finite number of 0 or more",
                self.weight_decay
            )));
        }
        let below_one = |what: &str, v: f64| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(invalid(format!(
                    "{what} {v}: expected a number from 0 up to, not including, 1"
                )))
            }
        };
        below_one("dropout", self.dropout as f64)?;
        below_one("validation share", self.val_split)?;
        match self.optimizer {
            Optimizer::Sgd { momentum } => below_one("momentum", momentum as f64)?,
            Optimizer::Adam { beta1, beta2, eps } => {
                below_one("Adam beta1", beta1 as f64)?;
                below_one("Adam beta2", beta2 as f64)?;
                if !(eps.is_finite() && eps > 0.0) {
                    return Err(invalid(format!(
                        "Adam eps {eps}: expected a finite number above 0"
                    )));
                }
            }
        }
        if self.resume && self.checkpoint.is_none() {
            return Err(Error::ResumeWithoutCheckpoint);
        }
        Ok(())
    }
}

impl FineTune {
    /// Refuses, before the caching pass, what the rows cannot fit. Any `--augment` count runs in
    /// bounded host memory: an image's views are made in pipeline items of at most
    /// [`crate::data::host_memory::view_item_limit`] bytes (1 GiB; `train::features`), so a
    /// forward pass holds at most the extract batch or one such item; convolutions training
    /// draws fresh views per step, a training batch at a time. What stays is per row: its
    /// label, its path and its place in the shuffled order, and, where a head trains from a
    /// cache in memory, its features. A view count whose rows cannot fit the machine's memory
    /// cannot train here at all, so it is refused before any work, naming the bytes (it used to
    /// abort mid-run on allocation, or segfault under a memory limit).
    pub(super) fn check_host_memory(
        &self,
        train: &crate::data::ClassFolders,
        val: &crate::data::ClassFolders,
        feature_len: usize,
    ) -> Result<()> {
        use crate::data::host_memory::{check_batch, check_resident};
        let crop = crate::data::Preprocess::for_arch(self.backbone.arch).crop;
        let views = self.augment.max(1);
        let row = 3 * crop * crop;
        let train_rows = train.items.len().max(1).saturating_mul(views);
        let what = if self.augment > 0 {
            format!("augmented views of 3x{crop}x{crop}")
        } else {
            format!("images of 3x{crop}x{crop}")
        };
        check_batch(self.extract_batch.min(train_rows), row, &what)?;
        if self.augment > 0 && matches!(self.kind, crate::train::HeadKind::Conv(_)) {
            // Fresh views: each training step prepares its batch of input rows.
            check_batch(self.batch.min(train_rows), row, &what)?;
        }
        let rows = train.items.len() as u128 * views as u128 + val.items.len() as u128;
        // A label and a place in the order (8 bytes each), a path (a String: 24 bytes, its
        // text and about 16 of allocator overhead); the pool5 row too where the head trains
        // from a cache in memory (convolutions training spill theirs within the cache budget,
        // or run the frozen part per step).
        let longest = train
            .items
            .iter()
            .chain(&val.items)
            .map(|(p, _)| p.as_os_str().len())
            .max()
            .unwrap_or(0) as u128;
        let per_row = 8
            + 8
            + 40
            + longest
            + match self.kind {
                crate::train::HeadKind::Conv(_) => 0,
                _ => 4 * feature_len as u128,
            };
        let what = if self.augment > 0 {
            format!("{rows} training and validation rows ({views} augmented views per image)")
        } else {
            format!("{rows} training and validation rows")
        };
        check_resident(rows * per_row, &what)
    }
}
