//! The forward kernels' cases: convolutions by every route, dense layers by every variant, the
//! element-wise and pooling kernels, and the LPIPS kernel.

use std::time::Instant;

use rand::{Rng, SeedableRng};

use super::{conv_data, conv_label, conv_shapes, random, run_read, Case, Compared};
use crate::gpu::{read_back_f32, storage_buffer, upload, upload_f32, GpuContext, SplitWeight};
use crate::kernels::adaptive_avg_pool::AdaptivePoolShape;
use crate::kernels::coop::Coop;
use crate::kernels::lrn::Lrn;
use crate::kernels::max_pool::PoolShape;
use crate::kernels::mm::{DenseKind, Tile, TILES};
use crate::kernels::route::ConvRoute;
use crate::kernels::{self, Kernels, MatmulPath, Precision};

/// Every convolution route ([`ConvRoute`]) on every conv shape, each through the route's own
/// weight layout, scratch and dispatches (what networks, training and LPIPS run).
pub(super) fn conv_cases(ctx: &GpuContext, out: &mut Vec<Case>) {
    // `(name, route, native f16 loads, small scratch: 7 patch rows, or 2 slices of partial
    // sums plus a few words for a split)`.
    let mut routes = vec![
        ("tiled".to_string(), ConvRoute::Direct, false, false),
        (
            "gemm".into(),
            ConvRoute::Im2col(Precision::F32),
            false,
            false,
        ),
        // The patch matrix in chunks of 7 rows.
        (
            "gemm (chunked)".into(),
            ConvRoute::Im2col(Precision::F32),
            false,
            true,
        ),
    ];
    for &tile in TILES.iter().filter(|t| t.fits(&ctx.limits)) {
        routes.push((
            format!("blocked-{}", tile.name()),
            ConvRoute::Mm(tile),
            false,
            false,
        ));
    }
    // Split-K over uneven slices (the last one shorter), with grouped shapes; and split 4 on a
    // scratch holding two slices (runs split 2).
    let splits = [
        (Tile::new(64, 64, 16), 3, false),
        (Tile::new(64, 32, 16), 4, false),
        (Tile::new(128, 128, 8), 5, false),
        (Tile::new(32, 64, 16), 4, true),
    ];
    for (tile, split, small) in splits.into_iter().filter(|s| s.0.fits(&ctx.limits)) {
        let route = ConvRoute::MmSplit { tile, split };
        let name = format!(
            "blocked-{}{}",
            route.name(),
            if small { " (2 slices)" } else { "" }
        );
        routes.push((name, route, false, small));
    }
    // The coalesced im2col + the dense loop: every tile on the whole patch matrix, and the
    // smallest and the largest tile in chunks (7 rows of K values: fewer pixels with groups).
    for &tile in TILES.iter().filter(|t| t.fits(&ctx.limits)) {
        let route = ConvRoute::MmIm2col(tile);
        routes.push((format!("blocked-{}", route.name()), route, false, false));
    }
    for tile in [Tile::new(32, 32, 16), Tile::new(128, 128, 8)] {
        let route = ConvRoute::MmIm2col(tile);
        if tile.fits(&ctx.limits) {
            let name = format!("blocked-{} (chunked)", route.name());
            routes.push((name, route, false, true));
        }
    }
    // f16 storage: portable loads always, native ones where the adapter has SHADER_F16.
    let has_f16 = ctx.features.contains(wgpu::Features::SHADER_F16);
    for native in [false, true].into_iter().filter(|&n| !n || has_f16) {
        let name = if native { "f16 native" } else { "f16 portable" };
        routes.push((
            name.into(),
            ConvRoute::Im2col(Precision::F16),
            native,
            false,
        ));
    }
    // Cooperative matrices: the hardware's where the device has them, and the same kernel with
    // the tile product emulated wherever SHADER_F16 exists (whole scratch, and chunks of one
    // block of pixels).
    // Every block size of both; the default one also with chunked pixels.
    use crate::kernels::coop::{COOP_TILES, DEFAULT_TILE};
    if has_f16 {
        let hardware = crate::kernels::coop::hardware_ready(ctx);
        for tile in COOP_TILES {
            if hardware {
                let route = ConvRoute::Coop(Coop::Hardware, tile);
                routes.push((route.name(), route, false, false));
            }
            let route = ConvRoute::Coop(Coop::Emulated, tile);
            routes.push((route.name(), route, false, false));
            if tile == DEFAULT_TILE {
                routes.push((format!("{} (chunked)", route.name()), route, false, true));
            }
        }
    }
    for (i, s) in conv_shapes().into_iter().enumerate() {
        let seed = 100 + 10 * i as u64;
        let relu = i % 2 == 0;
        for (name, route, native, chunked) in routes.clone() {
            // Tensor cores: f16 products, f32 sums in the hardware's order and rounding.
            let tol = match route {
                ConvRoute::Coop(Coop::Hardware, _) => 2e-3,
                _ => 1e-5,
            };
            out.push(Case::new("conv2d", name, conv_label(&s), tol, move |ctx| {
                let d = conv_data(&s, seed)?;
                let mut ks = Kernels::new(ctx);
                ks.native_f16 = native;
                let (wb, bb, xb) = (
                    route.layout().upload(ctx, "w", &s, &d.w)?,
                    upload_f32(ctx, "b", &d.b)?,
                    upload_f32(ctx, "x", &d.x)?,
                );
                // Garbage in the output (every element must be written) and in the scratch
                // (im2col must zero the K tail itself).
                let yb = upload_f32(ctx, "y", &random(d.out_len, seed + 4, 9.0))?;
                let words = if chunked {
                    match route {
                        ConvRoute::MmSplit { .. } => {
                            let (oh, ow) = s.out_hw()?;
                            2 * s.out_c * s.batch * oh * ow + 5
                        }
                        ConvRoute::Coop(..) => {
                            s.groups * crate::kernels::coop::N_ALIGN * crate::kernels::coop::kp(&s)
                                / 2
                        }
                        _ => 7 * s.kp(),
                    }
                } else {
                    route.scratch_words(&s)?
                };
                let sb = match words {
                    0 => None,
                    n => Some(upload_f32(ctx, "scratch", &random(n, seed + 3, 9.0))?),
                };
                let ds = route.dispatch(ctx, &ks, &s, relu, &wb, &bb, &xb, &yb, sb.as_ref())?;
                let (got, ms) = run_read(ctx, &ds, &yb, d.out_len)?;
                let want = match route {
                    ConvRoute::Im2col(Precision::F16) | ConvRoute::Coop(..) => {
                        let w16 = kernels::gemm::round_f16(&d.w);
                        let x16 = kernels::gemm::round_f16(&d.x);
                        kernels::conv2d::reference(&s, &w16, &d.b, &x16, relu)
                    }
                    _ => kernels::conv2d::reference(&s, &d.w, &d.b, &d.x, relu),
                };
                Ok(Compared {
                    got,
                    want,
                    ms,
                    tol: None,
                })
            }));
        }
    }
}

