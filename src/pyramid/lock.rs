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
//!
//! The OME-Zarr writer takes the same lock on its store, but does not wait:
//! [`OutputLock::try_acquire`] says who holds it instead (the pid and host a
//! holder writes after [`MARKER`]), and it may be taken *shared*, by the slabs
//! of one distributed build, which then run at once while an exclusive holder
//! (a run, a prepare, a finish) is refused, and the other way round. A shared
//! holder removes the file only if it is the last (on Windows never: the
//! next exclusive holder does).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::CancelFlag;
use crate::Error;

/// Name of the lock file that keeps two runs from writing one output folder at once.
pub const LOCK_FILE: &str = ".ctstack.lock";

/// What a lock file ctstack created starts with: the proof it may be removed.
/// The holder's pid and host follow it on a line of their own.
const MARKER: &[u8] = b"ctstack output folder lock\n";

/// The most bytes a holder line takes after [`MARKER`]: a longer file is not ctstack's.
const HOLDER_MAX: usize = 512;

/// How a lock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Share {
    /// By one run alone.
    Exclusive,
    /// By any number of shared holders at once (the slabs of one distributed
    /// build), never while an exclusive holder has it.
    Shared,
}

/// How long a waiting run sleeps between attempts.
const RETRY: Duration = Duration::from_millis(20);

/// How long a lock found taken is tried again before it counts as busy: a
/// holder leaving holds it exclusively for the instant of removing its file.
#[cfg(not(windows))]
const LEAVING: Duration = Duration::from_millis(100);

/// How many times [`OutputLock::try_acquire`] starts over at once when the
/// lock file changed under it (its holder leaving) before it gives up.
const CHANGED_RETRIES: usize = 8;

/// One attempt at the lock.
#[derive(Debug)]
enum Attempt<T> {
    /// Taken.
    Got(T),
    /// Another run holds it in a way that excludes this one.
    Busy,
    /// The file was removed or replaced under us (its holder leaving): no
    /// one may hold it now, try again.
    Changed,
}

/// The output folder's lock; released (and its file removed) on drop.
pub(crate) struct OutputLock {
    /// Removed on drop (on Windows the system deletes a file it created on close).
    path: PathBuf,
    /// Held open for the lock's lifetime.
    _file: Option<File>,
    /// Whether the file is ctstack's (else it is left in place on drop).
    ours: bool,
    /// Whether this holder may remove the file on drop (an exclusive one).
    removes: bool,
}

impl OutputLock {
    /// Takes the lock of output folder `out`, waiting for another run to finish
    /// (raising `cancel` stops the wait with [`Error::Cancelled`]).
    pub fn acquire(out: &Path, cancel: &CancelFlag) -> Result<OutputLock, Error> {
        loop {
            if let Attempt::Got(lock) = OutputLock::try_once(out, Share::Exclusive)? {
                return Ok(lock);
            }
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            std::thread::sleep(RETRY);
        }
    }

    /// Takes the lock of folder `out` as `share` says if no one holds it in a
    /// way that excludes this; else `Err(holder)`: who holds it, as its file
    /// says (`pid 4242 on host node7`, or that it does not say). A lock file
    /// removed or replaced under it (its holder leaving just then) is not a
    /// refusal: it starts over, up to [`CHANGED_RETRIES`] times.
    pub(crate) fn try_acquire(
        out: &Path,
        share: Share,
    ) -> Result<Result<OutputLock, String>, Error> {
        for _ in 0..=CHANGED_RETRIES {
            match OutputLock::try_once(out, share)? {
                Attempt::Got(lock) => return Ok(Ok(lock)),
                Attempt::Busy => break,
                Attempt::Changed => {}
            }
        }
        Ok(Err(holder(&out.join(LOCK_FILE))))
    }

    fn try_once(out: &Path, share: Share) -> Result<Attempt<OutputLock>, Error> {
        let path = out.join(LOCK_FILE);
        Ok(match try_acquire(&path, share)? {
            Attempt::Got((file, ours)) => Attempt::Got(OutputLock {
                path,
                _file: Some(file),
                ours,
                removes: share == Share::Exclusive,
            }),
            Attempt::Busy => Attempt::Busy,
            Attempt::Changed => Attempt::Changed,
        })
    }
}

