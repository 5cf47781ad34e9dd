//! `mm.wgsl`: register-blocked matmul tiles for GPUs (8x8 outputs per invocation, K-major
//! double-buffered workgroup memory, one barrier per K step), as an implicit GEMM for
//! convolutions and as a plain GEMM for dense layers, both with split-K, and a matrix-vector
//! path.
//!
//! Tile shapes are compile-time constants of the shader; each [`Tile`] is its own module, made
//! by rewriting the shader's three `const` lines (so the compiler unrolls every loop over a
//! tile). Convolution weights use the same layout as the CPU-adapter GEMM
//! ([`super::conv2d::weight_for_gemm`]: rows padded to whole vec4) and dense weights stay
//! `[out, in]`, so switching between the two paths needs no other upload.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use super::conv2d::Conv2dShape;
use super::{grid_1d, Dispatch, Grid, Kernels};
use crate::error::{Error, Result};
use crate::gpu::{storage_buffer, upload, GpuContext, ShaderSource};
pub use crate::options::matmul::{ConvKind, DenseKind, Force, Tile, TILES};

/// The shader as written (the 64x64x16 tile).
pub const SOURCE: &str = include_str!("../../shaders/mm.wgsl");

/// Mirrors `struct Params` in `mm.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)] // the fields are the shader's uniform block's, named as there
pub struct MmParams {
    pub m: u32,
    pub n: u32,
    pub kv: u32,
    pub kvz: u32,
    pub a_gstride: u32,
    pub relu: u32,
    pub out_c: u32,
    pub m_off: u32,
    pub out_hw: u32,
    pub out_w: u32,
    pub in_c: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub stride: u32,
    pub pad: u32,
    pub cin_g: u32,
    pub splits: u32,
    pub b_gstride: u32,
    pub c_gstride: u32,
    pub groups: u32,
    pub n_off: u32,
    pub k: u32,
    pub a_off: u32,
    pub a_ms: u32,
    pub a_ks: u32,
    pub b_off: u32,
    pub b_ns: u32,
    pub b_ks: u32,
    pub beta: u32,
}

impl Tile {
    /// The shader with this tile's constants (built once per process and tile).
    pub fn source(&self) -> ShaderSource {
        static SOURCES: OnceLock<Mutex<HashMap<Tile, ShaderSource>>> = OnceLock::new();
        let mut map = SOURCES
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *map.entry(*self).or_insert_with(|| {
            let src = SOURCE
                .replacen(
                    "const BM: u32 = 64u;",
                    &format!("const BM: u32 = {}u;", self.bm),
                    1,
                )
                .replacen(
                    "const BN: u32 = 64u;",
                    &format!("const BN: u32 = {}u;", self.bn),
                    1,
                )
                .replacen(
                    "const BK: u32 = 16u;",
                    &format!("const BK: u32 = {}u;", self.bk),
                    1,
                );
            // One leak per tile shape per process (at most `TILES.len()`): the pipeline cache
            // keys on `'static` names.
            ShaderSource {
                file: Box::leak(format!("mm.wgsl[{}]", self.name()).into_boxed_str()),
                source: Box::leak(src.into_boxed_str()),
            }
        })
    }
}

impl Force {
    /// The dense variant: forced fields, else `tuned` (a tuner cache hit that fits `limits`),
    /// else the heuristic. A forced tile the device cannot run is an error naming its limit.
    pub fn dense(
        &self,
        batch: usize,
        k: usize,
        out: usize,
        tuned: Option<DenseKind>,
        limits: &wgpu::Limits,
    ) -> Result<DenseKind> {
        if self.gemv {
            return Ok(DenseKind::Gemv);
        }
        if let Some(t) = self.tile {
            check_fits(t, limits)?;
        }
        let tuned = tuned.filter(|d| match d {
            DenseKind::Gemv => true,
            DenseKind::Tiles { tile, .. } => tile.fits(limits),
        });
        let base = tuned.unwrap_or_else(|| dense_heuristic(batch, k, out, limits));
        Ok(match (self.tile, self.split, base) {
            (None, None, b) => b,
            (tile, split, DenseKind::Tiles { tile: t, split: s }) => DenseKind::Tiles {
                tile: tile.unwrap_or(t),
                split: split.unwrap_or(s),
            },
            (tile, split, DenseKind::Gemv) => DenseKind::Tiles {
                tile: tile.unwrap_or(Tile::new(64, 64, 16)),
                split: split.unwrap_or(1),
            },
        })
    }

