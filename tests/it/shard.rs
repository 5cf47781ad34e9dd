//! Sharded, resumable batch runs end to end, each shard a separate `alexnet` process:
//! merged parts equal the unsharded run; `--skip-existing`; killed and tampered parts; `merge`
//! refusing missing and foreign parts; paths from standard input and `--list`; JSONL; output
//! folders checked before any work; the Slurm and Kubernetes examples.
//!
//! Tolerances: the shards run other batch compositions than the unsharded run (batch 2 over
//! parts of 3, 2 and 3 inputs), so logits and features are compared within 1e-4 x max |value|
//! (the bound tests/it/network.rs uses against onnxruntime); input names, row order, top-k
//! classes and error lines must be identical.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::common::{fixture, npy, root, stderr};
use alexnet_wgpu::weights::{read_tensors, write_npz, NpzEntry};

/// A fixture's path as a command-line argument.
fn fixture_arg(name: &str) -> String {
    fixture(name).display().to_string()
}

fn cmd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_alexnet"));
    c.args(args).current_dir(root());
    c
}

fn alexnet(args: &[&str]) -> Output {
    cmd(args).output().expect("run alexnet")
}

fn alexnet_stdin(args: &[&str], input: &str) -> Output {
    let mut child = cmd(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub(crate) fn assert_close(got: &Path, want: &Path) {
    let ((gs, g), (ws, w)) = (npy(got), npy(want));
    assert_eq!(gs, ws, "{}: shape", got.display());
    let scale = w.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = g
        .iter()
        .zip(&w)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        diff <= 1e-4 * scale,
        "{}: max |diff| {diff} > 1e-4 x {scale}",
        got.display()
    );
}

pub(crate) fn jsonl(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSONL line {l:?}: {e}")))
        .collect()
}

/// Same inputs in the same order, same top-k classes, same errors; probabilities within 1e-5.
pub(crate) fn assert_same_predictions(got: &[serde_json::Value], want: &[serde_json::Value]) {
    assert_eq!(got.len(), want.len(), "number of lines");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g["input"], w["input"]);
        assert_eq!(g["error"], w["error"]);
        let classes = |v: &serde_json::Value| -> Vec<u64> {
            v["top"].as_array().map_or(vec![], |t| {
                t.iter().map(|c| c["class"].as_u64().unwrap()).collect()
            })
        };
        assert_eq!(classes(g), classes(w), "{}", w["input"]);
        for (a, b) in g["top"]
            .as_array()
            .into_iter()
            .flatten()
            .zip(w["top"].as_array().into_iter().flatten())
        {
            let (a, b) = (
                a["probability"].as_f64().unwrap(),
                b["probability"].as_f64().unwrap(),
            );
            assert!(
                (a - b).abs() <= 1e-5,
                "{}: probability {a} vs {b}",
                w["input"]
            );
        }
    }
}

/// 7 inputs: the 5 sample images, a copy, and a broken file in the middle.
fn photos(dir: &Path) -> PathBuf {
    let photos = dir.join("photos");
    std::fs::create_dir_all(photos.join("sub")).unwrap();
    for name in [
        "astronaut.jpg",
        "camera.png",
        "chelsea.jpg",
        "coffee.jpg",
        "rocket.jpg",
    ] {
        std::fs::copy(root().join("assets/images").join(name), photos.join(name)).unwrap();
    }
    std::fs::copy(
        root().join("assets/images/rocket.jpg"),
        photos.join("sub/rocket2.jpg"),
    )
    .unwrap();
    std::fs::write(photos.join("d_broken.jpg"), b"not a jpeg").unwrap();
    photos
}

