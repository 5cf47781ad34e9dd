//! `.onnx` models: protobuf decoding, the graph followed from its input (initializers, shapes,
//! attributes, pads), then the layers matched against a preset (`model::formats::from_onnx`).
//! The path names a folder that does not exist, so external data is always a missing file.
#![no_main]

use std::path::Path;

use alexnet_wgpu::model::formats::from_onnx;
use alexnet_wgpu::weights::onnx::read_onnx_bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("/nonexistent-fuzz-dir/fuzz.onnx");
    if let Ok(m) = read_onnx_bytes(path, data) {
        let _ = from_onnx(path, m, None);
    }
});
