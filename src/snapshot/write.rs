//! Writing the flags file atomically: a temporary file in the same directory, written
//! and flushed to disk, then renamed over the target. A reader (a running evalgate's
//! reload poll) sees the old file or the new one, never half of one; on any failure the
//! old file is untouched and the temporary file is removed.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Writes `bytes` to `path` atomically. The error is one line naming the path.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| format!("{}: not a file name", path.display()))?;
    if path.is_dir() {
        return Err(format!("{}: is a directory", path.display()));
    }
    let (temp, mut file) = create_temp(&dir, &name.to_string_lossy())?;
    let result = (|| {
        // Keep the permissions of the file being replaced (it may have been made readable
        // for a service user on purpose).
        if let Ok(meta) = std::fs::metadata(path) {
            file.set_permissions(meta.permissions())
                .map_err(|e| format!("{}: {e}", temp.display()))?;
        }
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| format!("cannot write {}: {e}", temp.display()))?;
        drop(file);
        std::fs::rename(&temp, path).map_err(|e| {
            format!(
                "cannot rename {} to {}: {e}",
                temp.display(),
                path.display()
            )
        })
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
        return result;
    }
    // The rename itself reaches the disk with the directory (best effort: not every
    // platform lets a directory be opened for this).
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A new, empty temporary file beside the target: `.NAME.tmp-PID-N`.
fn create_temp(dir: &Path, name: &str) -> Result<(PathBuf, File), String> {
    static N: AtomicUsize = AtomicUsize::new(0);
    loop {
        let n = N.fetch_add(1, Ordering::Relaxed);
        let temp = dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&temp) {
            Ok(file) => return Ok((temp, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("cannot create a file in {}: {e}", dir.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("evalgate-write-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn replaces_the_file_and_leaves_no_temporary_file() {
        let dir = scratch("replace");
        let path = dir.join("flags.json");
        std::fs::write(&path, b"old").unwrap();
        write_atomically(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["flags.json"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_or_a_missing_directory_is_an_error() {
        let dir = scratch("errors");
        assert!(
            write_atomically(&dir, b"x")
                .unwrap_err()
                .contains("is a directory")
        );
        let missing = dir.join("nope").join("flags.json");
        assert!(
            write_atomically(&missing, b"x")
                .unwrap_err()
                .contains("cannot create")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
