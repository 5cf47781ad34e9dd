//! The autotuner (`model::tune`): what its cache reads back, what is ignored and with which
//! warning, that the kernels follow a cached winner (an `mm.wgsl` variant or `gemm`), and one
//! small tuning run whose winners must reproduce onnxruntime's logits. No timing is asserted
//! (timing is `alexnet bench --tune`'s business; only that every candidate was timed).

use crate::common;

use alexnet_wgpu::gpu::{storage_buffer, upload_f32, SplitWeight};
use alexnet_wgpu::kernels::mm::{ConvKind, DenseKind, Force, Tile};
use alexnet_wgpu::kernels::tuned::{self, Tuned, Variant};
use alexnet_wgpu::kernels::{self, Kernels, MatmulPath, Precision};
use alexnet_wgpu::model::tune::{self, CacheFile};
use alexnet_wgpu::model::{Network, Weights};
use common::{assert_close, ctx, fixture, fixture_npy};

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn good(entries: &[(String, &str)]) -> CacheFile {
    CacheFile {
        version: tune::VERSION,
        candidates: tune::candidates_id(),
        entries: entries
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect(),
    }
}

#[test]
fn missing_file_is_an_empty_cache_without_a_warning() {
    let d = dir();
    let (f, w) = tune::read(&d.path().join("tune.json"));
    assert!(f.entries.is_empty());
    assert_eq!(w, None);
}

#[test]
fn corrupt_file_is_ignored_with_a_warning_naming_it() {
    let d = dir();
    let p = d.path().join("tune.json");
    std::fs::write(&p, b"{\"version\": 1, \"entr").unwrap();
    let (f, w) = tune::read(&p);
    assert!(f.entries.is_empty());
    let w = w.expect("a warning");
    assert!(
        w.contains("tune.json") && w.contains("not a tuner cache"),
        "{w}"
    );
}

#[test]
fn old_version_and_other_candidates_are_ignored() {
    let d = dir();
    let p = d.path().join("tune.json");
    let ctx = ctx();
    let key = tune::entry(&ctx.info, Precision::F32, "dense b8 k64 o40");
    let mut old = good(&[(key.clone(), "gemv")]);
    old.version = tune::VERSION - 1;
    tune::write(&p, &old).unwrap();
    let (f, w) = tune::read(&p);
    assert!(f.entries.is_empty());
    assert!(w
        .unwrap()
        .contains(&format!("version {}", tune::VERSION - 1)));

    let mut stale = good(&[(key, "gemv")]);
    stale.candidates = "0123456789abcdef".into();
    tune::write(&p, &stale).unwrap();
    let (f, w) = tune::read(&p);
    assert!(f.entries.is_empty());
    assert!(w.unwrap().contains("another candidate set"));
}

