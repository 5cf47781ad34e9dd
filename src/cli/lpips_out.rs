//! The outputs of `alexnet lpips`, written as the pairs come rather than collected: the rows
//! (table, JSON, JSON lines or CSV) to a file renamed into place when done or to standard
//! output, flushed after every batch or band of pairs; and the `--all-pairs` matrix as a
//! `.npy` on disk, filled at its offsets band by band. Memory is one band whatever the number
//! of pairs: before, `--all-pairs` over 20,000 images held the 1.6 GB matrix and the text of
//! 200 million rows.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Stdout, Write};
use std::path::{Path, PathBuf};

use alexnet_wgpu::fsutil::PendingFile;
use alexnet_wgpu::lpips::{Distance, Lin, PairBlock};
use alexnet_wgpu::shard::{npy_header, StreamFile};
use alexnet_wgpu::{Error, Result};

/// The text formats of the rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Jsonl,
    Csv,
}

/// One computed pair, for the output.
pub struct Row {
    pub a: String,
    pub b: String,
    pub d: Distance,
    pub spatial: Option<PathBuf>,
}

enum Dest {
    /// `--out FILE`: a temporary file beside it, renamed into place by [`RowWriter::finish`].
    File(StreamFile),
    Stdout(BufWriter<Stdout>),
}

/// The rows in one of the formats, written one at a time. JSON is the one format with a frame
/// (`[`, commas, `]`): it is written around the rows, so that the text is the same as a
/// pretty-printed array of them.
pub struct RowWriter {
    dest: Dest,
    format: Format,
    per_layer: bool,
    lin: Lin,
    rows: usize,
}

impl RowWriter {
    /// A writer to `out` (or standard output); the CSV header has the per-layer columns when
    /// `per_layer` and a `spatial` column when `spatial`.
    pub fn create(
        out: Option<&Path>,
        format: Format,
        per_layer: bool,
        lin: Lin,
        spatial: bool,
    ) -> Result<RowWriter> {
        let dest = match out {
            Some(path) => Dest::File(StreamFile::create(path)?),
            None => Dest::Stdout(BufWriter::new(std::io::stdout())),
        };
        let mut w = RowWriter {
            dest,
            format,
            per_layer,
            lin,
            rows: 0,
        };
        if format == Format::Csv {
            let mut header = "a,b,distance".to_string();
            if per_layer {
                header += ",layer0,layer1,layer2,layer3,layer4";
            }
            if spatial {
                header += ",spatial";
            }
            w.write(&(header + "\n"))?;
        }
        Ok(w)
    }

    fn write(&mut self, text: &str) -> Result<()> {
        match &mut self.dest {
            Dest::File(f) => f.write_all(text.as_bytes()),
            Dest::Stdout(w) => w
                .write_all(text.as_bytes())
                .map_err(|e| Error::io(Path::new("<stdout>"), e)),
        }
    }

    pub fn row(&mut self, r: &Row) -> Result<()> {
        let mut s = String::new();
        match self.format {
            Format::Table => {
                s += &format!("{:.6}  {}  {}", r.d.distance, r.a, r.b);
                if self.per_layer {
                    let l: Vec<String> = r.d.layers.iter().map(|v| format!("{v:.6}")).collect();
                    s += &format!("  [{}]", l.join(" "));
                }
                s.push('\n');
            }
            Format::Json => {
                s += if self.rows == 0 { "[\n" } else { ",\n" };
                let value = serde_json::to_string_pretty(&self.json(r)).expect("plain JSON");
                let lines: Vec<String> = value.lines().map(|l| format!("  {l}")).collect();
                s += &lines.join("\n");
            }
            Format::Jsonl => s += &format!("{}\n", self.json(r)),
            Format::Csv => {
                s += &format!("{},{},{}", csv_field(&r.a), csv_field(&r.b), r.d.distance);
                if self.per_layer {
                    for v in r.d.layers {
                        s += &format!(",{v}");
                    }
                }
                if let Some(p) = &r.spatial {
                    s += &format!(",{}", csv_field(&p.display().to_string()));
                }
                s.push('\n');
            }
        }
        self.rows += 1;
        self.write(&s)
    }

