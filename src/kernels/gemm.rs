//! `gemm.wgsl`: `C = A B^T` with K-contiguous operands read as vec4, register-tiled without
//! workgroup memory (the fast shape on CPU adapters such as lavapipe). Convolutions reach it
//! through `im2col.wgsl`, dense layers directly (their weights are already `[out, in]`).

use super::{to_u32, Dispatch, Grid, Kernel, Kernels, Precision};
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::options::F16Loads;

/// Mirrors `struct Params` in `gemm.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)] // the fields are the shader's uniform block's, named as there
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

/// Where the output goes (see `gemm.wgsl`): `c[(nn / hw) * c_bstride + mt * c_mstride + nn % hw]`.
#[derive(Clone, Copy, Debug)]
pub struct GemmOut {
    /// Column offset of the output.
    pub n_off: usize,
    /// Output columns per image plane (the output's H x W).
    pub hw: u32,
    /// Output stride between images.
    pub c_bstride: usize,
    /// Output stride between rows.
    pub c_mstride: usize,
    /// The bias is per column (dense layers) instead of per row (convolutions).
    pub bias_on_n: bool,
}

/// `rows` rows of `k` values as `gemm_f16.wgsl` reads them: each rounded to f16 (nearest even),
/// zero-padded to `Precision::F16.pad_k(k)` and packed two per `u32`: word `4i + j` holds k = `8i + j` in its
/// low 16 bits and `8i + 4 + j` in its high ones (j < 4). Done once, at upload.
pub fn pack_f16_rows(data: &[f32], rows: usize, k: usize) -> Vec<u32> {
    assert_eq!(
        data.len(),
        rows * k,
        "pack_f16_rows: data does not match its shape"
    );
    let words = Precision::F16.words(Precision::F16.pad_k(k));
    let mut out = vec![0u32; rows * words];
    if k == 0 {
        return out;
    }
    let h = |v: f32| half::f16::from_f32(v).to_bits() as u32;
    let at = |src: &[f32], i: usize| src.get(i).map_or(0, |&v| h(v));
    for (dst, src) in out.chunks_exact_mut(words).zip(data.chunks_exact(k)) {
        for (w, word) in dst.iter_mut().enumerate() {
            let k0 = 8 * (w / 4) + w % 4;
            *word = at(src, k0) | (at(src, k0 + 4) << 16);
        }
    }
    out
}

/// The values [`pack_f16_rows`] stores, back in f32 without the padding (for CPU references).
pub fn round_f16(data: &[f32]) -> Vec<f32> {
    data.iter()
        .map(|&v| half::f16::from_f32(v).to_f32())
        .collect()
}

/// The sizes of one `C = A B^T` dispatch over `groups` z slices: A holds `groups * m` rows of
/// `k`, group g's starting `g * a_gstride` vector loads in, B `groups * n` rows likewise
/// (`b_gstride`), and group g writes C's rows from `g * m_goff`. Strides count vector loads
/// (`vec4<f32>`, or `vec4<u32>` = eight packed halves for [`Precision::F16`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmDims {
    /// Rows of A and C.
    pub m: usize,
    /// Columns of B and C.
    pub n: usize,
    /// The inner dimension.
    pub k: usize,
    /// Independent groups (grouped convolutions).
    pub groups: usize,
    /// A's stride between groups.
    pub a_gstride: usize,
    /// B's stride between groups.
    pub b_gstride: usize,
    /// C's row offset between groups.
    pub m_goff: usize,
}

impl GemmDims {
    /// One product (one group): `[m, k] x [n, k]^T`.
    pub fn single(m: usize, n: usize, k: usize) -> Self {
        GemmDims {
            m,
            n,
            k,
            groups: 1,
            a_gstride: 0,
            b_gstride: 0,
            m_goff: 0,
        }
    }

    /// `groups` products packed back to back: A's groups `m * k` floats apart, B's `n * k`, C's
    /// rows `m` apart (grouped convolutions); `per_vec` floats per vector load.
    pub fn grouped(m: usize, n: usize, k: usize, groups: usize, per_vec: usize) -> Self {
        GemmDims {
            m,
            n,
            k,
            groups,
            a_gstride: m * k / per_vec,
            b_gstride: n * k / per_vec,
            m_goff: m,
        }
    }
}

/// Binds one `C = A B^T` of `dims`. `k` is a multiple of `precision.per_vec()` (operands of
/// [`Precision::F16`] in the [`pack_f16_rows`] layout).
#[allow(clippy::too_many_arguments)]
pub fn dispatch(
    ctx: &GpuContext,
    kernels: &Kernels,
    precision: Precision,
    label: &str,
    dims: &GemmDims,
    out: GemmOut,
    relu: bool,
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    bias: &wgpu::Buffer,
    c: &wgpu::Buffer,
) -> Result<Dispatch> {
    let (main, main_m1) = match precision {
        Precision::F32 => (kernels.gemm(), kernels.gemm_m1()),
        Precision::F16 if kernels.native_f16 => (
            kernels.get(native_f16_source(), "main"),
            kernels.get(native_f16_source(), "main_m1"),
        ),
        Precision::F16 => (kernels.gemm_f16(), kernels.gemm_f16_m1()),
    };
    let pair = (&*main, &*main_m1);
    dispatch_on(
        ctx,
        pair,
        precision.per_vec(),
        label,
        dims,
        out,
        relu,
        a,
        b,
        bias,
        c,
    )
}

