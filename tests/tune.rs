//! The autotuner's cache (`model::tune`): what is read back, what is ignored and with which
//! warning, and that the kernels follow a cached winner. Nothing here times anything (the
//! timing itself runs in `alexnet bench --tune`).

mod common;

use alexnet_wgpu::gpu::{storage_buffer, upload_f32, SplitWeight};
use alexnet_wgpu::kernels::mm::{DenseKind, Force, Tile};
use alexnet_wgpu::kernels::tuned::{self, Tuned};
use alexnet_wgpu::kernels::{self, Kernels, MatmulPath, Precision};
use alexnet_wgpu::model::tune::{self, CacheFile};
use common::ctx;

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
    let file = good(&[
        (tune::entry(&ctx.info, Precision::F32, conv), "128x64x16"),
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
    assert_eq!(t.conv.len(), 1);
    assert_eq!(t.conv[conv], Tile::new(128, 64, 16));
    assert_eq!(t.dense.len(), 1, "{:?}", t.dense);
    assert_eq!(
        t.dense[dense],
        DenseKind::Tiles {
            tile: Tile::new(64, 64, 16),
            split: 4
        }
    );
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
        DenseKind::Tiles {
            tile: Tile::new(128, 64, 16),
            split: 2,
        },
    );
    let blocked = MatmulPath::Blocked(Force::default());
    let ks = Kernels::with_tuned(&ctx, blocked, Some(t.clone()));
    assert_eq!(
        dense_labels(&ctx, &ks, 5, 64, 40),
        ["dense(mm 128x64x16-split2)", "dense(mm split-K reduce)"]
    );
    // No cache entry: the heuristic (gemv at batch <= 8).
    let ks = Kernels::with_tuned(&ctx, blocked, None);
    assert_eq!(dense_labels(&ctx, &ks, 5, 64, 40), ["dense(mm gemv)"]);
    // Another shape than the cached one: heuristic too.
    let ks = Kernels::with_tuned(&ctx, blocked, Some(t.clone()));
    assert_eq!(dense_labels(&ctx, &ks, 6, 64, 40), ["dense(mm gemv)"]);
    // A forced field wins over the cache (ALEXNET_MATMUL=blocked-64x64x16).
    let forced = MatmulPath::parse("blocked-64x64x16").unwrap();
    let ks = Kernels::with_tuned(&ctx, forced, Some(t));
    assert_eq!(
        dense_labels(&ctx, &ks, 5, 64, 40),
        ["dense(mm 64x64x16-split2)", "dense(mm split-K reduce)"]
    );
}
