//! The pipeline cache: each (shader, entry point) is compiled at most once per device, on first
//! use, and shared by everything that runs on that device (the network, the feature cache, the
//! trainer, benchmarks). On lavapipe a pipeline costs ~0.1 s at first dispatch, so compiling the
//! same one per `Network` or per `Trainer` was measurable; on real drivers it is more.
//!
//! The host learns a kernel's workgroup size and tile constants from the shader itself (naga's
//! parse of the same source) rather than typing them twice: see [`Kernel::workgroup_size`] and
//! [`Kernel::constant`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use super::shader::{shader_facts, ShaderSource};

/// A compute pipeline with its (shader-derived) bind group layout: binding 0 is the uniform
/// params struct, bindings 1.. the storage buffers in the shader's order.
pub struct Kernel {
    /// `file` or `file:entry` for entry points other than `main`.
    pub name: &'static str,
    /// The compiled pipeline.
    pub pipeline: wgpu::ComputePipeline,
    /// Its bind group layout.
    pub layout: wgpu::BindGroupLayout,
    /// `@workgroup_size` of the entry point, as naga reads it.
    pub workgroup_size: [u32; 3],
    /// The module's named integer constants (`const BM: u32 = 64u;`), as naga reads them.
    pub(super) constants: BTreeMap<String, u32>,
    /// Size of the binding-0 params struct as naga lays it out.
    pub(super) params_size: Option<u32>,
}

impl Kernel {
    /// A module-level integer constant of the shader (tile sizes and the like).
    ///
    /// Panics if the shader has no such constant: that is a mismatch between a shader and its
    /// host module, caught by the kernel tests, never by user input.
    pub fn constant(&self, name: &str) -> u32 {
        *self.constants.get(name).unwrap_or_else(|| {
            panic!(
                "shader {} has no integer constant {name}; its host module expects one",
                self.name
            )
        })
    }
}

type Key = (&'static str, &'static str);

/// Compiled pipelines of one device, by (shader file, entry point).
pub struct PipelineCache {
    device: wgpu::Device,
    /// Keep naga's injected bounds checks and workgroup-memory zeroing (the runtime options'
    /// shader checks, for debugging a kernel, and validation mode), or run without them.
    checks: bool,
    kernels: Mutex<HashMap<Key, Arc<Kernel>>>,
}

/// How many times each pipeline was compiled in this process, over every device and cache: a
/// second `GpuContext` (or any code that bypassed its cache) shows up here as a count of 2.
static COMPILED: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());

impl PipelineCache {
    /// An empty cache on `device`; `checks` compiles shaders with bounds checks.
    pub fn new(device: wgpu::Device, checks: bool) -> Self {
        PipelineCache {
            device,
            checks,
            kernels: Mutex::new(HashMap::new()),
        }
    }

    /// The pipeline for `entry` of `shader`, compiled the first time it is asked for.
    pub fn get(&self, shader: ShaderSource, entry: &'static str) -> Arc<Kernel> {
        let key = (shader.file, entry);
        // Held while compiling: two threads asking for the same pipeline compile it once.
        let mut map = self.kernels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = map.get(&key) {
            return k.clone();
        }
        let kernel = Arc::new(self.compile(shader, entry));
        *COMPILED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kernel.name.to_string())
            .or_default() += 1;
        map.insert(key, kernel.clone());
        kernel
    }

    fn compile(&self, shader: ShaderSource, entry: &'static str) -> Kernel {
        let name: &'static str = if entry == "main" {
            shader.file
        } else {
            // One small leak per distinct pipeline per process, for a `'static` label.
            Box::leak(format!("{}:{entry}", shader.file).into_boxed_str())
        };
        // Our own shaders, validated by tests/it/shaders.rs: a parse failure here is a build
        // defect.
        let facts = shader_facts(shader.file, shader.source)
            .unwrap_or_else(|e| panic!("built-in shader does not parse: {e}"));
        let workgroup_size = *facts
            .workgroup_sizes
            .get(entry)
            .unwrap_or_else(|| panic!("{} has no entry point {entry}", shader.file));
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(shader.source.into()),
        };
        let module = if self.checks {
            self.device.create_shader_module(desc)
        } else {
            // SAFETY: our own shaders, every one of which clamps or guards each index against
            // its params (see the shaders' headers), and the host sizes every buffer from the
            // same shapes it writes into the params (the dispatch functions check the shapes
            // chain). The shader-checks option turns naga's bounds checks back on.
            unsafe {
                self.device
                    .create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
            }
        };
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(name),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    // Every kernel writes its workgroup arrays before reading them.
                    zero_initialize_workgroup_memory: self.checks,
                    ..Default::default()
                },
                cache: None,
            });
        let layout = pipeline.get_bind_group_layout(0);
        Kernel {
            name,
            pipeline,
            layout,
            workgroup_size,
            constants: facts.constants,
            params_size: facts.params_size,
        }
    }
}

/// `(pipeline name, times compiled)` for every pipeline compiled so far in this process.
pub fn compile_counts() -> Vec<(String, usize)> {
    COMPILED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}
