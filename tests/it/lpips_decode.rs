//! `alexnet lpips` reads image files as the `lpips` package does (`cv2.imread`): JPEGs through
//! libjpeg-turbo with the accurate IDCT and fancy upsampling at full scale, 16-bit PNGs by
//! their high byte. The fixtures (`tests/fixtures/lpips/decode/`,
//! `scripts/make_lpips_decode_fixtures.py`) hold small files and the pixels `cv2.imread` gave
//! for them (issue 28, defect 10: distances were 0.14-0.55 % off on JPEGs).

use image::RgbImage;

use crate::common;

const FILES: [&str; 7] = [
    "q420.jpg",
    "q444.jpg",
    "q422.jpg",
    "prog.jpg",
    "grey.jpg",
    "rgb16.png",
    "grey16.png",
];

/// A `uint8` `.npy` of shape [H, W, 3] (C order), as the fixture script writes it.
fn rgb_npy(name: &str) -> RgbImage {
    let bytes = std::fs::read(common::fixture(&format!("lpips/decode/{name}"))).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00", "{name}: npy version 1.0");
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
    assert!(header.contains("'descr': '|u1'"), "{name}: {header}");
    assert!(
        header.contains("'fortran_order': False"),
        "{name}: {header}"
    );
    let shape = &header[header.find("'shape': (").unwrap() + 10..];
    let dims: Vec<u32> = shape[..shape.find(')').unwrap()]
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().unwrap())
        .collect();
    assert_eq!(dims.len(), 3, "{name}: {header}");
    assert_eq!(dims[2], 3, "{name}: {header}");
    RgbImage::from_raw(dims[1], dims[0], bytes[10 + len..].to_vec()).unwrap()
}

/// The largest difference of two same-sized images, in grey levels, and how many differ.
fn diff(a: &RgbImage, b: &RgbImage) -> (u8, usize) {
    assert_eq!(a.dimensions(), b.dimensions());
    let mut max = 0;
    let mut n = 0;
    for (x, y) in a.as_raw().iter().zip(b.as_raw()) {
        let d = x.abs_diff(*y);
        max = max.max(d);
        n += (d > 0) as usize;
    }
    (max, n)
}

#[test]
fn jpegs_and_16_bit_pngs_decode_to_cv2s_pixels() {
    let mut old_differs = Vec::new();
    for file in FILES {
        let path = common::fixture(&format!("lpips/decode/{file}"));
        let want = rgb_npy(&format!("{}.npy", file.split('.').next().unwrap()));
        let got = alexnet_wgpu::lpips::load_image(&path, None).unwrap();
        let (max, n) = diff(&got, &want);
        assert_eq!(
            (max, n),
            (0, 0),
            "{file}: {n} samples differ from cv2.imread's, by up to {max}"
        );
        // The fixtures can tell decoders apart: `image`'s decode (zune-jpeg; 16-bit rounded to
        // the nearest level), which lpips used before, differs from cv2's on these.
        let before = alexnet_wgpu::data::load_image(&path).unwrap();
        let (max, n) = diff(&before, &want);
        println!("{file}: `image`'s decode differs from cv2's in {n} samples, by up to {max}");
        if n > 0 {
            old_differs.push(file);
        }
    }
    assert_eq!(
        old_differs.len(),
        FILES.len(),
        "the fixtures no longer tell the decoders apart: only {old_differs:?} differ"
    );
}
