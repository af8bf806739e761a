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
For a built pyramid (a folder with ctstack.json) or an OME-Zarr store: its levels, \
shapes, sample type, voxel size, and whether it is complete and current. \
Exit status: 0 all readable, 1 a file or slice is not, 2 wrong command line, 3 a path that \
does not exist, a folder with no slices, or a pyramid or store that is incomplete or stale.")]
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
        } else if let Some(verdict) = path.is_dir().then(|| describe_output(path)).flatten() {
            verdict
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
    let voxel = slices.first().map(ctstack::VoxelSize::of_stack);
    let skipped = skipped_entries(dir, &listing, voxel.as_ref())?;
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
    if let Some(lookup) = &voxel {
        // Said when known, or when a scanner's file beside the slices gives
        // none (an unknown size is what a stack has by default).
        if let Some(size) = &lookup.size {
            println!("  {}", size.note());
        } else if !lookup.passed_over.is_empty() {
            let names: Vec<String> = lookup
                .passed_over
                .iter()
                .map(|(path, _)| file_name(path))
                .collect();
            let (files, give) = match names.len() {
                1 => ("file", "gives"),
                _ => ("files", "give"),
            };
            println!(
                "  voxel size: unknown (no resolution tags, and {}, the scanner's {files} \
                 beside the slices, {give} none: see skipped)",
                names.join(", ")
            );
        }
        for warning in &lookup.warnings {
            println!("    warning: {warning}");
        }
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
/// word (subdirectories, files of other types, said what they are if recognised;
/// a scanner's file that gives no voxel size, what it is). The scanner's file the
/// voxel size was read from is not skipped: the voxel size line names it.
fn skipped_entries(
    dir: &Path,
    listing: &stack::Listing,
    voxel: Option<&ctstack::VoxelSizeLookup>,
) -> Result<Vec<String>, Failure> {
    let read_from = voxel
        .and_then(|v| v.size.as_ref())
        .and_then(|s| s.sidecar.as_deref());
    let passed_over = voxel.map_or(&[][..], |v| &v.passed_over[..]);
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
        if read_from.is_some_and(|used| same_file(used, &path)) {
            continue;
        }
        let name = file_name(&path);
        let scanners = passed_over.iter().find(|(p, _)| same_file(p, &path));
        let why = if let Some((_, what)) = scanners {
            format!("{what}: not read for the voxel size")
        } else if path.is_dir() {
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

/// Whether `a` and `b` name the same entry of one folder (both were listed
/// from it, perhaps spelled differently: compared by file name).
fn same_file(a: &Path, b: &Path) -> bool {
    a.file_name() == b.file_name()
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

/// Whether `dir` is a built pyramid (holds ctstack's manifest) or an OME-Zarr
/// store (a root `zarr.json` or `.zattrs`): `ctstack info` describes those
/// instead of looking for slices in them.
fn describe_output(dir: &Path) -> Option<Result<(), u8>> {
    if dir.join(ctstack::MANIFEST_FILE).is_file() {
        Some(describe_pyramid(dir))
    } else if dir.join("zarr.json").is_file() || dir.join(".zattrs").is_file() {
        Some(describe_zarr(dir))
    } else {
        None
    }
}

/// A JSON file, or a one-line reason it cannot be read.
fn read_json(path: &Path) -> Result<serde_json::Value, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: not JSON: {e}", path.display()))
}

/// A built pyramid: its levels (read by [`ctstack::Pyramid`]), whether its
/// build finished, and whether the inputs beside it are still the ones it was
/// built from. Exit 0 complete and current, 3 incomplete or stale.
fn describe_pyramid(dir: &Path) -> Result<(), u8> {
    let name = dir.display();
    let manifest = match read_json(&dir.join(ctstack::MANIFEST_FILE)) {
        Ok(m) => m,
        Err(e) => {
            println!("{name}: ctstack pyramid, manifest unreadable: {e}");
            return Err(crate::EXIT_FAILURE);
        }
    };
    let inputs = manifest["inputs"].as_array().map_or(&[][..], |v| v);
    let pyramid = match ctstack::Pyramid::open(dir) {
        Ok(p) => p,
        Err(e) if e.kind() == ctstack::ErrorKind::State => {
            println!(
                "{name}: ctstack pyramid of {}, incomplete (its last build did not finish): run \
                 `ctstack pyramid` on the stack again to finish it",
                plural(inputs.len(), "slice")
            );
            return Err(crate::EXIT_STATE);
        }
        Err(e) => {
            println!("{name}: ctstack pyramid, unreadable: {e}");
            return Err(crate::EXIT_FAILURE);
        }
    };
    let sample_type = pyramid
        .levels()
        .first()
        .map_or("?".into(), |l| l.sample_type.to_string());
    println!(
        "{name}: ctstack pyramid of {} ({} {}x{}), {} {sample_type}, complete",
        plural(inputs.len(), "slice"),
        inputs
            .first()
            .map_or("?", |i| i["sample_type"].as_str().unwrap_or("?")),
        inputs
            .first()
            .map_or(0, |i| i["width"].as_u64().unwrap_or(0)),
        inputs
            .first()
            .map_or(0, |i| i["height"].as_u64().unwrap_or(0)),
        crate::levels(1, pyramid.levels().len()),
    );
    for level in pyramid.levels() {
        println!(
            "  level {}: {} of {}x{} {} ({}/{}/)",
            level.k,
            plural(level.count, "slice"),
            level.width,
            level.height,
            level.sample_type,
            name,
            level.k
        );
    }
    println!("  voxel size: not recorded in a TIFF pyramid (each level halves x, y and z)");
    // The inputs are recorded by name, size and time: check them where the
    // default layout puts the pyramid (`<stack>/.thumbnail`, `STEM.thumbnail`;
    // also a scan moved together with its pyramid), else in the folder the
    // manifest names (a pyramid written with --out elsewhere).
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    // `ctstack info p` names a pyramid in the working folder: its parent is `.`.
    let parent = match parent.as_os_str().is_empty() {
        true => Path::new("."),
        false => parent,
    };
    let (mut changed, mut missing) = compare_inputs(inputs, parent);
    let mut folder = parent.to_path_buf();
    let recorded = manifest["folder"].as_str().map(PathBuf::from);
    if let Some(recorded) = recorded
        .as_ref()
        .filter(|f| missing == inputs.len() && f.is_dir())
    {
        folder = recorded.clone();
        (changed, missing) = compare_inputs(inputs, &folder);
        // In the folder it was built from, a missing input is a change.
        missing = missing.min(inputs.len().saturating_sub(1));
    }
    let again = match folder == parent {
        true => String::new(),
        false => format!(" again (--out {name})"),
    };
    if changed.is_empty() {
        say_current(inputs.len(), &folder);
        Ok(())
    } else if missing == inputs.len() {
        // None of its inputs is beside it nor where it was built from: moved
        // or deleted; whether it is current cannot be told from here.
        println!(
            "  current: unknown (its inputs are not in {}{}; run `ctstack pyramid` on the stack \
             to check and update it)",
            parent.display(),
            recorded.map_or_else(String::new, |f| format!(" nor in {}", f.display()))
        );
        Ok(())
    } else {
        println!(
            "  stale: {} changed or missing since it was built (first: {}): run `ctstack \
             pyramid` on {}{again} to update it",
            plural(changed.len(), "input"),
            changed[0],
            folder.display()
        );
        Err(crate::EXIT_STATE)
    }
}

/// The line for a pyramid or store whose `inputs` recorded inputs are all
/// unchanged in `folder`: one wording for both.
fn say_current(inputs: usize, folder: &Path) {
    println!(
        "  current: its {} are unchanged in {}",
        plural(inputs, "input"),
        folder.display()
    );
}

/// The recorded inputs (name, size, mtime_ns: the manifest's and the store
/// record's `inputs`) that are not as recorded in `folder`, and how many of
/// them are not there at all.
fn compare_inputs<'a>(inputs: &'a [serde_json::Value], folder: &Path) -> (Vec<&'a str>, usize) {
    let mut missing = 0;
    let changed = inputs
        .iter()
        .filter_map(|i| {
            let file = i["name"].as_str()?;
            let meta = std::fs::metadata(folder.join(file)).ok();
            missing += usize::from(meta.is_none());
            let same = meta.as_ref().is_some_and(|m| {
                Some(m.len()) == i["size"].as_u64() && mtime_ns(m) == i["mtime_ns"].as_i64()
            });
            (!same).then_some(file)
        })
        .collect();
    (changed, missing)
}

/// Whether a complete store is current: its record (`ctstack-inputs.json`)
/// names the inputs and the folder that held them; the folder recorded, else
/// (moved with the store) the stack its default name points to (`X` beside
/// `X.ome.zarr`, or the store's own folder for `STEM.tif`). One line; exit 0
/// current or unknown (no record, or the inputs are nowhere to be found), 3
/// stale (an input changed or missing).
fn describe_zarr_currency(dir: &Path) -> Result<(), u8> {
    let path = dir.join(ZARR_RECORD);
    if !path.is_file() {
        println!(
            "  current: unknown (no record of its inputs, {ZARR_RECORD}: a build that did not \
             finish has none; run `ctstack zarr` on the stack to check and update it)"
        );
        return Ok(());
    }
    let record = match read_json(&path) {
        Ok(record) if record["format"] == "ctstack-zarr-inputs" => record,
        Ok(_) => {
            println!(
                "  current: unknown ({} is not ctstack's record)",
                path.display()
            );
            return Ok(());
        }
        Err(e) => {
            println!("  current: unknown ({e})");
            return Ok(());
        }
    };
    let inputs = record["inputs"].as_array().map_or(&[][..], |v| v);
    let recorded = record["folder"].as_str().map(PathBuf::from);
    let folder = match recorded.as_ref().filter(|f| f.is_dir()) {
        Some(folder) => Some(folder.clone()),
        None => {
            let name = file_name(dir);
            let beside = name
                .strip_suffix(".ome.zarr")
                .or_else(|| name.strip_suffix(".zarr"))
                .map(|stem| dir.with_file_name(stem));
            let own = dir.parent().map(|p| match p.as_os_str().is_empty() {
                true => PathBuf::from("."),
                false => p.to_path_buf(),
            });
            [beside, own].into_iter().flatten().find(|f| {
                f.is_dir()
                    && inputs
                        .iter()
                        .any(|i| i["name"].as_str().is_some_and(|n| f.join(n).is_file()))
            })
        }
    };
    let Some(folder) = folder else {
        println!(
            "  current: unknown (its inputs are not in {}, nor beside the store; run `ctstack \
             zarr` on the stack to check and update it)",
            recorded.map_or_else(
                || "the folder it was written from".into(),
                |f| f.display().to_string()
            )
        );
        return Ok(());
    };
    let (changed, _) = compare_inputs(inputs, &folder);
    if changed.is_empty() {
        say_current(inputs.len(), &folder);
        Ok(())
    } else {
        println!(
            "  stale: {} changed or missing since it was written (first: {}): run `ctstack zarr` \
             on {} again (--out {}) to update it",
            plural(changed.len(), "input"),
            changed[0],
            folder.display(),
            dir.display()
        );
        Err(crate::EXIT_STATE)
    }
}

/// The store's record of its inputs (src/zarr/record.rs).
const ZARR_RECORD: &str = "ctstack-inputs.json";

/// A JSON array of numbers as `21 x 203 x 301`.
fn by(values: &serde_json::Value) -> String {
    let Some(values) = values.as_array() else {
        return values.to_string();
    };
    let words: Vec<String> = values
        .iter()
        .map(|v| match (v.as_u64(), v.as_f64()) {
            (Some(n), _) => n.to_string(),
            (None, Some(x)) => x.to_string(),
            _ => v.to_string(),
        })
        .collect();
    words.join(" x ")
}

/// A file's modification time in nanoseconds since the epoch, as the manifest has it.
fn mtime_ns(meta: &std::fs::Metadata) -> Option<i64> {
    let t = meta.modified().ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(d.as_nanos()).ok()
}

/// An OME-Zarr store: its levels' shapes and data type, the voxel size of
/// level 0, whether ctstack finished writing it and whether its inputs are
/// still the ones it was written from. Exit 0 complete and current (or not
/// known to be stale), 3 incomplete (a build that did not finish), stale, or
/// not a multiscale image.
fn describe_zarr(dir: &Path) -> Result<(), u8> {
    let name = dir.display();
    // Zarr v3 (OME-Zarr 0.5): attributes in zarr.json; v2 (0.4): .zattrs.
    let v3 = dir.join("zarr.json").is_file();
    let root = match v3 {
        true => read_json(&dir.join("zarr.json")).map(|doc| doc["attributes"].clone()),
        false => read_json(&dir.join(".zattrs")),
    };
    let attrs = match root {
        Ok(attrs) => attrs,
        Err(e) => {
            println!("{name}: Zarr store, metadata unreadable: {e}");
            return Err(crate::EXIT_FAILURE);
        }
    };
    let ours = &attrs["ctstack"];
    let complete = ours["complete"].as_bool();
    let multiscales = if v3 {
        &attrs["ome"]["multiscales"]
    } else {
        &attrs["multiscales"]
    };
    let Some(datasets) = multiscales[0]["datasets"].as_array() else {
        match complete {
            Some(false) => println!(
                "{name}: ctstack OME-Zarr store, incomplete (its last build did not finish): \
                 run `ctstack zarr` again to finish it"
            ),
            _ => println!("{name}: Zarr store without OME multiscales metadata"),
        }
        return Err(crate::EXIT_STATE);
    };
    let version = if v3 {
        attrs["ome"]["version"].as_str()
    } else {
        multiscales[0]["version"].as_str()
    };
    println!(
        "{name}: OME-Zarr {} (Zarr v{}) multiscale image, {}{}",
        version.unwrap_or("?"),
        if v3 { 3 } else { 2 },
        crate::levels(0, datasets.len().saturating_sub(1)),
        match complete {
            Some(true) => ", written by ctstack, complete",
            Some(false) => ", written by ctstack, incomplete",
            None => "",
        }
    );
    // Without a unit the scale is in voxels (the size was unknown at build time).
    let unit = multiscales[0]["axes"][2]["unit"]
        .as_str()
        .map_or(" (no unit: the size is unknown)".to_string(), |u| {
            format!(" {u}")
        });
    for (k, dataset) in datasets.iter().enumerate() {
        let path = dataset["path"].as_str().unwrap_or("?");
        let array = if v3 {
            read_json(&dir.join(path).join("zarr.json"))
                .map(|a| (a["shape"].clone(), a["data_type"].clone()))
        } else {
            read_json(&dir.join(path).join(".zarray"))
                .map(|a| (a["shape"].clone(), a["dtype"].clone()))
        };
        // Zarr v2 spells the data type as numpy does ("<u2"); v3 as ctstack does.
        let array = array.map(|(shape, dtype)| {
            let name = match dtype
                .as_str()
                .map(|t| t.trim_start_matches(['<', '>', '|']))
            {
                Some("u1") => "uint8".into(),
                Some("u2") => "uint16".into(),
                Some("i2") => "int16".into(),
                Some("f4") => "float32".into(),
                _ => dtype,
            };
            (shape, name)
        });
        let scale = dataset["coordinateTransformations"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "scale"))
            .map(|t| t["scale"].clone());
        match array {
            Ok((shape, dtype)) => println!(
                "  level {k} ({name}/{path}): {} (z, y, x) {}, voxel {}{unit}",
                by(&shape),
                dtype.as_str().unwrap_or("?"),
                scale.as_ref().map_or("?".into(), by),
            ),
            Err(e) => println!("  level {k}: {e}"),
        }
    }
    match complete {
        Some(false) => Err(crate::EXIT_STATE),
        Some(true) => describe_zarr_currency(dir),
        None => Ok(()),
    }
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
