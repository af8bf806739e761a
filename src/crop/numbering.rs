//! Which file a crop's slice is: the stack's numbering, never a position.
//!
//! A folder stack whose files are numbered (`ct_0005.tif`, `ct_0006.tif`, ...:
//! the digits before the extension, as [`crate::stack::select`] reads them) is
//! indexed by number: slice `i` of level 0 is the file numbered `first + i`,
//! where `first` is the selection's first index (CTHarvester's `seq_begin`)
//! or, without a range, the first file's number. A number with no file is a
//! missing slice: the crop refuses it, or skips it when asked, and never puts
//! the next file's pixels under its name.
//!
//! Level k >= 1 slice `j` stands for the level-0 slices `j * 2^k ..= (j + 1) *
//! 2^k - 1` (cut at the last). The pyramid averages its files in order, so its
//! slice `j` is that mean only while no number is missing up to the group's
//! end: from the first gap on, every group holds other files than the numbers
//! it stands for. Those level-k slices are missing too (refused or skipped).
//!
//! Stacks without numbers (a file list, the pages of a multi-page TIFF, names
//! without digits) are indexed by position: nothing is ever missing.

use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::Error;
use crate::stack::{SliceRef, file_index};

/// How a stack's slices are indexed.
#[derive(Debug, Clone)]
pub(super) struct Numbering {
    /// The number of slice 0, with the file numbers by position; `None`: by position.
    numbered: Option<(u64, Vec<u64>)>,
    /// A file of the stack, to show a missing number as a file name.
    example: Option<PathBuf>,
    /// Level-0 slices: the last number - `first` + 1 (the file count by position).
    count: usize,
    /// Leading positions with no gap before or at them (`number == first + position`).
    whole: usize,
}

/// Level-0 slices of a crop: the present ones as (index, position), and the
/// runs of missing numbers.
pub(super) struct Level0 {
    pub(super) present: Vec<(usize, usize)>,
    pub(super) missing: Vec<(u64, u64)>,
}

impl Numbering {
    /// By position: `files` slices, none missing.
    pub(super) fn positions(files: usize) -> Numbering {
        Numbering {
            numbered: None,
            example: None,
            count: files,
            whole: files,
        }
    }

    /// The numbering of a folder stack: by number when every slice is a file of
    /// one page whose name has an index, indices increasing; otherwise by
    /// position. `range_first`: the selection's first index.
    pub(super) fn of(stack: &[SliceRef], range_first: Option<u64>) -> Result<Numbering, Error> {
        let numbers: Option<Vec<u64>> = stack
            .iter()
            .map(|s| (s.page == 0).then(|| file_index(&s.path)).flatten())
            .collect();
        let Some(numbers) = numbers.filter(|n| n.windows(2).all(|w| w[0] < w[1])) else {
            return Ok(Numbering::positions(stack.len()));
        };
        let (Some(&lowest), Some(&last)) = (numbers.first(), numbers.last()) else {
            return Ok(Numbering::positions(0));
        };
        let first = range_first.unwrap_or(lowest).min(lowest);
        let count = usize::try_from(u128::from(last) - u128::from(first) + 1).map_err(|_| {
            Error::usage(format!(
                "the stack's numbering {first}..={last} has more slices than this machine can \
                 index"
            ))
        })?;
        let whole = numbers
            .iter()
            .enumerate()
            .take_while(|&(p, &n)| u128::from(n) == u128::from(first) + p as u128)
            .count();
        Ok(Numbering {
            numbered: Some((first, numbers)),
            example: stack.first().map(|s| s.path.clone()),
            count,
            whole,
        })
    }

    /// Level-k slices: `ceil(count / 2^k)`.
    pub(super) fn count_at(&self, k: usize) -> usize {
        if k == 0 {
            return self.count;
        }
        let k = k.min(usize::BITS as usize - 1);
        (self.count >> k) + usize::from(self.count & ((1 << k) - 1) != 0)
    }

