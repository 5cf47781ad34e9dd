//! Weight file formats only: NumPy `.npz`/`.npy`, PyTorch `.pth`, Keras HDF5. Raw tensors in,
//! raw tensors out, in the file's own key names and layout; what they mean for a network is
//! `model::params`'s business.

pub mod h5;
pub mod meta;
pub mod npz;
pub mod pth;

pub use npz::{read_strings, read_tensors, write_npy, write_npz, NpzEntry, RawTensor};
