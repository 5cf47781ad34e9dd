//! The full-size networks (fc6 = 144 MiB, over lavapipe's 128 MiB binding limit, so split) on
//! deterministic random weights against the CPU reference of the same network (f64
//! accumulation). One image each: the software adapter needs about a second per image.
//!
//! Tolerance: 1e-4 x max |logit|, as for the fixture tests (f32 accumulation over up to 9216
//! terms per output in a different order than the f64 reference).

use crate::common;

use alexnet_wgpu::model::Weights;
use alexnet_wgpu::model::{reference::forward_cpu, Arch, Network};
use common::{assert_close, ctx, random};

fn check(arch: Arch) {
    let ctx = ctx();
    let weights = Weights::random(arch, arch.default_widths(), 7).unwrap();
    let mut net = Network::new(&ctx, &weights).unwrap();
    let s = arch.input_size();
    let x = random(3 * s * s, 99, 2.0);
    let out = net.forward(&x, 1, s, s, true).unwrap();
    let (want, want_features) = forward_cpu(&weights, &x, 1, s, s).unwrap();
    assert_eq!(out.logits.len(), 1000);
    assert_eq!(out.feature_len, 9216);
    assert_close(
        &format!("{arch} full-size features"),
        out.features.as_ref().unwrap(),
        want_features.as_ref().unwrap(),
        1e-4,
    );
    assert_close(
        &format!("{arch} full-size logits"),
        &out.logits,
        &want,
        1e-4,
    );
}

#[test]
fn full_size_torchvision_matches_cpu_reference() {
    check(Arch::Torchvision);
}

#[test]
fn full_size_caffe_matches_cpu_reference() {
    check(Arch::Caffe);
}
