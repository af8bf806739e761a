//! The pyramid's streaming read path: level-0 slices averaged a band of rows at
//! a time, straight from positional reads of their strips into small buffers.
//!
//! A memory map hands the kernels pixels without a copy, but every 4 KiB page
//! costs a fault and a TLB entry, and a truncated file kills the process
//! (SIGBUS). Reading the same bytes a few rows at a time into buffers that stay
//! in L2 cache costs one copy the cache absorbs, faults nothing, and turns a
//! file that shrinks into an [`Error`] naming it. Memory stays bounded by the
//! bands, whatever the slice size: no whole-slice buffer for a level-0 input.
//!
//! Only uncompressed, strip-organised TIFFs whose samples are stored as they
//! are served are read this way, in either byte order and at any offset
//! ([`StripFile`]); compressed, tiled, packed-depth or converted files and other
//! formats are opened as a [`Slice`] (decoded once), and the two kinds mix
//! freely in one pair ([`Input`]).

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::kernels::average_rows;
use crate::page_walk::{PageAt, PageReader, page_layout};
use crate::sample::{self, Sample};
use crate::source::{self, FileStamp};
use crate::stack::SliceRef;
use crate::tiff::{ByteOrder, Chunks, ImageLayout};
use crate::{Error, Kernel, OpenOptions, Rows, Slice};

/// Input bytes one band of a pair may occupy: two rows of output need four
/// input rows (two of each slice). 256 KiB is half the L2 cache of the EPYC
/// this was tuned on (512 KiB per core) and a quarter of most desktop parts',
/// leaving room for the output rows and the kernels' own traffic.
const BAND_BYTES: usize = 256 << 10;

/// An uncompressed, strip-organised TIFF file, parsed, held open and read by
/// positional reads (see [`source::read_exact_at`]).
pub(crate) struct StripFile {
    path: PathBuf,
    file: File,
    layout: ImageLayout,
    rows_per_strip: usize,
    /// The file as it was when its header was parsed: every read is checked
    /// against it when the slice has been used.
    stamp: FileStamp,
}

/// A page's header as [`Plan`](super::Plan)'s check of the stack parsed it,
/// kept for the run so that it does not walk or parse the file again: used if
/// the file's stamp is still the same when the run opens it.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    /// The layout, if small enough to keep ([`PLANNED_MAX_STRIPS`]).
    layout: Option<ImageLayout>,
    /// Where to parse the layout again when it was not kept.
    at: PageAt,
    stamp: FileStamp,
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
fn chunk_span(layout: &ImageLayout) -> Range<u64> {
    let chunks = layout.offsets.iter().zip(&layout.byte_counts);
    let first = layout.offsets.iter().min().copied().unwrap_or(0);
    let end = chunks.map(|(&o, &n)| o + n).max().unwrap_or(0);
    first..end.max(first)
}

impl StripFile {
    /// Opens `slice`'s file and takes its page's layout from `planned` if the
    /// file has not changed since the plan parsed it, else parses it (page 0
    /// from windows at its start; other pages by walking the chain). `Ok(None)`
    /// if the image is not stored raw in strips (compressed, with a predictor,
    /// tiled): such a page must be decoded instead.
    pub fn open(
        slice: &SliceRef,
        options: &OpenOptions,
        planned: Option<&Planned>,
    ) -> Result<Option<StripFile>, Error> {
        let path = &slice.path;
        let file = File::open(path).map_err(|e| Error::io(path, "cannot open", e))?;
        let found = match planned {
            Some(p) if FileStamp::of(path, &file)? == p.stamp => match &p.layout {
                Some(layout) => Some((layout.clone(), p.stamp)),
                None => match PageReader::new(path, &file, &options.limits)? {
                    Some(mut reader) => Some((reader.page_at(p.at)?, reader.stamp())),
                    None => None,
                },
            },
            _ => page_layout(path, slice.page, &file, &options.limits)?,
        };
        let Some((layout, stamp)) = found else {
            return Ok(None);
        };
        let Chunks::Strips { rows_per_strip } = layout.chunks else {
            return Ok(None);
        };
        // Only samples stored as they are served: no decoding, no unpacking of
        // packed depths, no bit reversal, no depth conversion.
        let converted = options
            .convert_depth
            .is_some_and(|to| to != layout.sample_type);
        if !layout.is_raw() || layout.is_packed() || layout.bits_reversed || converted {
            return Ok(None);
        }
        Ok(Some(StripFile {
            path: path.to_path_buf(),
            file,
            rows_per_strip: rows_per_strip as usize,
            layout,
            stamp,
        }))
    }

    /// Asks the OS to bring the file's pixel bytes into the page cache now.
    pub fn prefetch(&self) {
        let span = chunk_span(&self.layout);
        source::advise_willneed(&self.file, span.start, span.end - span.start);
    }

