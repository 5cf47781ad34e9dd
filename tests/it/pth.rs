//! PyTorch `.pth` files written by `torch.save` itself (scripts/make_weight_fixtures.py): the
//! converted network gives onnxruntime's logits, strided / offset / shared-storage tensors and
//! every float dtype come out as torch gives them, and hostile or damaged files are refused
//! without running anything.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use alexnet_wgpu::model::Weights;
use alexnet_wgpu::model::{Arch, Network};
use alexnet_wgpu::weights::{read_tensors, RawTensor};
use common::{assert_close, ctx};
use common::{fixture, fixture_npy as npy};

fn load_err(path: &Path) -> String {
    match Weights::load(path, None) {
        Ok(_) => panic!("{} loaded but must be refused", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn torch_saved_state_dict_gives_onnxruntime_logits() {
    let w = Weights::load(fixture("torchvision_small.pth"), None).unwrap();
    assert_eq!(w.arch, Arch::Torchvision);
    let reference = Weights::load(fixture("torchvision_small.npz"), None).unwrap();
    assert_eq!(w.widths, reference.widths);
    assert_eq!(w.tensors, reference.tensors, "same weights as the .npz");

    let ctx = ctx();
    let mut net = Network::new(&ctx, &w).unwrap();
    let (shape, x) = npy("input_224.npy");
    let out = net
        .forward(&x, shape[0], shape[2], shape[3], false)
        .unwrap();
    let (_, want) = npy("torchvision_logits.npy");
    assert_close("torchvision_small.pth logits", &out.logits, &want, 1e-4);
}

fn by_key(ts: &[RawTensor]) -> std::collections::BTreeMap<&str, &RawTensor> {
    ts.iter().map(|t| (t.key.as_str(), t)).collect()
}

#[test]
fn strides_offsets_and_dtypes_match_torch() {
    let expected = read_tensors(&fixture("pth_cases_expected.npz")).unwrap();
    for file in [
        "pth_cases.pth",
        "pth_cases_legacy.pth",
        "pth_cases_checkpoint.pt",
    ] {
        let got = read_tensors(&fixture(file)).unwrap();
        let got = by_key(&got);
        for want in &expected {
            let g = got
                .get(want.key.as_str())
                .unwrap_or_else(|| panic!("{file}: missing {}", want.key));
            assert_eq!(g.shape, want.shape, "{file}: {} shape", want.key);
            assert_eq!(
                g.data.as_ref().unwrap(),
                want.data.as_ref().unwrap(),
                "{file}: {} values",
                want.key
            );
        }
        let counter = got["num_batches_tracked"].data.as_ref().unwrap_err();
        assert!(counter.contains("int64"), "{file}: {counter}");
        assert_eq!(got.len(), expected.len() + 1, "{file}: keys");
    }
}

/// A zip in torch.save's layout holding `pickle` as data.pkl.
fn write_pth(dir: &Path, name: &str, pickle: &[u8]) -> PathBuf {
    let p = dir.join(name);
    let mut z = zip::ZipWriter::new(std::fs::File::create(&p).unwrap());
    let opts =
        zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
    z.start_file("archive/data.pkl", opts).unwrap();
    z.write_all(pickle).unwrap();
    z.start_file("archive/version", opts).unwrap();
    z.write_all(b"3\n").unwrap();
    z.finish().unwrap();
    p
}

/// `module.name(arg)` as a protocol-2 pickle (GLOBAL opcode), or protocol 4 (STACK_GLOBAL).
fn call_pickle(module: &str, name: &str, arg: &str, stack_global: bool) -> Vec<u8> {
    let mut p = Vec::new();
    let s = |p: &mut Vec<u8>, t: &str| {
        p.push(b'X');
        p.extend_from_slice(&(t.len() as u32).to_le_bytes());
        p.extend_from_slice(t.as_bytes());
    };
    if stack_global {
        p.extend_from_slice(&[0x80, 4]);
        s(&mut p, module);
        s(&mut p, name);
        p.push(0x93);
    } else {
        p.extend_from_slice(&[0x80, 2, b'c']);
        p.extend_from_slice(format!("{module}\n{name}\n").as_bytes());
    }
    s(&mut p, arg);
    p.extend_from_slice(&[0x85, b'R', b'.']); // TUPLE1 REDUCE STOP
    p
}

#[test]
fn pickles_naming_other_globals_are_refused_without_running() {
    // Made by Python's pickle module: os.system (pickled as posix.system on Linux).
    let msg = load_err(&fixture("evil_os_system.pth"));
    assert!(
        msg.contains("evil_os_system.pth")
            && msg.contains("'posix.system'")
            && msg.contains("nothing was executed"),
        "{msg}"
    );

    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    let m = marker.to_str().unwrap();
    for (module, name, arg, stack) in [
        ("os", "system", format!("touch {m}"), false),
        ("builtins", "exec", format!("open('{m}', 'w')"), true),
        ("builtins", "eval", format!("open('{m}', 'w')"), false),
        ("subprocess", "call", format!("touch {m}"), true),
    ] {
        let p = write_pth(
            dir.path(),
            "evil.pth",
            &call_pickle(module, name, &arg, stack),
        );
        let msg = load_err(&p);
        assert!(
            msg.contains(&format!("'{module}.{name}'")) && msg.contains("refused"),
            "{msg}"
        );
        assert!(!marker.exists(), "{module}.{name} was executed");
    }

    // A global hidden in the middle of a real state_dict is caught too.
    let good = std::fs::read(fixture("pth_cases.pth")).unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(good)).unwrap();
    let mut pkl = Vec::new();
    std::io::Read::read_to_end(&mut zip.by_name("pth_cases/data.pkl").unwrap(), &mut pkl).unwrap();
    let at = pkl
        .windows(18)
        .position(|w| w == b"torch\nFloatStorage")
        .unwrap();
    pkl.splice(at..at + 18, b"nt\nsystem".iter().copied());
    let p = write_pth(dir.path(), "hidden.pth", &pkl);
    let msg = load_err(&p);
    assert!(msg.contains("'nt.system'"), "{msg}");
}

#[test]
fn damaged_files_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let full = std::fs::read(fixture("torchvision_small.pth")).unwrap();

    // Truncated zip: no central directory.
    let p = dir.path().join("half.pth");
    std::fs::write(&p, &full[..full.len() / 2]).unwrap();
    let msg = load_err(&p);
    assert!(
        msg.contains("half.pth") && msg.contains("truncated"),
        "{msg}"
    );

    // Truncated legacy file: the raw storages are cut off.
    let legacy = std::fs::read(fixture("pth_cases_legacy.pth")).unwrap();
    let p = dir.path().join("cut.pth");
    std::fs::write(&p, &legacy[..legacy.len() - 10]).unwrap();
    let msg = read_tensors(&p).unwrap_err().to_string();
    assert!(
        msg.contains("cut.pth") && msg.contains("truncated"),
        "{msg}"
    );

    // Truncated pickle inside a valid zip.
    let p = write_pth(
        dir.path(),
        "short.pth",
        &call_pickle("collections", "OrderedDict", "", false)[..10],
    );
    let msg = load_err(&p);
    assert!(
        msg.contains("short.pth") && msg.contains("truncated"),
        "{msg}"
    );

    // Not a PyTorch file at all.
    let p = dir.path().join("text.pth");
    std::fs::write(&p, b"hello").unwrap();
    let msg = load_err(&p);
    assert!(msg.contains("not a PyTorch file"), "{msg}");

    // A pickle of something other than a state_dict.
    let p = write_pth(dir.path(), "int.pth", &[0x80, 2, b'K', 7, b'.']);
    let msg = load_err(&p);
    assert!(msg.contains("not a state_dict"), "{msg}");
}

#[test]
fn convert_writes_an_npz_that_loads_identically() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tv.npz");
    let o = Command::new(env!("CARGO_BIN_EXE_alexnet"))
        .args(["convert"])
        .arg(fixture("torchvision_small.pth"))
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let back = Weights::load(&out, None).unwrap();
    let src = Weights::load(fixture("torchvision_small.pth"), None).unwrap();
    assert_eq!(back.arch, Arch::Torchvision);
    assert_eq!(back.tensors, src.tensors);
    // The converted file has torchvision's keys.
    let keys: Vec<String> = read_tensors(&out)
        .unwrap()
        .into_iter()
        .map(|t| t.key)
        .collect();
    assert!(keys.contains(&"features.0.weight".to_string()), "{keys:?}");
}
