//! Whole networks: reduced-width nets of the three presets on every matmul path against the
//! CPU reference network.

use std::time::Instant;

use super::{random, Case, Compared};
use crate::kernels::{MatmulPath, Precision};
use crate::model::{Arch, Network, Weights, Widths};

/// Reduced-width networks of the three presets, batch 2, end to end on every matmul path.
pub(super) fn network_cases(out: &mut Vec<Case>) {
    let widths = Widths {
        conv: [8, 12, 16, 12, 8],
        fc6: 24,
        fc7: 16,
        classes: 7,
    };
    let paths = [
        MatmulPath::Tiled,
        MatmulPath::Gemm,
        MatmulPath::Blocked(Default::default()),
    ];
    for arch in [Arch::Torchvision, Arch::Caffe, Arch::Keras] {
        for path in paths {
            let shape = format!("{arch} reduced width, b2");
            out.push(Case::new("network", path.name(), shape, 1e-4, move |ctx| {
                let weights = Weights::random(arch, widths, 900)?;
                let pre = crate::data::Preprocess::for_arch(arch);
                let (h, w) = (pre.crop, pre.crop);
                let x = random(2 * 3 * h * w, 901, 1.0);
                let mut net = Network::with_path(ctx, &weights, Precision::F32, path)?;
                let t = Instant::now();
                let got = net.forward(&x, 2, h, w, false)?.logits;
                let ms = t.elapsed().as_secs_f64() * 1e3;
                let (want, _) = crate::model::reference::forward_cpu(&weights, &x, 2, h, w)?;
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
