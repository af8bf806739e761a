//! `ctstack zarr`: the pyramid as an OME-Zarr multiscale image.

use std::path::{Path, PathBuf};

use clap::Args;
use ctstack::{ChunkCompression, DEFAULT_CHUNKS, Error, Ngff, ZarrBuilder};

use crate::progress::Progress;
use crate::pyramid::StackArgs;
use crate::{Failure, interrupt, with_out_hint};

#[derive(Args)]
#[command(after_help = "\
Output: one array per level, OUT/0 (the input) to OUT/L, axes z y x, and the multiscales \
metadata in OUT's root group, written last: a store that has it is complete. An array's own \
metadata is written after its last chunk, and removed before a rerun changes a chunk: an \
array path opens either as the whole, right array or not at all. An interrupted or repeated \
run writes only the chunks that are missing or differ; every file appears atomically. A \
rerun of a complete store whose inputs (names, sizes, modification times), options and chunk \
files are those recorded in OUT/ctstack-inputs.json (written last) reads and writes nothing. OUT \
must be new, an empty folder or a ctstack store; anything else is refused and left \
untouched, as is a store path that is, holds or lies inside the input. In a ctstack store, \
only what ctstack wrote is ever removed; other files stay. In z, level k keeps the planes \
that average exactly 2^k slices (docs/ome-zarr.md, \"Where each voxel is\"). \
Exit status: 0 done, 1 failed, 2 wrong command line, 3 INPUT missing or holding no slices, or OUT holds something that is not a ctstack store, 4 internal error, 130 interrupted.")]
pub struct ZarrArgs {
    /// Directory of slices, or one multi-page TIFF (as for `ctstack pyramid`).
    #[arg(value_name = "INPUT")]
    input: PathBuf,
    /// The store (a folder) [default: INPUT.ome.zarr beside a directory, STEM.ome.zarr
    /// beside a file].
    #[arg(long, short, value_name = "DIR")]
    out: Option<PathBuf>,
    /// OME-Zarr version: 0.5 (Zarr v3) or 0.4 (Zarr v2, what Fiji/MoBIE read).
    #[arg(long, value_name = "VERSION", default_value = "0.5", value_parser = ["0.4", "0.5"])]
    ngff: String,
    /// Chunk shape Z,Y,X, the same at every level [default: 16,256,256].
    #[arg(long, value_name = "Z,Y,X", value_parser = three::<u32>)]
    chunks: Option<[u32; 3]>,
    /// Shard shape Z,Y,X, multiples of the chunk's (0.5 only) [default: no sharding].
    #[arg(long, value_name = "Z,Y,X", value_parser = three::<u32>)]
    shard: Option<[u32; 3]>,
    /// none, zstd (level 3) or zstd:LEVEL (-7 ..= 22); Blosc: blosc-lz4,
    /// blosc-lz4-bitshuffle, blosc-zstd or blosc-zstd-bitshuffle, each with an optional
    /// :LEVEL (0 ..= 9, default 5).
    #[arg(
        long,
        value_name = "CODEC",
        default_value = "blosc-lz4-bitshuffle",
        value_parser = compression
    )]
    compression: ChunkCompression,
    /// Level 0's voxel size Z,Y,X, in --unit, stored exactly [default: from the first
    /// slice's TIFF resolution tags (z = x unless ImageJ's spacing says), else from the
    /// scanner's file beside the slices (Bruker NRecon *_rec.log, Nikon .xtekct, GE
    /// phoenix .pcr/.pca), else unknown: 1,1,1 with no unit, and a warning].
    #[arg(long, value_name = "Z,Y,X", value_parser = three::<f64>)]
    voxel_size: Option<[f64; 3]>,
    /// Unit of the axes (an NGFF space unit) [default: micrometer].
    #[arg(long, value_name = "UNIT")]
    unit: Option<String>,
    /// Gone: a ctstack store is replaced without a flag, and nothing else ever
    /// is. Given, it is a usage error saying so ([`REMOVED_FORCE`]).
    #[arg(long, hide = true)]
    force: bool,
    /// No progress bar, no notes and no summary (warnings and errors still go to stderr).
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    stack: StackArgs,
}

