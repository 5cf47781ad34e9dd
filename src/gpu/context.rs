use super::assign::{rank, resolve, Assignment};
use super::validation::ErrorLog;
use crate::error::{Error, Result};
use crate::options::{LimitsProfile, RuntimeOptions};

/// How the user narrowed the adapter choice (the binary's `--backend` and `--adapter`, whose
/// environment twins are `WGPU_BACKEND` and `WGPU_ADAPTER_NAME`).
#[derive(Debug, Clone, Default)]
pub struct AdapterChoice {
    /// `vulkan`, `metal`, `dx12` or `gl` (comma lists allowed); `None`: any.
    pub backend: Option<String>,
    /// Case-insensitive substring of the adapter name; `None`: the best adapter, or the one
    /// `assignment` names.
    pub adapter: Option<String>,
    /// The GPU a job scheduler gave this process (`CUDA_VISIBLE_DEVICES` and its kin, read by
    /// the caller), used when no adapter is named.
    pub assignment: Option<Assignment>,
}

impl AdapterChoice {
    fn backends(&self) -> Result<wgpu::Backends> {
        let Some(spec) = self.backend.as_deref() else {
            return Ok(wgpu::Backends::all());
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
            .filter(|s| !s.is_empty())
            .map(|s| s.to_lowercase())
    }

    /// What the choice asks for, as the no-adapter error says it (` matching backend 'x'`;
    /// empty when it asks for nothing).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(b) = &self.backend {
            parts.push(format!("backend '{b}'"));
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
    /// The adapter's name, as the driver reports it.
    pub name: String,
    /// `dddd:bb:dd.f`, empty where the backend does not say.
    pub pci_bus_id: String,
    /// The graphics API (vulkan, metal, dx12, gl).
    pub backend: String,
    /// Discrete, integrated, virtual or CPU.
    pub device_type: String,
    /// The driver's name.
    pub driver: String,
    /// The driver's version text.
    pub driver_info: String,
    /// The largest buffer, in bytes.
    pub max_buffer_size: u64,
    /// The largest storage buffer one binding may see, in bytes (what bounds a batch).
    pub max_storage_buffer_binding_size: u64,
    /// Storage buffers one shader stage may bind.
    pub max_storage_buffers_per_shader_stage: u32,
    /// Workgroup memory per workgroup, in bytes.
    pub max_compute_workgroup_storage_size: u32,
    /// Invocations per workgroup.
    pub max_compute_invocations_per_workgroup: u32,
    /// Timestamp queries (GPU timing).
    pub timestamp_query: bool,
    /// The `SHADER_F16` feature (native f16 arithmetic in WGSL).
    pub shader_f16: bool,
    /// Timestamps between the dispatches of one compute pass (`bench --per-layer` times the
    /// layers inside the real pass with them).
    pub timestamp_query_inside_passes: bool,
    /// The `SUBGROUP` feature (subgroup operations in shaders).
    pub subgroup: bool,
    /// Subgroup sizes the adapter may run (the same number twice on most GPUs: 32 on NVIDIA).
    pub subgroup_min_size: u32,
    /// See `subgroup_min_size`.
    pub subgroup_max_size: u32,
    /// The largest workgroup size in x.
    pub max_compute_workgroup_size_x: u32,
    /// The most workgroups per dispatch dimension.
    pub max_compute_workgroups_per_dimension: u32,
    /// `EXPERIMENTAL_COOPERATIVE_MATRIX` (tensor cores from WGSL): set by wgpu only when at
    /// least one configuration below survives its filter and the memory model allows.
    pub cooperative_matrix: bool,
    /// The cooperative-matrix configurations the adapter reports (empty where none).
    pub cooperative_matrix_configs: Vec<CoopMatrixConfig>,
    /// Every feature the adapter offers, by wgpu's names.
    pub features: Vec<String>,
}

/// One cooperative-matrix configuration: `C[M x N] += A[M x K] B[K x N]` with A and B of
/// `ab` and C of `cr` (`f16`, `f32`, `i32` or `u32`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct CoopMatrixConfig {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub ab: String,
    pub cr: String,
    pub saturating_accumulation: bool,
}

fn scalar_name(t: wgpu::CooperativeScalarType) -> String {
    format!("{t:?}").to_ascii_lowercase()
}

