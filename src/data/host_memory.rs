//! Host memory that settings size (rows per batch, cached rows): refused before any work when
//! it cannot fit, naming the bytes it would take, instead of an allocation that aborts (or,
//! under a memory limit, a copy that segfaults) mid-run; and the bound on the input rows of one
//! pipeline item of augmented views.

use crate::error::{Error, Result};

/// The most one host batch buffer may hold (the decode pipeline keeps two): 1 GiB, about
/// 1780 images (or augmented views) at 224x224. Far above the default batches
/// (at most 64 images, 39 MB), and small enough that two buffers and the network's own
/// buffers fit a small machine.
pub const BATCH_BUFFER_LIMIT: u64 = 1 << 30;

/// Refuses a batch buffer of `rows` rows of `row_len` floats over [`BATCH_BUFFER_LIMIT`];
/// `what` says what the rows are ("images of 3x224x224 per batch").
pub fn check_batch(rows: usize, row_len: usize, what: &str) -> Result<()> {
    check_batch_of(rows, row_len, 4, what)
}

/// [`check_batch`] for rows of `value_bytes`-byte values (1 for the u8 pixels of images).
pub fn check_batch_of(rows: usize, row_len: usize, value_bytes: usize, what: &str) -> Result<()> {
    let bytes = rows as u128 * row_len as u128 * value_bytes as u128;
    if bytes > BATCH_BUFFER_LIMIT as u128 {
        return Err(Error::Invalid(format!(
            "{rows} {what} need {} of host memory per batch buffer, over the {} limit: \
             use fewer rows per batch",
            size(bytes),
            size(BATCH_BUFFER_LIMIT as u128)
        )));
    }
    Ok(())
}

/// Augmented views are made in pipeline items of at most this many bytes of input rows
/// ([`BATCH_BUFFER_LIMIT`] unless [`with_view_item_limit`] lowers it): an image's views beyond
/// it are split over several items (`train::features`), so any `--augment` count runs in
/// bounded host memory. A thread-local, so a test lowering it does not change the runs of the
/// tests beside it.
pub fn view_item_limit() -> u64 {
    VIEW_ITEM_LIMIT.with(|l| l.get())
}

thread_local! {
    static VIEW_ITEM_LIMIT: std::cell::Cell<u64> = const { std::cell::Cell::new(BATCH_BUFFER_LIMIT) };
}

/// Runs `f` with [`view_item_limit`] lowered to `bytes` on this thread (to exercise the split
/// of an image's views on small inputs), then restores it.
#[doc(hidden)]
pub fn with_view_item_limit<R>(bytes: u64, f: impl FnOnce() -> R) -> R {
    let old = VIEW_ITEM_LIMIT.with(|l| l.replace(bytes));
    struct Restore(u64);
    impl Drop for Restore {
        fn drop(&mut self) {
            VIEW_ITEM_LIMIT.with(|l| l.set(self.0));
        }
    }
    let _restore = Restore(old);
    f()
}

/// Refuses to keep `bytes` resident (a cache of rows in memory) when they exceed the machine's
/// physical memory (`MemTotal` where `/proc/meminfo` says; else 1 TiB, no refusal in practice).
pub fn check_resident(bytes: u128, what: &str) -> Result<()> {
    let total = physical_memory().unwrap_or(1 << 40);
    if bytes > total as u128 {
        return Err(Error::Invalid(format!(
            "{what} would need {} of memory, more than this machine's {}",
            size(bytes),
            size(total as u128)
        )));
    }
    Ok(())
}

/// The machine's physical memory in bytes, from `/proc/meminfo` (Linux), read bounded.
pub fn physical_memory() -> Option<u64> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open("/proc/meminfo")
        .ok()?
        .take(64 << 10)
        .read_to_string(&mut text)
        .ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// `1.5 GiB`, `602 MiB`.
fn size(bytes: u128) -> String {
    let b = bytes as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{:.1} GiB", b / (1u64 << 30) as f64)
    } else {
        format!("{:.0} MiB", b / (1u64 << 20) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_over_the_limit_are_refused_naming_the_size() {
        assert!(check_batch(64, 3 * 224 * 224, "images").is_ok());
        let e = check_batch(4096, 3 * 224 * 224, "augmented views of one image").unwrap_err();
        assert!(e.to_string().contains("2.3 GiB"), "{e}");
        assert!(check_batch(usize::MAX, usize::MAX, "rows").is_err());
        assert!(check_resident(u128::MAX, "the cache").is_err());
        assert!(check_resident(1, "the cache").is_ok());
    }
}
