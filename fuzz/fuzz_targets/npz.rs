//! `.npz` archives and single `.npy` arrays (an input that starts like an `.npy` is read as
//! one, anything else as an `.npz`).
#![no_main]

use std::path::Path;

use alexnet_wgpu::weights::{read_tensors_from_bytes, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let format = if data.starts_with(b"\x93NUMPY") {
        Format::Npy
    } else {
        Format::Npz
    };
    let _ = read_tensors_from_bytes(format, data, Path::new("fuzz.npz"));
});
