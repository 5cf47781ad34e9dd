//! A convolution through a materialised patch matrix on an `mm.wgsl` tile
//! ([`super::route::ConvRoute::MmIm2col`], the `-im2col` variants): `im2col_coalesced.wgsl`
//! writes the `[group][pixel][kp]` patch matrix with lanes along K (coalesced stores, reads
//! along input rows), then `mm.wgsl`'s `conv_im2col` entry multiplies it with the padded weight
//! rows ([`super::conv2d::weight_for_gemm`]) in the dense entry's loop (whole vec4 loads of B,
//! no gather) and stores bias + ReLU in NCHW. In pixel chunks when the scratch is smaller than
//! the whole batch's matrix, like [`super::conv2d::dispatch_gemm`].
//!
//! Why a candidate: on an H200 the dense entry ran fc6 at 37.8 TFLOP/s and the conv entry, on
//! the same tiles, 1.1-2.2 (docs/gpu-runs/2026-12-04-h200). This route pays for the dense loop
//! with the patch matrix's bytes; see [`super::mm::conv_heuristic`] for the counts.

use super::conv2d::{Conv2dShape, Im2colParams};
use super::mm::{self, MmParams, Tile};
use super::{to_u32, Dispatch, Grid, Kernels};
use crate::error::{Error, Result};
use crate::gpu::{upload, GpuContext};

/// 32-bit words of the whole batch's patch matrix: `groups * pixels` rows of `kp` values (the
/// same matrix as the `Im2col` route's f32 one).
pub fn scratch_words(shape: &Conv2dShape) -> Result<usize> {
    shape.im2col_words(super::Precision::F32)
}

/// Binds one convolution on `tile` through the coalesced im2col: `weight` in the
/// [`super::conv2d::weight_for_gemm`] layout, NCHW `input` and `output`, `scratch` any size
/// from one patch row (`groups * kp` words) up; pixels go in as many chunks as it needs, two
/// dispatches each (the gather table is uploaded once here, a few KiB, and kept alive by the
/// bind groups).
#[allow(clippy::too_many_arguments)]
pub fn dispatch(
    ctx: &GpuContext,
    kernels: &Kernels,
    tile: Tile,
    shape: &Conv2dShape,
    relu: bool,
    weight: &wgpu::Buffer,
    bias: &wgpu::Buffer,
    input: &wgpu::Buffer,
    output: &wgpu::Buffer,
    scratch: &wgpu::Buffer,
) -> Result<Vec<Dispatch>> {
    let (oh, ow) = shape.out_hw()?;
    mm::check_gather(shape)?;
    let (groups, kp) = (shape.groups, shape.kp());
    let (cout_g, pixels, kv) = (shape.out_c / groups, shape.batch * oh * ow, kp / 4);
    let row_words = groups * kp;
    // Rows the scratch holds, and no more columns than one dispatch's x dimension of tiles.
    let max_x = ctx.limits.max_compute_workgroups_per_dimension as usize;
    let capacity = (scratch.size() as usize / 4 / row_words).min(max_x * tile.bn as usize);
    if capacity == 0 {
        return Err(Error::Shape(format!(
            "im2col scratch of {} bytes cannot hold one patch row of {row_words} words",
            scratch.size()
        )));
    }
    let table = upload(ctx, "im2col gather table", &mm::conv_table(shape))?;
    let geo = shape.geometry()?;
    let im2col = kernels.im2col_coalesced();
    let gemm = kernels.mm(tile, "conv_im2col");
    let name = mm::ConvKind::im2col(tile).name();
    let mut out = Vec::new();
    let mut n_start = 0;
    while n_start < pixels {
        let n_count = capacity.min(pixels - n_start);
        let params = Im2colParams {
            geo,
            cin_g: to_u32("input channels per group", shape.in_c / groups)?,
            kp: to_u32("patch row length", kp)?,
            n_start: to_u32("first pixel", n_start)?,
            n_count: to_u32("pixels", n_count)?,
            _pad: 0,
        };
        let bindings = [(1, input), (2, scratch), (3, &table)];
        out.push(Dispatch::new(
            ctx,
            &im2col,
            "conv2d(im2col coalesced)",
            &params,
            &bindings,
            Grid::FoldedGroups(groups * n_count),
        )?);
        let params = MmParams {
            m: to_u32("output channels per group", cout_g)?,
            n: to_u32("pixels", n_count)?,
            kv: to_u32("patch row vec4", kv)?,
            kvz: to_u32("patch row vec4", kv)?,
            a_gstride: to_u32("weight group stride", cout_g * kv)?,
            relu: relu as u32,
            out_c: geo.out_c,
            out_hw: to_u32("output pixels", oh * ow)?,
            out_w: geo.out_w,
            splits: 1,
            b_gstride: to_u32("patch group stride", n_count * kv)?,
            n_off: to_u32("first pixel", n_start)?,
            ..Default::default()
        };
        let bindings = [(1, weight), (2, bias), (3, output), (6, scratch)];
        let grid = Grid::Groups([
            n_count.div_ceil(tile.bn as usize),
            cout_g.div_ceil(tile.bm as usize),
            groups,
        ]);
        let label = format!("conv2d(mm {name})");
        let d = Dispatch::new(ctx, &gemm, label, &params, &bindings, grid)?;
        out.push(d.with_flops(2.0 * (shape.out_c * n_count * shape.k()) as f64));
        n_start += n_count;
    }
    Ok(out)
}
