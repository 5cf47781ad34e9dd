//! The PyTorch comparisons of tests/it/finetune_conv.rs on the GPU default matmul path: with
//! the matmul path `blocked` in the context's runtime options, the trained convolutions run
//! forward on `mm.wgsl` tiles (conv1 through its padded weight copy) instead of lavapipe's
//! `im2col` + `gemm.wgsl`, the path a real GPU takes. The option is passed to this test's own
//! context (not set as `ALEXNET_MATMUL`: the tests share one process, and the library reads no
//! environment variable anyway); the suite's other options (limits, validation) still apply.
//! Tolerances as in tests/it/finetune_conv.rs.

use crate::common;
use crate::common::finetune_support;

use alexnet_wgpu::kernels::mm::Force;
use alexnet_wgpu::kernels::MatmulPath;
use alexnet_wgpu::model::Arch;
use alexnet_wgpu::options::RuntimeOptions;
use finetune_support::against_torch_on;

#[test]
fn fine_tuning_on_the_blocked_path_follows_pytorch() {
    let ctx = common::ctx_with(RuntimeOptions {
        matmul: Some(MatmulPath::Blocked(Force::default())),
        ..common::env_options()
    });
    assert!(matches!(ctx.matmul_path(), MatmulPath::Blocked(_)));
    against_torch_on(
        &ctx,
        "torchvision_small.npz",
        Arch::Torchvision,
        "input_224.npy",
        "torchvision",
        1,
    );
    against_torch_on(
        &ctx,
        "caffe_small.npz",
        Arch::Caffe,
        "input_227_caffe.npy",
        "caffe",
        1,
    );
    against_torch_on(
        &ctx,
        "keras_small_pt.npz",
        Arch::Keras,
        "input_227_keras.npy",
        "keras",
        4,
    );
}
