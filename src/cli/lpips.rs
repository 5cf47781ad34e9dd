//! `alexnet lpips`: LPIPS distances (the `lpips` 0.1.4 package's `net='alex'`) between two
//! images, two folders paired by relative path, a list of pairs, or all pairs of a folder.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use alexnet_wgpu::data::inputs::list_images;
use alexnet_wgpu::fsutil::read_lines_capped;
use alexnet_wgpu::lpips::{write_heatmap, Lin, Lpips, MatrixProgress, MIN_SIDE};
use alexnet_wgpu::weights::write_npy;
use anyhow::{bail, Context};
use clap::Args;
use image::RgbImage;

use super::lpips_out::{Format, MatrixNpy, Row, RowWriter};
use super::meter::bar;
use super::{GpuArgs, ModelArgs};

#[derive(Args)]
pub struct LpipsArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    gpu: GpuArgs,
    /// Lin layer calibration: v0.1 (the package's default), v0.0 (the original release; no
    /// input scaling) or none (the "baseline": squared differences summed over channels).
    #[arg(long, default_value = "v0.1")]
    lin: Lin,
    /// Also report the five per-layer terms (the distance is their sum).
    #[arg(long)]
    per_layer: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Write the output to FILE (atomically) instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Write each pair's spatial map (the per-layer maps upsampled to the image size and
    /// summed) as float32 .npy [H, W] into DIR, named `pair-NNNNN.npy` by pair order, and as a
    /// heatmap `pair-NNNNN.png` (magma colormap over the map's own range, which its tEXt
    /// chunks `lpips.min` and `lpips.max` record).
    #[arg(long, value_name = "DIR", conflicts_with = "all_pairs")]
    spatial: Option<PathBuf>,
    /// Resize every image to W x H first (triangle filter); otherwise the two images of a pair
    /// must have the same size.
    #[arg(long, value_name = "WxH")]
    resize: Option<String>,
    /// Pairs from FILE: two paths per line (tab-separated, or whitespace when there is no
    /// tab); `-` reads standard input.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["paths", "all_pairs"])]
    pairs: Option<PathBuf>,
    /// Every pair of the images in DIR (each image's features computed once), written as they
    /// are computed, in sorted (a, b) path order; memory stays within --memory-mb however many
    /// images.
    #[arg(long, value_name = "DIR", conflicts_with = "paths")]
    all_pairs: Option<PathBuf>,
    /// With --all-pairs: write the [N, N] float32 distance matrix as .npy (rows in the sorted
    /// path order printed), filled on disk as the pairs come (never held in memory).
    #[arg(long, value_name = "M.npy", requires = "all_pairs")]
    matrix_out: Option<PathBuf>,
    /// Memory budget in MiB: batches, and the --all-pairs features kept on the GPU, stay
    /// within it; features that do not fit go to a temporary file (in $TMPDIR) and are
    /// uploaded a block at a time. The --all-pairs results wait on the host a band of rows at a
    /// time (at most a quarter of the budget) before they are written.
    #[arg(long, value_name = "MB", default_value_t = 1024)]
    memory_mb: u64,
    /// Two images, or two folders whose images are paired by relative path.
    #[arg(value_name = "PATH", num_args = 0..=2)]
    paths: Vec<PathBuf>,
}

/// Pairs per GPU call: images are decoded a chunk at a time (at most 128 decoded images held),
/// and `Lpips::distances` splits a chunk further into trunk batches within the memory budget.
const CHUNK: usize = 64;

fn parse_size(s: &str) -> anyhow::Result<(u32, u32)> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .with_context(|| format!("--resize {s:?}: expected WxH, e.g. 224x224"))?;
    let (w, h): (u32, u32) = (
        w.trim()
            .parse()
            .with_context(|| format!("--resize {s:?}: bad width"))?,
        h.trim()
            .parse()
            .with_context(|| format!("--resize {s:?}: bad height"))?,
    );
    if (w.min(h) as usize) < MIN_SIDE {
        bail!("--resize {s}: LPIPS's AlexNet trunk needs at least {MIN_SIDE} px per side");
    }
    let max = alexnet_wgpu::data::decode::MAX_PIXELS;
    if w as u64 * h as u64 > max {
        bail!(
            "--resize {s}: {:.0} MP, over the {:.0} MP limit for images",
            w as f64 * h as f64 / 1e6,
            max as f64 / 1e6
        );
    }
    Ok((w, h))
}

