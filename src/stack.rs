//! Which files make a stack, in which order.
//!
//! A directory is read by extension (any case): `.tif`, `.tiff`, `.bmp`, `.jpg`,
//! `.jpeg` and `.png`. Its files are grouped by prefix and extension, as
//! CTHarvester groups them (`slice_0007.tif` has prefix `slice_`, index 7 and
//! extension `tif`), and one group is the stack; [`select`] says which files it
//! left out and why, and where the numbering has gaps. Files come in natural
//! order (`s2` before `s10`).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::Error;

/// One slice of a stack: a file, or one page of a stack saved as one
/// multi-page TIFF (ImageJ/Fiji, tifffile).
///
/// A pyramid's inputs are files; its slices are their pages, in order: every
/// page of the first file, then every page of the next (see
/// [`Plan::inputs`](crate::Plan::inputs)).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SliceRef {
    /// The file.
    pub path: PathBuf,
    /// The page, 0-based: its place in the IFD chain (for an ImageJ stack that
    /// lists only its first image, the image number); 0 for a file of one image.
    pub page: usize,
}

impl SliceRef {
    /// Page `page` of `path`.
    pub fn new(path: impl Into<PathBuf>, page: usize) -> SliceRef {
        SliceRef {
            path: path.into(),
            page,
        }
    }
}

/// `scan/slice_0007.tif`, or `scan/stack.tif page 12` for pages after the first.
impl std::fmt::Display for SliceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.page {
            0 => write!(f, "{}", self.path.display()),
            page => write!(f, "{} page {page}", self.path.display()),
        }
    }
}

/// The extensions a stack is read from, lower case, in the order they are named in messages.
pub const EXTENSIONS: [&str; 6] = ["tif", "tiff", "bmp", "png", "jpg", "jpeg"];

/// Which files of a directory make the stack: every field left `None` is
/// chosen from what the directory holds.
///
/// The default selection takes the most common (prefix, extension) group of
/// the directory. Setting fields narrows that choice, as CTHarvester's own
/// settings do: `prefix` and `extension` fix the group, `range` keeps indices
/// `first..=last` (indices of the range with no file are reported as gaps),
/// and `index_width` keeps only names whose index is written as
/// `format!("{index:0width$}")` (`slice_0007.tif` with width 4).
///
/// ```
/// use ctstack::stack::Selection;
///
/// let selection = Selection::default().prefix("rec_").extension("bmp").range(100, 899);
/// assert_eq!(selection.range, Some((100, 899)));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Selection {
    /// The text before the index; `None`: the most common one. Compared as the
    /// platform's file names are: ignoring case on Windows and macOS (whose
    /// filesystems do, by default: `slice_` matches `SLICE_0000.TIF`), exactly
    /// elsewhere.
    pub prefix: Option<String>,
    /// The extension, without the dot, any case (`tif` and `tiff` are two
    /// extensions); `None`: the most common one.
    pub extension: Option<String>,
    /// Indices `first..=last`, both included; `None`: every index.
    pub range: Option<(u64, u64)>,
    /// Digits of the index, zero-padded: `{index:0width}`; `None`: any width.
    pub index_width: Option<usize>,
}

impl Selection {
    /// Only files whose name starts with `prefix` right before the index.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Selection {
        self.prefix = Some(prefix.into());
        self
    }

    /// Only files with this extension (`"bmp"` or `".bmp"`, any case).
    pub fn extension(mut self, extension: impl Into<String>) -> Selection {
        self.extension = Some(extension.into());
        self
    }

    /// Only indices `first..=last`.
    pub fn range(mut self, first: u64, last: u64) -> Selection {
        self.range = Some((first, last));
        self
    }

    /// Only indices written with `width` digits, zero-padded (wider numbers as they are).
    pub fn index_width(mut self, width: usize) -> Selection {
        self.index_width = Some(width);
        self
    }

    /// The extension asked for, lower case and without a dot, checked to be one ctstack reads.
    fn wanted_extension(&self) -> Result<Option<String>, Error> {
        let Some(ext) = &self.extension else {
            return Ok(None);
        };
        let ext = ext.strip_prefix('.').unwrap_or(ext).to_ascii_lowercase();
        if !EXTENSIONS.contains(&ext.as_str()) {
            return Err(Error::usage(format!(
                "extension {:?} is not one ctstack reads ({})",
                self.extension.as_deref().unwrap_or_default(),
                EXTENSIONS.join(", ")
            )));
        }
        Ok(Some(ext))
    }
}