    fn json(&self, r: &Row) -> serde_json::Value {
        let mut v = serde_json::json!({
            "a": r.a, "b": r.b, "lin": self.lin.name(), "distance": r.d.distance
        });
        if self.per_layer {
            v["layers"] = serde_json::json!(r.d.layers);
        }
        if let Some(p) = &r.spatial {
            v["spatial"] = serde_json::json!(p.display().to_string());
        }
        v
    }

    /// Hands what was written so far on (to the temporary file or standard output): after each
    /// batch, so that `jsonl` and `csv` readers see rows as they come.
    pub fn flush(&mut self) -> Result<()> {
        match &mut self.dest {
            Dest::File(f) => f.flush(),
            Dest::Stdout(w) => w.flush().map_err(|e| Error::io(Path::new("<stdout>"), e)),
        }
    }

    /// Closes the JSON array and renames `--out` into place; returns the number of rows.
    pub fn finish(mut self) -> Result<usize> {
        if self.format == Format::Json {
            let end = if self.rows == 0 { "[]\n" } else { "\n]\n" };
            self.write(end)?;
        }
        self.flush()?;
        if let Dest::File(f) = self.dest {
            f.finish()?;
        }
        Ok(self.rows)
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The `[n, n]` float32 matrix of `--all-pairs --matrix-out`, on disk from the start: a
/// temporary file of its final size (zeros, so the diagonal is done), each band of rows written
/// at its offsets (row i's pairs j > i in one write, and their mirror images (j, i) one write
/// per later row j), then synced and renamed into place. A band of rows is all it holds.
pub struct MatrixNpy {
    file: PendingFile,
    dest: PathBuf,
    n: usize,
}

impl MatrixNpy {
    pub fn create(dest: &Path, n: usize) -> Result<MatrixNpy> {
        let mut file = PendingFile::for_dest(dest)?;
        let header = npy_header(n, n);
        let len = header.len() as u64 + (n as u64 * n as u64) * 4;
        let f = file.file_mut();
        f.write_all(&header)
            .and_then(|_| f.set_len(len))
            .map_err(|e| Error::io(dest, e))?;
        Ok(MatrixNpy {
            file,
            dest: dest.to_path_buf(),
            n,
        })
    }

    fn write_at(f: &mut File, dest: &Path, cell: usize, values: &[f32]) -> Result<()> {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let at = npy_header(0, 0).len() as u64 + cell as u64 * 4;
        f.seek(SeekFrom::Start(at))
            .and_then(|_| f.write_all(&bytes))
            .map_err(|e| Error::io(dest, e))
    }

    /// Writes a band: whole rows `rows` of the upper triangle in (i, j) order, as
    /// `Lpips::matrix_blocks` hands them on.
    pub fn band(&mut self, band: &PairBlock) -> Result<()> {
        let n = self.n;
        let (r0, r1) = (band.rows.start, band.rows.end);
        // Where row i's pairs start in the band.
        let starts: Vec<usize> = (r0..r1)
            .scan(0, |at, i| {
                let s = *at;
                *at += n - i - 1;
                Some(s)
            })
            .collect();
        let whole = (r0..r1).map(|i| n - i - 1).sum::<usize>();
        if band.pairs.len() != whole || band.pairs.first().is_some_and(|p| p.0 != r0) {
            return Err(Error::Invalid(format!(
                "{}: a band of rows {r0}..{r1} should hold {whole} pairs from row {r0}, found {}",
                self.dest.display(),
                band.pairs.len()
            )));
        }
        let value = |i: usize, j: usize| band.pairs[starts[i - r0] + j - i - 1].2.distance;
        let f = self.file.file_mut();
        for i in r0..r1 {
            let row: Vec<f32> = (i + 1..n).map(|j| value(i, j)).collect();
            Self::write_at(f, &self.dest, i * n + i + 1, &row)?;
        }
        for j in r0 + 1..n {
            let column: Vec<f32> = (r0..j.min(r1)).map(|i| value(i, j)).collect();
            Self::write_at(f, &self.dest, j * n + r0, &column)?;
        }
        Ok(())
    }

    /// Syncs the file and renames it into place.
    pub fn finish(self) -> Result<()> {
        self.file.persist(&self.dest)
    }
}
