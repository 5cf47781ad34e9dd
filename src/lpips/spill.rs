//! The features of an all-pairs matrix that do not fit the GPU budget: a temporary file of
//! every image's five ReLU outputs (image after image, layer after layer within an image, f32
//! native-endian: written and read by this process only), read back a block of images at a
//! time. The file has the project's temporary name (`.alexnet-lpips-features-{pid}-XXXXXX.tmp`,
//! `fsutil::PendingFile`): removed when the matrix is done or fails, by the binary's signal
//! handler on Ctrl-C, and, after a kill -9, by the next [`Lpips`](super::Lpips) made (every
//! run of `alexnet lpips`, whether or not it spills: [`remove_stale_spills`]).

use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fsutil::PendingFile;
use crate::gpu::{read_back_f32, GpuContext};

use super::trunk::CHANNELS;

/// The temporary-file key of the spill files (`fsutil::PendingFile::keyed`).
const SPILL_KEY: &str = "lpips-features";

/// Removes the spill files in `dir` (default: the system's temporary folder) that processes no
/// longer running left (a kill -9 runs no handler); those of live processes stay. Returns the
/// paths removed.
pub fn remove_stale_spills(dir: Option<&Path>) -> Vec<PathBuf> {
    let dir = dir.map_or_else(std::env::temp_dir, Path::to_path_buf);
    crate::fsutil::remove_stale_temps(&dir, SPILL_KEY)
}

pub(crate) struct FeatureFile {
    file: PendingFile,
    /// Floats per image.
    per_image: usize,
    images: usize,
}

impl FeatureFile {
    /// A new empty file in `dir` (default: the system's temporary folder).
    pub fn create(dir: Option<PathBuf>, per_image: usize) -> Result<FeatureFile> {
        let dir = dir.unwrap_or_else(std::env::temp_dir);
        Ok(FeatureFile {
            file: PendingFile::keyed(&dir, SPILL_KEY)?,
            per_image,
            images: 0,
        })
    }

    /// Appends a trunk batch of `batch` images: reads back its five `[batch, C_k, h_k, w_k]`
    /// outputs and writes them image by image.
    pub fn append(
        &mut self,
        ctx: &GpuContext,
        relu: &[wgpu::Buffer],
        sizes: &[[usize; 2]; 5],
        batch: usize,
    ) -> Result<()> {
        let lens: Vec<usize> = (0..5)
            .map(|k| CHANNELS[k] * sizes[k][0] * sizes[k][1])
            .collect();
        let layers: Vec<Vec<f32>> = (0..5)
            .map(|k| read_back_f32(ctx, &relu[k], batch * lens[k]))
            .collect::<Result<_>>()?;
        let path = self.file.path().to_path_buf();
        let io = |e| Error::io(&path, e);
        let at = self.offset(self.images);
        let f = self.file.file_mut();
        f.seek(SeekFrom::Start(at)).map_err(io)?;
        let mut w = BufWriter::new(f);
        for a in 0..batch {
            for k in 0..5 {
                let image = &layers[k][a * lens[k]..(a + 1) * lens[k]];
                w.write_all(bytemuck::cast_slice(image)).map_err(io)?;
            }
        }
        w.flush().map_err(io)?;
        self.images += batch;
        Ok(())
    }

    /// Images `start..end` as five `[end - start, C_k, h_k * w_k]` arrays.
    pub fn read_block(
        &mut self,
        start: usize,
        end: usize,
        sizes: &[[usize; 2]; 5],
    ) -> Result<Vec<Vec<f32>>> {
        assert!(start <= end && end <= self.images, "block inside the file");
        let path = self.file.path().to_path_buf();
        let io = |e| Error::io(&path, e);
        let mut flat = vec![0f32; (end - start) * self.per_image];
        let at = self.offset(start);
        let f = self.file.file_mut();
        f.seek(SeekFrom::Start(at)).map_err(io)?;
        f.read_exact(bytemuck::cast_slice_mut(&mut flat))
            .map_err(io)?;
        let lens: Vec<usize> = (0..5)
            .map(|k| CHANNELS[k] * sizes[k][0] * sizes[k][1])
            .collect();
        let mut layers: Vec<Vec<f32>> = lens
            .iter()
            .map(|l| Vec::with_capacity(l * (end - start)))
            .collect();
        for image in flat.chunks_exact(self.per_image) {
            let mut at = 0;
            for k in 0..5 {
                layers[k].extend_from_slice(&image[at..at + lens[k]]);
                at += lens[k];
            }
        }
        Ok(layers)
    }

    fn offset(&self, image: usize) -> u64 {
        image as u64 * self.per_image as u64 * 4
    }
}
