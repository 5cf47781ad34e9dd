//! Dense layers. Weights are `[out, in]`, possibly split by rows over several buffers.
//! On the [`MatmulPath::Gemm`](super::MatmulPath::Gemm) path (CPU adapters) with `in` a multiple of 4: `gemm.wgsl`
//! (its 1-row tile streams the weights for batch 1). Else `dense.wgsl` for small batches
//! (bandwidth-bound) and, for large batches, `conv2d.wgsl` as a 1x1 convolution on 1x1 images.
//! On the [`MatmulPath::Blocked`](super::MatmulPath::Blocked) path (GPUs) with `in` a multiple of 4: `mm.wgsl` (gemv,
//! tiles or split-K tiles, see [`super::mm::DenseKind`]), or `gemm.wgsl` where the tuner chose
//! it for this shape.

use super::mm::DenseKind;
use super::tuned::Variant;
use super::{conv2d, gemm, to_u32, Dispatch, Grid, Kernels, Precision};
use crate::error::Result;
use crate::gpu::{GpuContext, SplitWeight};

/// Mirrors `struct Params` in `dense.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)] // the fields are the shader's uniform block's, named as there
pub struct DenseParams {
    pub batch: u32,
    pub in_f: u32,
    pub out_f: u32,
    pub row_start: u32,
    pub rows: u32,
    pub relu: u32,
    pub _pad: [u32; 2],
}

/// From this batch size on, the tiled GEMM beats streaming the weights once per 4 images.
pub const GEMM_MIN_BATCH: usize = 16;

/// Which kernel one f32 dense weight part runs ([`Kernels::dense_route`]: the one place that
/// decides it, for networks, training, the tuner and `bench`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DenseRoute {
    /// An `mm.wgsl` variant (gemv, tiles, split-K tiles).
    Mm(DenseKind),
    /// `gemm.wgsl` with the bias along N ([`gemm_part`]).
    Gemm,
    /// `conv2d.wgsl` as a 1x1 convolution of 1x1 images (large batches on the `Tiled` path, or
    /// K not whole vec4 loads).
    Conv1x1,
    /// `dense.wgsl`: each weight streamed once per 4 images (small batches).
    Stream,
}

impl From<Variant<DenseKind>> for DenseRoute {
    /// The route of a tuner winner (or candidate).
    fn from(v: Variant<DenseKind>) -> Self {
        match v {
            Variant::Gemm => DenseRoute::Gemm,
            Variant::Mm(kind) => DenseRoute::Mm(kind),
        }
    }
}

impl Kernels {
    /// The kernel an f32 dense part of `rows` outputs over `k` inputs runs at `batch`: an
    /// `mm.wgsl` variant or `gemm.wgsl` where K is whole vec4 loads (the path, the tuner's
    /// entry, what is forced, the heuristics: [`Kernels::dense_runs_gemm`],
    /// [`Kernels::dense_kind`]); else `conv2d.wgsl` as a 1x1 convolution from
    /// [`GEMM_MIN_BATCH`] images on, `dense.wgsl` below.
    pub fn dense_route(&self, batch: usize, k: usize, rows: usize) -> Result<DenseRoute> {
        if k.is_multiple_of(4) && rows > 0 {
            if let Some(kind) = self.dense_kind(batch, k, rows)? {
                return Ok(DenseRoute::Mm(kind));
            }
            if self.dense_runs_gemm(batch, k, rows) {
                return Ok(DenseRoute::Gemm);
            }
        }
        Ok(if batch >= GEMM_MIN_BATCH {
            DenseRoute::Conv1x1
        } else {
            DenseRoute::Stream
        })
    }
}

