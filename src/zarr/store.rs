//! The store the Zarr writer writes through: a folder, every file written
//! atomically, an unchanged file left alone, and no array readable while its
//! chunks change.
//!
//! zarrs encodes chunks (and shards) and hands the bytes for a key to
//! [`WritableStorageTraits::set`]. Here that becomes: if the file at the key
//! already holds exactly these bytes, nothing is written (a rerun after an
//! interruption rewrites only what is missing or different); otherwise the
//! bytes go to a temporary file in the same folder, renamed into place
//! (`crate::writer::write_atomically`), so a kill leaves either the old file or
//! the new one under the key, never a torn one. Temporary files of a killed run
//! are recognisable by name and removed by [`sweep_temps`].
//!
//! Before the first chunk that changes, the store is *withdrawn* once
//! ([`Withdrawal`]): the root group is marked incomplete and every array's own
//! metadata (`zarr.json`, `.zarray`, `.zattrs`) is removed, durably (the folders
//! synced), so that from then until the writer puts the metadata back (after
//! the last chunk, see `ZarrPlan::finish`) no array path opens as an array, in
//! any reader. Array and group metadata are written by [`AtomicFolder::put_metadata`]:
//! data synced before the rename, the folder synced after.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use zarrs::array::ArrayError;
use zarrs::array::codec::api::CodecError;
use zarrs::storage::{Bytes, StorageError, StoreKey, StorePrefix, WritableStorageTraits};

use crate::Error;
use crate::durable::{start_writeback, sync_dir, sync_path};
use crate::temp::temp_target;
use crate::writer::write_atomically;

/// The names of an array's own metadata files, in both Zarr versions: what
/// makes a folder open as an array.
pub(crate) const ARRAY_METADATA: [&str; 3] = ["zarr.json", ".zarray", ".zattrs"];

/// What withdrawing the store means: the root group files that mark it
/// incomplete, and the level folders whose array metadata goes.
#[derive(Debug, Clone)]
pub(crate) struct Withdrawal {
    /// `(key, bytes)` of the root group marked incomplete.
    pub root: Vec<(&'static str, Vec<u8>)>,
    /// The level folders' keys (`"0"`, `"1"`, ...).
    pub levels: Vec<String>,
}

/// A store rooted at a folder; see the module docs.
#[derive(Debug)]
pub(crate) struct AtomicFolder {
    root: PathBuf,
    /// Chunk (shard) files written, and found already holding their bytes.
    chunks_written: AtomicUsize,
    chunks_unchanged: AtomicUsize,
    /// Metadata keys written, and found unchanged, in this run: a key written
    /// twice (the root group, first incomplete, then complete) is one file.
    metadata_written: Mutex<BTreeSet<String>>,
    metadata_unchanged: Mutex<BTreeSet<String>>,
    withdrawal: Option<Withdrawal>,
    withdrawn: OnceLock<Result<(), String>>,
}

impl AtomicFolder {
    /// A store whose chunk writes first withdraw it as `withdrawal` says.
    pub fn new(root: impl Into<PathBuf>, withdrawal: Withdrawal) -> AtomicFolder {
        AtomicFolder {
            root: root.into(),
            chunks_written: AtomicUsize::new(0),
            chunks_unchanged: AtomicUsize::new(0),
            metadata_written: Mutex::default(),
            metadata_unchanged: Mutex::default(),
            withdrawal: Some(withdrawal),
            withdrawn: OnceLock::new(),
        }
    }

