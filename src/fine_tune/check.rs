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
    /// Refuses, before the caching pass, what the rows cannot fit: one image's augmented views
    /// are one pipeline item, so at least one batch buffer holds them all; the rows the run
    /// keeps (labels and paths per row, and the features themselves where the head trains
    /// from a cache in memory) must fit the machine.
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
        if self.augment > 0 {
            check_batch(
                views.max(self.extract_batch.min(train.items.len().max(1) * views)),
                row,
                &format!("augmented views of 3x{crop}x{crop} of one image"),
            )?;
        } else {
            check_batch(
                self.extract_batch.min(train.items.len().max(1)),
                row,
                &format!("images of 3x{crop}x{crop}"),
            )?;
        }
        let rows = train.items.len() as u128 * views as u128 + val.items.len() as u128;
        // A label and a shared path per row; the pool5 row too where the head trains from a
        // cache in memory (convolutions training spill theirs within the cache budget, or run
        // the frozen part per step).
        let per_row = 64
            + match self.kind {
                crate::train::HeadKind::Conv(_) => 0,
                _ => 4 * feature_len as u128,
            };
        check_resident(
            rows * per_row,
            &format!("{rows} training and validation rows"),
        )
    }
}
