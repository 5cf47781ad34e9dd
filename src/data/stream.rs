//! The input pipeline with no bubbles: a producer thread decodes batch n+1 (on all cores) into
//! one of two reused host buffers while the GPU runs batch n, and the command loop submits
//! each batch without waiting, reading batch n back only after batch n+1 is submitted.
//!
//! ```text
//!   decoders:  [decode 0 → A][decode 1 → B][decode 2 → A] ...   (waits only for a free buffer)
//!   GPU loop:          [submit 0][submit 1, read back 0][submit 2, read back 1] ...
//!   GPU:               [ run 0  ][ run 1               ][ run 2 ...
//! ```
//!
//! Two host buffers suffice: a buffer goes back to the decoders as soon as its batch is
//! submitted (the upload copies it out), so one is filled while the other is uploaded. On the
//! device, the network's `submit` writes the input buffer with `queue.write_buffer`, which stages
//! the bytes at once and orders the copy after every pass already submitted: the staging
//! belt is the second device-side input buffer, and batch n+1's upload overlaps batch n's
//! passes. Read-back buffers come from a per-plan pool, one per batch in flight.
//!
//! A row's values are the stage's to choose ([`GpuStage::Elem`]): cropped 8-bit pixels that the
//! network normalises on the GPU (images: 3 bytes per pixel to upload) or normalised f32
//! (augmented views, `.npy` rows, the frozen-conv cache), through the same buffers and threads.
//!
//! [`run`] is generic over the GPU side ([`GpuStage`]), so this layer knows no network and the
//! scheduling is unit-tested with a fake stage; the real one, the network (`model::NetStage`),
//! is defined above, in `model`, and run by `model::run` (the library's image-to-network
//! runner, under `classify`, `embed`, `features`, `eval` and the pool5 feature cache); the
//! frozen-conv cache runs its own stage through `model::run::run_stage`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::error::Result;

/// The GPU side of the pipeline: work is submitted without waiting, and read back later.
pub trait GpuStage {
    /// What a host row holds: `f32` (normalised tensors) or `u8` (cropped pixels the stage
    /// normalises on the GPU, a quarter of the bytes to upload). The decoders fill rows of it.
    type Elem: Copy + Default + Send + Sync;
    /// A submitted batch not yet read back.
    type Pending;
    /// A batch's read-back result.
    type Out;
    /// Starts the work on `rows` rows of `input` and returns without waiting for it; `input`
    /// may be overwritten as soon as this returns.
    fn submit(&mut self, input: &[Self::Elem], rows: usize) -> Result<Self::Pending>;
    /// Lets finished work be noticed without blocking.
    fn poll(&mut self) {}
    /// Waits for submitted work; returns its output and when it finished.
    fn collect(&mut self, pending: Self::Pending) -> Result<(Self::Out, Instant)>;
}

/// How the pipeline is shaped: items per batch, rows (tensors) each item yields, values per
/// row, decoding threads.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Items per batch.
    pub batch: usize,
    /// Host rows per item.
    pub rows_per_item: usize,
    /// Values ([`GpuStage::Elem`]) per row.
    pub row_len: usize,
    /// Decoding threads.
    pub threads: usize,
}

/// One finished batch, handed to the caller in input order.
pub struct Done<'i, T, O> {
    /// Index of the batch's first item in the whole list.
    pub first: usize,
    /// The batch's items.
    pub items: &'i [T],
    /// Per item: `Ok` when its rows are in `out` (in item order, `rows_per_item` each), else
    /// why it failed (it has no rows).
    pub status: Vec<Result<()>>,
    /// The GPU's output for the batch's good rows; `None` when every item failed.
    pub out: Option<O>,
}

/// Where a pipelined run's time went (seconds of wall time).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct PipeTimes {
    /// Items run.
    pub items: usize,
    /// Batches run.
    pub batches: usize,
    /// Wall time of the whole run.
    pub wall_s: f64,
    /// Decoding threads at work (wall time of each batch's decoding, summed).
    pub decode_s: f64,
    /// Decoders idle because both host buffers were waiting for the GPU loop.
    pub decoder_wait_s: f64,
    /// The GPU loop waiting for a decoded batch.
    pub input_wait_s: f64,
    /// GPU busy: each batch from its submission (or the previous batch's end, the queue runs
    /// them in order) to its read-back callback. Includes the upload.
    pub gpu_s: f64,
}

