//! A writer that stops at its first error: later writes, flushes and seeks succeed without
//! reaching the inner writer (on a position it keeps consistent, as zip computes sizes from
//! positions). For writers that finish their file in `drop`: zip's
//! `ZipWriter` (under `npyz`'s `NpzWriter`) writes its central directory when dropped and
//! prints "ZipWriter drop failed: ..." to standard error when that fails, so a full disk
//! (or a file-size limit) printed that line beside the real error. After the first error
//! the write has failed anyway: its caller returns that error and the temporary file is
//! removed, so what `drop` writes has nowhere to go.

use std::io::{self, Seek, SeekFrom, Write};

pub(crate) struct QuietSink<W> {
    inner: W,
    failed: bool,
    /// The position as the writer's user sees it, and the largest it has been (the end).
    pos: u64,
    end: u64,
}

impl<W> QuietSink<W> {
    pub(crate) fn new(inner: W) -> Self {
        QuietSink {
            inner,
            failed: false,
            pos: 0,
            end: 0,
        }
    }

    /// An error when any write failed: at the end of a write whose every error may not have
    /// reached its caller (one swallowed on the way would otherwise leave a cut file that
    /// looks written).
    pub(crate) fn check(&self) -> io::Result<()> {
        if self.failed {
            Err(io::Error::other("an earlier write to the file failed"))
        } else {
            Ok(())
        }
    }

    fn note<T>(&mut self, r: io::Result<T>) -> io::Result<T> {
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn moved_to(&mut self, pos: u64) {
        self.pos = pos;
        self.end = self.end.max(pos);
    }
}

impl<W: Write> Write for QuietSink<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.failed {
            self.moved_to(self.pos + buf.len() as u64);
            return Ok(buf.len());
        }
        let r = self.inner.write(buf);
        if let Ok(n) = r {
            self.moved_to(self.pos + n as u64);
        }
        self.note(r)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.failed {
            return Ok(());
        }
        let r = self.inner.flush();
        self.note(r)
    }
}

impl<W: Seek> Seek for QuietSink<W> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        if self.failed {
            let to = match pos {
                SeekFrom::Start(n) => Some(n),
                SeekFrom::Current(d) => self.pos.checked_add_signed(d),
                SeekFrom::End(d) => self.end.checked_add_signed(d),
            };
            let to = to.ok_or_else(|| io::Error::other("seek out of range"))?;
            self.moved_to(to);
            return Ok(to);
        }
        let r = self.inner.seek(pos);
        if let Ok(n) = r {
            self.moved_to(n);
        }
        self.note(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file that takes `room` bytes, then fails as a full disk does.
    struct Full {
        room: usize,
        written: usize,
    }

    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.written + buf.len() > self.room {
                return Err(io::Error::other("No space left on device"));
            }
            self.written += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Seek for Full {
        fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
            assert_eq!(
                pos,
                SeekFrom::Current(0),
                "only positions asked in this test"
            );
            Ok(self.written as u64)
        }
    }

    #[test]
    fn the_first_error_is_returned_and_nothing_reaches_the_writer_after_it() {
        let mut s = QuietSink::new(Full {
            room: 10,
            written: 0,
        });
        s.write_all(b"12345").unwrap();
        s.check().unwrap();
        assert!(s.write_all(b"678901").is_err(), "the error is returned");
        s.write_all(b"central directory").unwrap();
        s.flush().unwrap();
        // The position goes on from what was written: zip computes sizes from it.
        assert_eq!(s.stream_position().unwrap(), 5 + 17);
        assert_eq!(s.seek(SeekFrom::Start(2)).unwrap(), 2);
        assert_eq!(s.seek(SeekFrom::End(0)).unwrap(), 22);
        assert_eq!(
            s.inner.written, 5,
            "nothing after the error reached the file"
        );
        assert!(s.check().is_err(), "the failure is remembered");
    }
}
