//! Images uploaded as 8-bit pixels and normalised on the GPU (`normalize_u8.wgsl`) against the
//! CPU path they replace (`crop_normalise`: crop, then the per-channel table into f32 NCHW).
//!
//! Tolerance 0 (bit equality): both sides read the same f32 values out of the same table
//! (`data::norm_table`) and do no arithmetic on them, so any difference is a wrong byte, channel,
//! plane or image. For whole networks the f32 input buffer is then the same bits, so the same
//! kernels give the same logits bit for bit. The runner on image files (what `classify`,
//! `eval`, `features` and the facade run) is checked against the sequential f32 path in
//! `tests/it/pipeline.rs`.

use crate::common;

use alexnet_wgpu::data::{crop_normalise, crop_pixels, norm_table, Preprocess};
use alexnet_wgpu::gpu::{read_back_f32, storage_buffer, upload, upload_f32};
use alexnet_wgpu::kernels::{self, Kernels, Precision};
use alexnet_wgpu::model::{Arch, Input, Network, Weights};
use image::RgbImage;
use rand::{Rng, SeedableRng};

/// A random image of `w` x `h` (every byte value likely, so every table entry is used).
fn random_image(w: u32, h: u32, seed: u64) -> RgbImage {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let raw: Vec<u8> = (0..3 * w * h).map(|_| rng.random()).collect();
    RgbImage::from_raw(w, h, raw).unwrap()
}

/// Bytes packed into little-endian words, the last one zero-padded (as the plan uploads them).
fn words(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks(4)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(w)
        })
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The kernel alone on batches of images cropped on the CPU, against `crop_normalise` of the
/// same images: RGB and BGR presets, crops whose rows (and images) are not whole words (5 x 5
/// x 3 = 75 bytes, 227 x 3 = 681 bytes per row), batch 1 and several, the output poisoned with
/// NaN first so an unwritten value fails too.
#[test]
fn the_gpu_normalises_pixels_as_crop_normalise_does() {
    let ctx = common::ctx();
    let k = Kernels::new(&ctx);
    let tiny = |p: Preprocess, crop: usize| Preprocess {
        crop,
        resize: crop,
        ..p
    };
    let cases = [
        (tiny(Preprocess::TORCHVISION, 5), 1, "torchvision 5x5 b1"),
        (tiny(Preprocess::CAFFE, 5), 3, "caffe (BGR) 5x5 b3"),
        (tiny(Preprocess::KERAS, 7), 2, "keras 7x7 b2"),
        (Preprocess::CAFFE, 2, "caffe 227 b2"),
        (Preprocess::TORCHVISION, 1, "torchvision 224 b1"),
    ];
    for (seed, (pre, batch, what)) in cases.into_iter().enumerate() {
        let c = pre.crop;
        let plane = c * c;
        let (mut pixels, mut want) = (vec![0u8; batch * 3 * plane], vec![0f32; batch * 3 * plane]);
        for n in 0..batch {
            // Larger than the crop, odd margins: the crop's offset matters.
            let img = random_image(c as u32 + 3, c as u32 + 2, 100 * seed as u64 + n as u64);
            crop_pixels(&img, &pre, &mut pixels[n * 3 * plane..(n + 1) * 3 * plane]);
            crop_normalise(&img, &pre, &mut want[n * 3 * plane..(n + 1) * 3 * plane]);
        }
        let table = norm_table(&pre);
        // The kernel's own CPU reference agrees with the preprocessing it replaces.
        let reference = kernels::normalize_u8::reference(&pixels, &table, plane);
        assert_eq!(bits(&reference), bits(&want), "{what}: reference");
        let src = upload(&ctx, "pixels", &words(&pixels)).unwrap();
        let lut = upload_f32(&ctx, "table", table.as_flattened()).unwrap();
        let out = upload_f32(&ctx, "out", &vec![f32::NAN; want.len()]).unwrap();
        let d = kernels::normalize_u8::dispatch(&ctx, &k, batch, plane, &src, &lut, &out).unwrap();
        kernels::run(&ctx, &[d]).unwrap();
        let got = read_back_f32(&ctx, &out, want.len()).unwrap();
        assert_eq!(bits(&got), bits(&want), "{what}");
    }
    // An empty batch is a shape error, not a dispatch of nothing.
    let b = storage_buffer(&ctx, "b", 4, "").unwrap();
    assert!(kernels::normalize_u8::dispatch(&ctx, &k, 0, 25, &b, &b, &b).is_err());
}

