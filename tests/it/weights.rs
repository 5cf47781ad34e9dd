//! Weight files that must be refused, with messages naming the file, the key, and the expected
//! and found shapes; and the formats that must load.

use crate::common::fixture;
use alexnet_wgpu::model::Arch;
use alexnet_wgpu::model::Weights;
use alexnet_wgpu::weights::{read_tensors, write_npz, NpzEntry};

fn load_err(name: &str, arch: Option<Arch>) -> String {
    match Weights::load(fixture(name), arch) {
        Ok(_) => panic!("{name} loaded but must be refused"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let msg = load_err("bad_shapes.npz", None);
    assert!(msg.contains("bad_shapes.npz"), "{msg}");
    assert!(
        msg.contains(
            "key 'features.3.weight': expected shape [40, 12, 5, 5], found [40, 11, 5, 5]"
        ),
        "{msg}"
    );
    assert!(
        msg.contains("missing key 'classifier.1.bias' (expected shape [100])"),
        "{msg}"
    );
    assert!(msg.contains("unexpected key 'extra.weight'"), "{msg}");
}

#[test]
fn integer_dtype_is_refused() {
    let msg = load_err("bad_int.npz", None);
    assert!(
        msg.contains("features.0.weight") && msg.contains("integer"),
        "{msg}"
    );
}

#[test]
fn pickled_object_array_is_refused() {
    let msg = load_err("bad_object.npz", None);
    assert!(
        msg.contains("classifier.1.weight") && msg.contains("pickled"),
        "{msg}"
    );
}

#[test]
fn truncated_npz_is_refused() {
    let msg = load_err("bad_truncated.npz", None);
    assert!(
        msg.contains("bad_truncated.npz") && msg.contains("truncated"),
        "{msg}"
    );
}

#[test]
fn unrelated_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("other.npz");
    write_npz(&p, &[("foo".into(), NpzEntry::F32(&[2], &[1.0, 2.0]))]).unwrap();
    let msg = Weights::load(&p, None).unwrap_err().to_string();
    assert!(
        msg.contains("no AlexNet weights recognised") && msg.contains("foo"),
        "{msg}"
    );
    let missing = Weights::load(dir.path().join("nope.npz"), None)
        .unwrap_err()
        .to_string();
    assert!(missing.contains("nope.npz"), "{missing}");
}

#[test]
fn wrong_arch_for_the_file_names_the_mismatch() {
    // Caffe's grouped weights forced into the plain Keras net: conv2 has half the input
    // channels. (torchvision's names under another arch: `torchvision_names_refuse_another_arch`.)
    let msg = load_err("caffe_small.npz", Some(Arch::Keras));
    assert!(
        msg.contains("'keras'") && msg.contains("key 'conv2.weight': expected shape"),
        "{msg}"
    );
}

#[test]
fn non_finite_values_are_refused() {
    let raw = read_tensors(&fixture("torchvision_small.npz")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nan.npz");
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = raw
        .into_iter()
        .map(|t| (t.key, t.shape, t.data.unwrap()))
        .collect();
    tensors
        .iter_mut()
        .find(|t| t.0 == "classifier.4.weight")
        .unwrap()
        .2[3] = f32::NAN;
    let entries: Vec<(String, NpzEntry)> = tensors
        .iter()
        .map(|(k, s, d)| (k.clone(), NpzEntry::F32(s, d)))
        .collect();
    write_npz(&p, &entries).unwrap();
    let msg = Weights::load(&p, None).unwrap_err().to_string();
    assert!(
        msg.contains("classifier.4.weight") && msg.contains("non-finite"),
        "{msg}"
    );
}

#[test]
fn keras_prefixed_and_suffixed_names_and_npy_directories_load() {
    let raw = read_tensors(&fixture("keras_small.npz")).unwrap();
    let reference = Weights::load(fixture("keras_small.npz"), None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Keras 3 prefixes the model name; TensorFlow 2 appends ":0"; layers numbered from 5 (a
    // second model in the same session); stored as a directory of .npy files.
    for t in &raw {
        let (layer, leaf) = t.key.split_once('/').unwrap();
        let renamed = match layer.split_once('_') {
            Some((base, n)) => format!("{base}_{}", n.parse::<usize>().unwrap() + 5),
            None => format!("{layer}_5"),
        };
        let sub = dir.path().join("sequential_1").join(renamed);
        std::fs::create_dir_all(&sub).unwrap();
        let file = sub.join(format!("{leaf}:0.npy"));
        alexnet_wgpu::weights::write_npy(&file, &t.shape, t.data.as_ref().unwrap()).unwrap();
    }
    let w = Weights::load(dir.path(), None).unwrap();
    assert_eq!(w.arch, Arch::Keras);
    assert_eq!(w.widths, reference.widths);
    assert_eq!(w.tensors, reference.tensors);
}

#[test]
fn class_count_comes_from_the_last_layer() {
    let w = Weights::load(fixture("torchvision_small.npz"), None).unwrap();
    assert_eq!(w.widths.classes, 7);
    assert_eq!(w.widths.conv, [12, 40, 56, 44, 28]);
    assert_eq!((w.widths.fc6, w.widths.fc7), (100, 90));
}

#[test]
fn saved_weights_keep_their_naming_and_load_back_identically() {
    let dir = tempfile::tempdir().unwrap();
    for (file, first_key) in [
        ("keras_small.npz", "conv2d/kernel"),
        ("torchvision_small.npz", "features.0.weight"),
        ("caffe_small.npz", "conv1.weight"),
    ] {
        let w = Weights::load(fixture(file), None).unwrap();
        let p = dir.path().join(file);
        w.save_npz(&p, vec![]).unwrap();
        // Same keys, shapes and values as the source file (Keras: HWIO, [in, out], NHWC rows).
        let mut orig: Vec<_> = read_tensors(&fixture(file))
            .unwrap()
            .into_iter()
            .map(|t| (t.key, t.shape, t.data.unwrap()))
            .collect();
        let mut saved: Vec<_> = read_tensors(&p)
            .unwrap()
            .into_iter()
            .map(|t| (t.key, t.shape, t.data.unwrap()))
            .collect();
        orig.sort_by(|a, b| a.0.cmp(&b.0));
        saved.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(saved, orig, "{file}");
        assert!(saved.iter().any(|t| t.0 == first_key));
        let back = Weights::load(&p, None).unwrap();
        assert_eq!((back.arch, back.tensors), (w.arch, w.tensors), "{file}");
    }
}

/// A version 1 `.npy` header for float32 of `shape` (a Python tuple), padded as numpy pads it.
fn npy_header(shape: &str) -> Vec<u8> {
    let mut dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// Sizes are checked before anything is inflated or read: a header whose shape needs more
/// bytes than the array holds, and a deflated member declaring more than 1 GiB (the ratio
/// check alone let a 4 MB archive inflate 4.1 GB before it was refused).
#[test]
fn npz_sizes_are_checked_before_inflating() {
    let dir = tempfile::tempdir().unwrap();
    // A header claiming a million floats over 16 bytes of data.
    let p = dir.path().join("short.npy");
    let mut bytes = npy_header("(1000000,)");
    bytes.extend_from_slice(&[0; 16]);
    std::fs::write(&p, &bytes).unwrap();
    let msg = read_tensors(&p).unwrap_err().to_string();
    assert!(
        msg.contains("short.npy")
            && msg.contains("needs 4000000 bytes")
            && msg.contains("holds 16"),
        "{msg}"
    );
    // A member stored with 1.1 MB, then marked deflated and declaring 1 GiB + 4 KiB (within
    // deflate's 1032:1): refused from the directory, before any inflating.
    let p = dir.path().join("bomb.npz");
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::FileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(false);
    zip.start_file("big.npy", opts).unwrap();
    let mut member = npy_header("(268436480,)");
    member.resize(1_100_000, 0);
    std::io::Write::write_all(&mut zip, &member).unwrap();
    let mut bytes = zip.finish().unwrap().into_inner();
    let size = ((1u32 << 30) + 4096).to_le_bytes();
    // Local header: method at 8, uncompressed size at 22; central directory entry: 10 and 24.
    bytes[8..10].copy_from_slice(&8u16.to_le_bytes());
    bytes[22..26].copy_from_slice(&size);
    let cd = bytes.windows(4).rposition(|w| w == b"PK\x01\x02").unwrap();
    bytes[cd + 10..cd + 12].copy_from_slice(&8u16.to_le_bytes());
    bytes[cd + 24..cd + 28].copy_from_slice(&size);
    std::fs::write(&p, &bytes).unwrap();
    let start = std::time::Instant::now();
    let msg = read_tensors(&p).unwrap_err().to_string();
    assert!(
        msg.contains("bomb.npz") && msg.contains("'big.npy'") && msg.contains("inflates to"),
        "{msg}"
    );
    assert!(
        start.elapsed().as_secs_f64() < 1.0,
        "refused before inflating"
    );
}

/// The whole archive's inflated total is capped too, before anything is inflated: two members
/// each under the 1 GiB member cap and within deflate's ratio, 1.8 GB together from a 1.8 MB
/// file (16 such members inflated 5.4 GB and aborted).
#[test]
fn npz_inflated_total_is_capped_per_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bombs.npz");
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::FileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(false);
    let declared: u32 = 900_000_000;
    for name in ["a.npy", "b.npy"] {
        zip.start_file(name, opts).unwrap();
        let mut member = npy_header(&format!("({},)", (declared as usize - 128) / 4));
        member.resize(900_000, 0);
        std::io::Write::write_all(&mut zip, &member).unwrap();
    }
    let mut bytes = zip.finish().unwrap().into_inner();
    // Each member marked deflated and declaring 900 MB, in its local header and its central
    // directory entry.
    let size = declared.to_le_bytes();
    let locals: Vec<usize> = (0..bytes.len() - 4)
        .filter(|&i| bytes[i..i + 4] == *b"PK\x03\x04")
        .collect();
    let centrals: Vec<usize> = (0..bytes.len() - 4)
        .filter(|&i| bytes[i..i + 4] == *b"PK\x01\x02")
        .collect();
    assert_eq!((locals.len(), centrals.len()), (2, 2));
    for l in locals {
        bytes[l + 8..l + 10].copy_from_slice(&8u16.to_le_bytes());
        bytes[l + 22..l + 26].copy_from_slice(&size);
    }
    for c in centrals {
        bytes[c + 10..c + 12].copy_from_slice(&8u16.to_le_bytes());
        bytes[c + 24..c + 28].copy_from_slice(&size);
    }
    std::fs::write(&p, &bytes).unwrap();
    let start = std::time::Instant::now();
    let msg = read_tensors(&p).unwrap_err().to_string();
    assert!(
        msg.contains("bombs.npz") && msg.contains("1800000000 bytes together"),
        "{msg}"
    );
    assert!(
        start.elapsed().as_secs_f64() < 1.0,
        "refused before inflating"
    );
}

#[test]
fn safetensors_header_errors_name_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, header: &str, data: usize| {
        let mut f = (header.len() as u64).to_le_bytes().to_vec();
        f.extend_from_slice(header.as_bytes());
        f.extend(vec![0u8; data]);
        let p = dir.path().join(name);
        std::fs::write(&p, f).unwrap();
        Weights::load(&p, None).unwrap_err().to_string()
    };
    // A byte count that does not fit shape x dtype.
    let e = file(
        "size.safetensors",
        r#"{"features.0.bias":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"features.0.weight":{"dtype":"F32","shape":[3],"data_offsets":[4,12]}}"#,
        12,
    );
    assert!(
        e.contains("size.safetensors")
            && e.contains("tensor 'features.0.weight'")
            && e.contains("needs 12 bytes"),
        "{e}"
    );
    // Offsets past the data.
    let e = file(
        "off.safetensors",
        r#"{"classifier.1.weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
        4,
    );
    assert!(
        e.contains("tensor 'classifier.1.weight'") && e.contains("[0, 8]"),
        "{e}"
    );
    // A dtype the format does not have.
    let e = file(
        "dtype.safetensors",
        r#"{"features.3.weight":{"dtype":"Q4","shape":[2],"data_offsets":[0,4]}}"#,
        4,
    );
    assert!(
        e.contains("tensor 'features.3.weight'") && e.contains("'Q4'"),
        "{e}"
    );
}

#[test]
fn an_npz_without_npy_members_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty.npz");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&p).unwrap());
    z.start_file("readme.txt", zip::write::FileOptions::default())
        .unwrap();
    std::io::Write::write_all(&mut z, b"hello").unwrap();
    z.finish().unwrap();
    let e = Weights::load(&p, None).unwrap_err().to_string();
    assert!(
        e.contains("empty.npz") && e.contains("no .npy members"),
        "{e}"
    );
}

#[test]
fn an_npz_without_extension_converts() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("download");
    std::fs::copy(fixture("torchvision_small.npz"), &p).unwrap();
    let out = dir.path().join("out.npz");
    let w = alexnet_wgpu::fetch::convert_file(&p, &out, None).unwrap();
    assert_eq!(w.arch, Arch::Torchvision);
    // A PyTorch zip without extension still goes to the .pth reader.
    let q = dir.path().join("download2");
    std::fs::copy(fixture("torchvision_small.pth"), &q).unwrap();
    alexnet_wgpu::fetch::convert_file(&q, &dir.path().join("out2.npz"), None).unwrap();
}

#[test]
fn torchvision_names_refuse_another_arch() {
    for arch in [Arch::Keras, Arch::Caffe] {
        let msg = load_err("torchvision_small.npz", Some(arch));
        assert!(
            msg.contains(&format!("'{arch}'")) && msg.contains("torchvision's names"),
            "{msg}"
        );
    }
    Weights::load(fixture("torchvision_small.npz"), Some(Arch::Torchvision)).unwrap();
}

#[cfg(unix)]
#[test]
fn outputs_honour_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    for (umask, mode) in [("027", 0o640), ("002", 0o664)] {
        let out = dir.path().join(format!("w{umask}.npz"));
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "umask {umask} && exec \"$0\" convert \"$1\" \"$2\""
            ))
            .arg(env!("CARGO_BIN_EXE_alexnet"))
            .arg(fixture("torchvision_small.npz"))
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let got = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(got, mode, "umask {umask}: mode {got:o}");
    }
}
