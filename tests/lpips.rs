//! LPIPS against the `lpips` 0.1.4 package (tests/fixtures/lpips, see its README): the trunk
//! weights regenerated from the documented integer formula, the real v0.1/v0.0 lin weights.

mod common;

use std::path::Path;

use alexnet_wgpu::data::load_image;
use alexnet_wgpu::lpips::{kernel, Lin, Lpips};
use alexnet_wgpu::weights::{read_tensors, write_npz, NpzEntry};
use image::RgbImage;
use serde_json::Value;

use common::lpips_trunk::{trunk_npz, trunk_params, TRUNK};

fn expected() -> Value {
    let text = std::fs::read_to_string(common::fixture("lpips/expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn image(name: &str) -> RgbImage {
    load_image(&common::fixture(&format!("lpips/{name}"))).unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

/// |got - want| <= 1e-4 |want|, and exactly 0 when want is 0; returns the relative error.
fn check_rel(what: &str, got: f32, want: f64) -> f64 {
    if want == 0.0 {
        assert_eq!(got, 0.0, "{what}: expected exactly 0");
        return 0.0;
    }
    let rel = (got as f64 - want).abs() / want.abs();
    assert!(
        rel <= 1e-4,
        "{what}: got {got}, want {want} (relative {rel:e})"
    );
    rel
}

fn check_map(what: &str, got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: size");
    let max = want.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
    let diff = got
        .iter()
        .zip(want)
        .fold(0f64, |m, (a, b)| m.max((*a as f64 - *b as f64).abs()));
    assert!(
        diff <= 1e-4 * max,
        "{what}: max diff {diff:e} > 1e-4 x {max:e}"
    );
    diff / max
}

#[test]
fn trunk_formula_matches_the_fixture_check_values() {
    let e = expected();
    let check = &e["trunk_check"];
    let params = trunk_params();
    let bits = |v: &Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| u32::from_str_radix(s.as_str().unwrap().trim_start_matches("0x"), 16).unwrap())
            .collect()
    };
    let w0: Vec<u32> = params[0].0[..4].iter().map(|v| v.to_bits()).collect();
    assert_eq!(w0, bits(&check["features.0.weight[:4]_bits"]));
    let b4: Vec<u32> = params[4].1[..4].iter().map(|v| v.to_bits()).collect();
    assert_eq!(b4, bits(&check["features.10.bias[:4]_bits"]));
    for (l, (key, _)) in TRUNK.iter().enumerate() {
        for (leaf, data) in [("weight", &params[l].0), ("bias", &params[l].1)] {
            let k = format!("{key}.{leaf}");
            // (As f32: the JSON double is the f32 value, but serde_json's default parser is
            // not always correctly rounded in the last bit of a double.)
            assert_eq!(
                *data.last().unwrap(),
                f(&check["last_elements"][&k]) as f32,
                "{k} last"
            );
            let sum: f64 = data.iter().map(|&v| v as f64).sum();
            let want = f(&check["sum_f64"][&k]);
            assert!(
                (sum - want).abs() <= 1e-9 * want.abs().max(1.0),
                "{k} sum {sum} vs {want}"
            );
        }
    }
}

#[test]
fn built_in_lin_weights_are_read_from_the_legacy_pth_files() {
    // README of assets/lpips: lin0 max 0.492139 (v0.1) / 0.533004 (v0.0), all >= 0.
    for (lin, max0, max4) in [
        (Lin::V0_1, 0.492139, 0.41307),
        (Lin::V0_0, 0.533004, 0.282471),
    ] {
        let w = lin.weights().unwrap();
        let lens: Vec<usize> = w.iter().map(Vec::len).collect();
        assert_eq!(lens, [64, 192, 384, 256, 256]);
        assert!(w.iter().flatten().all(|&v| v >= 0.0));
        let max = |v: &[f32]| v.iter().copied().fold(0f32, f32::max) as f64;
        assert!(
            (max(&w[0]) - max0).abs() < 1e-6,
            "{lin} lin0 max {}",
            max(&w[0])
        );
        assert!(
            (max(&w[4]) - max4).abs() < 1e-5,
            "{lin} lin4 max {}",
            max(&w[4])
        );
    }
}

/// `lpips.wgsl` against its f64 reference on random features, with an all-zero feature
/// vector (0, not NaN) and an identical pair (exactly 0), over more positions than a workgroup.
#[test]
fn lpips_kernel_matches_the_f64_reference() {
    let ctx = common::ctx();
    let (channels, hw, images) = (37, 150, 3);
    let mut feats = common::random(images * channels * hw, 7, 1.0);
    for v in &mut feats {
        *v = v.max(0.0);
    }
    for c in 0..channels {
        feats[c * hw + 5] = 0.0; // image 0, position 5: all zero
    }
    let lin: Vec<f32> = common::random(channels, 8, 1.0)
        .iter()
        .map(|v| v.abs())
        .collect();
    let pairs = [(0u32, 1u32), (1, 2), (2, 0), (1, 1)];
    let up = |d: &[f32]| alexnet_wgpu::gpu::upload_f32(&ctx, "t", d).unwrap();
    let idx: Vec<u32> = pairs.iter().flat_map(|&(a, b)| [a, b]).collect();
    let (fb, lb) = (up(&feats), up(&lin));
    let ib = alexnet_wgpu::gpu::upload(&ctx, "idx", &idx).unwrap();
    let maps = up(&vec![0.0; pairs.len() * hw]);
    let terms = up(&vec![0.0; pairs.len() * 2]);
    let k = ctx
        .pipelines
        .get(alexnet_wgpu::kernels::shader("lpips.wgsl"), "main");
    let d = kernel::dispatch(
        &ctx,
        &k,
        pairs.len(),
        channels,
        hw,
        1,
        2,
        true,
        [&fb, &fb, &ib, &lb, &maps, &terms],
    )
    .unwrap();
    alexnet_wgpu::kernels::run(&ctx, &[d]).unwrap();
    let got_maps = alexnet_wgpu::gpu::read_back_f32(&ctx, &maps, pairs.len() * hw).unwrap();
    let got_terms = alexnet_wgpu::gpu::read_back_f32(&ctx, &terms, pairs.len() * 2).unwrap();
    let img = |i: u32| &feats[i as usize * channels * hw..(i as usize + 1) * channels * hw];
    for (p, &(a, b)) in pairs.iter().enumerate() {
        let (map, mean) = kernel::reference(img(a), img(b), &lin, hw);
        let want: Vec<f32> = map.iter().map(|&v| v as f32).collect();
        if a == b {
            assert!(got_maps[p * hw..(p + 1) * hw].iter().all(|&v| v == 0.0));
            assert_eq!(got_terms[p * 2 + 1], 0.0);
            continue;
        }
        common::assert_close("map", &got_maps[p * hw..(p + 1) * hw], &want, 1e-5);
        let rel = (got_terms[p * 2 + 1] as f64 - mean).abs() / mean;
        assert!(
            rel < 1e-5,
            "pair {p}: term {} vs {mean}",
            got_terms[p * 2 + 1]
        );
    }
}

/// Every fixture pair in the three modes, with the per-layer terms, through a trunk file.
#[test]
fn distances_match_the_package() {
    let e = expected();
    let dir = tempfile::tempdir().unwrap();
    let trunk = trunk_npz(dir.path());
    let ctx = common::ctx();
    let pairs: Vec<(RgbImage, RgbImage, &Value)> = e["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                image(p["a"].as_str().unwrap()),
                image(p["b"].as_str().unwrap()),
                p,
            )
        })
        .collect();
    let refs: Vec<(&RgbImage, &RgbImage)> = pairs.iter().map(|(a, b, _)| (a, b)).collect();
    let mut worst = 0f64;
    for (lin, key) in [
        (Lin::V0_1, "v0.1"),
        (Lin::V0_0, "v0.0"),
        (Lin::None, "baseline"),
    ] {
        let lpips = Lpips::load(&ctx, &trunk, lin).unwrap();
        let got = lpips.distances(&refs).unwrap();
        for ((_, _, p), d) in pairs.iter().zip(&got) {
            let what = format!("{key} {} {}", p["a"], p["b"]);
            worst = worst.max(check_rel(&what, d.distance, f(&p[key])));
            for (k, want) in p[format!("{key}_layers")]
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
            {
                worst = worst.max(check_rel(
                    &format!("{what} layer {k}"),
                    d.layers[k],
                    f(want),
                ));
            }
        }
    }
    eprintln!("distances: max relative error {worst:e}");
}

