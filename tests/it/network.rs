//! Whole networks against logits computed by onnxruntime (an independent framework) on the same
//! weights and inputs: `tests/fixtures/`, made by `scripts/make_fixtures.py`.
//!
//! Tolerance: max |diff| <= 1e-4 x max |logit|. Both sides accumulate in float32 but in a
//! different order (onnxruntime's im2col/GEMM blocking vs our tiles), so bit equality is not
//! expected; errors of a wrong index, layout or padding are orders of magnitude larger.

use crate::common;

use alexnet_wgpu::model::Weights;
use alexnet_wgpu::model::{Arch, Network};
use common::{assert_close, ctx};
use common::{fixture, fixture_npy as npy};

const TOL: f32 = 1e-4;

fn check(
    weights_file: &str,
    arch: Option<Arch>,
    expect_arch: Arch,
    input: &str,
    logits: &str,
    pool5: Option<&str>,
    tol: f32,
) {
    let ctx = ctx();
    let w = Weights::load(fixture(weights_file), arch).unwrap();
    assert_eq!(w.arch, expect_arch, "{weights_file}: arch");
    let mut net = Network::new(&ctx, &w).unwrap();
    let (shape, x) = npy(input);
    let out = net
        .forward(&x, shape[0], shape[2], shape[3], pool5.is_some())
        .unwrap();
    let (_, want) = npy(logits);
    assert_close(&format!("{weights_file} logits"), &out.logits, &want, tol);
    if let Some(p) = pool5 {
        let (_, want) = npy(p);
        assert_close(
            &format!("{weights_file} pool5"),
            out.features.as_ref().unwrap(),
            &want,
            tol,
        );
    }
    // Probabilities are the softmax of the logits.
    for row in out.probs.chunks(out.classes) {
        let s: f32 = row.iter().sum();
        assert!((s - 1.0).abs() < 1e-5, "probabilities sum to {s}");
    }
}

#[test]
fn torchvision_matches_onnxruntime() {
    check(
        "torchvision_small.npz",
        Some(Arch::Torchvision),
        Arch::Torchvision,
        "input_224.npy",
        "torchvision_logits.npy",
        Some("torchvision_pool5.npy"),
        TOL,
    );
}

#[test]
fn torchvision_arch_is_inferred_from_keys() {
    check(
        "torchvision_small.npz",
        None,
        Arch::Torchvision,
        "input_224.npy",
        "torchvision_logits.npy",
        None,
        TOL,
    );
}

#[test]
fn torchvision_adaptive_pool_at_256_input() {
    check(
        "torchvision_small.npz",
        None,
        Arch::Torchvision,
        "input_256.npy",
        "torchvision_256_logits.npy",
        Some("torchvision_256_pool5.npy"),
        TOL,
    );
}

#[test]
fn caffe_grouped_lrn_matches_onnxruntime() {
    check(
        "caffe_small.npz",
        Some(Arch::Caffe),
        Arch::Caffe,
        "input_227_caffe.npy",
        "caffe_logits.npy",
        Some("caffe_pool5.npy"),
        TOL,
    );
    check(
        "caffe_small.npz",
        None,
        Arch::Caffe,
        "input_227_caffe.npy",
        "caffe_logits.npy",
        None,
        TOL,
    );
}

#[test]
fn keras_layout_matches_onnxruntime() {
    check(
        "keras_small.npz",
        Some(Arch::Keras),
        Arch::Keras,
        "input_227_keras.npy",
        "keras_logits.npy",
        Some("keras_pool5.npy"),
        TOL,
    );
    check(
        "keras_small.npz",
        None,
        Arch::Keras,
        "input_227_keras.npy",
        "keras_logits.npy",
        None,
        TOL,
    );
}

#[test]
fn keras_net_in_pytorch_layout_gives_the_same_logits() {
    check(
        "keras_small_pt.npz",
        Some(Arch::Keras),
        Arch::Keras,
        "input_227_keras.npy",
        "keras_logits.npy",
        None,
        TOL,
    );
    check(
        "keras_small_pt.npz",
        None,
        Arch::Keras,
        "input_227_keras.npy",
        "keras_logits.npy",
        None,
        TOL,
    );
}

