//! The tuner's winners as plain data: per layer shape key, which variant runs (an `mm.wgsl`
//! variant or the CPU-shaped `im2col` + `gemm.wgsl` kernels). A table belongs to one GPU
//! context (`gpu::GpuContext::set_tuned`): two adapters in one process keep their own, and the
//! library and the binary read the same cache file into it (`model::tune`).

use std::collections::HashMap;

use super::matmul::{ConvKind, DenseKind};

/// One layer's winner: the `Gemm` path's kernels (`im2col.wgsl` + `gemm.wgsl` for a conv,
/// `gemm.wgsl` for a dense layer: the candidate that wins on CPU-like adapters and on some
/// small shapes), or an `mm.wgsl` variant (`T`: a [`ConvKind`] or a [`DenseKind`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant<T> {
    /// The `gemm.wgsl` path.
    Gemm,
    /// An `mm.wgsl` variant.
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

impl Variant<ConvKind> {
    /// `gemm` or [`ConvKind::name`] (`128x64x16`, `64x64x16-split8`), as the cache stores it.
    pub fn name(&self) -> String {
        match self {
            Variant::Gemm => GEMM.into(),
            Variant::Mm(k) => k.name(),
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

/// Winners for one adapter and precision, by shape key (`kernels::tuned::conv_key`,
/// `kernels::tuned::dense_key`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tuned {
    /// Convolution shape key -> variant.
    pub conv: HashMap<String, Variant<ConvKind>>,
    /// Dense shape key -> variant.
    pub dense: HashMap<String, Variant<DenseKind>>,
}

/// Parses a conv winner as [`Variant::name`] writes it.
pub fn parse_conv(s: &str) -> Option<Variant<ConvKind>> {
    if s == GEMM {
        return Some(Variant::Gemm);
    }
    ConvKind::parse(s).map(Variant::Mm)
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
