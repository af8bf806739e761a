//! The file names of a crop's outputs, and the rule that keeps them inside the
//! output folder.

use std::collections::HashSet;
use std::path::Path;

use crate::Error;
use crate::stack::SliceRef;

/// How the output files of a crop are named.
///
/// ```
/// use ctstack::Naming;
///
/// // CTHarvester's settings: prefix, first index, index length.
/// let naming = Naming::numbered("crop_", 100, 4);
/// assert_eq!(naming, Naming::Numbered { prefix: "crop_".into(), start: 100, width: 4 });
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Naming {
    /// At level 0, each source's own file name (its extension changed when the
    /// output format differs: `scan_0007.jpg` gives `scan_0007.png`); a page
    /// `p` of a multi-page file `stack.tif` gives `stack_<p:06>.tif`. At level
    /// k >= 1, the pyramid's own names, `<j:06>.<ext>`: level-k slice `j`, the
    /// mean of source slices `j * 2^k ..= (j + 1) * 2^k - 1` (cut at the end of
    /// the stack; see [`inputs_of`](crate::inputs_of)).
    #[default]
    Source,
    /// `prefix + (start + j)` zero-padded to `width` digits `+ "." + ext`, where
    /// `j` is the slice's index in its level (CTHarvester's
    /// `prefix + str(seq_begin + idx).zfill(index_length) + "." + file_type`).
    /// In a numbered stack `j` at level 0 is the file's number minus the
    /// numbering's first (see [`Crop`](crate::Crop)): with `start` the stack's
    /// first number, each output has its source's number, whatever is missing.
    Numbered {
        /// Text before the number; no path separator, `..`, `:` or NUL.
        prefix: String,
        /// The number of the level's slice 0.
        start: u64,
        /// Digits, zero-padded (wider numbers as they are).
        width: usize,
    },
}

impl Naming {
    /// [`Naming::Numbered`].
    pub fn numbered(prefix: impl Into<String>, start: u64, width: usize) -> Naming {
        Naming::Numbered {
            prefix: prefix.into(),
            start,
            width,
        }
    }
}

/// The output name of level-`level` slice `j` read from `source`, with extension
/// `ext`; `multi_page`: `source` is one of several pages of its file.
fn output_name(
    naming: &Naming,
    level: usize,
    j: usize,
    source: &SliceRef,
    multi_page: bool,
    ext: &str,
) -> Result<String, Error> {
    let name = match naming {
        Naming::Source if level == 0 => {
            let stem = source
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if multi_page {
                format!("{stem}_{:06}.{ext}", source.page)
            } else {
                format!("{stem}.{ext}")
            }
        }
        Naming::Source => format!("{j:06}.{ext}"),
        Naming::Numbered {
            prefix,
            start,
            width,
        } => {
            let number = u128::from(*start) + j as u128;
            format!("{prefix}{number:0width$}.{ext}")
        }
    };
    check_name(&name)?;
    Ok(name)
}

/// The files of `stack` that hold more than one of its slices.
pub(super) fn multi_page_files(stack: &[SliceRef]) -> HashSet<&Path> {
    let mut files: HashSet<&Path> = HashSet::new();
    let mut multi: HashSet<&Path> = HashSet::new();
    for s in stack {
        if !files.insert(&s.path) || s.page > 0 {
            multi.insert(&s.path);
        }
    }
    multi
}

/// The output names of `sources`, level-`level` slices `indices` (by number,
/// never by position: see [`Crop`](crate::Crop)), checked to stay in the folder
/// and to be distinct; `multi` holds the files of the stack with several slices
/// ([`multi_page_files`]).
pub(super) fn output_names(
    naming: &Naming,
    level: usize,
    indices: &[usize],
    sources: &[SliceRef],
    multi: &HashSet<&Path>,
    ext: &str,
) -> Result<Vec<String>, Error> {
    let names = sources
        .iter()
        .zip(indices)
        .map(|(s, &j)| {
            let pages = multi.contains(s.path.as_path());
            output_name(naming, level, j, s, pages, ext)
        })
        .collect::<Result<Vec<String>, Error>>()?;
    let mut seen = HashSet::new();
    for name in &names {
        // Case-insensitive filesystems (Windows, macOS) would make two of one.
        if !seen.insert(name.to_lowercase()) {
            return Err(Error::usage(format!(
                "two output slices would both be named {name:?}: choose numbered names"
            )));
        }
    }
    Ok(names)
}