/// Decodes one image (grey replicated to RGB, alpha dropped, as lpips' OpenCV loading does),
/// resized when asked, and checks its size; the error names the file. Without `resize`, an
/// image too large for the adapter is refused from its header, before it is decoded (the
/// target of `resize` was checked once, before any image).
fn load(lpips: &Lpips, path: &Path, resize: Option<(u32, u32)>) -> anyhow::Result<RgbImage> {
    if resize.is_none() {
        lpips
            .check_file_fits(path)
            .map_err(|e| anyhow::anyhow!("{e} (--resize WxH)"))?;
    }
    Ok(alexnet_wgpu::lpips::load_image(path, resize)?)
}

/// The pairs to compare, from the positional paths or `--pairs`.
fn list_pairs(
    args: &LpipsArgs,
    errors: &mut Vec<String>,
) -> anyhow::Result<Vec<(PathBuf, PathBuf)>> {
    if let Some(list) = &args.pairs {
        // Bounded like every list (fsutil::read_lines_capped): `--pairs /dev/zero` is refused.
        let lines = if list.as_os_str() == "-" {
            read_lines_capped(std::io::stdin().lock(), Path::new("<stdin>"))?
        } else {
            let f =
                std::fs::File::open(list).with_context(|| format!("reading {}", list.display()))?;
            read_lines_capped(std::io::BufReader::new(f), list)?
        };
        let mut pairs = Vec::new();
        for (n, line) in lines.iter().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let parts: Vec<&str> = if line.contains('\t') {
                line.split('\t').filter(|s| !s.is_empty()).collect()
            } else {
                line.split_whitespace().collect()
            };
            match parts[..] {
                [a, b] => pairs.push((PathBuf::from(a), PathBuf::from(b))),
                _ => errors.push(format!(
                    "{} line {}: expected two paths, found {}",
                    list.display(),
                    n + 1,
                    parts.len()
                )),
            }
        }
        return Ok(pairs);
    }
    let [a, b] = &args.paths[..] else {
        bail!("give two images (or two folders), --pairs FILE or --all-pairs DIR");
    };
    if a.is_dir() && b.is_dir() {
        let mut pairs = Vec::new();
        for pa in list_images(a) {
            let rel = pa.strip_prefix(a).expect("listed below a").to_path_buf();
            let pb = b.join(&rel);
            if pb.is_file() {
                pairs.push((pa, pb));
            } else {
                errors.push(format!("{}: no counterpart {}", pa.display(), pb.display()));
            }
        }
        for pb in list_images(b) {
            let rel = pb.strip_prefix(b).expect("listed below b");
            if !a.join(rel).is_file() {
                errors.push(format!(
                    "{}: no counterpart {}",
                    pb.display(),
                    a.join(rel).display()
                ));
            }
        }
        Ok(pairs)
    } else if a.is_dir() || b.is_dir() {
        bail!(
            "{} and {}: give two images or two folders",
            a.display(),
            b.display()
        );
    } else {
        Ok(vec![(a.clone(), b.clone())])
    }
}

