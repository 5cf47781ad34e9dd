//! `coop.wgsl`: convolutions on tensor cores through WGSL cooperative matrices (16x16x16, f16
//! operands, f32 accumulation) as an f16 im2col + a GEMM whose workgroup is one subgroup
//! computing a 32 x 64 block, with bias, ReLU and the NCHW f32 store in its epilogue.
//!
//! [`Coop::Hardware`] runs the shader as written, where the adapter offers the 16x16x16
//! f16 -> f32 configuration ([`Coop::detect`]). [`Coop::Emulated`] runs the same shader with
//! its only cooperative-matrix section replaced by plain WGSL (`coop_emulated.wgsl`), on any
//! adapter with `SHADER_F16`: the selftest and the tests run it on lavapipe, so everything but
//! the hardware's tile product is proven where CI runs.

use std::sync::LazyLock;

use super::conv2d::{Conv2dShape, ConvGeometry};
use super::{Dispatch, Grid, Kernels};
use crate::error::{Error, Result};
use crate::gpu::{GpuContext, ShaderSource};

/// The shader as written (cooperative matrices).
pub const SOURCE: &str = include_str!("../../shaders/coop.wgsl");

/// The MMA section in plain WGSL.
const EMULATED_MMA: &str = include_str!("../../shaders/coop_emulated.wgsl");

/// Output channels per workgroup (the shader's `BM`).
pub const BM: usize = 32;
/// Output pixels per workgroup (the shader's `BN`).
pub const BN: usize = 64;

/// Halves per patch and weight row: K rounded up to the 16 of one tile step.
pub fn kp(shape: &Conv2dShape) -> usize {
    shape.k().div_ceil(16) * 16
}

/// Weight rows per group: the group's output channels rounded up to [`BM`].
pub fn m_pad(shape: &Conv2dShape) -> usize {
    (shape.out_c / shape.groups).div_ceil(BM) * BM
}

/// How the cooperative-matrix kernels run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Coop {
    /// On the adapter's cooperative matrices (tensor cores).
    Hardware,
    /// The same shader with the tile product in plain WGSL: for proving the rest on adapters
    /// without cooperative matrices (needs `SHADER_F16`).
    Emulated,
}

impl Coop {
    /// The shader module of this mode.
    pub fn source(self) -> ShaderSource {
        match self {
            Coop::Hardware => ShaderSource {
                file: "coop.wgsl",
                source: SOURCE,
            },
            Coop::Emulated => ShaderSource {
                file: "coop.wgsl[emulated]",
                source: &EMULATED,
            },
        }
    }

    /// The variant's name, for labels and reports.
    pub fn name(self) -> &'static str {
        match self {
            Coop::Hardware => "coop",
            Coop::Emulated => "coop-emulated",
        }
    }

    /// What `ctx` can run under its options: the hardware kernels where the device was opened
    /// with cooperative matrices and `SHADER_F16`, the adapter reports the 16x16x16
    /// f16 x f16 -> f32 configuration, and its subgroups are exactly 32 wide (the GEMM's
    /// workgroup is one subgroup); the emulation where asked for and `SHADER_F16` exists;
    /// else none.
    pub fn detect(ctx: &GpuContext) -> Option<Coop> {
        use crate::options::CoopMatrices;
        let f16 = ctx.features.contains(wgpu::Features::SHADER_F16);
        match ctx.options.coop {
            CoopMatrices::Off => None,
            CoopMatrices::Emulate => f16.then_some(Coop::Emulated),
            CoopMatrices::Auto => (f16 && hardware_ready(ctx)).then_some(Coop::Hardware),
        }
    }
}

/// Whether the device has what [`Coop::Hardware`] needs (see [`Coop::detect`]).
pub fn hardware_ready(ctx: &GpuContext) -> bool {
    let config = ctx.adapter.cooperative_matrix_properties().iter().any(|c| {
        (c.m_size, c.n_size, c.k_size) == (16, 16, 16)
            && c.ab_type == wgpu::CooperativeScalarType::F16
            && c.cr_type == wgpu::CooperativeScalarType::F32
    });
    ctx.features
        .contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX)
        && config
        && ctx.info.subgroup_min_size == 32
        && ctx.info.subgroup_max_size == 32
}

