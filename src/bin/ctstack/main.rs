//! The `ctstack` command-line tool: a thin layer over the library.
//!
//! Exit status ([`EXIT_STATUSES`], also in `ctstack --help`): 0 success, 1 a
//! failed run, 2 a wrong command line, 3 a folder not in the state the command
//! needs, 4 an internal error, 130 interrupted with Ctrl-C.

/// `println!` that ends the process quietly when stdout is closed early
/// (`ctstack info DIR | head`), as a command killed by SIGPIPE would (status
/// 141), instead of panicking; any other write error is an error message and
/// status 1. Every module below prints through it.
macro_rules! println {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            $crate::stdout_failed(e)
        }
    }};
}

/// Ends the process after a failed write to stdout: see `println!`.
fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(141);
    }
    eprintln!("ctstack: error: cannot write to standard output: {e}");
    std::process::exit(1);
}

mod crop;
mod info;
mod interrupt;
mod progress;
mod pyramid;
mod select;
mod signature;
#[cfg(feature = "ome-zarr")]
mod zarr;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ctstack::{ErrorKind, ReadMode};

/// Exit status of a failed run: a file unreadable, malformed, unsupported or
/// beyond the limits, slices that do not match, a write that failed.
const EXIT_FAILURE: u8 = 1;
/// Exit status of a wrong command line, as clap and POSIX tools (grep, diff, ls) use.
const EXIT_USAGE: u8 = 2;
/// Exit status of a right command line that finds the disk in another state than
/// it needs (an input folder with no slices, a pyramid incomplete or changed).
const EXIT_STATE: u8 = 3;
/// Exit status of an internal error: a bug, or a resource the system refused.
const EXIT_INTERNAL: u8 = 4;
/// Exit status of a run stopped by Ctrl-C: 128 + SIGINT, what shells report.
const EXIT_INTERRUPTED: u8 = 130;

/// The exit statuses, as `--help` shows them (docs/cli.md has the causes per status).
const EXIT_STATUSES: &str = "\
Exit status:
  0    success
  1    the run failed: a file unreadable, malformed, unsupported or beyond the
       limits, slices that do not match, a write that failed
  2    wrong command line (unknown option, bad value, missing argument, a
       one-page file as INPUT without --single-page)
  3    the disk is not in the state the command needs (INPUT does not exist or
       holds no slice files); the command line is right, fix the folder
  4    internal error: a bug in ctstack, or a resource the system refused
       (threads); please report it
  130  interrupted (Ctrl-C); only complete output files are left, and a
       later run resumes from them

Run 'ctstack <COMMAND> --help' for a command's options; docs/cli.md has the
table of causes.";

/// Thumbnail pyramids, crops and OME-Zarr images of CT-scan slice stacks (TIFF, BMP, PNG, JPEG).
#[derive(Parser)]
// bin_name: help says `ctstack`, what users type, on Windows too (not `ctstack.exe`).
#[command(
    name = "ctstack",
    bin_name = "ctstack",
    version,
    propagate_version = true
)]
#[command(after_help = EXIT_STATUSES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Describe slice files, a stack directory (size, depth, access paths, numbering
    /// gaps, files that will be skipped), a built pyramid or an OME-Zarr store (levels,
    /// complete, current).
    Info(info::InfoArgs),
    /// Build the level-of-detail pyramid of the slices in INPUT (a directory, or one multi-page TIFF).
    Pyramid(pyramid::PyramidArgs),
    /// Cut a box and a slice range out of the stack in INPUT (or out of a level of
    /// its pyramid) into one file per slice.
    Crop(crop::CropArgs),
    /// Write the stack and its pyramid as an OME-Zarr multiscale image (napari, Fiji,
    /// neuroglancer, zarr-python read it).
    #[cfg(feature = "ome-zarr")]
    Zarr(zarr::ZarrArgs),
}

/// How files are brought into memory (every command: pyramid, zarr, crop, info).
#[derive(Args)]
struct ReadArgs {
    /// How files are brought into memory.
    #[arg(long, value_name = "POLICY", value_enum, default_value_t = MmapPolicy::Auto)]
    mmap: MmapPolicy,
    /// Same as --mmap never.
    #[arg(long, conflicts_with = "mmap")]
    no_mmap: bool,
}

/// The `--mmap` values (the help says what mapping risks on this OS).
#[derive(Clone, Copy, ValueEnum)]
enum MmapPolicy {
    #[cfg_attr(
        not(windows),
        doc = "Memory-map, but read files on network filesystems (NFS, SMB, sshfs/FUSE, ...)"
    )]
    #[cfg_attr(
        windows,
        doc = "Memory-map, but read files on network shares (\\\\server\\share paths, network drives)"
    )]
    Auto,
    #[cfg_attr(
        not(windows),
        doc = "Memory-map every file: zero-copy, but if another program truncates a file while \
               it is mapped, ctstack is killed by SIGBUS"
    )]
    #[cfg_attr(
        windows,
        doc = "Memory-map every file: zero-copy, but if a network share drops while a file on \
               it is mapped, ctstack is stopped by an in-page error; other programs cannot \
               delete or shorten a file while it is mapped"
    )]
    Always,
    /// Never map: read files (pyramid inputs in bands of rows, other files whole):
    /// immune to files changing while they are read; use it while a scanner or sync
    /// tool may still be writing them
    Never,
}