/// The files a [`Selection`] picked from a directory, and what it left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Listing {
    /// The stack, in natural order.
    pub files: Vec<PathBuf>,
    /// Image files of the directory that are not in the stack, with the reason.
    pub skipped: Vec<Skipped>,
    /// Gaps in the numbering, one message each (see [`numbering_gaps`]).
    pub gaps: Vec<String>,
}

/// How many left-out files [`Listing::left_out_notes`] names one by one;
/// beyond that, a count.
const LEFT_OUT_SHOWN: usize = 3;

impl Listing {
    /// The notes on the files the selection left out, as every interface
    /// shows them (the command line's notes, the C and Python reports'
    /// warnings): each one when there are few, else the first three and a
    /// count, with the command that lists them all (a `--range 0:9` in a
    /// 200-file folder leaves out 190).
    pub fn left_out_notes(&self) -> Vec<String> {
        let skipped = &self.skipped;
        let line = |s: &Skipped| format!("left out {}: {}", s.path.display(), s.reason);
        if skipped.len() <= LEFT_OUT_SHOWN + 1 {
            return skipped.iter().map(line).collect();
        }
        let dir = skipped[0].path.parent().unwrap_or(Path::new("."));
        let mut notes: Vec<String> = skipped[..LEFT_OUT_SHOWN].iter().map(line).collect();
        notes.push(format!(
            "... and {} more left out ({} in all; `ctstack info {}` with the same selection \
             options lists every one and why)",
            skipped.len() - LEFT_OUT_SHOWN,
            skipped.len(),
            dir.display()
        ));
        notes
    }
}

/// An image file [`select`] left out of the stack.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Skipped {
    /// The file.
    pub path: PathBuf,
    /// Why it is not in the stack (`prefix "spr_" is not the stack's "rec_"`, ...).
    pub reason: String,
}

/// A candidate file: an image file of the directory, its name cut CTHarvester's
/// way, `(prefix)(digits).(ext)`.
#[derive(Debug)]
struct Candidate {
    path: PathBuf,
    name: String,
    prefix: String,
    /// The index as written; empty for a name without digits before the extension.
    digits: String,
    /// Lower case.
    extension: String,
}

impl Candidate {
    fn new(path: PathBuf) -> Option<Candidate> {
        let name = file_name(&path);
        // Hidden files: macOS writes `._slice_0001.tif` resource forks beside every
        // file it copies to a foreign disk; they are not slices.
        if name.starts_with('.') {
            return None;
        }
        let (stem, ext) = name.rsplit_once('.')?;
        let extension = ext.to_ascii_lowercase();
        if !EXTENSIONS.contains(&extension.as_str()) {
            return None;
        }
        let start = stem
            .bytes()
            .rposition(|c| !c.is_ascii_digit())
            .map_or(0, |p| p + 1);
        Some(Candidate {
            prefix: stem[..start].to_string(),
            digits: stem[start..].to_string(),
            extension,
            path,
            name,
        })
    }

    /// The index, if the name has one (and it fits a u64).
    fn index(&self) -> Option<u64> {
        self.digits.parse().ok()
    }

    /// Names without an index form one group per extension: a folder of
    /// `a.tif`, `b.tif` is one stack, as it always was for ctstack.
    fn group(&self) -> (Option<&str>, &str) {
        let prefix = (!self.digits.is_empty()).then_some(self.prefix.as_str());
        (prefix, &self.extension)
    }
}

