//! The recipe [`FineTune::fit`] and [`FineTune::fit_features`] run: scan and split the class
//! folders, the cached (or fresh) passes of the frozen layers, the frozen dense layers below the
//! trained ones, the fit, and the validation metrics.

use std::cell::RefCell;
use std::path::Path;
use std::time::Instant;

use crate::data::folder::stratified_split;
use crate::data::{ClassFolders, Preprocess};
use crate::error::Result;
use crate::model::Network;
use crate::train::export::with_head;
use crate::train::init_head::load_init_head;
use crate::train::{
    check_readable, extract_frozen, extract_pool5_with, fit_rows, frozen_dense, frozen_fc7,
    frozen_stack, Cached, FeatureSet, FitOptions, FreshViews, HeadKind, HeadWeights, Metrics,
    SpillFile, TrainConfig, TrainRows,
};

use super::check::invalid;
use super::progress::{Events, Progress};
use super::{FineTune, Trained};
use crate::data::dataset::resolve;

fn subset(set: &FeatureSet, idx: &[usize]) -> FeatureSet {
    let mut out = FeatureSet {
        dim: set.dim,
        classes: set.classes.clone(),
        ..Default::default()
    };
    for &i in idx {
        out.features.extend_from_slice(set.row(i));
        out.labels.push(set.labels[i]);
        if let Some(p) = set.paths.get(i) {
            out.paths.push(p.clone());
        }
    }
    out
}

impl FineTune {
    fn take_events(&mut self) -> RefCell<Events> {
        RefCell::new(Events {
            progress: self.on_progress.take(),
            epoch: self.on_epoch.take(),
        })
    }

    /// Trains on class folders under `data` (one sub-folder per class, names sorted), with
    /// validation on the [`FineTune::val_folder`] or a stratified [`FineTune::val_split`].
    /// A `data` holding `train/` and `val/` (or `valid/`, `validation/`), each with the class
    /// folders, is a split dataset: `train/` trains, `val/` validates. Class folders that hold
    /// no images, only the same sub-folders (the classes one level down), are refused.
    pub fn fit(mut self, data: impl AsRef<Path>) -> Result<Trained> {
        self.check()?;
        let events = self.take_events();
        let dirs = resolve(data.as_ref(), self.val_folder.as_deref())?;
        let dir = dirs.train.as_path();
        if let (true, Some(v)) = (dirs.split_dataset, &dirs.val) {
            Events::emit(
                &events,
                Progress::SplitDataset {
                    dir: data.as_ref(),
                    train: dir,
                    val: v,
                },
            );
        }
        let all = ClassFolders::scan(dir)?;
        let (train_set, val_set) = match &dirs.val {
            Some(v) => {
                let val = ClassFolders::scan(v)?;
                if val.classes != all.classes {
                    return Err(invalid(format!(
                        "{} has classes {:?} but {} has {:?}",
                        v.display(),
                        val.classes,
                        dir.display(),
                        all.classes
                    )));
                }
                (all, val)
            }
            None => all.split(self.val_split, self.seed),
        };
        Events::emit(
            &events,
            Progress::Classes {
                names: &train_set.classes,
                train: &train_set.count_per_class(),
                val: &val_set.count_per_class(),
            },
        );
        let kind = self.kind;
        let pre = Preprocess::for_arch(self.backbone.arch);
        let mut skipped = Vec::new();
        // Where training reads its rows when not from the in-memory cache (a spilled cache or
        // fresh augmentations); dropping it removes a spill file.
        let mut train_rows: Option<Box<dyn TrainRows + '_>> = None;
        let mut net = Network::new(&self.ctx, &self.backbone)?;
        let views = self.augment;
        self.check_host_memory(&train_set, &val_set, net.feature_len().unwrap_or(0))?;
        let tr = if matches!(kind, HeadKind::Conv(_)) && views > 0 {
            // Fresh augmentations every epoch: nothing cached, the frozen part runs per step.
            let (readable, bad) = check_readable(&train_set, &pre, self.load);
            for e in &bad {
                Events::emit(
                    &events,
                    Progress::Skipped {
                        path: &e.path,
                        error: e,
                    },
                );
            }
            skipped.extend(bad);
            // No batch holds more rows than the images' views (see the batch of `fit`).
            let rows = readable.items.len().saturating_mul(views).max(1);
            let stack = frozen_stack(&self.ctx, &self.backbone, kind, &pre, self.batch.min(rows))?;
            let fresh = FreshViews::new(
                &self.ctx, stack, &readable, views, &pre, self.load, self.seed,
            );
            let set = fresh.labels(&readable.classes);
            Events::emit(
                &events,
                Progress::FreshViews {
                    images: readable.items.len(),
                    views,
                },
            );
            train_rows = Some(Box::new(fresh));
            set
        } else {
            let (set, file) = self.extract(
                &mut net,
                &train_set,
                views,
                true,
                "training features",
                &events,
                &mut skipped,
            )?;
            if let Some(f) = file {
                train_rows = Some(Box::new(f));
            }
            set
        };
        let va = if val_set.items.is_empty() {
            FeatureSet {
                dim: tr.dim,
                classes: tr.classes.clone(),
                ..Default::default()
            }
        } else {
            self.extract(
                &mut net,
                &val_set,
                0,
                false,
                "validation features",
                &events,
                &mut skipped,
            )?
            .0
        };
        drop(net);
        self.train(tr, va, train_rows, skipped, &events)
    }