#[test]
fn torchvision_net_in_keras_layout_gives_the_same_logits() {
    check(
        "torchvision_small_keras.npz",
        Some(Arch::Torchvision),
        Arch::Torchvision,
        "input_224.npy",
        "torchvision_logits.npy",
        Some("torchvision_pool5.npy"),
        TOL,
    );
}

#[test]
fn f16_and_f64_weights_are_converted() {
    check(
        "torchvision_small_f64.npz",
        None,
        Arch::Torchvision,
        "input_224.npy",
        "torchvision_logits.npy",
        None,
        TOL,
    );
    check(
        "torchvision_small_f16.npz",
        None,
        Arch::Torchvision,
        "input_224.npy",
        "torchvision_f16_logits.npy",
        None,
        TOL,
    );
}

#[test]
fn a_batch_over_the_binding_limit_is_a_clear_error() {
    let ctx = ctx();
    let w = Weights::load(fixture("torchvision_small.npz"), None).unwrap();
    let mut net = Network::new(&ctx, &w).unwrap();
    // conv1's output alone is 12 x 55 x 55 floats per image: 5000 images need ~725 MB.
    let msg = match net.plan(5000, 224, 224) {
        Ok(_) => panic!("a 5000-image plan fitted the binding limit"),
        Err(e) => e.to_string(),
    };
    assert!(
        msg.contains("max_storage_buffer_binding_size") && msg.contains("smaller batch"),
        "{msg}"
    );
}

/// A batch whose buffers pass the binding limit runs as sub-batches that fit: the same logits
/// (against onnxruntime's) and features as one whole batch. The limit is lowered on this
/// context so that 8 images of 224 do not fit (input alone: 4.8 MB) but 3 do.
#[test]
fn a_batch_over_the_binding_limit_runs_in_sub_batches() {
    let mut small = ctx();
    small.limits.max_storage_buffer_binding_size = 2 << 20;
    let w = Weights::load(fixture("torchvision_small.npz"), None).unwrap();
    let (shape, x) = npy("input_224.npy");
    let (_, want) = npy("torchvision_logits.npy");
    let n = shape[0];
    // The fixture batch repeated to 8 images: rows repeat in the logits too.
    let per_image = x.len() / n;
    let x8: Vec<f32> = (0..8)
        .flat_map(|i| x[(i % n) * per_image..(i % n + 1) * per_image].to_vec())
        .collect();
    let classes = want.len() / n;
    let want8: Vec<f32> = (0..8)
        .flat_map(|i| want[(i % n) * classes..(i % n + 1) * classes].to_vec())
        .collect();
    let mut net = Network::new(&small, &w).unwrap();
    let sub = net.fitting_batch(8, 224, 224).unwrap();
    assert!((1..8).contains(&sub), "sub-batch {sub}");
    let out = net.forward(&x8, 8, 224, 224, true).unwrap();
    assert_eq!(out.batch, 8);
    assert_close("logits in sub-batches", &out.logits, &want8, TOL);
    let whole_ctx = ctx();
    let mut whole = Network::new(&whole_ctx, &w).unwrap();
    let full = whole.forward(&x8, 8, 224, 224, true).unwrap();
    assert_eq!(
        out.features.as_ref().unwrap().len(),
        full.features.as_ref().unwrap().len()
    );
    assert_close(
        "features in sub-batches",
        out.features.as_ref().unwrap(),
        full.features.as_ref().unwrap(),
        1e-5,
    );
}

// ---- f16 storage (`Network::with_precision(.., Precision::F16)`) ----
//
// Tolerance 5e-3 x max |logit| (measured, see the eprintln! lines: 4e-4 to 8e-4 on these
// fixtures; ~1e-3 against f32 on the full-size nets, `alexnet bench --precision f32,f16`). Weights, conv patches and dense
// inputs are rounded to f16 (relative error <= 2^-11 each, so <= ~2^-10 ~ 1e-3 per product),
// at every one of the 8 layers, and the rounding of one layer's input is carried through the
// following ones; the errors are random in sign and largely average out in each sum, so the
// logits move by ~1e-3 of their range. A wrong layout or a lost half gives O(1) errors.
const TOL_F16: f32 = 5e-3;

