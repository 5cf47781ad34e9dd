//! Bind groups: a kernel's params and storage buffers bound in its layout's order.

use super::pipelines::Kernel;
use super::GpuContext;

impl Kernel {
    /// A bind group with explicit binding numbers (for entry points that skip some bindings).
    pub fn bind_at(&self, ctx: &GpuContext, entries: &[(u32, &wgpu::Buffer)]) -> wgpu::BindGroup {
        if let Some((_, params)) = entries.iter().find(|(b, _)| *b == 0) {
            // The Rust params struct must be the WGSL one byte for byte (a host module binding the
            // wrong struct, or one edited on one side only): a defect of the build, never of input.
            assert_eq!(
                Some(params.size()),
                self.params_size.map(u64::from),
                "{}: the params buffer does not match the shader's binding-0 struct",
                self.name
            );
        }
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

    /// Binding 0 = `params`, bindings 1.. = `storage` in order.
    pub fn bind(
        &self,
        ctx: &GpuContext,
        params: &wgpu::Buffer,
        storage: &[&wgpu::Buffer],
    ) -> wgpu::BindGroup {
        let mut entries = vec![(0u32, params)];
        entries.extend(storage.iter().enumerate().map(|(i, b)| (i as u32 + 1, *b)));
        self.bind_at(ctx, &entries)
    }
}
