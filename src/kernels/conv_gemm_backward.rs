//! A convolution's weight and input gradients as GEMMs on the forward pass's matmul
//! (`kernels::gemm::dispatch`, `gemm.wgsl`: `C = A B^T` with K-contiguous operands), with the
//! layout changes of `conv_gemm_backward.wgsl` around them:
//!
//! - weight gradient `dW = dY col^T` per group: A = dY as `[out_c][P]` (`dy_cn`), B = the patch
//!   matrix transposed, `[K][P]` (`im2col_t`), contracted over the P = batch x output pixels
//!   (padded to 4); chunks of K rows when the transposed patches pass the scratch cap;
//! - input gradient `dX = col2im(dY^T W)` per group: A = dY as `[P][cout_g]` (`dy_nc`), B = W
//!   as `[K][cout_g]` (`weight_t`, redone every step as W changes), contracted over the output
//!   channels (padded to 4), into `dcol` `[P][K]`, which `col2im` gathers back onto the input
//!   (no atomics); chunks of whole images.
//!
//! The GEMMs run on `gemm.wgsl` or, on the `Blocked` path, on grouped `mm.wgsl` tiles
//! ([`super::mm_grouped`], the weight gradient split over K = batch x pixels into the
//! scratch's partial sums, then one reduce): [`Kernels::conv_backward_route`] decides.
//!
//! The bias gradient stays `conv_backward.wgsl`'s `grad_bias` (a sum over pixels). The direct
//! loops of `conv_backward.rs` remain the reference-tested fallback (`ALEXNET_CONV_BACKWARD=direct`).

use super::conv2d::{Conv2dShape, ConvGeometry};
use super::gemm::{self, GemmDims, GemmOut};
use super::mm_grouped::{self, GroupedGemm};
use super::route::ConvBackwardRoute;
use super::{to_u32, Dispatch, Grid, Kernels, Precision};
use crate::error::{Error, Result};
use crate::gpu::{storage_buffer, GpuContext};

/// Mirrors `struct Params` in `conv_gemm_backward.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)] // the fields are the shader's uniform block's, named as there
pub struct ConvGemmParams {
    pub geo: ConvGeometry,
    pub p4: u32,
    pub co4: u32,
    pub k_start: u32,
    pub k_count: u32,
    pub img_start: u32,
    pub img_count: u32,
    pub w_row: u32,
    pub _pad: [u32; 2],
}

/// Each scratch matrix is capped like the forward im2col (then the work goes in chunks).
const SCRATCH_MAX_BYTES: u64 = 64 << 20;

fn pad4(v: usize) -> usize {
    v.div_ceil(4) * 4
}

struct Geometry {
    hw: usize,
    p4: usize,
    k: usize,
    cout_g: usize,
    co4: usize,
}

fn geometry(s: &Conv2dShape) -> Result<Geometry> {
    let (oh, ow) = s.out_hw()?;
    let cout_g = s.out_c / s.groups;
    Ok(Geometry {
        hw: oh * ow,
        p4: pad4(s.batch * oh * ow),
        k: s.k(),
        cout_g,
        co4: pad4(cout_g),
    })
}

/// Scratch buffers shared by the backward passes of several convolutions (one at a time).
pub struct ConvGemmScratch {
    dy_t: wgpu::Buffer,
    col_t: wgpu::Buffer,
    dy_n: wgpu::Buffer,
    w_t: wgpu::Buffer,
    dcol: wgpu::Buffer,
    zeros: wgpu::Buffer,
    /// Split-K partial sums of the `mm.wgsl` route ([`ConvGemmScratch::with_mm_part`]).
    part: Option<wgpu::Buffer>,
    /// f32 capacity of `col_t`, `dy_n` and `dcol`.
    cap: usize,
}

impl ConvGemmScratch {
    /// Big enough for every shape of `shapes` (at the largest batch they will run).
    pub fn new(ctx: &GpuContext, shapes: &[Conv2dShape]) -> Result<Self> {
        Self::with_cap(
            ctx,
            shapes,
            (ctx.max_binding().min(SCRATCH_MAX_BYTES) / 4) as usize,
        )
    }

