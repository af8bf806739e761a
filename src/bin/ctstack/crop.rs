//! `ctstack crop`: a box and a slice range of a stack (or of a pyramid level) into
//! one file per slice, with a progress bar; Ctrl-C stops cleanly.

use std::ops::Range;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use ctstack::stack::Selection;
use ctstack::{Crop, Error, OutputFormat};

use crate::progress::Progress;
use crate::pyramid::{at_least_one, capped_threads};
use crate::select::index_range;
use crate::{Failure, ReadArgs, interrupt};

#[derive(Args)]
#[command(after_help = "\
Coordinates are half-open and in the level's pixels: --box 100:612,40:552 is columns \
100..=611 and rows 40..=551; --slices 8:56 is the level's slices 8..=55 (0-based). \
CTHarvester's crop_from_x:crop_to_x,crop_from_y:crop_to_y and bottom_idx:top_idx+1 are these. \
In a folder of numbered files, slice I is the file numbered FIRST+I (FIRST: the first of --indices, \
else the first file's number), never the I-th file: a number with no file is missing, and so is a \
level-K slice from the first gap on (the pyramid averages its files in order). A missing slice in \
--slices is an error (exit 3, nothing written) naming the numbers, unless --skip-missing (then a \
warning on stderr). Output: at level 0 each source's own name (a JPEG source is written as PNG), at level K \
the pyramid's names <j:06>.tif (level-K slice j is the mean of source slices j*2^K ..= \
(j+1)*2^K-1). Every file appears atomically; other files in DIR are left alone. \
Exit status: 0 done, 1 failed, 2 wrong command line, 3 no pyramid (or a stale or incomplete one) at level K, 4 internal error, 130 interrupted.")]
pub struct CropArgs {
    /// Directory of slices (selected as `ctstack pyramid` selects them), or one
    /// multi-page TIFF.
    #[arg(value_name = "INPUT")]
    input: PathBuf,
    /// Where the files go (created if missing).
    #[arg(long, short, value_name = "DIR")]
    out: PathBuf,
    /// 0: the slices themselves; K >= 1: level K of the pyramid built from them.
    #[arg(long, value_name = "K", default_value_t = 0)]
    level: usize,
    /// The box: columns X0..X1 and rows Y0..Y1, half-open [default: the whole slice].
    #[arg(long = "box", value_name = "X0:X1,Y0:Y1", value_parser = parse_box)]
    region: Option<(Range<u32>, Range<u32>)>,
    /// The level's slices Z0..Z1, half-open, 0-based positions (not the numbers
    /// in the file names: --indices) [default: all].
    #[arg(long, value_name = "Z0:Z1", value_parser = parse_range)]
    slices: Option<Range<usize>>,
    /// Gone: --range means file numbers FIRST:LAST in pyramid, zarr and info, and
    /// meant slice positions here; refused with what to write instead.
    #[arg(long = "range", hide = true, value_name = "Z0:Z1", value_parser = old_range)]
    _range: Option<String>,
    /// The pyramid's folder [default: INPUT/.thumbnail, STEM.thumbnail beside a file].
    #[arg(long, value_name = "DIR")]
    pyramid: Option<PathBuf>,
    /// Output format [default: the source's; PNG for JPEG sources].
    #[arg(long, value_name = "FORMAT", value_enum)]
    format: Option<FormatArg>,
    /// Slices read and written at once (N >= 1) [default: one per CPU].
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = at_least_one::<usize>)]
    threads: Option<usize>,
    /// No progress bar, no notes and no summary (warnings and errors still go to stderr).
    #[arg(long, short)]
    quiet: bool,
    /// Leave out the slices of --slices whose number has no file (a warning on
    /// stderr names them) [default: refuse them, writing nothing].
    #[arg(long)]
    skip_missing: bool,
    /// Only files whose name starts with PREFIX before the index.
    #[arg(long, value_name = "PREFIX")]
    prefix: Option<String>,
    /// Only files with this extension (tif, tiff, bmp, png, jpg, jpeg).
    #[arg(long, value_name = "EXT")]
    ext: Option<String>,
    /// Only files numbered FIRST..=LAST, the numbers in their names, both included
    /// (pyramid's --range), not positions (--slices).
    #[arg(long, value_name = "FIRST:LAST", value_parser = index_range)]
    indices: Option<(u64, u64)>,
    /// Only indices written with N digits, zero-padded.
    #[arg(long, value_name = "N")]
    index_width: Option<usize>,
    #[command(flatten)]
    read: ReadArgs,
}

/// The `--format` values.
#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    /// Uncompressed TIFF (every sample type)
    Tif,
    /// PNG (8- or 16-bit)
    Png,
    /// 8-bit gray BMP
    Bmp,
}

