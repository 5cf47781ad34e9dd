//! Weight file formats only: NumPy `.npz`/`.npy`, PyTorch `.pth`, Keras HDF5, `.safetensors`,
//! ONNX. Raw tensors in,
//! raw tensors out, in the file's own key names and layout; what they mean for a network is
//! `model::params`'s business.
//!
//! - `raw`: [`RawTensor`], what every reader returns.
//! - `read`: [`read_tensors`] (by extension, or a directory of `.npy`), [`read_tensors_matching`]
//!   (only the keys asked for, skipping the others' bytes where the format allows) and
//!   [`read_tensors_from_bytes`] (a buffer in memory, for fuzzing).
//! - `npz`: `.npy` / `.npz` reading and (atomic) writing.
//! - `pickle`: the restricted pickle machine (opcodes, values, allow-listed globals, bounds).
//! - `pth`: PyTorch's zip and legacy formats on top of it (storages, `_rebuild_tensor_v2`).
//! - `h5`: Keras HDF5 layouts and `.keras` archives.
//! - `safetensors`: the Hugging Face format, read and written with the `safetensors` crate.
//! - `onnx`: ONNX graphs followed from the input (`prost` message types), and ONNX export.
//! - `meta`: what a model file written by `train-head` says about itself.

pub mod h5;
pub mod meta;
pub mod npz;
pub mod onnx;
mod pickle;
pub mod pth;
mod quiet_sink;
pub mod raw;
pub mod read;
pub mod safetensors;

pub use npz::{read_strings, write_npy, write_npz, NpzEntry};
pub use raw::RawTensor;
pub use read::{read_tensors, read_tensors_from_bytes, read_tensors_matching, Format};
