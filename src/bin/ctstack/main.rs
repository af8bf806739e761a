//! The `ctstack` command-line tool: a thin layer over the library.
//!
//! Exit status: 0 success, 1 a failed run, 2 a wrong command line (unknown option,
//! bad value, missing argument), 130 interrupted with Ctrl-C.

mod crop;
mod info;
mod interrupt;
mod progress;
mod pyramid;
mod select;
mod signature;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ctstack::{ErrorKind, ReadMode};

/// Exit status of a wrong command line, as clap and POSIX tools (grep, diff, ls) use.
const EXIT_USAGE: u8 = 2;
/// Exit status of a run stopped by Ctrl-C: 128 + SIGINT, what shells report.
const EXIT_INTERRUPTED: u8 = 130;

/// Thumbnail pyramids of CT-scan TIFF stacks, at memory-bus speed.
#[derive(Parser)]
#[command(name = "ctstack", version, propagate_version = true)]
#[command(after_help = "Run 'ctstack <COMMAND> --help' for a command's options.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Describe slice files, or a stack directory: size, depth, access paths,
    /// numbering gaps and files that will be skipped.
    Info(info::InfoArgs),
    /// Build the level-of-detail pyramid of the slices in INPUT (a directory, or one multi-page TIFF).
    Pyramid(pyramid::PyramidArgs),
    /// Cut a box and a slice range out of the stack in INPUT (or out of a level of
    /// its pyramid) into one file per slice.
    Crop(crop::CropArgs),
}

/// How files are brought into memory (both commands).
#[derive(Args)]
struct ReadArgs {
    /// How files are brought into memory.
    #[arg(long, value_name = "POLICY", value_enum, default_value_t = MmapPolicy::Auto)]
    mmap: MmapPolicy,
    /// Same as --mmap never.
    #[arg(long, conflicts_with = "mmap")]
    no_mmap: bool,
}

/// The `--mmap` values.
#[derive(Clone, Copy, ValueEnum)]
enum MmapPolicy {
    /// Memory-map, but read files on network filesystems (NFS, SMB, sshfs/FUSE, ...)
    Auto,
    /// Memory-map every file: zero-copy, but if another program truncates a file while
    /// it is mapped, ctstack is killed by SIGBUS
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
    /// The work failed: print the error, exit 1 (2 if the library blames the arguments).
    Run(ctstack::Error),
    /// Failed, and the reasons are already printed; exit 1.
    Reported,
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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Run(e)) if e.kind() == ErrorKind::Usage => {
            eprintln!(
                "ctstack: error: {e}\n\nFor more information, try 'ctstack {command} --help'."
            );
            ExitCode::from(EXIT_USAGE)
        }
        Err(Failure::Run(e)) => {
            eprintln!("ctstack: error: {e}");
            ExitCode::FAILURE
        }
        Err(Failure::Reported) => ExitCode::FAILURE,
        Err(Failure::Interrupted(message)) => {
            eprintln!("ctstack: {message}");
            ExitCode::from(EXIT_INTERRUPTED)
        }
    }
}
