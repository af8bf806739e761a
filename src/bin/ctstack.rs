//! The `ctstack` command-line tool: a thin layer over the library.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ctstack::{CancelFlag, OpenOptions, PyramidBuilder, ReadMode, Slice};
use indicatif::{ProgressBar, ProgressStyle};

const USAGE: &str = "\
usage:
  ctstack info [--mmap auto|always|never] FILE...
      one line per file: size, depth, compression, byte order, access path (or the error)
  ctstack pyramid INPUT_DIR [--out DIR] [--min-size N] [--threads N] [--mmap auto|always|never]
                  [--strict] [--force] [--quiet]
      build the level-of-detail pyramid of the .tif/.tiff slices in INPUT_DIR
      --out DIR       where levels go, as DIR/<level>/<index:06>.tif (default INPUT_DIR/.thumbnail)
      --min-size N    halve while width or height exceeds N (default 500)
      --threads N     averaging threads (default: one per core)
      --strict        a gap in the slice numbering is an error, not a warning
      --force         rebuild every output (default: keep those made from unchanged inputs)
      --quiet         no progress bar and no summary
  --mmap POLICY (both commands) how files are brought into memory:
      auto    (default) memory-map, but read files under 128 KiB (faster) and files on
              network filesystems (NFS, SMB, sshfs/FUSE, ...)
      always  memory-map every file: zero-copy, but if another program truncates a file
              while it is mapped, ctstack is killed by SIGBUS
      never   read every file into memory (one copy): immune to files changing while they
              are read; use it while a scanner or sync tool may still be writing them
  --no-mmap           same as --mmap never
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("info") => info(&args[1..]),
        Some("pyramid") => pyramid(&args[1..]),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => Err(Failure::Usage("expected a command".into())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("ctstack: {msg}\n\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Run(e)) => {
            eprintln!("ctstack: error: {e}");
            ExitCode::FAILURE
        }
        Err(Failure::Quiet) => ExitCode::FAILURE,
    }
}

enum Failure {
    /// A wrong command line: the message, then the usage text; exit status 2.
    Usage(String),
    /// The work failed: the error; exit status 1.
    Run(ctstack::Error),
    /// Failed, and the reason is already printed; exit status 1.
    Quiet,
}

impl From<ctstack::Error> for Failure {
    fn from(e: ctstack::Error) -> Failure {
        Failure::Run(e)
    }
}

/// The `--mmap` value.
fn mmap_policy(value: &str) -> Result<ReadMode, Failure> {
    ReadMode::from_policy_name(value).ok_or_else(|| {
        Failure::Usage(format!(
            "--mmap: {value:?} is not one of auto, always, never"
        ))
    })
}

/// Prints one line per file; fails if any file failed to open.
fn info(args: &[String]) -> Result<(), Failure> {
    let mut options = OpenOptions::default();
    let mut files = Vec::new();
    let mut it = args.iter();
    let mut options_done = false;
    while let Some(arg) = it.next() {
        match arg.as_str() {
            _ if options_done => files.push(arg),
            "--" => options_done = true,
            "--mmap" => {
                let value = it
                    .next()
                    .ok_or_else(|| Failure::Usage("--mmap needs a value".into()))?;
                options.read_mode = mmap_policy(value)?;
            }
            "--no-mmap" => options.read_mode = ReadMode::Buffered,
            flag if flag.starts_with("--") => {
                return Err(Failure::Usage(format!("unknown option {flag}")));
            }
            _ => files.push(arg),
        }
    }
    if files.is_empty() {
        return Err(Failure::Usage("info needs at least one FILE".into()));
    }
    let mut failed = 0;
    for file in files {
        match Slice::open_with(file, &options) {
            Ok(s) => println!(
                "{file}: {}x{} {}{}, compression {}, {}{}, {}",
                s.width(),
                s.height(),
                s.sample_type(),
                match s.photometric() {
                    ctstack::Photometric::MinIsBlack => "",
                    _ => " min-is-white",
                },
                s.compression().name(),
                s.byte_order().name(),
                if s.is_bigtiff() { " BigTIFF" } else { "" },
                s.access()
            ),
            Err(e) => {
                failed += 1;
                println!("{file}: error ({}): {e}", e.kind());
            }
        }
    }
    if failed > 0 {
        return Err(Failure::Quiet);
    }
    Ok(())
}

fn pyramid(args: &[String]) -> Result<(), Failure> {
    let mut input: Option<PathBuf> = None;
    let mut out: Option<PathBuf> = None;
    let mut min_size = ctstack::DEFAULT_MIN_SIZE;
    let mut threads: Option<usize> = None;
    let (mut quiet, mut strict, mut force) = (false, false, false);
    let mut read_mode = ReadMode::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| Failure::Usage(format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--out" => out = Some(value("--out")?.into()),
            "--min-size" => min_size = number(&value("--min-size")?, "--min-size")?,
            "--threads" => threads = Some(number(&value("--threads")?, "--threads")?),
            "--quiet" | "-q" => quiet = true,
            "--strict" => strict = true,
            "--force" => force = true,
            "--mmap" => read_mode = mmap_policy(&value("--mmap")?)?,
            "--no-mmap" => read_mode = ReadMode::Buffered,
            flag if flag.starts_with('-') => {
                return Err(Failure::Usage(format!("unknown option {flag}")));
            }
            dir if input.is_none() => input = Some(dir.into()),
            extra => return Err(Failure::Usage(format!("unexpected argument {extra}"))),
        }
    }
    let input = input.ok_or_else(|| Failure::Usage("pyramid needs an INPUT_DIR".into()))?;
    let mut builder = PyramidBuilder::from_dir(&input)?
        .min_size(min_size)
        .strict(strict)
        .force(force)
        .read_mode(read_mode);
    if let Some(out) = out {
        builder = builder.output_dir(out);
    }
    if let Some(n) = threads {
        builder = builder.threads(n);
    }
    let plan = builder.plan()?;
    for warning in plan.warnings() {
        eprintln!("ctstack: warning: {warning}");
    }

    let bar = if quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(plan.total_units());
        let style = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} slices ({per_sec}, ETA {eta})",
        )
        .expect("the template is valid");
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    };
    let cancel = CancelFlag::new();
    let summary = plan.run(
        &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
        &cancel,
    );
    bar.finish_and_clear();
    let summary = summary?;
    // The plan's warnings come first and were printed already.
    for warning in &summary.warnings[plan.warnings().len()..] {
        eprintln!("ctstack: warning: {warning}");
    }
    if !quiet {
        let secs = summary.elapsed.as_secs_f64();
        let shapes = plan.levels();
        let last = shapes[shapes.len() - 1];
        println!(
            "{} levels ({}x{} down to {}x{}), {} slices rebuilt, {} kept, {} removed, {:.3} s, {:.2} GB/s of input -> {}",
            summary.levels.len() - 1,
            shapes[0].width,
            shapes[0].height,
            last.width,
            last.height,
            summary.rebuilt,
            summary.kept,
            summary.removed,
            secs,
            summary.input_bytes as f64 / secs.max(1e-9) / 1e9,
            plan.output_dir().display()
        );
    }
    Ok(())
}

fn number<T: std::str::FromStr>(text: &str, name: &str) -> Result<T, Failure> {
    text.parse()
        .map_err(|_| Failure::Usage(format!("{name}: {text:?} is not a valid number")))
}
