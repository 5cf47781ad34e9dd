//! The autotuner: per adapter and layer shape, which variant runs fastest on the `Blocked` and
//! `Gemm` paths (only tiles that fit the device's limits are timed): an `mm.wgsl` variant (tile, split-K, gemv) or the CPU-shaped `Gemm` path's kernels
//! (`im2col` + `gemm.wgsl`). Timed once by `alexnet bench --tune` with GPU timestamps (wall
//! clock where the adapter has no timestamp queries) and kept in a versioned JSON cache
//! (`tune.json` in the cache directory the CLI passes, the one `fetch-weights` uses).
//!
//! The file holds entries of several adapters side by side, each keyed by
//! `adapter name | vendor | device id | driver | backend | precision | shape`; a process reads
//! only its own adapter's. A file that does not parse, has another `version`, or was written for
//! another candidate list (`candidates`, a hash of the variant names and of `mm.wgsl` itself,
//! so editing the shader invalidates old timings) is ignored with one warning, and the next
//! `--tune` rewrites it (atomically, `fsutil::write_atomic`). Without entries for a shape the
//! kernels fall back to the heuristics of `kernels::mm`, so a first `classify` never waits on
//! timing.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::{Layer, Weights};
use crate::error::{Error, Result};
use crate::gpu::{storage_buffer, upload_f32, GpuContext, SplitWeight};
use crate::kernels::dense::DenseRoute;
use crate::kernels::mm;
use crate::kernels::route::ConvRoute;
use crate::kernels::tuned::{self, Tuned};
use crate::kernels::{self, Kernels, MatmulPath, Precision};

/// Bumped when the file's layout or meaning changes (2: `gemm` winners, timestamp timing).
pub const VERSION: u32 = 2;

/// The cache file name inside the cache directory.
pub const FILE: &str = "tune.json";

/// The cache as stored.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CacheFile {
    /// The cache format's version.
    pub version: u32,
    /// The candidate set it was timed over.
    pub candidates: String,
    /// `adapter key | precision | shape key` -> variant name.
    pub entries: BTreeMap<String, String>,
}

/// Identifies the candidate set: the variant names the tuner times and the shader sources.
pub fn candidates_id() -> String {
    let mut h = Sha256::new();
    for t in mm::TILES {
        h.update(t.name().as_bytes());
        h.update(b";");
    }
    h.update(b"gemv;split2,4,8,16;convsplit2,4,8,16;gemm;im2col;");
    for file in [
        "mm.wgsl",
        "im2col.wgsl",
        "gemm.wgsl",
        "im2col_coalesced.wgsl",
    ] {
        h.update(kernels::shader(file).source.as_bytes());
    }
    let d = h.finalize();
    d[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// `name | vendor | device | driver | backend` of an adapter.
pub fn adapter_key(info: &wgpu::AdapterInfo) -> String {
    format!(
        "{} | {:#06x} | {:#06x} | {} {} | {:?}",
        info.name, info.vendor, info.device, info.driver, info.driver_info, info.backend
    )
}

/// `adapter key | precision | shape key`: one entry of the cache file.
pub fn entry_key(adapter: &str, precision: Precision, shape: &str) -> String {
    format!("{adapter} | {precision} | {shape}")
}

/// Reads `path`: `(file, warning)`. A missing file is an empty cache without a warning; a
/// corrupt, old-version or stale one is an empty cache with a warning naming the file and why.
pub fn read(path: &Path) -> (CacheFile, Option<String>) {
    let empty = CacheFile {
        version: VERSION,
        candidates: candidates_id(),
        entries: BTreeMap::new(),
    };
    if std::fs::symlink_metadata(path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
        return (empty, None);
    }
    // Every GPU command reads this file: a FIFO there would block them all, a link to
    // /dev/zero fill the memory. A regular file of at most 16 MiB (a cache of every layer of
    // many adapters is a few KiB).
    let text = match crate::fsutil::read_regular_capped(path, 16 << 20)
        .and_then(|b| String::from_utf8(b).map_err(|e| Error::Invalid(e.to_string())))
    {
        Ok(t) => t,
        Err(e) => {
            let w = format!("ignoring tuner cache {}: {e}", path.display());
            return (empty, Some(w));
        }
    };
    let why = match serde_json::from_str::<CacheFile>(&text) {
        Err(e) => format!("not a tuner cache ({e})"),
        Ok(f) if f.version != VERSION => {
            format!("version {} (expected {VERSION})", f.version)
        }
        Ok(f) if f.candidates != empty.candidates => format!(
            "written for another candidate set ({}, this build's is {})",
            f.candidates, empty.candidates
        ),
        Ok(f) => return (f, None),
    };
    let w = format!(
        "ignoring tuner cache {}: {why}; heuristics are used until the autotuner rewrites it",
        path.display()
    );
    (empty, Some(w))
}

/// Writes `file` to `path` atomically (temporary file + rename).
pub fn write(path: &Path, file: &CacheFile) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let text = serde_json::to_string_pretty(file)
        .map_err(|e| Error::Invalid(format!("serialising the tuner cache: {e}")))?;
    crate::fsutil::write_atomic(path, |f| {
        use std::io::Write;
        f.write_all(text.as_bytes())?;
        f.write_all(b"\n")
    })
}

/// The entries of `file` for this adapter and precision, as the kernels read them. Entries
/// whose variant name this build does not know are skipped (counted in the second value).
pub fn select(file: &CacheFile, info: &wgpu::AdapterInfo, precision: Precision) -> (Tuned, usize) {
    let prefix = entry_key(&adapter_key(info), precision, "");
    let mut out = Tuned::default();
    let mut unknown = 0;
    for (k, v) in &file.entries {
        let Some(shape) = k.strip_prefix(&prefix) else {
            continue;
        };
        if shape.starts_with("conv ") {
            match tuned::parse_conv(v) {
                Some(t) => {
                    out.conv.insert(shape.to_string(), t);
                }
                None => unknown += 1,
            }
        } else if shape.starts_with("dense ") {
            match tuned::parse_dense(v) {
                Some(d) => {
                    out.dense.insert(shape.to_string(), d);
                }
                None => unknown += 1,
            }
        } else {
            unknown += 1;
        }
    }
    (out, unknown)
}

/// Loads the cache at `path` into `ctx` ([`GpuContext::set_tuned`]): this adapter's f32
/// entries, read by every [`Kernels`] made from `ctx` afterwards; returns the warning to
/// print, if any.
pub fn load_into(ctx: &GpuContext, path: &Path) -> Option<String> {
    let (file, warning) = read(path);
    let (t, _) = select(&file, &ctx.info, Precision::F32);
    ctx.set_tuned(t);
    warning
}

/// One timed shape: its key, the winner's name, and `(variant, ms)` for every candidate.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Timed {
    /// The shape's key.
    pub shape: String,
    /// The fastest variant's name.
    pub winner: String,
    /// `(variant, ms)` for every candidate.
    pub times: Vec<(String, f64)>,
}