/// Random images of one preset, cropped on the CPU: `(f32 rows, pixels)` of `batch` images.
fn batch_of(pre: &Preprocess, batch: usize, seed: u64) -> (Vec<f32>, Vec<u8>) {
    let len = 3 * pre.crop * pre.crop;
    let (mut rows, mut pixels) = (vec![0f32; batch * len], vec![0u8; batch * len]);
    for n in 0..batch {
        let img = random_image(pre.crop as u32 + 29, pre.crop as u32 + 1, seed + n as u64);
        crop_normalise(&img, pre, &mut rows[n * len..(n + 1) * len]);
        crop_pixels(&img, pre, &mut pixels[n * len..(n + 1) * len]);
    }
    (rows, pixels)
}

/// Whole networks: the pixel route's logits and pool5 features are the f32 route's bit for bit
/// (reduced-width torchvision at 224, RGB, and Caffe at 227, BGR with odd rows; batch 3 and 1),
/// also when the two routes alternate on one plan (its upload buffers are shared by size), when
/// the batch runs as sub-batches under a lowered binding limit and with f16 weights (whose
/// input is f32 too); a pixel input of the wrong size is refused.
#[test]
fn the_pixel_route_gives_the_f32_routes_logits_bit_for_bit() {
    for (file, arch) in [
        ("torchvision_small.npz", Arch::Torchvision),
        ("caffe_small.npz", Arch::Caffe),
    ] {
        let ctx = common::ctx();
        let w = Weights::load(common::fixture(file), Some(arch)).unwrap();
        let pre = Preprocess::for_arch(arch);
        let table = norm_table(&pre);
        let (h, wd) = (pre.crop, pre.crop);
        let mut net = Network::new(&ctx, &w).unwrap();
        for (batch, seed) in [(3, 10), (1, 20)] {
            let (rows, pixels) = batch_of(&pre, batch, seed);
            let want = net.forward(&rows, batch, h, wd, true).unwrap();
            let px = Input::Pixels(&pixels, &table);
            for round in 0..2 {
                let got = net.forward_input(px, batch, h, wd, true).unwrap();
                assert_eq!(
                    bits(&got.logits),
                    bits(&want.logits),
                    "{file} b{batch} {round}"
                );
                assert_eq!(
                    bits(got.features.as_ref().unwrap()),
                    bits(want.features.as_ref().unwrap()),
                    "{file} b{batch} pool5"
                );
                // The f32 route again on the same plan: its own input, not the pixels'.
                let again = net.forward(&rows, batch, h, wd, false).unwrap();
                assert_eq!(bits(&again.logits), bits(&want.logits), "{file} b{batch}");
            }
            let err = net
                .forward_input(Input::Pixels(&pixels[1..], &table), batch, h, wd, false)
                .unwrap_err();
            assert!(err.to_string().contains("expected"), "{err}");
        }
        // Sub-batches: 3 images of 224 (or 227) do not fit a 1 MiB binding.
        let mut small = ctx.clone();
        small.limits.max_storage_buffer_binding_size = 1 << 20;
        let mut net = Network::new(&small, &w).unwrap();
        let batch = 3;
        assert!(net.fitting_batch(batch, h, wd).unwrap() < batch);
        let (rows, pixels) = batch_of(&pre, batch, 30);
        let want = net.forward(&rows, batch, h, wd, false).unwrap();
        let got = net
            .forward_input(Input::Pixels(&pixels, &table), batch, h, wd, false)
            .unwrap();
        assert_eq!(bits(&got.logits), bits(&want.logits), "{file} sub-batches");
        // f16 weights: the input (and the activations) stay f32, normalised the same way.
        let mut net = Network::with_precision(&ctx, &w, Precision::F16).unwrap();
        let (rows, pixels) = batch_of(&pre, 2, 40);
        let want = net.forward(&rows, 2, h, wd, false).unwrap();
        let got = net
            .forward_input(Input::Pixels(&pixels, &table), 2, h, wd, false)
            .unwrap();
        assert_eq!(bits(&got.logits), bits(&want.logits), "{file} f16");
    }
}
