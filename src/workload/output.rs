//! Where a workload goes, within `--max-output-bytes`, whole or not at all.
//!
//! A file is written to a temporary file beside it and renamed over it only when complete
//! and within the bound, so an existing file is never half-replaced. Standard output
//! cannot be taken back, so the workload is first generated into a counter (generation
//! is deterministic and cheap next to the load test it feeds) and written only when it
//! fits.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// A writer that refuses to go past `limit` bytes in total.
pub struct Bounded<W> {
    inner: W,
    limit: u64,
    written: u64,
}

/// The error [`Bounded`] returns once the bound would be passed.
#[derive(Debug)]
pub struct OverLimit;

impl std::fmt::Display for OverLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("output over --max-output-bytes")
    }
}

impl std::error::Error for OverLimit {}

/// Whether `e` is [`Bounded`]'s refusal.
pub fn is_over_limit(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<OverLimit>())
}

impl<W> Bounded<W> {
    pub fn new(inner: W, limit: u64) -> Bounded<W> {
        Bounded {
            inner,
            limit,
            written: 0,
        }
    }

    pub fn written(&self) -> u64 {
        self.written
    }
}

impl<W: Write> Write for Bounded<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written + buf.len() as u64 > self.limit {
            return Err(io::Error::other(OverLimit));
        }
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Runs `generate` into `path` atomically: a temporary file in the same directory,
/// renamed over `path` once `generate` succeeded; removed on any error. Returns what
/// `generate` returned and the bytes written.
pub fn to_file<T>(
    path: &Path,
    limit: u64,
    generate: impl FnOnce(&mut dyn Write) -> io::Result<T>,
) -> io::Result<(T, u64)> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let temp = tempfile::Builder::new()
        .prefix(".evalgate-workload-")
        .tempfile_in(dir)?;
    let file: &File = temp.as_file();
    let mut out = Bounded::new(BufWriter::new(file), limit);
    let value = generate(&mut out)?;
    out.flush()?;
    let written = out.written();
    drop(out);
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok((value, written))
}

/// Runs `generate` twice: into a counter to check the bound, then into standard output.
pub fn to_stdout<T>(
    limit: u64,
    mut generate: impl FnMut(&mut dyn Write) -> io::Result<T>,
) -> io::Result<(T, u64)> {
    let mut counter = Bounded::new(io::sink(), limit);
    generate(&mut counter)?;
    let stdout = io::stdout();
    let mut out = Bounded::new(BufWriter::new(stdout.lock()), limit);
    let value = generate(&mut out)?;
    out.flush()?;
    Ok((value, out.written()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_refuses_past_the_limit() {
        let mut b = Bounded::new(Vec::new(), 5);
        b.write_all(b"abc").unwrap();
        let e = b.write_all(b"def").unwrap_err();
        assert!(is_over_limit(&e));
        assert_eq!(b.written(), 3);
        assert!(!is_over_limit(&io::Error::other("x")));
    }

    #[test]
    fn a_file_is_replaced_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        std::fs::write(&path, "old").unwrap();
        let e = to_file(&path, 4, |w| w.write_all(b"too long")).unwrap_err();
        assert!(is_over_limit(&e));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        let ((), n) = to_file(&path, 4, |w| w.write_all(b"new")).unwrap();
        assert_eq!(n, 3);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left behind");
    }
}