#[test]
fn matrix_spatial_maps_and_trunk_outputs_match_the_package() {
    let e = expected();
    let ctx = common::ctx();
    let lpips = Lpips::from_params(&ctx, trunk_params(), Lin::V0_1).unwrap();

    // 6x6 all pairs: exactly symmetric, exactly zero diagonal.
    let m = &e["matrix_v0.1"];
    let imgs: Vec<RgbImage> = m["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| image(n.as_str().unwrap()))
        .collect();
    let refs: Vec<&RgbImage> = imgs.iter().collect();
    let got = lpips.matrix(&refs).unwrap();
    let mut worst = 0f64;
    for (i, row) in m["values"].as_array().unwrap().iter().enumerate() {
        for (j, want) in row.as_array().unwrap().iter().enumerate() {
            let v = got.values[i * 6 + j];
            assert_eq!(v.to_bits(), got.values[j * 6 + i].to_bits(), "symmetry");
            worst = worst.max(check_rel(&format!("matrix[{i}][{j}]"), v, f(want)));
        }
    }
    eprintln!("matrix: max relative error {worst:e}");

    // Spatial maps, square and not.
    for key in ["sq", "rect"] {
        let s = &e["spatial_v0.1"][key];
        let (a, b) = (
            image(s["a"].as_str().unwrap()),
            image(s["b"].as_str().unwrap()),
        );
        let got = lpips.spatial(&a, &b).unwrap();
        let (shape, want) = common::fixture_npy(&format!("lpips/{}", s["file"].as_str().unwrap()));
        assert_eq!(shape, [got.map.height, got.map.width]);
        let rel = check_map(key, &got.map.data, &want);
        eprintln!("spatial {key}: max diff / max {rel:e}");
    }

    // Native per-layer maps and raw trunk outputs of (sq_a, sq_c).
    let raw = read_tensors(&common::fixture("lpips/sq_layers.npz")).unwrap();
    let get = |k: &str| {
        raw.iter()
            .find(|t| t.key == k)
            .unwrap()
            .data
            .clone()
            .unwrap()
    };
    let (a, c) = (image("sq_a.png"), image("sq_c.png"));
    let sp = lpips.spatial(&a, &c).unwrap();
    check_rel(
        "sq_layers distance",
        sp.distance.distance,
        f(&e["sq_layers_v0.1"]["distance"]),
    );
    for k in 0..5 {
        check_map(
            &format!("layer{k}"),
            &sp.layers[k].data,
            &get(&format!("layer{k}")),
        );
    }
    for (name, img) in [("a", &a), ("b", &c)] {
        let acts = lpips.activations(img).unwrap();
        for (k, act) in acts.iter().enumerate() {
            let rel = check_map(
                &format!("{name}_relu{}", k + 1),
                &act.data,
                &get(&format!("{name}_relu{}", k + 1)),
            );
            eprintln!("{name}_relu{}: max diff / max {rel:e}", k + 1);
        }
    }
}

#[test]
fn sizes_below_31_and_mismatched_pairs_are_refused() {
    let ctx = common::ctx();
    let lpips = Lpips::from_params(&ctx, trunk_params(), Lin::V0_1).unwrap();
    let small = RgbImage::new(30, 40);
    let err = lpips.distance(&small, &small).unwrap_err().to_string();
    assert!(err.contains("30x40") && err.contains("31"), "{err}");
    let (a, b) = (image("sq_a.png"), image("rect_a.png"));
    let err = lpips.distance(&a, &b).unwrap_err().to_string();
    assert!(err.contains("64x64") && err.contains("48x80"), "{err}");
}

#[test]
fn a_trunk_of_another_shape_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let params = trunk_params();
    let path = dir.path().join("bad.npz");
    let mut entries = Vec::new();
    let bias_shapes: Vec<[usize; 1]> = TRUNK.iter().map(|(_, s)| [s[0]]).collect();
    let wrong = [192usize, 64, 3, 3];
    let wrong_data = vec![0f32; wrong.iter().product()];
    for (l, (key, shape)) in TRUNK.iter().enumerate() {
        let w = if l == 1 {
            NpzEntry::F32(&wrong, &wrong_data)
        } else {
            NpzEntry::F32(shape, &params[l].0)
        };
        entries.push((format!("{key}.weight"), w));
        entries.push((
            format!("{key}.bias"),
            NpzEntry::F32(&bias_shapes[l], &params[l].1),
        ));
    }
    write_npz(&path, &entries).unwrap();
    let ctx = common::ctx();
    let err = match Lpips::load(&ctx, &path, Lin::V0_1) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a 3x3 conv2 was accepted"),
    };
    assert!(
        err.contains("features.3.weight")
            && err.contains("[192, 64, 5, 5]")
            && err.contains("[192, 64, 3, 3]"),
        "{err}"
    );
}