fn summarize(adapter: &wgpu::Adapter, profile: LimitsProfile) -> AdapterSummary {
    let info = adapter.get_info();
    let limits = profile.limits(&adapter.limits());
    let features = adapter.features();
    AdapterSummary {
        pci_bus_id: info.device_pci_bus_id.clone(),
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
        timestamp_query_inside_passes: features
            .contains(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES),
        subgroup: features.contains(wgpu::Features::SUBGROUP),
        subgroup_min_size: info.subgroup_min_size,
        subgroup_max_size: info.subgroup_max_size,
        max_compute_workgroup_size_x: limits.max_compute_workgroup_size_x,
        max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
        cooperative_matrix: features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX),
        cooperative_matrix_configs: adapter
            .cooperative_matrix_properties()
            .into_iter()
            .map(|c| CoopMatrixConfig {
                m: c.m_size,
                n: c.n_size,
                k: c.k_size,
                ab: scalar_name(c.ab_type),
                cr: scalar_name(c.cr_type),
                saturating_accumulation: c.saturating_accumulation,
            })
            .collect(),
        features: features.iter_names().map(|(n, _)| n.to_string()).collect(),
    }
}

/// The instance: validation mode adds wgpu's `VALIDATION` (which enables the Khronos layer
/// when the Vulkan loader finds it). Not `DEBUG`: its shader debug info names WGSL as the
/// SPIR-V source language (operand 10), which the layers Debian ships (1.3.239) reject as
/// invalid SPIR-V on every module.
fn instance(backends: wgpu::Backends, validate: bool) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backends;
    desc.flags = if validate {
        wgpu::InstanceFlags::VALIDATION
    } else {
        wgpu::InstanceFlags::empty()
    };
    wgpu::Instance::new(desc)
}