#[test]
fn only_this_adapters_entries_are_used_and_the_file_round_trips() {
    let d = dir();
    let p = d.path().join("sub/tune.json");
    let ctx = ctx();
    let mut other = ctx.info.clone();
    other.name = format!("{} (another card)", other.name);
    other.device = other.device.wrapping_add(1);
    let conv = "conv b8 3x224x224 o64 k11 s4 p2 g1";
    let dense = "dense b8 k9216 o4096";
    let conv_gemm = "conv b8 64x27x27 o192 k5 s1 p2 g1";
    let dense_gemm = "dense b1 k4096 o4096";
    let file = good(&[
        (tune::entry(&ctx.info, Precision::F32, conv), "128x64x16"),
        (tune::entry(&ctx.info, Precision::F32, conv_gemm), "gemm"),
        (tune::entry(&ctx.info, Precision::F32, dense_gemm), "gemm"),
        (
            tune::entry(&ctx.info, Precision::F32, dense),
            "64x64x16-split4",
        ),
        (
            tune::entry(&other, Precision::F32, "dense b1 k4096 o4096"),
            "gemv",
        ),
        (
            tune::entry(&ctx.info, Precision::F16, "dense b2 k4096 o4096"),
            "gemv",
        ),
        (
            tune::entry(&ctx.info, Precision::F32, "dense b3 k1 o1"),
            "99x99x9",
        ),
    ]);
    tune::write(&p, &file).unwrap();
    // Written atomically: the file and nothing else (no temporary left behind).
    let names: Vec<_> = std::fs::read_dir(p.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("tune.json")]);
    let (back, w) = tune::read(&p);
    assert_eq!(w, None);
    assert_eq!(back, file);
    let (t, unknown) = tune::select(&back, &ctx.info, Precision::F32);
    assert_eq!(unknown, 1, "the unknown tile name is skipped");
    assert_eq!(t.conv.len(), 2);
    let tile = Tile::new(128, 64, 16);
    assert_eq!(t.conv[conv], Variant::Mm(ConvKind::implicit(tile, 1)));
    assert_eq!(t.conv[conv_gemm], Variant::Gemm);
    assert_eq!(t.dense.len(), 2, "{:?}", t.dense);
    assert_eq!(
        t.dense[dense],
        Variant::Mm(DenseKind::Tiles {
            tile: Tile::new(64, 64, 16),
            split: 4
        })
    );
    assert_eq!(t.dense[dense_gemm], Variant::Gemm);
    let (t_other, _) = tune::select(&back, &other, Precision::F32);
    assert_eq!(t_other.dense.len(), 1);
    assert!(t_other.conv.is_empty());
}

/// The labels of a dense layer's dispatches under `kernels`.
fn dense_labels(
    ctx: &alexnet_wgpu::gpu::GpuContext,
    ks: &Kernels,
    batch: usize,
    k: usize,
    out: usize,
) -> Vec<String> {
    let w = SplitWeight::upload(ctx, "w", &vec![0.0; k * out], out, k).unwrap();
    let b = upload_f32(ctx, "b", &vec![0.0; out]).unwrap();
    let x = storage_buffer(ctx, "x", batch * k, "").unwrap();
    let y = storage_buffer(ctx, "y", batch * out, "").unwrap();
    kernels::dense::dispatch(ctx, ks, batch, &w, &b, true, &x, &y)
        .unwrap()
        .into_iter()
        .map(|d| d.label)
        .collect()
}

#[test]
fn kernels_follow_a_cached_winner_unless_a_variant_is_forced() {
    let ctx = ctx();
    let mut t = Tuned::default();
    t.dense.insert(
        tuned::dense_key(5, 64, 40),
        Variant::Mm(DenseKind::Tiles {
            tile: Tile::new(128, 64, 16),
            split: 2,
        }),
    );
    t.dense.insert(tuned::dense_key(3, 64, 40), Variant::Gemm);
    let blocked = MatmulPath::Blocked(Force::default());
    let ks = Kernels::with_tuned(&ctx, blocked, Some(t.clone()));
    assert_eq!(
        dense_labels(&ctx, &ks, 5, 64, 40),
        ["dense(mm 128x64x16-split2)", "dense(mm split-K reduce)"]
    );
    // A `gemm` winner: the Gemm path's kernel for that shape only.
    assert_eq!(dense_labels(&ctx, &ks, 3, 64, 40), ["dense(gemm)"]);
    // No cache entry: the heuristic (gemv at batch <= 8).
    let ks = Kernels::with_tuned(&ctx, blocked, None);
    assert_eq!(dense_labels(&ctx, &ks, 5, 64, 40), ["dense(mm gemv)"]);
    // Another shape than the cached one: heuristic too.
    let ks = Kernels::with_tuned(&ctx, blocked, Some(t.clone()));
    assert_eq!(dense_labels(&ctx, &ks, 6, 64, 40), ["dense(mm gemv)"]);
    // A forced field wins over the cache (ALEXNET_MATMUL=blocked-64x64x16).
    let forced = MatmulPath::parse("blocked-64x64x16").unwrap();
    let ks = Kernels::with_tuned(&ctx, forced, Some(t.clone()));
    assert_eq!(
        dense_labels(&ctx, &ks, 5, 64, 40),
        ["dense(mm 64x64x16-split2)", "dense(mm split-K reduce)"]
    );
    // ... and over a `gemm` winner (ALEXNET_MATMUL=blocked-gemv: every dense layer gemv).
    let forced = MatmulPath::parse("blocked-gemv").unwrap();
    let ks = Kernels::with_tuned(&ctx, forced, Some(t.clone()));
    assert_eq!(dense_labels(&ctx, &ks, 3, 64, 40), ["dense(mm gemv)"]);
    // The Gemm path (CPU adapters' default) reads the table too: an `mm` winner runs there,
    // shapes without one keep `gemm.wgsl`.
    let ks = Kernels::with_tuned(&ctx, MatmulPath::Gemm, Some(t));
    assert_eq!(
        dense_labels(&ctx, &ks, 5, 64, 40),
        ["dense(mm 128x64x16-split2)", "dense(mm split-K reduce)"]
    );
    assert_eq!(dense_labels(&ctx, &ks, 3, 64, 40), ["dense(gemm)"]);
    assert_eq!(dense_labels(&ctx, &ks, 6, 64, 40), ["dense(gemm)"]);
}