/// Picks the stack of `dir` as `selection` says: reads the directory (not
/// recursively; symbolic links are followed, subdirectories and names starting
/// with `.` ignored), keeps the files with a stack extension, and takes one
/// (prefix, extension) group.
///
/// Unset fields of the selection are chosen like CTHarvester chooses them: the
/// group with the most files wins (CTHarvester counts prefixes and extensions
/// separately, which can name a pair with no file at all; ctstack counts the
/// pairs), a tie goes to the group whose first file comes first in natural
/// order. Names with no digits before the extension form one group per
/// extension. Every image file left out is in [`Listing::skipped`] with the
/// reason; other files (logs, `.csv`, ...) are ignored silently.
///
/// Gaps: with a `range`, every index of the range with no file; without one,
/// the gaps between neighbouring files ([`numbering_gaps`]).
///
/// An empty stack is not an error here (the listing says what was skipped);
/// [`PyramidBuilder::from_selection`](crate::PyramidBuilder::from_selection) refuses one.
/// Errors: the directory does not exist ([`Error::State`]) or cannot be read
/// ([`Error::Io`]); the selection names an
/// extension ctstack does not read or a range whose first index is after its
/// last ([`Error::Usage`]).
pub fn select(dir: &Path, selection: &Selection) -> Result<Listing, Error> {
    let extension = selection.wanted_extension()?;
    if let Some((first, last)) = selection.range
        && first > last
    {
        return Err(Error::usage(format!(
            "slice range {first}..={last} is empty: its first index is after its last"
        )));
    }
    let mut candidates = read_candidates(dir)?;
    candidates.sort_by(|a, b| natural_cmp(&a.name, &b.name));

    let mut skipped = Vec::new();
    let mut kept = Vec::new();
    for c in candidates {
        match refusal(&c, selection, extension.as_deref()) {
            Some(reason) => skipped.push(Skipped {
                path: c.path,
                reason,
            }),
            None => kept.push(c),
        }
    }
    let counts = group_counts(&kept);
    let Some(group) = most_common_group(&counts) else {
        return Ok(Listing {
            skipped,
            gaps: selection
                .range
                .map_or_else(Vec::new, |range| range_gaps(&[], range)),
            files: Vec::new(),
        });
    };
    let stack_group = format!(
        "the stack's group {} has {}",
        describe(group),
        file_count(counts[&group].0)
    );
    let group = (group.0.map(str::to_string), group.1.to_string());
    let counts: HashMap<_, usize> = counts
        .iter()
        .map(|(g, (n, _))| (describe(*g), *n))
        .collect();
    let mut files: Vec<Candidate> = Vec::new();
    for c in kept {
        let (prefix, ext) = c.group();
        if (prefix, ext) == (group.0.as_deref(), group.1.as_str()) {
            files.push(c);
        } else {
            let own = describe((prefix, ext));
            let reason = format!(
                "group {own} has {}, {stack_group}",
                file_count(counts[&own])
            );
            skipped.push(Skipped {
                path: c.path,
                reason,
            });
        }
    }
    drop_duplicate_indices(&mut files, &mut skipped);
    skipped.sort_by(|a, b| natural_cmp(&file_name(&a.path), &file_name(&b.path)));
    let gaps = match selection.range {
        Some(range) => range_gaps(&files, range),
        None => numbering_gaps(&files.iter().map(|c| c.path.clone()).collect::<Vec<_>>()),
    };
    Ok(Listing {
        files: files.into_iter().map(|c| c.path).collect(),
        skipped,
        gaps,
    })
}

