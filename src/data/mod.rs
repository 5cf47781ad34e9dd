//! Inputs: image decoding and per-preset preprocessing, `.npy` batches, and walking folders.

pub mod inputs;
pub mod preprocess;

pub use inputs::{collect_inputs, InputItem, InputSource};
pub use preprocess::{load_image, preprocess, Preprocess};