    /// The conv variant: each forced field (tile, conv split or the coalesced im2col), else
    /// `tuned` if its tile fits `limits`, else the heuristics ([`conv_heuristic`], then
    /// [`conv_split_heuristic`] for the tile chosen; never the coalesced im2col, see
    /// [`conv_heuristic`]).
    pub fn conv(
        &self,
        shape: &Conv2dShape,
        tuned: Option<ConvKind>,
        limits: &wgpu::Limits,
    ) -> Result<ConvKind> {
        if let Some(t) = self.tile {
            check_fits(t, limits)?;
        }
        let (m, n) = (shape.out_c / shape.groups, pixels(shape)?);
        let tuned = tuned.filter(|k| k.tile.fits(limits));
        let tile = self
            .tile
            .or(tuned.map(|k| k.tile))
            .unwrap_or_else(|| conv_heuristic(m, n, limits));
        if self.conv_im2col {
            return Ok(ConvKind::im2col(tile));
        }
        Ok(match (self.conv_split, tuned) {
            (Some(s), _) => ConvKind::implicit(tile, s),
            (None, Some(k)) if k.tile == tile => k,
            _ => ConvKind::implicit(tile, conv_split_heuristic(tile, shape)?),
        })
    }
}

/// A forced tile the device cannot run: refused with the limit it exceeds.
fn check_fits(tile: Tile, limits: &wgpu::Limits) -> Result<()> {
    if tile.fits(limits) {
        return Ok(());
    }
    let usable: Vec<String> = TILES
        .iter()
        .filter(|t| t.fits(limits))
        .map(Tile::name)
        .collect();
    Err(Error::Unsupported(format!(
        "the {} tile needs {} bytes of workgroup memory and {} invocations; this device allows \
         {} bytes and {} invocations (tiles that fit: {})",
        tile.name(),
        tile.workgroup_bytes(),
        tile.invocations(),
        limits.max_compute_workgroup_storage_size,
        limits.max_compute_invocations_per_workgroup,
        usable.join(", ")
    )))
}

/// The tile every conforming device runs (16 KiB of workgroup memory, 64 invocations): the
/// heuristics' fallback.
const BASELINE: Tile = Tile::new(64, 64, 16);

/// Workgroups that keep a large GPU busy (an H200 has 132 SMs, a 4090 128; two or more
/// workgroups per SM hide latency): the heuristics prefer big tiles until they give fewer.
pub const FILL: usize = 256;

/// The heuristic conv tile, used until `bench --tune` has filled the cache: the largest tile
/// (most reuse per load) that still gives [`FILL`] workgroups and wastes at most a quarter of
/// its outputs on remainders; else the one with the least waste among those filling the GPU;
/// else 64x64x16 (small problems: more, smaller workgroups).
/// Only tiles that fit `limits` are considered (under WebGPU's baseline: 128x128x8 and
/// 64x64x16).
///
/// Two candidates it never picks, with the counts behind that (AlexNet per image; the card
/// decides through `bench --tune`):
/// - **The coalesced im2col (`-im2col`, [`super::mm_im2col`])** does the same FLOPs as the
///   conv entry plus the patch matrix's bytes, written once and read at least once: 2 x
///   4.40 / 4.67 / 1.17 / 2.34 / 1.56 MB for conv1-5 against 141 / 448 / 224 / 299 / 199
///   MFLOP, i.e. Cout / 4 = 16 / 48 / 96 / 64 / 64 FLOP per byte of patch traffic. At ~3 TB/s
///   that traffic costs what 48 / 144 / 288 / 192 / 192 TFLOP/s of extra work would: it wins
///   wherever its dense loop runs the GEMM well above the conv entry's rate, and loses where
///   they run alike. Counts alone cannot say which (both loops do the same FMAs); the one card
///   run measured the dense loop at 37.8 TFLOP/s (fc6 b256) and the conv entry at 1.1-2.2 on
///   the same tiles (docs/gpu-runs/2026-12-04-h200). Prediction for the sweep: at batch >= 8
///   the heuristic tile's `-im2col` beats its conv entry on every conv (b256: 336 GFLOP at
///   ~30 TFLOP/s + 2 x 3.6 GB at ~3 TB/s = ~14 ms, against 63 + 16 ms of gemm + im2col
///   today); at batch 1 conv3-5 the split conv entry keeps winning, since `-im2col` is
///   unsplit (18 workgroups of 64x64 for conv3 on 132 SMs). Until a sweep says so, today's
///   choice (the conv entry) stays, as the conv entry's slowness may yet be fixed in place.
/// - **32x32x16** adds no lanes (every invocation owns 8x8 outputs whatever the tile: only
///   split-K adds lanes), halves the FMAs per loaded value against 64x64 (16 against 32) and
///   runs half a warp per workgroup; its one gain is spreading a split conv over more SMs
///   (batch 1 conv3, split 4: 288 workgroups against 72). A wash by counts: tuner only.
pub fn conv_heuristic(m: usize, n: usize, limits: &wgpu::Limits) -> Tile {
    let big = [
        Tile::new(128, 128, 8),
        Tile::new(128, 64, 16),
        Tile::new(64, 128, 16),
    ];
    big.iter()
        .copied()
        .filter(|t| t.fits(limits))
        .find(|t| t.tiles(m, n) >= FILL && t.waste(m, n) <= 1.25)
        .unwrap_or(BASELINE)
}