    /// Reads rows `y0 .. y0 + dst.len() / width` into `dst`, native byte order.
    /// `bytes` is scratch for files in the other byte order.
    fn read_rows<T: Sample>(
        &self,
        y0: usize,
        dst: &mut [T],
        bytes: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let row_bytes = self.layout.row_bytes() as usize;
        let rows = dst.len() / (self.layout.width as usize);
        let foreign = T::TYPE.bytes() > 1 && self.layout.order != ByteOrder::host();
        if foreign {
            bytes.resize(rows * row_bytes, 0);
            self.read_row_bytes(y0, rows, bytes)?;
            sample::decode_into(bytes, self.layout.order, dst);
        } else {
            self.read_row_bytes(y0, rows, bytemuck::cast_slice_mut(dst))?;
        }
        Ok(())
    }

    /// Reads the bytes of rows `y0 .. y0 + rows` into `dst`, one positional read
    /// per run of rows that lie next to each other in the file.
    fn read_row_bytes(&self, y0: usize, rows: usize, dst: &mut [u8]) -> Result<(), Error> {
        let row_bytes = self.layout.row_bytes();
        let rps = self.rows_per_strip;
        // (file offset, first byte in dst, length) of the run being gathered.
        let mut run: Option<(u64, usize, usize)> = None;
        let mut y = y0;
        while y < y0 + rows {
            let in_strip = (rps - y % rps).min(y0 + rows - y);
            // Offsets and strip sizes were checked against the file at parse time.
            let offset = self.layout.offsets[y / rps] + (y % rps) as u64 * row_bytes;
            let len = in_strip * row_bytes as usize;
            let at = (y - y0) * row_bytes as usize;
            run = match run {
                Some((o, d, l)) if o + l as u64 == offset => Some((o, d, l + len)),
                Some(done) => {
                    self.read_run(done, dst)?;
                    Some((offset, at, len))
                }
                None => Some((offset, at, len)),
            };
            y += in_strip;
        }
        match run {
            Some(last) => self.read_run(last, dst),
            None => Ok(()),
        }
    }

    fn read_run(
        &self,
        (offset, at, len): (u64, usize, usize),
        dst: &mut [u8],
    ) -> Result<(), Error> {
        source::read_exact_at(&self.file, &mut dst[at..at + len], offset)
            .map_err(|e| source::read_error(&self.path, e))
    }

    /// An error if the file changed since its header was read.
    fn check_unchanged(&self) -> Result<(), Error> {
        self.stamp.check_unchanged(&self.path, &self.file)
    }
}

/// A level-0 slice as the pyramid reads it.
pub(crate) enum Input {
    /// Raw strips, read a band at a time.
    Streamed(StripFile),
    /// Anything else: opened (decoded, for compressed files) as a [`Slice`].
    Opened(Slice),
}

impl Input {
    /// Opens `slice`: as a [`StripFile`] if its pixels are stored raw in strips,
    /// else as a [`Slice`] with `options`. `planned`: its header as the plan
    /// parsed it, if kept.
    pub fn open(
        slice: &SliceRef,
        options: &OpenOptions,
        planned: Option<&Planned>,
    ) -> Result<Input, Error> {
        match StripFile::open(slice, options, planned)? {
            Some(strips) => Ok(Input::Streamed(strips)),
            None => Slice::open_page(&slice.path, slice.page, options).map(Input::Opened),
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

    /// Asks the OS to read the pixels ahead: the strips of a streamed input, the
    /// map of a mapped slice (a no-op for slices already in memory).
    pub fn prefetch(&self) {
        match self {
            Input::Streamed(s) => s.prefetch(),
            Input::Opened(s) => s.prefetch(),
        }
    }

    /// `rows` rows from `y0`: read into `scratch` (streamed), or viewed in place.
    fn band<'a, T: Sample>(
        &'a self,
        y0: usize,
        rows: usize,
        scratch: &'a mut Scratch<T>,
    ) -> Result<Band<'a, T>, Error> {
        match self {
            Input::Streamed(s) => {
                let width = s.layout.width as usize;
                let dst = &mut scratch.samples[..rows * width];
                s.read_rows(y0, dst, &mut scratch.bytes)?;
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

    fn check_unchanged(&self) -> Result<(), Error> {
        match self {
            Input::Streamed(s) => s.check_unchanged(),
            Input::Opened(_) => Ok(()),
        }
    }
}

/// Rows `first ..` of `rows`, renumbered from 0.
struct Band<'a, T> {
    rows: Rows<'a, T>,
    first: usize,
}

impl<'a, T: Sample> Band<'a, T> {
    fn row(&self, i: usize) -> &'a [T] {
        self.rows.row(self.first + i)
    }
}

/// Band buffers lent to the workers of one run and returned after each
/// pair, so that a band costs no allocation: a fresh buffer per rayon task
/// cost an allocation and a page fault per 4 KiB each time (8 % of an 8-bit
/// run's profile). Dropped with the run: nothing outlives it.
pub(crate) struct BandBuffers<T>(Mutex<Vec<(Scratch<T>, Scratch<T>)>>);

impl<T> Default for BandBuffers<T> {
    fn default() -> Self {
        BandBuffers(Mutex::new(Vec::new()))
    }
}

impl<T: Sample> BandBuffers<T> {
    /// A pair of buffers of `samples` each: a returned one, or a new one.
    fn lend(&self, samples: usize) -> Lent<'_, T> {
        let mut spare = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let pair = match spare.iter().position(|(a, _)| a.samples.len() == samples) {
            Some(i) => spare.swap_remove(i),
            None => (Scratch::new(samples), Scratch::new(samples)),
        };
        Lent {
            pool: self,
            pair: Some(pair),
        }
    }
}

