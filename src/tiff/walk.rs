//! The one walk along a TIFF file's IFD chain: how every reader finds a page.
//!
//! The walk reads through [`Bytes`]: a file in memory (mapped or read whole) is
//! parsed in place, an open file by positional reads of small windows, never
//! the whole file and never a map. An IFD, its values and its next-IFD offset
//! usually lie within a few KiB of each other, wherever the IFD is in the file,
//! so each page is parsed from a window of [`WINDOW`] bytes at its IFD; a page
//! whose structures reach outside is parsed again from a window eight times
//! larger on both sides, up to the whole file, which gives the final answer. A
//! walk of an n-page file reads about n windows, not n files.
//!
//! The chain is cycle-safe (an IFD offset seen before is a format error) and
//! bounded by [`Limits::max_pages`]. An ImageJ stack whose IFD chain lists only
//! its first image (`images=N` in its description, as ImageJ writes past 4 GiB)
//! yields its N pages from page 0's layout.

use std::collections::HashSet;
use std::fs::File;
use std::path::Path;

use super::{Directory, FileHeader, ImageLayout};
use crate::error::{Problem, format_problem};
use crate::formats::Format;
use crate::source::{Bytes, FileStamp};
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

/// The bytes an IFD is parsed from: the whole file in memory, or a window
/// of it read at the IFD.
enum Window<'a> {
    Whole(&'a [u8]),
    Read { buf: Vec<u8>, base: u64 },
}

/// A TIFF file whose pages are found by walking its IFD chain.
pub(crate) struct PageReader<'a> {
    path: &'a Path,
    bytes: Bytes<'a>,
    /// The file's stamp when its header was read (open files only).
    stamp: Option<FileStamp>,
    header: FileHeader,
    limits: Limits,
    window: Window<'a>,
}

/// The chain as walked so far: the IFD offsets seen, for cycle detection and
/// the page limit.
struct Chain {
    seen: HashSet<u64>,
}

impl Chain {
    fn new(first_ifd: u64) -> Chain {
        Chain {
            seen: HashSet::from([first_ifd]),
        }
    }

    /// Pages seen so far.
    fn pages(&self) -> usize {
        self.seen.len()
    }

    /// Accepts `next`, IFD `index`'s successor, or says why the chain cannot
    /// go on: it loops, or it is longer than the limit.
    fn step(&mut self, index: usize, next: u64, max_pages: u64) -> Result<(), Problem> {
        if !self.seen.insert(next) {
            return Err(format_problem!(
                "the IFD chain loops: IFD {index} points back to offset {next}"
            ));
        }
        if self.seen.len() as u64 > max_pages {
            return Err(Problem::Limits(format!(
                "the file holds more than {max_pages} pages (IFDs), the limit"
            )));
        }
        Ok(())
    }
}