    /// The file of `key`.
    pub fn path_of(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// Files written so far, and files found already holding their bytes (a
    /// file written at least once is not counted as unchanged).
    pub fn counts(&self) -> (usize, usize) {
        let written = self
            .metadata_written
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let unchanged = self
            .metadata_unchanged
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        (
            self.chunks_written.load(Ordering::Relaxed) + written.len(),
            self.chunks_unchanged.load(Ordering::Relaxed) + unchanged.difference(&written).count(),
        )
    }

    /// Withdraws the store (once per run; see the module docs), as a chunk is
    /// about to change.
    pub fn withdraw(&self) -> Result<(), Error> {
        let Some(withdrawal) = &self.withdrawal else {
            return Ok(());
        };
        let result = self.withdrawn.get_or_init(|| {
            self.withdraw_as(&withdrawal.root)
                .map_err(|e| e.to_string())
        });
        result
            .clone()
            .map_err(|what| Error::state(&self.root, format!("cannot withdraw the store: {what}")))
    }

    /// Withdraws the store with `root` as the root group's files: the record
    /// removed, the root group written as `root` says (marked incomplete), every
    /// level's array metadata removed, each durably. The plan clears chunks of
    /// another layout after withdrawing with the root still recording the
    /// layout they have (a run killed before they are gone then clears them
    /// again), and records the new layout only after.
    pub fn withdraw_as(&self, root: &[(&'static str, Vec<u8>)]) -> Result<(), Error> {
        // The record that vouches for the store goes first (`record.rs`).
        if remove_file_if_there(&self.path_of(super::record::RECORD_FILE))? {
            sync_dir(&self.root)?;
        }
        for (key, bytes) in root {
            self.put_metadata(key, bytes)?;
        }
        let levels = self.withdrawal.as_ref().map_or(&[][..], |w| &w.levels[..]);
        for level in levels {
            let dir = self.path_of(level);
            let mut removed = false;
            for name in ARRAY_METADATA {
                removed |= remove_file_if_there(&dir.join(name))?;
            }
            if removed {
                sync_dir(&dir)?;
            }
        }
        Ok(())
    }

    /// Writes chunk `bytes` at `key` unless the file already holds them,
    /// withdrawing the store first; says whether it wrote. Not synced: the
    /// plan syncs every chunk before the metadata that vouches for it.
    fn put_chunk(&self, key: &str, bytes: &[u8]) -> Result<bool, Error> {
        let path = self.path_of(key);
        if holds(&path, bytes) {
            self.chunks_unchanged.fetch_add(1, Ordering::Relaxed);
            return Ok(false);
        }
        self.withdraw()?;
        create_parent(&path)?;
        write_atomically(&path, |file| {
            file.write_all(bytes)?;
            // The disk starts on it now; the plan's batch sync waits for it.
            start_writeback(file);
            Ok(())
        })?;
        self.chunks_written.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }

    /// Writes metadata `bytes` at `key` unless the file already holds them:
    /// synced before the rename, its folder synced after. Says whether it wrote.
    pub fn put_metadata(&self, key: &str, bytes: &[u8]) -> Result<bool, Error> {
        let path = self.path_of(key);
        if holds(&path, bytes) {
            lock(&self.metadata_unchanged).insert(key.to_string());
            return Ok(false);
        }
        let dir = create_parent(&path)?;
        write_atomically(&path, |file| {
            file.write_all(bytes)?;
            file.sync_data()
        })?;
        sync_dir(&dir)?;
        lock(&self.metadata_written).insert(key.to_string());
        Ok(true)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Creates `path`'s folder if needed; returns it.
fn create_parent(path: &Path) -> Result<PathBuf, Error> {
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(&dir, "cannot create store directory", e))?;
    Ok(dir)
}

/// Whether the file at `path` exists and holds exactly `bytes` (read only if
/// its size already matches).
pub(crate) fn holds(path: &Path, bytes: &[u8]) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == bytes.len() as u64)
        && std::fs::read(path).is_ok_and(|old| old == bytes)
}

/// Removes the file at `path` if there is one; says whether it did.
pub(crate) fn remove_file_if_there(path: &Path) -> Result<bool, Error> {
    match crate::writer::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(path, "cannot remove", e)),
    }
}

/// A ctstack error as zarrs' storage error: carried whole inside it (kind,
/// file and source), for [`from_zarrs`] to take back out.
fn storage_error(e: Error) -> StorageError {
    StorageError::IOError(Arc::new(std::io::Error::other(e)))
}

/// zarrs' error from storing through an [`AtomicFolder`] (`what` at `path`),
/// as a ctstack error: the store's own error (which names its file and keeps
/// its kind and source) when it carries one, else an [`Error::Io`] whose
/// source is zarrs' error.
pub(super) fn from_zarrs(e: ArrayError, path: &Path, what: &str) -> Error {
    let io = match e {
        ArrayError::StorageError(StorageError::IOError(io)) => io,
        ArrayError::CodecError(CodecError::StorageError(StorageError::IOError(io))) => io,
        ArrayError::CodecError(CodecError::IOError(io)) => io,
        other => return Error::io(path, what, std::io::Error::other(other)),
    };
    match Arc::try_unwrap(io) {
        Ok(io) if io.get_ref().is_some_and(|inner| inner.is::<Error>()) => {
            match io.into_inner().map(|inner| inner.downcast::<Error>()) {
                Some(Ok(ours)) => *ours,
                // Unreachable: the inner error was just seen to be ours.
                _ => Error::internal(format!("{}: {what}: a store error lost", path.display())),
            }
        }
        Ok(io) => Error::io(path, what, io),
        // Shared elsewhere (zarrs kept a copy): its kind and message.
        Err(shared) => Error::io(
            path,
            what,
            std::io::Error::new(shared.kind(), shared.to_string()),
        ),
    }
}

impl WritableStorageTraits for AtomicFolder {
    fn set(&self, key: &StoreKey, value: Bytes) -> Result<(), StorageError> {
        // zarrs calls this for chunks (shards) only: ctstack writes metadata itself.
        self.put_chunk(key.as_str(), &value)
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
        // Only ever a chunk of this store's own arrays (zarrs erases a chunk
        // it would otherwise store as fill value; ctstack stores them all).
        self.withdraw().map_err(storage_error)?;
        match crate::writer::remove_file(&self.path_of(key.as_str())) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Arc::new(e).into()),
            _ => Ok(()),
        }
    }

    fn erase_prefix(&self, prefix: &StorePrefix) -> Result<(), StorageError> {
        // Whole folders are never removed through zarrs: a user's file may be in one.
        Err(StorageError::IOError(Arc::new(std::io::Error::other(
            format!("{prefix}: ctstack's store does not remove folders"),
        ))))
    }

    fn supports_set_partial(&self) -> bool {
        false
    }
}

