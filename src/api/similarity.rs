//! What people compute next from [`Embeddings`]: cosine similarity, the k nearest images of
//! one (by index or by path) and the all-pairs similarity matrix.
//!
//! All on the CPU: each row's norm is taken once (f64 sums), each dot product is an f64 sum
//! of f32 products, and the matrix's rows are split over all cores. The GPU does not pay
//! here: a query is one pass over `n x dim` floats already in host memory (uploading them
//! would cost more than reading them once), and the matrix is `n²` floats held on the host,
//! so it is limited by memory long before by arithmetic (2,000 fc7 rows: 16 MB of matrix,
//! 8·10⁹ multiply-adds, 1.8-2.8 s on 2 busy cores; 10,000 rows: 400 MB, about a minute there). Past that size, stream [`Embeddings::nearest`]
//! per query instead of building the matrix.

use std::path::{Path, PathBuf};

use super::Embeddings;

/// One neighbour of a query: which image, and its cosine similarity to the query.
#[derive(Clone, Debug, PartialEq)]
pub struct Neighbor {
    /// Its index in [`Embeddings::paths`] (and row).
    pub index: usize,
    /// `paths[index]`.
    pub path: PathBuf,
    /// Cosine similarity to the query, in [-1, 1]; 1 for the same direction.
    pub similarity: f32,
}

/// `a . b` as f64 sums of f32 products, in eight independent lanes (so that the compiler
/// vectorises it: one sequential f64 sum ran 4-8x slower) added at the end.
fn dot(a: &[f32], b: &[f32]) -> f64 {
    let mut lanes = [0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &y)| x as f64 * y as f64)
        .sum();
    for (x, y) in ca.zip(cb) {
        for ((l, &p), &q) in lanes.iter_mut().zip(x).zip(y) {
            *l += p as f64 * q as f64;
        }
    }
    lanes.iter().sum::<f64>() + tail
}

/// Cosine similarity from a dot product and two norms; 0 when either vector is all zeros
/// (no direction), clamped to [-1, 1] against rounding.
fn cosine_of(dot: f64, na: f64, nb: f64) -> f32 {
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    (dot / (na * nb)).clamp(-1.0, 1.0) as f32
}

impl Embeddings {
    /// The index of `path` in [`Embeddings::paths`] (compared as given, not canonicalised);
    /// `None` when it was not embedded (not in the call, or it failed).
    pub fn index_of(&self, path: impl AsRef<Path>) -> Option<usize> {
        let path = path.as_ref();
        self.paths.iter().position(|p| p == path)
    }

    /// Cosine similarity of images `i` and `j` (`dot / (|a| |b|)`, in [-1, 1]; 0 when either
    /// embedding is all zeros). Panics when an index is out of range, as [`Embeddings::row`].
    pub fn cosine(&self, i: usize, j: usize) -> f32 {
        let (a, b) = (self.row(i), self.row(j));
        cosine_of(dot(a, b), dot(a, a).sqrt(), dot(b, b).sqrt())
    }

    /// The `k` images most similar to image `query` by cosine similarity, most similar first
    /// (ties by index), the query itself left out; fewer when there are fewer other images.
    /// Panics when `query` is out of range.
    pub fn nearest(&self, query: usize, k: usize) -> Vec<Neighbor> {
        let mut found = self.nearest_to(self.row(query), k.saturating_add(1));
        found.retain(|n| n.index != query);
        found.truncate(k);
        found
    }

    /// [`Embeddings::nearest`] of the image embedded from `path`; `None` when `path` is not
    /// one of [`Embeddings::paths`].
    ///
    /// ```no_run
    /// use alexnet_wgpu::{images_in, AlexNet, Tap};
    ///
    /// # fn main() -> alexnet_wgpu::Result<()> {
    /// let net = AlexNet::from_file("alexnet.npz")?;
    /// let photos = images_in("photos")?;
    /// let fc7 = net.embed(&photos, Tap::Fc7)?;
    /// for n in fc7.nearest_by_path(&photos[0], 5).unwrap_or_default() {
    ///     println!("{:.3} {}", n.similarity, n.path.display());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn nearest_by_path(&self, path: impl AsRef<Path>, k: usize) -> Option<Vec<Neighbor>> {
        self.index_of(path).map(|i| self.nearest(i, k))
    }

    /// The `k` images most similar to any vector of `dim` floats (an embedding from another
    /// call, say), most similar first (ties by index). Panics when `vector.len() != dim`.
    pub fn nearest_to(&self, vector: &[f32], k: usize) -> Vec<Neighbor> {
        assert_eq!(vector.len(), self.dim, "a query of {} floats", self.dim);
        let nq = dot(vector, vector).sqrt();
        let mut all: Vec<(usize, f32)> = (0..self.len())
            .map(|i| {
                let r = self.row(i);
                (i, cosine_of(dot(vector, r), nq, dot(r, r).sqrt()))
            })
            .collect();
        let order = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if k < all.len() {
            if k > 0 {
                all.select_nth_unstable_by(k - 1, order);
            }
            all.truncate(k);
        }
        all.sort_by(order);
        all.into_iter()
            .map(|(index, similarity)| Neighbor {
                index,
                path: self.paths[index].clone(),
                similarity,
            })
            .collect()
    }

    /// Every pair's cosine similarity: `len() x len()` floats, row-major (`m[i * n + j]` for
    /// images i and j), exactly symmetric, 1 on the diagonal (0 for an all-zero embedding).
    /// Holds `4 n²` bytes: for large n, query with [`Embeddings::nearest`] instead.
    pub fn similarity_matrix(&self) -> Vec<f32> {
        let n = self.len();
        let norms: Vec<f64> = (0..n)
            .map(|i| dot(self.row(i), self.row(i)).sqrt())
            .collect();
        let mut m = vec![0f32; n * n];
        if n == 0 {
            return m;
        }
        let threads = std::thread::available_parallelism()
            .map_or(1, |t| t.get())
            .min(n);
        // Upper triangle (j >= i) row by row; rows dealt round-robin so that every thread
        // gets long and short rows alike.
        std::thread::scope(|s| {
            let mut rows: Vec<Vec<(usize, &mut [f32])>> =
                (0..threads).map(|_| Vec::new()).collect();
            for (i, row) in m.chunks_mut(n).enumerate() {
                rows[i % threads].push((i, row));
            }
            for mine in rows {
                let norms = &norms;
                s.spawn(move || {
                    for (i, row) in mine {
                        let a = self.row(i);
                        for j in i..n {
                            row[j] = cosine_of(dot(a, self.row(j)), norms[i], norms[j]);
                        }
                    }
                });
            }
        });
        for i in 0..n {
            for j in 0..i {
                m[i * n + j] = m[j * n + i];
            }
        }
        m
    }
}
