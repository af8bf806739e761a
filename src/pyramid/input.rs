//! A level-0 slice as the pyramid reads it: a raw TIFF page streamed a band of
//! rows at a time by positional reads ([`StreamedPage`]), or anything else
//! opened as a [`Slice`] (mapped, or decoded once). The two kinds mix freely
//! in one pair.
//!
//! A memory map hands the kernels pixels without a copy, but every 4 KiB page
//! costs a fault and a TLB entry, and a truncated file kills the process
//! (SIGBUS). Reading the same bytes a few rows at a time into buffers that stay
//! in L2 cache costs one copy the cache absorbs, faults nothing, and turns a
//! file that shrinks into an [`Error`] naming it. Memory stays bounded by the
//! bands, whatever the slice size: no whole-slice buffer for a level-0 input.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::region::{Page, Reach, Reading, Region, reach, reach_kind};
use crate::sample::Sample;
use crate::source::{Bytes, FileStamp};
use crate::stack::SliceRef;
use crate::tiff::{ImageLayout, IndexedPage, locate};
use crate::{Error, Limits, OpenOptions, Rows, Slice};

/// A raw TIFF page of an open file, read through the reading layer by
/// positional reads.
pub(crate) struct StreamedPage {
    path: PathBuf,
    file: File,
    /// The page's place in the IFD chain.
    index: usize,
    pub(super) layout: ImageLayout,
    limits: Limits,
    /// The file as it was when its header was parsed: every read is checked
    /// against it when the slice has been used.
    pub(super) stamp: FileStamp,
}

impl StreamedPage {
    /// Opens `slice`'s file and takes its page's layout from `indexed` (its
    /// entry in the plan's page index) if the file has not changed since the
    /// plan, else parses it (walking the chain by windows). `Ok(None)` unless
    /// the reading layer's decision ([`reach`]) is positional reads: the page
    /// is opened as a [`Slice`] instead.
    pub fn open(
        slice: &SliceRef,
        options: &OpenOptions,
        indexed: Option<&IndexedPage>,
    ) -> Result<Option<StreamedPage>, Error> {
        let path = &slice.path;
        let file = File::open(path).map_err(|e| Error::io(path, "cannot open", e))?;
        let found = locate(path, slice.page, &file, indexed, &options.limits)?;
        let Some((layout, stamp)) = found else {
            return Ok(None);
        };
        if reach(options, Some(&layout), Reading::Bands) != Reach::Positional {
            return Ok(None);
        }
        Ok(Some(StreamedPage {
            path: path.to_path_buf(),
            file,
            index: slice.page,
            layout,
            limits: options.limits,
            stamp,
        }))
    }

    /// Reads rows `y0 .. y0 + dst.len() / width` into `dst`, in the host's
    /// byte order; `scratch` holds stored bytes that must be converted.
    fn read_rows<T: Sample>(
        &self,
        y0: usize,
        dst: &mut [T],
        scratch: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let width = self.layout.width;
        let rows = dst.len() / (width as usize).max(1);
        #[cfg(test)]
        {
            crate::source::probe::pixels_read(&self.path, std::mem::size_of_val(dst) as u64);
            crate::source::probe::rows_read(&self.path, y0);
        }
        let region = Region {
            rows: y0 as u32..(y0 + rows) as u32,
            cols: 0..width,
        };
        let page = Page {
            path: &self.path,
            bytes: Bytes::File {
                file: &self.file,
                len: self.stamp.len,
            },
            index: self.index,
            layout: &self.layout,
        };
        page.read_with(&region, dst, &self.limits, scratch)
    }

    /// An error if the file changed since its header was read.
    fn check_unchanged(&self) -> Result<(), Error> {
        self.stamp.check_unchanged(&self.path, &self.file)
    }
}

/// A level-0 slice as the pyramid reads it.
pub(crate) enum Input {
    /// A raw TIFF page, read a band at a time.
    Streamed(StreamedPage),
    /// Anything else: opened (decoded, for compressed files) as a [`Slice`].
    Opened(Slice),
}

impl Input {
    /// Opens `slice` as the reading layer decides ([`reach`]): as a
    /// [`StreamedPage`] for positional reads, else as a [`Slice`] with
    /// `options`. `indexed`: its entry in the plan's page index, if it has one.
    pub fn open(
        slice: &SliceRef,
        options: &OpenOptions,
        indexed: Option<&IndexedPage>,
    ) -> Result<Input, Error> {
        match StreamedPage::open(slice, options, indexed)? {
            Some(page) => Ok(Input::Streamed(page)),
            None => Slice::open_indexed(slice, indexed, options).map(Input::Opened),
        }
    }

