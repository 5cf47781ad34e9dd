//! Inputs: image decoding and per-preset preprocessing, `.npy` batches, and walking folders.

pub mod dataset;
pub mod decode;
pub mod decode_cv2;
pub mod folder;
pub mod host_memory;
pub mod inputs;
pub mod pipeline;
pub mod preprocess;
pub mod resize;
pub mod stream;
mod transform;

pub use decode::LoadOptions;
pub use folder::ClassFolders;
pub use inputs::{collect_inputs, InputItem, InputSource};
pub use pipeline::{load_view, prepare, prepare_into, prepare_pixels_into, Loader, StageTimes};
pub use preprocess::{
    augment, crop_normalise, crop_pixels, decode_image, load_image, norm_table, preprocess,
    resize_target, NormTable, Preprocess,
};

/// Maps `f` over `items` on all cores (chunked, in order): image decoding is the CPU's share.
pub fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if items.len() < 2 || threads < 2 {
        return items.iter().map(&f).collect();
    }
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(items.len().div_ceil(threads))
            .map(|chunk| s.spawn(move || chunk.iter().map(f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker thread panicked"))
            .collect()
    })
}
