//! Renames and removals that wait out another program's brief hold on a file.
//!
//! On Windows a file that another program has open (without sharing delete
//! access) cannot be renamed over, renamed or removed: the call fails with
//! `ERROR_SHARING_VIOLATION` (32), `ERROR_ACCESS_DENIED` (5) or
//! `ERROR_LOCK_VIOLATION` (33). Virus scanners, the search indexer, sync clients
//! and image viewers open fresh files for a moment all the time, so such a
//! failure is usually gone a few milliseconds later. [`rename_with_retry`] and
//! [`remove_with_retry`] try again with a bounded backoff ([`BACKOFF`], about
//! 2.5 s in all) and, if the file is still held, return the error with a
//! sentence naming the likely cause and what to do.
//!
//! On other systems a rename or removal does not care who has the file open:
//! nothing is retried there and errors pass through unchanged.

use std::io;
use std::path::Path;
use std::time::Duration;

/// The waits between attempts: doubling from 10 ms, about 2.5 s in all, so a
/// scanner's or a thumbnailer's hold (milliseconds to a second) is waited out
/// while a program that keeps the file open fails the run within seconds.
pub(crate) const BACKOFF: [Duration; 8] = [
    Duration::from_millis(10),
    Duration::from_millis(20),
    Duration::from_millis(40),
    Duration::from_millis(80),
    Duration::from_millis(160),
    Duration::from_millis(320),
    Duration::from_millis(640),
    Duration::from_millis(1280),
];

/// What follows the system's message when the file stayed held.
pub(crate) const HELD_HINT: &str = "another program has the file open (a virus scanner, the \
    search indexer, a sync client or an image viewer): close it or wait, then run again \
    (finished outputs are kept); if nothing has it open, check that you may change files in \
    this folder";

/// [`std::fs::rename`], retried while another program holds `from` or `to`.
pub(crate) fn rename_with_retry(from: &Path, to: &Path) -> io::Result<()> {
    retry(|| std::fs::rename(from, to), is_held, &BACKOFF)
}

/// [`std::fs::remove_file`], retried while another program holds `path`.
pub(crate) fn remove_with_retry(path: &Path) -> io::Result<()> {
    retry(|| std::fs::remove_file(path), is_held, &BACKOFF)
}

/// Runs `op`, and again after each wait of `backoff` while it fails with an
/// error `held` accepts; the last such error gets [`HELD_HINT`] appended (its
/// kind kept). Other errors are returned at once, unchanged.
pub(crate) fn retry<T>(
    mut op: impl FnMut() -> io::Result<T>,
    held: impl Fn(&io::Error) -> bool,
    backoff: &[Duration],
) -> io::Result<T> {
    let mut waits = backoff.iter();
    loop {
        match op() {
            Err(e) if held(&e) => match waits.next() {
                Some(wait) => std::thread::sleep(*wait),
                None => return Err(io::Error::new(e.kind(), format!("{e}; {HELD_HINT}"))),
            },
            other => return other,
        }
    }
}

/// The Windows errors of a file another program has open: sharing violation
/// (32), access denied (5: also what a rename over an open file or the removal
/// of a file pending deletion gives), lock violation (33).
pub(crate) fn is_held_code(code: i32) -> bool {
    matches!(code, 5 | 32 | 33)
}

/// Whether `e` says another program holds the file (Windows only: elsewhere
/// no rename or removal fails for that reason).
fn is_held(e: &io::Error) -> bool {
    cfg!(windows) && e.raw_os_error().is_some_and(is_held_code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn held(e: &io::Error) -> bool {
        e.kind() == io::ErrorKind::PermissionDenied
    }

    #[test]
    fn a_brief_hold_is_waited_out() {
        let calls = Cell::new(0);
        let result = retry(
            || {
                calls.set(calls.get() + 1);
                if calls.get() < 3 {
                    Err(io::Error::from(io::ErrorKind::PermissionDenied))
                } else {
                    Ok(7)
                }
            },
            held,
            &[Duration::ZERO; 4],
        );
        assert_eq!(result.unwrap(), 7);
        assert_eq!(calls.get(), 3);
    }

    #[test]
    fn a_lasting_hold_fails_after_every_wait_naming_the_cause() {
        let calls = Cell::new(0);
        let e = retry(
            || -> io::Result<()> {
                calls.set(calls.get() + 1);
                Err(io::Error::from(io::ErrorKind::PermissionDenied))
            },
            held,
            &[Duration::ZERO; 4],
        )
        .unwrap_err();
        assert_eq!(calls.get(), 5, "one attempt, then one after each wait");
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains(HELD_HINT), "{e}");
    }

    #[test]
    fn other_errors_are_not_retried() {
        let calls = Cell::new(0);
        let e = retry(
            || -> io::Result<()> {
                calls.set(calls.get() + 1);
                Err(io::Error::from(io::ErrorKind::NotFound))
            },
            held,
            &[Duration::ZERO; 4],
        )
        .unwrap_err();
        assert_eq!(calls.get(), 1);
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(!e.to_string().contains(HELD_HINT));
    }

    #[test]
    fn the_windows_codes_of_a_held_file() {
        for code in [5, 32, 33] {
            assert!(is_held_code(code), "{code}");
        }
        for code in [2, 3, 145, 1224] {
            assert!(!is_held_code(code), "{code}");
        }
        let sharing = io::Error::from_raw_os_error(32);
        assert_eq!(is_held(&sharing), cfg!(windows));
    }

    #[test]
    fn the_backoff_is_bounded() {
        let total: Duration = BACKOFF.iter().sum();
        assert!(total <= Duration::from_secs(3), "{total:?}");
        assert!(BACKOFF.windows(2).all(|w| w[0] < w[1]));
    }
}