    /// Width and height in pixels.
    pub fn size(&self) -> (u32, u32) {
        match self {
            Input::Streamed(s) => (s.layout.width, s.layout.height),
            Input::Opened(s) => (s.width(), s.height()),
        }
    }

    /// The sample type.
    pub fn sample_type(&self) -> crate::SampleType {
        match self {
            Input::Streamed(s) => s.layout.sample_type,
            Input::Opened(s) => s.sample_type(),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        match self {
            Input::Streamed(s) => &s.path,
            Input::Opened(s) => s.path(),
        }
    }

    /// Bytes of the whole image, unpadded.
    pub fn image_bytes(&self) -> u64 {
        let (w, h) = self.size();
        u64::from(w) * u64::from(h) * self.sample_type().bytes() as u64
    }

    /// Asks the OS to read the pixels ahead: the map of a mapped slice (a no-op
    /// for slices in memory). A streamed input is read in order, and the
    /// kernel's read-ahead serves it better than a hint ([`hinted`]).
    pub fn prefetch(&self) {
        match self {
            Input::Streamed(_) => {}
            Input::Opened(s) => s.prefetch(),
        }
    }

    /// `rows` rows from `y0`: read into `buffer` (streamed; `bytes` is
    /// scratch for stored bytes that must be converted), or viewed in place.
    pub(super) fn band<'a, T: Sample>(
        &'a self,
        y0: usize,
        rows: usize,
        buffer: &'a mut [T],
        bytes: &mut Vec<u8>,
    ) -> Result<Band<'a, T>, Error> {
        match self {
            Input::Streamed(s) => {
                let width = s.layout.width as usize;
                let dst = &mut buffer[..rows * width];
                s.read_rows(y0, dst, bytes)?;
                let rows = Rows::from_contiguous(dst, width, rows)
                    .expect("the band buffer holds rows x width samples");
                Ok(Band { rows, first: 0 })
            }
            Input::Opened(s) => Ok(Band {
                rows: s.rows::<T>()?,
                first: y0,
            }),
        }
    }

    /// An error if a streamed input's file changed since its header was read.
    pub(super) fn check_unchanged(&self) -> Result<(), Error> {
        match self {
            Input::Streamed(s) => s.check_unchanged(),
            Input::Opened(_) => Ok(()),
        }
    }
}

/// Whether the pyramid asks the OS to read `indexed`'s page ahead of use
/// (`posix_fadvise` WILLNEED): not when it will be streamed.
///
/// A streamed input is read front to back, a band at a time in order
/// (`average.rs`), and the kernel's sequential read-ahead then issues large
/// requests, one stream per file, as it does for a program that `read()`s the
/// file. A WILLNEED hint of the file's pixels on top of that (the look-ahead
/// pair's, and the pair after it) only adds streams for the disk to serve at
/// once, and Linux caps one hint at the device's read-ahead size
/// (`max(read_ahead_kb, max_sectors_kb)`), so the rest of a 15 MB slice was
/// read by small on-demand requests anyway (a hint's pages carry no read-ahead
/// mark, so the reader that passes their end starts its read-ahead over from a
/// small window). Measured cold on 64 x 2752x2752 u16 (AMD EPYC VM, virtio disk
/// with read_ahead_kb 8192, quiet machine, six interleaved sets,
/// `benches/coldab.py`, `benches/results.md`): halves and hints 1.44x the read
/// floor, in order with hints 1.55x, halves without hints 1.46x, in order
/// without hints 1.08x (477 disk requests per run, as the floor's 450-550,
/// against 700-1180).
pub(crate) fn hinted(options: &OpenOptions, indexed: &IndexedPage) -> bool {
    reach_kind(options, Some(indexed.kind()), Reading::Bands) != Reach::Positional
}

/// Rows `first ..` of `rows`, renumbered from 0.
pub(super) struct Band<'a, T> {
    pub(super) rows: Rows<'a, T>,
    pub(super) first: usize,
}

impl<'a, T: Sample> Band<'a, T> {
    pub(super) fn row(&self, i: usize) -> &'a [T] {
        self.rows.row(self.first + i)
    }
}

#[cfg(test)]
mod tests;