fn alexnet(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_alexnet"))
        .args(args)
        .current_dir(common::fixture("lpips"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn pair_value(e: &Value, a: &str, b: &str, key: &str) -> f64 {
    let p = e["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["a"] == a && p["b"] == b)
        .unwrap();
    f(&p[key])
}

/// Pairs from standard input (one of them mismatched in size: named, the rest computed,
/// exit 1), JSON with per-layer terms, and spatial maps as .npy.
#[test]
fn cli_pairs_from_stdin_with_spatial_maps() {
    let e = expected();
    let dir = tempfile::tempdir().unwrap();
    let trunk = trunk_npz(dir.path());
    let spatial = dir.path().join("maps");
    let o = alexnet(
        &[
            "lpips",
            "--weights",
            trunk.to_str().unwrap(),
            "--pairs",
            "-",
            "--format",
            "json",
            "--per-layer",
            "--spatial",
            spatial.to_str().unwrap(),
        ],
        Some("sq_a.png\tsq_c.png\nsq_a.png rect_a.png\nrect_a.png rect_b.png\n"),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("sq_a.png is 64x64 but rect_a.png is 48x80"),
        "{err}"
    );
    let rows: Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    check_rel(
        "cli sq",
        f(&rows[0]["distance"]) as f32,
        pair_value(&e, "sq_a.png", "sq_c.png", "v0.1"),
    );
    check_rel(
        "cli rect",
        f(&rows[1]["distance"]) as f32,
        pair_value(&e, "rect_a.png", "rect_b.png", "v0.1"),
    );
    assert_eq!(rows[0]["layers"].as_array().unwrap().len(), 5);
    for (row, file) in [(&rows[0], "spatial_sq.npy"), (&rows[1], "spatial_rect.npy")] {
        let (shape, got) = {
            let t = read_tensors(Path::new(row["spatial"].as_str().unwrap()))
                .unwrap()
                .remove(0);
            (t.shape, t.data.unwrap())
        };
        let (wshape, want) = common::fixture_npy(&format!("lpips/{file}"));
        assert_eq!(shape, wshape);
        check_map(file, &got, &want);
    }
}

/// `--all-pairs` over a folder with a 30 px image and a corrupt file (both named, exit 1) and
/// the six squares: the matrix .npy against the package, CSV on stdout; v0.0 for two images.
#[test]
fn cli_all_pairs_matrix_and_two_images() {
    let e = expected();
    let dir = tempfile::tempdir().unwrap();
    let trunk = trunk_npz(dir.path());
    let imgs = dir.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    for n in ["sq_a", "sq_b", "sq_c", "sq_d", "sq_e", "sq_f"] {
        std::fs::copy(
            common::fixture(&format!("lpips/{n}.png")),
            imgs.join(format!("{n}.png")),
        )
        .unwrap();
    }
    RgbImage::new(30, 64).save(imgs.join("tiny.png")).unwrap();
    std::fs::write(imgs.join("broken.png"), b"not a png").unwrap();
    let m = dir.path().join("m.npy");
    let o = alexnet(
        &[
            "lpips",
            "--weights",
            trunk.to_str().unwrap(),
            "--all-pairs",
            imgs.to_str().unwrap(),
            "--matrix-out",
            m.to_str().unwrap(),
            "--format",
            "csv",
        ],
        None,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("tiny.png: 30x64 is too small"), "{err}");
    assert!(err.contains("broken.png"), "{err}");
    let csv = String::from_utf8_lossy(&o.stdout);
    assert_eq!(csv.lines().count(), 1 + 15, "{csv}");
    let t = read_tensors(&m).unwrap().remove(0);
    assert_eq!(t.shape, [6, 6]);
    let got = t.data.unwrap();
    for (i, row) in e["matrix_v0.1"]["values"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        for (j, want) in row.as_array().unwrap().iter().enumerate() {
            check_rel(&format!("cli matrix[{i}][{j}]"), got[i * 6 + j], f(want));
        }
    }

    let o = alexnet(
        &[
            "lpips",
            "--weights",
            trunk.to_str().unwrap(),
            "--lin",
            "v0.0",
            "--format",
            "jsonl",
            "gray.png",
            "rgba.png",
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let row: Value = serde_json::from_slice(&o.stdout).unwrap();
    check_rel(
        "cli v0.0 gray/rgba",
        f(&row["distance"]) as f32,
        pair_value(&e, "gray.png", "rgba.png", "v0.0"),
    );
}

/// Two folders paired by relative path (a file without counterpart named, exit 1), `--resize`
/// making a 48x80 / 64x64 pair comparable, and `--out` in table format.
#[test]
fn cli_folders_resize_and_out_file() {
    let dir = tempfile::tempdir().unwrap();
    let trunk = trunk_npz(dir.path());
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(a.join("sub")).unwrap();
    std::fs::create_dir_all(b.join("sub")).unwrap();
    let copy = |from: &str, to: &Path| {
        std::fs::copy(common::fixture(&format!("lpips/{from}")), to).unwrap()
    };
    copy("sq_a.png", &a.join("x.png"));
    copy("sq_a.png", &b.join("x.png"));
    copy("sq_b.png", &a.join("sub/y.png"));
    copy("rect_a.png", &b.join("sub/y.png"));
    copy("sq_c.png", &a.join("only_a.png"));
    let out = dir.path().join("out.txt");
    let o = alexnet(
        &[
            "lpips",
            "--weights",
            trunk.to_str().unwrap(),
            "--resize",
            "64x64",
            "--out",
            out.to_str().unwrap(),
            a.to_str().unwrap(),
            b.to_str().unwrap(),
        ],
        None,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("only_a.png: no counterpart"), "{err}");
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    // Sorted by path: `sub/y.png` before `x.png`.
    assert!(
        lines[1].starts_with("0.000000 ") && lines[1].contains("x.png"),
        "{text}"
    );
    let d: f64 = lines[0].split_whitespace().next().unwrap().parse().unwrap();
    assert!(d > 0.0 && lines[0].contains("y.png"), "{text}");
}