impl PipeTimes {
    /// Adds another run's times (classify runs one pipeline per input geometry).
    pub fn add(&mut self, o: &PipeTimes) {
        self.items += o.items;
        self.batches += o.batches;
        self.wall_s += o.wall_s;
        self.decode_s += o.decode_s;
        self.decoder_wait_s += o.decoder_wait_s;
        self.input_wait_s += o.input_wait_s;
        self.gpu_s += o.gpu_s;
    }

    /// Fraction of the wall time the GPU had nothing to do.
    pub fn gpu_idle(&self) -> f64 {
        (1.0 - self.gpu_s / self.wall_s.max(1e-9)).clamp(0.0, 1.0)
    }

    /// Fraction of the wall time the decoders waited for a free buffer.
    pub fn decoder_idle(&self) -> f64 {
        (self.decoder_wait_s / self.wall_s.max(1e-9)).clamp(0.0, 1.0)
    }

    /// Which side bounds the run: the one the other waited on more. With one batch nothing
    /// can be told (the GPU waits for the only batch to decode, and the decoders never wait
    /// for the GPU), so nothing is claimed.
    pub fn bound(&self) -> String {
        if self.batches < 2 {
            "one batch: too few to tell whether decoding or the GPU bounds the run".into()
        } else if self.gpu_idle() > self.decoder_idle() {
            format!(
                "decode-bound: GPU idle {:.0} % waiting for input",
                100.0 * self.gpu_idle()
            )
        } else {
            format!(
                "GPU-bound: decoders waited {:.0} % for the GPU",
                100.0 * self.decoder_idle()
            )
        }
    }

    /// The `--timings` line (the pipeline only: loading and setup are the caller's to add).
    pub fn summary(&self) -> String {
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        format!(
            "{} in {:.2} s ({:.2} images/s), {}: decoding {:.2} s on CPU threads, \
             GPU busy {:.2} s, overlapped ({:.2} s of the two ran at once); {}",
            plural(self.items, "input", "inputs"),
            self.wall_s,
            self.items as f64 / self.wall_s.max(1e-9),
            plural(self.batches, "batch", "batches"),
            self.decode_s,
            self.gpu_s,
            (self.decode_s + self.gpu_s - self.wall_s).max(0.0),
            self.bound()
        )
    }
}

/// A decoded batch on its way from the decoders to the GPU loop.
struct Decoded<E> {
    index: usize,
    buf: Vec<E>,
    rows: usize,
    status: Vec<Result<()>>,
}

/// Fills `buf` with `items`' rows on `threads` threads (each takes the next item as it
/// finishes one), item `i` at `i * per_item`; returns each item's result in order.
pub fn fill_parallel<T: Sync, R: Send, E: Copy + Default + Send>(
    items: &[T],
    per_item: usize,
    threads: usize,
    buf: &mut Vec<E>,
    fill: &(dyn Fn(&T, &mut [E]) -> Result<R> + Sync),
) -> Vec<Result<R>> {
    buf.resize(items.len() * per_item, E::default());
    if per_item == 0 {
        return items.iter().map(|t| fill(t, &mut [])).collect();
    }
    let slots: Vec<std::sync::Mutex<&mut [E]>> = buf
        .chunks_mut(per_item)
        .map(std::sync::Mutex::new)
        .collect();
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= items.len() {
                break done;
            }
            let mut slot = slots[i].lock().unwrap_or_else(|e| e.into_inner());
            done.push((i, fill(&items[i], &mut slot)));
        }
    };
    let threads = threads.clamp(1, items.len().max(1));
    let finished: Vec<(usize, Result<R>)> = if threads == 1 {
        work()
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads).map(|_| s.spawn(work)).collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("decoding thread panicked"))
                .collect()
        })
    };
    let mut results: Vec<Option<Result<R>>> = (0..items.len()).map(|_| None).collect();
    for (i, r) in finished {
        results[i] = Some(r);
    }
    results
        .into_iter()
        .map(|r| r.expect("every item was taken by a thread"))
        .collect()
}

