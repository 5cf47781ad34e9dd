//! The PyTorch comparisons of tests/finetune_conv.rs on the GPU default matmul path: with
//! `ALEXNET_MATMUL=blocked`, the trained convolutions run forward on `mm.wgsl` tiles (conv1
//! through its padded weight copy) instead of lavapipe's `im2col` + `gemm.wgsl`, the path a
//! real GPU takes. One test function: the variable is set before any GPU work and nothing
//! else runs in this process. Tolerances as in tests/finetune_conv.rs.

use crate::common;
use crate::common::finetune_support;

use alexnet_wgpu::kernels::MatmulPath;
use alexnet_wgpu::model::Arch;
use finetune_support::against_torch;

#[test]
fn fine_tuning_on_the_blocked_path_follows_pytorch() {
    std::env::set_var("ALEXNET_MATMUL", "blocked");
    let ctx = common::ctx();
    assert!(matches!(ctx.matmul_path(), MatmulPath::Blocked(_)));
    drop(ctx);
    against_torch(
        "torchvision_small.npz",
        Arch::Torchvision,
        "input_224.npy",
        "torchvision",
        1,
    );
    against_torch(
        "caffe_small.npz",
        Arch::Caffe,
        "input_227_caffe.npy",
        "caffe",
        1,
    );
    against_torch(
        "keras_small_pt.npz",
        Arch::Keras,
        "input_227_keras.npy",
        "keras",
        4,
    );
}