/// How the tuner timed its candidates.
pub fn timing_name(ctx: &GpuContext) -> &'static str {
    if kernels::timing::has_timestamps(ctx) {
        "GPU timestamps"
    } else {
        "wall clock"
    }
}

/// Times every candidate for every conv and dense layer of `weights`' network at each batch
/// size (random data; a warm-up run, then the best of `reps`, each timed with GPU timestamps
/// where the adapter has them, else by wall clock around a submission and its wait), and
/// records the winners in `file` under this adapter. f32 only: f16 storage has one kernel
/// family (`im2col_f16` + `gemm_f16`), so there is nothing to choose.
pub fn tune(
    ctx: &GpuContext,
    weights: &Weights,
    batches: &[usize],
    reps: usize,
    file: &mut CacheFile,
) -> Result<Vec<Timed>> {
    let spec = weights.spec();
    let infos = spec.infer()?;
    let ks = Kernels::with_path(ctx, MatmulPath::Blocked(mm::Force::default()));
    let adapter = adapter_key(&ctx.info);
    let timestamps = kernels::timing::has_timestamps(ctx);
    let mut out = Vec::new();
    let time = |ds: &[kernels::Dispatch]| -> Result<f64> {
        kernels::run(ctx, ds)?;
        let mut best = f64::INFINITY;
        for _ in 0..reps.max(1) {
            let ms = if timestamps {
                let all: Vec<&kernels::Dispatch> = ds.iter().collect();
                kernels::timing::gpu_ms(ctx, &all)?.iter().sum()
            } else {
                let t = Instant::now();
                kernels::run(ctx, ds)?;
                t.elapsed().as_secs_f64() * 1e3
            };
            best = best.min(ms);
        }
        Ok(best)
    };
    for &batch in batches {
        for (layer, info) in spec.layers.iter().zip(&infos) {
            match tune_layer(ctx, &ks, &time, layer, info, batch) {
                Ok(timed) => {
                    for (shape, times) in timed {
                        out.push(record(file, &adapter, shape, times));
                    }
                }
                // Buffers of this batch pass the binding limit: the network runs it in
                // sub-batches (other shapes), so there is nothing to tune at this size.
                Err(Error::OverLimit { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    file.version = VERSION;
    file.candidates = candidates_id();
    Ok(out)
}

type Times = Vec<(String, f64)>;

/// What the tuner fills its inputs, weights and biases with: `len` values uniform in
/// [-1, 1), none of them zero, the same for the same `seed` (a block of 64 Ki values
/// repeated, so a large layer costs no more to fill than a small one).
pub fn timing_data(len: usize, seed: u64) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let block: Vec<f32> = (0..len.min(1 << 16))
        .map(|_| {
            let v: f32 = rng.random_range(-1.0..1.0);
            if v == 0.0 {
                0.5
            } else {
                v
            }
        })
        .collect();
    block.iter().copied().cycle().take(len).collect()
}

/// Every candidate's time for one layer at `batch` (dense: per distinct weight-part size).
fn tune_layer(
    ctx: &GpuContext,
    ks: &Kernels,
    time: &dyn Fn(&[kernels::Dispatch]) -> Result<f64>,
    layer: &Layer,
    info: &super::LayerInfo,
    batch: usize,
) -> Result<Vec<(String, Times)>> {
    let [c, h, w] = info.input.as_map();
    let hint = "tune a smaller batch";
    let mut out = Vec::new();
    if let Some(shape) = layer.conv_shape(batch, [c, h, w]) {
        let (oh, ow) = shape.out_hw()?;
        // Random inputs, weights and biases: zeros can take faster paths in hardware and
        // drivers, so timing them would mislead.
        let x = upload_f32(ctx, "tune x", &timing_data(batch * c * h * w, 1))?;
        let y = storage_buffer(ctx, "tune y", batch * shape.out_c * oh * ow, hint)?;
        let wt = upload_f32(
            ctx,
            "tune w",
            &kernels::conv2d::weight_for_gemm(&shape, &timing_data(shape.weight_len(), 2)),
        )?;
        let b = upload_f32(ctx, "tune b", &timing_data(shape.out_c, 3))?;
        // The Gemm candidate's patch matrix or a split's partial sums, capped as a network's
        // plan caps them.
        let candidates = tuned::conv_candidates(&shape, &ctx.limits);
        let mut need = 0;
        for &v in &candidates {
            need = need.max(ConvRoute::from(v).scratch_words(&shape)?);
        }
        let words = kernels::conv2d::scratch_words(ctx, need);
        let scratch = storage_buffer(ctx, "tune im2col", words, hint)?;
        let mut times = Vec::new();
        for variant in candidates {
            let ds = ConvRoute::from(variant).dispatch(
                ctx,
                ks,
                &shape,
                true,
                &wt,
                &b,
                &x,
                &y,
                Some(&scratch),
            )?;
            times.push((variant.name(), time(&ds)?));
        }
        out.push((tuned::conv_key(&shape), times));
    } else if let Layer::Dense { .. } = layer {
        let (k, n_out) = (info.input.len(), info.output.len());
        if !k.is_multiple_of(4) {
            return Ok(out);
        }
        let x = upload_f32(ctx, "tune x", &timing_data(batch * k, 4))?;
        let y = storage_buffer(ctx, "tune y", batch * n_out, hint)?;
        let wt = SplitWeight::upload(ctx, "tune w", &timing_data(k * n_out, 5), n_out, k)?;
        let b = upload_f32(ctx, "tune b", &timing_data(n_out, 6))?;
        // The parts of one layer have (nearly) one shape: each distinct part size once.
        let mut seen = Vec::new();
        for (start, rows, buf) in &wt.parts {
            if seen.contains(rows) {
                continue;
            }
            seen.push(*rows);
            let part = (*start, *rows, n_out);
            let mut times = Vec::new();
            for variant in tuned::dense_candidates(batch, k, *rows, &ctx.limits) {
                let ds = DenseRoute::from(variant)
                    .dispatch_part(ctx, ks, batch, k, part, true, buf, &b, &x, &y)?;
                times.push((variant.name(), time(&ds)?));
            }
            out.push((tuned::dense_key(batch, k, *rows), times));
        }
    }
    Ok(out)
}

fn record(file: &mut CacheFile, adapter: &str, shape: String, times: Times) -> Timed {
    let winner = times
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(n, _)| n.clone())
        .unwrap_or_default();
    file.entries
        .insert(entry_key(adapter, Precision::F32, &shape), winner.clone());
    Timed {
        shape,
        winner,
        times,
    }
}

/// An entry as [`tune`] writes it (tests build caches by hand with it).
pub fn entry(info: &wgpu::AdapterInfo, precision: Precision, shape: &str) -> String {
    entry_key(&adapter_key(info), precision, shape)
}
