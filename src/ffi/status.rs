//! Status codes: one enum with stable numbers, its names, and the one mapping
//! from [`ErrorKind`] to a status.

use std::ffi::c_char;

use crate::ErrorKind;

/// What a call returns: `CTSTACK_OK` (0) or why it failed. The numbers are
/// stable: a code is never renumbered or reused, new codes are added at the end
/// (treat an unknown one as a failure; `ctstack_status_name` names it).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
pub enum ctstack_status {
    /// Success.
    CTSTACK_OK = 0,
    /// File missing or unreadable, write failure.
    CTSTACK_ERR_IO = 1,
    /// Not a readable image, or a malformed or truncated one.
    CTSTACK_ERR_FORMAT = 2,
    /// A valid image this library does not handle: another decoder may read it.
    CTSTACK_ERR_UNSUPPORTED = 3,
    /// Slices differ in size or depth, or a destination buffer has the wrong length.
    CTSTACK_ERR_MISMATCH = 4,
    /// The progress callback (or a cancel call) asked to stop.
    CTSTACK_ERR_CANCELLED = 5,
    /// NULL pointer, path not UTF-8, an option out of range.
    CTSTACK_ERR_INVALID_ARGUMENT = 6,
    /// A bug in ctstack (a caught panic, a broken invariant), or the system
    /// refused a resource it cannot run without (a thread pool).
    CTSTACK_ERR_INTERNAL = 7,
    /// A file asks for more than the limits allow (size, memory, pages,
    /// compression ratio): possibly a decompression bomb. Do not hand it to a
    /// decoder with weaker limits.
    CTSTACK_ERR_LIMITS_EXCEEDED = 8,
    /// What is on disk is not what the call needs, though the call is right: a
    /// pyramid missing, incomplete or changed since it was built, outputs no slab
    /// built, an input folder with no slices. Fix the folder (build again, run
    /// the missing slabs), not the arguments.
    CTSTACK_ERR_STATE = 9,
}

impl ctstack_status {
    /// Every status, in numeric order.
    pub(crate) const ALL: [ctstack_status; 10] = [
        ctstack_status::CTSTACK_OK,
        ctstack_status::CTSTACK_ERR_IO,
        ctstack_status::CTSTACK_ERR_FORMAT,
        ctstack_status::CTSTACK_ERR_UNSUPPORTED,
        ctstack_status::CTSTACK_ERR_MISMATCH,
        ctstack_status::CTSTACK_ERR_CANCELLED,
        ctstack_status::CTSTACK_ERR_INVALID_ARGUMENT,
        ctstack_status::CTSTACK_ERR_INTERNAL,
        ctstack_status::CTSTACK_ERR_LIMITS_EXCEEDED,
        ctstack_status::CTSTACK_ERR_STATE,
    ];

    /// The one mapping from error kinds to status codes.
    pub(crate) fn of(kind: ErrorKind) -> ctstack_status {
        match kind {
            ErrorKind::Io => ctstack_status::CTSTACK_ERR_IO,
            ErrorKind::Format => ctstack_status::CTSTACK_ERR_FORMAT,
            ErrorKind::Unsupported => ctstack_status::CTSTACK_ERR_UNSUPPORTED,
            ErrorKind::LimitsExceeded => ctstack_status::CTSTACK_ERR_LIMITS_EXCEEDED,
            ErrorKind::Mismatch => ctstack_status::CTSTACK_ERR_MISMATCH,
            ErrorKind::Cancelled => ctstack_status::CTSTACK_ERR_CANCELLED,
            ErrorKind::Usage => ctstack_status::CTSTACK_ERR_INVALID_ARGUMENT,
            ErrorKind::State => ctstack_status::CTSTACK_ERR_STATE,
            ErrorKind::Internal => ctstack_status::CTSTACK_ERR_INTERNAL,
        }
    }

    /// The status with number `code`, if there is one.
    pub(crate) fn from_code(code: i32) -> Option<ctstack_status> {
        ctstack_status::ALL.into_iter().find(|s| *s as i32 == code)
    }

