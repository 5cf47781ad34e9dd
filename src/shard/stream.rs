//! Part files written as a stream (rows appended per batch), renamed into place when done.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fsutil::PendingFile;

/// A file written through a temporary file beside it and renamed into place by
/// [`StreamFile::finish`]; dropped unfinished (or on a signal), it leaves nothing.
pub struct StreamFile {
    pending: PendingFile,
    w: BufWriter<File>,
    dest: PathBuf,
}

impl StreamFile {
    /// A new temporary file for `dest`.
    pub fn create(dest: &Path) -> Result<StreamFile> {
        let mut pending = PendingFile::for_dest(dest)?;
        let file = pending
            .file_mut()
            .try_clone()
            .map_err(|e| Error::io(dest, e))?;
        Ok(StreamFile {
            pending,
            w: BufWriter::new(file),
            dest: dest.to_path_buf(),
        })
    }

    /// The buffered writer.
    pub fn writer(&mut self) -> &mut BufWriter<File> {
        &mut self.w
    }

    /// Flushes what was written so far to the temporary file (not to its final name).
    pub fn flush(&mut self) -> Result<()> {
        self.w.flush().map_err(|e| Error::io(&self.dest, e))
    }

    /// Writes `bytes`.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.w
            .write_all(bytes)
            .map_err(|e| Error::io(&self.dest, e))
    }

    /// Where the file goes when finished.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Syncs and renames the file to its destination.
    pub fn finish(mut self) -> Result<()> {
        self.flush()?;
        self.pending.persist(&self.dest)
    }
}

/// The `.npy` header we write: always 128 bytes, so the row count can be filled in at the end.
pub(super) const NPY_HEADER_LEN: usize = 128;

/// The 128-byte header of a little-endian float32 `[rows, cols]` `.npy` (C order).
pub fn npy_header(rows: usize, cols: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let mut h = b"\x93NUMPY\x01\x00".to_vec();
    let len = NPY_HEADER_LEN - 10;
    h.extend_from_slice(&(len as u16).to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h.resize(NPY_HEADER_LEN - 1, b' ');
    h.push(b'\n');
    h
}

/// A float32 `[rows, cols]` `.npy` written row by row (memory stays one batch whatever the row
/// count), renamed into place by [`NpyWriter::finish`].
pub struct NpyWriter {
    file: StreamFile,
    cols: usize,
    rows: usize,
}

impl NpyWriter {
    /// A `.npy` of `cols` columns for `dest`.
    pub fn create(dest: &Path, cols: usize) -> Result<NpyWriter> {
        let mut file = StreamFile::create(dest)?;
        file.write_all(&npy_header(0, cols))?;
        Ok(NpyWriter {
            file,
            cols,
            rows: 0,
        })
    }

    /// Appends whole rows (`data.len()` a multiple of `cols`).
    pub fn push(&mut self, data: &[f32]) -> Result<()> {
        assert!(
            data.len().is_multiple_of(self.cols),
            "NpyWriter::push: {} values are not whole rows of {}",
            data.len(),
            self.cols
        );
        self.rows += data.len().checked_div(self.cols).unwrap_or(0);
        for v in data {
            self.file.write_all(&v.to_le_bytes())?;
        }
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Writes the final shape into the header and renames the file into place.
    pub fn finish(mut self) -> Result<usize> {
        self.file.flush()?;
        let dest = self.file.dest.clone();
        let f = self.file.w.get_mut();
        f.seek(SeekFrom::Start(0))
            .and_then(|_| f.write_all(&npy_header(self.rows, self.cols)))
            .map_err(|e| Error::io(&dest, e))?;
        self.file.finish()?;
        Ok(self.rows)
    }
}

/// Reads the header of a C-order float32 2-D `.npy`: (`[rows, cols]`, offset of the data).
pub fn read_npy_header(path: &Path) -> Result<([usize; 2], u64)> {
    let bad = |m: String| {
        Error::input(
            path.to_path_buf(),
            crate::error::InputErrorKind::Malformed,
            m,
        )
    };
    let mut f = File::open(path).map_err(|e| Error::read(path, e))?;
    let mut pre = [0u8; 10];
    f.read_exact(&mut pre)
        .map_err(|_| bad("not a .npy file (too short)".into()))?;
    if &pre[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file (no \\x93NUMPY magic)".into()));
    }
    let (len, start) = match pre[6] {
        1 => (u16::from_le_bytes([pre[8], pre[9]]) as usize, 10u64),
        2 | 3 => {
            let mut more = [0u8; 2];
            f.read_exact(&mut more)
                .map_err(|_| bad("truncated .npy header".into()))?;
            (
                u32::from_le_bytes([pre[8], pre[9], more[0], more[1]]) as usize,
                12u64,
            )
        }
        v => return Err(bad(format!(".npy version {v} is not supported"))),
    };
    let mut dict = vec![0u8; len];
    f.read_exact(&mut dict)
        .map_err(|_| bad("truncated .npy header".into()))?;
    let dict = String::from_utf8_lossy(&dict).replace(' ', "");
    if !dict.contains("'descr':'<f4'") || !dict.contains("'fortran_order':False") {
        return Err(bad(format!(
            "expected a C-order float32 ('<f4') array, found header {dict}"
        )));
    }
    let shape = dict
        .split_once("'shape':(")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(s, _)| s)
        .ok_or_else(|| bad(format!("no shape in the .npy header {dict}")))?;
    let dims: Vec<usize> = shape
        .split(',')
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad(format!("bad shape in the .npy header {dict}")))?;
    match dims.as_slice() {
        [r, c] => Ok(([*r, *c], start + len as u64)),
        _ => Err(bad(format!("expected a 2-D array, found shape {dims:?}"))),
    }
}