    /// Trains on pool5 rows (what `alexnet features` exports), split by
    /// [`FineTune::val_split`]; the convolutions cannot train from them.
    pub fn fit_features(mut self, features: &FeatureSet) -> Result<Trained> {
        self.check()?;
        if let HeadKind::Conv(_) = self.kind {
            return Err(invalid(format!(
                "training from {} needs images: a feature set holds pool5 rows, above the layer",
                self.kind.first_layer()
            )));
        }
        if self.val_folder.is_some() {
            return Err(invalid(
                "a validation folder needs training images; a feature set is split by the validation share".into(),
            ));
        }
        if features.labels.len() * features.dim != features.features.len() {
            return Err(invalid(format!(
                "the feature set has {} labels of {} floats but {} floats",
                features.labels.len(),
                features.dim,
                features.features.len()
            )));
        }
        if let Some(&l) = features
            .labels
            .iter()
            .find(|&&l| l >= features.classes.len())
        {
            return Err(invalid(format!(
                "the feature set has label {l} but {} classes",
                features.classes.len()
            )));
        }
        features.check_trainable(Path::new("the feature set"))?;
        let events = self.take_events();
        let (tr, va) = stratified_split(
            &features.labels,
            features.classes.len(),
            self.val_split,
            self.seed,
        );
        let (tr, va) = (subset(features, &tr), subset(features, &va));
        let per_class = |set: &FeatureSet| {
            let mut n = vec![0; set.classes.len()];
            set.labels.iter().for_each(|&l| n[l] += 1);
            n
        };
        Events::emit(
            &events,
            Progress::Classes {
                names: &features.classes,
                train: &per_class(&tr),
                val: &per_class(&va),
            },
        );
        self.train(tr, va, None, Vec::new(), &events)
    }

    /// One cached pass of the frozen layers over `set` (`views` augmented rows per image, or
    /// centre crops), into memory or, for the training rows over the budget, a spill file.
    #[allow(clippy::too_many_arguments)]
    fn extract(
        &self,
        net: &mut Network,
        set: &ClassFolders,
        views: usize,
        spill: bool,
        what: &str,
        events: &RefCell<Events>,
        skipped: &mut Vec<crate::error::InputError>,
    ) -> Result<(FeatureSet, Option<SpillFile>)> {
        let total = set.items.len();
        Events::emit(
            events,
            Progress::Extracting {
                what,
                done: 0,
                total,
            },
        );
        let on = |done: usize| Events::emit(events, Progress::Extracting { what, done, total });
        let spill_dir = self
            .spill_dir
            .clone()
            .unwrap_or_else(|| match &self.checkpoint {
                Some(c) => crate::fsutil::parent_dir(c),
                None => std::env::temp_dir(),
            });
        let mut file = None;
        let ex = match self.kind {
            HeadKind::Conv(_) => {
                let (ex, f) = extract_frozen(
                    &self.ctx,
                    &self.backbone,
                    self.kind,
                    set,
                    &Preprocess::for_arch(self.backbone.arch),
                    self.load,
                    views,
                    self.seed,
                    self.extract_batch,
                    spill.then_some((self.cache_budget, spill_dir.as_path())),
                    &on,
                )?;
                file = f;
                ex
            }
            _ => extract_pool5_with(
                net,
                set,
                &Preprocess::for_arch(self.backbone.arch),
                self.load,
                views,
                self.seed,
                self.extract_batch,
                &on,
            )?,
        };
        for e in &ex.skipped {
            Events::emit(
                events,
                Progress::Skipped {
                    path: &e.path,
                    error: e,
                },
            );
        }
        Events::emit(
            events,
            Progress::Extracted {
                what,
                images: ex.images,
                rows: ex.set.len(),
                dim: ex.set.dim,
                seconds: ex.seconds,
                spill: file.as_ref().map(|f: &SpillFile| f.path()),
            },
        );
        skipped.extend(ex.skipped);
        Ok((ex.set, file))
    }