    /// As [`ConvGemmScratch::new`] with the chunked matrices capped at `cap` f32 values (tests
    /// force chunking with it).
    pub fn with_cap(ctx: &GpuContext, shapes: &[Conv2dShape], cap: usize) -> Result<Self> {
        let hint = "use a smaller batch";
        let (mut dy_t, mut col_t, mut dy_n, mut w_t, mut dcol, mut zeros) = (1, 1, 1, 1, 1, 1);
        for s in shapes {
            let g = geometry(s)?;
            dy_t = dy_t.max(s.out_c * g.p4);
            col_t = col_t.max((s.groups * g.k * g.p4).min(cap));
            dy_n = dy_n.max((s.groups * s.batch * g.hw * g.co4).min(cap));
            w_t = w_t.max(s.groups * g.k * g.co4);
            dcol = dcol.max((s.groups * s.batch * g.hw * g.k).min(cap));
            zeros = zeros.max(g.k.max(s.out_c));
        }
        Ok(ConvGemmScratch {
            dy_t: storage_buffer(ctx, "conv backward dY^T", dy_t, hint)?,
            col_t: storage_buffer(ctx, "conv backward col^T", col_t, hint)?,
            dy_n: storage_buffer(ctx, "conv backward dY rows", dy_n, hint)?,
            w_t: storage_buffer(ctx, "conv backward W^T", w_t, hint)?,
            dcol: storage_buffer(ctx, "conv backward dcol", dcol, hint)?,
            zeros: storage_buffer(ctx, "zeros", zeros, hint)?,
            part: None,
            cap,
        })
    }

    /// With room for the split-K partial sums of the weight gradients `fk` runs on
    /// `mm.wgsl` tiles for `shapes` (capped like the other matrices: a split then takes the
    /// slices it holds); unchanged where none does.
    pub fn with_mm_part(
        mut self,
        ctx: &GpuContext,
        fk: &Kernels,
        shapes: &[Conv2dShape],
    ) -> Result<Self> {
        let mut words = 0;
        for s in shapes {
            if let ConvBackwardRoute::Mm { wgrad, .. } = fk.conv_backward_route(s)? {
                let g = geometry(s)?;
                let rows = (self.cap / (s.groups * g.p4)).clamp(1, g.k);
                let gg = wgrad_gemm(s, &g, 0, rows, g.k);
                let split = mm_grouped::split_heuristic(wgrad, &gg);
                words = words.max(mm_grouped::part_words(wgrad, &gg, split).min(self.cap));
            }
        }
        if words > 0 {
            let hint = "use a smaller batch";
            self.part = Some(storage_buffer(ctx, "conv backward split-K", words, hint)?);
        }
        Ok(self)
    }
}

/// The weight gradient's GEMM for K rows `k_start..k_start + k_count`: A = the transposed
/// patches `[g][k_count][p4]`, B = dY `[out_c][p4]`, C = dW OIHW with rows `w_row` apart.
fn wgrad_gemm(
    s: &Conv2dShape,
    g: &Geometry,
    k_start: usize,
    k_count: usize,
    w_row: usize,
) -> GroupedGemm {
    GroupedGemm {
        m: k_count,
        n: g.cout_g,
        k: g.p4,
        groups: s.groups,
        a_gstride: k_count * g.p4,
        b_gstride: g.cout_g * g.p4,
        c_row: w_row,
        c_off: k_start,
        c_gstride: g.cout_g * w_row,
    }
}

fn params(s: &Conv2dShape, g: &Geometry, w_row: usize) -> Result<ConvGemmParams> {
    if w_row < g.k {
        return Err(Error::Shape(format!(
            "conv weight rows of {w_row} values for K = {}",
            g.k
        )));
    }
    Ok(ConvGemmParams {
        geo: s.geometry()?,
        p4: to_u32("padded pixels", g.p4)?,
        co4: to_u32("padded output channels", g.co4)?,
        w_row: to_u32("weight row", w_row)?,
        ..Default::default()
    })
}

fn glue(
    ctx: &GpuContext,
    tk: &Kernels,
    entry: &'static str,
    p: &ConvGemmParams,
    total: usize,
    src: &wgpu::Buffer,
    dst: &wgpu::Buffer,
) -> Result<Dispatch> {
    let kernel = tk.conv_gemm_glue(entry);
    let label = format!("conv backward {entry}");
    Dispatch::new(ctx, &kernel, label, p, &[src, dst], Grid::Items(total))
}