impl DenseRoute {
    /// The dispatches of one weight part: `weight` holds rows `row_start..row_start + rows` of
    /// the `out_f` outputs (`[rows, k]`), `input` is `[batch, k]`, `output` `[batch, out_f]`.
    #[allow(clippy::too_many_arguments)]
    pub fn dispatch_part(
        self,
        ctx: &GpuContext,
        kernels: &Kernels,
        batch: usize,
        k: usize,
        (row_start, rows, out_f): (usize, usize, usize),
        relu: bool,
        weight: &wgpu::Buffer,
        bias: &wgpu::Buffer,
        input: &wgpu::Buffer,
        output: &wgpu::Buffer,
    ) -> Result<Vec<Dispatch>> {
        let part = (row_start, rows, out_f);
        Ok(match self {
            DenseRoute::Mm(kind) => super::mm::dispatch_dense(
                ctx, kernels, kind, batch, k, part, relu, weight, bias, input, output,
            )?,
            DenseRoute::Gemm => vec![gemm_part(
                ctx,
                kernels,
                Precision::F32,
                batch,
                k,
                part,
                relu,
                input,
                weight,
                bias,
                output,
            )?],
            DenseRoute::Conv1x1 => {
                let shape = conv2d::Conv2dShape::dense(batch, k, out_f);
                let mut d = conv2d::dispatch(
                    ctx,
                    &kernels.conv2d(),
                    &shape,
                    relu,
                    weight,
                    row_start,
                    rows,
                    bias,
                    input,
                    output,
                )?;
                d.label = "dense(gemm)".into();
                vec![d]
            }
            DenseRoute::Stream => vec![dispatch_stream(
                ctx, kernels, batch, k, part, relu, weight, bias, input, output,
            )?],
        })
    }
}

/// Binds `y = x w^T + b` (optionally ReLU) for every part of `weight`, each part by its
/// [`DenseRoute`].
#[allow(clippy::too_many_arguments)]
pub fn dispatch(
    ctx: &GpuContext,
    kernels: &Kernels,
    batch: usize,
    weight: &SplitWeight,
    bias: &wgpu::Buffer,
    relu: bool,
    input: &wgpu::Buffer,
    output: &wgpu::Buffer,
) -> Result<Vec<Dispatch>> {
    let (out_f, in_f) = (weight.rows, weight.cols);
    let mut out = Vec::new();
    for (row_start, rows, buf) in &weight.parts {
        out.extend(kernels.dense_route(batch, in_f, *rows)?.dispatch_part(
            ctx,
            kernels,
            batch,
            in_f,
            (*row_start, *rows, out_f),
            relu,
            buf,
            bias,
            input,
            output,
        )?);
    }
    Ok(out)
}

/// `dense.wgsl` on one weight part.
#[allow(clippy::too_many_arguments)]
fn dispatch_stream(
    ctx: &GpuContext,
    kernels: &Kernels,
    batch: usize,
    in_f: usize,
    (row_start, rows, out_f): (usize, usize, usize),
    relu: bool,
    buf: &wgpu::Buffer,
    bias: &wgpu::Buffer,
    input: &wgpu::Buffer,
    output: &wgpu::Buffer,
) -> Result<Dispatch> {
    let params = DenseParams {
        batch: to_u32("dense batch", batch)?,
        in_f: to_u32("dense input features", in_f)?,
        out_f: to_u32("dense output features", out_f)?,
        row_start: to_u32("dense first row", row_start)?,
        rows: to_u32("dense rows", rows)?,
        relu: relu as u32,
        _pad: [0; 2],
    };
    // `ROWS` weight rows by `BT` images per workgroup (the shader's constants).
    let dense = kernels.dense();
    let (tile_rows, tile_batch) = (
        dense.constant("ROWS") as usize,
        dense.constant("BT") as usize,
    );
    let grid = Grid::Groups([rows.div_ceil(tile_rows), batch.div_ceil(tile_batch), 1]);
    let bindings = [buf, bias, input, output];
    Ok(
        Dispatch::new(ctx, &dense, "dense", &params, &bindings, grid)?
            .with_flops(2.0 * (batch * rows * in_f) as f64),
    )
}

/// Uploads `[rows, cols]` weights for [`dispatch_f16`]: rows packed to f16
/// ([`gemm::pack_f16_rows`], `Precision::F16.pad_k(cols) / 2` words each), split under the binding limit.
/// The result's `cols` is the logical `cols`.
pub fn upload_f16(
    ctx: &GpuContext,
    label: &str,
    data: &[f32],
    rows: usize,
    cols: usize,
) -> Result<SplitWeight> {
    let row_bytes = (Precision::F16.pad_k(cols).max(8) * 2) as u64;
    let rows_per_part = (ctx.max_binding() / row_bytes).max(1) as usize;
    upload_f16_with_rows_per_part(ctx, label, data, rows, cols, rows_per_part)
}

/// As [`upload_f16`] with an explicit part size (tests force splits with it).
pub fn upload_f16_with_rows_per_part(
    ctx: &GpuContext,
    label: &str,
    data: &[f32],
    rows: usize,
    cols: usize,
    rows_per_part: usize,
) -> Result<SplitWeight> {
    let packed = gemm::pack_f16_rows(data, rows, cols);
    let words = Precision::F16.words(Precision::F16.pad_k(cols));
    // The packed bits travel as opaque 4-byte values (a byte copy, no float conversion).
    let mut w = SplitWeight::upload_with_rows_per_part(
        ctx,
        label,
        bytemuck::cast_slice::<u32, f32>(&packed),
        rows,
        words,
        rows_per_part,
    )?;
    w.cols = cols;
    Ok(w)
}