/// The image files directly in `dir`.
fn read_candidates(dir: &Path) -> Result<Vec<Candidate>, Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| match e.kind() {
        // The disk not in the state the call needs (as an empty folder), not a
        // failed read: the same kind, and status, in every interface.
        std::io::ErrorKind::NotFound => Error::state(
            dir,
            "does not exist (the input is a folder of slices, or a multi-page TIFF)",
        ),
        _ => Error::io(dir, "cannot list directory", e),
    })?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, "cannot list directory", e))?;
        // Follows symlinks: a stack of links to slices elsewhere is a stack.
        if let Some(c) = Candidate::new(entry.path())
            && c.path.is_file()
        {
            out.push(c);
        }
    }
    Ok(out)
}

/// Why the explicit fields of `selection` exclude `c`, or `None` if they keep it.
fn refusal(c: &Candidate, selection: &Selection, extension: Option<&str>) -> Option<String> {
    if let Some(ext) = extension
        && c.extension != ext
    {
        return Some(format!(
            "extension .{} is not the selected .{ext}",
            c.extension
        ));
    }
    let explicit_index =
        selection.prefix.is_some() || selection.range.is_some() || selection.index_width.is_some();
    if explicit_index && c.digits.is_empty() {
        return Some("no index before the extension".into());
    }
    if let Some(prefix) = &selection.prefix
        && !same_name_part(&c.prefix, prefix, NAMES_IGNORE_CASE)
    {
        return Some(format!(
            "prefix {:?} is not the selected {prefix:?}",
            c.prefix
        ));
    }
    let index = c.index();
    if let Some((first, last)) = selection.range {
        match index {
            Some(i) if (first..=last).contains(&i) => {}
            _ => return Some(format!("index {} is outside {first}..={last}", c.digits)),
        }
    }
    if let Some(width) = selection.index_width {
        let written_so = index.is_some_and(|i| format!("{i:0width$}") == c.digits);
        if !written_so {
            return Some(format!(
                "index {} is not written with {width} digits",
                c.digits
            ));
        }
    }
    None
}

/// Whether file names ignore case here: on Windows (NTFS, FAT) and macOS (APFS
/// and HFS+ as formatted by default) `SLICE_0000.TIF` and `slice_0000.tif` name
/// one file. A case-sensitive volume on those systems is rare enough not to ask
/// the filesystem each time.
const NAMES_IGNORE_CASE: bool = cfg!(any(windows, target_os = "macos"));

/// Whether two parts of file names are the same, ignoring case (Unicode simple
/// case folding, as NTFS and APFS compare) when `ignore_case`.
fn same_name_part(a: &str, b: &str, ignore_case: bool) -> bool {
    if ignore_case {
        a.chars()
            .flat_map(char::to_lowercase)
            .eq(b.chars().flat_map(char::to_lowercase))
    } else {
        a == b
    }
}

/// A (prefix, extension) group: the prefix is `None` for names without an index.
type Group<'a> = (Option<&'a str>, &'a str);

/// Files per group, and the position of each group's first file.
fn group_counts(candidates: &[Candidate]) -> HashMap<Group<'_>, (usize, usize)> {
    let mut counts = HashMap::new();
    for (i, c) in candidates.iter().enumerate() {
        counts.entry(c.group()).or_insert((0, i)).0 += 1;
    }
    counts
}

/// The group with the most files; ties go to the group seen first (candidates
/// are in natural order).
fn most_common_group<'a>(counts: &HashMap<Group<'a>, (usize, usize)>) -> Option<Group<'a>> {
    counts
        .iter()
        .max_by(|(_, (na, fa)), (_, (nb, fb))| na.cmp(nb).then(fb.cmp(fa)))
        .map(|(group, _)| *group)
}

/// `"scan_" + index + ".tif"`, or `unnumbered ".tif"`.
fn describe(group: Group<'_>) -> String {
    match group {
        (Some(prefix), ext) => format!("{prefix:?} + index + \".{ext}\""),
        (None, ext) => format!("unnumbered \".{ext}\""),
    }
}

/// `1 file`, `2 files`.
fn file_count(n: usize) -> String {
    if n == 1 {
        "1 file".into()
    } else {
        format!("{n} files")
    }
}

