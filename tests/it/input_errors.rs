//! Per-input failures as values: each way an input can fail gives an [`InputError`] of its own
//! [`InputErrorKind`], with the path as given, through the library calls a program makes
//! (decoding, `images_in`, LPIPS' reader, weights files). No GPU.

use std::path::Path;

use alexnet_wgpu::{Error, InputError, InputErrorKind};

fn input(r: alexnet_wgpu::Result<impl std::fmt::Debug>) -> InputError {
    match r {
        Err(Error::Input(e)) => e,
        other => panic!("expected an input error, got {other:?}"),
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn each_way_an_image_fails_has_its_kind() {
    let dir = tempfile::tempdir().unwrap();
    let whole = std::fs::read(root().join("assets/images/chelsea.jpg")).unwrap();
    let cut = dir.path().join("cut.jpg");
    std::fs::write(&cut, &whole[..whole.len() / 3]).unwrap();
    let junk = dir.path().join("junk.jpg");
    std::fs::write(&junk, b"this is not a JPEG at all, only text").unwrap();
    let missing = dir.path().join("missing.png");
    let load = |p: &Path| alexnet_wgpu::data::load_image(p);

    let e = input(load(&cut));
    assert_eq!(
        (e.kind, e.path.as_path()),
        (InputErrorKind::Truncated, cut.as_path())
    );
    assert!(e.to_string().starts_with(&cut.display().to_string()), "{e}");
    assert_eq!(input(load(&junk)).kind, InputErrorKind::Decode);
    assert_eq!(input(load(&missing)).kind, InputErrorKind::NotFound);
    assert_eq!(input(load(dir.path())).kind, InputErrorKind::NotAFile);

    // LPIPS' reader: the same kinds, and too small for the trunk.
    let tiny = dir.path().join("tiny.png");
    image::RgbImage::new(20, 40).save(&tiny).unwrap();
    let e = input(alexnet_wgpu::lpips::load_image(&tiny, None));
    assert_eq!(
        (e.kind, e.path.as_path()),
        (InputErrorKind::TooSmall, tiny.as_path())
    );
    assert_eq!(
        input(alexnet_wgpu::lpips::load_image(&cut, None)).kind,
        InputErrorKind::Truncated
    );
}

#[test]
fn folders_and_weights_files_fail_as_inputs_too() {
    let dir = tempfile::tempdir().unwrap();
    let e = input(alexnet_wgpu::images_in(dir.path().join("nope")));
    assert_eq!(e.kind, InputErrorKind::NotFound);
    assert_eq!(
        input(alexnet_wgpu::images_in(dir.path())).kind,
        InputErrorKind::Empty
    );
    // A missing weights file is the same kind of error as a missing folder.
    let e = input(alexnet_wgpu::weights::read_tensors(
        &dir.path().join("w.npz"),
    ));
    assert_eq!(e.kind, InputErrorKind::NotFound, "{e}");
    let bad = dir.path().join("w.npz");
    std::fs::write(&bad, b"PK\x03\x04 not really a zip").unwrap();
    let e = input(alexnet_wgpu::weights::read_tensors(&bad));
    assert_eq!(e.path, bad);
    assert_eq!(e.kind, InputErrorKind::Malformed, "{e}");
}
