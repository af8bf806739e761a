//! Temporary files: the one place that makes them, names them, tells them by
//! their names and sweeps what killed runs left.
//!
//! Every file ctstack writes appears atomically: it is written to a temporary
//! file beside its target and renamed into place when complete
//! (`writer::write_atomically` and its siblings). A temporary name is
//! `.{target}.{pid}.{seq}.ctstack-tmp` ([`TEMP_SUFFIX`]): hidden, never taken
//! for a slice, and it says which file it was for ([`temp_target`]), so a
//! [`sweep`] removes only temporary files of the names its caller writes. A
//! file merely named like one (`.notes.ctstack-tmp`) is the user's.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Error;
use crate::writer::{parent_of, remove_file, rename};

/// The suffix of temporary files.
pub(crate) const TEMP_SUFFIX: &str = ".ctstack-tmp";

/// A temporary file removed on drop unless persisted.
pub(crate) struct TempFile {
    path: PathBuf,
    file: File,
    persisted: bool,
}

impl TempFile {
    /// A new temporary file beside `target`, named for it:
    /// `.{target}.{pid}.{seq}.ctstack-tmp`, created exclusively (so it is ours).
    pub fn create(target: &Path) -> Result<TempFile, Error> {
        static SEQUENCE: AtomicU64 = AtomicU64::new(0);
        let dir = parent_of(target);
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".{name}.{}.{seq}{TEMP_SUFFIX}", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| {
                let what = format!("cannot create {}", describe(&path));
                Error::io(target, what, e)
            })?;
        Ok(TempFile {
            path,
            file,
            persisted: false,
        })
    }

    /// The open file, to write.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// `temporary file NAME`, for messages that name the final path first.
    pub fn describe(&self) -> String {
        describe(&self.path)
    }

    /// Renames the file to `target` (replacing it): it is no longer temporary.
    pub fn persist(mut self, target: &Path) -> Result<(), Error> {
        rename(&self.path, target).map_err(|e| {
            let what = format!("cannot rename {} into place", self.describe());
            Error::io(target, what, e)
        })?;
        self.persisted = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        // Created by this very value (`create_new`): ours.
        if !self.persisted {
            let _ = remove_file(&self.path);
        }
    }
}

/// `temporary file NAME` for the temporary file at `path`.
fn describe(path: &Path) -> String {
    let name = path.file_name().unwrap_or(path.as_os_str());
    format!("temporary file {}", name.to_string_lossy())
}

/// Whether `name` is one of our temporary files.
pub(crate) fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(TEMP_SUFFIX)
}

/// The name of the file that temporary file `name` was for, if `name` is
/// exactly a temporary name as [`write_atomically`] makes it:
/// `.{target}.{pid}.{seq}.ctstack-tmp`, pid and seq decimal.
pub(crate) fn temp_target(name: &str) -> Option<&str> {
    let inner = name.strip_prefix('.')?.strip_suffix(TEMP_SUFFIX)?;
    let (rest, seq) = inner.rsplit_once('.')?;
    let (target, pid) = rest.rsplit_once('.')?;
    let decimal = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (decimal(seq) && decimal(pid) && !target.is_empty()).then_some(target)
}

/// The pid in temporary name `name` (`.{target}.{pid}.{seq}.ctstack-tmp`),
/// if it is exactly one.
pub(crate) fn temp_pid(name: &str) -> Option<u32> {
    temp_target(name)?;
    let inner = name.strip_prefix('.')?.strip_suffix(TEMP_SUFFIX)?;
    let (rest, _seq) = inner.rsplit_once('.')?;
    rest.rsplit_once('.')?.1.parse().ok()
}

/// Whether process `pid` may be alive on this host: on Unix, whether it
/// exists (`kill(pid, 0)` succeeds or is refused for permission); elsewhere
/// only this process is known to be.
pub(crate) fn may_be_live(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        if pid <= 0 {
            return false;
        }
        // SAFETY: signal 0 sends nothing: it only asks whether `pid` exists.
        let rc = unsafe { libc::kill(pid, 0) };
        rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    false
}

/// Where [`sweep`] looks for temporary files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// The folder itself.
    Folder,
    /// The folder and every folder under it (symbolic links never followed).
    Tree,
}

