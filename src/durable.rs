//! Making writes durable: what a manifest or a store's metadata records as done
//! must survive a power loss, so its bytes reach the disk before the record does.
//!
//! A rename into place ([`crate::writer::write_atomically`]) is atomic for
//! readers, but without a sync its file may still be only in the page cache: after
//! a power loss the name can point to an empty or stale file. The order every
//! writer follows is: the data of each file synced ([`sync_file`] or
//! [`sync_path`]), then the folders that received renames ([`sync_dir`]), then the
//! record written atomically and synced with its folder, last.
//!
//! Syncing can be batched (a level's files synced once the level is written) as
//! long as the record that vouches for them is written after the batch.

use std::collections::{BTreeSet, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use crate::Error;
use crate::writer::parent_of;

/// Flushes `file`'s data (and the size, which `fdatasync` includes) to the disk.
pub(crate) fn sync_file(file: &File, path: &Path) -> Result<(), Error> {
    file.sync_data()
        .map_err(|e| Error::io(path, "cannot sync to disk", e))
}

/// Flushes the data of the file at `path`, written and closed earlier, to the
/// disk. On Linux and macOS `fsync` on any descriptor of a file flushes all its
/// dirty pages; on Windows `FlushFileBuffers` needs a handle opened for writing,
/// so the file is opened for writing (never truncated, never created).
pub(crate) fn sync_path(path: &Path) -> Result<(), Error> {
    let file = open_for_sync(path).map_err(|e| Error::io(path, "cannot open to sync", e))?;
    sync_file(&file, path)
}

#[cfg(windows)]
fn open_for_sync(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new().write(true).open(path)
}

#[cfg(not(windows))]
fn open_for_sync(path: &Path) -> std::io::Result<File> {
    File::open(path)
}

/// Starts writing `file`'s dirty pages to the disk without waiting (Linux:
/// `sync_file_range(SYNC_FILE_RANGE_WRITE)`; elsewhere nothing). Not a
/// guarantee of anything: a writer that syncs a batch later ([`sync_path`])
/// calls this as each file is written, so that the disk works while the
/// writer computes, and the batch finds little left to flush.
pub(crate) fn start_writeback(file: &File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor is `file`'s, open for the duration of the
        // call; sync_file_range reads no memory of ours. Its result is
        // ignored on purpose: this is a hint, the later sync reports errors.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
    }
}