const TOL: f32 = 1e-4;

/// The labels of every dispatch of a network's plan, in order.
fn plan_labels(net: &mut Network, batch: usize, h: usize, w: usize) -> Vec<String> {
    let plan = net.plan(batch, h, w).unwrap();
    plan.steps
        .iter()
        .flat_map(|(_, ds)| ds.iter().map(|d| d.label.clone()))
        .collect()
}

/// A tuning run on the reduced-width torchvision net: every conv and dense layer timed over
/// the whole candidate list (`gemm` included), each winner one of them, and the network built
/// from the winners (a mix of paths in one plan) matches onnxruntime's logits.
#[test]
fn a_tuning_run_times_every_candidate_and_its_winners_match_onnxruntime() {
    let ctx = ctx();
    let w = Weights::load(fixture("torchvision_small.npz"), None).unwrap();
    let (shape, x) = fixture_npy("input_224.npy");
    let (_, want) = fixture_npy("torchvision_logits.npy");
    let batch = shape[0];
    let mut file = CacheFile::default();
    let timed = tune::tune(&ctx, &w, &[batch], 1, &mut file).unwrap();
    assert_eq!(file.version, tune::VERSION);
    assert_eq!(file.candidates, tune::candidates_id());
    let convs = timed
        .iter()
        .filter(|t| t.shape.starts_with("conv "))
        .count();
    let denses = timed
        .iter()
        .filter(|t| t.shape.starts_with("dense "))
        .count();
    // The reduced-width net's fc8 has K = 10 (not whole vec4 loads): dense.wgsl, not tuned.
    assert_eq!((convs, denses), (5, 2), "{timed:#?}");
    // Each conv's shape by its key (its candidates depend on it: split-K where it is small).
    let spec = w.spec();
    let conv_shapes: std::collections::HashMap<String, _> = spec
        .layers
        .iter()
        .zip(&spec.infer().unwrap())
        .filter_map(|(l, i)| l.conv_shape(batch, i.input.as_map()))
        .map(|s| (tuned::conv_key(&s), s))
        .collect();
    for t in &timed {
        let names: Vec<&str> = t.times.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"gemm"), "{}: {names:?}", t.shape);
        let want: Vec<String> = if t.shape.starts_with("conv ") {
            tuned::conv_candidates(&conv_shapes[&t.shape], &ctx.limits)
                .iter()
                .map(|v| v.name())
                .collect()
        } else {
            // `dense b{batch} k{k} o{rows}`
            let n: Vec<usize> = t.shape[6..]
                .split(' ')
                .map(|f| f[1..].parse().unwrap())
                .collect();
            let c = tuned::dense_candidates(n[0], n[1], n[2], &ctx.limits);
            c.iter().map(|v| v.name()).collect()
        };
        assert_eq!(names, want, "{}", t.shape);
        assert!(names.contains(&t.winner.as_str()), "{t:?}");
        assert!(t.times.iter().all(|(_, ms)| ms.is_finite() && *ms >= 0.0));
    }
    assert_eq!(file.entries.len(), timed.len());
    let (table, unknown) = tune::select(&file, &ctx.info, Precision::F32);
    assert_eq!(unknown, 0);
    let blocked = MatmulPath::Blocked(Force::default());
    let ks = Kernels::with_tuned(&ctx, blocked, Some(table));
    let mut net = Network::with_kernels(&ctx, &w, Precision::F32, ks).unwrap();
    let out = net.forward(&x, batch, shape[2], shape[3], false).unwrap();
    assert_close("tuned logits", &out.logits, &want, TOL);
}

