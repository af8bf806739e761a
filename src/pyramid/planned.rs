//! The plan's header cache: what the check of the stack learnt about each
//! level-0 page, kept for the run so that it does not walk or parse the file
//! again while the file is unchanged.

use std::ops::Range;

use crate::source::FileStamp;
use crate::tiff::{ImageLayout, PageAt};

/// A page's header as [`Plan`](super::Plan)'s check of the stack parsed it,
/// kept for the run: used if the file's stamp is still the same when the run
/// opens it.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    /// The layout, if small enough to keep ([`PLANNED_MAX_STRIPS`]).
    pub(super) layout: Option<ImageLayout>,
    /// Where to parse the layout again when it was not kept.
    pub(super) at: PageAt,
    pub(super) stamp: FileStamp,
    /// The file bytes the page's chunks span, for read-ahead hints.
    span: Range<u64>,
}

/// Planned layouts are kept only for pages with at most this many strips, so
/// that a plan of a 10,000-slice stack holds a few MB at most (pages written
/// with one row per strip are parsed again, from one window at their IFD).
const PLANNED_MAX_STRIPS: usize = 64;

impl Planned {
    /// What the run needs to know of a page the plan parsed.
    pub fn new(layout: ImageLayout, at: PageAt, stamp: FileStamp) -> Planned {
        let span = chunk_span(&layout);
        Planned {
            layout: (layout.offsets.len() <= PLANNED_MAX_STRIPS).then_some(layout),
            at,
            stamp,
            span,
        }
    }

    /// The file bytes the page's pixels lie in.
    pub fn span(&self) -> Range<u64> {
        self.span.clone()
    }
}

/// From the first chunk's start to the last chunk's end.
pub(super) fn chunk_span(layout: &ImageLayout) -> Range<u64> {
    let chunks = layout.offsets.iter().zip(&layout.byte_counts);
    let first = layout.offsets.iter().min().copied().unwrap_or(0);
    let end = chunks.map(|(&o, &n)| o + n).max().unwrap_or(0);
    first..end.max(first)
}
