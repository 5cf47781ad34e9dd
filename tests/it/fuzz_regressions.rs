//! Hostile weight files, each once a crash, hang or huge allocation (found by the fuzz targets
//! in `fuzz/` or by reading the readers by hand), now a clear error. The inputs are committed
//! under `tests/fixtures/fuzz/` (made by `scripts/make_fuzz_fixtures.py`); each test reads the
//! file from disk and from memory, and must finish well inside a second.

use std::time::{Duration, Instant};

use crate::common::fixture;
use alexnet_wgpu::weights::{read_tensors, read_tensors_from_bytes, Format};

/// Reads `name` both ways; both must fail, quickly, naming the file and saying `expect`.
fn refused(name: &str, expect: &str) {
    let path = fixture(&format!("fuzz/{name}"));
    let bytes = std::fs::read(&path).unwrap();
    let start = Instant::now();
    let from_file = read_tensors(&path)
        .map(|t| t.len())
        .unwrap_err()
        .to_string();
    let from_bytes = read_tensors_from_bytes(Format::of_path(&path), &bytes, &path)
        .map(|t| t.len())
        .unwrap_err()
        .to_string();
    let took = start.elapsed();
    for msg in [&from_file, &from_bytes] {
        assert!(msg.contains(name), "{msg}");
        assert!(msg.contains(expect), "expected '{expect}' in: {msg}");
    }
    assert_eq!(from_file, from_bytes);
    // Generous for a debug build on a loaded machine; the bugs took minutes or ran out of memory.
    assert!(took < Duration::from_secs(5), "{name} took {took:?}");
}

/// A version 2 `.npy` header length is a u32: 4 GiB claimed in a 20-byte file was allocated
/// (zeroed) by npyz before anything was read.
#[test]
fn npy_header_4gib() {
    refused("npy_header_4gib.npy", "the header claims 4294967040 bytes");
}

/// Found by the `npz` target (a timeout): an `.npy` header of 109 unclosed `{` made npyz's
/// Python-literal parser (a PEG) backtrack exponentially (8 levels 7 s, 12 levels 6 minutes).
#[test]
fn npy_header_nested_braces() {
    refused(
        "npy_header_nested_braces.npy",
        "brackets deep (an array's needs 2",
    );
}

/// Zip members that overlap (one member's data listed under 65 names) multiplied the file.
#[test]
fn npz_overlapping_members() {
    refused("npz_overlapping_members.npz", "overlapping members");
}

/// The same for a `.pth`: 64 storages that are one zip member.
#[test]
fn pth_overlapping_storages() {
    refused("pth_overlapping_storages.pth", "overlapping members");
}

/// One storage named by 2000 keys: each key gathered a copy (8M elements from 16 KiB; a 1 MB
/// file could ask for tens of GB).
#[test]
fn pth_repeated_storage() {
    refused(
        "pth_repeated_storage.pth",
        "times the 4096 elements of the storages",
    );
}

/// Appending to a memoized list copies it (copy on write): 2000 appends copied 2M items; the
/// copying is now budgeted by the pickle's size (quadratic time before).
#[test]
fn pickle_copy_quadratic() {
    refused("pickle_copy_quadratic.pth", "copies shared containers");
}

/// A persistent id that is a 40-deep DAG of 6-tuples: describing it in the error message
/// visited 6^40 paths (a hang).
#[test]
fn pickle_describe_dag() {
    refused(
        "pickle_describe_dag.pth",
        "unsupported persistent id ((((...",
    );
}

/// HDF5 datasets declaring 100000 x 100000 float32 (40 GB) in a 1.4 KiB file: the decoder
/// allocated and zeroed all of it.
#[test]
fn h5_huge_contiguous() {
    refused(
        "h5_huge_contiguous.h5",
        "does not fit in the 1400-byte file",
    );
}

/// The same, chunked (no chunk ever written).
#[test]
fn h5_huge_chunked() {
    refused("h5_huge_chunked.h5", "does not fit in the 1400-byte file");
}

/// A bzip2 (or zstd) member's expansion has no useful bound (bzip2's run-length stages reach
/// millions to one); numpy never writes them, so they are refused before decompressing.
#[test]
fn npz_bzip2_member() {
    refused(
        "npz_bzip2_member.npz",
        "numpy writes members stored or deflated",
    );
}

/// A deflated member declaring 4 GiB from 64 compressed bytes: more than deflate's ~1032:1 can
/// give, so forged; refused before the declared size sizes anything.
#[test]
fn npz_deflate_forged_size() {
    refused(
        "npz_deflate_forged_size.npz",
        "more than its compression can give",
    );
}
