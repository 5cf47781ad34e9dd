//! The image decoders as the input pipeline runs them on a file's bytes: the general path
//! (`data::decode_image`: JPEG, PNG, BMP, GIF, TIFF, WebP, guessed from the content, after the
//! header's size checks) and the fast JPEG path (`data::decode::decode_bytes`: libjpeg-turbo at
//! a reduced DCT scale, jpeg-decoder's scaled decode, the EXIF orientation). Run with
//! libFuzzer's default `-rss_limit_mb=2048`: a header that makes a decoder allocate what it
//! claims is a finding.
#![no_main]

use std::path::Path;

use alexnet_wgpu::data::decode::{decode_bytes, LoadOptions};
use alexnet_wgpu::data::{decode_image, Preprocess};
use alexnet_wgpu::model::Arch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.img");
    let _ = decode_image(data, path);
    let pre = Preprocess::for_arch(Arch::Torchvision);
    let _ = decode_bytes(path, data, &pre, LoadOptions::default());
});
