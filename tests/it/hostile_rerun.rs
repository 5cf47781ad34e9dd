//! What the re-run of the hostile catalogue (`scripts/hostile/run.sh`, issue 28) found on top
//! of the 16 defects: an output folder or file placed inside an input folder, where the
//! folder's listing would read the images the run writes (`train-head --plot data/cat` put
//! curves.png and confusion.png among the cat images, and the next run trained on them), and
//! an empty `--list` beside other inputs taken as no list at all (exit 0).

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::common::{fixture, root, stderr};

fn alexnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_alexnet"))
        .args(args)
        .stdin(Stdio::null())
        .current_dir(root())
        .output()
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every file under `dir`, sorted, with its bytes.
fn listing(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(listing(&p));
        } else {
            out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

/// Exit 2 naming `want`, nothing printed, `dir` unchanged.
fn refused(args: &[&str], dir: &Path, want: &str) {
    let before = listing(dir);
    let o = alexnet(args);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    assert!(o.stdout.is_empty(), "{args:?}: printed before the refusal");
    assert!(listing(dir) == before, "{args:?} changed {}", dir.display());
}

#[test]
fn outputs_that_would_add_inputs_to_an_input_folder_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for class in ["cat", "coffee"] {
        std::fs::create_dir_all(data.join(class)).unwrap();
        for i in 0..2 {
            let src = fixture(&format!("train_data/{class}/{class}_0{i}.jpg"));
            std::fs::copy(src, data.join(class).join(format!("{i}.jpg"))).unwrap();
        }
    }
    let w = fixture("torchvision_small.npz");
    let out = tmp.path().join("m.npz");
    let train = [
        "train-head",
        "--weights",
        s(&w),
        "--data",
        s(&data),
        "--epochs",
        "1",
        "--out",
        s(&out),
    ];
    let add = "to the input folder";
    // --plot into a class folder (no curves.png there yet), into the data folder itself, and
    // into a new folder below a class folder.
    for plot in [data.join("cat"), data.clone(), data.join("cat/plots")] {
        refused(&[&train[..], &["--plot", s(&plot)]].concat(), &data, add);
    }
    // A --log-steps file named as an image inside the data.
    let log = data.join("coffee/steps.png");
    refused(
        &[&train[..], &["--log-steps", s(&log)]].concat(),
        &data,
        add,
    );
    assert!(!out.exists());
    // What is not an image may go there: features' .npz inside the data folder.
    let feats = data.join("features.npz");
    let o = alexnet(&[
        "features",
        "--weights",
        s(&w),
        "--data",
        s(&data),
        "--out",
        s(&feats),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(feats.is_file());
}

#[test]
fn an_empty_list_is_refused_before_any_output() {
    let tmp = tempfile::tempdir().unwrap();
    let w = fixture("torchvision_small.npz");
    for text in ["", "\n  \n"] {
        let list = tmp.path().join("list.txt");
        std::fs::write(&list, text).unwrap();
        for cmd in ["classify", "features"] {
            // Alone (it said "no images found in []") and beside an image (exit 0, as if
            // the list were not there).
            let image = root().join("assets/images/coffee.jpg");
            for with_image in [false, true] {
                let mut args = vec![cmd, "--weights", s(&w), "--list", s(&list)];
                if with_image {
                    args.push(s(&image));
                }
                args.extend(["--format", if cmd == "classify" { "csv" } else { "jsonl" }]);
                let o = alexnet(&args);
                assert_eq!(o.status.code(), Some(2), "{cmd} {text:?}: {}", stderr(&o));
                assert!(stderr(&o).contains("no paths in it"), "{}", stderr(&o));
                assert!(o.stdout.is_empty(), "{cmd}: printed before the refusal");
            }
        }
    }
}