/// Refuses a name that is not one plain file name inside the output folder:
/// empty, `.`/`..`, holding a path separator (`/` or `\`), `..`, a drive letter
/// or stream separator (`:`) or a NUL, or starting with `.` (ctstack's own
/// temporary files do).
pub(crate) fn check_name(name: &str) -> Result<(), Error> {
    let bad = if name.is_empty() {
        Some("it is empty")
    } else if name.contains(['/', '\\']) {
        Some("it holds a path separator")
    } else if name.contains("..") {
        Some("it holds \"..\"")
    } else if name.contains(':') {
        Some("it holds \":\" (a drive letter or stream name)")
    } else if name.contains('\0') {
        Some("it holds a NUL")
    } else if name.starts_with('.') {
        Some("it starts with \".\"")
    } else {
        None
    };
    match bad {
        Some(why) => Err(Error::usage(format!(
            "output name {name:?} would not be a plain file in the output folder: {why}"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_leave_the_folder_are_refused() {
        for bad in [
            "",
            "..",
            "a/b.tif",
            "a\\b.tif",
            "..x.tif",
            "C:x.tif",
            "c:\\x.tif",
            ".hidden.tif",
            "nul\0.tif",
        ] {
            let err = check_name(bad).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Usage, "{bad:?}");
        }
        check_name("slice_0001.tif").unwrap();
        let source = SliceRef::new("/scan/x.tif", 0);
        for prefix in ["../", "sub/", "C:", "a\\"] {
            let naming = Naming::numbered(prefix, 0, 4);
            assert!(
                output_name(&naming, 0, 1, &source, false, "tif").is_err(),
                "{prefix}"
            );
        }
    }

    #[test]
    fn source_numbered_and_level_names() {
        let files = [
            SliceRef::new("/scan/s_0007.jpg", 0),
            SliceRef::new("/scan/s_0008.jpg", 0),
        ];
        let none = HashSet::new();
        let n = output_names(&Naming::Source, 0, &[7, 8], &files, &none, "png").unwrap();
        assert_eq!(n, ["s_0007.png", "s_0008.png"]);
        let n = output_names(&Naming::Source, 2, &[3, 4], &files, &none, "tif").unwrap();
        assert_eq!(n, ["000003.tif", "000004.tif"]);
        let naming = Naming::numbered("c_", 100, 5);
        let n = output_names(&naming, 1, &[3, 4], &files, &none, "bmp").unwrap();
        assert_eq!(n, ["c_00103.bmp", "c_00104.bmp"]);
        let pages = [
            SliceRef::new("/scan/stack.tif", 0),
            SliceRef::new("/scan/stack.tif", 1),
        ];
        let multi = multi_page_files(&pages);
        // Page 0 alone, of a file with more pages, is still named by its page.
        let n = output_names(&Naming::Source, 0, &[0], &pages[..1], &multi, "tif").unwrap();
        assert_eq!(n, ["stack_000000.tif"]);
        let n = output_names(&Naming::Source, 0, &[0, 1], &pages, &multi, "tif").unwrap();
        assert_eq!(n, ["stack_000000.tif", "stack_000001.tif"]);
        let clash = [SliceRef::new("/a/s.TIF", 0), SliceRef::new("/b/s.tif", 0)];
        assert!(output_names(&Naming::Source, 0, &[0, 1], &clash, &none, "tif").is_err());
    }
}