/// A table that sends conv1, conv5 and fc7 to `gemm` and the rest to `mm.wgsl` variants
/// (conv3 through the coalesced im2col, conv4 split over K): one plan mixes them (the scratch
/// sized for the patch matrices of both im2col kernels and conv4's partial sums) and still
/// matches onnxruntime, on the `Blocked` and on the `Gemm` path.
#[test]
fn a_plan_mixing_gemm_and_mm_winners_matches_onnxruntime() {
    let ctx = ctx();
    let w = Weights::load(fixture("torchvision_small.npz"), None).unwrap();
    let (shape, x) = fixture_npy("input_224.npy");
    let (_, want) = fixture_npy("torchvision_logits.npy");
    let (batch, h, wd) = (shape[0], shape[2], shape[3]);
    let spec = w.spec();
    let infos = spec.infer().unwrap();
    let mut t = Tuned::default();
    let (mut conv_i, mut dense_i) = (0, 0);
    for (layer, info) in spec.layers.iter().zip(&infos) {
        if let Some(s) = layer.conv_shape(batch, info.input.as_map()) {
            // conv2 on a tile, conv3 through the coalesced im2col, conv4 split over K (its
            // partial sums in the plan's scratch).
            let v = match conv_i {
                1 => Variant::Mm(ConvKind::implicit(Tile::new(64, 128, 16), 1)),
                2 => Variant::Mm(ConvKind::im2col(Tile::new(32, 32, 16))),
                3 => Variant::Mm(ConvKind::implicit(Tile::new(64, 32, 16), 3)),
                _ => Variant::Gemm,
            };
            t.conv.insert(tuned::conv_key(&s), v);
            conv_i += 1;
        } else if matches!(layer, alexnet_wgpu::model::Layer::Dense { .. }) {
            let (k, o) = (info.input.len(), info.output.len());
            let v = if dense_i == 1 {
                Variant::Gemm
            } else {
                Variant::Mm(DenseKind::Tiles {
                    tile: Tile::new(64, 64, 32),
                    split: 2,
                })
            };
            t.dense.insert(tuned::dense_key(batch, k, o), v);
            dense_i += 1;
        }
    }
    assert_eq!((conv_i, dense_i), (5, 3));
    // On both paths that read the table: the GPU default and the CPU adapters' default.
    for path in [MatmulPath::Blocked(Force::default()), MatmulPath::Gemm] {
        let ks = Kernels::with_tuned(&ctx, path, Some(t.clone()));
        check_mixed_plan(&ctx, &w, ks, &x, (batch, h, wd), &want);
    }
}

fn check_mixed_plan(
    ctx: &alexnet_wgpu::gpu::GpuContext,
    w: &Weights,
    ks: Kernels,
    x: &[f32],
    (batch, h, wd): (usize, usize, usize),
    want: &[f32],
) {
    let path = ks.path;
    let mut net = Network::with_kernels(ctx, w, Precision::F32, ks).unwrap();
    let labels = plan_labels(&mut net, batch, h, wd);
    let count = |l: &str| labels.iter().filter(|x| x.as_str() == l).count();
    assert_eq!(count("conv2d(mm 64x128x16)"), 1, "{labels:?}");
    assert_eq!(count("conv2d(mm 64x32x16-split3)"), 1, "{labels:?}");
    assert_eq!(count("conv2d(mm split-K reduce)"), 1, "{labels:?}");
    assert_eq!(count("conv2d(im2col coalesced)"), 1, "{labels:?}");
    assert_eq!(count("conv2d(mm 32x32x16-im2col)"), 1, "{labels:?}");
    assert!(count("conv2d(gemm)") >= 2, "{labels:?}");
    assert_eq!(count("dense(gemm)"), 1, "{labels:?}");
    assert_eq!(count("dense(mm 64x64x32-split2)"), 1, "{labels:?}");
    // fc8 (K = 10, not whole vec4 loads) stays on dense.wgsl whatever the table says.
    assert_eq!(count("dense"), 1, "{labels:?}");
    let out = net.forward(x, batch, h, wd, false).unwrap();
    assert_close(
        &format!("{path:?}: mixed-plan logits"),
        &out.logits,
        want,
        TOL,
    );
}

