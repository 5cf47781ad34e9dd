//! Issue 28's second batch of "nothing lost" defects, end to end: a `lpips --all-pairs` spill
//! file left by a kill -9 is removed by the next run of any kind; (the `fetch-weights` one is
//! in `fetch.rs`, beside its test server).

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::common::{self, fixture, lpips_trunk::trunk_npz, stderr};

fn alexnet_env(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_alexnet"));
    c.args(args).stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The id of a process that has exited (free until reused, unlikely within a test).
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// Defect 15: the spill file of a killed `lpips --all-pairs` stayed in `$TMPDIR` until a later
/// run that also spilled. Every run removes dead processes' spill files now, one that does not
/// spill too (and the library's `Lpips` in its spill folder); a live process's stays.
#[test]
fn spill_files_of_killed_lpips_runs_are_removed_by_every_run() {
    let dir = tempfile::tempdir().unwrap();
    let trunk = trunk_npz(dir.path());
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let dead = tmp.join(format!(".alexnet-lpips-features-{}-aB3xYz.tmp", dead_pid()));
    let live = tmp.join(format!(
        ".alexnet-lpips-features-{}-aB3xYz.tmp",
        std::process::id()
    ));
    for p in [&dead, &live] {
        std::fs::write(p, b"features").unwrap();
    }
    let (a, b) = (fixture("lpips/sq_a.png"), fixture("lpips/sq_b.png"));
    let o = alexnet_env(
        &["lpips", "--weights", s(&trunk), s(&a), s(&b)],
        &[("TMPDIR", &tmp)],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!dead.exists(), "a dead run's spill file stayed");
    assert!(live.exists(), "a live run's spill file was removed");

    // The library: a spill folder's dead files go when it is named.
    let spill = tempfile::tempdir().unwrap();
    let dead = spill
        .path()
        .join(format!(".alexnet-lpips-features-{}-aB3xYz.tmp", dead_pid()));
    std::fs::write(&dead, b"features").unwrap();
    let ctx = common::ctx();
    let _lpips = alexnet_wgpu::lpips::Lpips::from_params(
        &ctx,
        common::lpips_trunk::trunk_params(),
        alexnet_wgpu::lpips::Lin::V0_1,
    )
    .unwrap()
    .with_spill_dir(spill.path());
    assert!(!dead.exists());
}

/// `DIR/train/CLASS` + `DIR/val/CLASS` from the training fixture (4 + 2 images per class),
/// or, `flat`, `DIR/train` and `DIR/val` holding the images directly.
fn split_dataset(p: &Path, flat: bool) {
    for class in ["cat", "coffee", "rocket"] {
        let mut files: Vec<_> = std::fs::read_dir(fixture("train_data").join(class))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for (i, f) in files.iter().take(6).enumerate() {
            let mut d = p.join(if i < 4 { "train" } else { "val" });
            if !flat {
                d = d.join(class);
            }
            std::fs::create_dir_all(&d).unwrap();
            let name = format!("{class}-{}", f.file_name().unwrap().to_string_lossy());
            std::fs::copy(f, d.join(name)).unwrap();
        }
    }
}

/// Defect 13 and its rough edges: `features --data` exported a split dataset as the classes
/// "train" and "val" (exit 0), `eval --data SPLIT` failed saying a class folder 'train' is not
/// one of the model's classes, and `train-head --data` whose `train/` and `val/` hold images
/// directly trained a "train" vs "val" model. Every command resolves a data folder the same
/// way now: `eval` takes the split's `val/`, `features` asks for one split, and the flat layout
/// is refused by all three, naming it.
#[test]
fn every_command_resolves_a_dataset_folder_the_same_way() {
    let dir = tempfile::tempdir().unwrap();
    let (split, flat) = (dir.path().join("split"), dir.path().join("flat"));
    split_dataset(&split, false);
    split_dataset(&flat, true);
    let w = fixture("torchvision_small.npz");
    let model = dir.path().join("m.npz");
    let features = dir.path().join("f.npz");
    let env: &[(&str, &Path)] = &[];
    let train = |data: &Path| {
        alexnet_env(
            &["train-head", "--weights", s(&w), "--data", s(data)]
                .into_iter()
                .chain(["--epochs", "1", "--batch", "4", "--extract-batch", "4"])
                .chain(["--resume"])
                .chain(["--out", s(&model)])
                .collect::<Vec<_>>(),
            env,
        )
    };
    let o = train(&split);
    assert!(o.status.success(), "{}", stderr(&o));
    // Rough edge: `--resume` without a checkpoint says that it starts from the beginning.
    assert!(
        stderr(&o).contains("--resume: no checkpoint") && stderr(&o).contains("first epoch"),
        "{}",
        stderr(&o)
    );

    // eval: the validation set of the split dataset.
    let o = alexnet_env(&["eval", "--weights", s(&model), "--data", s(&split)], env);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "evaluating on its validation set, {}",
            split.join("val").display()
        )),
        "{}",
        stderr(&o)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("on 6 images"));

    // features: one split at a time, named; nothing written.
    let o = alexnet_env(
        &["features", "--weights", s(&w), "--data", s(&split)]
            .into_iter()
            .chain(["--out", s(&features)])
            .collect::<Vec<_>>(),
        env,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("is a split dataset")
            && e.contains(&format!("--data {}", s(&split.join("val")))),
        "{e}"
    );
    assert!(!features.exists());

    // The flat layout: refused by all three, naming what is wrong.
    std::fs::remove_file(&model).unwrap();
    for o in [
        train(&flat),
        alexnet_env(&["eval", "--weights", s(&w), "--data", s(&flat)], env),
        alexnet_env(
            &["features", "--weights", s(&w), "--data", s(&flat)]
                .into_iter()
                .chain(["--out", s(&features)])
                .collect::<Vec<_>>(),
            env,
        ),
    ] {
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("its train/ and val/ hold images directly"),
            "{}",
            stderr(&o)
        );
    }
    assert!(!model.exists() && !features.exists());
}