/// Makes the entries of folder `dir` durable: renames into it, files created or
/// removed in it. POSIX needs an `fsync` of the folder itself for that. On
/// Windows a folder cannot be synced this way (NTFS journals its metadata), so
/// this does nothing there.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    #[cfg(unix)]
    {
        let folder =
            File::open(dir).map_err(|e| Error::io(dir, "cannot open the folder to sync", e))?;
        folder
            .sync_all()
            .map_err(|e| Error::io(dir, "cannot sync the folder to disk", e))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// [`sync_dir`] of each of `folders`; the first error is returned. (Syncing
/// them from one thread each was tried: no measurable gain on ext4.)
pub(crate) fn sync_dirs(folders: &BTreeSet<PathBuf>) -> Result<(), Error> {
    folders.iter().try_for_each(|f| sync_dir(f))
}

/// Files written and closed, handed to a thread of their own as they come, so
/// that the disk's time overlaps the work that produces the next ones; a
/// [`BackgroundSync::barrier`] waits until every file handed over so far is
/// synced and says which folders to sync. This is what keeps the pyramid's durability
/// almost free: by the time the manifest is saved, most of its files are
/// already on disk.
///
/// On Linux the thread starts each file's writeback as it comes
/// ([`start_writeback`]: the data goes to the disk, no cache flush) and syncs
/// the files at the barrier ([`DEFER_SYNC`]); elsewhere it syncs each file as it
/// comes.
pub(crate) struct BackgroundSync {
    /// `None` once the thread is gone (dropped).
    to_thread: Option<Sender<Message>>,
    thread: Option<JoinHandle<()>>,
    /// Files handed over since the last barrier, for their folders.
    since_barrier: Vec<PathBuf>,
}

enum Message {
    Sync(PathBuf),
    /// Reply with the first error since the last barrier, if any.
    Barrier(Sender<Result<(), Error>>),
}

impl BackgroundSync {
    /// A syncer with its thread (started on the first file).
    pub fn new() -> BackgroundSync {
        BackgroundSync {
            to_thread: None,
            thread: None,
            since_barrier: Vec::new(),
        }
    }

    /// Hands over `path` (written and closed) to be synced.
    pub fn push(&mut self, path: PathBuf) {
        if self.to_thread.is_none() {
            let (tx, rx) = channel();
            self.to_thread = Some(tx);
            self.thread = std::thread::Builder::new()
                .name("ctstack-sync".into())
                .spawn(move || sync_thread(rx))
                .ok();
            if self.thread.is_none() {
                self.to_thread = None; // no thread: synced at the barrier instead
            }
        }
        if let Some(tx) = &self.to_thread
            && tx.send(Message::Sync(path.clone())).is_err()
        {
            self.to_thread = None;
        }
        self.since_barrier.push(path);
    }

    /// Waits until the data of every file handed over is synced and returns
    /// their folders, which the caller syncs ([`sync_dir`]) before anything
    /// vouches for the files. (Left to the caller so that it can sync its
    /// record's data first: on a journaling filesystem the folders' syncs then
    /// ride on that one commit.) The first error of any file is returned.
    pub fn barrier(&mut self) -> Result<BTreeSet<PathBuf>, Error> {
        let files = std::mem::take(&mut self.since_barrier);
        if files.is_empty() {
            return Ok(BTreeSet::new());
        }
        let (reply, answer) = channel();
        let synced = match &self.to_thread {
            Some(tx) if tx.send(Message::Barrier(reply)).is_ok() => answer.recv().ok(),
            _ => None,
        };
        match synced {
            Some(result) => result?,
            // The thread is gone (it cannot be, short of a panic): sync here.
            None => files.iter().try_for_each(|p| sync_path(p))?,
        }
        Ok(files.iter().map(|p| parent_of(p).to_path_buf()).collect())
    }
}

impl Drop for BackgroundSync {
    fn drop(&mut self) {
        self.to_thread = None; // ends the thread's loop
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Whether [`BackgroundSync`]'s thread leaves each file's `fdatasync` to the
/// barrier, having started its writeback when it came (Linux), rather than
/// syncing it at once.
///
/// Each `fdatasync` ends with a cache flush of the whole device, and a flush
/// sent while the run still reads its inputs waits behind those reads. Measured
/// on the AMD EPYC VM (virtio disk, ext4), 64 x 2752x2752 u16, against syncing
/// each file at once, binaries interleaved (`benches/coldab.py`,
/// benches/results.md): the disk's flush time per run 2-8 ms against 20-80,
/// its write time 190-250 ms against 380-470; warm 0.138 s against 0.147 and
/// 0.195 against 0.206, a pyramid of 1921 small files 1.47 s against 1.58; cold
/// within the noise (1.18-1.37x the read floor against 1.21-1.63x, faster in
/// 16 of 28 sets). Without the writeback started first (the data left to the
/// barrier too) it was slower cold: 1.29x against 1.23x. The syncs are the same
/// calls on the same files, made before the record that vouches for them.
const DEFER_SYNC: bool = cfg!(target_os = "linux");

/// The most files [`DEFER_SYNC`] leaves unsynced: past it the oldest is
/// synced at once, so that a run of many small files (a checkpoint every 2 s,
/// `src/pyramid/manifest.rs`) does not wait at each barrier for hundreds of
/// syncs the thread could have made meanwhile. A pyramid of 64 slices of
/// 2752x2752 writes 42 files.
const DEFERRED_MAX: usize = 64;

fn sync_thread(rx: Receiver<Message>) {
    let mut first_error = None;
    // Files whose writeback was started, oldest first, to sync at the next
    // barrier (or once more than DEFERRED_MAX are waiting).
    let mut started: VecDeque<PathBuf> = VecDeque::new();
    for message in rx {
        match message {
            Message::Sync(path) if DEFER_SYNC => {
                #[cfg(test)]
                probe::event("writeback", &path);
                // A file that cannot be opened now is reported by its sync.
                if let Ok(file) = File::open(&path) {
                    start_writeback(&file);
                }
                started.push_back(path);
                if started.len() > DEFERRED_MAX
                    && let Some(oldest) = started.pop_front()
                {
                    #[cfg(test)]
                    probe::event("sync", &oldest);
                    if first_error.is_none() {
                        first_error = sync_path(&oldest).err();
                    }
                }
            }
            Message::Sync(path) => {
                if first_error.is_none() {
                    first_error = sync_path(&path).err();
                }
            }
            Message::Barrier(reply) => {
                #[cfg(test)]
                if let Some(path) = started.front() {
                    probe::event("barrier", path);
                }
                for path in started.drain(..) {
                    #[cfg(test)]
                    probe::event("sync", &path);
                    if first_error.is_none() {
                        first_error = sync_path(&path).err();
                    }
                }
                let _ = reply.send(first_error.take().map_or(Ok(()), Err));
            }
        }
    }
}

/// What the sync thread did, in order, for the tests.
#[cfg(test)]
mod probe {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    static EVENTS: Mutex<Vec<(&'static str, PathBuf)>> = Mutex::new(Vec::new());

    pub(super) fn event(what: &'static str, path: &Path) {
        let mut events = EVENTS.lock().unwrap_or_else(|e| e.into_inner());
        events.push((what, path.to_path_buf()));
    }

    /// The events of files in `dir`, in order.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))] // its tests are Linux's
    pub(super) fn events_in(dir: &Path) -> Vec<(&'static str, PathBuf)> {
        let events = EVENTS.lock().unwrap_or_else(|e| e.into_inner());
        events
            .iter()
            .filter(|(_, p)| p.parent() == Some(dir))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncs_a_written_file_and_its_folder() {
        let dir = std::env::temp_dir().join(format!("ctstack-durable-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.bin");
        std::fs::write(&path, b"abc").unwrap();
        sync_path(&path).unwrap();
        sync_dir(&dir).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abc");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_background_syncer_reports_at_the_barrier() {
        let dir = std::env::temp_dir().join(format!("ctstack-durable-bg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut syncer = BackgroundSync::new();
        assert!(syncer.barrier().unwrap().is_empty());
        for i in 0..5 {
            let path = dir.join(format!("{i}.bin"));
            std::fs::write(&path, [i as u8; 100]).unwrap();
            syncer.push(path);
        }
        assert_eq!(syncer.barrier().unwrap(), BTreeSet::from([dir.clone()]));
        syncer.push(dir.join("missing.bin"));
        let e = syncer.barrier().unwrap_err();
        assert!(e.to_string().contains("missing.bin"), "{e}");
        // The error was reported once; later files sync again.
        syncer.push(dir.join("0.bin"));
        syncer.barrier().unwrap();
        drop(syncer);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// On Linux the files handed over have their writeback started as they
    /// come and are synced only at the barrier, after the last one came: no
    /// cache flush while the run is still reading (`DEFER_SYNC`). Every file is
    /// still synced before the barrier returns.
    #[cfg(target_os = "linux")]
    #[test]
    fn files_are_synced_at_the_barrier_after_their_writeback_started() {
        let dir =
            std::env::temp_dir().join(format!("ctstack-durable-defer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut syncer = BackgroundSync::new();
        let paths: Vec<PathBuf> = (0..4).map(|i| dir.join(format!("{i}.bin"))).collect();
        for (i, path) in paths.iter().enumerate() {
            std::fs::write(path, [i as u8; 4096]).unwrap();
            syncer.push(path.clone());
        }
        assert_eq!(syncer.barrier().unwrap(), BTreeSet::from([dir.clone()]));
        let events = probe::events_in(&dir);
        let kinds: Vec<&str> = events.iter().map(|(k, _)| *k).collect();
        let expected: Vec<&str> =
            [["writeback"; 4].as_slice(), &["barrier"], &["sync"; 4]].concat();
        assert_eq!(kinds, expected, "{events:?}");
        let synced: Vec<&PathBuf> = events[5..].iter().map(|(_, p)| p).collect();
        assert_eq!(synced, paths.iter().collect::<Vec<_>>());
        drop(syncer);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Past [`DEFERRED_MAX`] files waiting, the oldest are synced as new ones
    /// come, not left to the barrier.
    #[cfg(target_os = "linux")]
    #[test]
    fn at_most_deferred_max_files_wait_for_the_barrier() {
        let dir = std::env::temp_dir().join(format!("ctstack-durable-max-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut syncer = BackgroundSync::new();
        let paths: Vec<PathBuf> = (0..DEFERRED_MAX + 3)
            .map(|i| dir.join(format!("{i}.bin")))
            .collect();
        for path in &paths {
            std::fs::write(path, [1u8; 16]).unwrap();
            syncer.push(path.clone());
        }
        syncer.barrier().unwrap();
        let events = probe::events_in(&dir);
        let at_barrier = events.iter().position(|(k, _)| *k == "barrier").unwrap();
        let early: Vec<&PathBuf> = events[..at_barrier]
            .iter()
            .filter(|(k, _)| *k == "sync")
            .map(|(_, p)| p)
            .collect();
        assert_eq!(early, paths[..3].iter().collect::<Vec<_>>(), "{events:?}");
        let late = events[at_barrier..]
            .iter()
            .filter(|(k, _)| *k == "sync")
            .count();
        assert_eq!(late, DEFERRED_MAX);
        drop(syncer);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let path = std::env::temp_dir().join("ctstack-durable-missing/nothing.bin");
        let e = sync_path(&path).unwrap_err();
        assert!(e.to_string().contains("nothing.bin"), "{e}");
    }
}