/// This process and host, as a holder writes them after [`MARKER`].
fn holder_line() -> Vec<u8> {
    let mut line = format!("pid {} on host {}\n", std::process::id(), host_name()).into_bytes();
    line.truncate(HOLDER_MAX);
    line
}

/// This machine's name (`unknown` if the system does not say).
fn host_name() -> String {
    #[cfg(unix)]
    {
        let mut buf = [0u8; 256];
        // SAFETY: `buf` is writable for its whole length, which is passed; the
        // name is NUL-terminated within it when it fits (cut at the first NUL
        // below, and the last byte is never written).
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
        if rc == 0 {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            let name = String::from_utf8_lossy(&buf[..end]).into_owned();
            if !name.is_empty() {
                return name;
            }
        }
    }
    #[cfg(windows)]
    if let Ok(name) = std::env::var("COMPUTERNAME") {
        return name;
    }
    "unknown".to_string()
}

/// Who holds the lock file at `path`, as the holder line after [`MARKER`] says.
fn holder(path: &Path) -> String {
    use std::io::Read;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(windows)]
    {
        use std::os::windows::fs::OpenOptionsExt;
        // FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE: beside the holder.
        options.share_mode(7);
    }
    let mut head = Vec::new();
    let read = options.open(path).and_then(|file| {
        file.take((MARKER.len() + HOLDER_MAX) as u64)
            .read_to_end(&mut head)
    });
    let line = match read {
        Ok(_) => head.strip_prefix(MARKER).map(|rest| {
            let rest = String::from_utf8_lossy(rest);
            rest.lines().next().unwrap_or("").trim().to_string()
        }),
        Err(_) => None,
    };
    match line {
        Some(line) if !line.is_empty() => line,
        _ => format!("a process that {} does not name", LOCK_FILE),
    }
}

/// Whether a lock file's first bytes say it is ctstack's: the marker (and a
/// holder line), or nothing (a run killed between creating it and writing the
/// marker: an empty file holds nothing to lose). `head` is read with a bound
/// one byte past what ctstack writes, so a large foreign file is not read whole.
fn is_ours(head: &[u8]) -> bool {
    head.is_empty() || (head.starts_with(MARKER) && head.len() <= MARKER.len() + HOLDER_MAX)
}

/// Reads the first bytes of `file` (bounded, see [`is_ours`]).
fn read_head(file: &mut File) -> Vec<u8> {
    use std::io::{Read, Seek};
    let mut head = Vec::new();
    if file.rewind().is_err()
        || file
            .take((MARKER.len() + HOLDER_MAX + 1) as u64)
            .read_to_end(&mut head)
            .is_err()
    {
        // Unreadable: not shown to be ours.
        return vec![0];
    }
    head
}

/// Writes the marker and this holder into `file`, which is ctstack's.
fn write_holder(path: &Path, file: &mut File) -> Result<(), Error> {
    use std::io::{Seek, Write};
    let mut bytes = MARKER.to_vec();
    bytes.extend(holder_line());
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(&bytes))
        .map_err(|e| Error::io(path, "cannot write lock file", e))
}

#[cfg(all(test, not(windows)))]
thread_local! {
    /// Test hook: runs between opening an existing lock file and locking it.
    static AFTER_OPEN: std::cell::RefCell<Option<Box<dyn FnMut()>>> =
        std::cell::RefCell::new(None);
}

