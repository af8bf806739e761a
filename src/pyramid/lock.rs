//! The output folder's lock: concurrent runs on one folder take turns, and a run
//! that ends (done, failed or cancelled) leaves no lock file behind.
//!
//! Removing a lock file is the delicate part: a second run may already hold an
//! open descriptor to it, waiting, and would then lock a file that no longer has
//! a name while a third run creates and locks a new one. So, on Unix, a run that
//! gets the lock checks that [`LOCK_FILE`] still names the very file it locked
//! (device and inode) and starts over if not; the holder removes the name while
//! still holding the lock. Whoever holds the lock therefore always holds the file
//! the name points to. A run killed with `kill -9` leaves the file (the lock
//! itself dies with the process); the next run takes it and removes it.
//!
//! On Windows the file is opened with no sharing and deleted on close: a second
//! run cannot open it until the first closes it, and the system removes it then,
//! even if the process is killed.
//!
//! A lock file is ctstack's only if ctstack created it: on Unix it holds
//! [`MARKER`], written right after it is created (or nothing, if the run was
//! killed in between), and a file of that name that holds anything else (the
//! user's) is locked and used, but never removed; on Windows only a file
//! created by the run is opened delete-on-close.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::CancelFlag;
use crate::Error;

/// Name of the lock file that keeps two runs from writing one output folder at once.
pub const LOCK_FILE: &str = ".ctstack.lock";

/// What a lock file ctstack created holds (Unix): the proof it may be removed.
#[cfg(not(windows))]
const MARKER: &[u8] = b"ctstack output folder lock\n";

/// How long a waiting run sleeps between attempts.
const RETRY: Duration = Duration::from_millis(20);

/// The output folder's lock; released (and its file removed) on drop.
pub(crate) struct OutputLock {
    /// Removed on drop (on Windows the system deletes the file on close).
    #[cfg_attr(windows, allow(dead_code))]
    path: PathBuf,
    /// Held open for the lock's lifetime.
    _file: File,
    /// Whether the file is ctstack's (else it is left in place on drop).
    #[cfg_attr(windows, allow(dead_code))]
    ours: bool,
}

impl OutputLock {
    /// Takes the lock of output folder `out`, waiting for another run to finish
    /// (raising `cancel` stops the wait with [`Error::Cancelled`]).
    pub fn acquire(out: &Path, cancel: &CancelFlag) -> Result<OutputLock, Error> {
        let path = out.join(LOCK_FILE);
        loop {
            if let Some((file, ours)) = try_acquire(&path)? {
                return Ok(OutputLock {
                    path,
                    _file: file,
                    ours,
                });
            }
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            std::thread::sleep(RETRY);
        }
    }
}

/// The lock file, locked, and whether it is ctstack's; `None` if another run
/// holds it (or it changed under us: try again).
#[cfg(not(windows))]
fn try_acquire(path: &Path) -> Result<Option<(File, bool)>, Error> {
    use std::io::{ErrorKind, Read, Seek, Write};
    let created = std::fs::OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(path);
    let file = match created {
        Ok(mut file) => {
            file.write_all(MARKER)
                .map_err(|e| Error::io(path, "cannot write lock file", e))?;
            file
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
            {
                Ok(file) => file,
                // Removed by its holder in between: try again.
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(Error::io(path, "cannot open lock file", e)),
            }
        }
        Err(e) => return Err(Error::io(path, "cannot create lock file", e)),
    };
    let Some(mut file) = lock_opened(path, file)? else {
        return Ok(None);
    };
    // Ours if it holds the marker (a file left by a killed run included), or
    // nothing (a run killed between creating it and writing the marker: an
    // empty file holds nothing to lose); the bound keeps a large foreign file
    // from being read whole.
    let mut head = Vec::new();
    let ours = file.rewind().is_ok()
        && (&mut file)
            .take(MARKER.len() as u64 + 1)
            .read_to_end(&mut head)
            .is_ok_and(|_| head.is_empty() || head == MARKER);
    Ok(Some((file, ours)))
}

/// Locks `file`, opened from `path`: `None` if another run holds it, or if the
/// name no longer is that file.
#[cfg(not(windows))]
fn lock_opened(path: &Path, file: File) -> Result<Option<File>, Error> {
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(path, "cannot lock", e)),
    }
    // The previous holder may have removed the name after we opened the file.
    Ok(names_file(path, &file).then_some(file))
}

/// Whether `path` names the open `file` (same device and inode).
#[cfg(unix)]
fn names_file(path: &Path, file: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(path), file.metadata()) {
        (Ok(named), Ok(open)) => (named.dev(), named.ino()) == (open.dev(), open.ino()),
        _ => false,
    }
}

/// Without inode numbers, the name is taken to still be the file.
#[cfg(not(any(unix, windows)))]
fn names_file(_path: &Path, _file: &File) -> bool {
    true
}

