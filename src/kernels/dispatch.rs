//! [`Dispatch`]: one recorded kernel launch, and its one constructor ([`Dispatch::new`]):
//! params uploaded as the uniform, buffers bound, the workgroup grid checked against the
//! adapter's limits. Every kernel module builds its launches through it.

use crate::error::{Error, Result};
use crate::gpu::{uniform_buffer, GpuContext, Kernel};

/// One recorded kernel launch: everything bound, ready to replay for every batch.
pub struct Dispatch {
    /// The kernel's label (for timings and errors).
    pub label: String,
    /// The pipeline.
    pub pipeline: wgpu::ComputePipeline,
    /// Everything it binds.
    pub bind_group: wgpu::BindGroup,
    /// Workgroups in x, y, z.
    pub workgroups: [u32; 3],
    /// Floating-point operations (multiply-add = 2), for GFLOP/s reports.
    pub flops: f64,
    /// Keeps the params uniform alive as long as the bind group.
    pub _params: wgpu::Buffer,
}

/// The workgroups of one launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grid {
    /// These workgroup counts per dimension (a zero count launches one workgroup).
    Groups([usize; 3]),
    /// One invocation per item of a 1-D kernel (its `@workgroup_size` x per workgroup),
    /// folded into y past the per-dimension limit ([`grid_1d`]).
    Items(usize),
    /// This many workgroups of a 1-D kernel, folded into y likewise.
    FoldedGroups(usize),
}

/// The storage buffers of one launch (binding 0 is always the params uniform).
#[derive(Clone, Copy)]
pub enum Bindings<'a> {
    /// Bound at 1, 2, ... in order (`&[a, b]` converts to this).
    InOrder(&'a [&'a wgpu::Buffer]),
    /// Bound at the numbers given, for entry points that skip some bindings
    /// (`&[(1, a), (3, b)]` converts to this).
    At(&'a [(u32, &'a wgpu::Buffer)]),
}

impl<'a> From<&'a [&'a wgpu::Buffer]> for Bindings<'a> {
    fn from(buffers: &'a [&'a wgpu::Buffer]) -> Self {
        Bindings::InOrder(buffers)
    }
}

impl<'a, const N: usize> From<&'a [&'a wgpu::Buffer; N]> for Bindings<'a> {
    fn from(buffers: &'a [&'a wgpu::Buffer; N]) -> Self {
        Bindings::InOrder(buffers)
    }
}

impl<'a, const N: usize> From<&'a [(u32, &'a wgpu::Buffer); N]> for Bindings<'a> {
    fn from(entries: &'a [(u32, &'a wgpu::Buffer); N]) -> Self {
        Bindings::At(entries)
    }
}

impl Dispatch {
    /// The one way to build a launch: `params` (the shader's binding-0 struct) uploaded as its
    /// uniform, the `bindings` bound after it, `grid` turned into workgroup counts checked
    /// against this adapter's limits (an error naming `label` and the counts, never a
    /// truncated grid). Zero flops; set them with [`Dispatch::with_flops`].
    pub fn new<'a, P: bytemuck::Pod>(
        ctx: &GpuContext,
        kernel: &Kernel,
        label: impl Into<String>,
        params: &P,
        bindings: impl Into<Bindings<'a>>,
        grid: Grid,
    ) -> Result<Dispatch> {
        let label = label.into();
        let workgroups = match grid {
            Grid::Groups(counts) => check_groups(ctx, &label, counts)?,
            Grid::Items(items) => grid_1d(ctx, items, kernel.workgroup_size[0])?,
            Grid::FoldedGroups(groups) => grid_1d(ctx, groups, 1)?,
        };
        let uniform = uniform_buffer(ctx, &format!("{label} params"), params);
        let bind_group = match bindings.into() {
            Bindings::InOrder(storage) => kernel.bind(ctx, &uniform, storage),
            Bindings::At(entries) => {
                let mut all = vec![(0, &uniform)];
                all.extend_from_slice(entries);
                kernel.bind_at(ctx, &all)
            }
        };
        Ok(Dispatch {
            label,
            pipeline: kernel.pipeline.clone(),
            bind_group,
            workgroups,
            flops: 0.0,
            _params: uniform,
        })
    }

    /// This launch counting `flops` floating-point operations (multiply-add = 2).
    pub fn with_flops(mut self, flops: f64) -> Self {
        self.flops = flops;
        self
    }

    /// Records the launch into `pass`.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }
}

/// `value` as a shader's `u32`, or an [`Error::Shape`] naming `what` when it does not fit
/// (a shape too large for the kernels' 32-bit indices, never a silently truncated one).
pub fn to_u32(what: &str, value: usize) -> Result<u32> {
    u32::try_from(value).map_err(|_| {
        Error::Shape(format!(
            "{what} of {value} does not fit the kernels' 32-bit indices: use a smaller batch or input"
        ))
    })
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

fn check_groups(ctx: &GpuContext, what: &str, counts: [usize; 3]) -> Result<[u32; 3]> {
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
