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
/// ([`Error::LimitsExceeded`]), the caller ([`Error::Usage`], [`Error::Mismatch`]),
/// what is on disk ([`Error::State`]: a call that needs a finished pyramid finds
/// an incomplete one), ctstack itself ([`Error::Internal`]) and the caller's wish
/// to stop ([`Error::Cancelled`]).
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
    /// What is on disk is not what the call needs, though the call itself is
    /// right: a pyramid that is missing, incomplete (its last build did not
    /// finish) or stale (its files changed since), outputs no slab built, an
    /// input folder holding no slices, an existing output that ctstack did not
    /// write. The fix is on disk (build again, run the missing slabs, choose
    /// another folder), not in the call.
    #[error("{}: {what}", path.display())]
    State {
        /// The file or folder involved.
        path: PathBuf,
        /// What is wrong with it, and what to do.
        what: String,
    },
    /// An invariant of ctstack broke, or the system refused it a resource it
    /// cannot run without (a thread pool): not the caller's fault, nor a file's.
    #[error("internal error: {what}")]
    Internal {
        /// What broke.
        what: String,
    },
}

/// The broad class of an [`Error`]: one value per variant, for callers that
/// branch on the kind (the C ABI maps these to its status codes).
///
/// New kinds may be added in a minor release: a `match` needs a `_` arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
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
    /// See [`Error::State`].
    State,
    /// See [`Error::Internal`].
    Internal,
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
            ErrorKind::State => "not in the state needed",
            ErrorKind::Internal => "internal error",
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
            Error::State { .. } => ErrorKind::State,
            Error::Internal { .. } => ErrorKind::Internal,
        }
    }

    /// The file this error is about, if it is about one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::Io { path, .. }
            | Error::Format { path, .. }
            | Error::Unsupported { path, .. }
            | Error::LimitsExceeded { path, .. }
            | Error::State { path, .. } => Some(path),
            Error::Mismatch { .. }
            | Error::Usage { .. }
            | Error::Cancelled
            | Error::Internal { .. } => None,
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

    /// An [`Error::State`]: `path` on disk is not what the call needs (`what`
    /// says how, and what to do about it).
    pub(crate) fn state(path: impl Into<PathBuf>, what: impl Into<String>) -> Error {
        Error::State {
            path: path.into(),
            what: what.into(),
        }
    }

    /// An [`Error::Internal`]: an invariant of ctstack broke.
    pub(crate) fn internal(what: impl Into<String>) -> Error {
        Error::Internal { what: what.into() }
    }
}

/// The interface a message is shown in. ctstack's messages name the option
/// that fixes a problem as the Rust API spells it (`Crop::skip_missing(true)`,
/// the `Display` a Rust caller sees); [`Error::message_for`] spells it the
/// interface's way, so each says the same thing in its own words: the command
/// line (`--skip-missing`) and the C ABI (`options.skip_missing = 1`, whose
/// messages Python's binding spells `skip_missing=True`).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `Crop::skip_missing(true)`: the message as it is.
    Rust,
    /// `--skip-missing`.
    Cli,
    /// `options.skip_missing = 1`.
    C,
}

/// Each option a message may name: its Rust, CLI and C spellings (Python's
/// are in python/ctstack/_errors.py, from the C ones).
const OPTION_WORDS: &[[&str; 3]] = &[
    [
        "Crop::skip_missing(true)",
        "--skip-missing",
        "options.skip_missing = 1",
    ],
    [
        "PyramidBuilder::convert_depth(SampleType::U8 or U16)",
        "`ctstack pyramid --depth 8|16`",
        "options.depth = 8|16",
    ],
    [
        "ZarrBuilder::shard(None)",
        "no --shard",
        "zarr_options.shard = {0, 0, 0}",
    ],
    [
        "ZarrBuilder::ngff(Ngff::V0_4)",
        "--ngff 0.4",
        "zarr_options.ngff = 4",
    ],
    [
        "PyramidBuilder::single_page(true)",
        "--single-page",
        "options.single_page = 1",
    ],
    [
        "build it with PyramidBuilder",
        "build it with `ctstack pyramid`",
        "build it with ctstack_pyramid_build",
    ],
    [
        "PyramidBuilder::output_dir(DIR)",
        "--out DIR",
        "options.output_dir = DIR",
    ],
];

impl Error {
    /// This error's message with the options it names spelled for `dialect`
    /// (see [`Dialect`]).
    #[doc(hidden)]
    pub fn message_for(&self, dialect: Dialect) -> String {
        let mut message = self.to_string();
        let column = match dialect {
            Dialect::Rust => return message,
            Dialect::Cli => 1,
            Dialect::C => 2,
        };
        for words in OPTION_WORDS {
            if message.contains(words[0]) {
                message = message.replace(words[0], words[column]);
            }
        }
        message
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_interface_names_an_option_in_its_own_words() {
        let e = Error::state(
            "/scans/ct",
            "number 15 (ct_0015.tif) is missing: skip it with Crop::skip_missing(true)",
        );
        let spelled = |d| e.message_for(d);
        assert!(spelled(Dialect::Rust).contains("with Crop::skip_missing(true)"));
        assert_eq!(spelled(Dialect::Rust), e.to_string());
        assert!(spelled(Dialect::Cli).contains("with --skip-missing"));
        assert!(spelled(Dialect::C).contains("with options.skip_missing = 1"));
        // Every option's spellings are distinct, and none holds another's
        // Rust spelling (a rewrite never rewrites its own result).
        for words in OPTION_WORDS {
            for other in OPTION_WORDS {
                assert!(!words[1].contains(other[0]) && !words[2].contains(other[0]));
            }
        }
    }

    #[test]
    fn state_and_internal_errors_have_their_kinds_and_messages() {
        let e = Error::state("/scans/out", "the pyramid is incomplete: build it again");
        assert_eq!(e.kind(), ErrorKind::State);
        assert_eq!(e.path(), Some(Path::new("/scans/out")));
        assert_eq!(
            e.to_string(),
            "/scans/out: the pyramid is incomplete: build it again"
        );
        let e = Error::internal("cannot start a pool of 4 threads: no memory");
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert_eq!(e.path(), None);
        assert_eq!(
            e.to_string(),
            "internal error: cannot start a pool of 4 threads: no memory"
        );
        // Each kind has its own text.
        let kinds = [
            ErrorKind::Io,
            ErrorKind::Format,
            ErrorKind::Unsupported,
            ErrorKind::LimitsExceeded,
            ErrorKind::Mismatch,
            ErrorKind::Usage,
            ErrorKind::Cancelled,
            ErrorKind::State,
            ErrorKind::Internal,
        ];
        let texts: std::collections::HashSet<String> =
            kinds.iter().map(ToString::to_string).collect();
        assert_eq!(texts.len(), kinds.len());
    }
}
