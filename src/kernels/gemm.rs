//! `gemm.wgsl`: `C = A B^T` with K-contiguous operands read as vec4, register-tiled without
//! workgroup memory (the fast shape on CPU adapters such as lavapipe). Convolutions reach it
//! through `im2col.wgsl`, dense layers directly (their weights are already `[out, in]`).

use super::{check_groups, Dispatch, Kernels};
use crate::error::{Error, Result};
use crate::gpu::{uniform_buffer, GpuContext};

/// Mirrors `struct Params` in `gemm.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GemmParams {
    pub m: u32,
    pub n: u32,
    pub kv: u32,
    pub a_gstride: u32,
    pub b_gstride: u32,
    pub m_goff: u32,
    pub n_off: u32,
    pub hw: u32,
    pub c_bstride: u32,
    pub c_mstride: u32,
    pub bias_on_n: u32,
    pub relu: u32,
}

/// Invocations per workgroup and columns (n) per invocation in `gemm.wgsl`.
pub const WG: usize = 8;
pub const TN: usize = 4;
/// Rows (m) per invocation of the `main` entry point (`main_m1` does one).
pub const TM: usize = 4;

/// K rounded up to the vec4 loads of `gemm.wgsl`.
pub fn padded_k(k: usize) -> usize {
    k.div_ceil(4) * 4
}

/// Where the output goes (see `gemm.wgsl`): `c[(nn / hw) * c_bstride + mt * c_mstride + nn % hw]`.
#[derive(Clone, Copy, Debug)]
pub struct GemmOut {
    pub n_off: usize,
    pub hw: u32,
    pub c_bstride: usize,
    pub c_mstride: usize,
    pub bias_on_n: bool,
}

/// Binds one `C = A B^T` over `groups` z slices: A holds `groups * m` rows of `k` (a multiple
/// of 4) at vec4 stride `a_gstride` per group, B `groups * n` rows likewise.
#[allow(clippy::too_many_arguments)]
pub fn dispatch(
    ctx: &GpuContext,
    kernels: &Kernels,
    label: &str,
    (m, n, k, groups): (usize, usize, usize, usize),
    (a_gstride, b_gstride, m_goff): (usize, usize, usize),
    out: GemmOut,
    relu: bool,
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    bias: &wgpu::Buffer,
    c: &wgpu::Buffer,
) -> Result<Dispatch> {
    if k % 4 != 0 || m == 0 || n == 0 {
        return Err(Error::Shape(format!(
            "gemm needs K a multiple of 4 and non-empty operands (M {m}, N {n}, K {k})"
        )));
    }
    let u = |v: usize| -> Result<u32> {
        u32::try_from(v).map_err(|_| Error::Shape(format!("gemm index {v} does not fit in u32")))
    };
    let params = GemmParams {
        m: u(m)?,
        n: u(n)?,
        kv: u(k / 4)?,
        a_gstride: u(a_gstride)?,
        b_gstride: u(b_gstride)?,
        m_goff: u(m_goff)?,
        n_off: u(out.n_off)?,
        hw: out.hw,
        c_bstride: u(out.c_bstride)?,
        c_mstride: u(out.c_mstride)?,
        bias_on_n: out.bias_on_n as u32,
        relu: relu as u32,
    };
    // Matrix-vector products (one row of A) use the 1-row tile: no redundant loads of A.
    let (kernel, rows) = if m == 1 {
        (&kernels.gemm_m1, 1)
    } else {
        (&kernels.gemm, TM)
    };
    let workgroups = check_groups(ctx, "gemm", [m.div_ceil(rows), n.div_ceil(WG * TN), groups])?;
    let uniform = uniform_buffer(ctx, "gemm params", &params);
    let bind_group = kernel.bind(ctx, &uniform, &[a, b, bias, c]);
    Ok(Dispatch {
        label: label.into(),
        pipeline: kernel.pipeline.clone(),
        bind_group,
        workgroups,
        flops: 2.0 * (m * n * k * groups) as f64,
        _params: uniform,
    })
}
