//! The stack-selection flags both commands take: CTHarvester's
//! `prefix{index:0width}.{ext}` pattern with an index range.

use clap::Args;
use ctstack::stack::Selection;

#[derive(Args, Default)]
pub struct SelectArgs {
    /// Only files whose name starts with PREFIX before the index [default: the
    /// most common prefix in the folder].
    #[arg(long, value_name = "PREFIX")]
    prefix: Option<String>,
    /// Only files with this extension (tif, tiff, bmp, png, jpg, jpeg) [default:
    /// the most common one].
    #[arg(long, value_name = "EXT")]
    ext: Option<String>,
    /// Only files numbered FIRST..=LAST, the numbers in their names, both
    /// included (a missing number is a gap). `crop` spells it --indices only.
    #[arg(long, visible_alias = "indices", value_name = "FIRST:LAST", value_parser = index_range)]
    range: Option<(u64, u64)>,
    /// Only indices written with N digits, zero-padded.
    #[arg(long, value_name = "N")]
    index_width: Option<usize>,
}

impl SelectArgs {
    /// Whether any selection flag was given.
    pub fn any(&self) -> bool {
        self.prefix.is_some()
            || self.ext.is_some()
            || self.range.is_some()
            || self.index_width.is_some()
    }

    /// The library's selection.
    pub fn selection(&self) -> Selection {
        let mut s = Selection::default();
        if let Some(p) = &self.prefix {
            s = s.prefix(p.clone());
        }
        if let Some(e) = &self.ext {
            s = s.extension(e.clone());
        }
        if let Some((first, last)) = self.range {
            s = s.range(first, last);
        }
        if let Some(w) = self.index_width {
            s = s.index_width(w);
        }
        s
    }
}

/// `FIRST:LAST`, both whole numbers, FIRST <= LAST.
pub fn index_range(text: &str) -> Result<(u64, u64), String> {
    let (a, b) = text
        .split_once(':')
        .ok_or_else(|| "expected FIRST:LAST, e.g. 10:250".to_string())?;
    let parse = |v: &str| {
        v.trim()
            .parse::<u64>()
            .map_err(|e| format!("{v:?}: {e} (expected FIRST:LAST, e.g. 10:250)"))
    };
    let (first, last) = (parse(a)?, parse(b)?);
    if first > last {
        return Err(format!("FIRST {first} is after LAST {last}"));
    }
    Ok((first, last))
}
