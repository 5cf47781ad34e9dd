//! `classify` and `embed` over a list of any length in bounded memory: iterators that take
//! paths from any `IntoIterator` a chunk at a time (by default 8 forward passes' worth) and
//! run each chunk through the same runner as [`AlexNet::classify`] / [`AlexNet::embed`]
//! (`model::run`: decoding on all cores, overlapped with the GPU). Memory holds one chunk's
//! paths and results, however long the list (a file of paths, a folder walk, a generator).
//!
//! Measured (2026-12-07, 2 shared cores, lavapipe, the reduced-width test network, one 31 px
//! PNG repeated, `/usr/bin/time -v`): peak RSS 178.6 MB for 200, 3,000 and 20,000 paths alike;
//! 1,000 paths took 18.5-20.3 s streamed and 20.0-20.3 s through `classify` (no cost from the
//! chunks' pipeline refills that the noise shows).

use std::collections::VecDeque;
use std::path::Path;

use super::{AlexNet, Classification, Embeddings, Tap};
use crate::error::Result;
use crate::model::TapLayers;

/// Forward passes per chunk by default: the runner's pipeline refills at each chunk's start,
/// so a chunk of several batches keeps that pause small next to the work.
const BATCHES_PER_CHUNK: usize = 8;

/// The paths of the next chunk (at most `n`), taken from `source`.
fn take_chunk<I: Iterator>(source: &mut I, n: usize) -> Vec<I::Item> {
    source.take(n).collect()
}

/// [`AlexNet::classify_iter`]: one [`Classification`] per path, in input order.
pub struct ClassifyIter<'a, I: Iterator> {
    net: &'a AlexNet,
    source: I,
    top_k: usize,
    chunk: usize,
    ready: VecDeque<Classification>,
    done: bool,
}

impl<I: Iterator> ClassifyIter<'_, I> {
    /// Paths per run of the network (default: 8 batches); memory grows with it, the pause
    /// between chunks shrinks. At least 1.
    pub fn chunk(mut self, paths: usize) -> Self {
        self.chunk = paths.max(1);
        self
    }
}

impl<I> Iterator for ClassifyIter<'_, I>
where
    I: Iterator,
    I::Item: AsRef<Path> + Sync,
{
    /// An image's result (an unreadable image has `error` set), or the error that stopped
    /// the stream (the network's: nothing follows it).
    type Item = Result<Classification>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(c) = self.ready.pop_front() {
            return Some(Ok(c));
        }
        if self.done {
            return None;
        }
        let paths = take_chunk(&mut self.source, self.chunk);
        if paths.is_empty() {
            self.done = true;
            return None;
        }
        match self.net.classify(&paths, self.top_k) {
            Ok(results) => self.ready = results.into(),
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        }
        self.ready.pop_front().map(Ok)
    }
}

/// [`AlexNet::embed_iter`]: one [`Embeddings`] per chunk of paths, in input order.
pub struct EmbedIter<'a, I: Iterator> {
    net: &'a AlexNet,
    source: I,
    tap: Tap,
    chunk: usize,
    /// fc6/fc7's dense layers, uploaded once for the whole stream.
    layers: Option<TapLayers>,
    done: bool,
}

impl<I: Iterator> EmbedIter<'_, I> {
    /// Paths per chunk (default: 8 batches). At least 1.
    pub fn chunk(mut self, paths: usize) -> Self {
        self.chunk = paths.max(1);
        self
    }

    fn embed(&mut self, paths: &[I::Item]) -> Result<Embeddings>
    where
        I::Item: AsRef<Path> + Sync,
    {
        let mut e = self.net.embed(paths, Tap::Pool5)?;
        if self.tap == Tap::Pool5 || e.is_empty() {
            return Ok(e);
        }
        let net = self.net;
        let layers = match &mut self.layers {
            Some(l) => l,
            None => self
                .layers
                .insert(TapLayers::new(&net.ctx, &net.weights, self.tap, e.dim)?),
        };
        e.rows = layers.apply(&net.ctx, &e.rows)?.into_owned();
        e.dim = layers.dim();
        Ok(e)
    }
}

impl<I> Iterator for EmbedIter<'_, I>
where
    I: Iterator,
    I::Item: AsRef<Path> + Sync,
{
    /// A chunk's embeddings (its unreadable images in `failed`), or the error that stopped
    /// the stream (nothing follows it).
    type Item = Result<Embeddings>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let paths = take_chunk(&mut self.source, self.chunk);
        if paths.is_empty() {
            self.done = true;
            return None;
        }
        let e = self.embed(&paths);
        self.done = e.is_err();
        Some(e)
    }
}

impl AlexNet {
    fn default_chunk(&self) -> usize {
        self.batch.saturating_mul(BATCHES_PER_CHUNK).max(1)
    }

    /// [`AlexNet::classify`] as a stream: paths are taken from `paths` a chunk at a time
    /// ([`ClassifyIter::chunk`]) and each result comes back in input order, so a list of any
    /// length runs in the memory of one chunk. Results equal `classify`'s.
    ///
    /// ```no_run
    /// use alexnet_wgpu::{AlexNet, Tap};
    ///
    /// # fn main() -> alexnet_wgpu::Result<()> {
    /// let net = AlexNet::from_file("alexnet.npz")?;
    /// let list = std::fs::read_to_string("paths.txt").map_err(|e| alexnet_wgpu::Error::io("paths.txt", e))?;
    /// for c in net.classify_iter(list.lines(), 5) {
    ///     let c = c?; // a GPU failure stops the stream; an unreadable image is `c.error`
    ///     println!("{}: {:?}", c.path.display(), c.top.first().map(|p| &p.label));
    /// }
    /// for chunk in net.embed_iter(list.lines(), Tap::Fc7) {
    ///     let chunk = chunk?; // an `Embeddings` of up to `chunk` images, in input order
    ///     println!("{} embedded, {} failed", chunk.len(), chunk.failed.len());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn classify_iter<I>(&self, paths: I, top_k: usize) -> ClassifyIter<'_, I::IntoIter>
    where
        I: IntoIterator,
        I::Item: AsRef<Path> + Sync,
    {
        ClassifyIter {
            net: self,
            source: paths.into_iter(),
            top_k,
            chunk: self.default_chunk(),
            ready: VecDeque::new(),
            done: false,
        }
    }

    /// [`AlexNet::embed`] as a stream of chunks ([`EmbedIter::chunk`] paths each): every
    /// chunk is an [`Embeddings`] of its images in input order, the fc6/fc7 layers uploaded
    /// once for the whole stream. The chunks' rows, concatenated, equal `embed`'s.
    pub fn embed_iter<I>(&self, paths: I, tap: Tap) -> EmbedIter<'_, I::IntoIter>
    where
        I: IntoIterator,
        I::Item: AsRef<Path> + Sync,
    {
        EmbedIter {
            net: self,
            source: paths.into_iter(),
            tap,
            chunk: self.default_chunk(),
            layers: None,
            done: false,
        }
    }
}