/// The heuristic conv split-K factor for `tile`: 1 when the output tiles (times groups) fill
/// the GPU ([`FILL`]); else doubled until they do, keeping slices of at least 256 values of K,
/// at most 16 (batch 1 conv4 of AlexNet, K 3456: 18 tiles of 64x64, split 8). Large batches
/// stay unsplit, so the partial sums stay small.
pub fn conv_split_heuristic(tile: Tile, shape: &Conv2dShape) -> Result<u32> {
    let tiles = tile.tiles(shape.out_c / shape.groups, pixels(shape)?) * shape.groups;
    let k = shape.k();
    let mut split = 1u32;
    while tiles * (split as usize) < FILL && k / (2 * split as usize) >= 256 && split < 16 {
        split *= 2;
    }
    Ok(split)
}

/// The heuristic dense variant: [`DenseKind::Gemv`] for batch 1-8 (bandwidth-bound: each
/// weight read once per 4 rows, no tile remainder); else the largest tile wasting at most a
/// quarter of its outputs (64x64x16 if none), split over K until the workgroups reach [`FILL`]
/// with slices of at least 256 values of K, at most 16 (fc6 at batch 128: 32 tiles of
/// 128x128, split 8 of 1152).
pub fn dense_heuristic(batch: usize, k: usize, out: usize, limits: &wgpu::Limits) -> DenseKind {
    if batch <= 8 {
        return DenseKind::Gemv;
    }
    let tile = [Tile::new(128, 128, 8), Tile::new(128, 64, 16), BASELINE]
        .into_iter()
        .filter(|t| t.fits(limits))
        .find(|t| t.waste(out, batch) <= 1.25)
        .unwrap_or(BASELINE);
    let tiles = tile.tiles(out, batch);
    let mut split = 1u32;
    while tiles * (split as usize) < FILL && k / (2 * split as usize) >= 256 && split < 16 {
        split *= 2;
    }
    DenseKind::Tiles { tile, split }
}

fn pixels(shape: &Conv2dShape) -> Result<usize> {
    let (oh, ow) = shape.out_hw()?;
    Ok(shape.batch * oh * ow)
}

fn u(v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Shape(format!("mm index {v} does not fit in u32")))
}

/// `mm.wgsl`'s gather table for `shape`: per column k of the implicit im2col (ci, ky, kx), the
/// input offset `ci*H*W + ky*W + kx` and `ky << 16 | kx`; entries from K up to a multiple of 32
/// (the largest BK) mark padding (`ky = 0xffff`: outside any image, read as zero).
pub fn conv_table(shape: &Conv2dShape) -> Vec<[u32; 2]> {
    let (k, kk) = (shape.k(), shape.kernel);
    let len = shape.kp().div_ceil(32) * 32;
    let mut t = vec![[0, 0xffff << 16]; len];
    for (i, e) in t.iter_mut().enumerate().take(k) {
        let (ci, ky, kx) = (i / (kk * kk), (i / kk) % kk, i % kk);
        *e = [
            (ci * shape.in_h * shape.in_w + ky * shape.in_w + kx) as u32,
            ((ky as u32) << 16) | kx as u32,
        ];
    }
    t
}

