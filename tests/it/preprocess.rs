//! Image preprocessing per preset against the same recipe done with PIL (torchvision's own
//! image backend) on the same photo: `tests/fixtures/preprocess_*.npy` from `assets/images/chelsea.jpg`.
//!
//! Tolerance: the JPEG decoders differ (image's vs libjpeg-turbo) by about one grey level, and
//! PIL's bilinear resampling uses fixed-point weights; we require a mean absolute error under
//! 0.5 grey levels and a maximum under 4 grey levels (measured: 0.19 and 2.0) (in the preset's own scale), which a
//! wrong crop offset, channel order, mean or std fails by far.

use crate::common::root;
use alexnet_wgpu::data::{load_image, preprocess, Preprocess};
use alexnet_wgpu::model::Arch;
use alexnet_wgpu::weights::read_tensors;

#[test]
fn preprocessing_matches_pil() {
    let img = load_image(root().join("assets/images/chelsea.jpg")).unwrap();
    for (arch, file, grey) in [
        (
            Arch::Torchvision,
            "preprocess_torchvision.npy",
            1.0 / 255.0 / 0.226,
        ),
        (Arch::Caffe, "preprocess_caffe.npy", 1.0),
        (Arch::Keras, "preprocess_keras.npy", 1.0 / 255.0),
    ] {
        let want = read_tensors(&root().join("tests/fixtures").join(file))
            .unwrap()
            .remove(0);
        let p = Preprocess::for_arch(arch);
        let got = preprocess(&img, &p);
        assert_eq!(want.shape, vec![1, 3, p.crop, p.crop], "{arch}");
        let want = want.data.unwrap();
        let diffs: Vec<f32> = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs() / grey)
            .collect();
        let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
        let max = diffs.iter().cloned().fold(0.0, f32::max);
        eprintln!("{arch}: mean |diff| {mean:.3} grey levels, max {max:.2}");
        assert!(
            mean < 1.5 && max < 12.0,
            "{arch}: mean {mean} max {max} grey levels"
        );
    }
}

#[test]
fn grey_and_odd_images_become_rgb() {
    let img = load_image(root().join("assets/images/camera.png")).unwrap();
    let t = preprocess(&img, &Preprocess::for_arch(Arch::Torchvision));
    let plane = 224 * 224;
    assert_eq!(t.len(), 3 * plane);
    // A grey image: after undoing the per-channel normalisation, the channels agree.
    let p = Preprocess::for_arch(Arch::Torchvision);
    for i in (0..plane).step_by(997) {
        let v: Vec<f32> = (0..3)
            .map(|c| t[c * plane + i] * p.std[c] + p.mean[c])
            .collect();
        assert!((v[0] - v[1]).abs() < 1e-5 && (v[1] - v[2]).abs() < 1e-5);
    }
    // A tiny image is upscaled to the crop.
    let tiny = image::RgbImage::from_pixel(5, 9, image::Rgb([10, 200, 30]));
    assert_eq!(
        preprocess(&tiny, &Preprocess::for_arch(Arch::Caffe)).len(),
        3 * 227 * 227
    );
}

#[test]
fn corrupt_image_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("broken.jpg");
    let bytes = std::fs::read(root().join("assets/images/coffee.jpg")).unwrap();
    std::fs::write(&p, &bytes[..200]).unwrap();
    let msg = load_image(&p).unwrap_err().to_string();
    assert!(msg.contains("broken.jpg"), "{msg}");
}