/// Removes the temporary files killed runs left in the store at `root`, only
/// where ctstack writes: at the root, those of its own metadata names
/// (`root_names`); under each level folder (`<k>`, decimal), those of array
/// metadata and chunk files (digit names). Never a temporary file whose pid may
/// be a live process on this host (`temp::sweep_dead`), nor anything else (a
/// user's file named like a temporary file in a folder of the user's stays).
/// Called under the store's exclusive lock. Returns how many it removed.
/// Symbolic links are not followed.
pub(crate) fn sweep_temps(root: &Path, root_names: &[&str]) -> usize {
    use crate::temp::{Reach, sweep_dead};
    // What cannot be removed now is left for the next run's sweep.
    let mut removed = sweep_dead(root, Reach::Folder, |t| root_names.contains(&t)).unwrap_or(0);
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_index(&name) && entry.file_type().is_ok_and(|t| t.is_dir()) {
            let ours = |t: &str| is_index(t) || ARRAY_METADATA.contains(&t);
            removed += sweep_dead(&entry.path(), Reach::Tree, ours).unwrap_or(0);
        }
    }
    removed
}

/// Whether `name` is a chunk key component ctstack writes: decimal digits.
fn is_index(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit())
}

/// Removes the chunk files of the level folder `dir`, both versions' (`c/z/y/x`
/// for v3, `z/y/x` for v2), and their temporary files: only names ctstack
/// writes; a folder is removed only once empty. Everything else (a user's file)
/// stays and is returned. Symbolic links are never followed.
pub(crate) fn remove_chunks(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    #[cfg(test)]
    if tests::FAIL_REMOVE_CHUNKS.with(|f| f.replace(false)) {
        let injected = std::io::Error::other("injected by a test");
        return Err(Error::io(dir, "cannot remove the chunks", injected));
    }
    let mut kept = Vec::new();
    for entry in read_dir(dir)? {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|e| Error::io(&path, "cannot inspect", e))?;
        if kind.is_dir() && (name == "c" || is_index(&name)) {
            remove_index_tree(&path, &mut kept)?;
        } else if kind.is_file() && is_ours_temp(&name) {
            remove_file_if_there(&path)?;
        } else if !(kind.is_file() && ARRAY_METADATA.contains(&name.as_str())) {
            kept.push(path);
        }
    }
    Ok(kept)
}

