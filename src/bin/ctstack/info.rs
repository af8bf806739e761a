//! `ctstack info`: one line per slice file; for a directory, a description of the
//! stack it holds, as `ctstack pyramid` would see it.

use std::collections::BTreeMap;
use std::io::ErrorKind::NotFound;
use std::path::{Path, PathBuf};

use clap::Args;
use ctstack::{OpenOptions, Slice, stack};

use crate::plural;
use crate::select::SelectArgs;
use crate::signature::Signature;
use crate::{Failure, ReadArgs};

#[derive(Args)]
#[command(after_help = "\
For a FILE: size, depth, compression, byte order and access path (or the error). \
For a DIR: slice count, size and depth, access paths, numbering gaps, files that \
will be skipped and why, and the slices a pyramid run would refuse. \
Exit status: 0 all readable, 1 a file or slice is not, 2 wrong command line, 3 a path that \
does not exist or a folder with no slices.")]
pub struct InfoArgs {
    /// Slice files, or directories holding a stack.
    #[arg(value_name = "FILE|DIR", required = true)]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    select: SelectArgs,
    #[command(flatten)]
    read: ReadArgs,
}

pub fn run(args: &InfoArgs) -> Result<(), Failure> {
    let options = OpenOptions {
        read_mode: args.read.read_mode(),
        ..OpenOptions::default()
    };
    // The exit status of the first path that was not good, if any.
    let mut status = None;
    for path in &args.paths {
        let verdict = if std::fs::symlink_metadata(path).is_err_and(|e| e.kind() == NotFound) {
            // As `pyramid` says of a missing INPUT: the disk, not a file, is to blame.
            let e = ctstack::Error::State {
                path: path.clone(),
                what: "does not exist".into(),
            };
            println!("{}: error ({}): {e}", path.display(), e.kind());
            Err(crate::EXIT_STATE)
        } else if path.is_dir() {
            describe_stack(path, &args.select, &options)?
        } else if describe_file(path, &options) {
            Ok(())
        } else {
            Err(crate::EXIT_FAILURE)
        };
        status = status.or(verdict.err());
    }
    match status {
        None => Ok(()),
        Some(status) => Err(Failure::Reported(status)),
    }
}

/// One line for a slice file; on failure the error, and what the file looks like
/// if it is not a TIFF at all. Whether it opened.
fn describe_file(path: &Path, options: &OpenOptions) -> bool {
    let name = path.display();
    match Slice::open_with(path, options) {
        Ok(s) => {
            println!(
                "{name}: {} {}x{} {}{}, compression {}, {}{}, {}{}",
                s.format().name(),
                s.width(),
                s.height(),
                s.sample_type(),
                match s.photometric() {
                    ctstack::Photometric::MinIsWhite => " min-is-white",
                    _ => "",
                },
                s.compression().name(),
                s.byte_order().name(),
                if s.is_bigtiff() { " BigTIFF" } else { "" },
                s.access(),
                match Slice::page_count(path, options) {
                    Ok(n) if n > 1 => format!(" (page 0 of {n})"),
                    _ => String::new(),
                }
            );
            true
        }
        Err(e) => {
            println!("{name}: error ({}): {e}", e.kind());
            if let Some(advice) = Signature::of_file(path).and_then(Signature::advice) {
                println!("{name}: this is {advice}");
            }
            false
        }
    }
}