/// Keeps the first file of each index (`s01.tif` and `s1.tif` are both index 1:
/// only one can be slice 1); the others are skipped. Names without an index are all kept.
fn drop_duplicate_indices(files: &mut Vec<Candidate>, skipped: &mut Vec<Skipped>) {
    let mut seen: HashMap<u64, String> = HashMap::new();
    let mut kept = Vec::with_capacity(files.len());
    for c in files.drain(..) {
        match c.index() {
            Some(i) if seen.contains_key(&i) => skipped.push(Skipped {
                reason: format!("index {i} again: {} has it", seen[&i]),
                path: c.path,
            }),
            Some(i) => {
                seen.insert(i, c.name.clone());
                kept.push(c);
            }
            None => kept.push(c),
        }
    }
    *files = kept;
}

/// Indices of `first..=last` with no file, as runs (never one message per
/// missing index: a range can be as wide as a u64).
fn range_gaps(files: &[Candidate], (first, last): (u64, u64)) -> Vec<String> {
    let mut gaps = Vec::new();
    let mut expected = Some(first);
    let mut previous: Option<&str> = None;
    for c in files {
        let Some(i) = c.index() else { continue };
        if let Some(e) = expected
            && i > e
        {
            let after = match previous {
                Some(p) => format!("{p} is followed by {}", c.name),
                None => format!("the range {first}..={last} starts before {}", c.name),
            };
            gaps.push(format!(
                "gap in the slice numbering: {after}: {}",
                missing(e.into(), (i - 1).into())
            ));
        }
        expected = i.checked_add(1);
        previous = Some(&c.name);
    }
    if let Some(e) = expected
        && e <= last
    {
        let after = match previous {
            Some(p) => format!("the range {first}..={last} goes on after {p}"),
            None => format!("no file of the range {first}..={last} exists"),
        };
        gaps.push(format!(
            "gap in the slice numbering: {after}: {}",
            missing(e.into(), last.into())
        ));
    }
    gaps
}

/// Adds to the first of `gaps` (messages of [`select`] or [`numbering_gaps`])
/// that has files after it what it means for a pyramid: its levels average
/// the files in order, so from that gap on a level's slices are not the mean of
/// the numbers their place stands for (see [`crate::Crop`], "Slices are
/// numbers, not positions"). A gap after the last file changes no slice.
pub(crate) fn explain_gaps_for_pyramid(gaps: &mut [String]) {
    let interior = gaps
        .iter_mut()
        .find(|g| g.contains(" is followed by ") || g.contains(" starts before "));
    if let Some(gap) = interior {
        gap.push_str(
            "; the pyramid averages the files in order, so from this gap on its level-k slices \
             are not the mean of the numbers their place stands for (a crop at level 1 or more \
             refuses them)",
        );
    }
}

/// `number 8 is missing` or `numbers 11..=13 are missing (3 files)`.
fn missing(from: u128, to: u128) -> String {
    if from == to {
        format!("number {from} is missing")
    } else {
        let n = to - from + 1;
        format!("numbers {from}..={to} are missing ({n} files)")
    }
}

/// The index of a stack file's name as [`select`] reads it: the digits right
/// before the extension (`scan_0015.tif` gives 15); `None` for a name without
/// them, a hidden name or an extension ctstack does not read.
pub(crate) fn file_index(path: &Path) -> Option<u64> {
    Candidate::new(path.to_path_buf())?.index()
}