/// `(batch, in, out, rows per weight part)`: odd sizes, batch 1, K a multiple of 4 and not,
/// weights split over several bindings.
const DENSE: &[(usize, usize, usize, usize)] = &[
    (1, 37, 11, usize::MAX),
    (3, 130, 67, usize::MAX),
    (5, 128, 67, usize::MAX),
    (3, 64, 40, 9),
    (9, 300, 70, usize::MAX),
];

pub(super) fn dense_cases(ctx: &GpuContext, out: &mut Vec<Case>) {
    for (i, &(batch, in_f, out_f, rows)) in DENSE.iter().enumerate() {
        let seed = 300 + 10 * i as u64;
        let relu = i % 2 == 1;
        let parts = if rows == usize::MAX {
            String::new()
        } else {
            format!(" in parts of {rows} rows")
        };
        let shape = format!("b{batch} {in_f} -> {out_f}{parts}");
        let data = move || {
            (
                random(out_f * in_f, seed, 0.3),
                random(out_f, seed + 1, 0.3),
                random(batch * in_f, seed + 2, 1.0),
            )
        };
        for path in [MatmulPath::Tiled, MatmulPath::Gemm] {
            out.push(Case::new(
                "dense",
                path.name(),
                shape.clone(),
                1e-5,
                move |ctx| {
                    let (w, b, x) = data();
                    let ks = Kernels::with_path(ctx, path);
                    let split =
                        SplitWeight::upload_with_rows_per_part(ctx, "w", &w, out_f, in_f, rows)?;
                    let (bb, xb) = (upload_f32(ctx, "b", &b)?, upload_f32(ctx, "x", &x)?);
                    let yb = storage_buffer(ctx, "y", batch * out_f, "")?;
                    let ds =
                        kernels::dense::dispatch(ctx, &ks, batch, &split, &bb, relu, &xb, &yb)?;
                    let (got, ms) = run_read(ctx, &ds, &yb, batch * out_f)?;
                    let want = kernels::dense::reference(&w, &b, &x, batch, relu);
                    Ok(Compared {
                        got,
                        want,
                        ms,
                        tol: None,
                    })
                },
            ));
        }
        if batch <= kernels::gemv_f16::MAX_BATCH {
            super::gemv_f16::cases(out, &shape, (batch, in_f, out_f, rows), seed, relu);
        }
        if in_f % 4 != 0 {
            continue; // mm.wgsl's dense kernels read whole vec4 rows
        }
        let mut kinds = vec![DenseKind::Gemv];
        for &tile in TILES.iter().filter(|t| t.fits(&ctx.limits)) {
            kinds.push(DenseKind::Tiles { tile, split: 1 });
        }
        if let Some(&tile) = TILES.iter().find(|t| t.fits(&ctx.limits)) {
            kinds.push(DenseKind::Tiles { tile, split: 3 });
        }
        for kind in kinds {
            let path = format!("blocked-{}", kind.name());
            out.push(Case::new("dense", path, shape.clone(), 1e-5, move |ctx| {
                let (w, b, x) = data();
                let ks = Kernels::with_path(ctx, MatmulPath::Blocked(Default::default()));
                let split =
                    SplitWeight::upload_with_rows_per_part(ctx, "w", &w, out_f, in_f, rows)?;
                let (bb, xb) = (upload_f32(ctx, "b", &b)?, upload_f32(ctx, "x", &x)?);
                let yb = upload_f32(ctx, "y", &random(batch * out_f, seed + 3, 9.0))?;
                let mut ds = Vec::new();
                for (start, n, buf) in &split.parts {
                    ds.extend(kernels::mm::dispatch_dense(
                        ctx,
                        &ks,
                        kind,
                        batch,
                        in_f,
                        (*start, *n, out_f),
                        relu,
                        buf,
                        &bb,
                        &xb,
                        &yb,
                    )?);
                }
                let (got, ms) = run_read(ctx, &ds, &yb, batch * out_f)?;
                let want = kernels::dense::reference(&w, &b, &x, batch, relu);
                Ok(Compared {
                    got,
                    want,
                    ms,
                    tol: None,
                })
            }));
        }
    }
}