fn part_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn shards_as_separate_processes_merge_to_the_unsharded_run() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photos(dir.path());
    let photos_s = photos.to_str().unwrap();
    let weights = fixture_arg("torchvision_small.npz");
    let (logits, feats) = (dir.path().join("l.npy"), dir.path().join("f.npy"));
    let whole = alexnet(&[
        "classify",
        "--weights",
        &weights,
        "--format",
        "jsonl",
        "--batch",
        "4",
        "--logits-out",
        logits.to_str().unwrap(),
        "--features-out",
        feats.to_str().unwrap(),
        photos_s,
    ]);
    assert_eq!(
        whole.status.code(),
        Some(1),
        "one input is broken: {}",
        stderr(&whole)
    );
    let want = jsonl(&String::from_utf8(whole.stdout).unwrap());
    assert_eq!(want.len(), 7, "one JSONL line per input, errors included");
    assert!(want[4]["error"].is_string(), "{:?}", want[4]);
    assert!(want[4]["error_kind"].is_string(), "{:?}", want[4]);
    assert_eq!(npy(&logits).0, [6, 7]);

    let parts = dir.path().join("parts");
    let children: Vec<_> = (0..3)
        .map(|i| {
            cmd(&[
                "classify",
                "--weights",
                &weights,
                "--batch",
                "2",
                "--shard",
                &format!("{i}/3"),
                "--out-dir",
                parts.to_str().unwrap(),
                "--with-features",
                photos_s,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "a part with a failed input still completes: {}",
            stderr(&o)
        );
        assert!(o.stdout.is_empty(), "nothing on stdout with --out-dir");
    }
    let names = part_files(&parts);
    assert!(
        names.contains(&"part-00002-of-00003.manifest.json".to_string()),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.ends_with(".tmp")),
        "no temporary files left: {names:?}"
    );

    let all = dir.path().join("all");
    let o = alexnet(&["merge", parts.to_str().unwrap(), all.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 failed"), "{}", stderr(&o));
    let got = jsonl(&std::fs::read_to_string(dir.path().join("all.jsonl")).unwrap());
    assert_same_predictions(&got, &want);
    assert_close(&dir.path().join("all.logits.npy"), &logits);
    assert_close(&dir.path().join("all.features.npy"), &feats);
}

/// Weights of the same shapes with one value changed: another model.
fn other_weights(dir: &Path) -> String {
    let tensors = read_tensors(&fixture("torchvision_small.npz")).unwrap();
    let data: Vec<(String, Vec<usize>, Vec<f32>)> = tensors
        .into_iter()
        .map(|t| {
            let mut d = t.data.unwrap();
            if t.key.ends_with("bias") {
                d[0] += 0.5;
            }
            (t.key, t.shape, d)
        })
        .collect();
    let entries: Vec<(String, NpzEntry)> = data
        .iter()
        .map(|(k, s, d)| (k.clone(), NpzEntry::F32(s, d)))
        .collect();
    let p = dir.join("other.npz");
    write_npz(&p, &entries).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn skip_existing_and_merge_refusing_missing_foreign_and_killed_parts() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photos(dir.path());
    let photos_s = photos.to_str().unwrap();
    let parts = dir.path().join("parts");
    let parts_s = parts.to_str().unwrap();
    let all = dir.path().join("all");
    let all_s = all.to_str().unwrap();
    let weights = fixture_arg("torchvision_small.npz");
    let other = other_weights(dir.path());
    let shard = |i: usize, w: &str| {
        alexnet(&[
            "classify",
            "--weights",
            w,
            "--shard",
            &format!("{i}/2"),
            "--out-dir",
            parts_s,
            "--skip-existing",
            photos_s,
        ])
    };
    let manifest = parts.join("part-00000-of-00002.manifest.json");

    // Part 0 only: merge names the missing part.
    let o = shard(0, &weights);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("wrote"), "{}", stderr(&o));
    let o = alexnet(&["merge", parts_s, all_s]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("missing") && stderr(&o).contains("shard 1"),
        "{}",
        stderr(&o)
    );
    assert!(
        !dir.path().join("all.jsonl").exists(),
        "nothing written by a refused merge"
    );

    // Again with the same weights: skipped, the part untouched.
    let before = std::fs::read(&manifest).unwrap();
    let o = shard(0, &weights);
    assert!(
        o.status.success() && stderr(&o).contains("skipped"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(&manifest).unwrap(), before);

    // Part 1 with other weights: merge refuses the foreign part.
    let o = shard(1, &other);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = alexnet(&["merge", parts_s, all_s]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("part-00001-of-00002") && stderr(&o).contains("other weights"),
        "{}",
        stderr(&o)
    );

    // Part 1 again with the right weights: a part made with other weights is rewritten.
    let o = shard(1, &weights);
    assert!(
        o.status.success() && !stderr(&o).contains("skipped"),
        "{}",
        stderr(&o)
    );
    let o = alexnet(&["merge", parts_s, all_s]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        jsonl(&std::fs::read_to_string(dir.path().join("all.jsonl")).unwrap()).len(),
        7
    );

    // A part whose data no longer matches its manifest (a cut file) is refused by merge, and
    // --skip-existing redoes it.
    let logits = parts.join("part-00000-of-00002.logits.npy");
    let bytes = std::fs::read(&logits).unwrap();
    std::fs::write(&logits, &bytes[..bytes.len() - 4]).unwrap();
    let o = alexnet(&["merge", parts_s, all_s]);
    assert!(
        !o.status.success() && stderr(&o).contains("does not match its manifest"),
        "{}",
        stderr(&o)
    );
    let o = shard(0, &weights);
    assert!(
        o.status.success() && !stderr(&o).contains("skipped"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(&logits).unwrap(), bytes);

    // Another shard count in the same folder: refused, not mixed.
    let o = alexnet(&[
        "classify",
        "--weights",
        &weights,
        "--shard",
        "0/3",
        "--out-dir",
        parts_s,
        photos_s,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = alexnet(&["merge", parts_s, all_s]);
    assert!(
        !o.status.success() && stderr(&o).contains("different shard counts"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_killed_shard_leaves_no_part_that_merge_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let parts = dir.path().join("parts");
    // Many inputs (a list repeating the sample images), one per batch: a run of seconds.
    let list = dir.path().join("list.txt");
    let mut text = String::new();
    for _ in 0..100 {
        for name in ["astronaut.jpg", "chelsea.jpg", "coffee.jpg", "rocket.jpg"] {
            text.push_str(&format!("assets/images/{name}\n"));
        }
    }
    std::fs::write(&list, text).unwrap();
    let mut child = cmd(&[
        "classify",
        "--weights",
        &fixture_arg("torchvision_small.npz"),
        "--batch",
        "1",
        "--list",
        list.to_str().unwrap(),
        "--out-dir",
        parts.to_str().unwrap(),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    // Kill it (SIGKILL: no handler runs) as soon as it streams into its temporary files.
    let start = std::time::Instant::now();
    loop {
        let streaming = parts.exists()
            && part_files(&parts)
                .iter()
                .any(|n| n.starts_with(".alexnet-"));
        if streaming {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        assert!(
            start.elapsed().as_secs() < 60,
            "no temporary part files appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let names = part_files(&parts);
    assert!(
        !names.iter().any(|n| n.starts_with("part-")),
        "no part under its final name: {names:?}"
    );
    let o = alexnet(&[
        "merge",
        parts.to_str().unwrap(),
        dir.path().join("all").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no part manifests"), "{}", stderr(&o));
    // The killed run's temporary files are named after its part files and its pid: a rerun of
    // the part removes them (they used to stay for good, through reruns and merge).
    let killed: Vec<String> = names
        .iter()
        .filter(|n| n.starts_with(".alexnet-"))
        .cloned()
        .collect();
    assert!(!killed.is_empty(), "{names:?}");
    let rerun = [
        "classify",
        "--weights",
        &fixture_arg("torchvision_small.npz"),
        "--batch",
        "8",
        "--list",
        list.to_str().unwrap(),
        "--out-dir",
        parts.to_str().unwrap(),
        "--skip-existing",
    ];
    let o = alexnet(&rerun);
    assert!(o.status.success(), "{}", stderr(&o));
    let after = part_files(&parts);
    assert!(
        !after.iter().any(|n| n.starts_with(".alexnet-")),
        "{after:?}"
    );
    // Left by a dead process beside a complete part: removed by a --skip-existing rerun (which
    // writes nothing) and by merge; a live process's (ours) is kept.
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let jsonl = after
        .iter()
        .find(|n| n.ends_with(".jsonl"))
        .expect("a part file")
        .clone();
    let stale = format!(".alexnet-{jsonl}-{dead}-aB3xYz.tmp");
    let live = format!(".alexnet-{jsonl}-{}-aB3xYz.tmp", std::process::id());
    std::fs::write(parts.join(&live), b"x").unwrap();
    for run in [
        &rerun[..],
        &[
            "merge",
            parts.to_str().unwrap(),
            dir.path().join("all").to_str().unwrap(),
        ][..],
    ] {
        std::fs::write(parts.join(&stale), b"x").unwrap();
        let o = alexnet(run);
        assert!(o.status.success(), "{run:?}: {}", stderr(&o));
        assert!(!parts.join(&stale).exists(), "{run:?}");
        assert!(parts.join(&live).exists(), "{run:?}");
    }
}

#[test]
fn paths_from_stdin_and_a_list_file_give_the_folder_run() {
    let dir = tempfile::tempdir().unwrap();
    let weights = fixture_arg("torchvision_small.npz");
    let base = &[
        "classify",
        "--weights",
        &weights,
        "--format",
        "jsonl",
        "--top",
        "2",
    ];
    let folder = alexnet(&[base.as_slice(), &["assets/images"]].concat());
    assert!(folder.status.success(), "{}", stderr(&folder));
    let want = jsonl(&String::from_utf8(folder.stdout).unwrap());
    assert_eq!(want.len(), 5);
    let listing: String = want
        .iter()
        .map(|v| format!("{}\n", v["input"].as_str().unwrap()))
        .collect();

    // Standard input, with a blank line and CRLF endings as some tools write them.
    let o = alexnet_stdin(
        &[base.as_slice(), &["-"]].concat(),
        &format!("\n{}", listing.replace('\n', "\r\n")),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_same_predictions(&jsonl(&String::from_utf8(o.stdout).unwrap()), &want);

    // A list file, sharded: part 1 of 2 is the last 3 of the 5.
    let list = dir.path().join("list.txt");
    std::fs::write(&list, &listing).unwrap();
    let o = alexnet(
        &[
            base.as_slice(),
            &["--list", list.to_str().unwrap(), "--shard", "1/2"],
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_same_predictions(&jsonl(&String::from_utf8(o.stdout).unwrap()), &want[2..]);

    // features: paths on stdin, JSONL out, one line per input with its embedding.
    let o = alexnet_stdin(
        &[
            "features",
            "--weights",
            &weights,
            "--format",
            "jsonl",
            "--batch",
            "2",
            "-",
        ],
        &listing,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = jsonl(&String::from_utf8(o.stdout).unwrap());
    assert_eq!(lines.len(), 5);
    for (l, w) in lines.iter().zip(&want) {
        assert_eq!(l["input"], w["input"]);
        assert!(
            l["features"].as_array().is_some_and(|f| !f.is_empty()),
            "{l}"
        );
    }
}

#[test]
fn features_of_class_folders_sharded_and_merged_equal_the_single_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for class in ["coffee", "rocket"] {
        std::fs::create_dir_all(data.join(class)).unwrap();
    }
    for (class, n) in [("coffee", 3), ("rocket", 2)] {
        let src = root().join("tests/fixtures/train_data").join(class);
        let mut files: Vec<_> = std::fs::read_dir(&src)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files.iter().take(n) {
            std::fs::copy(f, data.join(class).join(f.file_name().unwrap())).unwrap();
        }
    }
    let weights = fixture_arg("torchvision_small.npz");
    let whole = dir.path().join("whole.npz");
    let data_s = data.to_str().unwrap();
    let o = alexnet(&[
        "features",
        "--weights",
        &weights,
        "--data",
        data_s,
        "--out",
        whole.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let parts = dir.path().join("parts");
    for i in 0..2 {
        let o = alexnet(&[
            "features",
            "--weights",
            &weights,
            "--data",
            data_s,
            "--batch",
            "2",
            "--shard",
            &format!("{i}/2"),
            "--out-dir",
            parts.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let all = dir.path().join("all");
    let o = alexnet(&["merge", parts.to_str().unwrap(), all.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let a = alexnet_wgpu::train::FeatureSet::load(&whole).unwrap();
    let b = alexnet_wgpu::train::FeatureSet::load(&dir.path().join("all.npz")).unwrap();
    assert_eq!(
        (&a.labels, &a.paths, &a.classes, a.dim),
        (&b.labels, &b.paths, &b.classes, b.dim)
    );
    assert_eq!(a.labels, [0, 0, 0, 1, 1]);
    let scale = a.features.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = a
        .features
        .iter()
        .zip(&b.features)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        diff <= 1e-4 * scale,
        "features: max |diff| {diff} > 1e-4 x {scale}"
    );
}

#[test]
fn output_folders_are_checked_before_anything_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing/l.npy");
    let file = dir.path().join("a_file");
    std::fs::write(&file, b"x").unwrap();
    // The weights do not exist either: the output check must come first.
    let no_weights = dir.path().join("no_weights.npz");
    let w = no_weights.to_str().unwrap();
    for (args, want) in [
        (
            vec![
                "classify",
                "--weights",
                w,
                "--logits-out",
                missing.to_str().unwrap(),
                "assets/images",
            ],
            "--logits-out",
        ),
        (
            vec![
                "classify",
                "--weights",
                w,
                "--features-out",
                missing.to_str().unwrap(),
                "assets/images",
            ],
            "--features-out",
        ),
        (
            vec![
                "classify",
                "--weights",
                w,
                "--out-dir",
                file.to_str().unwrap(),
                "assets/images",
            ],
            "--out-dir",
        ),
        (
            vec![
                "features",
                "--weights",
                w,
                "--out",
                missing.to_str().unwrap(),
                "assets/images",
            ],
            "--out",
        ),
    ] {
        let o = alexnet(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.contains(want) && !e.contains("no_weights"),
            "{args:?}: {e}"
        );
    }
    let o = alexnet(&["classify", "--shard", "3/3", "assets/images"]);
    assert!(
        !o.status.success() && stderr(&o).contains("0-based"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn examples_are_valid_yaml_and_shell() {
    let text = std::fs::read_to_string(root().join("deploy/k8s_indexed_job.yaml")).unwrap();
    let docs: Vec<serde_json::Value> = serde_norway::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("valid YAML"))
        .collect();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["PersistentVolumeClaim", "Job", "Job", "Job"]);
    let job = docs
        .iter()
        .find(|d| d["spec"]["completionMode"] == "Indexed")
        .expect("an Indexed Job");
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    let env = |name: &str| {
        container["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no env {name}"))["value"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        env("SHARD_COUNT"),
        job["spec"]["completions"].as_u64().unwrap().to_string(),
        "SHARD_COUNT must equal completions"
    );
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for want in [
        "classify",
        "--shard",
        "$(SHARD)",
        "--out-dir",
        "--skip-existing",
    ] {
        assert!(args.contains(&want), "{want} in {args:?}");
    }
    assert_eq!(container["resources"]["limits"]["nvidia.com/gpu"], 1);
    // The binary parses the job's arguments (with the index filled in).
    let o = alexnet(&["classify", "--help"]);
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    for flag in ["--shard", "--out-dir", "--skip-existing", "--list"] {
        assert!(help.contains(flag), "{flag} in classify --help");
    }

    let script = root().join("deploy/slurm_array.sh");
    match Command::new("bash").arg("-n").arg(&script).output() {
        Ok(o) => assert!(o.status.success(), "bash -n: {}", stderr(&o)),
        Err(e) => eprintln!("bash not found ({e}); the Slurm script's syntax was not checked"),
    }
    let s = std::fs::read_to_string(&script).unwrap();
    assert!(s.contains("--shard \"$I/$N\"") && s.contains("--skip-existing"));
}

/// Three complete parts of one input each, written directly (no GPU run): a `classify` run
/// with logits of width 2.
fn synthetic_parts(dir: &Path) {
    use alexnet_wgpu::shard::{PartPaths, RunIdentity, Shard};
    std::fs::create_dir_all(dir).unwrap();
    let run = RunIdentity {
        command: "classify".into(),
        count: 3,
        total_inputs: 3,
        list_sha256: "list".into(),
        model_sha256: "model".into(),
        options: Default::default(),
    };
    for i in 0..3 {
        let paths = PartPaths::new(dir, Shard::new(i, 3).unwrap());
        std::fs::write(paths.file("jsonl"), format!("{{\"input\":\"{i}.jpg\"}}\n")).unwrap();
        alexnet_wgpu::weights::write_npy(&paths.file("logits"), &[1, 2], &[i as f32, 1.0]).unwrap();
        paths
            .write_manifest(&run, i, 1, 1, 0, &["jsonl", "logits"])
            .unwrap();
    }
}

#[test]
fn merge_refuses_to_write_over_its_parts() {
    let dir = tempfile::tempdir().unwrap();
    let parts = dir.path().join("parts");
    synthetic_parts(&parts);
    let before: Vec<Vec<u8>> = part_files(&parts)
        .iter()
        .map(|n| std::fs::read(parts.join(n)).unwrap())
        .collect();
    let parts_s = parts.to_str().unwrap();
    // The output prefix of part 0: its .jsonl and .logits.npy are part 0's own files.
    let part0 = parts.join("part-00000-of-00003");
    // Through a link to the folder, and with the name of a part of another run.
    #[cfg(unix)]
    std::os::unix::fs::symlink(&parts, dir.path().join("link")).unwrap();
    for out in [
        part0.clone(),
        dir.path().join("link/part-00001-of-00003"),
        parts.join("part-00000-of-00002"),
    ] {
        if !cfg!(unix) && out.starts_with(dir.path().join("link")) {
            continue;
        }
        let o = alexnet(&["merge", parts_s, out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{out:?}: {}", stderr(&o));
        // Refused by the command's own check, or by the shared one (`cli/files.rs`) when the
        // merged file already exists among the parts.
        let e = stderr(&o);
        assert!(
            e.contains("a part's name") || e.contains("a file inside the input folder"),
            "{e}"
        );
        let after: Vec<Vec<u8>> = part_files(&parts)
            .iter()
            .map(|n| std::fs::read(parts.join(n)).unwrap())
            .collect();
        assert_eq!(after, before, "{out:?}: the parts are unchanged");
    }
    // Another prefix in the same folder is fine.
    let o = alexnet(&["merge", parts_s, parts.join("all").to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        npy(&parts.join("all.logits.npy")).1,
        [0.0, 1.0, 1.0, 1.0, 2.0, 1.0]
    );
}

#[test]
fn a_missing_listed_path_fails_only_its_line() {
    // Without an image extension too: one input that fails, not the whole run.
    let dir = tempfile::tempdir().unwrap();
    let ghost = dir.path().join("ghost");
    let items = alexnet_wgpu::shard::expand_listed(&[
        ghost.clone(),
        dir.path().join("gone.jpg"),
        dir.path().to_path_buf(),
    ])
    .unwrap();
    assert_eq!(items.len(), 2, "{items:?}");
    let first = root().join("assets/images/chelsea.jpg");
    let listing = format!("{}\n{}\n", ghost.display(), first.display());
    let list = dir.path().join("list.txt");
    std::fs::write(&list, &listing).unwrap();
    let weights = fixture_arg("torchvision_small.npz");
    let base = ["classify", "--weights", &weights, "--format", "jsonl"];
    for o in [
        alexnet_stdin(&[base.as_slice(), &["-"]].concat(), &listing),
        alexnet(&[base.as_slice(), &["--list", list.to_str().unwrap()]].concat()),
    ] {
        let lines = jsonl(&String::from_utf8(o.stdout.clone()).unwrap());
        assert_eq!(lines.len(), 2, "{}", stderr(&o));
        assert!(
            lines[0]["input"].as_str().unwrap().ends_with("ghost") && lines[0]["error"].is_string(),
            "{}",
            lines[0]
        );
        // The failure's kind, as the library's `InputErrorKind` names it.
        assert_eq!(lines[0]["error_kind"], "not_found", "{}", lines[0]);
        assert!(lines[1]["error"].is_null(), "{}", lines[1]);
    }
}

/// `features --layer fc6` sharded and merged equals the single run, for class folders (the
/// merged .npz records the layer, which `train-head --features` then refuses) and for flat
/// paths (the merged features .npy); parts of another layer are foreign to the run.
#[test]
fn features_at_fc6_sharded_and_merged_equal_the_single_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for class in ["coffee", "rocket"] {
        std::fs::create_dir_all(data.join(class)).unwrap();
        let src = root().join("tests/fixtures/train_data").join(class);
        let mut files: Vec<_> = std::fs::read_dir(&src)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files.iter().take(2) {
            std::fs::copy(f, data.join(class).join(f.file_name().unwrap())).unwrap();
        }
    }
    let weights = fixture_arg("torchvision_small.npz");
    let data_s = data.to_str().unwrap();
    for labelled in [true, false] {
        // Flat paths: the folder itself, walked.
        let inputs: Vec<&str> = if labelled {
            vec!["--data", data_s]
        } else {
            vec![data_s]
        };
        let run = |extra: &[&str]| {
            let mut args = vec!["features", "--weights", &weights, "--layer", "fc6"];
            args.extend(&inputs);
            args.extend(extra);
            let o = alexnet(&args);
            assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        };
        let sub = dir.path().join(if labelled { "labelled" } else { "flat" });
        std::fs::create_dir_all(&sub).unwrap();
        let whole = sub.join("whole.npz");
        run(&["--out", whole.to_str().unwrap()]);
        let parts = sub.join("parts");
        for i in 0..2 {
            let shard = format!("{i}/2");
            run(&[
                "--batch",
                "1",
                "--shard",
                &shard,
                "--out-dir",
                parts.to_str().unwrap(),
            ]);
        }
        let all = sub.join("all");
        let o = alexnet(&["merge", parts.to_str().unwrap(), all.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        let want = read_tensors(&whole)
            .unwrap()
            .into_iter()
            .find(|t| t.key == "features")
            .unwrap();
        assert_eq!(want.shape, [4, 100]);
        let want = want.data.unwrap();
        let (shape, got) = npy(&sub.join("all.features.npy"));
        assert_eq!(shape, [4, 100]);
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = got
            .iter()
            .zip(&want)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(diff <= 1e-4 * scale, "{diff} > 1e-4 x {scale}");
        let merged_npz = sub.join("all.npz");
        assert_eq!(merged_npz.exists(), labelled);
        if labelled {
            let layer = alexnet_wgpu::weights::read_strings(&merged_npz, "layer").unwrap();
            assert_eq!(layer, Some(vec!["fc6".to_string()]));
            let o = alexnet(&[
                "train-head",
                "--weights",
                &weights,
                "--features",
                merged_npz.to_str().unwrap(),
            ]);
            let e = stderr(&o);
            assert!(
                !o.status.success() && e.contains("fc6") && e.contains("expected pool5"),
                "{e}"
            );
        }
        // A part of another layer (pool5, the default) is foreign to this run.
        let mut args = vec!["features", "--weights", &weights];
        args.extend(&inputs);
        let o = alexnet(
            &[
                &args[..],
                &["--shard", "1/2", "--out-dir", parts.to_str().unwrap()],
            ]
            .concat(),
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let o = alexnet(&["merge", parts.to_str().unwrap(), all.to_str().unwrap()]);
        assert!(!o.status.success(), "merged parts of two layers");
        assert!(stderr(&o).contains("fc6"), "{}", stderr(&o));
    }
}
