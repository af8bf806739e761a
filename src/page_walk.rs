//! The pages of a TIFF file read by positional reads of small windows, never
//! the whole file and never a map: how the pyramid finds the slices of a stack
//! saved as one multi-page file (ImageJ/Fiji, tifffile), and how a header is
//! read without mapping.
//!
//! An IFD, its values and its next-IFD offset usually lie within a few KiB of
//! each other, wherever the IFD is in the file. So each page is parsed from a
//! window of [`WINDOW`] bytes at its IFD; a page whose structures reach outside
//! is parsed again from a window eight times larger on both sides, up to the
//! whole file, which gives the final answer. A walk of an n-page file reads
//! about n windows, not n files.
//!
//! The chain is cycle-safe and bounded by [`Limits::max_pages`] as the
//! in-memory walk is (`tiff::ifd`). An ImageJ stack whose IFD chain lists only
//! its first image (`images=N` in its description, as ImageJ writes past 4 GiB)
//! yields its N pages from page 0's layout.

use std::collections::HashSet;
use std::fs::File;
use std::path::Path;

use crate::error::Problem;
use crate::formats::Format;
use crate::source::{FileStamp, read_error, read_exact_at};
use crate::tiff::{FileHeader, ImageLayout};
use crate::{Error, Limits};

/// The first window read at an IFD. 64 KiB holds the IFD and strip tables of a
/// slice of up to ~4000 strips as tifffile, libtiff and ctstack write them.
const WINDOW: u64 = 64 << 10;

/// How much wider each further window is, on each side.
const GROWTH: u64 = 8;

/// Where a page's layout comes from, to parse it again later without walking
/// the chain: its own IFD, or page 0's for a page of an ImageJ stack that lists
/// only its first image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PageAt {
    /// The page's IFD is at this offset.
    Ifd(u64),
    /// Image `index` of the ImageJ stack whose only IFD is at `first_ifd`.
    ImageJ { first_ifd: u64, index: u64 },
}

/// An open TIFF file, read through one window at a time.
pub(crate) struct PageReader<'f> {
    path: &'f Path,
    file: &'f File,
    stamp: FileStamp,
    header: FileHeader,
    limits: Limits,
    window: Vec<u8>,
    /// File offset of `window[0]`.
    base: u64,
}

