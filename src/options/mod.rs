//! Runtime options: every choice that changes which kernels run or how the device is opened,
//! as one value carried by the GPU context (`gpu::GpuContext`). The library reads no
//! environment variable: the binary maps its flags (and their `ALEXNET_*` twins) onto this
//! value, and library users set its fields.
//!
//! Every option parses from the strings the CLI accepts (`FromStr`), and an unknown value is
//! refused with the accepted list, never silently ignored.

use std::fmt;
use std::str::FromStr;

pub mod matmul;
pub mod tuned;

pub use matmul::{DenseKind, Force, MatmulPath, Tile, TILES};
pub use tuned::Tuned;

/// Which device limits are requested.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LimitsProfile {
    /// Everything the adapter offers (AlexNet's fc6 alone is 144 MiB: real limits let it bind
    /// whole).
    #[default]
    Adapter,
    /// Exactly WebGPU's baseline, `wgpu::Limits::default()` (8 storage buffers per stage,
    /// 16 KiB of workgroup memory, 256 invocations per workgroup, 128 MiB per storage binding,
    /// 256 MiB per buffer): what every conforming adapter guarantees, so a run that passes
    /// here uses nothing a particular driver happens to allow.
    WebGpu,
}

impl LimitsProfile {
    /// The accepted names, for messages.
    pub const ACCEPTED: &'static str = "adapter, webgpu";

    /// The limits to request from an adapter that offers `adapter`.
    pub fn limits(self, adapter: &wgpu::Limits) -> wgpu::Limits {
        match self {
            LimitsProfile::Adapter => adapter.clone(),
            LimitsProfile::WebGpu => wgpu::Limits::default(),
        }
    }

    /// The profile's name ("adapter", "webgpu").
    pub fn name(self) -> &'static str {
        match self {
            LimitsProfile::Adapter => "adapter",
            LimitsProfile::WebGpu => "webgpu",
        }
    }
}

/// How f16 GEMMs load their halves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum F16Loads {
    /// Native `enable f16;` loads on GPU adapters that offer `SHADER_F16`; the portable bit
    /// operations on CPU adapters (on lavapipe the native loads were 1.4-1.5x slower).
    #[default]
    Auto,
    /// Native loads wherever the adapter has `SHADER_F16` (else portable).
    Native,
    /// Pairs of halves in `u32`, unpacked with integer bit operations, on every adapter.
    Portable,
}

impl F16Loads {
    /// The accepted names, for messages.
    pub const ACCEPTED: &'static str = "auto, native, portable";
}

/// How trained convolutions compute their gradients.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConvBackward {
    /// As GEMMs (`conv_gemm_backward.wgsl`): the fast path.
    #[default]
    Gemm,
    /// The direct loops of `conv_backward.wgsl` (the reference-tested fallback).
    Direct,
}

impl ConvBackward {
    /// The accepted names, for messages.
    pub const ACCEPTED: &'static str = "gemm, direct";
}

/// Whether f16 convolutions run on cooperative matrices (tensor cores).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CoopMatrices {
    /// Where the adapter offers them (16x16x16, f16 x f16 -> f32, subgroups of 32): the
    /// device is opened with wgpu's experimental cooperative-matrix feature, and
    /// `Precision::F16` convolutions run `coop.wgsl`.
    #[default]
    Auto,
    /// Never: the device is opened without the feature (an A/B baseline on the same card).
    Off,
    /// `coop.wgsl` with its tile product in plain WGSL, on any adapter with `SHADER_F16`
    /// (proves the kernel's staging and epilogue where no tensor cores exist; slow).
    Emulate,
}

impl CoopMatrices {
    /// The accepted names, for messages.
    pub const ACCEPTED: &'static str = "auto, off, emulate";
}

impl FromStr for CoopMatrices {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(CoopMatrices::Auto),
            "off" => Ok(CoopMatrices::Off),
            "emulate" => Ok(CoopMatrices::Emulate),
            _ => Err(refuse("cooperative-matrix mode", s, Self::ACCEPTED)),
        }
    }
}

/// Everything that chooses kernels or configures the device, with the CLI's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// The matmul path; `None`: the adapter's default ([`MatmulPath::default_for`]).
    pub matmul: Option<MatmulPath>,
    /// How f16 GEMMs load halves.
    pub f16_loads: F16Loads,
    /// How trained convolutions compute gradients.
    pub conv_backward: ConvBackward,
    /// Cooperative matrices for f16 convolutions.
    pub coop: CoopMatrices,
    /// Keep naga's bounds checks and workgroup-memory zeroing in every shader (debugging a
    /// kernel). `validate: true` turns them on whatever this field says: the value in force is
    /// the method [`RuntimeOptions::shader_checks`], not this field.
    pub shader_checks: bool,
    /// Which limits to request.
    pub limits: LimitsProfile,
    /// Validation mode: wgpu's validation, the Khronos Vulkan validation layer when installed,
    /// shader bounds checks; any validation error fails the next read-back (and the call).
    pub validate: bool,
}

impl RuntimeOptions {
    /// Whether shaders keep their runtime bounds checks: the `shader_checks` field, or on
    /// under `validate`.
    pub fn shader_checks(&self) -> bool {
        self.shader_checks || self.validate
    }
}

fn refuse(what: &str, value: &str, accepted: &str) -> String {
    format!("unknown {what} {value:?} (accepted: {accepted})")
}

impl FromStr for LimitsProfile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "adapter" => Ok(LimitsProfile::Adapter),
            "webgpu" => Ok(LimitsProfile::WebGpu),
            _ => Err(refuse("limits", s, Self::ACCEPTED)),
        }
    }
}

impl fmt::Display for LimitsProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for F16Loads {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(F16Loads::Auto),
            "native" => Ok(F16Loads::Native),
            "portable" => Ok(F16Loads::Portable),
            _ => Err(refuse("f16 load mode", s, Self::ACCEPTED)),
        }
    }
}

impl FromStr for ConvBackward {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "gemm" => Ok(ConvBackward::Gemm),
            "direct" => Ok(ConvBackward::Direct),
            _ => Err(refuse("conv backward", s, Self::ACCEPTED)),
        }
    }
}

/// A strict boolean for switches set through the environment: `1/true/on/yes` and
/// `0/false/off/no` (and empty: off); anything else is refused, never read as "on".
pub fn parse_switch(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" => Ok(true),
        "" | "0" | "false" | "off" | "no" => Ok(false),
        _ => Err(refuse(
            "switch value",
            s,
            "1, true, on, yes, 0, false, off, no",
        )),
    }
}
