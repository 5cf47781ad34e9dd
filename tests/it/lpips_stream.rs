//! `--all-pairs` with memory bounded for any number of images: the library hands the pairs on
//! in bands of whole rows ([`Lpips::matrix_blocks`]), and the CLI writes rows and the `.npy`
//! matrix as they come. Checked against the `lpips` package's 6-image matrix
//! (tests/fixtures/lpips/expected.json), the images repeated to make a larger matrix: a pair of
//! copies of one image is exactly 0, any other pair the package's value for the two originals.

use crate::common;
use crate::lpips::{alexnet, check_rel, expected, f, matrix_images};

use alexnet_wgpu::lpips::{Lin, Lpips, PairBlock};
use alexnet_wgpu::weights::read_tensors;
use serde_json::Value;

use common::lpips_trunk::{trunk_npz, trunk_params};

/// The package's distance between images `i` and `j` of the fixture matrix.
fn package(e: &Value, i: usize, j: usize) -> f64 {
    f(&e["matrix_v0.1"]["values"][i][j])
}

/// 24 images (the six squares four times) under budgets that spill to blocks of two (one band
/// per block), one image and one row a band (a one-byte budget), and everything resident (one
/// band): the bands are whole rows, in row order, each sorted by (i, j) and within the plan's
/// band size, together every pair once; every distance is the package's (1e-4 relative; copies
/// exactly 0) and bit-equal to what `matrix_of` collects. The band bound is what keeps the host
/// within the budget: the n x n matrix is never allocated.
#[test]
fn matrix_blocks_stream_bands_of_rows_within_the_budget() {
    let e = expected();
    let ctx = common::ctx();
    let six = matrix_images(&e);
    let n = 24;
    let imgs: Vec<_> = (0..n).map(|i| six[i % 6].clone()).collect();
    let spill = tempfile::tempdir().unwrap();
    // At 64x64: 127,488 bytes of features per image; a pair of a band is 40 host bytes.
    for (budget, want_bands, want_block) in [(600_000, 12, 2), (1, 23, 1), (1 << 30, 1, 24)] {
        let what = format!("budget {budget}");
        let lpips = Lpips::from_params(&ctx, trunk_params(), Lin::V0_1)
            .unwrap()
            .with_memory_budget(budget)
            .with_spill_dir(spill.path());
        let plan = lpips.matrix_plan(n, 64, 64);
        assert_eq!(plan.block, want_block, "{what}: {plan:?}");
        let mut bands: Vec<PairBlock> = Vec::new();
        lpips
            .matrix_blocks(n, |i| Ok(imgs[i].clone()), &mut |_| {}, &mut |b| {
                bands.push(b.clone());
                Ok(())
            })
            .unwrap();
        assert_eq!(bands.len(), want_bands, "{what}: bands");
        let mut next_row = 0;
        let mut all = Vec::new();
        for b in &bands {
            assert_eq!(b.rows.start, next_row, "{what}: bands in row order");
            next_row = b.rows.end;
            let whole: usize = b.rows.clone().map(|i| n - i - 1).sum();
            assert_eq!(b.pairs.len(), whole, "{what}: whole rows {:?}", b.rows);
            assert!(
                b.pairs.len() <= plan.band_pairs.max(n - 1),
                "{what}: a band of {} pairs, over {}",
                b.pairs.len(),
                plan.band_pairs
            );
            all.extend(b.pairs.iter().copied());
        }
        assert!(next_row >= n - 1, "{what}: every row");
        let order: Vec<(usize, usize)> = all.iter().map(|&(i, j, _)| (i, j)).collect();
        let want: Vec<(usize, usize)> = (0..n)
            .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
            .collect();
        assert_eq!(order, want, "{what}: every pair once, in (i, j) order");

        let m = lpips
            .matrix_of(n, |i| Ok(imgs[i].clone()), true, &mut |_| {})
            .unwrap();
        for &(i, j, d) in &all {
            if i % 6 == j % 6 {
                assert_eq!(d.distance, 0.0, "{what}: copies ({i}, {j})");
            } else {
                check_rel(
                    &format!("{what} ({i}, {j})"),
                    d.distance,
                    package(&e, i % 6, j % 6),
                );
            }
            assert_eq!(
                d.distance.to_bits(),
                m.values[i * n + j].to_bits(),
                "{what}"
            );
            assert_eq!(d.layers, m.layers.as_ref().unwrap()[i * n + j], "{what}");
        }
    }
}

