//! The one error type of ctstack, split by who is at fault.
//!
//! Every variant that concerns a file names it, so a message read in a log or a
//! dialog box says which slice of a 2000-slice stack is the bad one.

use std::fmt;
use std::path::{Path, PathBuf};

/// Everything that can go wrong in ctstack.
///
/// The variants follow blame: the file ([`Error::Format`]), the library's reach
/// ([`Error::Unsupported`]), the system ([`Error::Io`]), the budget
/// ([`Error::LimitsExceeded`]), the caller ([`Error::Usage`], [`Error::Mismatch`])
/// and the caller's wish to stop ([`Error::Cancelled`]).
///
/// ```
/// use ctstack::{ErrorKind, Slice};
///
/// let path = std::env::temp_dir().join(format!("ctstack-doc-error-{}.tif", std::process::id()));
/// std::fs::write(&path, b"scanned on Tuesday")?;
/// let e = Slice::open(&path).unwrap_err();
/// // Who is to blame, for code: the file.
/// assert_eq!(e.kind(), ErrorKind::Format);
/// assert_eq!(e.path(), Some(path.as_path()));
/// // And for people: the message names the file and what is wrong with it.
/// assert!(e.to_string().starts_with(&path.display().to_string()), "{e}");
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be opened, read or written.
    #[error("{}: {what}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// What was being done ("cannot open", "cannot write", ...).
        what: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not an image ctstack reads (TIFF, BMP, PNG, JPEG), or is a
    /// malformed or truncated one: the file is to blame.
    #[error("{}: {what}", path.display())]
    Format {
        /// The file involved.
        path: PathBuf,
        /// What is wrong, with the offsets and sizes involved.
        what: String,
    },
    /// A valid file that ctstack does not handle (a compression it does not
    /// decode, a volume in one page, an RLE BMP, ...): ctstack's reach is to blame.
    #[error("{}: unsupported: {what}", path.display())]
    Unsupported {
        /// The file involved.
        path: PathBuf,
        /// What it is that is not supported.
        what: String,
    },
    /// The file asks for more than the configured [`Limits`](crate::Limits) allow.
    #[error("{}: limit exceeded: {what}", path.display())]
    LimitsExceeded {
        /// The file involved.
        path: PathBuf,
        /// Which limit, and the size the file asked for.
        what: String,
    },
    /// Slices that must agree do not (size or depth), or a destination buffer has
    /// the wrong length. The message names the files involved.
    #[error("{what}")]
    Mismatch {
        /// What differs from what, naming the files involved.
        what: String,
    },
    /// The caller asked for something impossible (empty stack, bad option, ...).
    #[error("invalid argument: {what}")]
    Usage {
        /// What is wrong with the request.
        what: String,
    },
    /// The caller asked the run to stop.
    #[error("cancelled")]
    Cancelled,
}

/// The broad class of an [`Error`]: one value per variant, for callers that
/// branch on the kind (the C ABI maps these to its status codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// See [`Error::Io`].
    Io,
    /// See [`Error::Format`].
    Format,
    /// See [`Error::Unsupported`].
    Unsupported,
    /// See [`Error::LimitsExceeded`].
    LimitsExceeded,
    /// See [`Error::Mismatch`].
    Mismatch,
    /// See [`Error::Usage`].
    Usage,
    /// See [`Error::Cancelled`].
    Cancelled,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Io => "I/O error",
            ErrorKind::Format => "malformed file",
            ErrorKind::Unsupported => "unsupported file",
            ErrorKind::LimitsExceeded => "limit exceeded",
            ErrorKind::Mismatch => "mismatch",
            ErrorKind::Usage => "invalid argument",
            ErrorKind::Cancelled => "cancelled",
        })
    }
}

impl Error {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { .. } => ErrorKind::Io,
            Error::Format { .. } => ErrorKind::Format,
            Error::Unsupported { .. } => ErrorKind::Unsupported,
            Error::LimitsExceeded { .. } => ErrorKind::LimitsExceeded,
            Error::Mismatch { .. } => ErrorKind::Mismatch,
            Error::Usage { .. } => ErrorKind::Usage,
            Error::Cancelled => ErrorKind::Cancelled,
        }
    }

    /// The file this error is about, if it is about one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::Io { path, .. }
            | Error::Format { path, .. }
            | Error::Unsupported { path, .. }
            | Error::LimitsExceeded { path, .. } => Some(path),
            Error::Mismatch { .. } | Error::Usage { .. } | Error::Cancelled => None,
        }
    }

    pub(crate) fn io(path: &Path, what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            what: what.into(),
            source,
        }
    }

    pub(crate) fn mismatch(what: impl Into<String>) -> Error {
        Error::Mismatch { what: what.into() }
    }

    pub(crate) fn mismatch_at(path: &Path, what: impl std::fmt::Display) -> Error {
        Error::Mismatch {
            what: format!("{}: {what}", path.display()),
        }
    }

    pub(crate) fn usage(what: impl Into<String>) -> Error {
        Error::Usage { what: what.into() }
    }
}

/// A problem found while parsing bytes, before it is tied to a file name.
///
/// The parser works on byte slices and knows no paths; [`Problem::at`] turns it
/// into an [`Error`] once the caller knows which file the bytes came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
    Format(String),
    Unsupported(String),
    Limits(String),
    /// The caller asked for something the file does not have (a page past its last).
    Usage(String),
}

impl Problem {
    /// The problem, its message prefixed `page N: ` for pages after the first
    /// (page 0 is what a one-page file is, and keeps its messages).
    pub(crate) fn on_page(self, index: usize) -> Problem {
        if index == 0 {
            return self;
        }
        let prefix = |what: String| format!("page {index}: {what}");
        match self {
            Problem::Format(w) => Problem::Format(prefix(w)),
            Problem::Unsupported(w) => Problem::Unsupported(prefix(w)),
            Problem::Limits(w) => Problem::Limits(prefix(w)),
            Problem::Usage(w) => Problem::Usage(w),
        }
    }

    pub(crate) fn at(self, path: &Path) -> Error {
        let path = path.to_path_buf();
        match self {
            Problem::Format(what) => Error::Format { path, what },
            Problem::Unsupported(what) => Error::Unsupported { path, what },
            Problem::Limits(what) => Error::LimitsExceeded { path, what },
            Problem::Usage(what) => Error::Usage {
                what: format!("{}: {what}", path.display()),
            },
        }
    }
}

/// Shorthand for a [`Problem::Format`] built with `format!`.
macro_rules! format_problem {
    ($($arg:tt)*) => { $crate::error::Problem::Format(format!($($arg)*)) };
}
pub(crate) use format_problem;
