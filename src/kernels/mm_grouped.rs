//! Grouped GEMMs on the `mm.wgsl` tiles (`gdense`, `gdense_split` + `reduce_grouped`), for
//! training's backward passes: per group g, `C[g][n][m] = sum_k A[g][m][k] B[g][n][k]`, both
//! operands K-contiguous (K a multiple of 4), no bias, written at any row stride and offset
//! of C. Split over K (each slice's partial sums, then one reduce) where the output tiles
//! alone would leave the GPU idle: a convolution's weight gradient contracts over batch x
//! pixels, hundreds of thousands of values for a few hundred outputs per row.

use super::mm::{Tile, FILL};
use super::{to_u32, Dispatch, Grid, Kernels};
use crate::error::{Error, Result};
use crate::gpu::GpuContext;

use super::mm::MmParams;

/// The geometry of one grouped GEMM (all in f32 values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupedGemm {
    /// Rows of A (and of C's inner index) per group.
    pub m: usize,
    /// Rows of B per group.
    pub n: usize,
    /// The contraction, a multiple of 4: the row length of A and B.
    pub k: usize,
    /// Independent products (one per convolution group).
    pub groups: usize,
    /// Values between consecutive groups' A blocks (a multiple of 4).
    pub a_gstride: usize,
    /// Values between consecutive groups' B blocks (a multiple of 4).
    pub b_gstride: usize,
    /// C: row stride (per n).
    pub c_row: usize,
    /// C: offset of m = 0.
    pub c_off: usize,
    /// C: values between consecutive groups.
    pub c_gstride: usize,
}

/// Most K slices a split takes.
pub const MAX_SPLIT: u32 = 64;

/// The K slices of a split `split` ways on `tile`: `(slices, kvz)`, each slice `kvz` vec4 of
/// K (a whole number of K steps), none empty.
pub fn slices(tile: Tile, g: &GroupedGemm, split: u32) -> (usize, usize) {
    let kv = g.k / 4;
    let per = (tile.bk / 4) as usize;
    let steps = kv.div_ceil(per).max(1);
    let split = (split as usize).clamp(1, steps);
    let kvz = steps.div_ceil(split) * per;
    (kv.div_ceil(kvz).max(1), kvz)
}

/// The heuristic split: doubled while the output tiles (times groups) do not reach
/// [`FILL`] workgroups and each slice keeps at least 1024 values of K, at most [`MAX_SPLIT`]
/// (conv1's weight gradient at batch 128: 6 tiles of 64x64, K = 387,200 pixels: split 64).
pub fn split_heuristic(tile: Tile, g: &GroupedGemm) -> u32 {
    let tiles = tile.tiles(g.m, g.n) * g.groups;
    let mut split = 1u32;
    while tiles * (split as usize) < FILL && g.k / (2 * split as usize) >= 1024 && split < MAX_SPLIT
    {
        split *= 2;
    }
    split
}

/// f32 values of partial sums a split of `split` writes (0 unsplit).
pub fn part_words(tile: Tile, g: &GroupedGemm, split: u32) -> usize {
    match slices(tile, g, split).0 {
        1 => 0,
        s => s * g.groups * g.m * g.n,
    }
}

/// The dispatches of `g` on `tile` split `split` ways (lowered to the slices `part` holds;
/// unsplit without it): A, B and C as described on [`GroupedGemm`].
#[allow(clippy::too_many_arguments)]
pub fn dispatch(
    ctx: &GpuContext,
    kernels: &Kernels,
    tile: Tile,
    split: u32,
    g: &GroupedGemm,
    label: &str,
    (a, b, c): (&wgpu::Buffer, &wgpu::Buffer, &wgpu::Buffer),
    part: Option<&wgpu::Buffer>,
) -> Result<Vec<Dispatch>> {
    if !g.k.is_multiple_of(4)
        || !g.a_gstride.is_multiple_of(4)
        || !g.b_gstride.is_multiple_of(4)
        || g.m == 0
        || g.n == 0
        || g.groups == 0
    {
        return Err(Error::Shape(format!(
            "grouped mm GEMM needs K and the group strides multiples of 4 and no empty side: {g:?}"
        )));
    }
    let slab = g.groups * g.m * g.n;
    let room = part.map_or(0, |p| p.size() as usize / 4) / slab;
    let split = split.min(u32::try_from(room.max(1)).unwrap_or(u32::MAX));
    let (slices, kvz) = slices(tile, g, split);
    let kv = g.k / 4;
    let mut params = MmParams {
        m: to_u32("grouped GEMM rows", g.m)?,
        n: to_u32("grouped GEMM columns", g.n)?,
        kv: to_u32("grouped GEMM K", kv)?,
        kvz: to_u32("grouped GEMM K", kv)?,
        a_gstride: to_u32("grouped GEMM A stride", g.a_gstride / 4)?,
        out_c: to_u32("grouped GEMM C stride", g.c_row)?,
        m_off: to_u32("grouped GEMM C offset", g.c_off)?,
        splits: 1,
        b_gstride: to_u32("grouped GEMM B stride", g.b_gstride / 4)?,
        c_gstride: to_u32("grouped GEMM C stride", g.c_gstride)?,
        groups: to_u32("groups", g.groups)?,
        ..Default::default()
    };
    let flops = 2.0 * (g.groups * g.m * g.n * g.k) as f64;
    let grid = |z: usize| {
        Grid::Groups([
            g.n.div_ceil(tile.bn as usize),
            g.m.div_ceil(tile.bm as usize),
            z,
        ])
    };
    let (Some(part), true) = (part, slices > 1) else {
        let kernel = kernels.mm(tile, "gdense");
        let bindings = [(1, a), (3, c), (6, b)];
        let label = format!("{label} (mm {})", tile.name());
        let d = Dispatch::new(ctx, &kernel, label, &params, &bindings, grid(g.groups))?;
        return Ok(vec![d.with_flops(flops)]);
    };
    params.kvz = to_u32("grouped GEMM slice", kvz)?;
    params.splits = to_u32("grouped GEMM slices", slices)?;
    let kernel = kernels.mm(tile, "gdense_split");
    let bindings = [(1, a), (6, b), (7, part)];
    let name = format!("{label} (mm {}-split{slices})", tile.name());
    let main = Dispatch::new(
        ctx,
        &kernel,
        name,
        &params,
        &bindings,
        grid(g.groups * slices),
    )?
    .with_flops(flops);
    let reduce = kernels.mm(Tile::new(64, 64, 16), "reduce_grouped");
    let bindings = [(3, c), (7, part)];
    let name = format!("{label} (mm split-K reduce)");
    Ok(vec![
        main,
        Dispatch::new(ctx, &reduce, name, &params, &bindings, Grid::Items(slab))?,
    ])
}

/// The CPU reference of [`dispatch`] (f64 accumulation), writing into `c`.
pub fn reference(g: &GroupedGemm, a: &[f32], b: &[f32], c: &mut [f32]) {
    for gi in 0..g.groups {
        for n in 0..g.n {
            for m in 0..g.m {
                let ar = &a[gi * g.a_gstride + m * g.k..][..g.k];
                let br = &b[gi * g.b_gstride + n * g.k..][..g.k];
                let s: f64 = ar.iter().zip(br).map(|(x, y)| *x as f64 * *y as f64).sum();
                c[gi * g.c_gstride + n * g.c_row + g.c_off + m] = s as f32;
            }
        }
    }
}