pub(super) fn elementwise_cases(out: &mut Vec<Case>) {
    // Max pool: AlexNet's 3/2 windows, a clipped edge, 2/1, and ceil mode (the zoo's ONNX).
    for (planes, h, w, k, s, ceil) in [
        (5, 27, 20, 3, 2, false),
        (3, 7, 9, 2, 1, false),
        (4, 14, 12, 3, 2, true),
    ] {
        let path = if ceil { "ceil" } else { "floor" };
        let shape = format!("{planes}x{h}x{w} k{k} s{s}");
        out.push(Case::new("max_pool", path, shape, 0.0, move |ctx| {
            let ks = Kernels::new(ctx);
            let x = random(planes * h * w, 500, 1.0);
            let pool = PoolShape {
                ceil,
                ..PoolShape::floor(planes, h, w, k, s)
            };
            let want = kernels::max_pool::reference(&x, &pool);
            let xb = upload_f32(ctx, "x", &x)?;
            let yb = storage_buffer(ctx, "y", want.len(), "")?;
            let d = kernels::max_pool::dispatch(ctx, &ks.max_pool(), &pool, &xb, &yb)?;
            let (got, ms) = run_read(ctx, &[d], &yb, want.len())?;
            Ok(Compared {
                got,
                want,
                ms,
                tol: None,
            })
        }));
    }
    for (lrn, batch, channels, hw, scale) in [
        (Lrn::default(), 2, 13, 35, 30.0),
        (
            Lrn {
                size: 4,
                alpha: 0.1,
                beta: 0.5,
                k: 1.0,
            },
            1,
            3,
            4,
            2.0,
        ),
    ] {
        let shape = format!("b{batch} c{channels} hw{hw} size {}", lrn.size);
        out.push(Case::new("lrn", "-", shape, 1e-5, move |ctx| {
            let ks = Kernels::new(ctx);
            let x = random(batch * channels * hw, 510, scale);
            let xb = upload_f32(ctx, "x", &x)?;
            let yb = storage_buffer(ctx, "y", x.len(), "")?;
            let d = kernels::lrn::dispatch(ctx, &ks.lrn(), &lrn, batch, channels, hw, &xb, &yb)?;
            let (got, ms) = run_read(ctx, &[d], &yb, x.len())?;
            let want = kernels::lrn::reference(&lrn, &x, batch, channels, hw);
            Ok(Compared {
                got,
                want,
                ms,
                tol: None,
            })
        }));
    }
    for (planes, ih, iw) in [(3, 7, 7), (2, 13, 9), (1, 1, 1)] {
        let shape = format!("{planes}x{ih}x{iw} -> 6x6");
        out.push(Case::new(
            "adaptive_avg_pool",
            "-",
            shape,
            1e-5,
            move |ctx| {
                let ks = Kernels::new(ctx);
                let x = random(planes * ih * iw, 520, 1.0);
                let pool = AdaptivePoolShape {
                    planes,
                    in_h: ih,
                    in_w: iw,
                    out_h: 6,
                    out_w: 6,
                };
                let want = kernels::adaptive_avg_pool::reference(&x, &pool);
                let xb = upload_f32(ctx, "x", &x)?;
                let yb = storage_buffer(ctx, "y", want.len(), "")?;
                let d = kernels::adaptive_avg_pool::dispatch(
                    ctx,
                    &ks.adaptive_avg_pool(),
                    &pool,
                    &xb,
                    &yb,
                )?;
                let (got, ms) = run_read(ctx, &[d], &yb, want.len())?;
                Ok(Compared {
                    got,
                    want,
                    ms,
                    tol: None,
                })
            },
        ));
    }
    for (rows, cols) in [(3, 1000), (1, 7), (5, 65)] {
        out.push(Case::new(
            "softmax",
            "-",
            format!("{rows}x{cols}"),
            1e-5,
            move |ctx| {
                let ks = Kernels::new(ctx);
                let x = random(rows * cols, 530, 20.0);
                let xb = upload_f32(ctx, "x", &x)?;
                let yb = storage_buffer(ctx, "y", x.len(), "")?;
                let d = kernels::softmax::dispatch(ctx, &ks.softmax(), rows, cols, &xb, &yb)?;
                let (got, ms) = run_read(ctx, &[d], &yb, x.len())?;
                Ok(Compared {
                    got,
                    want: kernels::softmax::reference(&x, rows, cols),
                    ms,
                    tol: None,
                })
            },
        ));
    }
    out.push(Case::new("relu", "-", "1001", 0.0, |ctx| {
        let ks = Kernels::new(ctx);
        let x = random(1001, 540, 1.0);
        let xb = upload_f32(ctx, "x", &x)?;
        let d = kernels::relu::dispatch(ctx, &ks.relu(), x.len(), &xb)?;
        let (got, ms) = run_read(ctx, &[d], &xb, x.len())?;
        Ok(Compared {
            got,
            want: kernels::relu::reference(&x),
            ms,
            tol: None,
        })
    }));
}