pub fn run(args: &ZarrArgs) -> Result<(), Failure> {
    if args.force {
        return Err(Failure::Run(ctstack::Error::Usage {
            what: REMOVED_FORCE.into(),
        }));
    }
    build(args).map_err(|f| match f {
        Failure::Run(e) if args.out.is_none() => Failure::Run(with_out_hint(e, "--out DIR")),
        other => other,
    })
}

fn build(args: &ZarrArgs) -> Result<(), Failure> {
    let pyramid = args.stack.builder(&args.input, args.quiet)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_store(&args.input));
    let mut builder = ZarrBuilder::new(pyramid, out)
        .ngff(Ngff::from_name(&args.ngff).unwrap_or_default())
        .chunks(args.chunks.unwrap_or(DEFAULT_CHUNKS))
        .shard(args.shard)
        .compression(args.compression);
    if let Some(unit) = &args.unit {
        builder = builder.unit(unit);
    }
    if let Some(size) = args.voxel_size {
        builder = builder.voxel_size(size);
    }
    let plan = builder.plan()?;
    for warning in plan.warnings() {
        eprintln!("ctstack: warning: {warning}");
    }
    if !args.quiet {
        for note in plan.notes() {
            eprintln!("ctstack: note: {note}");
        }
    }
    let summary = interrupt::run_with_progress(
        Progress::new(plan.pyramid(), args.quiet),
        |progress, cancel| plan.run(progress, cancel),
        |done, _| {
            format!(
                "interrupted after {done} of {}; the store is marked incomplete \
                 (run again to finish it: chunks already written are kept)",
                crate::plural(plan.total_units(), "slice")
            )
        },
    )?;
    if !args.quiet {
        for note in &summary.notes {
            eprintln!("ctstack: note: {note}");
        }
        let secs = summary.elapsed.as_secs_f64();
        let shapes = plan.levels();
        let last = shapes[shapes.len() - 1];
        println!(
            "{} ({}x{}x{} down to {}x{}x{}), {} written, {} unchanged, {:.3} s, \
             {:.2} GB/s of input -> {}",
            crate::levels(0, shapes.len() - 1),
            shapes[0].count,
            shapes[0].height,
            shapes[0].width,
            last.count,
            last.height,
            last.width,
            crate::plural(summary.written, "file"),
            summary.unchanged,
            secs,
            summary.input_bytes as f64 / secs.max(1e-9) / 1e9,
            plan.store().display()
        );
    }
    Ok(())
}

/// `scan` -> `scan.ome.zarr`, `dir/stack.tif` -> `dir/stack.ome.zarr`; `.`
/// or `..` are named after the folder they stand for (a store inside the
/// input folder would be refused).
fn default_store(input: &Path) -> PathBuf {
    let named = match input.components().next_back() {
        Some(std::path::Component::Normal(_)) => input.to_path_buf(),
        _ => std::fs::canonicalize(input).unwrap_or_else(|_| input.to_path_buf()),
    };
    let trimmed = named.components().as_path();
    let mut name = match input.is_file() {
        true => trimmed.file_stem(),
        false => trimmed.file_name(),
    }
    .map_or_else(|| "stack".into(), std::ffi::OsStr::to_os_string);
    name.push(".ome.zarr");
    trimmed.with_file_name(name)
}

/// `A,B,C`: three values of `T`.
fn three<T: std::str::FromStr>(text: &str) -> Result<[T; 3], String>
where
    T::Err: std::fmt::Display,
{
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let [a, b, c] = parts[..] else {
        return Err("expected three comma-separated values Z,Y,X".into());
    };
    let parse = |s: &str| s.parse::<T>().map_err(|e| format!("{s:?}: {e}"));
    Ok([parse(a)?, parse(b)?, parse(c)?])
}

fn compression(text: &str) -> Result<ChunkCompression, String> {
    text.parse().map_err(|e: Error| e.to_string())
}

/// What `zarr --force` (removed before 0.1.0) says: why no flag is needed.
const REMOVED_FORCE: &str = "zarr has no --force: a store that is ctstack's is replaced \
    without a flag (only ctstack's own files in it), a new path or an empty folder is \
    written, and a folder that holds anything else is never replaced: give --out a new path";