/// Removes the chunk files (digit names) and temporary files under `dir`,
/// then `dir` if empty; collects what it keeps into `kept`.
fn remove_index_tree(dir: &Path, kept: &mut Vec<PathBuf>) -> Result<(), Error> {
    for entry in read_dir(dir)? {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|e| Error::io(&path, "cannot inspect", e))?;
        if kind.is_dir() && is_index(&name) {
            remove_index_tree(&path, kept)?;
        } else if kind.is_file() && (is_index(&name) || is_ours_temp(&name)) {
            remove_file_if_there(&path)?;
        } else {
            kept.push(path);
        }
    }
    remove_dir_if_empty(dir)
}

/// Removes the folder `dir` if it is empty (a user's file keeps it).
pub(crate) fn remove_dir_if_empty(dir: &Path) -> Result<(), Error> {
    match crate::writer::remove_empty_dir(dir) {
        Ok(()) => Ok(()),
        Err(_) if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(dir, "cannot remove the empty folder", e)),
    }
}

fn read_dir(dir: &Path) -> Result<Vec<std::fs::DirEntry>, Error> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.map_err(|e| Error::io(dir, "cannot list", e)))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(dir, "cannot list", e)),
    }
}

/// Syncs every file of `paths` (written earlier, closed) and then every folder
/// that holds one, in parallel: the batch that makes a level's chunks durable
/// before its metadata is written.
pub(crate) fn sync_files_and_folders(paths: &[PathBuf]) -> Result<(), Error> {
    use rayon::prelude::*;
    paths.par_iter().try_for_each(|p| sync_path(p))?;
    let folders: BTreeSet<&Path> = paths.iter().filter_map(|p| p.parent()).collect();
    folders.into_par_iter().try_for_each(sync_dir)
}

/// Whether `name` is exactly a temporary name ctstack's writer makes
/// (`.{target}.{pid}.{seq}.ctstack-tmp`), not merely one that looks like it: a
/// user's `.notes.ctstack-tmp` is the user's.
fn is_ours_temp(name: &str) -> bool {
    temp_target(name).is_some()
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::path::{Path, PathBuf};

    use crate::{ChunkCompression, PyramidBuilder, ZarrBuilder};

    thread_local! {
        /// The next `remove_chunks` on this thread fails (then resets).
        pub(super) static FAIL_REMOVE_CHUNKS: Cell<bool> = const { Cell::new(false) };
    }

    /// Every file under `dir`, relative to it, `/`-separated.
    fn files(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    todo.push(path);
                } else {
                    let rel: Vec<String> = path
                        .strip_prefix(dir)
                        .unwrap()
                        .iter()
                        .map(|p| p.to_string_lossy().into_owned())
                        .collect();
                    out.push(rel.join("/"));
                }
            }
        }
        out.sort();
        out
    }

    /// Review s27 2c: a run over a store of another chunk layout that stops
    /// between withdrawing the store and removing the old chunks (here: the
    /// removal fails) leaves the root recording the old layout, so the rerun
    /// clears them: the store ends with exactly a fresh store's files.
    #[test]
    fn a_run_stopped_before_the_old_chunks_are_gone_clears_them_on_rerun() {
        let dir = std::env::temp_dir().join(format!("ctstack-store-clear-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let stack = dir.join("in");
        std::fs::create_dir_all(&stack).unwrap();
        for z in 0..4u16 {
            let pixels: Vec<u16> = (0..40 * 30).map(|i| i as u16 + z * 7).collect();
            crate::write_slice(&stack.join(format!("s{z}.tif")), 40, 30, &pixels).unwrap();
        }
        let pyramid = PyramidBuilder::from_dir(&stack).unwrap().min_size(16);
        let run = |store: &PathBuf, chunks: [u32; 3]| {
            ZarrBuilder::new(pyramid.clone(), store)
                .chunks(chunks)
                .compression(ChunkCompression::None)
                .plan()
                .unwrap()
                .run(&mut |_, _| {}, &Default::default())
        };
        let store = dir.join("s.ome.zarr");
        run(&store, [1, 8, 8]).unwrap();
        FAIL_REMOVE_CHUNKS.with(|f| f.set(true));
        let stopped = run(&store, [2, 16, 16]).unwrap_err();
        assert!(stopped.to_string().contains("injected"), "{stopped}");
        run(&store, [2, 16, 16]).unwrap();
        let fresh = dir.join("fresh.ome.zarr");
        run(&fresh, [2, 16, 16]).unwrap();
        assert_eq!(files(&store), files(&fresh), "old chunk files left");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