/// The stack of `dir` under the default [`Selection`]: its most common
/// (prefix, extension) group, in natural order. See [`select`].
pub fn list_slices(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    Ok(select(dir, &Selection::default())?.files)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Compares names the way people count: runs of digits compare as numbers
/// (`s2` < `s10`, `s02` == `s2` by value, then by length), text runs compare
/// case-insensitively, ties are broken by the plain byte order.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    while !x.is_empty() && !y.is_empty() {
        let (run_x, rest_x) = split_run(x);
        let (run_y, rest_y) = split_run(y);
        let ord = if run_x[0].is_ascii_digit() && run_y[0].is_ascii_digit() {
            let (tx, ty) = (trim_zeros(run_x), trim_zeros(run_y));
            tx.len()
                .cmp(&ty.len())
                .then_with(|| tx.cmp(ty))
                .then_with(|| run_y.len().cmp(&run_x.len()))
        } else {
            let lx = run_x.iter().map(u8::to_ascii_lowercase);
            let ly = run_y.iter().map(u8::to_ascii_lowercase);
            lx.cmp(ly)
        };
        if ord != Ordering::Equal {
            return ord;
        }
        (x, y) = (rest_x, rest_y);
    }
    x.len().cmp(&y.len()).then_with(|| a.cmp(b))
}

/// The leading run of digits, or of non-digits, and the rest.
fn split_run(s: &[u8]) -> (&[u8], &[u8]) {
    let digit = s[0].is_ascii_digit();
    let n = s
        .iter()
        .position(|c| c.is_ascii_digit() != digit)
        .unwrap_or(s.len());
    s.split_at(n)
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let n = digits
        .iter()
        .position(|&c| c != b'0')
        .unwrap_or(digits.len());
    &digits[n..]
}

/// Gaps in the numbering of `files` (already in natural order): one message per
/// gap, naming the files on either side and what is missing.
///
/// A file's number is the last run of digits in its name; files are only compared
/// with neighbours that share the text around that number (`scan_0007.tif`,
/// `scan_0009.tif`). Names without digits give no gaps.
pub fn numbering_gaps(files: &[PathBuf]) -> Vec<String> {
    let keyed: Vec<Option<(String, String, u128)>> =
        files.iter().map(|p| index_of(&file_name(p))).collect();
    let mut gaps = Vec::new();
    for (i, pair) in keyed.windows(2).enumerate() {
        let (Some((pa, sa, na)), Some((pb, sb, nb))) = (&pair[0], &pair[1]) else {
            continue;
        };
        if pa != pb || sa != sb || *nb <= na + 1 {
            continue;
        }
        let which = missing(na + 1, nb - 1);
        gaps.push(format!(
            "gap in the slice numbering: {} is followed by {}: {which}",
            file_name(&files[i]),
            file_name(&files[i + 1])
        ));
    }
    gaps
}

