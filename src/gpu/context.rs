use crate::error::{Error, Result};

/// How the user narrowed the adapter choice (`--backend`, `--adapter`, or the `WGPU_*` variables).
#[derive(Debug, Clone, Default)]
pub struct AdapterChoice {
    /// `vulkan`, `metal`, `dx12` or `gl` (comma lists allowed); `None` reads `WGPU_BACKEND`, else all.
    pub backend: Option<String>,
    /// Case-insensitive substring of the adapter name; `None` reads `WGPU_ADAPTER_NAME`.
    pub adapter: Option<String>,
}

impl AdapterChoice {
    fn backends(&self) -> Result<wgpu::Backends> {
        let Some(spec) = self.backend.as_deref() else {
            return Ok(wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all()));
        };
        let mut backends = wgpu::Backends::empty();
        for part in spec.split(',').map(|s| s.trim().to_ascii_lowercase()) {
            backends |= match part.as_str() {
                "vulkan" | "vk" => wgpu::Backends::VULKAN,
                "metal" | "mtl" => wgpu::Backends::METAL,
                "dx12" | "d3d12" => wgpu::Backends::DX12,
                "gl" | "gles" | "opengl" => wgpu::Backends::GL,
                _ => return Err(Error::UnknownBackend(part)),
            };
        }
        Ok(backends)
    }

    fn name_filter(&self) -> Option<String> {
        self.adapter
            .clone()
            .or_else(|| std::env::var("WGPU_ADAPTER_NAME").ok())
            .filter(|s| !s.is_empty())
            .map(|s| s.to_lowercase())
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(b) = &self.backend {
            parts.push(format!("backend '{b}'"));
        } else if let Ok(b) = std::env::var("WGPU_BACKEND") {
            parts.push(format!("WGPU_BACKEND='{b}'"));
        }
        if let Some(a) = self.name_filter() {
            parts.push(format!("name containing '{a}'"));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!(" matching {}", parts.join(" and "))
        }
    }
}

/// One line of `alexnet adapters`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub max_buffer_size: u64,
    pub max_storage_buffer_binding_size: u64,
    pub max_storage_buffers_per_shader_stage: u32,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub timestamp_query: bool,
    pub shader_f16: bool,
}

fn summarize(adapter: &wgpu::Adapter) -> AdapterSummary {
    let info = adapter.get_info();
    let limits = adapter.limits();
    let features = adapter.features();
    AdapterSummary {
        name: info.name,
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: info.driver,
        driver_info: info.driver_info,
        max_buffer_size: limits.max_buffer_size,
        max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
        max_storage_buffers_per_shader_stage: limits.max_storage_buffers_per_shader_stage,
        max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
        max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
        timestamp_query: features.contains(wgpu::Features::TIMESTAMP_QUERY),
        shader_f16: features.contains(wgpu::Features::SHADER_F16),
    }
}

fn instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends;
    wgpu::Instance::new(desc)
}

fn enumerate(choice: &AdapterChoice) -> Result<Vec<wgpu::Adapter>> {
    let backends = choice.backends()?;
    let adapters = pollster::block_on(instance(backends).enumerate_adapters(backends));
    let filter = choice.name_filter();
    Ok(adapters
        .into_iter()
        .filter(|a| {
            filter
                .as_deref()
                .is_none_or(|f| a.get_info().name.to_lowercase().contains(f))
        })
        .collect())
}

/// Every adapter wgpu finds for the choice, best first.
pub fn list_adapters(choice: &AdapterChoice) -> Result<Vec<AdapterSummary>> {
    let mut adapters = enumerate(choice)?;
    adapters.sort_by_key(rank);
    Ok(adapters.iter().map(summarize).collect())
}

/// Lower is better: real GPUs first, native APIs before GL, software adapters last.
fn rank(adapter: &wgpu::Adapter) -> (u8, u8) {
    let info = adapter.get_info();
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    let api = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    };
    (kind, api)
}

/// An open device with the adapter's real limits, shared by every kernel and network.
pub struct GpuContext {
    pub adapter: wgpu::Adapter,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    /// Every pipeline of this device, compiled once on first use.
    pub pipelines: std::sync::Arc<super::PipelineCache>,
}

impl GpuContext {
    /// The best adapter for `choice`, with its real limits (not wgpu's conservative defaults:
    /// AlexNet's fc6 alone is 144 MiB) and the optional features we can use.
    pub fn new(choice: &AdapterChoice) -> Result<Self> {
        let adapter = enumerate(choice)?
            .into_iter()
            .min_by_key(rank)
            .ok_or_else(|| Error::NoAdapter {
                filter: choice.describe(),
            })?;
        Self::from_adapter(adapter)
    }

    pub fn from_adapter(adapter: wgpu::Adapter) -> Result<Self> {
        let info = adapter.get_info();
        let wanted = wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SHADER_F16;
        let features = adapter.features() & wanted;
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("alexnet"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|source| Error::RequestDevice {
            adapter: info.name.clone(),
            cause: source,
        })?;
        Ok(GpuContext {
            adapter,
            pipelines: std::sync::Arc::new(super::PipelineCache::new(device.clone())),
            device,
            queue,
            info,
            limits,
            features,
        })
    }

    /// The pipeline for `entry` of `shader` (compiled on first use, then shared).
    pub fn kernel(
        &self,
        shader: super::ShaderSource,
        entry: &'static str,
    ) -> std::sync::Arc<super::Kernel> {
        self.pipelines.get(shader, entry)
    }

    /// "name (backend)", as benchmarks and logs print it.
    pub fn adapter_label(&self) -> String {
        format!("{} ({:?})", self.info.name, self.info.backend)
    }

    /// Largest storage binding, also capped by the largest buffer.
    pub fn max_binding(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }
}
