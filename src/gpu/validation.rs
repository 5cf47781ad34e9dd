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
    /// Records a validation message.
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

/// What a `log` logger calls with every record (the binary's and [`install_capture_logger`]'s
/// do): an error-level record of wgpu-hal (the validation layer's messages, and the drivers')
/// is recorded with [`record_driver_error`] as `"target: message"`.
pub fn capture(record: &log::Record) {
    if record.level() == log::Level::Error && record.target().starts_with("wgpu_hal") {
        record_driver_error(format!("{}: {}", record.target(), record.args()));
    }
}

/// Whether a recorded driver message (`"target: message"`) can concern a device of `backend`.
/// One of another backend's module cannot: enumerating adapters probes every backend, and on a
/// machine with Vulkan but no GL driver, wgpu's GL backend logs EGL's "DRI2: failed to load
/// driver" at error level; it must not fail the first read-back of a Vulkan device.
pub fn concerns_backend(message: &str, backend: wgpu::Backend) -> bool {
    const MODULES: [(&str, wgpu::Backend); 4] = [
        ("wgpu_hal::vulkan", wgpu::Backend::Vulkan),
        ("wgpu_hal::gles", wgpu::Backend::Gl),
        ("wgpu_hal::metal", wgpu::Backend::Metal),
        ("wgpu_hal::dx12", wgpu::Backend::Dx12),
    ];
    match MODULES
        .iter()
        .find(|(module, _)| message.starts_with(module))
    {
        Some(&(_, b)) => b == backend,
        None => true,
    }
}

/// Forgets the recorded messages that cannot concern a device of `backend` (the other
/// backends' probing while adapters were enumerated): called when a context opens its device,
/// so that neither its read-backs nor the binary's last check at exit see them.
pub fn forget_other_backends(backend: wgpu::Backend) {
    DRIVER
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|m| concerns_backend(m, backend));
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
            capture(record);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The EGL probe's message (seen under `selftest --validate` on a machine without GL) does
    /// not concern a Vulkan device; a Vulkan layer message does, and so does one of no backend.
    #[test]
    fn other_backends_messages_do_not_concern_the_device() {
        let egl =
            "wgpu_hal::gles::egl: EGL 'eglInitialize' code 0x3001: DRI2: failed to load driver";
        let layer = "wgpu_hal::vulkan::instance: VALIDATION [VUID-...] invalid descriptor";
        assert!(!concerns_backend(egl, wgpu::Backend::Vulkan));
        assert!(concerns_backend(egl, wgpu::Backend::Gl));
        assert!(concerns_backend(layer, wgpu::Backend::Vulkan));
        assert!(!concerns_backend(layer, wgpu::Backend::Metal));
        assert!(concerns_backend(
            "wgpu_hal::auxil: something",
            wgpu::Backend::Dx12
        ));
    }
}
