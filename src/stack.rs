//! Which files make a stack, in which order: `.tif`/`.tiff` files of a directory
//! in natural order (`s2` before `s10`), and gaps in their numbering.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use crate::Error;

/// The `.tif`/`.tiff` files (any case) directly in `dir`, in natural order.
/// Other files and subdirectories are ignored.
pub fn list_slices(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, "cannot list directory", e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, "cannot list directory", e))?;
        let path = entry.path();
        let is_tiff = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("tif") || e.eq_ignore_ascii_case("tiff"));
        // Follows symlinks: a stack of links to slices elsewhere is a stack.
        if is_tiff && path.is_file() {
            files.push(path);
        }
    }
    files.sort_by(|a, b| natural_cmp(&file_name(a), &file_name(b)));
    Ok(files)
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
        let missing = nb - na - 1;
        let which = if missing == 1 {
            format!("number {} is missing", na + 1)
        } else {
            format!(
                "numbers {}..={} are missing ({missing} files)",
                na + 1,
                nb - 1
            )
        };
        gaps.push(format!(
            "gap in the slice numbering: {} is followed by {}: {which}",
            file_name(&files[i]),
            file_name(&files[i + 1])
        ));
    }
    gaps
}

/// (text before, text after, value) of the last run of digits in `name`.
fn index_of(name: &str) -> Option<(String, String, u128)> {
    let bytes = name.as_bytes();
    let end = bytes.iter().rposition(u8::is_ascii_digit)? + 1;
    let start = bytes[..end]
        .iter()
        .rposition(|c| !c.is_ascii_digit())
        .map_or(0, |p| p + 1);
    let value = name[start..end].parse::<u128>().ok()?;
    Some((name[..start].to_string(), name[end..].to_string(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

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
