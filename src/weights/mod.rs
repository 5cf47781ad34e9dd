//! Weight file formats only: NumPy `.npz`/`.npy`, PyTorch `.pth`, Keras HDF5, `.safetensors`,
//! ONNX. Raw tensors in,
//! raw tensors out, in the file's own key names and layout; what they mean for a network is
//! `model::params`'s business.

pub mod h5;
pub mod meta;
pub mod npz;
pub mod onnx;
pub mod pth;
pub mod safetensors;

pub use npz::{read_strings, read_tensors, write_npy, write_npz, NpzEntry, RawTensor};
