//! The integration tests, as one binary (`cargo test --release --test it`; one module:
//! `cargo test --release --test it cli::`). Each file under `tests/` used to be its own test
//! binary, and each of those linked the whole crate and wgpu: 28 links after every library
//! change. One binary links once. The price is one process: tests run on parallel threads of
//! it, so none may change process-wide state (environment variables, the current directory,
//! signal handlers, the logger beyond `common::ctx`'s capture logger); a test that needs a
//! fresh process (the Vulkan loader reads `VK_ICD_FILENAMES` once) runs this binary again as a
//! child (`portability::finetune_conv4_follows_pytorch_under_webgpu_limits`).
//!
//! Shared helpers (the GPU context, fixtures, tolerances) are in `common`.

mod common;

mod api;
mod backward;
mod cli;
mod fetch;
mod file_cycles;
mod fine_tune_api;
mod finetune_conv;
mod finetune_conv_blocked;
mod finetune_fullsize;
mod formats;
mod full_size;
mod fuzz_regressions;
mod gpu_assignment;
mod h5;
mod helpers;
mod host_memory;
mod hostile_rerun;
mod input;
mod input_errors;
mod interrupt;
mod kernels;
mod layering;
mod lpips;
mod lpips_decode;
mod lpips_stream;
mod messages;
mod network;
mod nothing_lost;
mod nothing_lost_more;
mod one_route;
mod pipeline;
mod pixels;
mod portability;
mod preprocess;
mod pth;
mod rough_edges;
mod selftest_paths;
mod shaders;
mod shard;
mod slurm;
mod sweep;
mod train;
mod train_head;
mod train_resident;
mod tune;
mod weights;