impl ReadArgs {
    fn read_mode(&self) -> ReadMode {
        match (self.no_mmap, self.mmap) {
            (true, _) | (_, MmapPolicy::Never) => ReadMode::Buffered,
            (false, MmapPolicy::Always) => ReadMode::Mmap,
            (false, MmapPolicy::Auto) => ReadMode::Auto,
        }
    }
}

/// Why a command did not succeed.
enum Failure {
    /// The work failed: print the error, exit with the status of its kind ([`exit_status`]).
    Run(ctstack::Error),
    /// Failed, and the reasons are already printed: exit with this status.
    Reported(u8),
    /// Ctrl-C: the message to print, exit 130.
    Interrupted(String),
}

impl From<ctstack::Error> for Failure {
    fn from(e: ctstack::Error) -> Failure {
        Failure::Run(e)
    }
}

fn main() -> ExitCode {
    // clap prints its own errors (one line, then a pointer to --help) and exits 2;
    // --help and --version exit 0.
    let cli = Cli::parse();
    let (result, command) = match cli.command {
        Command::Info(args) => (info::run(&args), "info"),
        Command::Pyramid(args) => (pyramid::run(&args), "pyramid"),
        Command::Crop(args) => (crop::run(&args), "crop"),
        #[cfg(feature = "ome-zarr")]
        Command::Zarr(args) => (zarr::run(&args), "zarr"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Run(e)) => {
            eprintln!("ctstack: error: {}", e.message_for(ctstack::Dialect::Cli));
            match e.kind() {
                ErrorKind::Usage => {
                    eprintln!("\nFor more information, try 'ctstack {command} --help'.");
                }
                ErrorKind::Internal => eprintln!(
                    "\nThis is a bug in ctstack, or the system refused it a resource it \
                     cannot run without: please report it."
                ),
                _ => {}
            }
            ExitCode::from(exit_status(e.kind()))
        }
        Err(Failure::Reported(status)) => ExitCode::from(status),
        Err(Failure::Interrupted(message)) => {
            eprintln!("ctstack: {message}");
            ExitCode::from(EXIT_INTERRUPTED)
        }
    }
}

/// `e` with, for a failure to create an output in the default place (beside or
/// inside the input, which an archived or shared scan may not allow), the option
/// that writes elsewhere: `out_option` (`--out DIR`).
pub(crate) fn with_out_hint(e: ctstack::Error, out_option: &str) -> ctstack::Error {
    match e {
        ctstack::Error::Io { path, what, source } if what.starts_with("cannot create") => {
            ctstack::Error::Io {
                what: format!(
                    "{what} (to write elsewhere, e.g. when the scan's folder is read-only, pass \
                     {out_option})"
                ),
                path,
                source,
            }
        }
        other => other,
    }
}

/// `"1 gap"`, `"2 gaps"`, `"3 entries"`.
pub(crate) fn plural<N: std::fmt::Display + TryInto<u8> + Copy>(n: N, word: &str) -> String {
    match (n.try_into().ok() == Some(1), word.strip_suffix('y')) {
        (true, _) => format!("1 {word}"),
        (false, Some(stem)) => format!("{n} {stem}ies"),
        (false, None) => format!("{n} {word}s"),
    }
}

/// Levels `first..=last` by number, as every command names them: `level 1`,
/// `levels 1-2`, `levels 0-2` (level 0 is the slices; a pyramid holds 1 to L,
/// a store 0 to L: docs/cli.md, "Levels").
pub(crate) fn levels(first: usize, last: usize) -> String {
    match last.cmp(&first) {
        std::cmp::Ordering::Less => "no level".into(),
        std::cmp::Ordering::Equal => format!("level {first}"),
        std::cmp::Ordering::Greater => format!("levels {first}-{last}"),
    }
}

/// The exit status of a failure of kind `kind` (see [`EXIT_STATUSES`]).
fn exit_status(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Usage => EXIT_USAGE,
        ErrorKind::State => EXIT_STATE,
        ErrorKind::Internal => EXIT_INTERNAL,
        ErrorKind::Cancelled => EXIT_INTERRUPTED,
        _ => EXIT_FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_the_exit_status_the_help_states() {
        let expected = [
            (ErrorKind::Io, 1),
            (ErrorKind::Format, 1),
            (ErrorKind::Unsupported, 1),
            (ErrorKind::LimitsExceeded, 1),
            (ErrorKind::Mismatch, 1),
            (ErrorKind::Usage, 2),
            (ErrorKind::State, 3),
            (ErrorKind::Internal, 4),
            (ErrorKind::Cancelled, 130),
        ];
        for (kind, status) in expected {
            assert_eq!(exit_status(kind), status, "{kind:?}");
            let line = format!("\n  {status:<5}");
            assert!(
                EXIT_STATUSES.contains(&line),
                "--help lacks exit status {status}"
            );
        }
    }
}