/// (text before, text after in lower case, value) of the last run of digits in `name`.
fn index_of(name: &str) -> Option<(String, String, u128)> {
    let bytes = name.as_bytes();
    let end = bytes.iter().rposition(u8::is_ascii_digit)? + 1;
    let start = bytes[..end]
        .iter()
        .rposition(|c| !c.is_ascii_digit())
        .map_or(0, |p| p + 1);
    let value = name[start..end].parse::<u128>().ok()?;
    // Extensions compare in any case, as they do when a stack is selected.
    let after = name[end..].to_ascii_lowercase();
    Some((name[..start].to_string(), after, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory holding empty files of these names (selection never opens them).
    fn folder(name: &str, files: &[&str]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ctstack-stack-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("subdir.tif")).unwrap();
        for f in files {
            std::fs::write(dir.join(f), b"").unwrap();
        }
        dir
    }

    fn names(paths: &[PathBuf]) -> Vec<String> {
        paths.iter().map(|p| file_name(p)).collect()
    }

    fn skipped(listing: &Listing) -> Vec<(String, String)> {
        let s = listing.skipped.iter();
        s.map(|s| (file_name(&s.path), s.reason.clone())).collect()
    }

    #[test]
    fn the_most_common_prefix_and_extension_win_and_the_rest_is_reported() {
        // An NRecon folder: slices, a preview image, a log; and a stray TIFF export.
        let dir = folder(
            "nrecon",
            &[
                "scan_rec00000010.bmp",
                "scan_rec00000009.bmp",
                "scan_rec00000011.BMP",
                "scan_rec00000013.bmp",
                "scan_spr.bmp",
                "._scan_rec00000009.bmp",
                "._scan_rec00000010.bmp",
                "._scan_rec00000011.bmp",
                "._scan_rec00000013.bmp",
                "scan_rec.log",
                "export_0001.tif",
                "export_0002.tif",
            ],
        );
        let listing = select(&dir, &Selection::default()).unwrap();
        assert_eq!(
            names(&listing.files),
            [
                "scan_rec00000009.bmp",
                "scan_rec00000010.bmp",
                "scan_rec00000011.BMP",
                "scan_rec00000013.bmp"
            ]
        );
        let group = r#"the stack's group "scan_rec" + index + ".bmp" has 4 files"#;
        assert_eq!(
            skipped(&listing),
            [
                (
                    "export_0001.tif".to_string(),
                    format!(r#"group "export_" + index + ".tif" has 2 files, {group}"#)
                ),
                (
                    "export_0002.tif".to_string(),
                    format!(r#"group "export_" + index + ".tif" has 2 files, {group}"#)
                ),
                (
                    "scan_spr.bmp".to_string(),
                    format!(r#"group unnumbered ".bmp" has 1 file, {group}"#)
                ),
            ]
        );
        assert_eq!(listing.gaps.len(), 1, "{:?}", listing.gaps);
        assert!(listing.gaps[0].contains("number 12 is missing"));
        assert_eq!(list_slices(&dir).unwrap(), listing.files);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ties_go_to_the_group_that_comes_first_and_unnumbered_names_are_one_group() {
        let dir = folder("tie", &["b_1.png", "b_2.png", "a_1.png", "a_2.png"]);
        let listing = select(&dir, &Selection::default()).unwrap();
        assert_eq!(names(&listing.files), ["a_1.png", "a_2.png"]);
        std::fs::remove_dir_all(&dir).unwrap();

        let dir = folder("plain", &["c.tif", "a.tif", "b.TIFF", "notes.txt"]);
        let listing = select(&dir, &Selection::default()).unwrap();
        assert_eq!(names(&listing.files), ["a.tif", "c.tif"]);
        assert_eq!(names(&[listing.skipped[0].path.clone()]), ["b.TIFF"]);
        std::fs::remove_dir_all(&dir).unwrap();

        let dir = folder("empty", &["readme.md"]);
        assert_eq!(
            select(&dir, &Selection::default()).unwrap(),
            Listing::default()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn explicit_prefix_extension_range_and_width_select_ctharvester_style() {
        let mut files: Vec<String> = (1..=10)
            .filter(|i| *i != 5)
            .map(|i| format!("s_{i:04}.png"))
            .collect();
        files.extend(["s_3.png".into(), "s_0004.jpg".into(), "t_0004.png".into()]);
        let refs: Vec<&str> = files.iter().map(String::as_str).collect();
        let dir = folder("explicit", &refs);
        let selection = Selection::default()
            .prefix("s_")
            .extension(".PNG")
            .range(2, 12)
            .index_width(4);
        let listing = select(&dir, &selection).unwrap();
        assert_eq!(
            names(&listing.files),
            [
                "s_0002", "s_0003", "s_0004", "s_0006", "s_0007", "s_0008", "s_0009", "s_0010"
            ]
            .map(|n| format!("{n}.png"))
        );
        assert_eq!(
            listing.gaps,
            [
                "gap in the slice numbering: s_0004.png is followed by s_0006.png: number 5 is missing",
                "gap in the slice numbering: the range 2..=12 goes on after s_0010.png: \
                 numbers 11..=12 are missing (2 files)"
            ]
        );
        assert_eq!(
            skipped(&listing),
            [
                ("s_0001.png".into(), "index 0001 is outside 2..=12".into()),
                (
                    "s_3.png".into(),
                    "index 3 is not written with 4 digits".into()
                ),
                (
                    "s_0004.jpg".into(),
                    "extension .jpg is not the selected .png".into()
                ),
                (
                    "t_0004.png".into(),
                    r#"prefix "t_" is not the selected "s_""#.into()
                ),
            ]
        );
        // Without a width, s_3.png and s_0003.png are both index 3: the first is kept.
        let listing = select(&dir, &Selection::default().prefix("s_").range(3, 3)).unwrap();
        assert_eq!(names(&listing.files), ["s_0003.png"]);
        assert!(
            skipped(&listing)
                .contains(&("s_3.png".into(), "index 3 again: s_0003.png has it".into())),
            "{:?}",
            listing.skipped
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn prefixes_ignore_case_where_file_names_do() {
        assert!(same_name_part("slice_", "SLICE_", true));
        assert!(same_name_part("Schnitt_Ä", "schnitt_ä", true));
        assert!(!same_name_part("slice_", "SLICE_", false));
        assert!(!same_name_part("slice_", "slices_", true));
        let dir = folder(
            "prefix-case",
            &["SLICE_0000.TIF", "SLICE_0001.TIF", "other_0000.tif"],
        );
        let listing = select(&dir, &Selection::default().prefix("slice_")).unwrap();
        if NAMES_IGNORE_CASE {
            assert_eq!(names(&listing.files), ["SLICE_0000.TIF", "SLICE_0001.TIF"]);
        } else {
            assert!(listing.files.is_empty(), "{:?}", listing.files);
        }
        assert_eq!(NAMES_IGNORE_CASE, cfg!(any(windows, target_os = "macos")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_range_as_wide_as_u64_reports_runs_not_indices() {
        let dir = folder("wide", &["s_5.tif"]);
        let listing = select(&dir, &Selection::default().range(0, u64::MAX)).unwrap();
        assert_eq!(names(&listing.files), ["s_5.tif"]);
        assert_eq!(listing.gaps.len(), 2);
        assert!(
            listing.gaps[0].contains("starts before s_5.tif: numbers 0..=4 are missing (5 files)")
        );
        assert!(
            listing.gaps[1].contains("(18446744073709551610 files)"),
            "{:?}",
            listing.gaps
        );
        let none = select(&dir, &Selection::default().range(7, 7)).unwrap();
        assert!(none.files.is_empty());
        assert_eq!(
            none.gaps,
            ["gap in the slice numbering: no file of the range 7..=7 exists: number 7 is missing"]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn impossible_selections_are_usage_errors() {
        let dir = folder("usage", &["s_1.tif"]);
        for selection in [
            Selection::default().extension("raw"),
            Selection::default().range(5, 3),
        ] {
            let err = select(&dir, &selection).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Usage, "{err}");
        }
        // A missing folder: the disk, not the call, is to blame (status 3 in
        // the CLI, CTSTACK_ERR_STATE in C); a file in its place cannot be listed.
        let err = select(&dir.join("absent"), &Selection::default()).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::State, "{err}");
        assert!(err.to_string().contains("does not exist"), "{err}");
        let err = select(&dir.join("s_1.tif"), &Selection::default()).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Io, "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn natural_order_counts_numbers() {
        let mut names = vec!["s10.tif", "s2.tif", "S1.tif", "s02.tif", "a.tif", "s1a.tif"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            ["a.tif", "S1.tif", "s1a.tif", "s02.tif", "s2.tif", "s10.tif"]
        );
        assert_eq!(
            natural_cmp("x99999999999999999999999999999999999999999", "x1"),
            Ordering::Greater
        );
    }

    #[test]
    fn gaps_are_named() {
        let files: Vec<PathBuf> = ["s7.tif", "s9.tif", "s10.tif", "s14.tif", "other3.tif"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let gaps = numbering_gaps(&files);
        assert_eq!(gaps.len(), 2, "{gaps:?}");
        assert!(gaps[0].contains("s7.tif is followed by s9.tif: number 8 is missing"));
        assert!(gaps[1].contains("numbers 11..=13 are missing (3 files)"));
        assert!(numbering_gaps(&[PathBuf::from("a.tif"), PathBuf::from("b.tif")]).is_empty());
    }
}