pub fn run(args: LpipsArgs) -> anyhow::Result<ExitCode> {
    let resize = args.resize.as_deref().map(parse_size).transpose()?;
    let mut errors: Vec<String> = Vec::new();
    // clap's `requires` does not hold against the positional paths: said here, not ignored.
    if let (Some(m), None) = (&args.matrix_out, &args.all_pairs) {
        bail!(
            "--matrix-out {}: the matrix is of --all-pairs DIR; pairs of two images or --pairs \
             have no matrix",
            m.display()
        );
    }
    // `--all-pairs` takes a folder: a file there used to give one image, no pair, exit 0.
    if let Some(dir) = &args.all_pairs {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => bail!(
                "--all-pairs {}: not a folder (--all-pairs compares every pair of the images in \
                 a folder; two images: give both paths; a list of pairs: --pairs FILE)",
                dir.display()
            ),
            Err(e) => bail!("--all-pairs {}: {e}", dir.display()),
        }
    }
    // Before any GPU work: the pair list and the trunk file.
    let pairs = match &args.all_pairs {
        Some(_) => Vec::new(),
        None => list_pairs(&args, &mut errors)?,
    };
    // The declared files were checked by `files::check`; the pairs of `--pairs -` (standard
    // input) only now that they are read.
    if args.pairs.as_deref().is_some_and(|p| p.as_os_str() == "-") {
        let outputs: Vec<(&str, &Path)> = args.out.iter().map(|p| ("--out", p.as_path())).collect();
        alexnet_wgpu::clobber::check_outputs_by_name(
            "--pairs (standard input)",
            pairs.iter().flat_map(|(a, b)| [a.as_path(), b.as_path()]),
            &outputs,
        )?;
    }
    if let Some(list) = &args.pairs {
        if pairs.is_empty() && errors.is_empty() {
            bail!(
                "--pairs {}: no pairs in it (two paths per line; blank lines and lines starting \
                 with # are skipped)",
                list.display()
            );
        }
    }
    // Every output's folder, before any GPU work (a folder as --matrix-out, or a missing
    // folder, used to fail only after all pairs were computed).
    for (flag, path) in [("--out", &args.out), ("--matrix-out", &args.matrix_out)] {
        if let Some(p) = path {
            super::sharding::check_output_file(flag, p)?;
        }
    }
    // The spatial maps' folder too: made only after the CSV header was printed, a path that
    // cannot be a folder used to stop the run after output began.
    if let Some(dir) = &args.spatial {
        std::fs::create_dir_all(dir).with_context(|| format!("--spatial {}", dir.display()))?;
    }
    let weights = args.model.path()?;
    let ctx = args.gpu.context()?;
    let lpips = Lpips::load(&ctx, &weights, args.lin)
        .with_context(|| format!("loading the LPIPS trunk from {}", weights.display()))?
        .with_memory_budget(args.memory_mb.saturating_mul(1 << 20));
    if let Some((w, h)) = resize {
        // Every image becomes this size: one that cannot run stops the run before any work.
        lpips
            .check_fits(w, h)
            .with_context(|| format!("--resize {w}x{h}"))?;
    }
    let writer = |spatial: bool| {
        RowWriter::create(
            args.out.as_deref(),
            args.format,
            args.per_layer,
            args.lin,
            spatial,
        )
    };

    let computed = if let Some(dir) = &args.all_pairs {
        all_pairs(&lpips, &args, dir, resize, writer, &mut errors)?
    } else {
        let mut out = writer(args.spatial.is_some())?;
        let mut index = 0usize;
        let pairs_bar = bar(pairs.len(), "lpips pairs");
        for chunk in pairs.chunks(CHUNK) {
            let mut loaded = Vec::new();
            for (pa, pb) in chunk {
                index += 1;
                let (a, b) = match (load(&lpips, pa, resize), load(&lpips, pb, resize)) {
                    (Ok(a), Ok(b)) => (a, b),
                    (ra, rb) => {
                        for e in [ra.err(), rb.err()].into_iter().flatten() {
                            errors.push(format!("{e:#}"));
                        }
                        continue;
                    }
                };
                if a.dimensions() != b.dimensions() {
                    let ((aw, ah), (bw, bh)) = (a.dimensions(), b.dimensions());
                    errors.push(format!(
                        "{} is {aw}x{ah} but {} is {bw}x{bh}: the images of a pair must have the \
                         same size (or pass --resize WxH)",
                        pa.display(),
                        pb.display()
                    ));
                    continue;
                }
                loaded.push((index, pa, pb, a, b));
            }
            if let Some(dir) = &args.spatial {
                for (i, pa, pb, a, b) in &loaded {
                    let s = lpips.spatial(a, b)?;
                    let path = dir.join(format!("pair-{i:05}.npy"));
                    write_npy(&path, &[s.map.height, s.map.width], &s.map.data)?;
                    write_heatmap(&s.map, dir.join(format!("pair-{i:05}.png")))?;
                    out.row(&Row {
                        a: pa.display().to_string(),
                        b: pb.display().to_string(),
                        d: s.distance,
                        spatial: Some(path),
                    })?;
                }
            } else {
                let refs: Vec<(&RgbImage, &RgbImage)> =
                    loaded.iter().map(|(_, _, _, a, b)| (a, b)).collect();
                let ds = lpips.distances(&refs)?;
                for ((_, pa, pb, _, _), d) in loaded.iter().zip(ds) {
                    out.row(&Row {
                        a: pa.display().to_string(),
                        b: pb.display().to_string(),
                        d,
                        spatial: None,
                    })?;
                }
            }
            out.flush()?;
            pairs_bar.inc(chunk.len() as u64);
        }
        pairs_bar.finish_and_clear();
        out.finish()?
    };

    for e in &errors {
        eprintln!("error: {e}");
    }
    if !errors.is_empty() {
        eprintln!("{} problem(s); {} pair(s) computed", errors.len(), computed);
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// `--all-pairs DIR`: the images that decode and have the first one's size (the others go to
/// `errors`), then their pairs, written band by band as the matrix hands them on (rows in
/// sorted (i, j) order, the `--matrix-out` file filled at its offsets). The first pass keeps
/// the decoded images while they fit the memory budget (every run of a few hundred images
/// decodes once); the others are decoded again, a trunk batch at a time, when the matrix needs
/// them. Returns the number of rows written.
fn all_pairs(
    lpips: &Lpips,
    args: &LpipsArgs,
    dir: &Path,
    resize: Option<(u32, u32)>,
    writer: impl FnOnce(bool) -> alexnet_wgpu::Result<RowWriter>,
    errors: &mut Vec<String>,
) -> anyhow::Result<usize> {
    let mut paths = Vec::new();
    let mut kept: Vec<Option<RgbImage>> = Vec::new();
    let mut kept_bytes = 0u64;
    let mut first: Option<(PathBuf, (u32, u32))> = None;
    for p in list_images(dir) {
        let img = match load(lpips, &p, resize) {
            Ok(img) => img,
            Err(e) => {
                errors.push(format!("{e:#}"));
                continue;
            }
        };
        if let Some((fp, (fw, fh))) = &first {
            if img.dimensions() != (*fw, *fh) {
                let (w, h) = img.dimensions();
                errors.push(format!(
                    "{}: {w}x{h} differs from {} ({fw}x{fh}); use --resize WxH",
                    p.display(),
                    fp.display()
                ));
                continue;
            }
        } else {
            first = Some((p.clone(), img.dimensions()));
        }
        let bytes = img.as_raw().len() as u64;
        if kept_bytes + bytes <= lpips.memory_budget() {
            kept_bytes += bytes;
            kept.push(Some(img));
        } else {
            kept.push(None);
        }
        paths.push(p);
    }
    if paths.is_empty() && errors.is_empty() {
        bail!("{}: no images found", dir.display());
    }
    let n = paths.len();
    // The matrix file before the CSV header: an error creating it comes before any output.
    let mut matrix = match &args.matrix_out {
        Some(path) if n > 0 => Some(MatrixNpy::create(path, n)?),
        _ => None,
    };
    let mut out = writer(false)?;
    if paths.is_empty() {
        return Ok(out.finish()?);
    }
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let features = bar(n, "lpips features");
    let mut pairs_bar = None;
    lpips.matrix_blocks(
        n,
        |i| match kept[i].take() {
            Some(img) => Ok(img),
            // Decoded once already: a failure now (the file changed) stops the matrix.
            None => load(lpips, &paths[i], resize)
                .map_err(|e| alexnet_wgpu::Error::Invalid(format!("{e:#}"))),
        },
        &mut |p| match p {
            MatrixProgress::Features { done, .. } => features.set_position(done as u64),
            MatrixProgress::Pairs { done, total } => {
                features.finish_and_clear();
                pairs_bar
                    .get_or_insert_with(|| bar(total, "lpips pairs"))
                    .set_position(done as u64);
            }
        },
        &mut |band| {
            for &(i, j, d) in &band.pairs {
                out.row(&Row {
                    a: names[i].clone(),
                    b: names[j].clone(),
                    d,
                    spatial: None,
                })?;
            }
            out.flush()?;
            match &mut matrix {
                Some(m) => m.band(band),
                None => Ok(()),
            }
        },
    )?;
    features.finish_and_clear();
    if let Some(b) = pairs_bar {
        b.finish_and_clear();
    }
    if let Some(m) = matrix {
        m.finish()?;
    }
    Ok(out.finish()?)
}