/// `u32` words of `scratch` that [`dispatch_f16`] needs for `batch` inputs of `in_f` values.
pub fn scratch_words_f16(batch: usize, in_f: usize) -> usize {
    batch * Precision::F16.words(Precision::F16.pad_k(in_f))
}

/// `y = x w^T + b` (optionally ReLU) with f16 storage: the input is packed into `scratch`
/// (`im2col_f16.wgsl` as a 1x1 convolution), then `gemm_f16.wgsl` runs once per part of
/// `weight` (from [`upload_f16`]). f32 accumulation and output.
#[allow(clippy::too_many_arguments)]
pub fn dispatch_f16(
    ctx: &GpuContext,
    kernels: &Kernels,
    batch: usize,
    weight: &SplitWeight,
    bias: &wgpu::Buffer,
    relu: bool,
    input: &wgpu::Buffer,
    output: &wgpu::Buffer,
    scratch: &wgpu::Buffer,
) -> Result<Vec<Dispatch>> {
    let (out_f, in_f) = (weight.rows, weight.cols);
    let need = scratch_words_f16(batch, in_f);
    if (scratch.size() as usize) < 4 * need {
        return Err(crate::error::Error::Shape(format!(
            "dense f16 scratch of {} bytes cannot hold {need} words",
            scratch.size()
        )));
    }
    let pack = conv2d::Conv2dShape::dense(batch, in_f, 1);
    let mut out = vec![conv2d::dispatch_im2col(
        ctx,
        kernels,
        Precision::F16,
        &pack,
        0,
        batch,
        input,
        scratch,
    )?];
    let kp = Precision::F16.pad_k(in_f);
    for (row_start, rows, buf) in &weight.parts {
        if *rows == 0 {
            continue;
        }
        let mut d = gemm_part(
            ctx,
            kernels,
            Precision::F16,
            batch,
            kp,
            (*row_start, *rows, out_f),
            relu,
            scratch,
            buf,
            bias,
            output,
        )?;
        d.flops = 2.0 * (batch * rows * in_f) as f64;
        out.push(d);
    }
    Ok(out)
}

/// One weight part of `y = x w^T + b` as a GEMM with the bias along N: rows
/// `row_start..row_start + rows` of the `out_f` outputs, `k` the (padded) input length (the
/// `Gemm` path's dense kernel; the tuner times it too).
#[allow(clippy::too_many_arguments)]
pub fn gemm_part(
    ctx: &GpuContext,
    kernels: &Kernels,
    precision: Precision,
    batch: usize,
    k: usize,
    (row_start, rows, out_f): (usize, usize, usize),
    relu: bool,
    x: &wgpu::Buffer,
    w: &wgpu::Buffer,
    bias: &wgpu::Buffer,
    output: &wgpu::Buffer,
) -> Result<Dispatch> {
    let label = match precision {
        Precision::F32 => "dense(gemm)",
        Precision::F16 => "dense(gemm_f16)",
    };
    gemm::dispatch(
        ctx,
        kernels,
        precision,
        label,
        &gemm::GemmDims::single(batch, rows, k),
        gemm::GemmOut {
            n_off: row_start,
            hw: u32::MAX,
            c_bstride: 0,
            c_mstride: out_f,
            bias_on_n: true,
        },
        relu,
        x,
        w,
        bias,
        output,
    )
}

/// CPU reference (f64 accumulation): `weight` is `[out, in]`, `x` is `[batch, in]`.
pub fn reference(weight: &[f32], bias: &[f32], x: &[f32], batch: usize, relu: bool) -> Vec<f32> {
    let out_f = bias.len();
    let in_f = x.len().checked_div(batch).unwrap_or(0);
    let mut y = vec![0f32; batch * out_f];
    for b in 0..batch {
        for o in 0..out_f {
            let mut acc = bias[o] as f64;
            let w = &weight[o * in_f..(o + 1) * in_f];
            let xr = &x[b * in_f..(b + 1) * in_f];
            for i in 0..in_f {
                acc += w[i] as f64 * xr[i] as f64;
            }
            if relu {
                acc = acc.max(0.0);
            }
            y[b * out_f + o] = acc as f32;
        }
    }
    y
}
