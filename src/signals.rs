//! The binary's signal handling: SIGINT, SIGTERM and SIGHUP each run one cleanup function on
//! an ordinary thread, which is told the signal's number, so the process can exit with
//! 128 + that number as shells report it (130, 143, 129). The ctrlc crate (still used on
//! Windows) reports all three alike, and every one exited 130.
//!
//! The handler itself only writes the signal number to a pipe (`write` is async-signal-safe);
//! a thread blocked on the pipe's other end runs the cleanup, where locks and allocation are
//! allowed.

use std::sync::atomic::{AtomicI32, Ordering};

/// The pipe's write end, for the handler (-1 until installed).
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = PIPE_WRITE.load(Ordering::Relaxed);
    let byte = sig as u8;
    // SAFETY: write(2) on a valid descriptor with a 1-byte buffer; async-signal-safe. A full
    // pipe (signals arriving faster than the thread reads) drops the byte, which is harmless:
    // the first signal already ends the process.
    unsafe {
        libc::write(fd, (&byte as *const u8).cast(), 1);
    }
}

/// Installs the handlers for SIGINT, SIGTERM and SIGHUP: `cleanup(signal)` runs on a thread
/// of its own for the first signal that arrives (and is expected to exit the process).
pub fn install(cleanup: impl Fn(i32) + Send + 'static) -> std::io::Result<()> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe(2) fills the two descriptors; fcntl sets close-on-exec on each, so child
    // processes do not inherit them.
    unsafe {
        if libc::pipe(fds.as_mut_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        for fd in fds {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
    let [read_end, write_end] = fds;
    PIPE_WRITE.store(write_end, Ordering::Relaxed);
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            let mut byte = 0u8;
            // SAFETY: read(2) of one byte into a local.
            let n = unsafe { libc::read(read_end, (&mut byte as *mut u8).cast(), 1) };
            if n == 1 {
                cleanup(byte as i32);
            } else if n < 0
                && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
            {
                continue;
            } else {
                return;
            }
        })?;
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction with an empty mask and our handler; SA_RESTART so that
        // interrupted system calls of the main thread resume rather than fail with EINTR
        // while the cleanup thread runs.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}