/// Whether f16 GEMMs use [`native_f16_source`] (the default of [`Kernels::native_f16`]): the
/// adapter has `SHADER_F16` (requested by `GpuContext::new` when offered) and is not a CPU
/// adapter, unless the runtime options say `portable` or `native` (A/B runs, tests). On lavapipe,
/// which offers the feature, the native loads were 1.4-1.5x slower than the portable bit
/// operations for the whole network (`bench --precision f16`, two alternating rounds: batch 1
/// 529 / 478 ms native vs 342 / 354 ms portable, batch 8 3568 / 3337 vs 2372 / 2274 ms):
/// llvmpipe widens each half lane by lane. GPUs load halves natively.
pub fn native_f16(ctx: &GpuContext) -> bool {
    let has = ctx.features.contains(wgpu::Features::SHADER_F16);
    match ctx.options.f16_loads {
        F16Loads::Portable => false,
        F16Loads::Native => has,
        F16Loads::Auto => has && ctx.info.device_type != wgpu::DeviceType::Cpu,
    }
}

/// `per_vec`: values of K per vector load (4 for `gemm.wgsl`, 8 for `gemm_f16.wgsl`).
#[allow(clippy::too_many_arguments)]
fn dispatch_on(
    ctx: &GpuContext,
    (main, main_m1): (&Kernel, &Kernel),
    per_vec: usize,
    label: &str,
    dims: &GemmDims,
    out: GemmOut,
    relu: bool,
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    bias: &wgpu::Buffer,
    c: &wgpu::Buffer,
) -> Result<Dispatch> {
    let GemmDims {
        m,
        n,
        k,
        groups,
        a_gstride,
        b_gstride,
        m_goff,
    } = *dims;
    if k % per_vec != 0 || m == 0 || n == 0 {
        return Err(Error::Shape(format!(
            "gemm needs K a multiple of {per_vec} and non-empty operands (M {m}, N {n}, K {k})"
        )));
    }
    let u = |v: usize| to_u32("gemm index", v);
    let params = GemmParams {
        m: u(m)?,
        n: u(n)?,
        kv: u(k / per_vec)?,
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
    // Tile sizes from the shader: `WG` invocations of `TN` columns each, `TM` rows per
    // invocation of `main` (`main_m1` does one).
    let (kernel, rows) = if m == 1 {
        (main_m1, 1)
    } else {
        (main, main.constant("TM") as usize)
    };
    let cols = (kernel.workgroup_size[0] * kernel.constant("TN")) as usize;
    let grid = Grid::Groups([m.div_ceil(rows), n.div_ceil(cols), groups]);
    Ok(
        Dispatch::new(ctx, kernel, label, &params, &[a, b, bias, c], grid)?
            .with_flops(2.0 * (m * n * k * groups) as f64),
    )
}

/// `gemm_f16.wgsl` with native f16 loads (`enable f16;`, operands bound as `array<vec4<f16>>`)
/// for adapters with `Features::SHADER_F16`, made from the portable source so the two cannot
/// drift apart. Same packed layout, bound as halves: `vec4<f16>` `2i` of a row holds
/// k = 8i + (0, 4, 1, 5) and `2i + 1` k = 8i + (2, 6, 3, 7), the same permutation in A and B,
/// so the two 4-wide dots of each group of 8 still sum the right products. Converted to f32 on
/// load and accumulated in f32 (as the portable kernel: same rounding of the stored values,
/// only the summation order differs within each group of 8).
pub fn native_f16_source() -> crate::gpu::ShaderSource {
    static SRC: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    let source = SRC.get_or_init(|| {
        let portable = super::shader("gemm_f16.wgsl").source;
        Box::leak(native_from_portable(portable).into_boxed_str())
    });
    crate::gpu::ShaderSource {
        file: "gemm_f16.wgsl[native]",
        source,
    }
}

fn native_from_portable(src: &str) -> String {
    let mut out = String::from(
        "// Generated from gemm_f16.wgsl by kernels::gemm::native_f16_source (native f16 loads).\n\
         enable f16;\n",
    );
    let mut skipping = false;
    for line in src.lines() {
        let t = line.trim();
        // The bit-operation converters give way to native loads.
        if t.starts_with("const HALF_TO_FLOAT") {
            skipping = true;
            out.push_str(
                "fn lo_a(i: u32) -> vec4<f32> {\n    return vec4<f32>(a[2u * i]);\n}\n\n\
                 fn hi_a(i: u32) -> vec4<f32> {\n    return vec4<f32>(a[2u * i + 1u]);\n}\n\n\
                 fn lo_b(i: u32) -> vec4<f32> {\n    return vec4<f32>(b[2u * i]);\n}\n\n\
                 fn hi_b(i: u32) -> vec4<f32> {\n    return vec4<f32>(b[2u * i + 1u]);\n}\n\n",
            );
        }
        if skipping {
            if t.starts_with("fn dot8") {
                skipping = false;
            } else {
                continue;
            }
        }
        let mut l = line
            .replace("array<vec4<u32>>", "array<vec4<f16>>")
            .replace("lo(x", "lo_b(x")
            .replace("hi(x", "hi_b(x")
            .replace("lo(w", "lo_a(w")
            .replace("hi(w", "hi_a(w");
        // `let x0 = b[i];` / `let w0 = a[i];` keep the index; the loads happen in lo_*/hi_*.
        if (t.starts_with("let x") && t.contains("= b["))
            || (t.starts_with("let w") && t.contains("= a["))
        {
            l = l
                .replacen("= b[", "= ", 1)
                .replacen("= a[", "= ", 1)
                .replacen("];", ";", 1);
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}