/// Both f16 GEMMs end to end: the portable bit-operation kernel, and the native `enable f16`
/// one where the adapter has `SHADER_F16` (lavapipe does; it defaults to the portable one);
/// and there too the convolutions on `coop.wgsl` with the tile product emulated (the tensor-core
/// kernel's staging, padding and epilogue through a whole network).
fn check_f16(weights_file: &str, input: &str, logits: &str, pool5: Option<&str>) {
    use alexnet_wgpu::kernels::coop::Coop;
    let ctx = ctx();
    let mut modes = vec![(false, None, false), (false, None, true)];
    if ctx.features.contains(wgpu::Features::SHADER_F16) {
        modes.extend([
            (true, None, false),
            (false, Some(Coop::Emulated), false),
            (false, Some(Coop::Emulated), true),
        ]);
    }
    for (native, coop, blocked) in modes {
        check_f16_with(
            &ctx,
            native,
            coop,
            blocked,
            weights_file,
            input,
            logits,
            pool5,
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn check_f16_with(
    ctx: &alexnet_wgpu::gpu::GpuContext,
    native: bool,
    coop: Option<alexnet_wgpu::kernels::coop::Coop>,
    blocked: bool,
    weights_file: &str,
    input: &str,
    logits: &str,
    pool5: Option<&str>,
) {
    use alexnet_wgpu::kernels::{gemv_f16, Kernels, MatmulPath, Precision};
    let w = Weights::load(fixture(weights_file), None).unwrap();
    // `blocked`: the GPUs' path, where dense layers at small batches run `gemv_f16.wgsl`.
    let mut ks = match blocked {
        true => Kernels::with_path(ctx, MatmulPath::Blocked(Default::default())),
        false => Kernels::new(ctx),
    };
    ks.native_f16 = native;
    ks.coop = coop;
    let mut net = Network::with_kernels(ctx, &w, Precision::F16, ks).unwrap();
    assert_eq!(net.precision(), Precision::F16);
    let weights_file =
        &format!("{weights_file} (native f16: {native}, coop: {coop:?}, blocked: {blocked})");
    let (shape, x) = npy(input);
    let plan = net.kernel_plan(shape[0], shape[2], shape[3]).unwrap();
    let named = |prefix: &str| -> Vec<&String> {
        plan.iter()
            .flat_map(|(_, ds)| ds)
            .filter(|d| d.starts_with(prefix))
            .collect()
    };
    let gemv = blocked && shape[0] <= gemv_f16::MAX_BATCH;
    if coop.is_some() {
        // Every convolution (and dense layer, unless gemv_f16 serves it) ran the coop kernel.
        let convs = named("conv2d");
        assert!(!convs.is_empty(), "{weights_file}: {plan:?}");
        assert!(
            convs.iter().all(|d| d.contains("coop")),
            "{weights_file}: {convs:?}"
        );
    }
    let dense = named("dense");
    assert!(!dense.is_empty(), "{weights_file}: {plan:?}");
    if gemv {
        assert!(
            dense.iter().all(|d| d.contains("gemv_f16")),
            "{weights_file}: {dense:?}"
        );
    } else if coop.is_some() {
        assert!(
            dense.iter().all(|d| d.contains("coop")),
            "{weights_file}: {dense:?}"
        );
    }
    let out = net
        .forward(&x, shape[0], shape[2], shape[3], pool5.is_some())
        .unwrap();
    let (_, want) = npy(logits);
    eprintln!(
        "{weights_file} f16 logits: max |diff| / max |logit| = {:e}",
        common::rel_max_diff(&out.logits, &want)
    );
    assert_close(
        &format!("{weights_file} f16 logits"),
        &out.logits,
        &want,
        TOL_F16,
    );
    if let Some(p) = pool5 {
        let (_, want) = npy(p);
        assert_close(
            &format!("{weights_file} f16 pool5"),
            out.features.as_ref().unwrap(),
            &want,
            TOL_F16,
        );
    }
}

#[test]
fn f16_storage_matches_onnxruntime_loosely() {
    check_f16(
        "torchvision_small.npz",
        "input_224.npy",
        "torchvision_logits.npy",
        Some("torchvision_pool5.npy"),
    );
    check_f16(
        "caffe_small.npz",
        "input_227_caffe.npy",
        "caffe_logits.npy",
        Some("caffe_pool5.npy"),
    );
    check_f16(
        "keras_small.npz",
        "input_227_keras.npy",
        "keras_logits.npy",
        None,
    );
    // Adaptive pooling at a 256 input (other conv geometry, several pixels into avgpool).
    check_f16(
        "torchvision_small.npz",
        "input_256.npy",
        "torchvision_256_logits.npy",
        None,
    );
}

/// Every forceable matmul variant end to end (`ALEXNET_MATMUL` values, through
/// `Network::with_path`): the blocked GPU tiles with the heuristic's choices, each conv tile,
/// gemv, split-K (dense and conv), the coalesced im2col, and the older paths, all against onnxruntime at the f32
/// tolerance.
#[test]
fn every_matmul_variant_matches_onnxruntime() {
    use alexnet_wgpu::kernels::{MatmulPath, Precision};
    let ctx = ctx();
    let w = Weights::load(fixture("torchvision_small.npz"), None).unwrap();
    let (shape, x) = npy("input_224.npy");
    let (_, want) = npy("torchvision_logits.npy");
    let (_, pool5) = npy("torchvision_pool5.npy");
    for v in [
        "tiled",
        "gemm",
        "blocked",
        "blocked-128x128x8",
        "blocked-128x128x16",
        "blocked-128x64x16",
        "blocked-64x128x16",
        "blocked-64x64x16",
        "blocked-64x64x32",
        "blocked-gemv",
        "blocked-64x64x16-split4",
        "blocked-split3",
        "blocked-convsplit4",
        "blocked-64x32x16-convsplit8",
        "blocked-32x64x16",
        "blocked-32x32x16",
        "blocked-im2col",
        "blocked-32x32x16-im2col",
    ] {
        let path = MatmulPath::parse(v).unwrap();
        let mut net = Network::with_path(&ctx, &w, Precision::F32, path).unwrap();
        let out = net.forward(&x, shape[0], shape[2], shape[3], true).unwrap();
        assert_close(&format!("{v}: logits"), &out.logits, &want, TOL);
        assert_close(
            &format!("{v}: pool5"),
            out.features.as_ref().unwrap(),
            &pool5,
            TOL,
        );
    }
}

/// The blocked path in sub-batches (binding limit lowered as above): batch 1 and the remainder
/// sub-batch take other variants than the whole batch (gemv vs tiles), same logits.
#[test]
fn blocked_path_in_sub_batches() {
    use alexnet_wgpu::kernels::{MatmulPath, Precision};
    let mut small = ctx();
    small.limits.max_storage_buffer_binding_size = 2 << 20;
    let w = Weights::load(fixture("torchvision_small.npz"), None).unwrap();
    let (shape, x) = npy("input_224.npy");
    let (_, want) = npy("torchvision_logits.npy");
    let n = shape[0];
    let per_image = x.len() / n;
    let classes = want.len() / n;
    let x7: Vec<f32> = (0..7)
        .flat_map(|i| x[(i % n) * per_image..(i % n + 1) * per_image].to_vec())
        .collect();
    let want7: Vec<f32> = (0..7)
        .flat_map(|i| want[(i % n) * classes..(i % n + 1) * classes].to_vec())
        .collect();
    let path = MatmulPath::parse("blocked").unwrap();
    let mut net = Network::with_path(&small, &w, Precision::F32, path).unwrap();
    let sub = net.fitting_batch(7, 224, 224).unwrap();
    assert!((1..7).contains(&sub), "sub-batch {sub}");
    let out = net.forward(&x7, 7, 224, 224, false).unwrap();
    assert_close("blocked logits in sub-batches", &out.logits, &want7, TOL);
}