fn enumerate(choice: &AdapterChoice, validate: bool) -> Result<Vec<wgpu::Adapter>> {
    let backends = choice.backends()?;
    let instance = instance(backends, validate);
    let adapters = pollster::block_on(instance.enumerate_adapters(backends));
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

/// Every adapter wgpu finds for the choice, best first, with the limits `profile` would put
/// in force.
pub fn list_adapters(
    choice: &AdapterChoice,
    profile: LimitsProfile,
) -> Result<Vec<AdapterSummary>> {
    let mut adapters = enumerate(choice, false)?;
    adapters.sort_by_key(|a| rank(&a.get_info()));
    Ok(adapters.iter().map(|a| summarize(a, profile)).collect())
}

/// What [`explain_choice`] found: the adapters of [`list_adapters`] and which of them the
/// choice opens.
pub struct ChoiceReport {
    /// Every adapter found, in the order listed.
    pub adapters: Vec<AdapterSummary>,
    /// An index into `adapters` with the reason, or why none is opened (an assignment naming
    /// no adapter, nothing matching the name).
    pub chosen: Result<(usize, String)>,
}

/// The adapters `choice` sees, best first, and the one it opens, and why.
pub fn explain_choice(choice: &AdapterChoice, profile: LimitsProfile) -> Result<ChoiceReport> {
    let mut adapters = enumerate(choice, false)?;
    adapters.sort_by_key(|a| rank(&a.get_info()));
    let infos: Vec<wgpu::AdapterInfo> = adapters.iter().map(|a| a.get_info()).collect();
    Ok(ChoiceReport {
        adapters: adapters.iter().map(|a| summarize(a, profile)).collect(),
        chosen: select(&infos, choice),
    })
}

/// Which of `infos` (filtered by the choice's backend and name) the choice opens, and why.
fn select(infos: &[wgpu::AdapterInfo], choice: &AdapterChoice) -> Result<(usize, String)> {
    let best = || {
        (0..infos.len())
            .min_by_key(|&i| rank(&infos[i]))
            .ok_or_else(|| Error::NoAdapter {
                filter: choice.describe(),
            })
    };
    match (&choice.assignment, choice.name_filter()) {
        (_, Some(name)) => {
            let i = best()?;
            let note = match &choice.assignment {
                Some(a) => format!(" (the scheduler's {} is not used)", a.origin),
                None => String::new(),
            };
            Ok((
                i,
                format!("the best adapter whose name contains '{name}'{note}"),
            ))
        }
        (Some(assignment), None) => resolve(infos, assignment),
        (None, None) => Ok((
            best()?,
            "the best adapter: no name or GPU assignment given".into(),
        )),
    }
}

/// An open device with its limits, runtime options and pipeline cache, shared by every kernel
/// and network. Cheap to clone (every field is a handle).
#[derive(Clone)]
pub struct GpuContext {
    /// The adapter the device was opened on.
    pub adapter: wgpu::Adapter,
    /// The device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// The adapter's name, backend, type and driver.
    pub info: wgpu::AdapterInfo,
    /// The limits in force: the adapter's, or WebGPU's baseline under
    /// [`LimitsProfile::WebGpu`]. Kernels size tiles, splits and bindings from these.
    pub limits: wgpu::Limits,
    /// The features enabled on the device.
    pub features: wgpu::Features,
    /// What chooses kernels and how the device was opened.
    pub options: RuntimeOptions,
    /// Every pipeline of this device, compiled once on first use.
    pub pipelines: std::sync::Arc<super::pipelines::PipelineCache>,
    /// Validation errors of this device, turned into errors by [`GpuContext::check`].
    pub errors: std::sync::Arc<ErrorLog>,
    /// The tuner's winners for this device (shared by the context's clones), read by every
    /// kernel set made afterwards: empty until [`GpuContext::set_tuned`].
    tuned: std::sync::Arc<std::sync::RwLock<Option<std::sync::Arc<crate::options::Tuned>>>>,
}

impl GpuContext {
    /// The best adapter for `choice`, with the limits of its profile (by default the adapter's
    /// real limits, not wgpu's conservative defaults: AlexNet's fc6 alone is 144 MiB) and the
    /// optional features we can use.
    pub fn new(choice: &AdapterChoice) -> Result<Self> {
        Self::with_options(choice, RuntimeOptions::default())
    }

    /// As [`GpuContext::new`] with runtime options (limits, validation, kernel choices).
    pub fn with_options(choice: &AdapterChoice, options: RuntimeOptions) -> Result<Self> {
        let mut adapters = enumerate(choice, options.validate)?;
        let infos: Vec<wgpu::AdapterInfo> = adapters.iter().map(|a| a.get_info()).collect();
        let (index, _) = select(&infos, choice)?;
        let adapter = adapters.swap_remove(index);
        super::validation::forget_other_backends(adapter.get_info().backend);
        Self::from_adapter(adapter, options)
    }

    /// Opens a device on `adapter` (bring your own), with `options`.
    pub fn from_adapter(adapter: wgpu::Adapter, options: RuntimeOptions) -> Result<Self> {
        let info = adapter.get_info();
        // Timestamps between the dispatches of one pass time each layer inside the real
        // forward pass (`bench --per-layer`); without them each dispatch gets a pass of its own.
        let wanted = wgpu::Features::TIMESTAMP_QUERY
            | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES
            | wgpu::Features::SHADER_F16;
        // Cooperative matrices (tensor cores for f16 convolutions) unless turned off: an
        // experimental wgpu feature, so the device also opts in to experimental features.
        let coop = options.coop != crate::options::CoopMatrices::Off
            && adapter
                .features()
                .contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX);
        let wanted = if coop {
            wanted | wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX
        } else {
            wanted
        };
        let features = adapter.features() & wanted;
        let experimental_features = if coop {
            // SAFETY: wgpu's experimental features may have bugs; the only one requested is
            // cooperative matrices, used by `coop.wgsl` alone, which the selftest checks
            // against the f64 reference (`alexnet selftest`).
            unsafe { wgpu::ExperimentalFeatures::enabled() }
        } else {
            wgpu::ExperimentalFeatures::disabled()
        };
        let limits = options.limits.limits(&adapter.limits());
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("alexnet"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features,
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|source| Error::RequestDevice {
            adapter: info.name.clone(),
            cause: source,
        })?;
        // wgpu's default handler panics; ours records, and `check` reports.
        let errors = std::sync::Arc::new(ErrorLog::default());
        let sink = errors.clone();
        device.on_uncaptured_error(std::sync::Arc::new(move |e: wgpu::Error| {
            sink.push(e.to_string())
        }));
        Ok(GpuContext {
            adapter,
            pipelines: std::sync::Arc::new(super::pipelines::PipelineCache::new(
                device.clone(),
                options.shader_checks(),
            )),
            device,
            queue,
            info,
            limits,
            features,
            options,
            errors,
            tuned: Default::default(),
        })
    }

    /// Makes `tuned` the table of winners every kernel set made from this context (or any of
    /// its clones) afterwards reads.
    pub fn set_tuned(&self, tuned: crate::options::Tuned) {
        *self.tuned.write().unwrap_or_else(|e| e.into_inner()) = Some(std::sync::Arc::new(tuned));
    }

    /// This device's table of tuner winners, if one was set.
    pub fn tuned(&self) -> Option<std::sync::Arc<crate::options::Tuned>> {
        self.tuned.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `Err` with every validation error recorded since the last check (this device's, and
    /// the driver layer's when a logger forwards them): called by every read-back, so a
    /// result computed under a validation error never reaches the caller.
    pub fn check(&self) -> Result<()> {
        let mut messages = self.errors.take();
        messages.extend(
            super::validation::take_driver_errors()
                .into_iter()
                .filter(|m| super::validation::concerns_backend(m, self.info.backend)),
        );
        if messages.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation {
                adapter: self.adapter_label(),
                messages,
            })
        }
    }

    /// The matmul path kernels use: the options' choice, else the adapter's default.
    pub fn matmul_path(&self) -> crate::options::MatmulPath {
        self.options
            .matmul
            .unwrap_or_else(|| crate::options::MatmulPath::default_for(self.info.device_type))
    }

    /// The pipeline for `entry` of `shader` (compiled on first use, then shared).
    pub fn kernel(
        &self,
        shader: super::shader::ShaderSource,
        entry: &'static str,
    ) -> std::sync::Arc<super::pipelines::Kernel> {
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
