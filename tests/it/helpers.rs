//! The helpers people write next, against plain computations written here: cosine
//! similarity, nearest images and the similarity matrix of `Embeddings` (f64 maths in the
//! test); an LPIPS matrix's closest pairs and lookups by path (a full sort of every pair);
//! heatmaps (colours from `colorous` directly, the range read back from the PNG's tEXt chunks);
//! `classify_iter` / `embed_iter` against the batch calls on a few hundred generated images.

use crate::common;

use std::path::{Path, PathBuf};

use alexnet_wgpu::lpips::{render_heatmap, write_heatmap, Lin, Lpips, Map, Matrix};
use alexnet_wgpu::{AlexNet, Embeddings, Tap};
use rand::{Rng, SeedableRng};

use common::lpips_trunk::trunk_params;

/// `n` random rows of `dim` floats; row 3 all zeros, row 5 a positive multiple of row 1
/// (cosine exactly 1 with it), row 6 its negative.
fn embeddings(n: usize, dim: usize) -> Embeddings {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(29);
    let mut rows: Vec<f32> = (0..n * dim).map(|_| rng.random_range(-1.0..1.0)).collect();
    rows[3 * dim..4 * dim].fill(0.0);
    for k in 0..dim {
        rows[5 * dim + k] = 2.0 * rows[dim + k];
        rows[6 * dim + k] = -rows[dim + k];
    }
    Embeddings {
        dim,
        paths: (0..n)
            .map(|i| PathBuf::from(format!("img/{i}.jpg")))
            .collect(),
        rows,
        failed: Vec::new(),
    }
}

/// Cosine in f64, as a reader would write it.
fn cosine64(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        ab += x as f64 * y as f64;
        aa += x as f64 * x as f64;
        bb += y as f64 * y as f64;
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa.sqrt() * bb.sqrt())
    }
}

#[test]
fn cosine_nearest_and_matrix_follow_the_f64_formula() {
    let e = embeddings(40, 37);
    let n = e.len();
    let m = e.similarity_matrix();
    assert_eq!(m.len(), n * n);
    for i in 0..n {
        for j in 0..n {
            let want = cosine64(e.row(i), e.row(j));
            let got = m[i * n + j];
            assert!(
                (got as f64 - want).abs() < 1e-6,
                "[{i}][{j}] {got} vs {want}"
            );
            assert_eq!(got.to_bits(), m[j * n + i].to_bits(), "symmetric");
            assert_eq!(got.to_bits(), e.cosine(i, j).to_bits(), "cosine = matrix");
        }
    }
    assert_eq!(m[0], 1.0);
    assert_eq!(m[3 * n + 3], 0.0, "an all-zero row has no direction");
    assert_eq!(e.cosine(1, 5), 1.0);
    assert_eq!(e.cosine(1, 6), -1.0);

    // nearest: the full sort of the f64 cosines, most similar first, the query left out.
    for q in [0, 1, 3, 39] {
        let mut want: Vec<(usize, f64)> = (0..n)
            .filter(|&j| j != q)
            .map(|j| (j, cosine64(e.row(q), e.row(j))))
            .collect();
        want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        for k in [0, 1, 5, n - 1, n + 10] {
            let got = e.nearest(q, k);
            assert_eq!(got.len(), k.min(n - 1));
            for (g, w) in got.iter().zip(&want) {
                assert!((g.similarity as f64 - w.1).abs() < 1e-6);
                assert_eq!(g.path, e.paths[g.index]);
                if q != 3 {
                    // (all of row 3's cosines are 0: a tie everywhere, broken by index)
                    assert_eq!(g.index, w.0, "query {q} k {k}");
                }
            }
        }
    }
    let near = e.nearest(1, 1);
    assert_eq!(near[0].index, 5, "the multiple of row 1 is its nearest");
    assert_eq!(e.nearest_by_path("img/1.jpg", 3), Some(e.nearest(1, 3)));
    assert_eq!(e.nearest_by_path("img/99.jpg", 3), None);
    assert_eq!(e.index_of("img/7.jpg"), Some(7));
    // Any vector: its own row comes first.
    let v = e.row(7).to_vec();
    assert_eq!(e.nearest_to(&v, 2)[0].index, 7);
    assert!(Embeddings::default().similarity_matrix().is_empty());
}