impl<'a> PageReader<'a> {
    /// Reads the header of the open `file` by a positional read of its start.
    /// `Ok(None)` if it does not start like a TIFF (another format, or not an
    /// image).
    pub fn open_file(
        path: &'a Path,
        file: &'a File,
        limits: &Limits,
    ) -> Result<Option<PageReader<'a>>, Error> {
        let stamp = FileStamp::of(path, file)?;
        let bytes = Bytes::File {
            file,
            len: stamp.len,
        };
        let mut reader = PageReader {
            path,
            bytes,
            stamp: Some(stamp),
            header: FileHeader {
                order: crate::ByteOrder::host(),
                bigtiff: false,
                first_ifd: 0,
            },
            limits: *limits,
            window: Window::Read {
                buf: Vec::new(),
                base: 0,
            },
        };
        // The first window is the file's start: it holds the header, and IFD 0
        // of files that put it right after (tifffile, ctstack).
        reader.read_window(0, WINDOW.min(stamp.len))?;
        if Format::sniff(reader.window().0) != Some(Format::Tiff) {
            return Ok(None);
        }
        reader.header = FileHeader::parse(reader.window().0).map_err(|p| p.at(path))?;
        Ok(Some(reader))
    }

    /// A reader of the whole file held in memory (`bytes`, a map or a buffer).
    /// Errors are the file's: a file that is not a TIFF is a format error.
    pub fn in_memory(
        path: &'a Path,
        bytes: &'a [u8],
        limits: &Limits,
    ) -> Result<PageReader<'a>, Error> {
        let header = FileHeader::parse(bytes).map_err(|p| p.at(path))?;
        Ok(PageReader {
            path,
            bytes: Bytes::Memory(bytes),
            stamp: None,
            header,
            limits: *limits,
            window: Window::Whole(bytes),
        })
    }

    /// The file's stamp when its header was read (a file opened with
    /// [`PageReader::open_file`]).
    pub fn stamp(&self) -> Option<FileStamp> {
        self.stamp
    }

    /// The layout of page `index` (0-based, in chain order; the pages of an
    /// ImageJ stack that lists only its first image count as pages). Only the
    /// entry counts and next-IFD offsets of the IFDs before it are read. A page
    /// past the last is an [`Error::Usage`].
    pub fn page(&mut self, index: usize) -> Result<ImageLayout, Error> {
        let first = self.header.first_ifd;
        let mut chain = Chain::new(first);
        let mut offset = first;
        for i in 0..index {
            let next = self.next_ifd(offset, i, index)?;
            if next == 0 {
                return self.past_the_chain(index, chain.pages());
            }
            chain
                .step(i, next, self.limits.max_pages)
                .map_err(|p| p.on_page(index).at(self.path))?;
            offset = next;
        }
        self.parse_page(offset, index)
    }

    /// Page `index` of a chain of `pages` IFDs that ends before it: a page of
    /// an ImageJ stack that lists only its first image, or a usage error.
    fn past_the_chain(&mut self, index: usize, pages: usize) -> Result<ImageLayout, Error> {
        if pages == 1 {
            let first = self.parse_page(self.header.first_ifd, 0)?;
            match first
                .imagej_pages(self.bytes.len(), &self.limits)
                .map_err(|p| p.at(self.path))?
            {
                Some(n) if (index as u64) < n => return Ok(first.imagej_page(index as u64)),
                Some(n) => {
                    return Err(Problem::Usage(format!(
                        "page {index} asked for, the ImageJ stack holds {n} pages"
                    ))
                    .at(self.path));
                }
                None => {}
            }
        }
        Err(Problem::Usage(format!(
            "page {index} asked for, the file holds {pages} page{}",
            if pages == 1 { "" } else { "s" }
        ))
        .at(self.path))
    }

    /// The number of pages: the chain's IFDs, or an ImageJ stack's images
    /// when the chain lists only its first. Only entry counts and next-IFD
    /// offsets are read, except page 0's layout for a one-IFD file.
    pub fn page_count(&mut self) -> Result<usize, Error> {
        let mut chain = Chain::new(self.header.first_ifd);
        let mut offset = self.header.first_ifd;
        loop {
            let index = chain.pages() - 1;
            let next = self.next_ifd(offset, index, 0)?;
            if next == 0 {
                break;
            }
            chain
                .step(index, next, self.limits.max_pages)
                .map_err(|p| p.at(self.path))?;
            offset = next;
        }
        if chain.pages() == 1 {
            // A page 0 ctstack cannot read has no pages to count beyond itself.
            if let Ok(first) = self.parse_page(self.header.first_ifd, 0)
                && let Some(images) = first
                    .imagej_pages(self.bytes.len(), &self.limits)
                    .map_err(|p| p.at(self.path))?
            {
                return Ok(usize::try_from(images).unwrap_or(usize::MAX));
            }
        }
        Ok(chain.pages())
    }

    /// The layout of page `index`, at `at` as [`PageReader::walk`] found it:
    /// one IFD parsed, the chain not walked.
    pub fn page_at(&mut self, at: PageAt, index: usize) -> Result<ImageLayout, Error> {
        match at {
            PageAt::Ifd(offset) => self.parse_page(offset, index),
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
        let mut chain = Chain::new(offset);
        let mut index = 0;
        loop {
            let (layout, next) = self.parse(offset, index, skip_previews)?;
            let imagej = match (&layout, index, next) {
                (Some(layout), 0, 0) => layout
                    .imagej_pages(self.bytes.len(), &self.limits)
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
            chain
                .step(index, next, self.limits.max_pages)
                .map_err(|p| p.at(self.path))?;
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
        let (header, len, limits) = (self.header, self.bytes.len(), self.limits);
        self.in_window(offset, index, |window, base| {
            ImageLayout::parse_window(
                window,
                base,
                header,
                (offset, index),
                len,
                (&limits, skip_previews),
            )
        })
    }

    /// The offset of the IFD after IFD `index` (at `offset`), 0 at the end of
    /// the chain; the IFD's entries are located, not decoded. Problems are told
    /// as page `label`'s (the page the walk is for; 0: no page named).
    fn next_ifd(&mut self, offset: u64, index: usize, label: usize) -> Result<u64, Error> {
        let (header, len, limits) = (self.header, self.bytes.len(), self.limits);
        self.in_window(offset, label, |window, base| {
            let dir = Directory::in_window(window, base, header, offset, index, &limits)?;
            match dir.next_ifd()? {
                (next, true) => Ok(next),
                // A file that ends right after its last entry table has no next IFD.
                (_, false) if base + window.len() as u64 >= len => Ok(0),
                (_, false) => Err(format_problem!(
                    "IFD {index}'s next-IFD offset lies past the bytes read"
                )),
            }
        })
    }

    /// Runs `parse(window, base)` on a window that holds the IFD at `offset`,
    /// retried on wider windows while it finds a format problem that a wider
    /// one might resolve; the whole file gives the final answer. Problems are
    /// told as page `label`'s.
    fn in_window<R>(
        &mut self,
        offset: u64,
        label: usize,
        parse: impl Fn(&[u8], u64) -> Result<R, Problem>,
    ) -> Result<R, Error> {
        #[cfg(test)]
        probe::ifd_read(self.path);
        let len = self.bytes.len();
        let mut attempt = 0;
        loop {
            let (window, base) = self.window();
            let holds = base <= offset && offset < base + window.len() as u64;
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
            let (window, base) = self.window();
            let whole = base == 0 && window.len() as u64 == len;
            match parse(window, base) {
                Err(Problem::Format(_)) if !whole => attempt += 1,
                other => return other.map_err(|p| p.on_page(label).at(self.path)),
            }
        }
    }

    /// The current window and the file offset of its first byte.
    fn window(&self) -> (&[u8], u64) {
        match &self.window {
            Window::Whole(bytes) => (bytes, 0),
            Window::Read { buf, base } => (buf, *base),
        }
    }

    /// Replaces the window with the file's bytes `start..end` (a no-op for a
    /// file in memory, whose window is all of it).
    ///
    /// A window is capped at [`Limits::max_decoded_bytes`]: a header whose
    /// structures lie further apart is refused, not read.
    fn read_window(&mut self, start: u64, end: u64) -> Result<(), Error> {
        let Window::Read { buf, base } = &mut self.window else {
            return Ok(());
        };
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
        buf.clear();
        buf.resize(n, 0);
        *base = start;
        self.bytes.read_at(self.path, start, buf)
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
    let Some(mut reader) = PageReader::open_file(path, file, limits)? else {
        return Ok(None);
    };
    let layout = reader.page(page)?;
    let stamp = reader.stamp().expect("an open file's reader has a stamp");
    Ok(Some((layout, stamp)))
}

/// Test-only: how many IFDs were located or parsed in each file, so that tests
/// can tell a walk per plan from a walk per page.
#[cfg(test)]
pub(crate) mod probe {
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    static IFD_READS: Mutex<Option<HashMap<PathBuf, u64>>> = Mutex::new(None);

    pub(super) fn ifd_read(path: &Path) {
        let mut reads = IFD_READS.lock().unwrap_or_else(|e| e.into_inner());
        *reads
            .get_or_insert_with(HashMap::new)
            .entry(path.to_path_buf())
            .or_default() += 1;
    }

    /// IFDs located or parsed in the file at `path` so far.
    pub(crate) fn ifd_reads(path: &Path) -> u64 {
        let reads = IFD_READS.lock().unwrap_or_else(|e| e.into_inner());
        reads
            .as_ref()
            .and_then(|r| r.get(path))
            .copied()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::Format;

    /// Page `index` of `whole` (the file in memory).
    fn in_memory(
        path: &Path,
        whole: &[u8],
        index: usize,
        limits: &Limits,
    ) -> Result<ImageLayout, Error> {
        PageReader::in_memory(path, whole, limits)?.page(index)
    }

    fn count_in_memory(path: &Path, whole: &[u8], limits: &Limits) -> Result<usize, Error> {
        PageReader::in_memory(path, whole, limits)?.page_count()
    }

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
        // Windows removes an open file only once its last handle closes (until
        // then its folder is not empty): close it before the folder goes.
        drop(file);
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
                let want = in_memory(&path, &whole, 0, &limits);
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
                let Some(mut reader) = PageReader::open_file(&path, &file, &limits).unwrap_or(None)
                else {
                    continue;
                };
                let mut walked = Vec::new();
                let end = reader.walk(false, |index, layout, _| {
                    walked.push((index, layout));
                    Ok(())
                });
                for (index, layout) in &walked {
                    let want = in_memory(&path, &whole, *index, &limits).unwrap();
                    assert_eq!(
                        format!("{want:?}"),
                        format!("{layout:?}"),
                        "{path:?} {index}"
                    );
                }
                let count = count_in_memory(&path, &whole, &limits);
                match end {
                    Ok(()) => assert_eq!(count.ok(), Some(walked.len()), "{path:?}"),
                    // The walk stopped at a page the whole-file parse refuses too.
                    Err(_) => assert!(
                        count.is_err() || in_memory(&path, &whole, walked.len(), &limits).is_err(),
                        "{path:?}"
                    ),
                }
                pages += walked.len();
            }
        }
        assert!(pages > 250, "{pages}");
    }

    /// A classic little-endian file of empty IFDs, 6 bytes each from offset 8;
    /// `next[i]` is IFD i's next-IFD offset.
    fn chain(next: &[u32]) -> Vec<u8> {
        let mut v = b"II*\0\x08\0\0\0".to_vec();
        for &n in next {
            v.extend_from_slice(&0u16.to_le_bytes());
            v.extend_from_slice(&n.to_le_bytes());
        }
        v
    }

    fn limits(max_pages: u64) -> Limits {
        Limits {
            max_pages,
            ..Limits::default()
        }
    }

    fn count(bytes: &[u8], max_pages: u64) -> Result<usize, Error> {
        count_in_memory(Path::new("chain.tif"), bytes, &limits(max_pages))
    }

    #[test]
    fn the_chain_is_counted_and_walked_to_any_page() {
        let bytes = chain(&[14, 20, 0]);
        assert_eq!(count(&bytes, 10).unwrap(), 3);
        // Page 2 is found (and refused for its empty IFD, not for its place).
        let e = in_memory(Path::new("c.tif"), &bytes, 2, &limits(10)).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Format, "{e}");
        assert!(e.to_string().contains("page 2: "), "{e}");
        let past = in_memory(Path::new("c.tif"), &bytes, 3, &limits(10)).unwrap_err();
        assert_eq!(past.kind(), crate::ErrorKind::Usage, "{past}");
        assert!(past.to_string().contains("3 pages"), "{past}");
    }

    #[test]
    fn loops_are_format_errors_and_long_chains_hit_the_limit() {
        for next in [&[14, 20, 8][..], &[8], &[14, 14]] {
            let bytes = chain(next);
            let e = count(&bytes, 10).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Format, "{e}");
            assert!(e.to_string().contains("loops"), "{e}");
            assert!(in_memory(Path::new("c.tif"), &bytes, 9, &limits(10)).is_err());
        }
        let bytes = chain(&[14, 20, 26, 0]);
        assert_eq!(count(&bytes, 4).unwrap(), 4);
        let e = count(&bytes, 3).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::LimitsExceeded, "{e}");
    }

    #[test]
    fn a_next_offset_outside_the_file_is_an_error_a_missing_one_the_end() {
        let e = count(&chain(&[1000]), 10).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Format, "{e}");
        // The last IFD's next-offset field cut off: no next page.
        let bytes = chain(&[0]);
        assert_eq!(count(&bytes[..bytes.len() - 4], 10).unwrap(), 1);
    }

    /// The same walk over an open file (windows) and over the file in memory.
    #[test]
    fn chains_walk_alike_from_files_and_from_memory() {
        let dir = std::env::temp_dir().join(format!("ctstack-chain-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (i, next) in [&[14u32, 20, 0][..], &[14, 20, 8], &[1000], &[14, 14]]
            .into_iter()
            .enumerate()
        {
            let path = dir.join(format!("chain{i}.tif"));
            let bytes = chain(next);
            std::fs::write(&path, &bytes).unwrap();
            let file = File::open(&path).unwrap();
            let from_file = PageReader::open_file(&path, &file, &limits(10))
                .unwrap()
                .unwrap()
                .page_count();
            let from_memory = count_in_memory(&path, &bytes, &limits(10));
            assert_eq!(
                format!("{from_file:?}"),
                format!("{from_memory:?}"),
                "{next:?}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
