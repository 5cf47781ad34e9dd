//! The tuner's winners as the kernels read them: per layer shape, which variant runs on the
//! `Blocked` path and on the `Gemm` path (CPU adapters' default; only a forced `gemm` ignores
//! the table): an [`mm`] variant or the CPU-shaped `im2col` + `gemm.wgsl` kernels. Winners
//! whose tile does not fit the device's limits (`--limits webgpu`) are ignored. The table is
//! plain data in `options::tuned`, held by each GPU context (`GpuContext::set_tuned`) and
//! filled from the on-disk cache (`model::tune`, which owns the file, the adapter key and the
//! timing); empty until `alexnet bench --tune` has run, in which case the heuristics of [`mm`]
//! decide. This module keeps the shape keys and the candidate lists.

use super::conv2d::{Conv2dShape, IM2COL_MAX_BYTES};
use super::mm::{self, ConvKind, DenseKind};
pub use crate::options::tuned::{parse_conv, parse_dense, parse_dense_kind, Tuned, Variant, GEMM};

/// `conv b8 3x224x224 o64 k11 s4 p2 g1`: everything the variant choice depends on.
pub fn conv_key(s: &Conv2dShape) -> String {
    format!(
        "conv b{} {}x{}x{} o{} k{} s{} p{} g{}",
        s.batch, s.in_c, s.in_h, s.in_w, s.out_c, s.kernel, s.stride, s.pad, s.groups
    )
}

/// [`conv_key`] without the batch size: `conv 3x224x224 o64 k11 s4 p2 g1`.
pub fn conv_geometry_key(s: &Conv2dShape) -> String {
    strip_batch(&conv_key(s))
}

/// A conv key without its batch token (`b8`).
pub fn strip_batch(key: &str) -> String {
    key.split(' ')
        .filter(|t| !(t.starts_with('b') && t[1..].parse::<usize>().is_ok()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `dense b8 k9216 o4096` (`o`: rows of this weight part).
pub fn dense_key(batch: usize, k: usize, rows: usize) -> String {
    format!("dense b{batch} k{k} o{rows}")
}

/// Every conv candidate the tuner times for `shape`: the `Gemm` path, every tile that fits
/// `limits` unsplit, the same tiles through the coalesced im2col (`-im2col`: the patch matrix
/// in chunks of at most [`IM2COL_MAX_BYTES`], as a plan caps it), then split-K factors 2-16 on
/// the heuristic's tile, on 64x32x16 and on 32x32x16 where their output tiles do not fill the
/// GPU ([`mm::FILL`]), the slices keep at least 128 values of K and the partial sums fit the
/// scratch cap.
pub fn conv_candidates(shape: &Conv2dShape, limits: &wgpu::Limits) -> Vec<Variant<ConvKind>> {
    let mut out = vec![Variant::Gemm];
    let fitting: Vec<mm::Tile> = mm::TILES
        .iter()
        .copied()
        .filter(|t| t.fits(limits))
        .collect();
    out.extend(
        fitting
            .iter()
            .map(|&tile| Variant::Mm(ConvKind::implicit(tile, 1))),
    );
    out.extend(
        fitting
            .iter()
            .map(|&tile| Variant::Mm(ConvKind::im2col(tile))),
    );
    let Ok((oh, ow)) = shape.out_hw() else {
        return out;
    };
    let (m, n) = (shape.out_c / shape.groups, shape.batch * oh * ow);
    let mut tiles = vec![mm::conv_heuristic(m, n, limits)];
    for small in [mm::Tile::new(64, 32, 16), mm::Tile::new(32, 32, 16)] {
        if small.fits(limits) && !tiles.contains(&small) {
            tiles.push(small);
        }
    }
    for tile in tiles {
        for split in [2, 4, 8, 16] {
            let kind = ConvKind::implicit(tile, split);
            let filled = tile.tiles(m, n) * shape.groups * split as usize / 2 >= mm::FILL;
            let words = mm::conv_split_words(kind, shape).unwrap_or(usize::MAX);
            if !filled
                && shape.k() / split as usize >= 128
                && words * 4 <= IM2COL_MAX_BYTES as usize
            {
                out.push(Variant::Mm(kind));
            }
        }
    }
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