pub fn run(args: &CropArgs) -> Result<(), Failure> {
    let selecting = args.prefix.is_some()
        || args.ext.is_some()
        || args.indices.is_some()
        || args.index_width.is_some();
    let crop = if args.input.is_file() {
        if selecting {
            return Err(Failure::Run(Error::Usage {
                what: format!(
                    "{} is a file: --prefix, --ext, --indices and --index-width select files of \
                     a directory",
                    args.input.display()
                ),
            }));
        }
        Crop::from_file(&args.input)
    } else {
        let mut s = Selection::default();
        if let Some(p) = &args.prefix {
            s = s.prefix(p.clone());
        }
        if let Some(e) = &args.ext {
            s = s.extension(e.clone());
        }
        if let Some((first, last)) = args.indices {
            s = s.range(first, last);
        }
        if let Some(w) = args.index_width {
            s = s.index_width(w);
        }
        Crop::from_selection(&args.input, &s)
    };
    let mut crop = crop
        .level(args.level)
        .skip_missing(args.skip_missing)
        .output_dir(&args.out)
        .read_mode(args.read.read_mode());
    if let Some((x, y)) = &args.region {
        crop = crop.region(x.clone(), y.clone());
    }
    if let Some(z) = &args.slices {
        crop = crop.slices(z.clone());
    }
    if let Some(dir) = &args.pyramid {
        crop = crop.pyramid_dir(dir);
    }
    if let Some(f) = args.format {
        crop = crop.format(match f {
            FormatArg::Tif => OutputFormat::Tiff,
            FormatArg::Png => OutputFormat::Png,
            FormatArg::Bmp => OutputFormat::Bmp,
        });
    }
    if let Some(n) = args.threads {
        crop = crop.threads(capped_threads(n));
    }
    let plan = crop.plan()?;
    for warning in plan.warnings() {
        eprintln!("ctstack: warning: {warning}");
    }
    if !args.quiet {
        for note in plan.notes() {
            eprintln!("ctstack: note: {note}");
        }
    }
    let summary = interrupt::run_with_progress(
        Progress::files(plan.total_units(), args.quiet),
        |progress, cancel| plan.run(progress, cancel),
        |done, _| {
            format!(
                "interrupted after {done} of {} files; every file written is complete, no \
                 temporary file left (run again to write them all)",
                plan.total_units()
            )
        },
    )?;
    if !args.quiet {
        let (n, h, w) = plan.shape();
        println!(
            "{} files of {w}x{h} {} ({n} slices of level {}), {:.3} s -> {}",
            summary.written,
            plan.sample_type(),
            plan.level(),
            summary.elapsed.as_secs_f64(),
            summary.output_dir.display()
        );
    }
    Ok(())
}

/// `A:B` as a half-open range of whole numbers.
fn span<T: std::str::FromStr>(text: &str, what: &str) -> Result<Range<T>, String>
where
    T::Err: std::fmt::Display,
{
    let (a, b) = text
        .split_once(':')
        .ok_or_else(|| format!("{what}: expected START:END, e.g. 100:612, got {text:?}"))?;
    let parse = |v: &str| {
        v.trim()
            .parse::<T>()
            .map_err(|e| format!("{what}: {v:?}: {e} (expected a whole number >= 0)"))
    };
    Ok(parse(a)?..parse(b)?)
}

/// `X0:X1,Y0:Y1`.
fn parse_box(text: &str) -> Result<(Range<u32>, Range<u32>), String> {
    let (x, y) = text
        .split_once(',')
        .ok_or_else(|| format!("expected X0:X1,Y0:Y1, e.g. 100:612,40:552, got {text:?}"))?;
    Ok((span(x, "columns")?, span(y, "rows")?))
}

/// `Z0:Z1`.
fn parse_range(text: &str) -> Result<Range<usize>, String> {
    span(text, "slices")
}

/// crop's old `--range Z0:Z1`: always an error saying what to write now.
fn old_range(text: &str) -> Result<String, String> {
    Err(format!(
        "crop's --range is now --slices {text} (the level's slices, half-open, 0-based \
         positions); to select files by the numbers in their names, FIRST:LAST inclusive as \
         pyramid's --range does, write --indices FIRST:LAST"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_and_ranges_parse_half_open() {
        assert_eq!(parse_box("1:5,2:9"), Ok((1..5, 2..9)));
        assert!(parse_box("1:5").is_err());
        assert!(parse_box("1:5,x:9").is_err());
        assert!(parse_box("-1:5,0:1").is_err());
        assert_eq!(parse_range("8:56"), Ok(8..56));
    }
}