/// A 4x4 matrix by hand: closest pairs (ties by index, NaN last), lookups by path.
#[test]
fn matrix_closest_pairs_and_lookups_by_path() {
    #[rustfmt::skip]
    let values = vec![
        0.0, 0.3, 0.1, 0.5,
        0.3, 0.0, 0.1, f32::NAN,
        0.1, 0.1, 0.0, 0.2,
        0.5, f32::NAN, 0.2, 0.0,
    ];
    let m = Matrix {
        n: 4,
        values,
        layers: None,
        paths: ["a", "b", "c", "d"].iter().map(PathBuf::from).collect(),
    };
    let got: Vec<(usize, usize, f32)> = m
        .closest_pairs(10)
        .iter()
        .map(|p| (p.i, p.j, p.distance))
        .collect();
    assert_eq!(
        &got[..5],
        &[
            (0, 2, 0.1),
            (1, 2, 0.1),
            (2, 3, 0.2),
            (0, 1, 0.3),
            (0, 3, 0.5)
        ]
    );
    assert_eq!((got[5].0, got[5].1), (1, 3));
    assert!(got[5].2.is_nan());
    let two = m.closest_pairs(2);
    assert_eq!(
        (two[1].a.as_path(), two[1].b.as_path()),
        (Path::new("b"), Path::new("c"))
    );
    assert!(m.closest_pairs(0).is_empty());
    assert_eq!(m.between("d", "c"), Some(0.2));
    assert_eq!(m.between("a", "zz"), None);
    assert_eq!(m.row_of("c"), Some(&[0.1, 0.1, 0.0, 0.2][..]));
    assert_eq!(m.get(3, 0), 0.5);
}

/// `matrix_files` on the fixture squares: the same values as `matrix` of the decoded images,
/// its paths kept; the closest pairs those of a full sort of every pair.
#[test]
fn lpips_matrix_of_files_finds_the_closest_pairs() {
    let ctx = common::ctx();
    let lpips = Lpips::from_params(&ctx, trunk_params(), Lin::V0_1).unwrap();
    let paths: Vec<PathBuf> = ["sq_a.png", "sq_b.png", "sq_c.png", "sq_d.png"]
        .iter()
        .map(|n| common::fixture(&format!("lpips/{n}")))
        .collect();
    let m = lpips.matrix_files(&paths, None).unwrap();
    let imgs: Vec<_> = paths
        .iter()
        .map(|p| alexnet_wgpu::lpips::load_image(p, None).unwrap())
        .collect();
    let refs: Vec<_> = imgs.iter().collect();
    assert_eq!(m.values, lpips.matrix(&refs).unwrap().values);
    assert_eq!(m.paths, paths);
    let mut all: Vec<(f32, usize, usize)> = (0..4)
        .flat_map(|i| (i + 1..4).map(move |j| (i, j)))
        .map(|(i, j)| (m.values[i * 4 + j], i, j))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then((a.1, a.2).cmp(&(b.1, b.2))));
    let got: Vec<(f32, usize, usize)> = m
        .closest_pairs(3)
        .into_iter()
        .map(|p| (p.distance, p.i, p.j))
        .collect();
    assert_eq!(got, all[..3]);
    assert_eq!(m.between(&paths[1], &paths[3]), Some(m.values[7]));
}

