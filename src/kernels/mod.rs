//! One module per WGSL kernel: its params struct (mirrored by the shader's uniform struct), a
//! thin host-side `dispatch` that binds buffers, and the plain CPU reference it is tested against.

pub mod adaptive_avg_pool;
pub mod conv2d;
pub mod dense;
pub mod gemm;
pub mod lrn;
pub mod max_pool;
pub mod relu;
pub mod softmax;

use crate::error::{Error, Result};
use crate::gpu::GpuContext;

/// Every shader of the forward pass, by file name, for validation and for building pipelines.
pub const SHADERS: &[(&str, &str)] = &[
    ("conv2d.wgsl", include_str!("../../shaders/conv2d.wgsl")),
    ("dense.wgsl", include_str!("../../shaders/dense.wgsl")),
    ("gemm.wgsl", include_str!("../../shaders/gemm.wgsl")),
    ("im2col.wgsl", include_str!("../../shaders/im2col.wgsl")),
    ("gemm_f16.wgsl", include_str!("../../shaders/gemm_f16.wgsl")),
    (
        "im2col_f16.wgsl",
        include_str!("../../shaders/im2col_f16.wgsl"),
    ),
    ("max_pool.wgsl", include_str!("../../shaders/max_pool.wgsl")),
    ("lrn.wgsl", include_str!("../../shaders/lrn.wgsl")),
    (
        "adaptive_avg_pool.wgsl",
        include_str!("../../shaders/adaptive_avg_pool.wgsl"),
    ),
    ("softmax.wgsl", include_str!("../../shaders/softmax.wgsl")),
    ("relu.wgsl", include_str!("../../shaders/relu.wgsl")),
];

fn shader_source(file: &str) -> &'static str {
    SHADERS
        .iter()
        .find(|(name, _)| *name == file)
        .map(|(_, src)| *src)
        .expect("every kernel's shader is listed in SHADERS")
}

/// A compute pipeline with its (shader-derived) bind group layout: binding 0 is the uniform
/// params struct, bindings 1.. the storage buffers in the shader's order.
pub struct Kernel {
    pub name: &'static str,
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

impl Kernel {
    pub fn new(device: &wgpu::Device, file: &'static str) -> Self {
        Self::from_source(device, file, shader_source(file), "main")
    }

    /// A pipeline for entry point `entry` of WGSL `source` (kernels outside `SHADERS`, and
    /// shaders with several entry points).
    pub fn from_source(
        device: &wgpu::Device,
        name: &'static str,
        source: &str,
        entry: &str,
    ) -> Self {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(name),
            layout: None,
            module: &module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        });
        let layout = pipeline.get_bind_group_layout(0);
        Kernel {
            name,
            pipeline,
            layout,
        }
    }

    /// A bind group with explicit binding numbers (for entry points that skip some bindings).
    pub fn bind_at(&self, ctx: &GpuContext, entries: &[(u32, &wgpu::Buffer)]) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry> = entries
            .iter()
            .map(|(binding, buf)| wgpu::BindGroupEntry {
                binding: *binding,
                resource: buf.as_entire_binding(),
            })
            .collect();
        ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(self.name),
            layout: &self.layout,
            entries: &entries,
        })
    }

    pub fn bind(
        &self,
        ctx: &GpuContext,
        params: &wgpu::Buffer,
        storage: &[&wgpu::Buffer],
    ) -> wgpu::BindGroup {
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: params.as_entire_binding(),
        }];
        for (i, buf) in storage.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: buf.as_entire_binding(),
            });
        }
        ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(self.name),
            layout: &self.layout,
            entries: &entries,
        })
    }
}

/// How convolutions (and dense layers with K a multiple of 4) are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulPath {
    /// `conv2d.wgsl`'s workgroup-memory tiles (implicit GEMM) and `dense.wgsl`: GPUs.
    Tiled,
    /// `im2col.wgsl` + `gemm.wgsl` (register tiles, vec4 loads, no workgroup memory) and
    /// `gemm.wgsl` for dense layers: CPU adapters such as lavapipe, where loads are done lane by
    /// lane and barriers are expensive (about 3x faster there, see README "Performance").
    Gemm,
}

impl MatmulPath {
    /// The measured best for this adapter: [`MatmulPath::Gemm`] on CPU adapters, else tiles.
    /// `ALEXNET_MATMUL=tiled|gemm` overrides (for A/B measurements).
    pub fn for_adapter(info: &wgpu::AdapterInfo) -> Self {
        match std::env::var("ALEXNET_MATMUL").ok().as_deref() {
            Some("tiled") => MatmulPath::Tiled,
            Some("gemm") => MatmulPath::Gemm,
            _ if info.device_type == wgpu::DeviceType::Cpu => MatmulPath::Gemm,
            _ => MatmulPath::Tiled,
        }
    }
}

/// How weights (and the matrices the GEMM reads) are stored on the GPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// f32 everywhere (the reference path).
    #[default]
    F32,
    /// Conv and dense weights, im2col patches and dense inputs stored as f16 (pairs of halves
    /// in `u32`, converted with integer bit operations: neither `SHADER_F16` nor the
    /// `SHADER_F16_IN_F32` downlevel flag needed), f32 accumulation, f32 activations between
    /// layers. Uses `im2col_f16.wgsl` + `gemm_f16.wgsl`
    /// on every adapter.
    F16,
}

