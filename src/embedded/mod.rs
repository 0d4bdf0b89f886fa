//! The embedded evaluation server: answers the evaluation API in-process from flags
//! files, so evalgate works with no outside service (`upstream.url = "embedded"`). Each
//! deployment key sees the flags of its file (`[[embedded.deployments]]`, or the one file
//! of `embedded.flags_file` for every key of `embedded.deployment_keys`).
//!
//! It speaks the same HTTP semantics as Amplitude's service (401 for a missing or unknown
//! deployment key, 400 for an invalid user, 200 otherwise) and is reached through the same
//! [`crate::upstream::Upstream`] interface as an HTTP upstream, so caching, coalescing and
//! bypasses behave identically in front of it. Evaluation itself is [`crate::eval`].

mod handler;
mod reload;

pub use reload::watch_flags;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use crate::eval::Flags;
use crate::mask::Masked;

/// The flag sets served, one per flags file, and the deployment keys allowed to read
/// each. Cheap to clone.
#[derive(Clone)]
pub struct Embedded {
    inner: Arc<Inner>,
}

struct Inner {
    /// One per flags file, in config order.
    files: Vec<FlagsFile>,
    /// Each deployment key's file (an index into `files`).
    by_key: HashMap<String, usize>,
    /// Requests answered, for tests and stats.
    answered: AtomicU64,
}

/// One flags file and the keys that see it; reloaded on its own.
struct FlagsFile {
    path: PathBuf,
    /// Sorted.
    keys: Vec<String>,
    /// Swapped whole on reload; readers hold the `Arc` for one evaluation. A std lock:
    /// held for a pointer copy, never across an await.
    flags: RwLock<Loaded>,
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

/// Modification time, length and inode: a cheap "did the file change" test.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct FileStamp(Option<SystemTime>, u64, u64);

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

impl FlagsFileError {
    /// The file at fault.
    pub fn path(&self) -> &str {
        match self {
            FlagsFileError::Read { path, .. } | FlagsFileError::Invalid { path, .. } => path,
        }
    }
}

/// One flags file's state, for logs, `/admin/stats` and the status page.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileStatus {
    pub flags_file: String,
    pub flags: usize,
    /// The deployment keys that see it, masked.
    pub deployments: Vec<String>,
    /// The first 64 bits of its SHA-256, hex.
    pub digest: String,
}

/// What a reload poll found for one file.
pub enum Reload {
    /// New flags are served to these keys.
    Reloaded(Vec<String>),
    /// The file changed but cannot be used; its previous flags keep serving.
    Rejected(FlagsFileError),
}

impl Embedded {
    /// Loads one flags file served to `keys`; fails if it cannot be read or parsed.
    pub fn load(flags_file: &Path, keys: &[String]) -> Result<Embedded, FlagsFileError> {
        Embedded::load_files(&[(flags_file.to_path_buf(), keys.to_vec())])
    }

    /// Loads every flags file, each served to its keys (`EmbeddedConfig::files`); fails
    /// on the first that cannot be read or parsed. A key must appear once.
    pub fn load_files(files: &[(PathBuf, Vec<String>)]) -> Result<Embedded, FlagsFileError> {
        let mut loaded = Vec::with_capacity(files.len());
        let mut by_key = HashMap::new();
        for (i, (path, keys)) in files.iter().enumerate() {
            let mut keys = keys.clone();
            keys.sort_unstable();
            for key in &keys {
                by_key.insert(key.clone(), i);
            }
            loaded.push(FlagsFile {
                path: path.clone(),
                keys,
                flags: RwLock::new(read(path)?),
            });
        }
        Ok(Embedded {
            inner: Arc::new(Inner {
                files: loaded,
                by_key,
                answered: AtomicU64::new(0),
            }),
        })
    }

    /// The flags `key` sees, or `None` for a key this server does not know.
    pub fn flags_for(&self, key: &str) -> Option<Arc<Flags>> {
        let file = self.file_of(key)?;
        Some(file.read_lock().flags.clone())
    }

    /// A digest of the flags `key` sees now (changes when its file's new flags are
    /// loaded); `None` for an unknown key.
    pub fn digest_for(&self, key: &str) -> Option<u64> {
        Some(self.file_of(key)?.read_lock().digest)
    }

    /// Requests answered so far (every status).
    pub fn answered(&self) -> u64 {
        self.inner.answered.load(Ordering::Relaxed)
    }

    /// The deployment keys this server answers.
    pub fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.inner.by_key.keys().map(String::as_str).collect();
        keys.sort_unstable();
        keys
    }

    /// Whether `key` is a deployment key of this server.
    pub fn knows(&self, key: &str) -> bool {
        self.inner.by_key.contains_key(key)
    }

    /// How many flags files are served.
    pub fn file_count(&self) -> usize {
        self.inner.files.len()
    }

    /// Each file's path, flag count and (masked) keys, in config order.
    pub fn status(&self) -> Vec<FileStatus> {
        self.inner.files.iter().map(FlagsFile::status).collect()
    }

    /// Re-reads every flags file that changed on disk, each on its own: a bad file keeps
    /// its previous flags and does not hold back the others.
    pub fn reload_changed(&self) -> Vec<(FileStatus, Reload)> {
        let mut out = Vec::new();
        for file in &self.inner.files {
            match file.reload_if_changed() {
                Ok(false) => {}
                Ok(true) => out.push((file.status(), Reload::Reloaded(file.keys.clone()))),
                Err(e) => out.push((file.status(), Reload::Rejected(e))),
            }
        }
        out
    }

    fn file_of(&self, key: &str) -> Option<&FlagsFile> {
        let i = *self.inner.by_key.get(key)?;
        self.inner.files.get(i)
    }
}

impl FlagsFile {
    fn status(&self) -> FileStatus {
        let loaded = self.read_lock();
        FileStatus {
            flags_file: self.path.display().to_string(),
            flags: loaded.flags.len(),
            deployments: self.keys.iter().map(|k| Masked(k).to_string()).collect(),
            digest: format!("{:016x}", loaded.digest),
        }
    }

    /// Re-reads the file if it changed on disk. `Ok(true)` when new flags are now
    /// served; on error the old flags keep serving.
    fn reload_if_changed(&self) -> Result<bool, FlagsFileError> {
        let current = self.read_lock().stamp;
        if stamp(&self.path) == current {
            return Ok(false);
        }
        let loaded = match read(&self.path) {
            Ok(loaded) => loaded,
            Err(e) => {
                // Remember the bad version so it is reported once, not on every poll.
                self.flags.write().unwrap_or_else(|e| e.into_inner()).stamp = stamp(&self.path);
                return Err(e);
            }
        };
        *self.flags.write().unwrap_or_else(|e| e.into_inner()) = loaded;
        Ok(true)
    }

    fn read_lock(&self) -> std::sync::RwLockReadGuard<'_, Loaded> {
        self.flags.read().unwrap_or_else(|e| e.into_inner())
    }
}

fn stamp(path: &Path) -> FileStamp {
    match std::fs::metadata(path) {
        // The inode too: a same-size file renamed into place within the filesystem's
        // mtime granularity (what `evalgate snapshot` does) is still noticed.
        Ok(m) => FileStamp(
            m.modified().ok(),
            m.len(),
            std::os::unix::fs::MetadataExt::ino(&m),
        ),
        Err(_) => FileStamp(None, 0, 0),
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
