//! Keras HDF5 weights (`.h5`, `.weights.h5`) and `.keras` zip archives.
#![no_main]

use std::path::Path;

use alexnet_wgpu::weights::{read_tensors_from_bytes, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = read_tensors_from_bytes(Format::H5, data, Path::new("fuzz.h5"));
});