impl Precision {
    /// Values of K per vector load in the GEMM (`vec4<f32>`, or `vec4<u32>` of packed halves).
    pub fn per_vec(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::F16 => 8,
        }
    }

    /// GEMM depth `k` padded to whole vector loads.
    pub fn pad_k(self, k: usize) -> usize {
        k.div_ceil(self.per_vec()) * self.per_vec()
    }

    /// 32-bit words that hold `values` stored values.
    pub fn words(self, values: usize) -> usize {
        match self {
            Precision::F32 => values,
            Precision::F16 => values.div_ceil(2),
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "f16" => Ok(Precision::F16),
            _ => Err(format!("unknown precision {s:?} (expected f32 or f16)")),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        })
    }
}

/// The f16-storage kernels (`--precision f16`), compiled on first use.
pub struct F16Kernels {
    pub gemm: Kernel,
    pub gemm_m1: Kernel,
    pub im2col: Kernel,
}

impl F16Kernels {
    fn new(d: &wgpu::Device) -> Self {
        let src = shader_source("gemm_f16.wgsl");
        F16Kernels {
            gemm: Kernel::from_source(d, "gemm_f16.wgsl", src, "main"),
            gemm_m1: Kernel::from_source(d, "gemm_f16.wgsl", src, "main_m1"),
            im2col: Kernel::new(d, "im2col_f16.wgsl"),
        }
    }
}

/// All forward-pass kernels, compiled once per device.
pub struct Kernels {
    /// Which kernels convolutions and dense layers use (chosen per adapter).
    pub path: MatmulPath,
    pub conv2d: Kernel,
    pub dense: Kernel,
    pub gemm: Kernel,
    pub gemm_m1: Kernel,
    pub im2col: Kernel,
    pub max_pool: Kernel,
    pub lrn: Kernel,
    pub adaptive_avg_pool: Kernel,
    pub softmax: Kernel,
    pub relu: Kernel,
    f16: std::sync::OnceLock<F16Kernels>,
}

impl Kernels {
    pub fn new(ctx: &GpuContext) -> Self {
        Self::with_path(ctx, MatmulPath::for_adapter(&ctx.info))
    }

    /// As [`Kernels::new`] with the matmul path forced (tests cover both on one adapter).
    pub fn with_path(ctx: &GpuContext, path: MatmulPath) -> Self {
        let d = &ctx.device;
        Kernels {
            path,
            conv2d: Kernel::new(d, "conv2d.wgsl"),
            dense: Kernel::new(d, "dense.wgsl"),
            gemm: Kernel::new(d, "gemm.wgsl"),
            gemm_m1: Kernel::from_source(d, "gemm.wgsl", shader_source("gemm.wgsl"), "main_m1"),
            im2col: Kernel::new(d, "im2col.wgsl"),
            max_pool: Kernel::new(d, "max_pool.wgsl"),
            lrn: Kernel::new(d, "lrn.wgsl"),
            adaptive_avg_pool: Kernel::new(d, "adaptive_avg_pool.wgsl"),
            softmax: Kernel::new(d, "softmax.wgsl"),
            relu: Kernel::new(d, "relu.wgsl"),
            f16: std::sync::OnceLock::new(),
        }
    }

    /// The f16-storage kernels, compiled the first time they are asked for.
    pub fn f16(&self, ctx: &GpuContext) -> &F16Kernels {
        self.f16.get_or_init(|| F16Kernels::new(&ctx.device))
    }
}

/// One recorded kernel launch: everything bound, ready to replay for every batch.
pub struct Dispatch {
    pub label: String,
    pub pipeline: wgpu::ComputePipeline,
    pub bind_group: wgpu::BindGroup,
    pub workgroups: [u32; 3],
    /// Floating-point operations (multiply-add = 2), for GFLOP/s reports.
    pub flops: f64,
    /// Keeps the params uniform alive as long as the bind group.
    pub _params: wgpu::Buffer,
}

impl Dispatch {
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }
}

/// Records `dispatches` into one compute pass, submits, and waits (tests and one-off work).
pub fn run(ctx: &GpuContext, dispatches: &[Dispatch]) -> Result<()> {
    let mut encoder = ctx
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("run") });
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("run"),
            timestamp_writes: None,
        });
        for d in dispatches {
            d.record(&mut pass);
        }
    }
    ctx.queue.submit([encoder.finish()]);
    ctx.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))?;
    Ok(())
}

/// Workgroup counts for `total` invocations of a 1-D kernel of `wg` invocations, folded into
/// y when x would pass the 65535 limit (shaders index with `gid.x + gid.y * nwg.x * wg`).
pub fn grid_1d(ctx: &GpuContext, total: usize, wg: u32) -> Result<[u32; 3]> {
    let groups = total.div_ceil(wg as usize).max(1);
    let max = ctx.limits.max_compute_workgroups_per_dimension as usize;
    let x = groups.min(max);
    let y = groups.div_ceil(x);
    if y > max {
        return Err(Error::Shape(format!(
            "{total} invocations need more than {max}x{max} workgroups: use a smaller batch"
        )));
    }
    Ok([x as u32, y as u32, 1])
}

pub(crate) fn check_groups(ctx: &GpuContext, what: &str, counts: [usize; 3]) -> Result<[u32; 3]> {
    let max = ctx.limits.max_compute_workgroups_per_dimension as usize;
    if counts.iter().any(|&c| c > max) {
        return Err(Error::Shape(format!(
            "{what} needs {counts:?} workgroups, over this adapter's {max} per dimension: use a smaller batch"
        )));
    }
    Ok([
        counts[0].max(1) as u32,
        counts[1].max(1) as u32,
        counts[2].max(1) as u32,
    ])
}
