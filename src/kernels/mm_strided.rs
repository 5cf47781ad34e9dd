//! GEMMs on strided operands on the `mm.wgsl` tiles (`strided`, `strided_split` +
//! `reduce_grouped`), for a dense layer's backward pass: `C[n][m] (+)= sum_k A(m, k) B(n, k)`
//! with `A(m, k) = a[a_off + m a_ms + k a_ks]` and `B(n, k) = b[b_off + n b_ns + k b_ks]`, so
//! that the weight `[out][in]`, the activations `[batch][in]` and their gradients
//! `[batch][out]` are read where they lie, whichever axis the product contracts (no transposed
//! copy: fc6's weight is 151 MB). K and the strides may be any number (a classifier's output
//! count is). Split over K where the output tiles alone would leave the GPU idle (the input
//! gradient at small batches: M = inputs, N = batch, K = outputs).

use super::mm::{MmParams, Tile, FILL};
use super::{to_u32, Dispatch, Grid, Kernels};
use crate::error::{Error, Result};
use crate::gpu::{storage_buffer, GpuContext};

/// One operand: element `(row, k)` at `off + row * row_stride + k * k_stride` (in f32 values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Strides {
    /// Offset of element (0, 0).
    pub off: usize,
    /// Values between consecutive rows (m for A, n for B).
    pub row: usize,
    /// Values between consecutive k.
    pub k: usize,
}

/// The geometry of one strided GEMM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StridedGemm {
    /// Rows of A, the inner index of C.
    pub m: usize,
    /// Rows of B, the outer index of C.
    pub n: usize,
    /// The contraction.
    pub k: usize,
    /// A's layout.
    pub a: Strides,
    /// B's layout.
    pub b: Strides,
    /// C: row stride (per n).
    pub c_row: usize,
    /// C: offset of m = 0.
    pub c_off: usize,
    /// Add to C instead of writing it (the later weight parts of an input gradient).
    pub accumulate: bool,
}

/// The tile and K split of one strided GEMM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StridedKind {
    /// The output tile.
    pub tile: Tile,
    /// K slices (1: unsplit).
    pub split: u32,
}

impl StridedKind {
    /// The name benchmarks print (`64x64x16`, `128x128x8-split4`).
    pub fn name(&self) -> String {
        match self.split {
            0 | 1 => self.tile.name(),
            s => format!("{}-split{s}", self.tile.name()),
        }
    }
}

/// The heuristic variant, as the dense forward's tiles ([`super::mm::dense_heuristic`]): the
/// largest tile (of those fitting `limits`) wasting at most a quarter of its outputs on
/// remainders (64x64x16 if none), split over K while the workgroups do not reach [`FILL`] and
/// each slice keeps at least 256 values of K, at most 16 slices. fc6's input gradient at batch
/// 128 (M 9,216, N 128, K 4,096): 72 tiles of 128x128, split 4; its weight gradient (M 9,216,
/// N 4,096, K 128): 2,304 tiles, unsplit.
pub fn heuristic(m: usize, n: usize, k: usize, limits: &wgpu::Limits) -> StridedKind {
    let tile = [
        Tile::new(128, 128, 8),
        Tile::new(128, 64, 16),
        Tile::new(64, 64, 16),
    ]
    .into_iter()
    .filter(|t| t.fits(limits))
    .find(|t| t.waste(m, n) <= 1.25)
    .unwrap_or(Tile::new(64, 64, 16));
    let tiles = tile.tiles(m, n);
    let mut split = 1u32;
    while tiles * (split as usize) < FILL && k / (2 * split as usize) >= 256 && split < 16 {
        split *= 2;
    }
    StridedKind { tile, split }
}

/// The K slices of `kind` on K = `k`: `(slices, kvz)`, each slice `4 kvz` values of K (a
/// whole number of K steps), none empty.
pub fn slices(kind: StridedKind, k: usize) -> (usize, usize) {
    let bk = kind.tile.bk as usize;
    let steps = k.div_ceil(bk).max(1);
    let split = (kind.split as usize).clamp(1, steps);
    let per = steps.div_ceil(split) * bk;
    (k.div_ceil(per).max(1), per / 4)
}

