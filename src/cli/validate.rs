//! The binary's side of validation mode: a real logger (`env_logger`, `RUST_LOG` respected)
//! that also hands the driver layer's error-level messages to the library, and the note that
//! says what validation is on.

use std::path::PathBuf;

use std::sync::atomic::{AtomicBool, Ordering};

use log::Log as _;

use alexnet_wgpu::gpu::validation;

/// Set when a command opens its device in validation mode: warnings are shown from then on.
static VALIDATING: AtomicBool = AtomicBool::new(false);

/// Forwards records to `env_logger` (`RUST_LOG` if set, else errors, and warnings too in
/// validation mode), and error-level records of wgpu's hardware layer (where the Vulkan
/// validation layer's messages arrive) to [`validation::record_driver_error`].
struct Logger {
    inner: env_logger::Logger,
    /// `RUST_LOG` was set: its filter decides alone.
    explicit: bool,
}

impl Logger {
    fn shown(&self, metadata: &log::Metadata) -> bool {
        if self.explicit {
            return self.inner.enabled(metadata);
        }
        let max = if VALIDATING.load(Ordering::Relaxed) {
            log::Level::Warn
        } else {
            log::Level::Error
        };
        metadata.level() <= max
    }
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() == log::Level::Error || self.shown(metadata)
    }

    fn log(&self, record: &log::Record) {
        validation::capture(record);
        if self.shown(record.metadata()) {
            self.inner.log(record);
        }
    }

    fn flush(&self) {
        self.inner.flush()
    }
}

/// Installs the logger. The `log` level reaches at least `warn`, so that wgpu asks the Vulkan
/// layer for its warnings (shown in validation mode, never failures).
pub fn install_logger() {
    let explicit = std::env::var_os("RUST_LOG").is_some();
    let inner = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp(None)
        .build();
    let max = inner.filter().max(log::LevelFilter::Warn);
    if log::set_boxed_logger(Box::new(Logger { inner, explicit })).is_ok() {
        log::set_max_level(max);
    }
}

/// Where the Vulkan loader would find the Khronos validation layer's manifest, if anywhere:
/// `VK_LAYER_PATH` / `VK_ADD_LAYER_PATH` entries, then the folders the loader searches on
/// Linux and macOS. (On Windows the loader reads the registry: `None` there means unknown.)
pub fn khronos_layer_manifest() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for var in ["VK_LAYER_PATH", "VK_ADD_LAYER_PATH"] {
        if let Some(v) = std::env::var_os(var) {
            dirs.extend(std::env::split_paths(&v));
        }
    }
    let data_dirs = std::env::var_os("XDG_DATA_DIRS")
        .map(|v| std::env::split_paths(&v).collect::<Vec<_>>())
        .unwrap_or_else(|| vec!["/usr/local/share".into(), "/usr/share".into()]);
    for d in data_dirs {
        dirs.push(d.join("vulkan/explicit_layer.d"));
    }
    dirs.push("/etc/vulkan/explicit_layer.d".into());
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".local/share/vulkan/explicit_layer.d"));
    }
    dirs.into_iter()
        .map(|d| d.join("VkLayer_khronos_validation.json"))
        .find(|p| p.is_file())
}

/// What validation mode turns on here, in words (also the selftest's JSON `validation`).
pub fn describe() -> String {
    match khronos_layer_manifest() {
        Some(_) => format!("wgpu validation + {}", validation::VULKAN_LAYER),
        None => "wgpu validation only (Vulkan layer not installed)".into(),
    }
}

/// Says once what validation is on, and how to get the rest when the layer is missing.
pub fn announce() {
    VALIDATING.store(true, Ordering::Relaxed);
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        eprintln!("validation: {}", describe());
        if khronos_layer_manifest().is_none() {
            eprintln!(
                "  hint: install the Khronos validation layer for the driver's checks too \
                 (Debian/Ubuntu: `apt-get install vulkan-validationlayers`; macOS/Windows: the \
                 Vulkan SDK), or point VK_LAYER_PATH at its folder"
            );
        }
    });
}