/// What `ctstack pyramid DIR` would work on. `Ok(Ok(()))` if every slice is
/// usable (all open, all of one size and depth; the skipped files and gaps do
/// not count), else the exit status `ctstack pyramid` would give, the reason
/// printed: 1 for a refused slice, 3 for a folder with no slices.
fn describe_stack(
    dir: &Path,
    select: &SelectArgs,
    options: &OpenOptions,
) -> Result<Result<(), u8>, Failure> {
    let listing = stack::select(dir, &select.selection())?;
    let slices = &listing.files;
    let skipped = skipped_entries(dir, &listing)?;
    println!("{}: {}", dir.display(), plural(slices.len(), "slice"));

    let mut first: Option<(String, (u32, u32, ctstack::SampleType))> = None;
    let mut paths: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut compressions: BTreeMap<String, usize> = BTreeMap::new();
    let mut input_bytes = 0u64;
    let mut refused = Vec::new();
    for path in slices {
        let name = file_name(path);
        let slice = match Slice::open_with(path, options) {
            Ok(slice) => slice,
            Err(e) => {
                // The error names the file.
                let mut why = e.to_string();
                if let Some(advice) = Signature::of_file(path).and_then(Signature::advice) {
                    why.push_str(&format!(" (this is {advice})"));
                }
                refused.push(why);
                continue;
            }
        };
        let shape = (slice.width(), slice.height(), slice.sample_type());
        let (first_name, first_shape) = first.get_or_insert_with(|| (name.clone(), shape));
        if *first_shape != shape {
            let (w, h, ty) = *first_shape;
            refused.push(format!(
                "{name}: {}x{} {}, but {first_name} is {w}x{h} {ty}",
                shape.0, shape.1, shape.2
            ));
            continue;
        }
        *paths.entry(slice.access().path.name()).or_default() += 1;
        *compressions.entry(slice.compression().name()).or_default() += 1;
        input_bytes += slice.image_bytes() as u64;
    }
    if let Some((name, (w, h, ty))) = &first {
        println!(
            "  size: {w}x{h} {ty} (as {name}), {} of pixels",
            bytes(input_bytes)
        );
        println!("  access paths: {}", counts(&paths));
        println!("  compression: {}", counts(&compressions));
    }
    let gaps = &listing.gaps;
    if gaps.is_empty() {
        println!("  numbering: no gaps");
    } else {
        let n = plural(gaps.len(), "gap");
        println!("  numbering: {n} (a warning; an error with pyramid --strict)");
        for gap in gaps {
            println!("    {gap}");
        }
    }
    if skipped.is_empty() {
        println!("  skipped: none");
    } else {
        println!("  skipped: {}", plural(skipped.len(), "entry"));
        for line in &skipped {
            println!("    {line}");
        }
    }
    if !refused.is_empty() {
        let n = plural(refused.len(), "slice");
        println!("  refused: {n} that `ctstack pyramid` would stop at");
        for line in &refused {
            println!("    {line}");
        }
    }
    if slices.is_empty() {
        let e = ctstack::Error::State {
            path: dir.to_path_buf(),
            what: "no slice files selected in the directory: `ctstack pyramid` would stop here"
                .into(),
        };
        eprintln!("ctstack: error: {e}");
        return Ok(Err(crate::EXIT_STATE));
    }
    Ok(if refused.is_empty() {
        Ok(())
    } else {
        Err(crate::EXIT_FAILURE)
    })
}

/// Every entry of `dir` that is not in the stack, with why: the image files the
/// library's selection left out (its reasons), then what it ignores without a
/// word (subdirectories, files of other types, said what they are if recognised).
fn skipped_entries(dir: &Path, listing: &stack::Listing) -> Result<Vec<String>, Failure> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Failure::Run(ctstack::Error::Io {
            path: dir.to_path_buf(),
            what: "cannot list directory".into(),
            source: e,
        })
    })?;
    let mut skipped: Vec<(String, String)> = listing
        .skipped
        .iter()
        .map(|s| (file_name(&s.path), s.reason.clone()))
        .collect();
    for entry in entries.flatten() {
        let path = entry.path();
        if listing.files.contains(&path) || listing.skipped.iter().any(|s| s.path == path) {
            continue;
        }
        let name = file_name(&path);
        let why = if path.is_dir() {
            if name == ".thumbnail" {
                "directory: ctstack's default output directory".to_string()
            } else {
                "directory: a stack is the files directly in DIR".to_string()
            }
        } else {
            let extension = path.extension().map_or_else(
                || "no extension".to_string(),
                |e| format!("extension .{}", e.to_string_lossy()),
            );
            let wanted = stack::EXTENSIONS.join(" .");
            match Signature::of_file(&path) {
                Some(kind) => format!(
                    "not a slice file by its name ({extension}, not .{wanted}); it is {}",
                    kind.name()
                ),
                None => format!("not a slice file by its name ({extension}, not .{wanted})"),
            }
        };
        skipped.push((name, why));
    }
    skipped.sort_by(|a, b| stack::natural_cmp(&a.0, &b.0));
    Ok(skipped
        .into_iter()
        .map(|(name, why)| format!("{name}: {why}"))
        .collect())
}

/// `"mapped 20, decoded 1"`.
fn counts<K: std::fmt::Display>(counts: &BTreeMap<K, usize>) -> String {
    counts
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A byte count for people: `"2.6 MB"`, `"20.6 kB"`.
fn bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.1} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} MB", n / 1e6)
    } else {
        format!("{:.1} kB", n / 1e3)
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::bytes;
    use crate::plural;

    #[test]
    fn counts_read_well() {
        assert_eq!(plural(1, "gap"), "1 gap");
        assert_eq!(plural(2, "gap"), "2 gaps");
        assert_eq!(plural(0, "entry"), "0 entries");
        assert_eq!(bytes(2_567_166), "2.6 MB");
        assert_eq!(bytes(20_460), "20.5 kB");
        assert_eq!(bytes(969_000_000_000), "969.0 GB");
    }
}
