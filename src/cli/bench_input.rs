//! `alexnet bench --input DIR`: decode + preprocess throughput alone, no GPU work.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use alexnet_wgpu::data::{inputs::list_images, LoadOptions, Loader, Preprocess};
use alexnet_wgpu::model::Arch;

use super::bench_format::Format;

#[derive(serde::Serialize)]
struct InputBench {
    input: PathBuf,
    arch: Arch,
    options: LoadOptions,
    images: usize,
    passes: usize,
    threads: usize,
    wall_s: f64,
    images_per_s: f64,
    /// CPU time per image (one thread's view): decode + resize + crop.
    ms_per_image: f64,
    decode_ms: f64,
    resize_ms: f64,
    /// The crop into 8-bit pixels, as `classify` sends images (normalised on the GPU).
    normalise_ms: f64,
    /// How many images were decoded at each DCT scale (1 = full resolution).
    scales: std::collections::BTreeMap<String, usize>,
}

#[allow(clippy::too_many_arguments)]
pub fn run(
    dir: &Path,
    arch: Arch,
    threads: Option<usize>,
    opts: LoadOptions,
    passes: usize,
    warmup: usize,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let paths = if dir.is_dir() {
        list_images(dir)
    } else {
        vec![dir.to_path_buf()]
    };
    anyhow::ensure!(!paths.is_empty(), "no images found in {}", dir.display());
    let mut loader = Loader::new(Preprocess::for_arch(arch), opts);
    if let Some(t) = threads {
        anyhow::ensure!(t > 0, "--threads must be at least 1");
        loader.threads = t;
    }
    let mut buf = Vec::new();
    for _ in 0..warmup {
        loader.load_pixels_batch(&paths, &mut buf);
    }
    let passes = passes.max(1);
    let (mut decode, mut resize, mut normalise) = (0f64, 0f64, 0f64);
    let mut scales = std::collections::BTreeMap::new();
    let wall = Instant::now();
    for _ in 0..passes {
        for r in loader.load_pixels_batch(&paths, &mut buf) {
            let t = r?;
            decode += t.decode_s;
            resize += t.resize_s;
            normalise += t.normalise_s;
            *scales.entry(format!("1/{}", t.scale)).or_insert(0) += 1;
        }
    }
    let wall_s = wall.elapsed().as_secs_f64();
    let n = (paths.len() * passes) as f64;
    let per = |s: f64| s * 1e3 / n;
    let r = InputBench {
        input: dir.to_path_buf(),
        arch,
        options: opts,
        images: paths.len(),
        passes,
        threads: loader.threads.min(paths.len()),
        wall_s,
        images_per_s: n / wall_s,
        ms_per_image: per(decode + resize + normalise),
        decode_ms: per(decode),
        resize_ms: per(resize),
        normalise_ms: per(normalise),
        scales,
    };
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&r)?),
        Format::Table => {
            let path = if opts.exact {
                "exact (full-resolution decode, image's triangle resize)"
            } else {
                "fast (reduced-DCT-scale JPEG decode, SIMD triangle resize)"
            };
            println!(
                "input: {} ({} images x {} passes), {} preset, {path}{}",
                r.input.display(),
                r.images,
                r.passes,
                r.arch,
                if opts.ignore_orientation {
                    ", EXIF orientation ignored"
                } else {
                    ""
                }
            );
            println!(
                "{:>7} {:>10} {:>10} {:>10} {:>10} {:>12}  DCT scales",
                "threads", "images/s", "ms/image", "decode ms", "resize ms", "crop ms"
            );
            let scales: Vec<String> = r.scales.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            println!(
                "{:>7} {:>10.1} {:>10.2} {:>10.2} {:>10.2} {:>12.3}  {}",
                r.threads,
                r.images_per_s,
                r.ms_per_image,
                r.decode_ms,
                r.resize_ms,
                r.normalise_ms,
                scales.join(", ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
