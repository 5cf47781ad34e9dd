//! LPIPS against the `lpips` 0.1.4 package (tests/fixtures/lpips, see its README): the trunk
//! weights regenerated from the documented integer formula, the real v0.1/v0.0 lin weights.

use crate::common;

use std::path::{Path, PathBuf};

use alexnet_wgpu::data::load_image;
use alexnet_wgpu::lpips::{kernel, Lin, Lpips, MatrixProgress};
use alexnet_wgpu::weights::{read_tensors, write_npz, NpzEntry};
use image::RgbImage;
use serde_json::Value;

use common::lpips_trunk::{trunk_npz, trunk_params, TRUNK};

pub(crate) fn expected() -> Value {
    let text = std::fs::read_to_string(common::fixture("lpips/expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

pub(crate) fn image(name: &str) -> RgbImage {
    load_image(common::fixture(&format!("lpips/{name}"))).unwrap()
}

pub(crate) fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

/// |got - want| <= 1e-4 |want|, and exactly 0 when want is 0; returns the relative error.
pub(crate) fn check_rel(what: &str, got: f32, want: f64) -> f64 {
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

/// The `lpips` package reads with `cv2.imread`, which turns a photo upright by its EXIF
/// orientation: a phone photo stored sideways (orientation 6) is the upright view, not another
/// size (issue 28, defect 11). Both files are quality-95 JPEGs of one view
/// (`scripts/make_input_images.py`): a few levels apart at most.
#[test]
fn images_are_read_upright_by_their_exif_orientation_as_cv2_reads_them() {
    let input = |n: &str| common::root().join("tests/fixtures/input").join(n);
    let up = alexnet_wgpu::lpips::load_image(input("upright.jpg"), None).unwrap();
    let turned = alexnet_wgpu::lpips::load_image(input("exif_rotate90.jpg"), None).unwrap();
    assert_eq!(turned.dimensions(), up.dimensions());
    let diff: f64 = up
        .as_raw()
        .iter()
        .zip(turned.as_raw())
        .map(|(a, b)| (*a as f64 - *b as f64).abs())
        .sum::<f64>()
        / up.as_raw().len() as f64;
    assert!(diff < 2.0, "mean difference {diff}");
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

pub(crate) fn alexnet(args: &[&str], stdin: Option<&str>) -> std::process::Output {
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
        // Beside each map, its heatmap: the map's size, its range in the tEXt chunks.
        let png = Path::new(row["spatial"].as_str().unwrap()).with_extension("png");
        let file = std::io::BufReader::new(std::fs::File::open(&png).unwrap());
        let reader = png::Decoder::new(file).read_info().unwrap();
        let info = reader.info();
        assert_eq!(
            [info.height as usize, info.width as usize],
            [shape[0], shape[1]]
        );
        let text = |k: &str| -> f32 {
            let t = info
                .uncompressed_latin1_text
                .iter()
                .find(|t| t.keyword == k);
            t.unwrap().text.parse().unwrap()
        };
        let (lo, hi) = got
            .iter()
            .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        assert_eq!((text("lpips.min"), text("lpips.max")), (lo, hi));
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

/// The six squares of the fixture matrix, in its order.
pub(crate) fn matrix_images(e: &Value) -> Vec<RgbImage> {
    e["matrix_v0.1"]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| image(n.as_str().unwrap()))
        .collect()
}

/// The matrix under budgets that force each plan (one trunk batch; three trunk batches
/// copied into one block; spilled to a temporary file in blocks of two; one image at a
/// time): every entry
/// within 1e-4 relative of the package's matrix, exactly symmetric with a zero diagonal, each
/// image's trunk run once, the per-layer terms those of the package's pairs, the temporary
/// file there while the pairs are reduced and gone after.
#[test]
fn matrix_within_any_budget_matches_the_package_running_each_trunk_once() {
    let e = expected();
    let ctx = common::ctx();
    let imgs = matrix_images(&e);
    let names: Vec<&str> = e["matrix_v0.1"]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let n = imgs.len();
    let spill = tempfile::tempdir().unwrap();
    let spilled_files = || {
        std::fs::read_dir(spill.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect::<Vec<_>>()
    };
    // At 64x64: 127,488 bytes of features and 522,796 of trunk per image.
    for (budget, want_resident, want_block) in [
        (1u64 << 30, true, 6),
        // Trunk batches of 2 copied into one block.
        (1_900_000, true, 6),
        (600_000, false, 2),
        (1, false, 1),
    ] {
        let lpips = Lpips::from_params(&ctx, trunk_params(), Lin::V0_1)
            .unwrap()
            .with_memory_budget(budget)
            .with_spill_dir(spill.path());
        let plan = lpips.matrix_plan(n, 64, 64);
        assert_eq!(
            (plan.resident, plan.block),
            (want_resident, want_block),
            "budget {budget}: {plan:?}"
        );
        // The one-byte budget also reduces one pair per dispatch.
        assert!(budget > 1 || plan.pairs == 1, "{plan:?}");
        let mut events = Vec::new();
        let mut saw_file = false;
        let m = lpips
            .matrix_of(n, |i| Ok(imgs[i].clone()), true, &mut |p| {
                if matches!(p, MatrixProgress::Pairs { .. }) {
                    saw_file |= spilled_files()
                        .iter()
                        .any(|f| f.starts_with(".alexnet-lpips-features-") && f.ends_with(".tmp"));
                }
                events.push(p);
            })
            .unwrap();
        let what = format!("budget {budget}");
        assert_eq!(lpips.trunk_images(), n as u64, "{what}: each trunk once");
        assert_eq!(saw_file, !want_resident, "{what}: the temporary file");
        assert!(spilled_files().is_empty(), "{what}: {:?}", spilled_files());
        assert_eq!(
            events.last(),
            Some(&MatrixProgress::Pairs {
                done: 15,
                total: 15
            }),
            "{what}"
        );
        assert!(events.contains(&MatrixProgress::Features { done: 6, total: 6 }));
        let layers = m.layers.as_ref().unwrap();
        for (i, row) in e["matrix_v0.1"]["values"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            for (j, want) in row.as_array().unwrap().iter().enumerate() {
                let v = m.values[i * n + j];
                assert_eq!(
                    v.to_bits(),
                    m.values[j * n + i].to_bits(),
                    "{what}: symmetry"
                );
                check_rel(&format!("{what} [{i}][{j}]"), v, f(want));
                let l = layers[i * n + j];
                assert_eq!(l, layers[j * n + i], "{what}: layer symmetry");
                assert_eq!(l.iter().fold(0f32, |a, &t| a + t), v, "{what}: sum");
            }
        }
        // The package's per-layer terms of (sq_a, sq_b..sq_e).
        for p in e["pairs"].as_array().unwrap() {
            let (a, b) = (p["a"].as_str().unwrap(), p["b"].as_str().unwrap());
            let (Some(i), Some(j)) = (
                names.iter().position(|x| *x == a),
                names.iter().position(|x| *x == b),
            ) else {
                continue;
            };
            if i == j {
                continue;
            }
            for (k, want) in p["v0.1_layers"].as_array().unwrap().iter().enumerate() {
                check_rel(
                    &format!("{what} {a} {b} layer {k}"),
                    layers[i * n + j][k],
                    f(want),
                );
            }
        }
    }
}

/// A matrix of images of two sizes is refused naming both; one image is a 1x1 zero matrix.
#[test]
fn matrix_of_mixed_sizes_is_refused() {
    let ctx = common::ctx();
    let lpips = Lpips::from_params(&ctx, trunk_params(), Lin::V0_1).unwrap();
    let (a, b) = (image("sq_a.png"), image("rect_a.png"));
    let err = lpips.matrix(&[&a, &a, &b]).unwrap_err().to_string();
    assert!(err.contains("64x64") && err.contains("48x80"), "{err}");
    let one = lpips.matrix(&[&a]).unwrap();
    assert_eq!((one.n, one.values.clone()), (1, vec![0.0]));
}

/// An archive of the trunk plus `extra` raw `.npy` members.
fn trunk_npz_with(dir: &Path, name: &str, skip: Option<&str>, extra: &[(&str, &[u8])]) -> PathBuf {
    use std::io::{Read, Write};
    let clean = trunk_npz(dir);
    let mut src = zip::ZipArchive::new(std::fs::File::open(&clean).unwrap()).unwrap();
    let path = dir.join(name);
    let mut out = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let opts =
        zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..src.len() {
        let mut m = src.by_index(i).unwrap();
        if skip.is_some_and(|s| m.name() == format!("{s}.npy")) {
            continue;
        }
        let mut bytes = Vec::new();
        m.read_to_end(&mut bytes).unwrap();
        out.start_file(m.name(), opts).unwrap();
        out.write_all(&bytes).unwrap();
    }
    for (member, bytes) in extra {
        out.start_file(format!("{member}.npy"), opts).unwrap();
        out.write_all(bytes).unwrap();
    }
    out.finish().unwrap();
    path
}

/// `Lpips::load` reads only the trunk: a classifier member claiming 2^40 floats (and one that
/// is not an .npy at all) is never opened, the distance is the package's; a missing trunk key
/// is refused with the message it always had.
#[test]
fn load_reads_only_the_trunk() {
    let e = expected();
    let dir = tempfile::tempdir().unwrap();
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }";
    let mut huge = b"\x93NUMPY\x01\x00".to_vec();
    let pad = 64 - (10 + header.len() + 1) % 64;
    let h = format!("{header}{}\n", " ".repeat(pad));
    huge.extend_from_slice(&(h.len() as u16).to_le_bytes());
    huge.extend_from_slice(h.as_bytes());
    huge.extend_from_slice(&[0u8; 16]);
    let path = trunk_npz_with(
        dir.path(),
        "with_classifier.npz",
        None,
        &[
            ("classifier.1.weight", &huge),
            ("classifier.1.bias", b"not an npy file"),
        ],
    );
    assert!(read_tensors(&path).is_err(), "the full read must fail");
    let ctx = common::ctx();
    let lpips = Lpips::load(&ctx, &path, Lin::V0_1).unwrap();
    let (a, b) = (image("sq_a.png"), image("sq_c.png"));
    check_rel(
        "trunk of a file with a broken classifier",
        lpips.distance(&a, &b).unwrap(),
        pair_value(&e, "sq_a.png", "sq_c.png", "v0.1"),
    );

    let path = trunk_npz_with(
        dir.path(),
        "no_conv2.npz",
        Some("features.3.weight"),
        &[("classifier.1.bias", b"not an npy file")],
    );
    let err = match Lpips::load(&ctx, &path, Lin::V0_1) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a trunk without conv2's weight was accepted"),
    };
    assert!(
        err.contains("missing key 'features.3.weight' (expected shape [192, 64, 5, 5])"),
        "{err}"
    );
}

/// `read_tensors_matching` on a file torch.save wrote, with the classifier's storages broken
/// (one cut to 8 bytes, one missing): the full read fails, the trunk's tensors come out as
/// from the intact file.
#[test]
fn pth_trunk_read_skips_the_classifier_storages() {
    use std::io::{Read, Write};
    let src_path = common::fixture("torchvision_small.pth");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken_classifier.pth");
    let mut src = zip::ZipArchive::new(std::fs::File::open(&src_path).unwrap()).unwrap();
    let mut out = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let opts =
        zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..src.len() {
        let mut m = src.by_index(i).unwrap();
        let name = m.name().to_string();
        let mut bytes = Vec::new();
        m.read_to_end(&mut bytes).unwrap();
        // Storages 10..15 are classifier.{1,4,6}.{weight,bias}.
        if name.ends_with("/data/12") {
            continue;
        }
        if name.ends_with("/data/10") {
            bytes.truncate(8);
        }
        out.start_file(name, opts).unwrap();
        out.write_all(&bytes).unwrap();
    }
    out.finish().unwrap();
    assert!(read_tensors(&path).is_err(), "the full read must fail");
    let trunk = |k: &str| k.starts_with("features.");
    let got = alexnet_wgpu::weights::read_tensors_matching(&path, &trunk).unwrap();
    let want: Vec<_> = read_tensors(&src_path)
        .unwrap()
        .into_iter()
        .filter(|t| trunk(&t.key))
        .collect();
    assert_eq!(got.len(), 10);
    for (g, w) in got.iter().zip(&want) {
        assert_eq!((&g.key, &g.shape), (&w.key, &w.shape));
        assert_eq!(
            g.data.as_ref().unwrap(),
            w.data.as_ref().unwrap(),
            "{}",
            g.key
        );
    }
}

/// `--all-pairs --per-layer` under a 1 MiB budget (features spilled to $TMPDIR, removed after):
/// the per-layer terms come from the matrix, equal to the package's for (sq_a, sq_b..sq_e) and
/// summing to each distance.
#[test]
fn cli_all_pairs_per_layer_within_a_small_budget() {
    let e = expected();
    let dir = tempfile::tempdir().unwrap();
    let trunk = trunk_npz(dir.path());
    let imgs = dir.path().join("imgs");
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&imgs).unwrap();
    std::fs::create_dir(&tmp).unwrap();
    for n in ["sq_a", "sq_b", "sq_c", "sq_d", "sq_e", "sq_f"] {
        std::fs::copy(
            common::fixture(&format!("lpips/{n}.png")),
            imgs.join(format!("{n}.png")),
        )
        .unwrap();
    }
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_alexnet"))
        .args(["lpips", "--weights", trunk.to_str().unwrap()])
        .args(["--all-pairs", imgs.to_str().unwrap(), "--per-layer"])
        .args(["--memory-mb", "1", "--format", "json"])
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 15);
    let mut checked = 0;
    for r in rows {
        let name = |k: &str| {
            Path::new(r[k].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_string()
        };
        let layers: Vec<f32> = r["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| f(v) as f32)
            .collect();
        let sum = layers.iter().fold(0f32, |a, &t| a + t);
        assert_eq!(sum, f(&r["distance"]) as f32, "{r}");
        if let Some(p) = e["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["a"] == name("a").as_str() && p["b"] == name("b").as_str())
        {
            for (k, want) in p["v0.1_layers"].as_array().unwrap().iter().enumerate() {
                check_rel(&format!("cli {r} layer {k}"), layers[k], f(want));
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 4, "sq_a against sq_b..sq_e");
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "temporary file left"
    );
}