    /// The common part: frozen dense layers, the new head, training, validation metrics.
    fn train(
        &self,
        train5: FeatureSet,
        val5: FeatureSet,
        mut train_rows: Option<Box<dyn TrainRows + '_>>,
        skipped: Vec<crate::error::InputError>,
        events: &RefCell<Events>,
    ) -> Result<Trained> {
        if train5.is_empty() {
            return Err(invalid("no training images could be read".into()));
        }
        let (ctx, backbone, kind) = (&self.ctx, &self.backbone, self.kind);
        let classes = train5.classes.clone();

        // The `last` head trains on fc7 activations of the frozen fc6/fc7, `Fc7` on fc6's.
        let (train_x, val_x) = match kind {
            HeadKind::Last | HeadKind::Fc7 => {
                let t = Instant::now();
                let (a, b, layer) = if kind == HeadKind::Last {
                    let a = frozen_fc7(ctx, backbone, &train5)?;
                    (a, frozen_fc7(ctx, backbone, &val5)?, "fc7")
                } else {
                    let a = frozen_dense(ctx, backbone, &["fc6"], &train5)?;
                    (a, frozen_dense(ctx, backbone, &["fc6"], &val5)?, "fc6")
                };
                Events::emit(
                    events,
                    Progress::Activations {
                        layer,
                        rows: a.len() + b.len(),
                        seconds: t.elapsed().as_secs_f64(),
                    },
                );
                (a, b)
            }
            HeadKind::Classifier | HeadKind::Conv(_) => (train5, val5),
        };

        let mut head = HeadWeights::new(kind, backbone, classes.len(), self.seed)?;
        if let Some(p) = &self.init_head {
            let flatten_source = crate::model::params::flatten_source(&backbone.spec())?;
            load_init_head(p, &mut head, flatten_source)?;
        }
        let opts = FitOptions {
            epochs: self.epochs,
            steps: self.steps,
            // A batch larger than the training rows takes only the rows (the GPU buffers are
            // sized by it: `--batch 1000000` for 48 rows used to fail after the caching pass).
            batch: self.batch.clamp(1, train_x.len().max(1)),
            lr: self.lr,
            schedule: self.schedule,
            shuffle: self.shuffle,
            patience: self.patience,
            keep: self.keep,
            config: TrainConfig {
                optimizer: self.optimizer,
                weight_decay: self.weight_decay,
                dropout: if kind == HeadKind::Last {
                    0.0
                } else {
                    self.dropout
                },
                seed: self.seed,
                lr_backbone_mult: self.lr_backbone_mult,
            },
            checkpoint: self.checkpoint.clone(),
            resume: self.resume,
            interrupt_after: self.interrupt_after,
            resident_budget: None,
        };
        let steps_per_epoch = train_x.len().div_ceil(opts.batch);
        let epochs = opts
            .steps
            .map(|s| s.div_ceil(steps_per_epoch))
            .unwrap_or(opts.epochs);
        Events::emit(
            events,
            Progress::Training {
                first_layer: &kind.first_layer(),
                classes: classes.len(),
                train_rows: train_x.len(),
                val_rows: val_x.len(),
                batch: opts.batch,
                steps_per_epoch,
                epochs,
            },
        );
        let val = (!val_x.is_empty()).then_some(&val_x);
        let mut cached = Cached(&train_x);
        let rows: &mut dyn TrainRows = match &mut train_rows {
            Some(r) => r.as_mut(),
            None => &mut cached,
        };
        let outcome = fit_rows(ctx, &head, &train_x, rows, val, &opts, &mut |r| {
            Events::emit(events, Progress::Epoch(r))
        })?;
        drop(train_rows);
        let metrics = outcome
            .val_logits
            .as_ref()
            .map(|logits| Metrics::from_logits(&classes, logits, &val_x.labels));
        Ok(Trained {
            model: with_head(backbone, &outcome.head),
            classes,
            head: outcome.head,
            history: outcome.history,
            steps: outcome.steps,
            metrics,
            kept: outcome.kept,
            kept_epoch: outcome.kept_epoch,
            best_epoch: outcome.best_epoch,
            epochs_done: outcome.epochs_done,
            skipped,
            train_rows: train_x.len(),
            val_rows: val_x.len(),
        })
    }
}
