//! The page index: where each page of a plan's stack is and how its pixels
//! lie, found once per plan and used by every reader of the plan's slices.
//!
//! A plan walks each input file's IFD chain once ([`PageReader::walk`]) and
//! keeps, per slice, what the walk found ([`IndexedPage`]). A reader of slice
//! `i` (the pyramid's streamed or opened inputs, a crop's boxes, the Zarr
//! writer's level 0, a [`Slice`](crate::Slice) opened for it) takes page
//! `i`'s layout from the index instead of walking the chain to it again: a
//! stack saved as one n-page file costs n IFD reads per plan, not n² / 2.
//!
//! An entry is used only while its file is unchanged: the file's
//! [`FileStamp`] (length, modification time) when it is opened for the
//! pixels must be the one the walk saw, else the page is found again by
//! walking the chain of the file as it is now.

use std::fs::File;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use super::{ImageLayout, PageAt, PageReader, page_layout};
use crate::region::PageKind;
use crate::source::FileStamp;
use crate::{Error, Limits};

/// Layouts are kept only for pages with at most this many chunks, so that an
/// index of a 10,000-slice stack holds a few MB at most (pages written with
/// one row per strip are parsed again, from one window at their IFD, whose
/// place the index keeps).
const KEPT_MAX_CHUNKS: usize = 64;

/// What the plan's walk found about one page.
#[derive(Debug, Clone)]
pub(crate) struct IndexedPage {
    /// The layout, if small enough to keep ([`KEPT_MAX_CHUNKS`]).
    layout: Option<ImageLayout>,
    /// Where to parse the layout again when it was not kept.
    at: PageAt,
    /// The page's place in its file's IFD chain.
    page: usize,
    /// The file as the walk saw it.
    stamp: FileStamp,
    /// The file bytes the page's chunks span, for read-ahead hints.
    span: Range<u64>,
    /// How its pixels are stored, for [`crate::region::reach_kind`].
    kind: PageKind,
}

impl IndexedPage {
    /// Page `page` of a file whose stamp was `stamp` when the walk found the
    /// page at `at` with `layout`.
    pub fn new(layout: ImageLayout, at: PageAt, page: usize, stamp: FileStamp) -> IndexedPage {
        let span = chunk_span(&layout);
        let kind = PageKind::of(&layout);
        IndexedPage {
            layout: (layout.offsets.len() <= KEPT_MAX_CHUNKS).then_some(layout),
            at,
            page,
            stamp,
            span,
            kind,
        }
    }

    /// How the page's pixels are stored (sample type, raw or not).
    pub fn kind(&self) -> PageKind {
        self.kind
    }

    /// The file bytes the page's pixels lie in.
    pub fn span(&self) -> Range<u64> {
        self.span.clone()
    }

    /// The file's stamp when the page was indexed.
    #[cfg(test)]
    pub fn stamp(&self) -> FileStamp {
        self.stamp
    }

    /// Whether the layout itself is kept (else only where to parse it).
    #[cfg(test)]
    pub fn keeps_layout(&self) -> bool {
        self.layout.is_some()
    }

    /// The page's layout in `reader`'s file, known to be the indexed one.
    fn layout_from(&self, reader: &mut PageReader<'_>) -> Result<ImageLayout, Error> {
        match &self.layout {
            Some(layout) => Ok(layout.clone()),
            None => reader.page_at(self.at, self.page),
        }
    }
}

/// The index of a plan's slices: entry `i` for slice `i`, `None` where nothing
/// was indexed (a BMP, PNG or JPEG file; a slice a slab task did not check).
/// Cheap to clone: plans share it.
#[derive(Debug, Clone, Default)]
pub(crate) struct PageIndex {
    pages: Arc<[Option<IndexedPage>]>,
}

impl PageIndex {
    pub fn new(pages: Vec<Option<IndexedPage>>) -> PageIndex {
        PageIndex {
            pages: pages.into(),
        }
    }

    /// Slice `i`'s entry, if it has one.
    pub fn get(&self, i: usize) -> Option<&IndexedPage> {
        self.pages.get(i).and_then(Option::as_ref)
    }
}

/// The layout of page `page` of the open `file` (at `path`) and the file's
/// stamp, for reading its pixels by positional reads: from `known` (the
/// page's index entry) while the file's stamp is the one indexed, else by
/// walking the chain to the page ([`page_layout`]). `Ok(None)` if the file does
/// not start like a TIFF: the caller reads it some other way.
pub(crate) fn locate(
    path: &Path,
    page: usize,
    file: &File,
    known: Option<&IndexedPage>,
    limits: &Limits,
) -> Result<Option<(ImageLayout, FileStamp)>, Error> {
    if let Some(known) = known.filter(|k| k.page == page)
        && FileStamp::of(path, file)? == known.stamp
    {
        let layout = match &known.layout {
            Some(layout) => layout.clone(),
            None => match PageReader::open_file(path, file, limits)? {
                Some(mut reader) => known.layout_from(&mut reader)?,
                None => return Ok(None),
            },
        };
        return Ok(Some((layout, known.stamp)));
    }
    page_layout(path, page, file, limits)
}

/// The layout of page `page` of a TIFF file held whole in memory (`bytes`, a
/// map or a buffer, of the file whose stamp was `stamp` when it was opened):
/// from `known` while the stamp is the one indexed, else by walking the chain.
pub(crate) fn locate_in_memory(
    path: &Path,
    page: usize,
    (bytes, stamp): (&[u8], FileStamp),
    known: Option<&IndexedPage>,
    limits: &Limits,
) -> Result<ImageLayout, Error> {
    let mut reader = PageReader::in_memory(path, bytes, limits)?;
    match known.filter(|k| k.page == page && k.stamp == stamp && k.stamp.len == bytes.len() as u64)
    {
        Some(known) => known.layout_from(&mut reader),
        None => reader.page(page),
    }
}

/// From the first chunk's start to the last chunk's end.
pub(crate) fn chunk_span(layout: &ImageLayout) -> Range<u64> {
    let chunks = layout.offsets.iter().zip(&layout.byte_counts);
    let first = layout.offsets.iter().min().copied().unwrap_or(0);
    let end = chunks.map(|(&o, &n)| o + n).max().unwrap_or(0);
    first..end.max(first)
}

#[cfg(test)]
mod tests;