#[cfg(windows)]
fn try_acquire(path: &Path) -> Result<Option<(File, bool)>, Error> {
    use std::os::windows::fs::OpenOptionsExt;
    /// FILE_FLAG_DELETE_ON_CLOSE (winbase.h).
    const DELETE_ON_CLOSE: u32 = 0x0400_0000;
    /// ERROR_ACCESS_DENIED, ERROR_SHARING_VIOLATION (winerror.h).
    const ACCESS_DENIED: i32 = 5;
    const SHARING_VIOLATION: i32 = 32;
    let busy = |e: &std::io::Error| {
        e.raw_os_error() == Some(SHARING_VIOLATION)
            // A file pending deletion (its holder just closed it) refuses access.
            || (e.raw_os_error() == Some(ACCESS_DENIED) && path.exists())
    };
    // Only a file this run creates is deleted on close.
    let created = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .share_mode(0)
        .custom_flags(DELETE_ON_CLOSE)
        .open(path);
    match created {
        Ok(file) => return Ok(Some((file, true))),
        Err(e) if busy(&e) => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io(path, "cannot create lock file", e)),
    }
    // A file of that name that no run holds: ours never outlives its holder,
    // so it is someone else's. Held with no sharing, as the lock, and kept.
    match std::fs::OpenOptions::new()
        .write(true)
        .share_mode(0)
        .open(path)
    {
        Ok(file) => Ok(Some((file, false))),
        Err(e) if busy(&e) || e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, "cannot open lock file", e)),
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        // Removed while still locked (the file closes after this), so a waiting
        // run that locks the old file next sees it has no name and starts over.
        // On Windows the system deletes it on close instead.
        #[cfg(not(windows))]
        if self.ours {
            let _ = crate::writer::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ctstack-lock-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The race the re-check is for: a file opened before its name was removed
    /// (or replaced) is not the lock any more.
    #[cfg(unix)]
    #[test]
    fn a_file_whose_name_is_gone_or_reused_is_not_the_lock() {
        let dir = scratch("names");
        let path = dir.join(LOCK_FILE);
        let early = File::create(&path).unwrap();
        assert!(names_file(&path, &early));
        std::fs::remove_file(&path).unwrap();
        assert!(!names_file(&path, &early));
        let _new = File::create(&path).unwrap();
        assert!(!names_file(&path, &early));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The race itself: run B opens the lock file while run A holds it; A ends
    /// (removing the name, then unlocking); run C creates a new one and locks it.
    /// B's lock on the old, nameless file must not count.
    #[cfg(unix)]
    #[test]
    fn a_waiter_on_a_removed_lock_file_starts_over() {
        let dir = scratch("race");
        let path = dir.join(LOCK_FILE);
        let a = OutputLock::acquire(&dir, &CancelFlag::new()).unwrap();
        let b = File::options().write(true).open(&path).unwrap();
        drop(a);
        let c = OutputLock::acquire(&dir, &CancelFlag::new()).unwrap();
        assert!(lock_opened(&path, b).unwrap().is_none(), "two holders");
        drop(c);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Threads that take the lock in a tight loop are never inside at once, and
    /// the last one out leaves no file.
    #[test]
    fn holders_never_overlap_and_leave_no_file() {
        let dir = scratch("overlap");
        let inside = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (dir, inside) = (dir.clone(), Arc::clone(&inside));
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        let lock = OutputLock::acquire(&dir, &CancelFlag::new()).unwrap();
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                        std::thread::yield_now();
                        inside.fetch_sub(1, Ordering::SeqCst);
                        drop(lock);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(!dir.join(LOCK_FILE).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A file named like the lock that ctstack did not create is used as the
    /// lock but never removed; one a killed run left (the marker) is.
    #[test]
    fn only_a_lock_file_ctstack_created_is_removed() {
        let dir = scratch("foreign");
        let path = dir.join(LOCK_FILE);
        std::fs::write(&path, b"the user's").unwrap();
        drop(OutputLock::acquire(&dir, &CancelFlag::new()).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"the user's");
        std::fs::remove_file(&path).unwrap();
        drop(OutputLock::acquire(&dir, &CancelFlag::new()).unwrap());
        assert!(!path.exists(), "a lock file of its own left behind");
        #[cfg(unix)]
        for left in [MARKER, b""] {
            std::fs::write(&path, left).unwrap(); // what a `kill -9` leaves
            drop(OutputLock::acquire(&dir, &CancelFlag::new()).unwrap());
            assert!(!path.exists(), "a killed run's lock file left behind");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_cancelled_wait_gives_up() {
        let dir = scratch("cancel");
        let _held = OutputLock::acquire(&dir, &CancelFlag::new()).unwrap();
        let cancel = CancelFlag::new();
        cancel.cancel();
        let err = OutputLock::acquire(&dir, &cancel).err().unwrap();
        assert_eq!(err.kind(), crate::ErrorKind::Cancelled);
        drop(_held);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