/// Magma over the map's range: the smallest value is magma's first colour, the largest its
/// last, the middle its middle; the range in the tEXt chunks; a constant map one colour.
#[test]
fn heatmap_colours_and_records_its_range() {
    let map = Map {
        height: 2,
        width: 3,
        data: vec![0.5, 1.0, 1.5, 2.5, f32::NAN, 4.5],
    };
    let h = render_heatmap(&map, None);
    assert_eq!((h.min, h.max), (0.5, 4.5));
    let px = |i: usize| [h.rgb[3 * i], h.rgb[3 * i + 1], h.rgb[3 * i + 2]];
    let magma = |t: f64| {
        let c = colorous::MAGMA.eval_continuous(t);
        [c.r, c.g, c.b]
    };
    assert_eq!(px(0), magma(0.0));
    assert_eq!(px(5), magma(1.0));
    assert_eq!(px(3), magma(0.5));
    assert_eq!(px(1), magma(0.125));
    assert_eq!(px(4), magma(0.0), "NaN takes the first colour");
    // A fixed range clamps.
    let fixed = render_heatmap(&map, Some((1.0, 1.5)));
    assert_eq!(&fixed.rgb[..3], &magma(0.0));
    assert_eq!(&fixed.rgb[15..], &magma(1.0));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.png");
    let written = write_heatmap(&map, &path).unwrap();
    assert_eq!(written, h);
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let text: Vec<(String, String)> = reader
        .info()
        .uncompressed_latin1_text
        .iter()
        .map(|t| (t.keyword.clone(), t.text.clone()))
        .collect();
    assert!(
        text.contains(&("lpips.min".into(), "0.5".into())),
        "{text:?}"
    );
    assert!(
        text.contains(&("lpips.max".into(), "4.5".into())),
        "{text:?}"
    );
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut buf).unwrap();
    assert_eq!((frame.width, frame.height), (3, 2));
    assert_eq!(&buf[..frame.buffer_size()], &h.rgb[..]);

    let flat = render_heatmap(
        &Map {
            height: 1,
            width: 2,
            data: vec![0.25, 0.25],
        },
        None,
    );
    assert_eq!((flat.min, flat.max), (0.25, 0.25));
    assert_eq!(&flat.rgb[..3], &flat.rgb[3..]);
}

/// `count` tiny PNGs of distinct colours in `dir` (a 4x4 image is upscaled to the input size;
/// decoding costs next to nothing), in order.
fn tiny_images(dir: &Path, count: usize) -> Vec<PathBuf> {
    (0..count)
        .map(|i| {
            let p = dir.join(format!("{i:04}.png"));
            let img = image::RgbImage::from_fn(4, 4, |x, y| {
                image::Rgb([
                    (i * 7 % 256) as u8,
                    (i * 13 / 3 % 256) as u8,
                    (x * 40 + y * 9) as u8,
                ])
            });
            img.save(&p).unwrap();
            p
        })
        .collect()
}

/// 200 paths (one of them corrupt, one missing) streamed in chunks of 48 (the last one
/// partial): every result equals the batch call's, in input order, with the failures in place.
#[test]
fn classify_iter_and_embed_iter_equal_the_batch_calls() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = tiny_images(dir.path(), 198);
    let bad = dir.path().join("corrupt.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    paths.insert(100, bad);
    paths.insert(150, dir.path().join("missing.png"));
    let net = AlexNet::builder()
        .weights(common::fixture("torchvision_small.npz"))
        .options(common::env_options())
        .batch(16)
        .build()
        .unwrap();

    let batch = net.classify(&paths, 3).unwrap();
    let streamed: Vec<_> = net
        .classify_iter(paths.iter(), 3)
        .chunk(48)
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(streamed.len(), paths.len());
    for (s, b) in streamed.iter().zip(&batch) {
        // Batches are composed alike up to the failures' shifts: classes equal, probabilities
        // to f32 rounding.
        assert_eq!(s.path, b.path);
        assert_eq!(s.top.len(), b.top.len());
        for (x, y) in s.top.iter().zip(&b.top) {
            assert_eq!(x.class, y.class, "{}", s.path.display());
            assert!(
                (x.prob - y.prob).abs() <= 1e-5,
                "{} {} vs {}",
                s.path.display(),
                x.prob,
                y.prob
            );
        }
        assert_eq!(s.error.is_some(), b.error.is_some(), "{}", s.path.display());
    }
    assert!(streamed[100].error.is_some() && streamed[150].error.is_some());

    let whole = net.embed(&paths, Tap::Fc7).unwrap();
    let (mut rows, mut got, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    let mut chunks = 0;
    for chunk in net.embed_iter(&paths, Tap::Fc7).chunk(48) {
        let chunk = chunk.unwrap();
        assert_eq!(chunk.dim, whole.dim);
        rows.extend(chunk.rows);
        got.extend(chunk.paths);
        failed.extend(chunk.failed.into_iter().map(|f| f.path));
        chunks += 1;
    }
    assert_eq!(chunks, 5);
    assert_eq!(got, whole.paths);
    assert_eq!(failed, vec![paths[100].clone(), paths[150].clone()]);
    assert_eq!(rows.len(), whole.rows.len());
    let worst = rows
        .iter()
        .zip(&whole.rows)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let scale = whole.rows.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(
        worst <= 1e-5 * scale.max(1.0),
        "fc7 streamed vs batch: {worst} (max {scale})"
    );
}