/// `dw` (OIHW with rows `w_row` >= K values apart, written; values past K in a row are left
/// alone) of `shape` from the layer input `x` and `dy`, on the GEMM
/// [`Kernels::conv_backward_route`] picks for `fk`.
#[allow(clippy::too_many_arguments)]
pub fn grad_weight(
    ctx: &GpuContext,
    tk: &Kernels,
    fk: &Kernels,
    shape: &Conv2dShape,
    x: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    (dw, w_row): (&wgpu::Buffer, usize),
    scratch: &ConvGemmScratch,
) -> Result<Vec<Dispatch>> {
    let g = geometry(shape)?;
    let groups = shape.groups;
    let mut p = params(shape, &g, w_row)?;
    let route = fk.conv_backward_route(shape)?;
    let rows = scratch.cap / (groups * g.p4);
    if rows == 0 || scratch.dy_t.size() < (shape.out_c * g.p4 * 4) as u64 {
        return Err(Error::Shape(format!(
            "conv weight gradient: {} pixels do not fit the scratch buffers: use a smaller batch",
            g.p4
        )));
    }
    let mut out = vec![glue(
        ctx,
        tk,
        "dy_cn",
        &p,
        shape.out_c * g.p4,
        dy,
        &scratch.dy_t,
    )?];
    let mut k_start = 0;
    while k_start < g.k {
        let k_count = rows.min(g.k - k_start);
        p.k_start = to_u32("k start", k_start)?;
        p.k_count = to_u32("k count", k_count)?;
        out.push(glue(
            ctx,
            tk,
            "im2col_t",
            &p,
            groups * k_count * g.p4,
            x,
            &scratch.col_t,
        )?);
        if let ConvBackwardRoute::Mm { wgrad, .. } = route {
            let gg = wgrad_gemm(shape, &g, k_start, k_count, w_row);
            out.extend(mm_grouped::dispatch(
                ctx,
                fk,
                wgrad,
                mm_grouped::split_heuristic(wgrad, &gg),
                &gg,
                "conv grad weight",
                (&scratch.col_t, &scratch.dy_t, dw),
                scratch.part.as_ref(),
            )?);
        } else {
            let mut d = gemm::dispatch(
                ctx,
                fk,
                Precision::F32,
                "conv grad weight (gemm)",
                &GemmDims::grouped(g.cout_g, k_count, g.p4, groups, 4),
                GemmOut {
                    n_off: k_start,
                    hw: u32::MAX,
                    c_bstride: 0,
                    c_mstride: w_row,
                    bias_on_n: false,
                },
                false,
                &scratch.dy_t,
                &scratch.col_t,
                &scratch.zeros,
                dw,
            )?;
            d.flops = 2.0 * (shape.out_c * k_count * shape.batch * g.hw) as f64;
            out.push(d);
        }
        k_start += k_count;
    }
    Ok(out)
}

/// `dx` (NCHW, written) of `shape` from the OIHW weights `w` (rows `w_row` >= K values
/// apart) and `dy`, on the GEMM [`Kernels::conv_backward_route`] picks for `fk`.
#[allow(clippy::too_many_arguments)]
pub fn grad_input(
    ctx: &GpuContext,
    tk: &Kernels,
    fk: &Kernels,
    shape: &Conv2dShape,
    (w, w_row): (&wgpu::Buffer, usize),
    dy: &wgpu::Buffer,
    dx: &wgpu::Buffer,
    scratch: &ConvGemmScratch,
) -> Result<Vec<Dispatch>> {
    let g = geometry(shape)?;
    let groups = shape.groups;
    let mut p = params(shape, &g, w_row)?;
    let route = fk.conv_backward_route(shape)?;
    let per_image = groups * g.hw * g.k.max(g.co4);
    let images = scratch.cap / per_image;
    if images == 0 || scratch.w_t.size() < (groups * g.k * g.co4 * 4) as u64 {
        return Err(Error::Shape(format!(
            "conv input gradient: one image ({per_image} values) does not fit the scratch buffers"
        )));
    }
    let mut out = vec![glue(
        ctx,
        tk,
        "weight_t",
        &p,
        groups * g.k * g.co4,
        w,
        &scratch.w_t,
    )?];
    let mut img_start = 0;
    while img_start < shape.batch {
        let img_count = images.min(shape.batch - img_start);
        let nc = img_count * g.hw;
        p.img_start = to_u32("img start", img_start)?;
        p.img_count = to_u32("img count", img_count)?;
        out.push(glue(
            ctx,
            tk,
            "dy_nc",
            &p,
            groups * nc * g.co4,
            dy,
            &scratch.dy_n,
        )?);
        if let ConvBackwardRoute::Mm { igrad, .. } = route {
            let gg = GroupedGemm {
                m: g.k,
                n: nc,
                k: g.co4,
                groups,
                a_gstride: g.k * g.co4,
                b_gstride: nc * g.co4,
                c_row: g.k,
                c_off: 0,
                c_gstride: nc * g.k,
            };
            out.extend(mm_grouped::dispatch(
                ctx,
                fk,
                igrad,
                1,
                &gg,
                "conv grad input",
                (&scratch.w_t, &scratch.dy_n, &scratch.dcol),
                None,
            )?);
        } else {
            let mut d = gemm::dispatch(
                ctx,
                fk,
                Precision::F32,
                "conv grad input (gemm)",
                &GemmDims::grouped(nc, g.k, g.co4, groups, 4),
                GemmOut {
                    n_off: 0,
                    hw: u32::MAX,
                    c_bstride: 0,
                    c_mstride: g.k,
                    bias_on_n: true,
                },
                false,
                &scratch.dy_n,
                &scratch.w_t,
                &scratch.zeros,
                &scratch.dcol,
            )?;
            d.flops = 2.0 * (groups * nc * g.k * g.cout_g) as f64;
            out.push(d);
        }
        out.push(glue(
            ctx,
            tk,
            "col2im",
            &p,
            img_count * shape.in_c * shape.in_h * shape.in_w,
            &scratch.dcol,
            dx,
        )?);
        img_start += img_count;
    }
    Ok(out)
}