    /// The constant's name, e.g. `c"CTSTACK_ERR_IO"`.
    fn name(self) -> &'static std::ffi::CStr {
        match self {
            ctstack_status::CTSTACK_OK => c"CTSTACK_OK",
            ctstack_status::CTSTACK_ERR_IO => c"CTSTACK_ERR_IO",
            ctstack_status::CTSTACK_ERR_FORMAT => c"CTSTACK_ERR_FORMAT",
            ctstack_status::CTSTACK_ERR_UNSUPPORTED => c"CTSTACK_ERR_UNSUPPORTED",
            ctstack_status::CTSTACK_ERR_MISMATCH => c"CTSTACK_ERR_MISMATCH",
            ctstack_status::CTSTACK_ERR_CANCELLED => c"CTSTACK_ERR_CANCELLED",
            ctstack_status::CTSTACK_ERR_INVALID_ARGUMENT => c"CTSTACK_ERR_INVALID_ARGUMENT",
            ctstack_status::CTSTACK_ERR_INTERNAL => c"CTSTACK_ERR_INTERNAL",
            ctstack_status::CTSTACK_ERR_LIMITS_EXCEEDED => c"CTSTACK_ERR_LIMITS_EXCEEDED",
            ctstack_status::CTSTACK_ERR_STATE => c"CTSTACK_ERR_STATE",
        }
    }
}

/// The name of status `status` ("CTSTACK_OK", "CTSTACK_ERR_IO", ...), or
/// "CTSTACK_UNKNOWN_STATUS" for a number that is none. Static; any thread.
#[unsafe(no_mangle)]
pub extern "C" fn ctstack_status_name(status: i32) -> *const c_char {
    super::boundary::ffi_boundary! {
        ctstack_status::from_code(status)
            .map_or(c"CTSTACK_UNKNOWN_STATUS", ctstack_status::name)
            .as_ptr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_stable_and_names_match() {
        for (i, s) in ctstack_status::ALL.into_iter().enumerate() {
            assert_eq!(s as i32, i as i32);
            assert_eq!(ctstack_status::from_code(i as i32), Some(s));
            // SAFETY: ctstack_status_name returns a static NUL-terminated string.
            let name = unsafe { std::ffi::CStr::from_ptr(ctstack_status_name(i as i32)) };
            assert_eq!(name.to_str().unwrap(), format!("{s:?}"));
        }
        assert_eq!(
            ctstack_status::from_code(ctstack_status::ALL.len() as i32),
            None
        );
        assert_eq!(ctstack_status::from_code(-1), None);
    }

    #[test]
    fn every_kind_has_its_own_status() {
        let kinds = [
            (ErrorKind::Io, ctstack_status::CTSTACK_ERR_IO),
            (ErrorKind::Format, ctstack_status::CTSTACK_ERR_FORMAT),
            (
                ErrorKind::Unsupported,
                ctstack_status::CTSTACK_ERR_UNSUPPORTED,
            ),
            (ErrorKind::Mismatch, ctstack_status::CTSTACK_ERR_MISMATCH),
            (ErrorKind::Cancelled, ctstack_status::CTSTACK_ERR_CANCELLED),
            (
                ErrorKind::Usage,
                ctstack_status::CTSTACK_ERR_INVALID_ARGUMENT,
            ),
            (ErrorKind::Internal, ctstack_status::CTSTACK_ERR_INTERNAL),
            (
                ErrorKind::LimitsExceeded,
                ctstack_status::CTSTACK_ERR_LIMITS_EXCEEDED,
            ),
            (ErrorKind::State, ctstack_status::CTSTACK_ERR_STATE),
        ];
        for (kind, status) in kinds {
            assert_eq!(ctstack_status::of(kind), status, "{kind:?}");
        }
        // One status per kind, and every failure status is some kind's.
        let mut statuses: Vec<i32> = kinds.iter().map(|(_, s)| *s as i32).collect();
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            (1..ctstack_status::ALL.len() as i32).collect::<Vec<_>>()
        );
    }
}