/// Defect 9: one pair too large for the adapter's binding limit stopped the whole run (exit 2,
/// no row for the good pairs, a hint about a `--batch` that lpips does not have) after decoding
/// it. Now it is that pair's error, found from the header before decoding: exit 1, the other
/// pairs written; `--all-pairs` leaves the image out. A `--resize` target that cannot fit stops
/// the run before any work. (`--limits webgpu`: a 128 MiB binding limit on every adapter.)
#[test]
fn an_lpips_pair_too_large_for_the_adapter_is_that_pairs_error() {
    let dir = tempfile::tempdir().unwrap();
    let trunk = trunk_npz(dir.path());
    let imgs = dir.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    let (a, b) = (imgs.join("a.png"), imgs.join("b.png"));
    std::fs::copy(fixture("lpips/sq_a.png"), &a).unwrap();
    std::fs::copy(fixture("lpips/sq_b.png"), &b).unwrap();
    // 3000x3000: relu1 is 64 x 749 x 749 floats, 137 MiB.
    let big = imgs.join("big.png");
    image::GrayImage::new(3000, 3000).save(&big).unwrap();
    let list = dir.path().join("pairs.txt");
    std::fs::write(
        &list,
        format!("{}\t{}\n{}\t{}\n", s(&big), s(&a), s(&a), s(&b)),
    )
    .unwrap();
    let lpips = |extra: &[&str]| {
        let mut args = vec!["lpips", "--weights", s(&trunk), "--limits", "webgpu"];
        args.extend_from_slice(extra);
        alexnet_env(&args, &[])
    };
    let o = lpips(&["--pairs", s(&list), "--format", "csv"]);
    let (out, e) = (String::from_utf8_lossy(&o.stdout).to_string(), stderr(&o));
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(out.contains(&format!("{},{}", s(&a), s(&b))), "{out}");
    assert!(!out.contains("big.png"), "{out}");
    assert!(
        e.contains(&format!(
            "{}: a 3000x3000 image needs a 137 MiB GPU buffer (relu1)",
            s(&big)
        )) && e.contains("128 MiB binding limit")
            && !e.contains("--batch"),
        "{e}"
    );
    // All pairs: the others' matrix.
    let o = lpips(&["--all-pairs", s(&imgs), "--format", "csv"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains(&format!("{},{}", s(&a), s(&b))), "{out}");
    assert!(stderr(&o).contains("big.png: a 3000x3000 image"));
    // A resize target that cannot fit: the run's error, before any image.
    let o = lpips(&["--resize", "3000x3000", s(&a), s(&b)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--resize 3000x3000"), "{}", stderr(&o));
}

/// Issue 28's rough edges that need no GPU, each refused (exit 2) before any work with a clear
/// message, or, for variables set but empty, taken as unset.
#[test]
fn rough_edges_are_refused_before_work_or_taken_as_unset() {
    let dir = tempfile::tempdir().unwrap();
    let env: &[(&str, &Path)] = &[];
    let refused = |o: Output, want: &str| {
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{want}: {e}");
        assert!(e.contains(want), "{want}: {e}");
        assert!(!e.contains("::"), "a library function named: {e}");
        o
    };
    let (a, b) = (fixture("lpips/sq_a.png"), fixture("lpips/sq_b.png"));
    // `--pairs` with no pairs (empty, or only comments).
    let list = dir.path().join("pairs.txt");
    std::fs::write(&list, "# nothing here\n\n").unwrap();
    refused(
        alexnet_env(&["lpips", "--pairs", s(&list)], env),
        "no pairs in it",
    );
    // `--matrix-out` needs `--all-pairs`; a folder as `--matrix-out` is refused before work.
    refused(
        alexnet_env(
            &[
                "lpips",
                "--matrix-out",
                s(&dir.path().join("m.npy")),
                s(&a),
                s(&b),
            ],
            env,
        ),
        "--all-pairs",
    );
    refused(
        alexnet_env(
            &[
                "lpips",
                "--all-pairs",
                s(&fixture("lpips")),
                "--matrix-out",
                s(dir.path()),
            ],
            env,
        ),
        "is a folder",
    );
    refused(
        alexnet_env(
            &[
                "lpips",
                "--out",
                s(&dir.path().join("missing/o.csv")),
                s(&a),
                s(&b),
            ],
            env,
        ),
        "does not exist",
    );
    // `bench --iters 0`.
    refused(
        alexnet_env(&["bench", "--iters", "0"], env),
        "expected 1 or more",
    );
    // `--cache-dir FILE`: not a folder (was "does not exist" or "File exists").
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    for args in [
        vec!["--cache-dir", s(&file), "fetch-weights"],
        vec!["--cache-dir", s(&file), "classify", s(&a)],
    ] {
        refused(alexnet_env(&args, env), "is not a folder");
    }
    // An empty ALEXNET_CACHE_DIR is unset: the platform's folder (XDG here), named without
    // a library function.
    let xdg = dir.path().join("xdg");
    let empty = Path::new("");
    let o = refused(
        alexnet_env(
            &["classify", s(&a)],
            &[("ALEXNET_CACHE_DIR", empty), ("XDG_CACHE_HOME", &xdg)],
        ),
        "no pre-trained weights in the cache",
    );
    assert!(
        stderr(&o).contains(s(&xdg.join("alexnet-wgpu/alexnet-torchvision.npz"))),
        "{}",
        stderr(&o)
    );
    // An empty WGPU_BACKEND is unset too (was: no adapter matching backend '').
    let o = alexnet_env(&["adapters", "--json"], &[("WGPU_BACKEND", empty)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // A backend with no adapter: exit 2 as a table and as JSON (was 0), no library name.
    for json in [false, true] {
        let mut args = vec!["adapters", "--backend", "metal"];
        if json {
            args.push("--json");
        }
        let o = refused(
            alexnet_env(&args, env),
            "no GPU adapter matching backend 'metal'",
        );
        if json {
            assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "[]");
        }
    }
    // train-head: `--momentum` with Adam, `--val-split` with `--val` or a split dataset.
    let data = dir.path().join("split");
    split_dataset(&data, false);
    let w = fixture("torchvision_small.npz");
    let out = dir.path().join("m.npz");
    let head = |extra: &[&str]| {
        let mut args = vec!["train-head", "--weights", s(&w), "--out", s(&out)];
        args.extend_from_slice(extra);
        alexnet_env(&args, env)
    };
    refused(
        head(&[
            "--data",
            s(&data),
            "--optimizer",
            "adam",
            "--momentum",
            "0.5",
        ]),
        "--momentum is SGD's",
    );
    refused(
        head(&["--data", s(&data), "--val-split", "0.3"]),
        "is a split dataset",
    );
    let train = data.join("train");
    refused(
        head(&[
            "--data",
            s(&train),
            "--val",
            s(&data.join("val")),
            "--val-split",
            "0.3",
        ]),
        "give one of them",
    );
    assert!(!out.exists());
}