/// The CLI over 18 images (the six squares three times) under a 1 MiB budget (spilled, blocks
/// of four, several bands): `--format jsonl` rows are every pair once in sorted path order with
/// the package's distances, the same text as under the default budget (one band), `--out`
/// written through a temporary file; `--matrix-out` is the package's matrix (1e-4 relative),
/// exactly symmetric with a zero diagonal.
#[test]
fn cli_all_pairs_streams_rows_and_matrix_within_one_mib() {
    let e = expected();
    let dir = tempfile::tempdir().unwrap();
    let trunk = trunk_npz(dir.path());
    let imgs = dir.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    let names = ["sq_a", "sq_b", "sq_c", "sq_d", "sq_e", "sq_f"];
    let mut files = Vec::new();
    for copy in 0..3 {
        for (k, name) in names.iter().enumerate() {
            let file = format!("{name}_{copy}.png");
            std::fs::copy(
                common::fixture(&format!("lpips/{name}.png")),
                imgs.join(&file),
            )
            .unwrap();
            files.push((file, k));
        }
    }
    files.sort();
    let n = files.len();
    let run = |memory_mb: &str, out: &str, matrix: &str| {
        let o = alexnet(
            &[
                "lpips",
                "--weights",
                trunk.to_str().unwrap(),
                "--all-pairs",
                imgs.to_str().unwrap(),
                "--memory-mb",
                memory_mb,
                "--format",
                "jsonl",
                "--out",
                dir.path().join(out).to_str().unwrap(),
                "--matrix-out",
                dir.path().join(matrix).to_str().unwrap(),
            ],
            None,
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read_to_string(dir.path().join(out)).unwrap()
    };
    let small = run("1", "small.jsonl", "small.npy");
    let large = run("1024", "large.jsonl", "large.npy");
    assert_eq!(small, large, "the rows do not depend on the budget");
    let rows: Vec<Value> = small
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), n * (n - 1) / 2);
    let base = |v: &Value| {
        std::path::Path::new(v.as_str().unwrap())
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string()
    };
    let mut r = rows.iter();
    for i in 0..n {
        for j in i + 1..n {
            let row = r.next().unwrap();
            assert_eq!(
                (base(&row["a"]), base(&row["b"])),
                (files[i].0.clone(), files[j].0.clone()),
                "sorted (a, b) order"
            );
            let (ki, kj) = (files[i].1, files[j].1);
            let got = f(&row["distance"]) as f32;
            if ki == kj {
                assert_eq!(got, 0.0, "{row}");
            } else {
                check_rel(&format!("{row}"), got, package(&e, ki, kj));
            }
        }
    }
    for npy in ["small.npy", "large.npy"] {
        let t = read_tensors(&dir.path().join(npy)).unwrap().remove(0);
        assert_eq!(t.shape, [n, n]);
        let m = t.data.unwrap();
        for i in 0..n {
            for j in 0..n {
                let v = m[i * n + j];
                assert_eq!(v.to_bits(), m[j * n + i].to_bits(), "{npy}: symmetry");
                let (ki, kj) = (files[i].1, files[j].1);
                if ki == kj {
                    assert_eq!(v, 0.0, "{npy} [{i}][{j}]");
                } else {
                    check_rel(&format!("{npy} [{i}][{j}]"), v, package(&e, ki, kj));
                }
            }
        }
    }
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|f| f.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}
