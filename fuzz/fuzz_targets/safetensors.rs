//! `.safetensors` files: the tensors (the `safetensors` crate's header checks, then our dtype
//! conversion), the header's `__metadata__`, and the tensors as a preset's weights.
#![no_main]

use std::path::Path;

use alexnet_wgpu::model::params::from_raw;
use alexnet_wgpu::weights::safetensors::metadata_of_header;
use alexnet_wgpu::weights::{read_tensors_from_bytes, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.safetensors");
    if data.len() >= 8 {
        let n = u64::from_le_bytes(data[..8].try_into().unwrap());
        if let Some(json) = usize::try_from(n).ok().and_then(|n| data[8..].get(..n)) {
            let _ = metadata_of_header(path, json);
        }
    }
    if let Ok(raw) = read_tensors_from_bytes(Format::Safetensors, data, path) {
        let _ = from_raw(path, raw, None);
    }
});