/// Removes the temporary files that killed runs left in `dir` (as far as
/// `reach` says): files named exactly as [`TempFile`] names them, whose target
/// `ours` accepts; anything else, even a temporary file of another target (it
/// may be another run's), stays. The caller holds what makes the removal safe
/// (a lock, or the names of its own outputs). Returns how many it removed; it
/// tries every one, and an error (a folder it cannot list, a file it cannot
/// remove, each named) is the first it met.
pub(crate) fn sweep(dir: &Path, reach: Reach, ours: impl Fn(&str) -> bool) -> Result<usize, Error> {
    sweep_with(dir, reach, ours, false)
}

/// [`sweep`], leaving also every temporary file whose pid may be a live
/// process on this host ([`may_be_live`]): for a folder where a live process
/// could still be writing (the OME-Zarr store, whose slabs run on many
/// processes).
pub(crate) fn sweep_dead(
    dir: &Path,
    reach: Reach,
    ours: impl Fn(&str) -> bool,
) -> Result<usize, Error> {
    sweep_with(dir, reach, ours, true)
}

fn sweep_with(
    dir: &Path,
    reach: Reach,
    ours: impl Fn(&str) -> bool,
    skip_live: bool,
) -> Result<usize, Error> {
    let mut removed = 0;
    let mut first_error = None;
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(e) => {
                first_error.get_or_insert(Error::io(&folder, "cannot list directory", e));
                continue;
            }
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() && reach == Reach::Tree {
                folders.push(entry.path());
                continue;
            }
            let name = entry.file_name();
            let is_ours = name.to_str().and_then(temp_target).is_some_and(&ours);
            if !(is_ours && kind.is_file()) {
                continue;
            }
            let live = || name.to_str().and_then(temp_pid).is_some_and(may_be_live);
            if skip_live && live() {
                continue;
            }
            let path = entry.path();
            match remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) => {
                    let what = "cannot remove a temporary file of a killed run";
                    first_error.get_or_insert(Error::io(&path, what, e));
                }
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(removed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temporary_name_says_its_target() {
        assert_eq!(
            temp_target(".000003.tif.41.7.ctstack-tmp"),
            Some("000003.tif")
        );
        assert_eq!(
            temp_target(".ctstack.json.1.0.ctstack-tmp"),
            Some("ctstack.json")
        );
        for foreign in [
            ".notes.ctstack-tmp",
            ".000003.tif.x.7.ctstack-tmp",
            ".000003.tif.41..ctstack-tmp",
            "000003.tif.41.7.ctstack-tmp",
            "..1.2.ctstack-tmp",
            ".000003.tif.41.7.ctstack-tmp.bak",
        ] {
            assert_eq!(temp_target(foreign), None, "{foreign}");
        }
    }

    /// A sweep removes the temporary files of the targets it is given, in the
    /// folder or the whole tree, and nothing else.
    #[test]
    fn a_sweep_removes_only_temporary_files_of_its_targets() {
        let dir = std::env::temp_dir().join(format!("ctstack-sweep-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("1")).unwrap();
        let files = [
            ".000001.tif.41.7.ctstack-tmp",
            ".zarr.json.41.8.ctstack-tmp",
            ".notes.ctstack-tmp",
            "000001.tif",
            "1/.000002.tif.41.9.ctstack-tmp",
        ];
        let make = || {
            for f in files {
                std::fs::write(dir.join(f), b"x").unwrap();
            }
        };
        let left = || {
            files
                .iter()
                .filter(|f| dir.join(f).exists())
                .copied()
                .collect::<Vec<_>>()
        };
        make();
        let tifs = |t: &str| t.ends_with(".tif");
        assert_eq!(sweep(&dir, Reach::Folder, tifs).unwrap(), 1);
        assert_eq!(
            left(),
            [
                ".zarr.json.41.8.ctstack-tmp",
                ".notes.ctstack-tmp",
                "000001.tif",
                "1/.000002.tif.41.9.ctstack-tmp"
            ]
        );
        make();
        assert_eq!(sweep(&dir, Reach::Tree, |_| true).unwrap(), 3);
        assert_eq!(left(), [".notes.ctstack-tmp", "000001.tif"]);
        let missing = sweep(&dir.join("absent"), Reach::Folder, |_| true).unwrap_err();
        assert!(missing.to_string().contains("cannot list"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_temporary_name_says_its_pid_and_this_process_is_live() {
        assert_eq!(temp_pid(".000003.tif.41.7.ctstack-tmp"), Some(41));
        assert_eq!(temp_pid(".notes.ctstack-tmp"), None);
        assert!(may_be_live(std::process::id()));
        // Above Linux's largest pid_max (2^22): no such process.
        #[cfg(unix)]
        assert!(!may_be_live(4_999_999));
    }
}