    /// The level-0 slices `z`: which files they are, which numbers are missing.
    pub(super) fn level0(&self, z: Range<usize>) -> Level0 {
        let Some((first, numbers)) = &self.numbered else {
            let present = z.clone().map(|i| (i, i)).collect();
            return Level0 {
                present,
                missing: Vec::new(),
            };
        };
        // u128: the last number may be u64::MAX, one past it is not a u64.
        let first = u128::from(*first);
        let (lo, hi) = (first + z.start as u128, first + z.end as u128);
        let from = numbers.partition_point(|&n| u128::from(n) < lo);
        let to = numbers.partition_point(|&n| u128::from(n) < hi);
        let mut present = Vec::with_capacity(to - from);
        let mut missing = Vec::new();
        let mut expected = lo;
        for (p, &n) in numbers.iter().enumerate().take(to).skip(from) {
            let n = u128::from(n);
            if n > expected {
                missing.push((expected as u64, (n - 1) as u64));
            }
            present.push(((n - first) as usize, p));
            expected = n + 1;
        }
        if expected < hi {
            missing.push((expected as u64, (hi - 1) as u64));
        }
        Level0 { present, missing }
    }

    /// The level-k slices of `z` that are the mean of the numbers they stand
    /// for (the pyramid's slice of the same number), and those that are not.
    pub(super) fn level_k(&self, k: usize, z: Range<usize>) -> (Range<usize>, Range<usize>) {
        let exact = if self.whole == self.count {
            self.count_at(k)
        } else {
            self.whole >> k.min(usize::BITS as usize - 1)
        };
        let split = exact.clamp(z.start, z.end);
        (z.start..split, split..z.end)
    }

    /// The first missing number (the first gap), if any.
    fn first_gap(&self) -> Option<u64> {
        let (first, _) = self.numbered.as_ref()?;
        (self.whole < self.count).then(|| first + self.whole as u64)
    }

    /// `15 (ct_0015.tif)` or `20..=22 (ct_0020.tif ..= ct_0022.tif, 3 files)`,
    /// at most `MAX_RUNS` runs.
    pub(super) fn describe_missing(&self, runs: &[(u64, u64)]) -> String {
        const MAX_RUNS: usize = 6;
        let mut parts: Vec<String> = runs
            .iter()
            .take(MAX_RUNS)
            .map(|&(a, b)| match (a == b, self.name_of(a), self.name_of(b)) {
                (true, Some(n), _) => format!("{a} ({n})"),
                (true, None, _) => a.to_string(),
                (false, Some(na), Some(nb)) => {
                    format!("{a}..={b} ({na} ..= {nb}, {} files)", u128::from(b - a) + 1)
                }
                _ => format!("{a}..={b} ({} files)", u128::from(b - a) + 1),
            })
            .collect();
        if runs.len() > MAX_RUNS {
            parts.push(format!("and {} more runs", runs.len() - MAX_RUNS));
        }
        parts.join(", ")
    }

    /// The message for level-0 slices with no file.
    pub(super) fn level0_message(&self, dir: &Path, runs: &[(u64, u64)]) -> String {
        let numbers = if runs.len() == 1 && runs[0].0 == runs[0].1 {
            "number"
        } else {
            "numbers"
        };
        format!(
            "the stack in {} has no file for {numbers} {}: an output is named after the \
             number it holds, so those slices cannot be written",
            dir.display(),
            self.describe_missing(runs)
        )
    }

    /// The message for level-k slices `js` that are not the mean of their numbers.
    pub(super) fn level_k_message(&self, k: usize, js: &Range<usize>) -> String {
        let n = 1u128 << k.min(127);
        let first = self.numbered.as_ref().map_or(0, |(f, _)| *f);
        let gap = self.first_gap().map_or_else(
            || "numbers are missing".to_string(),
            |g| format!("number {} is missing", self.describe_missing(&[(g, g)])),
        );
        format!(
            "level {k} slices {}..={} would not be the mean of the numbers they stand for \
             (level-{k} slice j stands for numbers {first} + {n}j ..= {first} + {n}j + {}): \
             {gap}, and the pyramid averages its files in order, so from that gap on each of \
             its level-{k} slices holds other files; crop level 0, or fill the gap and build the \
             pyramid again",
            js.start,
            js.end - 1,
            n - 1
        )
    }