/// Moves the good items' rows to the front of `buf`, in order; returns how many rows.
fn compact<E: Copy>(buf: &mut [E], status: &[Result<()>], per_item: usize) -> usize {
    let mut kept = 0;
    for (i, s) in status.iter().enumerate() {
        if s.is_ok() {
            if i != kept {
                buf.copy_within(i * per_item..(i + 1) * per_item, kept * per_item);
            }
            kept += 1;
        }
    }
    kept
}

/// What the decoders run per item: fill its rows (of the stage's element), or say why not.
pub type FillRows<'f, T, E> = dyn Fn(&T, &mut [E]) -> Result<()> + Sync + 'f;

/// The callback receiving each finished batch.
pub type Emit<'e, T, O> = dyn FnMut(Done<'_, T, O>) -> Result<()> + 'e;

/// A batch submitted to the GPU (or, with no good rows, not) and not yet handed over.
struct InFlight<P> {
    index: usize,
    status: Vec<Result<()>>,
    pending: Option<P>,
    submitted: Instant,
}

/// Host buffers in rotation: one filled by the decoders while the other is uploaded.
const HOST_BUFFERS: usize = 2;
/// How often the GPU loop checks for finished batches while it waits for input (so a batch's
/// end is timed to within this).
const POLL_EVERY: Duration = Duration::from_millis(1);

