//! `ctstack pyramid`: build the pyramid with a progress bar, stop cleanly on Ctrl-C.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::Args;
use ctstack::{DEFAULT_MIN_SIZE, Error, PyramidBuilder, SampleType};

use crate::progress::Progress;
use crate::select::SelectArgs;
use crate::{Failure, ReadArgs, interrupt};

#[derive(Args)]
#[command(after_help = "\
Output: OUT/<level>/<index:06>.tif, level 1 = half of the input in every direction. \
Outputs the manifest (OUT/ctstack.json) shows were made from the same inputs \
are kept, so an interrupted or repeated run only rebuilds what is missing or stale; \
outputs the plan no longer holds are removed; every file appears atomically. Exit status: 0 done, 1 failed, 2 wrong command line, 3 INPUT missing or holding no slices, 4 internal error, 130 interrupted.")]
pub struct PyramidArgs {
    /// Directory of slices (.tif .tiff .bmp .png .jpg .jpeg), in natural order (s2
    /// before s10; the most common prefix and extension unless --prefix/--ext
    /// say; a multi-page TIFF in it gives all its pages), or one multi-page TIFF
    /// whose pages are the slices (ImageJ/Fiji, tifffile).
    #[arg(value_name = "INPUT")]
    input: PathBuf,
    /// Where levels go [default: INPUT/.thumbnail for a directory, STEM.thumbnail
    /// beside a file].
    #[arg(long, short, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Rebuild every output of ctstack's [default: keep those the manifest shows
    /// were made from the unchanged inputs]; a file ctstack did not write is never
    /// replaced, with or without it.
    #[arg(long)]
    force: bool,
    /// No progress bar and no summary (warnings and errors still go to stderr).
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    stack: StackArgs,
}

/// How the stack is selected, read and halved: the options `pyramid` and
/// `zarr` share.
#[derive(Args)]
pub struct StackArgs {
    /// Keep halving while width or height exceeds N (N >= 1). The same rule as
    /// min_size in the Rust, C and Python APIs.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MIN_SIZE, allow_negative_numbers = true,
          value_parser = at_least_one::<u32>)]
    pub min_size: u32,
    /// Averaging threads (N >= 1) [default: one per CPU]. More than the CPUs this
    /// process may use only slows it down, so N is capped there, with a note.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = at_least_one::<usize>)]
    threads: Option<usize>,
    /// A gap in the slice numbering is an error, not a warning.
    #[arg(long)]
    strict: bool,
    #[command(flatten)]
    select: SelectArgs,
    /// Convert slices of the other depth to this one (8: (v + 128) / 257, 16:
    /// v * 257) instead of refusing a stack that mixes 8- and 16-bit slices.
    #[arg(long, value_name = "BITS", value_parser = ["8", "16"])]
    depth: Option<String>,
    #[command(flatten)]
    read: ReadArgs,
    /// INPUT may be a file of one page: a stack of one slice. Without it such a
    /// file is refused (one slice of a scan is given by mistake for its folder).
    #[arg(long)]
    single_page: bool,
}

impl StackArgs {
    /// The pyramid builder of the stack INPUT names, with these options; the
    /// files a directory's selection left out are summarised in notes, unless
    /// `quiet`.
    pub fn builder(&self, input: &Path, quiet: bool) -> Result<PyramidBuilder, Failure> {
        let mut builder = input_builder(input, &self.select, self.single_page)?
            .min_size(self.min_size)
            .strict(self.strict)
            .read_mode(self.read.read_mode());
        if let Some(n) = self.threads {
            builder = builder.threads(capped_threads(n));
        }
        match self.depth.as_deref() {
            Some("8") => builder = builder.convert_depth(SampleType::U8),
            Some(_) => builder = builder.convert_depth(SampleType::U16),
            None => {}
        }
        if !quiet {
            let notes = builder.listing().map(|l| l.left_out_notes());
            for note in notes.unwrap_or_default() {
                eprintln!("ctstack: note: {note}");
            }
        }
        Ok(builder)
    }
}

/// Runs `ctstack pyramid` (a failure to create the default output folder
/// names `--out DIR`: the library says so, in the CLI's words).
pub fn run(args: &PyramidArgs) -> Result<(), Failure> {
    build(args)
}

fn build(args: &PyramidArgs) -> Result<(), Failure> {
    let mut builder = args
        .stack
        .builder(&args.input, args.quiet)?
        .force(args.force);
    if let Some(out) = &args.out {
        builder = builder.output_dir(out);
    }
    let plan = builder.plan()?;
    for warning in plan.warnings() {
        eprintln!("ctstack: warning: {warning}");
    }
    let summary = interrupt::run_with_progress(
        Progress::new(&plan, args.quiet),
        |progress, cancel| plan.run(progress, cancel),
        |done, _| {
            format!(
                "interrupted after {done} of {} output slices; no partial or temporary \
                 file left (run again to resume)",
                plan.total_units()
            )
        },
    )?;
    // The plan's warnings come first and were printed already.
    for warning in &summary.warnings[plan.warnings().len()..] {
        eprintln!("ctstack: warning: {warning}");
    }
    if !args.quiet {
        let secs = summary.elapsed.as_secs_f64();
        let shapes = plan.levels();
        let last = shapes[shapes.len() - 1];
        let (width, height) = (shapes[0].width, shapes[0].height);
        if shapes.len() == 1 {
            // Nothing to halve: say why, and what would give levels.
            println!(
                "0 levels: {width}x{height} slices are within --min-size {} already, so there \
                 is nothing to halve (--min-size {} or less gives at least one level) -> {}",
                args.stack.min_size,
                width.max(height) - 1,
                plan.output_dir().display()
            );
            return Ok(());
        }
        println!(
            "{} ({width}x{height} down to {}x{}), {} slices rebuilt, {} kept, {} removed, {:.3} s, {:.2} GB/s of input -> {}",
            crate::plural(shapes.len() - 1, "level"),
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

/// The stack INPUT names: a directory's selected files, or a multi-page file (a
/// file of one page only with `single_page`).
fn input_builder(
    input: &Path,
    select: &SelectArgs,
    single_page: bool,
) -> Result<PyramidBuilder, Failure> {
    if input.is_file() {
        if select.any() {
            return Err(Failure::Run(Error::Usage {
                what: format!(
                    "{} is a file: --prefix, --ext, --range and --index-width select files of \
                     a directory",
                    input.display()
                ),
            }));
        }
        // A file of one page is refused by the plan unless --single-page.
        Ok(PyramidBuilder::from_file(input).single_page(single_page))
    } else {
        Ok(PyramidBuilder::from_selection(input, &select.selection())?)
    }
}

/// A whole number >= 1 (clap puts the flag and the value before the message).
pub fn at_least_one<T>(text: &str) -> Result<T, String>
where
    T: FromStr + PartialOrd + From<u8>,
    T::Err: std::fmt::Display,
{
    match text.parse::<T>() {
        Ok(n) if n >= T::from(1) => Ok(n),
        Ok(_) => Err("must be at least 1".into()),
        Err(e) => Err(format!("{e} (expected a whole number >= 1)")),
    }
}

/// `n`, or the number of CPUs this process may use if `n` is larger (with a note):
/// averaging is CPU-bound, so extra threads only add switching and memory.
pub fn capped_threads(n: usize) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if n > cpus {
        eprintln!(
            "ctstack: note: --threads {n} capped at {cpus}, the CPUs this process may use \
             (more threads only slow the averaging down)"
        );
        return cpus;
    }
    n
}
