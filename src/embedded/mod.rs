//! The embedded evaluation server: answers the evaluation API in-process from a flags
//! file, so evalgate works with no outside service (`upstream.url = "embedded"`).
//!
//! It speaks the same HTTP semantics as Amplitude's service (401 for a missing or unknown
//! deployment key, 400 for an invalid user, 200 otherwise) and is reached through the same
//! [`crate::upstream::Upstream`] interface as an HTTP upstream, so caching, coalescing and
//! bypasses behave identically in front of it. Evaluation itself is [`crate::eval`].

mod handler;
mod reload;

pub use reload::watch_flags;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use crate::eval::Flags;

/// The flag set served, and the deployment keys allowed to read it. Cheap to clone.
#[derive(Clone)]
pub struct Embedded {
    inner: Arc<Inner>,
}

struct Inner {
    flags_file: PathBuf,
    keys: HashSet<String>,
    /// Swapped whole on reload; readers hold the `Arc` for one evaluation. A std lock:
    /// held for a pointer copy, never across an await.
    flags: RwLock<Loaded>,
    /// Requests answered, for tests and stats.
    answered: AtomicU64,
}

#[derive(Clone)]
struct Loaded {
    flags: Arc<Flags>,
    /// What the file looked like when read, to notice changes.
    stamp: FileStamp,
    /// The first 64 bits of the file's SHA-256: instances serving the same flags have the
    /// same digest (the shared cache tier folds it into every name).
    digest: u64,
}

/// Modification time and length: a cheap "did the file change" test.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct FileStamp(Option<SystemTime>, u64);

/// A flags file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FlagsFileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl Embedded {
    /// Loads the flags file; fails if it cannot be read or parsed.
    pub fn load(flags_file: &Path, keys: &[String]) -> Result<Embedded, FlagsFileError> {
        let loaded = read(flags_file)?;
        Ok(Embedded {
            inner: Arc::new(Inner {
                flags_file: flags_file.to_path_buf(),
                keys: keys.iter().cloned().collect(),
                flags: RwLock::new(loaded),
                answered: AtomicU64::new(0),
            }),
        })
    }

    /// The flags currently served.
    pub fn flags(&self) -> Arc<Flags> {
        self.read_lock().flags.clone()
    }

    /// A digest of the flags file served now (changes when new flags are loaded).
    pub fn digest(&self) -> u64 {
        self.read_lock().digest
    }

    pub fn flags_file(&self) -> &Path {
        &self.inner.flags_file
    }

    /// Requests answered so far (every status).
    pub fn answered(&self) -> u64 {
        self.inner.answered.load(Ordering::Relaxed)
    }

    /// The deployment keys this server answers.
    pub fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.inner.keys.iter().map(String::as_str).collect();
        keys.sort_unstable();
        keys
    }

    /// Whether `key` is a deployment key of this server.
    pub fn knows(&self, key: &str) -> bool {
        self.inner.keys.contains(key)
    }

    /// Re-reads the flags file if it changed on disk. `Ok(true)` when new flags are now
    /// served; on error the old flags keep serving.
    pub fn reload_if_changed(&self) -> Result<bool, FlagsFileError> {
        let current = self.read_lock().stamp;
        if stamp(&self.inner.flags_file) == current {
            return Ok(false);
        }
        let loaded = match read(&self.inner.flags_file) {
            Ok(loaded) => loaded,
            Err(e) => {
                // Remember the bad version so it is reported once, not on every poll.
                self.inner
                    .flags
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .stamp = stamp(&self.inner.flags_file);
                return Err(e);
            }
        };
        *self.inner.flags.write().unwrap_or_else(|e| e.into_inner()) = loaded;
        Ok(true)
    }

    fn read_lock(&self) -> std::sync::RwLockReadGuard<'_, Loaded> {
        self.inner.flags.read().unwrap_or_else(|e| e.into_inner())
    }
}

fn stamp(path: &Path) -> FileStamp {
    match std::fs::metadata(path) {
        Ok(m) => FileStamp(m.modified().ok(), m.len()),
        Err(_) => FileStamp(None, 0),
    }
}

fn read(path: &Path) -> Result<Loaded, FlagsFileError> {
    let display = path.display().to_string();
    let before = stamp(path);
    let bytes = std::fs::read(path).map_err(|source| FlagsFileError::Read {
        path: display.clone(),
        source,
    })?;
    let flags = Flags::from_json(&bytes).map_err(|e| FlagsFileError::Invalid {
        path: display,
        message: e.to_string(),
    })?;
    let sum = ring::digest::digest(&ring::digest::SHA256, &bytes);
    Ok(Loaded {
        flags: Arc::new(flags),
        stamp: before,
        digest: u64::from_be_bytes(sum.as_ref()[..8].try_into().expect("32-byte digest")),
    })
}