impl<'f> PageReader<'f> {
    /// Reads the header of the open `file`. `Ok(None)` if it does not start
    /// like a TIFF (another format, or not an image).
    pub fn new(
        path: &'f Path,
        file: &'f File,
        limits: &Limits,
    ) -> Result<Option<PageReader<'f>>, Error> {
        let stamp = FileStamp::of(path, file)?;
        let mut reader = PageReader {
            path,
            file,
            stamp,
            header: FileHeader {
                order: crate::ByteOrder::host(),
                bigtiff: false,
                first_ifd: 0,
            },
            limits: *limits,
            window: Vec::new(),
            base: 0,
        };
        // The first window is the file's start: it holds the header, and IFD 0
        // of files that put it right after (tifffile, ctstack).
        reader.read_window(0, WINDOW.min(stamp.len))?;
        if Format::sniff(&reader.window) != Some(Format::Tiff) {
            return Ok(None);
        }
        reader.header = FileHeader::parse(&reader.window).map_err(|p| p.at(path))?;
        Ok(Some(reader))
    }

    /// The file's stamp when its header was read.
    pub fn stamp(&self) -> FileStamp {
        self.stamp
    }

    /// Page 0's layout.
    pub fn first_page(&mut self) -> Result<ImageLayout, Error> {
        self.parse_page(self.header.first_ifd, 0)
    }

    /// The layout of the page at `at`, as [`PageReader::walk`] found it.
    pub fn page_at(&mut self, at: PageAt) -> Result<ImageLayout, Error> {
        match at {
            PageAt::Ifd(offset) => self.parse_page(offset, 0),
            PageAt::ImageJ { first_ifd, index } => {
                Ok(self.parse_page(first_ifd, 0)?.imagej_page(index))
            }
        }
    }

    /// Every page of the file in order, each with where it came from, handed
    /// to `each(index, layout, at)` (`index`: the page's place in the IFD
    /// chain). With `skip_previews`, reduced-resolution pages after the first
    /// (the thumbnail some writers append) are passed over, not parsed: they
    /// are not slices. Stops at the first error (of a page, or of `each`).
    pub fn walk(
        &mut self,
        skip_previews: bool,
        mut each: impl FnMut(usize, ImageLayout, PageAt) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut offset = self.header.first_ifd;
        let mut seen = HashSet::from([offset]);
        let mut index = 0;
        loop {
            let (layout, next) = self.parse(offset, index, skip_previews)?;
            let imagej = match (&layout, index, next) {
                (Some(layout), 0, 0) => layout
                    .imagej_pages(self.stamp.len, &self.limits)
                    .map_err(|p| p.at(self.path))?,
                _ => None,
            };
            if let (Some(n), Some(layout)) = (imagej, &layout) {
                each(0, layout.clone(), PageAt::Ifd(offset))?;
                for k in 1..n {
                    let at = PageAt::ImageJ {
                        first_ifd: offset,
                        index: k,
                    };
                    each(k as usize, layout.imagej_page(k), at)?;
                }
                return Ok(());
            }
            if let Some(layout) = layout {
                each(index, layout, PageAt::Ifd(offset))?;
            }
            if next == 0 {
                return Ok(());
            }
            if !seen.insert(next) {
                return Err(Problem::Format(format!(
                    "the IFD chain loops: IFD {index} points back to offset {next}"
                ))
                .at(self.path));
            }
            if seen.len() as u64 > self.limits.max_pages {
                return Err(Problem::Limits(format!(
                    "the file holds more than {} pages (IFDs), the limit",
                    self.limits.max_pages
                ))
                .at(self.path));
            }
            offset = next;
            index += 1;
        }
    }

    /// The layout of page `index`, whose IFD is at `offset`.
    fn parse_page(&mut self, offset: u64, index: usize) -> Result<ImageLayout, Error> {
        let (layout, _) = self.parse(offset, index, false)?;
        Ok(layout.expect("only previews are skipped, and none are here"))
    }

    /// Page `index`, whose IFD is at `offset`: its layout (`None`: a preview,
    /// skipped) and the next IFD's offset.
    fn parse(
        &mut self,
        offset: u64,
        index: usize,
        skip_previews: bool,
    ) -> Result<(Option<ImageLayout>, u64), Error> {
        let len = self.stamp.len;
        let mut attempt = 0;
        loop {
            let holds = self.base <= offset && offset < self.base + self.window.len() as u64;
            if attempt > 0 || !holds {
                let reach = WINDOW.saturating_mul(GROWTH.saturating_pow(attempt));
                // The first window starts at the IFD; wider ones reach back too
                // (some writers put tag values before their IFD).
                let start = if attempt == 0 {
                    offset
                } else {
                    offset.saturating_sub(reach)
                };
                let end = offset.saturating_add(reach).min(len);
                self.read_window(start.min(end), end)?;
            }
            let whole = self.base == 0 && self.window.len() as u64 == len;
            let parsed = ImageLayout::parse_window(
                &self.window,
                self.base,
                self.header,
                (offset, index),
                len,
                (&self.limits, skip_previews),
            );
            match parsed {
                Err(Problem::Format(_)) if !whole => attempt += 1,
                other => return other.map_err(|p| p.on_page(index).at(self.path)),
            }
        }
    }

    /// Replaces the window with the file's bytes `start..end`.
    ///
    /// A window is capped at [`Limits::max_decoded_bytes`]: a header whose
    /// structures lie further apart is refused, not read.
    fn read_window(&mut self, start: u64, end: u64) -> Result<(), Error> {
        let n = end - start;
        let n = usize::try_from(n)
            .ok()
            .filter(|_| n <= self.limits.max_decoded_bytes)
            .ok_or_else(|| {
                Problem::Limits(format!(
                    "the header's structures lie {n} bytes apart, more than the limit of {} \
                     bytes to read for one header",
                    self.limits.max_decoded_bytes
                ))
                .at(self.path)
            })?;
        self.window.clear();
        self.window.resize(n, 0);
        self.base = start;
        read_exact_at(self.file, &mut self.window, start).map_err(|e| read_error(self.path, e))
    }
}

