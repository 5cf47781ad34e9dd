//! The image decoder front end (`data::decode_image`, what `load_image` runs on a file's bytes):
//! JPEG, PNG, BMP, GIF, TIFF, WebP, guessed from the content.
#![no_main]

use std::path::Path;

use alexnet_wgpu::data::decode_image;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_image(data, Path::new("fuzz.img"));
});