/// The tuner times random data, never zeros (zeros can take faster paths in hardware).
#[test]
fn tuner_timing_data_is_random_and_never_zero() {
    use alexnet_wgpu::model::tune::timing_data;
    let a = timing_data(200_000, 1);
    assert_eq!(a.len(), 200_000);
    assert!(a.iter().all(|&v| v != 0.0 && (-1.0..1.0).contains(&v)));
    assert_eq!(a, timing_data(200_000, 1), "same seed, same data");
    assert_ne!(timing_data(1000, 2), a[..1000], "another seed, other data");
    let mut distinct: Vec<u32> = a[..1 << 16].iter().map(|v| v.to_bits()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(
        distinct.len() > 60_000,
        "{} distinct values",
        distinct.len()
    );
    let mean = a.iter().map(|&v| v as f64).sum::<f64>() / a.len() as f64;
    assert!(mean.abs() < 0.02, "mean {mean}");
}

/// Training's stack plans one scratch for every batch up to its largest: where the tuner sends
/// a smaller batch of a geometry through the coalesced im2col (here batch 1) while the largest
/// batch's route needs no scratch (batch 4: the conv entry, unsplit at K = 144), the patch
/// matrix is still allocated; and a forced `-im2col` sizes it from the route itself.
#[test]
fn scratch_up_to_a_batch_covers_a_tuned_im2col_at_a_smaller_one() {
    use alexnet_wgpu::kernels::conv2d::Conv2dShape;
    use alexnet_wgpu::kernels::route::ConvRoute;
    let ctx = ctx();
    let s4 = Conv2dShape::square(4, 16, 13, 24, 3, 1, 1, 1);
    let s1 = Conv2dShape { batch: 1, ..s4 };
    let blocked = MatmulPath::Blocked(Force::default());
    let f32 = Precision::F32;
    let plain = Kernels::with_tuned(&ctx, blocked, None);
    assert_eq!(
        plain.conv_route(&s4, f32).unwrap(),
        ConvRoute::Mm(Tile::new(64, 64, 16))
    );
    assert_eq!(
        plain.conv_scratch_words_up_to(&ctx, &[s4], f32).unwrap(),
        None
    );
    let t32 = Tile::new(32, 32, 16);
    let mut t = Tuned::default();
    t.conv
        .insert(tuned::conv_key(&s1), Variant::Mm(ConvKind::im2col(t32)));
    let ks = Kernels::with_tuned(&ctx, blocked, Some(t));
    assert_eq!(ks.conv_route(&s1, f32).unwrap(), ConvRoute::MmIm2col(t32));
    let words = ks.conv_scratch_words_up_to(&ctx, &[s4], f32).unwrap();
    assert_eq!(words, Some(s4.im2col_words(f32).unwrap()));
    let forced = MatmulPath::parse("blocked-im2col").unwrap();
    let ks = Kernels::with_tuned(&ctx, forced, None);
    assert_eq!(
        ks.conv_route(&s4, f32).unwrap(),
        ConvRoute::MmIm2col(Tile::new(64, 64, 16))
    );
    let words = ks.conv_scratch_words(&ctx, &[s1], f32).unwrap();
    assert_eq!(words, Some(s1.im2col_words(f32).unwrap()));
}