/// The layout of page `page` of the open `file` (at `path`) and the file's
/// stamp, parsed by positional reads of windows (the chain walked to the page):
/// a header read that never maps and never reads the whole file. `Ok(None)` if
/// the file does not start like a TIFF (another format, or not an image): the
/// caller reads it some other way.
pub(crate) fn page_layout(
    path: &Path,
    page: usize,
    file: &File,
    limits: &Limits,
) -> Result<Option<(ImageLayout, FileStamp)>, Error> {
    let Some(mut reader) = PageReader::new(path, file, limits)? else {
        return Ok(None);
    };
    if page == 0 {
        return Ok(Some((reader.first_page()?, reader.stamp())));
    }
    let mut found = None;
    let walked = reader.walk(false, |index, layout, _| {
        if index == page {
            found = Some(layout);
            // Stops the walk; this error is never reported.
            return Err(Error::Cancelled);
        }
        Ok(())
    });
    match (found, walked) {
        (Some(layout), _) => Ok(Some((layout, reader.stamp()))),
        (None, Err(e)) => Err(e),
        (None, Ok(())) => Err(Error::usage(format!(
            "{}: page {page} asked for, the file holds fewer pages",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::Format;

    /// A little-endian 16-bit TIFF of `w` x `h` whose IFD follows the pixels (as
    /// libtiff writes them), so a header read must go past the first prefix.
    fn tiff_with_ifd_at_end(w: u32, h: u32) -> Vec<u8> {
        let pixels = (w * h * 2) as usize;
        let ifd = 8 + pixels as u32;
        let mut f = b"II*\0".to_vec();
        f.extend_from_slice(&ifd.to_le_bytes());
        f.extend((0..pixels).map(|i| (i % 251) as u8));
        let entries: [(u16, u16, u32); 8] = [
            (256, 4, w),
            (257, 4, h),
            (258, 3, 16),
            (259, 3, 1),
            (262, 3, 1),
            (273, 4, 8),
            (278, 4, h),
            (279, 4, w * h * 2),
        ];
        f.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for (tag, ty, value) in entries {
            f.extend_from_slice(&tag.to_le_bytes());
            f.extend_from_slice(&ty.to_le_bytes());
            f.extend_from_slice(&1u32.to_le_bytes());
            f.extend_from_slice(&value.to_le_bytes());
        }
        f.extend_from_slice(&0u32.to_le_bytes());
        f
    }

    #[test]
    fn header_reads_grow_the_window_only_as_far_as_needed() {
        let dir = std::env::temp_dir().join(format!("ctstack-window-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let at_end = dir.join("ifd_at_end.tif");
        std::fs::write(&at_end, tiff_with_ifd_at_end(300, 400)).unwrap();
        let file = File::open(&at_end).unwrap();
        let (layout, stamp) = page_layout(&at_end, 0, &file, &crate::Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(
            (layout.width, layout.height, layout.offsets[0]),
            (300, 400, 8)
        );
        assert_eq!(stamp.len, 8 + 300 * 400 * 2 + 2 + 8 * 12 + 4);
        // A file cut inside its pixels still has a valid header, but its strip
        // runs past the end: a format error, found from the whole file.
        let cut = dir.join("cut.tif");
        let mut bytes = tiff_with_ifd_at_end(300, 400);
        bytes.drain(100_000..200_000);
        std::fs::write(&cut, &bytes).unwrap();
        let err = page_layout(
            &cut,
            0,
            &File::open(&cut).unwrap(),
            &crate::Limits::default(),
        )
        .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Format, "{err}");
        assert_eq!(err.path(), Some(cut.as_path()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn header_reads_agree_with_mapped_parses_on_every_fixture() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let limits = crate::Limits::default();
        let mut checked = 0;
        for dir in ["slices", "malformed", "unsupported", "stack", "types"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                if !path.is_file() {
                    continue;
                }
                let whole = std::fs::read(&path).unwrap();
                let want = ImageLayout::parse_page(&whole, 0, &limits).map_err(|p| p.at(&path));
                let got = page_layout(&path, 0, &File::open(&path).unwrap(), &limits);
                match (want, got) {
                    (Ok(w), Ok(Some((g, _)))) => {
                        assert_eq!(format!("{w:?}"), format!("{g:?}"), "{path:?}")
                    }
                    (Err(w), Err(g)) => assert_eq!(w.to_string(), g.to_string(), "{path:?}"),
                    // Not a TIFF: left to the reader of other formats.
                    (Err(_), Ok(None)) => assert_ne!(Format::sniff(&whole), Some(Format::Tiff)),
                    (w, g) => panic!("{path:?}: whole file {w:?}, prefix {g:?}"),
                }
                checked += 1;
            }
        }
        assert!(checked > 50, "{checked}");
    }

    /// Every page a window walk finds is the page the in-memory parse of the
    /// whole file finds, and the walk ends (or fails) where that parse does.
    #[test]
    fn page_walks_agree_with_whole_file_parses() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let limits = crate::Limits::default();
        let mut pages = 0;
        for dir in ["slices", "malformed", "types"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                if !path.is_file() {
                    continue;
                }
                let whole = std::fs::read(&path).unwrap();
                let file = File::open(&path).unwrap();
                let Some(mut reader) = PageReader::new(&path, &file, &limits).unwrap_or(None)
                else {
                    continue;
                };
                let mut walked = Vec::new();
                let end = reader.walk(false, |index, layout, _| {
                    walked.push((index, layout));
                    Ok(())
                });
                for (index, layout) in &walked {
                    let want = ImageLayout::parse_page(&whole, *index, &limits).unwrap();
                    assert_eq!(
                        format!("{want:?}"),
                        format!("{layout:?}"),
                        "{path:?} {index}"
                    );
                }
                let count = crate::tiff::page_count(&whole, &limits);
                match end {
                    Ok(()) => assert_eq!(count.ok(), Some(walked.len()), "{path:?}"),
                    // The walk stopped at a page the whole-file parse refuses too.
                    Err(_) => assert!(
                        count.is_err()
                            || ImageLayout::parse_page(&whole, walked.len(), &limits).is_err(),
                        "{path:?}"
                    ),
                }
                pages += walked.len();
            }
        }
        assert!(pages > 250, "{pages}");
    }
}
