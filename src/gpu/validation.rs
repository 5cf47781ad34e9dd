//! Validation mode: what catches the undefined behaviour that a forgiving CPU driver lets
//! through and a real GPU crashes or silently corrupts on.
//!
//! Three nets, all on with [`RuntimeOptions::validate`](crate::options::RuntimeOptions):
//! - wgpu's own validation errors (wrong usages, bindings smaller than the shader's struct,
//!   dispatches over limits) reach [`ErrorLog`] through the device's uncaptured-error handler,
//!   on every context (validation mode or not: wgpu's default handler would panic);
//! - the Khronos Vulkan validation layer (`VK_LAYER_KHRONOS_validation`, Debian's
//!   `vulkan-validationlayers`), which wgpu enables with `InstanceFlags::VALIDATION` when the
//!   loader finds it. Its messages arrive through the `log` crate (target `wgpu_hal::...`): a
//!   logger that forwards error-level records to [`record_driver_error`] (the binary's does)
//!   makes them failures too. Its warnings (best practices: two about wgpu's own instance and
//!   semaphores on today's code) are shown with `RUST_LOG=warn`, never failures: they are not
//!   ours to fix;
//! - naga's bounds checks and workgroup-memory zeroing stay in every shader.
//!
//! [`GpuContext::check`](super::GpuContext::check) turns anything recorded into an error; every
//! read-back calls it, so no result computed under a validation error reaches the user.

use std::sync::Mutex;

/// The name wgpu-hal asks the Vulkan loader for.
pub const VULKAN_LAYER: &str = "VK_LAYER_KHRONOS_validation";

/// Validation errors seen on one device.
#[derive(Default)]
pub struct ErrorLog {
    messages: Mutex<Vec<String>>,
}

impl ErrorLog {
    pub fn push(&self, message: String) {
        self.messages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(message);
    }

    /// The messages recorded so far (and forgets them).
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.messages.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Error-level messages of the driver's validation layer, process-wide (the layer's callback
/// knows no device).
static DRIVER: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Records an error-level message from the driver's validation layer (called by a `log`
/// logger for records whose target starts with `wgpu_hal`).
pub fn record_driver_error(message: String) {
    DRIVER
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(message);
}

/// The driver messages recorded so far (and forgets them).
pub fn take_driver_errors() -> Vec<String> {
    std::mem::take(&mut *DRIVER.lock().unwrap_or_else(|e| e.into_inner()))
}

/// A minimal `log` logger for programs without one of their own (tests, library users): it
/// prints warnings and errors to stderr and records the driver layer's errors
/// ([`record_driver_error`]). Returns false if a logger was already installed (then that
/// logger decides; the binary's forwards the driver's errors itself).
pub fn install_capture_logger() -> bool {
    struct Capture;
    impl log::Log for Capture {
        fn enabled(&self, metadata: &log::Metadata) -> bool {
            metadata.level() <= log::Level::Warn
        }
        fn log(&self, record: &log::Record) {
            if !self.enabled(record.metadata()) {
                return;
            }
            if record.level() == log::Level::Error && record.target().starts_with("wgpu_hal") {
                record_driver_error(format!("{}: {}", record.target(), record.args()));
            }
            eprintln!("[{} {}] {}", record.level(), record.target(), record.args());
        }
        fn flush(&self) {}
    }
    static CAPTURE: Capture = Capture;
    let installed = log::set_logger(&CAPTURE).is_ok();
    if installed {
        log::set_max_level(log::LevelFilter::Warn);
    }
    installed
}