/// Runs `items` through `fill` (on the decoding threads) and `stage` (the GPU), batch by
/// batch with decoding, upload and GPU work overlapped, handing each finished batch to
/// `emit` in input order. An item whose `fill` fails has no rows (its status says why) and
/// the others run; an error from the stage or from `emit` stops the run and is returned.
pub fn run<T: Sync, S: GpuStage>(
    items: &[T],
    shape: Shape,
    fill: &FillRows<'_, T, S::Elem>,
    stage: &mut S,
    emit: &mut Emit<'_, T, S::Out>,
) -> Result<PipeTimes> {
    let start = Instant::now();
    let batch = shape.batch.max(1).min(items.len().max(1));
    super::host_memory::check_batch_of(
        batch.saturating_mul(shape.rows_per_item),
        shape.row_len,
        std::mem::size_of::<S::Elem>(),
        "input rows (items times rows per item)",
    )?;
    let per_item = shape.rows_per_item * shape.row_len;
    let mut times = PipeTimes {
        items: items.len(),
        batches: items.len().div_ceil(batch),
        ..Default::default()
    };
    let result = std::thread::scope(|s| -> Result<()> {
        let (free_tx, free_rx) = sync_channel::<Vec<S::Elem>>(HOST_BUFFERS);
        let (full_tx, full_rx) = sync_channel::<Decoded<S::Elem>>(HOST_BUFFERS);
        for _ in 0..HOST_BUFFERS {
            free_tx.send(Vec::new()).expect("room for every buffer");
        }
        let producer = s.spawn(move || {
            let (mut busy, mut waited) = (0f64, 0f64);
            for (index, chunk) in items.chunks(batch).enumerate() {
                let t = Instant::now();
                let Ok(mut buf) = free_rx.recv() else { break };
                let t1 = Instant::now();
                let status = fill_parallel(chunk, per_item, shape.threads, &mut buf, fill);
                let rows = compact(&mut buf, &status, per_item) * shape.rows_per_item;
                busy += t1.elapsed().as_secs_f64();
                waited += (t1 - t).as_secs_f64();
                let decoded = Decoded {
                    index,
                    buf,
                    rows,
                    status,
                };
                if full_tx.send(decoded).is_err() {
                    break;
                }
            }
            (busy, waited)
        });
        let mut in_flight: VecDeque<InFlight<S::Pending>> = VecDeque::new();
        let mut gpu_free_at: Option<Instant> = None;
        let mut finish_one = |stage: &mut S, f: InFlight<S::Pending>, gpu_s: &mut f64| {
            let InFlight {
                index,
                status,
                pending,
                submitted,
            } = f;
            let out = match pending {
                Some(p) => {
                    let (out, done) = stage.collect(p)?;
                    let began = gpu_free_at.map_or(submitted, |f| f.max(submitted));
                    *gpu_s += done.saturating_duration_since(began).as_secs_f64();
                    gpu_free_at = Some(done);
                    Some(out)
                }
                None => None,
            };
            let first = index * batch;
            let n = status.len();
            emit(Done {
                first,
                items: &items[first..first + n],
                status,
                out,
            })
        };
        let mut input_wait = 0f64;
        let mut gpu_s = 0f64;
        loop {
            let t = Instant::now();
            let next = loop {
                match full_rx.recv_timeout(POLL_EVERY) {
                    Ok(d) => break Some(d),
                    Err(RecvTimeoutError::Timeout) => stage.poll(),
                    Err(RecvTimeoutError::Disconnected) => break None,
                }
            };
            input_wait += t.elapsed().as_secs_f64();
            let Some(d) = next else { break };
            // Building a plan on a batch's first use (inside submit) counts as GPU-side time.
            let submitted = Instant::now();
            let pending = if d.rows > 0 {
                Some(stage.submit(&d.buf[..d.rows * shape.row_len], d.rows)?)
            } else {
                None
            };
            in_flight.push_back(InFlight {
                index: d.index,
                status: d.status,
                pending,
                submitted,
            });
            // The input was copied by the upload: the decoders may refill this buffer now.
            let _ = free_tx.send(d.buf);
            // Batch n+1 is queued behind batch n: read n back while n+1 runs.
            if in_flight.len() >= 2 {
                let oldest = in_flight.pop_front().expect("two in flight");
                finish_one(stage, oldest, &mut gpu_s)?;
            }
        }
        while let Some(oldest) = in_flight.pop_front() {
            finish_one(stage, oldest, &mut gpu_s)?;
        }
        drop(free_tx);
        let (busy, waited) = producer.join().expect("decoding thread panicked");
        times.decode_s = busy;
        times.decoder_wait_s = waited;
        times.input_wait_s = input_wait;
        times.gpu_s = gpu_s;
        Ok(())
    });
    times.wall_s = start.elapsed().as_secs_f64();
    result.map(|()| times)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    /// A fake GPU: records what it was given and when, "runs" a batch by summing each row,
    /// and can be told to fail on one submission.
    #[derive(Default)]
    struct Fake {
        log: Vec<String>,
        in_flight: usize,
        max_in_flight: usize,
        fail_at: Option<usize>,
        submitted: usize,
    }

    impl GpuStage for Fake {
        type Elem = f32;
        type Pending = (usize, Vec<f32>);
        type Out = Vec<f32>;
        fn submit(&mut self, input: &[f32], rows: usize) -> Result<(usize, Vec<f32>)> {
            let k = self.submitted;
            self.submitted += 1;
            if self.fail_at == Some(k) {
                return Err(Error::Gpu(format!("fake failure at batch {k}")));
            }
            self.in_flight += 1;
            self.max_in_flight = self.max_in_flight.max(self.in_flight);
            self.log.push(format!("submit {k}"));
            let row = input.len() / rows;
            Ok((k, input.chunks(row).map(|r| r.iter().sum()).collect()))
        }
        fn collect(&mut self, (k, out): (usize, Vec<f32>)) -> Result<(Vec<f32>, Instant)> {
            self.in_flight -= 1;
            self.log.push(format!("collect {k}"));
            Ok((out, Instant::now()))
        }
    }

    /// Item `i` fills its row with `i` (sum `row_len * i`); items 3, 10, 17, ... fail.
    fn fill(i: &usize, out: &mut [f32]) -> Result<()> {
        if i % 7 == 3 {
            return Err(Error::Invalid(format!("item {i} is bad")));
        }
        out.fill(*i as f32);
        Ok(())
    }

    fn drive(n: usize, batch: usize, threads: usize, stage: &mut Fake) -> Result<Vec<String>> {
        let items: Vec<usize> = (0..n).collect();
        let shape = Shape {
            batch,
            rows_per_item: 1,
            row_len: 3,
            threads,
        };
        let mut seen = Vec::new();
        let mut next_first = 0;
        run(&items, shape, &fill, stage, &mut |d: Done<
            usize,
            Vec<f32>,
        >| {
            assert_eq!(d.first, next_first, "batches arrive in order");
            next_first += d.items.len();
            let mut rows = d.out.unwrap_or_default().into_iter();
            for (item, st) in d.items.iter().zip(d.status) {
                match st {
                    Ok(()) => {
                        let sum = rows.next().expect("a row per good item");
                        assert_eq!(sum, 3.0 * *item as f32, "item {item}'s own row");
                        seen.push(format!("{item} ok"));
                    }
                    Err(e) => seen.push(format!("{item} err {e}")),
                }
            }
            assert!(rows.next().is_none(), "no extra rows");
            Ok(())
        })?;
        assert_eq!(next_first, n);
        Ok(seen)
    }

    /// Every item once, in order, with its own row; failures reported in place; the partial
    /// last batch included; batch n+1 is submitted before batch n is read back (the
    /// overlap), and never more than two batches are in flight.
    #[test]
    fn batches_overlap_and_stay_in_order() {
        for (n, batch, threads) in [(23, 4, 3), (8, 4, 1), (1, 4, 2), (6, 2, 2), (7, 7, 4)] {
            let mut stage = Fake::default();
            let seen = drive(n, batch, threads, &mut stage).unwrap();
            assert_eq!(seen.len(), n);
            for (i, s) in seen.iter().enumerate() {
                if i % 7 == 3 {
                    assert!(
                        s.starts_with(&format!("{i} err"))
                            && s.contains(&format!("item {i} is bad")),
                        "{s}"
                    );
                } else {
                    assert_eq!(s, &format!("{i} ok"));
                }
            }
            let batches = n.div_ceil(batch);
            // submit 0, submit 1, collect 0, submit 2, collect 1, ..., collect last.
            let mut want_log = Vec::new();
            for k in 0..batches {
                want_log.push(format!("submit {k}"));
                if k > 0 {
                    want_log.push(format!("collect {}", k - 1));
                }
            }
            want_log.push(format!("collect {}", batches - 1));
            assert_eq!(stage.log, want_log, "n {n} batch {batch}");
            assert_eq!(stage.max_in_flight, batches.min(2));
        }
    }

    /// A batch where every item fails is not submitted but still reported.
    #[test]
    fn an_all_bad_batch_is_reported_without_gpu_work() {
        let mut stage = Fake::default();
        // Items 0..2 ok (batch 0), item 3 bad alone in batch 3 of size 1.
        let seen = drive(5, 1, 1, &mut stage).unwrap();
        assert_eq!(seen.len(), 5);
        assert!(seen[3].contains("err"));
        assert_eq!(stage.submitted, 4);
    }

    /// A GPU failure stops the run with that error (the decoders are not left hanging).
    #[test]
    fn a_stage_error_stops_the_run() {
        let mut stage = Fake {
            fail_at: Some(2),
            ..Default::default()
        };
        let err = drive(40, 2, 2, &mut stage).unwrap_err();
        assert!(err.to_string().contains("fake failure at batch 2"), "{err}");
    }

    /// Compaction keeps the good rows in order.
    #[test]
    fn compact_keeps_good_rows_in_order() {
        let mut buf: Vec<f32> = (0..8).map(|v| v as f32).collect();
        let status: Vec<Result<()>> = vec![
            Err(Error::Invalid("x".into())),
            Ok(()),
            Err(Error::Invalid("y".into())),
            Ok(()),
        ];
        assert_eq!(compact(&mut buf, &status, 2), 2);
        assert_eq!(&buf[..4], &[2.0, 3.0, 6.0, 7.0]);
    }
}