/// What the gather table ([`conv_table`]) and the shaders' i32 input offsets can index: a
/// kernel side up to 0xffff, input sides below 0x7fff (so a padding entry's 0xffff lands
/// outside), at most 2^31 input values.
pub fn check_gather(shape: &Conv2dShape) -> Result<()> {
    if shape.kernel > 0xffff || shape.in_h >= 0x7fff || shape.in_w >= 0x7fff {
        return Err(Error::Shape(format!(
            "mm conv: kernel {} or input {}x{} too large for the gather table",
            shape.kernel, shape.in_h, shape.in_w
        )));
    }
    i32::try_from(shape.batch * shape.in_c * shape.in_h * shape.in_w)
        .map_err(|_| Error::Shape("mm conv: input over 2^31 values".into()))?;
    Ok(())
}

/// The K slices a convolution split `split` ways runs on `tile`: `(slices, kvz)`, each slice
/// `kvz` vec4 of K (a whole number of K steps), no slice empty.
pub fn conv_slices(tile: Tile, shape: &Conv2dShape, split: u32) -> (usize, usize) {
    let kv = shape.kp() / 4;
    let per = (tile.bk / 4) as usize;
    let steps = kv.div_ceil(per);
    let split = (split as usize).clamp(1, steps.max(1));
    let kvz = steps.div_ceil(split) * per;
    (kv.div_ceil(kvz), kvz)
}

/// 32-bit words of partial sums a split convolution writes: one `out_c x pixels` slab per
/// slice; 0 unsplit.
pub fn conv_split_words(kind: ConvKind, shape: &Conv2dShape) -> Result<usize> {
    let (slices, _) = conv_slices(kind.tile, shape, kind.split);
    Ok(match slices {
        1 => 0,
        s => s * shape.out_c * pixels(shape)?,
    })
}

/// Binds one convolution as an implicit GEMM on `kind.tile`: `weight` in the
/// [`super::conv2d::weight_for_gemm`] layout, NCHW `input` and `output`. The gather table is
/// uploaded here (a few KiB) and kept alive by the bind group. Split (`kind.split > 1`): the
/// `conv_split` entry writes each K slice's partial sums to `scratch`, then `reduce_conv`
/// adds them, the bias and the ReLU; the split is lowered to the slices `scratch` holds (no
/// scratch, or room for fewer than two slices: the unsplit `conv` entry).
#[allow(clippy::too_many_arguments)]
pub fn dispatch_conv(
    ctx: &GpuContext,
    kernels: &Kernels,
    kind: ConvKind,
    shape: &Conv2dShape,
    relu: bool,
    weight: &wgpu::Buffer,
    bias: &wgpu::Buffer,
    input: &wgpu::Buffer,
    output: &wgpu::Buffer,
    scratch: Option<&wgpu::Buffer>,
) -> Result<Vec<Dispatch>> {
    let tile = kind.tile;
    let (oh, ow) = shape.out_hw()?;
    check_gather(shape)?;
    let (cout_g, n, kv) = (shape.out_c / shape.groups, pixels(shape)?, shape.kp() / 4);
    // The split that the scratch holds.
    let slab = shape.out_c * n;
    let room = scratch.map_or(0, |b| b.size() as usize / 4) / slab.max(1);
    let (slices, kvz) = conv_slices(tile, shape, kind.split.min(u(room.max(1))?));
    let geo = shape.geometry()?;
    let mut params = MmParams {
        m: u(cout_g)?,
        n: u(n)?,
        kv: u(kv)?,
        kvz: u(kv)?,
        a_gstride: u(cout_g * kv)?,
        relu: relu as u32,
        out_c: geo.out_c,
        out_hw: u(oh * ow)?,
        out_w: geo.out_w,
        in_c: geo.in_c,
        in_h: geo.in_h,
        in_w: geo.in_w,
        stride: geo.stride,
        pad: geo.pad,
        cin_g: u(shape.in_c / shape.groups)?,
        splits: 1,
        ..Default::default()
    };
    let table = upload(ctx, "mm gather table", &conv_table(shape))?;
    let groups = |z: usize| {
        Grid::Groups([
            n.div_ceil(tile.bn as usize),
            cout_g.div_ceil(tile.bm as usize),
            z,
        ])
    };
    let (Some(part), true) = (scratch, slices > 1) else {
        let kernel = kernels.mm(tile, "conv");
        let bindings = [(1, weight), (2, bias), (3, output), (4, input), (5, &table)];
        let label = format!("conv2d(mm {})", tile.name());
        let d = Dispatch::new(
            ctx,
            &kernel,
            label,
            &params,
            &bindings,
            groups(shape.groups),
        )?;
        return Ok(vec![d.with_flops(shape.flops())]);
    };
    params.kvz = u(kvz)?;
    params.splits = u(slices)?;
    let kernel = kernels.mm(tile, "conv_split");
    let bindings = [(1, weight), (4, input), (5, &table), (7, part)];
    let label = format!("conv2d(mm {}-split{slices})", tile.name());
    let grid = groups(shape.groups * slices);
    let main =
        Dispatch::new(ctx, &kernel, label, &params, &bindings, grid)?.with_flops(shape.flops());
    let reduce = kernels.mm(Tile::new(64, 64, 16), "reduce_conv");
    let bindings = [(2, bias), (3, output), (7, part)];
    let label = "conv2d(mm split-K reduce)";
    Ok(vec![
        main,
        Dispatch::new(ctx, &reduce, label, &params, &bindings, Grid::Items(slab))?,
    ])
}