/// `normalize_u8.wgsl`: random bytes (batch 1 and 3, planes whose bytes are not whole words)
/// through an RGB and a BGR preset's table into a NaN-poisoned output, against the CPU
/// reference. Tolerance 0: a table look-up, no arithmetic, so any difference is an indexing bug.
pub(super) fn normalize_u8_cases(out: &mut Vec<Case>) {
    use crate::data::{norm_table, Preprocess};
    for (pre, name, batch, h, w) in [
        (Preprocess::TORCHVISION, "torchvision", 1, 7, 5),
        (Preprocess::CAFFE, "caffe", 3, 13, 11),
    ] {
        let shape = format!("b{batch} {h}x{w}");
        out.push(Case::new("normalize_u8", name, shape, 0.0, move |ctx| {
            let ks = Kernels::new(ctx);
            let plane = h * w;
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(560);
            let bytes: Vec<u8> = (0..batch * 3 * plane).map(|_| rng.random()).collect();
            let words: Vec<u32> = bytes
                .chunks(4)
                .map(|c| c.iter().rev().fold(0u32, |w, &b| (w << 8) | b as u32))
                .collect();
            let table = norm_table(&pre);
            let want = kernels::normalize_u8::reference(&bytes, &table, plane);
            let src = upload(ctx, "pixels", &words)?;
            let lut = upload_f32(ctx, "table", table.as_flattened())?;
            let yb = upload_f32(ctx, "y", &vec![f32::NAN; want.len()])?;
            let d = kernels::normalize_u8::dispatch(ctx, &ks, batch, plane, &src, &lut, &yb)?;
            let (got, ms) = run_read(ctx, &[d], &yb, want.len())?;
            Ok(Compared {
                got,
                want,
                ms,
                tol: None,
            })
        }));
    }
}