/// `coop.wgsl` with the section between its MMA markers replaced by `coop_emulated.wgsl` and
/// without the cooperative-matrix `enable`.
static EMULATED: LazyLock<&'static str> = LazyLock::new(|| {
    let begin = SOURCE
        .find("// MMA BEGIN")
        .expect("coop.wgsl has an MMA BEGIN marker");
    let end = SOURCE
        .find("// MMA END")
        .expect("coop.wgsl has an MMA END marker");
    let src = format!(
        "// Generated from coop.wgsl by kernels::coop (the MMA section emulated).\n{}{}{}",
        &SOURCE[..begin],
        EMULATED_MMA,
        &SOURCE[end..]
    )
    .replacen("enable wgpu_cooperative_matrix;\n", "", 1);
    // Once per process.
    Box::leak(src.into_boxed_str())
});

/// The emulated variant's source (tests translate it for every backend).
pub fn emulated_source() -> &'static str {
    &EMULATED
}

/// Mirrors `struct Params` in `coop.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)] // the fields are the shader's uniform block's, named as there
pub struct CoopParams {
    pub geometry: ConvGeometry,
    pub cin_g: u32,
    pub kp: u32,
    pub m: u32,
    pub m_pad: u32,
    pub n_start: u32,
    pub n_count: u32,
    pub n_pad: u32,
    pub relu: u32,
    pub _pad0: u32,
}

/// OIHW weights as the GEMM reads them: `[groups][m_pad][kp]` halves (round to nearest even,
/// saturating at +-65504 as the other f16 paths), rows past each group's channels and columns
/// past K zero, packed two per `u32` (element 2i in the low half). Done once, at upload.
pub fn weight_for_coop(shape: &Conv2dShape, weight: &[f32]) -> Vec<u32> {
    let (k, kp, m_pad) = (shape.k(), kp(shape), m_pad(shape));
    let cout_g = shape.out_c / shape.groups;
    assert_eq!(weight.len(), shape.out_c * k, "conv weight length");
    let mut halves = vec![0u16; shape.groups * m_pad * kp];
    for g in 0..shape.groups {
        for m in 0..cout_g {
            let src = &weight[(g * cout_g + m) * k..][..k];
            let dst = &mut halves[(g * m_pad + m) * kp..][..k];
            for (d, &v) in dst.iter_mut().zip(src) {
                *d = half::f16::from_f32(v.clamp(-65504.0, 65504.0)).to_bits();
            }
        }
    }
    halves
        .chunks(2)
        .map(|p| p[0] as u32 | (p[1] as u32) << 16)
        .collect()
}

/// 32-bit words [`weight_for_coop`] returns.
pub fn weight_words(shape: &Conv2dShape) -> usize {
    shape.groups * m_pad(shape) * kp(shape) / 2
}

/// 32-bit words of patch matrix for the whole batch at once (plans cap it; the GEMM then runs
/// in pixel chunks).
pub fn scratch_words(shape: &Conv2dShape) -> Result<usize> {
    let (oh, ow) = shape.out_hw()?;
    let pixels = (shape.batch * oh * ow).div_ceil(BN) * BN;
    Ok(shape.groups * pixels * kp(shape) / 2)
}

fn u(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Shape(format!("coop conv: {what} {v} over 2^32")))
}