/// The lock file, locked as `share` says, and whether it is ctstack's; `Busy`
/// if another run holds it so, `Changed` if it changed under us.
#[cfg(not(windows))]
fn try_acquire(path: &Path, share: Share) -> Result<Attempt<(File, bool)>, Error> {
    use std::io::ErrorKind;
    let created = std::fs::OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(path);
    let (file, new) = match created {
        Ok(mut file) => {
            write_holder(path, &mut file)?;
            (file, true)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
            {
                Ok(file) => (file, false),
                // Removed by its holder in between: try again.
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Attempt::Changed),
                Err(e) => return Err(Error::io(path, "cannot open lock file", e)),
            }
        }
        Err(e) => return Err(Error::io(path, "cannot create lock file", e)),
    };
    #[cfg(test)]
    if !new {
        AFTER_OPEN.with(|hook| hook.borrow_mut().as_mut().map(|hook| hook()));
    }
    let mut file = match lock_opened(path, file, share)? {
        Attempt::Got(file) => file,
        Attempt::Busy => return Ok(Attempt::Busy),
        Attempt::Changed => return Ok(Attempt::Changed),
    };
    let ours = is_ours(&read_head(&mut file));
    // An exclusive holder says who it is (a shared one leaves the line of the
    // holder that created the file: several write at once).
    if ours && !new && share == Share::Exclusive {
        write_holder(path, &mut file)?;
    }
    Ok(Attempt::Got((file, ours)))
}

/// Locks `file`, opened from `path`, as `share` says: `Busy` if another run
/// holds it so, `Changed` if the name no longer is that file.
///
/// A holder leaving takes the lock exclusively for an instant, to remove the
/// file (the last shared holder out, see [`OutputLock`]'s drop): a lock found
/// taken is tried again for up to [`LEAVING`] before it counts as busy, and a
/// file removed meanwhile is `Changed`. Without this a slab starting as a
/// sibling slab ended was refused as "another ctstack run" (a test counted
/// 2110 refusals in 12,000 attempts of 4 threads).
#[cfg(not(windows))]
fn lock_opened(path: &Path, file: File, share: Share) -> Result<Attempt<File>, Error> {
    let started = std::time::Instant::now();
    loop {
        let locked = match share {
            Share::Exclusive => file.try_lock(),
            Share::Shared => file.try_lock_shared(),
        };
        match locked {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) => {
                if !names_file(path, &file) {
                    return Ok(Attempt::Changed);
                }
                if started.elapsed() >= LEAVING {
                    return Ok(Attempt::Busy);
                }
                std::thread::sleep(LEAVING / 50);
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(path, "cannot lock", e)),
        }
    }
    // The previous holder may have removed the name after we opened the file.
    Ok(if names_file(path, &file) {
        Attempt::Got(file)
    } else {
        Attempt::Changed
    })
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