/// The dispatches of `g` on `kind` (`a`, `b` read; `c` written or added to). A split
/// allocates its partial sums here (kept alive by the bind groups).
pub fn dispatch(
    ctx: &GpuContext,
    kernels: &Kernels,
    kind: StridedKind,
    g: &StridedGemm,
    label: &str,
    (a, b, c): (&wgpu::Buffer, &wgpu::Buffer, &wgpu::Buffer),
) -> Result<Vec<Dispatch>> {
    if g.m == 0 || g.n == 0 || g.k == 0 {
        return Err(Error::Shape(format!(
            "strided mm GEMM with an empty side: {g:?}"
        )));
    }
    let tile = kind.tile;
    let (slices, kvz) = slices(kind, g.k);
    let mut params = MmParams {
        m: to_u32("strided GEMM rows", g.m)?,
        n: to_u32("strided GEMM columns", g.n)?,
        kvz: to_u32("strided GEMM slice", kvz)?,
        out_c: to_u32("strided GEMM C stride", g.c_row)?,
        m_off: to_u32("strided GEMM C offset", g.c_off)?,
        splits: 1,
        groups: 1,
        k: to_u32("strided GEMM K", g.k)?,
        a_off: to_u32("strided GEMM A offset", g.a.off)?,
        a_ms: to_u32("strided GEMM A stride", g.a.row)?,
        a_ks: to_u32("strided GEMM A stride", g.a.k)?,
        b_off: to_u32("strided GEMM B offset", g.b.off)?,
        b_ns: to_u32("strided GEMM B stride", g.b.row)?,
        b_ks: to_u32("strided GEMM B stride", g.b.k)?,
        beta: g.accumulate as u32,
        ..Default::default()
    };
    let flops = 2.0 * (g.m * g.n * g.k) as f64;
    let grid = |z: usize| {
        Grid::Groups([
            g.n.div_ceil(tile.bn as usize),
            g.m.div_ceil(tile.bm as usize),
            z,
        ])
    };
    if slices == 1 {
        let kernel = kernels.mm(tile, "strided");
        let bindings = [(3, c), (4, a), (8, b)];
        let label = format!("{label} (mm {})", tile.name());
        let d = Dispatch::new(ctx, &kernel, label, &params, &bindings, grid(1))?;
        return Ok(vec![d.with_flops(flops)]);
    }
    params.splits = to_u32("strided GEMM slices", slices)?;
    let part = storage_buffer(
        ctx,
        "dense backward split-K partial sums",
        slices * g.m * g.n,
        "use a smaller batch",
    )?;
    let kernel = kernels.mm(tile, "strided_split");
    let bindings = [(4, a), (7, &part), (8, b)];
    let name = format!("{label} (mm {}-split{slices})", tile.name());
    let main =
        Dispatch::new(ctx, &kernel, name, &params, &bindings, grid(slices))?.with_flops(flops);
    let reduce = kernels.mm(Tile::new(64, 64, 16), "reduce_grouped");
    let bindings = [(3, c), (7, &part)];
    let name = format!("{label} (mm split-K reduce)");
    Ok(vec![
        main,
        Dispatch::new(
            ctx,
            &reduce,
            name,
            &params,
            &bindings,
            Grid::Items(g.m * g.n),
        )?,
    ])
}

/// The CPU reference of [`dispatch`] (f64 accumulation) on `c`.
pub fn reference(g: &StridedGemm, a: &[f32], b: &[f32], c: &mut [f32]) {
    for n in 0..g.n {
        for m in 0..g.m {
            let s: f64 = (0..g.k)
                .map(|k| {
                    a[g.a.off + m * g.a.row + k * g.a.k] as f64
                        * b[g.b.off + n * g.b.row + k * g.b.k] as f64
                })
                .sum();
            let ci = n * g.c_row + g.c_off + m;
            c[ci] = if g.accumulate {
                (c[ci] as f64 + s) as f32
            } else {
                s as f32
            };
        }
    }
}
