//! Device creation, buffers and read-back: everything that talks to wgpu but knows nothing of AlexNet.

pub mod assign;
mod bind_group;
mod buffers;
mod context;
mod pipelines;
mod shader;
pub mod validation;

pub use assign::{Assignment, DeviceRef};
pub use buffers::{
    copy_to_staging, map_staging, map_staging_as, read_back_f32, storage_buffer, uniform_buffer,
    upload, upload_f32, SplitWeight,
};
pub use context::{
    explain_choice, list_adapters, AdapterChoice, AdapterSummary, ChoiceReport, GpuContext,
};
pub use pipelines::{compile_counts, Kernel, PipelineCache};
pub use shader::{shader_facts, ShaderFacts, ShaderSource};