/// Buffers on loan from [`BandBuffers`], given back when dropped.
struct Lent<'p, T> {
    pool: &'p BandBuffers<T>,
    pair: Option<(Scratch<T>, Scratch<T>)>,
}

impl<T> Drop for Lent<'_, T> {
    fn drop(&mut self) {
        if let Some(pair) = self.pair.take() {
            let mut spare = self.pool.0.lock().unwrap_or_else(|p| p.into_inner());
            // At most one pair per worker is ever out at once.
            if spare.len() < rayon::current_num_threads().max(1) * 2 {
                spare.push(pair);
            }
        }
    }
}

/// One worker's band buffers for one slice.
struct Scratch<T> {
    samples: Vec<T>,
    /// Bytes as read, for files in the other byte order.
    bytes: Vec<u8>,
}

impl<T: Sample> Scratch<T> {
    fn new(samples: usize) -> Scratch<T> {
        Scratch {
            samples: vec![T::default(); samples],
            bytes: Vec::new(),
        }
    }
}

/// Output rows per band for inputs `width` samples of `T` wide: as many as fit
/// [`BAND_BYTES`] of input (four input rows per output row), at least one.
fn band_rows<T: Sample>(width: usize) -> usize {
    let input_per_output_row = 4 * width * std::mem::size_of::<T>();
    (BAND_BYTES / input_per_output_row.max(1)).max(1)
}

/// Writes the 2x2x2 mean of `a` and `b` (`None`: `a` with itself) into `out`,
/// `(width / 2) * (height / 2)` samples row-major, a band of rows per rayon
/// task, with `kernel`. `a` and `b` must have the same size and sample type `T`
/// ([`Error::Mismatch`] otherwise). A streamed input that turns out shorter than
/// its header said, or that changed while it was read, is an [`Error::Io`]
/// naming it; `out` is then partly written.
pub(crate) fn average_inputs<T: Sample>(
    kernel: Kernel,
    a: &Input,
    b: Option<&Input>,
    out: &mut [T],
    buffers: &BandBuffers<T>,
) -> Result<(), Error> {
    let b_or_a = b.unwrap_or(a);
    for input in [a, b_or_a] {
        if input.sample_type() != T::TYPE {
            return Err(Error::mismatch_at(
                input.path(),
                format!("holds {} samples, not {}", input.sample_type(), T::TYPE),
            ));
        }
    }
    if a.size() != b_or_a.size() {
        let ((aw, ah), (bw, bh)) = (a.size(), b_or_a.size());
        return Err(Error::mismatch(format!(
            "{} is {aw}x{ah}, {} is {bw}x{bh}: a pair must match",
            a.path().display(),
            b_or_a.path().display()
        )));
    }
    let (width, height) = (a.size().0 as usize, a.size().1 as usize);
    let (ow, oh) = (width / 2, height / 2);
    if out.len() != ow * oh {
        return Err(Error::mismatch(format!(
            "{}: output holds {} samples, the pair makes {}",
            a.path().display(),
            out.len(),
            ow * oh
        )));
    }
    if ow == 0 || oh == 0 {
        return Ok(());
    }
    average_in_bands(kernel, a, b, out, band_rows::<T>(width), buffers)?;
    a.check_unchanged()?;
    b_or_a.check_unchanged()
}

/// The work of [`average_inputs`], on checked inputs, `band` output rows per task.
fn average_in_bands<T: Sample>(
    kernel: Kernel,
    a: &Input,
    b: Option<&Input>,
    out: &mut [T],
    band: usize,
    buffers: &BandBuffers<T>,
) -> Result<(), Error> {
    let width = a.size().0 as usize;
    let ow = width / 2;
    out.par_chunks_mut(ow * band).enumerate().try_for_each_init(
        || buffers.lend(2 * band * width),
        |lent, (task, chunk)| {
            let (sa, sb) = lent.pair.as_mut().expect("lent until dropped");
            let rows = chunk.len() / ow;
            let y0 = 2 * task * band;
            let ra = a.band::<T>(y0, 2 * rows, sa)?;
            let rb = match b {
                Some(b) => b.band::<T>(y0, 2 * rows, sb)?,
                None => Band {
                    rows: ra.rows,
                    first: ra.first,
                },
            };
            for (r, orow) in chunk.chunks_exact_mut(ow).enumerate() {
                let (a0, a1) = (ra.row(2 * r), ra.row(2 * r + 1));
                average_rows(kernel, a0, a1, rb.row(2 * r), rb.row(2 * r + 1), orow);
            }
            Ok::<(), Error>(())
        },
    )
}

#[cfg(test)]
mod tests;
