//! What people look up in an all-pairs [`Matrix`] next: its `k` closest pairs (the likeliest
//! near-duplicates), and distances and rows by file path ([`Lpips::matrix_files`] keeps the
//! paths with the matrix).

use std::path::{Path, PathBuf};

use crate::error::Result;

use super::matrix::Matrix;
use super::metric::{load_image, Lpips};

/// One pair of a matrix: images `i < j`, their files (empty paths for a matrix of images in
/// memory) and their distance.
#[derive(Clone, Debug, PartialEq)]
pub struct ClosePair {
    /// The first image's row (`i < j`).
    pub i: usize,
    /// The second image's row.
    pub j: usize,
    /// `paths[i]` (empty when the matrix has no paths).
    pub a: PathBuf,
    /// `paths[j]` (empty when the matrix has no paths).
    pub b: PathBuf,
    /// Their LPIPS distance, `values[i * n + j]`.
    pub distance: f32,
}

impl Lpips {
    /// The all-pairs matrix of image files, each decoded as [`load_image`] does (resized to
    /// `size` when given; otherwise every image must have the first one's size) on demand, a
    /// trunk batch at a time, with `paths` kept for lookups by path. The first image that
    /// cannot be read stops the matrix, naming it (list the good ones first, or stream with
    /// [`Lpips::matrix_blocks`] for per-image handling).
    pub fn matrix_files<P: AsRef<Path>>(
        &self,
        paths: &[P],
        size: Option<(u32, u32)>,
    ) -> Result<Matrix> {
        let load = |i: usize| load_image(paths[i].as_ref(), size);
        let mut m = self.matrix_of(paths.len(), load, false, &mut |_| {})?;
        m.paths = paths.iter().map(|p| p.as_ref().to_path_buf()).collect();
        Ok(m)
    }
}

impl Matrix {
    /// The distance between images `i` and `j` (0 when `i == j`). Panics when out of range.
    pub fn get(&self, i: usize, j: usize) -> f32 {
        assert!(
            i < self.n && j < self.n,
            "({i}, {j}) of a {0}x{0} matrix",
            self.n
        );
        self.values[i * self.n + j]
    }

    /// The row of `path` in [`Matrix::paths`] (compared as given); `None` when absent.
    pub fn index_of(&self, path: impl AsRef<Path>) -> Option<usize> {
        let path = path.as_ref();
        self.paths.iter().position(|p| p == path)
    }

    /// The distance between the images of two files; `None` when either is not in
    /// [`Matrix::paths`].
    pub fn between(&self, a: impl AsRef<Path>, b: impl AsRef<Path>) -> Option<f32> {
        Some(self.get(self.index_of(a)?, self.index_of(b)?))
    }

    /// Every distance from the image of `path` (`n` floats, 0 at its own index); `None` when
    /// it is not in [`Matrix::paths`].
    pub fn row_of(&self, path: impl AsRef<Path>) -> Option<&[f32]> {
        let i = self.index_of(path)?;
        Some(&self.values[i * self.n..(i + 1) * self.n])
    }

    /// The `k` pairs `i < j` of smallest distance, smallest first (ties by `(i, j)`); all
    /// n(n-1)/2 when `k` is larger. A NaN distance sorts after every number.
    ///
    /// ```no_run
    /// use alexnet_wgpu::gpu::{AdapterChoice, GpuContext};
    /// use alexnet_wgpu::lpips::{Lin, Lpips};
    /// # fn main() -> alexnet_wgpu::Result<()> {
    /// let ctx = GpuContext::new(&AdapterChoice::default())?;
    /// let lpips = Lpips::load(&ctx, "alexnet.pth", Lin::V0_1)?;
    /// let m = lpips.matrix_files(&alexnet_wgpu::images_in("photos")?, Some((256, 256)))?;
    /// for p in m.closest_pairs(5) {
    ///     println!("{} {} {}", p.a.display(), p.b.display(), p.distance);
    /// }
    /// println!("{:?}", m.between("photos/a.jpg", "photos/b.jpg"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn closest_pairs(&self, k: usize) -> Vec<ClosePair> {
        let n = self.n;
        let key = |&(i, j): &(usize, usize)| (self.values[i * n + j], i, j);
        let order = |a: &(usize, usize), b: &(usize, usize)| {
            let (da, ia, ja) = key(a);
            let (db, ib, jb) = key(b);
            da.total_cmp(&db).then((ia, ja).cmp(&(ib, jb)))
        };
        // A max-heap of the best k so far would avoid the n²/2 list; the matrix already
        // holds n² floats, so the list costs at most 4x that, briefly.
        let mut pairs: Vec<(usize, usize)> = (0..n)
            .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
            .collect();
        // total_cmp puts -NaN first: send every NaN to the end.
        let nan_last = |a: &(usize, usize), b: &(usize, usize)| {
            let (na, nb) = (key(a).0.is_nan(), key(b).0.is_nan());
            na.cmp(&nb).then_with(|| order(a, b))
        };
        if k < pairs.len() {
            if k > 0 {
                pairs.select_nth_unstable_by(k - 1, nan_last);
            }
            pairs.truncate(k);
        }
        pairs.sort_by(nan_last);
        let path = |i: usize| self.paths.get(i).cloned().unwrap_or_default();
        pairs
            .into_iter()
            .map(|(i, j)| ClosePair {
                i,
                j,
                a: path(i),
                b: path(j),
                distance: self.values[i * n + j],
            })
            .collect()
    }
}