/// `lpips.wgsl` (unit normalisation over channels, squared difference, lin weights, spatial
/// mean) on three feature maps of 37 channels x 150 positions, three pairs: the maps and the
/// means (concatenated) against the f64 reference.
pub(super) fn lpips_cases(out: &mut Vec<Case>) {
    out.push(Case::new(
        "lpips",
        "-",
        "3 pairs, 37 ch x 150",
        1e-5,
        |ctx| {
            let (channels, hw, pairs) = (37usize, 150usize, [(0u32, 1u32), (1, 2), (2, 0)]);
            let feats: Vec<f32> = random(3 * channels * hw, 1000, 1.0)
                .into_iter()
                .map(|v| v.max(0.0))
                .collect();
            let lin: Vec<f32> = random(channels, 1001, 1.0)
                .iter()
                .map(|v| v.abs())
                .collect();
            let idx: Vec<u32> = pairs.iter().flat_map(|&(a, b)| [a, b]).collect();
            let (fb, lb) = (
                upload_f32(ctx, "feats", &feats)?,
                upload_f32(ctx, "lin", &lin)?,
            );
            let ib = upload(ctx, "pairs", &idx)?;
            let maps = storage_buffer(ctx, "maps", pairs.len() * hw, "")?;
            let terms = storage_buffer(ctx, "terms", pairs.len(), "")?;
            let k = ctx.kernel(kernels::shader("lpips.wgsl"), "main");
            let d = crate::lpips::kernel::dispatch(
                ctx,
                &k,
                pairs.len(),
                channels,
                hw,
                0,
                1,
                true,
                [&fb, &fb, &ib, &lb, &maps, &terms],
            )?;
            let t = Instant::now();
            kernels::run(ctx, &[d])?;
            let mut got = read_back_f32(ctx, &maps, pairs.len() * hw)?;
            got.extend(read_back_f32(ctx, &terms, pairs.len())?);
            let ms = t.elapsed().as_secs_f64() * 1e3;
            let image =
                |i: u32| &feats[i as usize * channels * hw..(i as usize + 1) * channels * hw];
            let (mut want, mut means) = (Vec::new(), Vec::new());
            for &(a, b) in &pairs {
                let (map, mean) = crate::lpips::kernel::reference(image(a), image(b), &lin, hw);
                want.extend(map.iter().map(|&v| v as f32));
                means.push(mean as f32);
            }
            want.extend(means);
            Ok(Compared {
                got,
                want,
                ms,
                tol: None,
            })
        },
    ));
}