/// The dispatches of one convolution: `weight` from [`weight_for_coop`], NCHW f32 `input` and
/// `output`, bias and ReLU fused; `scratch` holds the f16 patch matrix of as many pixels as fit
/// (whole multiples of [`BN`]; the pixels go in chunks, two dispatches each). `op` names the
/// dispatches (`conv2d`, or `dense` for a dense layer as a 1x1 convolution of 1x1 images).
#[allow(clippy::too_many_arguments)]
pub fn dispatch(
    ctx: &GpuContext,
    kernels: &Kernels,
    coop: Coop,
    op: &str,
    shape: &Conv2dShape,
    relu: bool,
    weight: &wgpu::Buffer,
    bias: &wgpu::Buffer,
    input: &wgpu::Buffer,
    output: &wgpu::Buffer,
    scratch: &wgpu::Buffer,
) -> Result<Vec<Dispatch>> {
    let (oh, ow) = shape.out_hw()?;
    let (kp, m_pad) = (kp(shape), m_pad(shape));
    let cout_g = shape.out_c / shape.groups;
    let pixels = shape.batch * oh * ow;
    // Halves the scratch holds, in whole blocks of BN patch rows of every group.
    let capacity = (scratch.size() as usize / 2) / (shape.groups * kp) / BN * BN;
    if capacity == 0 {
        return Err(Error::Shape(format!(
            "coop conv scratch of {} bytes cannot hold {BN} patch rows of {kp} halves",
            scratch.size()
        )));
    }
    // Halves in the whole input and scratch are indexed with u32 in the shader.
    u(
        shape.batch * shape.in_c * shape.in_h * shape.in_w,
        "input values",
    )?;
    u(
        shape.groups * capacity.min(pixels.div_ceil(BN) * BN) * kp,
        "patch halves",
    )?;
    let (im2col, gemm) = (
        kernels.get(coop.source(), "im2col"),
        kernels.get(coop.source(), "gemm"),
    );
    let mut out = Vec::new();
    let mut n_start = 0;
    while n_start < pixels {
        let n_count = capacity.min(pixels - n_start);
        let n_pad = n_count.div_ceil(BN) * BN;
        let params = CoopParams {
            geometry: shape.geometry()?,
            cin_g: u(shape.in_c / shape.groups, "channels")?,
            kp: u(kp, "K")?,
            m: u(cout_g, "channels")?,
            m_pad: u(m_pad, "channels")?,
            n_start: u(n_start, "pixels")?,
            n_count: u(n_count, "pixels")?,
            n_pad: u(n_pad, "pixels")?,
            relu: relu as u32,
            _pad0: 0,
        };
        out.push(Dispatch::new(
            ctx,
            &im2col,
            format!("{op}({} im2col)", coop.name()),
            &params,
            &[(1, input), (2, scratch)],
            Grid::Items(shape.groups * n_pad * kp),
        )?);
        let grid = Grid::Groups([n_pad / BN, m_pad / BM, shape.groups]);
        let bindings = [(2, scratch), (3, weight), (4, bias), (5, output)];
        let label = format!("{op}({})", coop.name());
        let d = Dispatch::new(ctx, &gemm, label, &params, &bindings, grid)?;
        out.push(d.with_flops(2.0 * (shape.out_c * n_count * shape.k()) as f64));
        n_start += n_count;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_padded_per_group_and_packed_low_half_first() {
        // 2 groups of 3 channels, K = 2 x 1 x 1 = 2: rows padded to 16 halves, 32 rows a group.
        let shape = Conv2dShape::square(1, 4, 3, 6, 1, 1, 0, 2);
        let w: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let packed = weight_for_coop(&shape, &w);
        assert_eq!(packed.len(), weight_words(&shape));
        assert_eq!((kp(&shape), m_pad(&shape)), (16, 32));
        let half = |i: usize| {
            let word = packed[i / 2];
            let bits = if i.is_multiple_of(2) {
                word & 0xffff
            } else {
                word >> 16
            };
            half::f16::from_bits(bits as u16).to_f32()
        };
        // Group 1, channel 2 (OIHW channel 5): values 10, 11 at row 32 + 2.
        assert_eq!((half((32 + 2) * 16), half((32 + 2) * 16 + 1)), (10.0, 11.0));
        assert_eq!((half(0), half(1), half(2)), (0.0, 1.0, 0.0));
        // Padding rows are zero.
        assert!((3 * 16..32 * 16).all(|i| half(i) == 0.0));
    }

    #[test]
    fn the_emulated_source_replaces_only_the_mma_section() {
        let e = emulated_source();
        assert!(!e.contains("coop_mat") && !e.contains("wgpu_cooperative_matrix"));
        assert!(e.contains("fn gemm(") && e.contains("fn im2col(") && e.contains("struct MatC"));
        assert!(SOURCE.contains("coopMultiplyAdd"));
    }
}