/// One weight part of a dense layer on the blocked path: `weight` holds `rows` rows of `k`
/// values (`k` a multiple of 4) for outputs `m_off..m_off + rows` of `out_f`; `input` is
/// `[batch][k]`. Split-K allocates its partial-sum buffer here (kept alive by the bind groups).
#[allow(clippy::too_many_arguments)]
pub fn dispatch_dense(
    ctx: &GpuContext,
    kernels: &Kernels,
    kind: DenseKind,
    batch: usize,
    k: usize,
    (m_off, rows, out_f): (usize, usize, usize),
    relu: bool,
    weight: &wgpu::Buffer,
    bias: &wgpu::Buffer,
    input: &wgpu::Buffer,
    output: &wgpu::Buffer,
) -> Result<Vec<Dispatch>> {
    if !k.is_multiple_of(4) || batch == 0 || rows == 0 {
        return Err(Error::Shape(format!(
            "mm dense needs K a multiple of 4 and a non-empty batch and part (K {k}, batch {batch}, rows {rows})"
        )));
    }
    let kv = k / 4;
    let mut params = MmParams {
        m: u(rows)?,
        n: u(batch)?,
        kv: u(kv)?,
        kvz: u(kv)?,
        relu: relu as u32,
        out_c: u(out_f)?,
        m_off: u(m_off)?,
        splits: 1,
        ..Default::default()
    };
    let flops = 2.0 * (batch * rows * k) as f64;
    match kind {
        DenseKind::Gemv => {
            let kernel = kernels.mm(Tile::new(64, 64, 16), "gemv");
            let bindings = [(1, weight), (2, bias), (3, output), (6, input)];
            let [x, y, _] = grid_1d(ctx, rows, 1)?;
            let grid = Grid::Groups([x as usize, y as usize, batch.div_ceil(4)]);
            let d = Dispatch::new(ctx, &kernel, "dense(mm gemv)", &params, &bindings, grid)?;
            Ok(vec![d.with_flops(flops)])
        }
        DenseKind::Tiles { tile, split } => {
            let per = (tile.bk / 4) as usize;
            let steps = kv.div_ceil(per);
            let split = (split as usize).clamp(1, steps);
            let kvz = steps.div_ceil(split) * per;
            let split = kv.div_ceil(kvz);
            let groups = [
                batch.div_ceil(tile.bn as usize),
                rows.div_ceil(tile.bm as usize),
                split,
            ];
            if split == 1 {
                let kernel = kernels.mm(tile, "dense");
                let bindings = [(1, weight), (2, bias), (3, output), (6, input)];
                let label = format!("dense(mm {})", tile.name());
                let grid = Grid::Groups(groups);
                let d = Dispatch::new(ctx, &kernel, label, &params, &bindings, grid)?;
                return Ok(vec![d.with_flops(flops)]);
            }
            params.kvz = u(kvz)?;
            params.splits = u(split)?;
            let part = storage_buffer(
                ctx,
                "mm split-K partial sums",
                split * batch * rows,
                "use a smaller batch or a smaller split",
            )?;
            let kernel = kernels.mm(tile, "dense_split");
            let bindings = [(1, weight), (6, input), (7, &part)];
            let label = format!("dense(mm {}-split{split})", tile.name());
            let main = Dispatch::new(
                ctx,
                &kernel,
                label,
                &params,
                &bindings,
                Grid::Groups(groups),
            )?
            .with_flops(flops);
            let reduce = kernels.mm(Tile::new(64, 64, 16), "reduce");
            let bindings = [(2, bias), (3, output), (7, &part)];
            let grid = Grid::Items(batch * rows);
            let label = "dense(mm split-K reduce)";
            Ok(vec![
                main,
                Dispatch::new(ctx, &reduce, label, &params, &bindings, grid)?,
            ])
        }
    }
}
