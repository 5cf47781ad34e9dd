//! The tuner's winners as the kernels read them: per layer shape, which [`mm`] variant runs.
//! Filled from the on-disk cache (`model::tune`, which owns the file, the adapter key and the
//! timing) and installed once per process; empty until `alexnet bench --tune` has run, in
//! which case the heuristics of [`mm`] decide.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::conv2d::Conv2dShape;
use super::mm::{self, DenseKind, Tile};

/// Winners for one adapter and precision, by shape key ([`conv_key`], [`dense_key`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tuned {
    pub conv: HashMap<String, Tile>,
    pub dense: HashMap<String, DenseKind>,
}

/// `conv b8 3x224x224 o64 k11 s4 p2 g1`: everything the variant choice depends on.
pub fn conv_key(s: &Conv2dShape) -> String {
    format!(
        "conv b{} {}x{}x{} o{} k{} s{} p{} g{}",
        s.batch, s.in_c, s.in_h, s.in_w, s.out_c, s.kernel, s.stride, s.pad, s.groups
    )
}

/// `dense b8 k9216 o4096` (`o`: rows of this weight part).
pub fn dense_key(batch: usize, k: usize, rows: usize) -> String {
    format!("dense b{batch} k{k} o{rows}")
}

/// Parses a variant name as [`DenseKind::name`] writes it.
pub fn parse_dense(s: &str) -> Option<DenseKind> {
    if s == "gemv" {
        return Some(DenseKind::Gemv);
    }
    let (tile, split) = match s.split_once("-split") {
        Some((t, n)) => (t, n.parse().ok().filter(|&n: &u32| n >= 1)?),
        None => (s, 1),
    };
    Some(DenseKind::Tiles {
        tile: tile.parse().ok()?,
        split,
    })
}

/// Every conv candidate the tuner times (all tiles).
pub fn conv_candidates() -> Vec<Tile> {
    mm::TILES.to_vec()
}

/// The dense candidates: gemv at batch <= 8, every tile unsplit, and split-K factors 2-16 on
/// the heuristic's tile where the slices keep at least 256 values of K.
pub fn dense_candidates(batch: usize, k: usize, rows: usize) -> Vec<DenseKind> {
    let mut out = Vec::new();
    if batch <= 8 {
        out.push(DenseKind::Gemv);
    }
    for &tile in mm::TILES {
        out.push(DenseKind::Tiles { tile, split: 1 });
    }
    if let DenseKind::Tiles { tile, .. } = mm::dense_heuristic(batch.max(9), k, rows) {
        for split in [2, 4, 8, 16] {
            if k / split as usize >= 256 {
                out.push(DenseKind::Tiles { tile, split });
            }
        }
    }
    out
}

static INSTALLED: RwLock<Option<Arc<Tuned>>> = RwLock::new(None);

/// Makes `tuned` what every [`super::Kernels`] created afterwards in this process reads.
pub fn install(tuned: Tuned) {
    *INSTALLED.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(tuned));
}

/// The installed table, if any.
pub fn installed() -> Option<Arc<Tuned>> {
    INSTALLED.read().unwrap_or_else(|e| e.into_inner()).clone()
}
