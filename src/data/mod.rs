//! Inputs: image decoding and per-preset preprocessing, `.npy` batches, and walking folders.

pub mod folder;
pub mod inputs;
pub mod preprocess;

pub use folder::ClassFolders;
pub use inputs::{collect_inputs, InputItem, InputSource};
pub use preprocess::{augment, load_image, preprocess, Preprocess};
