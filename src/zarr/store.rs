//! The store the Zarr writer writes through: a folder, every file written
//! atomically, an unchanged file left alone.
//!
//! zarrs encodes chunks (and shards) and serialises array metadata, then hands
//! the bytes for a key to [`WritableStorageTraits::set`]. Here that becomes:
//! if the file at the key already holds exactly these bytes, nothing is written
//! (a rerun after an interruption rewrites only what is missing or different);
//! otherwise the bytes go to a temporary file in the same folder, renamed into
//! place (`crate::writer::write_atomically`), so a kill leaves either the old
//! file or the new one under the key, never a torn one. Temporary files of a
//! killed run are recognisable by name and removed by [`sweep_temps`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use zarrs::storage::{Bytes, StorageError, StoreKey, StorePrefix, WritableStorageTraits};

use crate::writer::{is_temp_name, write_atomically};

/// A store rooted at a folder; see the module docs.
#[derive(Debug)]
pub(crate) struct AtomicFolder {
    root: PathBuf,
    written: AtomicUsize,
    unchanged: AtomicUsize,
}

impl AtomicFolder {
    pub fn new(root: impl Into<PathBuf>) -> AtomicFolder {
        AtomicFolder {
            root: root.into(),
            written: AtomicUsize::new(0),
            unchanged: AtomicUsize::new(0),
        }
    }

    /// The file of `key`.
    pub fn path_of(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// Files written so far, and files found already holding their bytes.
    pub fn counts(&self) -> (usize, usize) {
        (
            self.written.load(Ordering::Relaxed),
            self.unchanged.load(Ordering::Relaxed),
        )
    }

    /// Writes `bytes` at `key` unless the file already holds them; says whether it wrote.
    pub fn put(&self, key: &str, bytes: &[u8]) -> Result<bool, crate::Error> {
        let path = self.path_of(key);
        if holds(&path, bytes) {
            self.unchanged.fetch_add(1, Ordering::Relaxed);
            return Ok(false);
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| crate::Error::io(dir, "cannot create store directory", e))?;
        }
        write_atomically(&path, |file| file.write_all(bytes))?;
        self.written.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }
}

/// Whether the file at `path` exists and holds exactly `bytes` (read only if
/// its size already matches).
fn holds(path: &Path, bytes: &[u8]) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == bytes.len() as u64)
        && std::fs::read(path).is_ok_and(|old| old == bytes)
}

/// A ctstack error as zarrs' storage error, the message kept whole.
fn storage_error(e: crate::Error) -> StorageError {
    StorageError::IOError(Arc::new(std::io::Error::other(e.to_string())))
}

impl WritableStorageTraits for AtomicFolder {
    fn set(&self, key: &StoreKey, value: Bytes) -> Result<(), StorageError> {
        self.put(key.as_str(), &value)
            .map(|_| ())
            .map_err(storage_error)
    }

    fn set_partial_many(
        &self,
        key: &StoreKey,
        _offset_values: zarrs::storage::OffsetBytesIterator,
    ) -> Result<(), StorageError> {
        // supports_set_partial() is false, so zarrs never asks.
        Err(StorageError::IOError(Arc::new(std::io::Error::other(
            format!("{key}: partial writes are not supported by ctstack's store"),
        ))))
    }

    fn erase(&self, key: &StoreKey) -> Result<(), StorageError> {
        match crate::fs_retry::remove_with_retry(&self.path_of(key.as_str())) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Arc::new(e).into()),
            _ => Ok(()),
        }
    }

    fn erase_prefix(&self, prefix: &StorePrefix) -> Result<(), StorageError> {
        match std::fs::remove_dir_all(self.path_of(prefix.as_str())) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Arc::new(e).into()),
            _ => Ok(()),
        }
    }

    fn supports_set_partial(&self) -> bool {
        false
    }
}

/// Removes ctstack's temporary files (a killed run's) anywhere under `dir`;
/// returns how many. Symbolic links are not followed.
pub(crate) fn sweep_temps(dir: &Path) -> usize {
    let mut removed = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file()
                && is_temp_name(&entry.file_name().to_string_lossy())
                && std::fs::remove_file(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    removed
}
