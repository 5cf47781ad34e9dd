//! The tuner's winners as the kernels read them: per layer shape, which variant runs on the
//! `Blocked` path and on the `Gemm` path (CPU adapters' default; only a forced `gemm` ignores
//! the table): an [`mm`] variant or the CPU-shaped `im2col` + `gemm.wgsl` kernels. Winners
//! whose tile does not fit the device's limits (`--limits webgpu`) are ignored. Filled from the on-disk cache (`model::tune`, which owns the file, the adapter key and the
//! timing) and installed once per process; empty until `alexnet bench --tune` has run, in
//! which case the heuristics of [`mm`] decide.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::conv2d::Conv2dShape;
use super::mm::{self, DenseKind, Tile};

/// One layer's winner: the `Gemm` path's kernels (`im2col.wgsl` + `gemm.wgsl` for a conv,
/// `gemm.wgsl` for a dense layer: the candidate that wins on CPU-like adapters and on some
/// small shapes), or an `mm.wgsl` variant (`T`: a [`Tile`] or a [`DenseKind`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant<T> {
    Gemm,
    Mm(T),
}

impl<T> Variant<T> {
    /// The `mm.wgsl` variant, if that is the winner.
    pub fn mm(self) -> Option<T> {
        match self {
            Variant::Gemm => None,
            Variant::Mm(t) => Some(t),
        }
    }
}

impl Variant<Tile> {
    /// `gemm` or the tile's name (`128x64x16`), as the cache stores it.
    pub fn name(&self) -> String {
        match self {
            Variant::Gemm => GEMM.into(),
            Variant::Mm(t) => t.name(),
        }
    }
}

impl Variant<DenseKind> {
    /// `gemm` or [`DenseKind::name`], as the cache stores it.
    pub fn name(&self) -> String {
        match self {
            Variant::Gemm => GEMM.into(),
            Variant::Mm(d) => d.name(),
        }
    }
}

/// The cache's name for the `Gemm` path's kernels.
pub const GEMM: &str = "gemm";

/// Winners for one adapter and precision, by shape key ([`conv_key`], [`dense_key`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tuned {
    pub conv: HashMap<String, Variant<Tile>>,
    pub dense: HashMap<String, Variant<DenseKind>>,
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

/// Parses a conv winner as [`Variant::name`] writes it.
pub fn parse_conv(s: &str) -> Option<Variant<Tile>> {
    if s == GEMM {
        return Some(Variant::Gemm);
    }
    s.parse().ok().map(Variant::Mm)
}

/// Parses a dense winner as [`Variant::name`] writes it.
pub fn parse_dense(s: &str) -> Option<Variant<DenseKind>> {
    if s == GEMM {
        return Some(Variant::Gemm);
    }
    parse_dense_kind(s).map(Variant::Mm)
}

/// Parses an `mm.wgsl` dense variant as [`DenseKind::name`] writes it.
pub fn parse_dense_kind(s: &str) -> Option<DenseKind> {
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

/// Every conv candidate the tuner times: the `Gemm` path, then every tile that fits `limits`.
pub fn conv_candidates(limits: &wgpu::Limits) -> Vec<Variant<Tile>> {
    let mut out = vec![Variant::Gemm];
    out.extend(
        mm::TILES
            .iter()
            .copied()
            .filter(|t| t.fits(limits))
            .map(Variant::Mm),
    );
    out
}

/// The dense candidates: the `Gemm` path, gemv at batch <= 8, every tile unsplit, and split-K
/// factors 2-16 on the heuristic's tile where the slices keep at least 256 values of K.
pub fn dense_candidates(
    batch: usize,
    k: usize,
    rows: usize,
    limits: &wgpu::Limits,
) -> Vec<Variant<DenseKind>> {
    let mut out = vec![Variant::Gemm];
    if batch <= 8 {
        out.push(Variant::Mm(DenseKind::Gemv));
    }
    for &tile in mm::TILES.iter().filter(|t| t.fits(limits)) {
        out.push(Variant::Mm(DenseKind::Tiles { tile, split: 1 }));
    }
    if let DenseKind::Tiles { tile, .. } = mm::dense_heuristic(batch.max(9), k, rows, limits) {
        for split in [2, 4, 8, 16] {
            if k / split as usize >= 256 {
                out.push(Variant::Mm(DenseKind::Tiles { tile, split }));
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