    /// The file name number `n` would have, after the stack's first file
    /// (`ct_0005.tif` and 15 give `ct_0015.tif`).
    fn name_of(&self, n: u64) -> Option<String> {
        let name = self.example.as_ref()?.file_name()?.to_str()?;
        let (stem, ext) = name.rsplit_once('.')?;
        let start = stem
            .bytes()
            .rposition(|c| !c.is_ascii_digit())
            .map_or(0, |p| p + 1);
        let width = stem.len() - start;
        Some(format!("{}{n:0width$}.{ext}", &stem[..start]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(numbers: &[u64]) -> Vec<SliceRef> {
        numbers
            .iter()
            .map(|n| SliceRef::new(format!("/scan/ct_{n:04}.tif"), 0))
            .collect()
    }

    #[test]
    fn a_gap_is_missing_never_shifted() {
        // ct_0005 ..= ct_0044 without ct_0015: the stack.
        let numbers: Vec<u64> = (5..=44).filter(|&n| n != 15).collect();
        let n = Numbering::of(&stack(&numbers), Some(5)).unwrap();
        assert_eq!(n.count_at(0), 40);
        let l0 = n.level0(3..31);
        assert_eq!(l0.missing, [(15, 15)]);
        assert_eq!(l0.present.len(), 27);
        // Index 11 (number 16) is position 10 (the file after the gap).
        assert!(l0.present.contains(&(11, 10)));
        assert!(!l0.present.iter().any(|&(i, _)| i == 10));
        assert!(
            n.describe_missing(&l0.missing).contains("15 (ct_0015.tif)"),
            "{}",
            n.describe_missing(&l0.missing)
        );
        // Level 1: slices 0..=4 (numbers 5..=14) are whole, 5 on are not.
        assert_eq!(n.count_at(1), 20);
        assert_eq!(n.level_k(1, 0..20), (0..5, 5..20));
        assert_eq!(n.level_k(2, 0..10), (0..2, 2..10));
        assert_eq!(n.level_k(1, 6..8), (6..6, 6..8));
    }

    #[test]
    fn without_gaps_every_slice_is_present() {
        let n = Numbering::of(&stack(&[3, 4, 5, 6, 7]), None).unwrap();
        assert_eq!(n.count_at(0), 5);
        assert_eq!(n.count_at(1), 3);
        assert_eq!(n.count_at(3), 1);
        assert_eq!(n.level0(1..4).present, [(1, 1), (2, 2), (3, 3)]);
        assert_eq!(n.level_k(1, 0..3), (0..3, 3..3));
        // A range that starts before the first file: index 0 is number 1.
        let n = Numbering::of(&stack(&[3, 4]), Some(1)).unwrap();
        assert_eq!(n.count_at(0), 4);
        assert_eq!(n.level0(0..4).missing, [(1, 2)]);
        assert_eq!(n.level_k(1, 0..2), (0..0, 0..2));
    }

    #[test]
    fn stacks_without_numbers_go_by_position() {
        let pages = [SliceRef::new("/s/a.tif", 0), SliceRef::new("/s/a.tif", 1)];
        let n = Numbering::of(&pages, None).unwrap();
        assert_eq!(n.level0(0..2).present, [(0, 0), (1, 1)]);
        let named = [SliceRef::new("/s/a.tif", 0), SliceRef::new("/s/b.tif", 0)];
        assert!(Numbering::of(&named, None).unwrap().numbered.is_none());
        // Numbers that do not increase in the stack's order: by position.
        let odd = stack(&[5, 3]);
        assert!(Numbering::of(&odd, None).unwrap().numbered.is_none());
        let wide = stack(&[0, u64::MAX]);
        assert!(Numbering::of(&wide, None).is_err() || usize::BITS > 64);
    }
}
