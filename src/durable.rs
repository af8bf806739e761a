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

use std::fs::File;
use std::path::Path;

use crate::Error;

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
    fn a_missing_file_is_an_error_naming_it() {
        let path = std::env::temp_dir().join("ctstack-durable-missing/nothing.bin");
        let e = sync_path(&path).unwrap_err();
        assert!(e.to_string().contains("nothing.bin"), "{e}");
    }
}