/// Windows: exclusive is a handle no one else may open for writing (others
/// may read who holds it); shared, one every shared holder opens alike.
#[cfg(windows)]
fn try_acquire(path: &Path, share: Share) -> Result<Attempt<(File, bool)>, Error> {
    use std::os::windows::fs::OpenOptionsExt;
    /// FILE_FLAG_DELETE_ON_CLOSE (winbase.h).
    const DELETE_ON_CLOSE: u32 = 0x0400_0000;
    /// ERROR_ACCESS_DENIED, ERROR_SHARING_VIOLATION (winerror.h).
    const ACCESS_DENIED: i32 = 5;
    const SHARING_VIOLATION: i32 = 32;
    /// FILE_SHARE_READ; FILE_SHARE_READ | FILE_SHARE_WRITE.
    const SHARE_READ: u32 = 1;
    const SHARE_READ_WRITE: u32 = 3;
    let busy = |e: &std::io::Error| {
        e.raw_os_error() == Some(SHARING_VIOLATION)
            // A file pending deletion (its holder just closed it) refuses access.
            || (e.raw_os_error() == Some(ACCESS_DENIED) && path.exists())
    };
    let mode = match share {
        Share::Exclusive => SHARE_READ,
        Share::Shared => SHARE_READ_WRITE,
    };
    // Only a file an exclusive holder creates is deleted on close; a shared
    // holder's stays for the next exclusive holder to remove (others may hold it).
    let mut create = std::fs::OpenOptions::new();
    create
        .create_new(true)
        .read(true)
        .write(true)
        .share_mode(mode);
    if share == Share::Exclusive {
        create.custom_flags(DELETE_ON_CLOSE);
    }
    match create.open(path) {
        Ok(mut file) => {
            write_holder(path, &mut file)?;
            return Ok(Attempt::Got((file, true)));
        }
        Err(e) if busy(&e) => return Ok(Attempt::Busy),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io(path, "cannot create lock file", e)),
    }
    // A file of that name that no exclusive holder has: a shared holder's
    // (the marker) or someone else's. Held as the lock; removed on drop only
    // if it is ctstack's.
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .share_mode(mode)
        .open(path)
    {
        Ok(mut file) => {
            let ours = is_ours(&read_head(&mut file));
            if ours && share == Share::Exclusive {
                write_holder(path, &mut file)?;
            }
            Ok(Attempt::Got((file, ours)))
        }
        Err(e) if busy(&e) => Ok(Attempt::Busy),
        // Removed by its holder in between: try again.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Attempt::Changed),
        Err(e) => Err(Error::io(path, "cannot open lock file", e)),
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        if !self.ours {
            return;
        }
        // The last shared holder out removes the file too: it upgrades to
        // exclusive, which only succeeds when no one else holds the file
        // (losing the shared lock on the way is harmless: it is leaving), and
        // the name must still be that file.
        #[cfg(not(windows))]
        if !self.removes {
            let alone = self
                ._file
                .as_ref()
                .is_some_and(|file| file.try_lock().is_ok() && names_file(&self.path, file));
            if !alone {
                return;
            }
        }
        #[cfg(windows)]
        if !self.removes {
            return;
        }
        // Removed while still locked (the file closes after this), so a waiting
        // run that locks the old file next sees it has no name and starts over.
        #[cfg(not(windows))]
        let _ = crate::writer::remove_file(&self.path);
        // On Windows a file this run created is deleted by the system on close;
        // one a shared holder left is removed once closed (a run that opened
        // it meanwhile keeps it: the removal then fails, and is left).
        #[cfg(windows)]
        {
            drop(self._file.take());
            // Not through fs_retry: a sharing violation here means another run
            // holds the file now, and the removal is then theirs to do.
            let _ = std::fs::remove_file(&self.path);
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
        assert!(
            matches!(
                lock_opened(&path, b, Share::Exclusive).unwrap(),
                Attempt::Changed
            ),
            "two holders"
        );
        drop(c);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Sets (or clears) the hook that runs between opening an existing lock
    /// file and locking it, on this thread.
    #[cfg(unix)]
    fn after_open(hook: Option<Box<dyn FnMut()>>) {
        AFTER_OPEN.with(|slot| *slot.borrow_mut() = hook);
    }

    /// A slab (or any store run) that opens the lock file just as its holder
    /// leaves (removing it) is not refused: the file changed under it, and it
    /// starts over and takes the lock. A busy lock is refused at once.
    #[cfg(unix)]
    #[test]
    fn a_lock_file_removed_between_open_and_lock_is_retried_not_refused() {
        use std::cell::{Cell, RefCell};
        use std::rc::Rc;
        let dir = scratch("changed");
        let path = dir.join(LOCK_FILE);
        for (before, share) in [
            (Share::Exclusive, Share::Shared),
            (Share::Shared, Share::Shared),
            (Share::Shared, Share::Exclusive),
            (Share::Exclusive, Share::Exclusive),
        ] {
            let held = OutputLock::try_acquire(&dir, before).unwrap().unwrap();
            let held = Rc::new(RefCell::new(Some(held)));
            let calls = Rc::new(Cell::new(0));
            let (hook_held, hook_calls) = (Rc::clone(&held), Rc::clone(&calls));
            after_open(Some(Box::new(move || {
                hook_calls.set(hook_calls.get() + 1);
                drop(hook_held.borrow_mut().take()); // the holder leaves
            })));
            let got = OutputLock::try_acquire(&dir, share).unwrap();
            after_open(None);
            let lock = got.unwrap_or_else(|holder| {
                panic!("{before:?} then {share:?}: refused ({holder}) though no one holds it")
            });
            assert!(held.borrow().is_none());
            assert_eq!(calls.get(), 1, "{before:?} then {share:?}");
            drop(lock);
            assert!(!path.exists(), "{before:?} then {share:?}: lock file left");
        }
        // Busy: refused without starting over.
        let held = OutputLock::try_acquire(&dir, Share::Exclusive)
            .unwrap()
            .unwrap();
        let calls = Rc::new(Cell::new(0));
        let hook_calls = Rc::clone(&calls);
        after_open(Some(Box::new(move || hook_calls.set(hook_calls.get() + 1))));
        let got = OutputLock::try_acquire(&dir, Share::Shared).unwrap();
        after_open(None);
        assert!(got.is_err(), "taken beside an exclusive holder");
        assert_eq!(calls.get(), 1, "a busy lock was tried again");
        drop(held);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A lock file replaced under it every time (runs taking and leaving it in
    /// a tight loop) is tried a bounded number of times, then refused.
    #[cfg(unix)]
    #[test]
    fn a_lock_file_that_keeps_changing_is_refused_after_bounded_retries() {
        use std::cell::Cell;
        use std::rc::Rc;
        let dir = scratch("churn");
        let path = dir.join(LOCK_FILE);
        std::fs::write(&path, MARKER).unwrap();
        let calls = Rc::new(Cell::new(0));
        let (hook_path, hook_calls) = (path.clone(), Rc::clone(&calls));
        after_open(Some(Box::new(move || {
            hook_calls.set(hook_calls.get() + 1);
            std::fs::remove_file(&hook_path).unwrap();
            std::fs::write(&hook_path, MARKER).unwrap(); // a new file, a new inode
        })));
        let got = OutputLock::try_acquire(&dir, Share::Shared).unwrap();
        after_open(None);
        assert!(got.is_err(), "took a lock file that changed under it");
        assert_eq!(calls.get(), CHANGED_RETRIES + 1);
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

    /// The store lock's modes: shared holders coexist, an exclusive one
    /// excludes them and they it; a refused run is told who holds the lock;
    /// a shared holder leaves the file, the next exclusive holder removes it.
    #[test]
    fn shared_holders_coexist_and_exclude_an_exclusive_one() {
        let dir = scratch("shared");
        let path = dir.join(LOCK_FILE);
        let take = |share| OutputLock::try_acquire(&dir, share).unwrap();
        let a = take(Share::Shared).expect("first shared holder");
        let b = take(Share::Shared).expect("a second shared holder");
        let refused = take(Share::Exclusive)
            .err()
            .expect("exclusive beside shared holders");
        let me = format!("pid {} on host {}", std::process::id(), host_name());
        assert_eq!(refused, me);
        drop(a);
        assert!(
            path.exists(),
            "a shared holder removed the file another holds"
        );
        drop(b);
        #[cfg(unix)]
        assert!(!path.exists(), "the last shared holder left the lock file");
        let c = take(Share::Exclusive).expect("exclusive once free");
        assert_eq!(take(Share::Shared).err().as_deref(), Some(me.as_str()));
        assert_eq!(take(Share::Exclusive).err().as_deref(), Some(me.as_str()));
        drop(c);
        assert!(!path.exists(), "the exclusive holder left the lock file");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Shared holders never exclude one another: a slab that starts while
    /// another slab ends is never refused. The last shared holder out takes
    /// the lock exclusively to remove the file; on main a slab that opened the
    /// file just before got WouldBlock then and was refused, naming a sibling
    /// slab as "another ctstack run" (2110 of 12,000 attempts). Threads stand
    /// for slab processes (flock locks belong to open files, not processes).
    #[cfg(unix)]
    #[test]
    fn a_shared_holder_is_never_refused_by_another_shared_holder_leaving() {
        let dir = std::env::temp_dir().join(format!("ctstack-lock-s29-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let refused = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (dir, refused) = (dir.clone(), std::sync::Arc::clone(&refused));
                std::thread::spawn(move || {
                    for _ in 0..3000 {
                        match OutputLock::try_acquire(&dir, Share::Shared).unwrap() {
                            Ok(lock) => drop(lock),
                            Err(_) => {
                                refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            refused.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "slabs refused by slabs"
        );
    }
}
