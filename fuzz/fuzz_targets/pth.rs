//! PyTorch `.pth` files: zip and legacy formats, through the restricted pickle machine.
#![no_main]

use std::path::Path;

use alexnet_wgpu::weights::{read_tensors_from_bytes, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = read_tensors_from_bytes(Format::Pth, data, Path::new("fuzz.pth"));
});
