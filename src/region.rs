//! The one reading layer: "rows y0..y1, columns x0..x1 of page p" as samples.
//!
//! Every way to a TIFF page's pixels goes through here: a [`Slice`](crate::Slice)
//! (whole pages, viewed or copied), the pyramid's streamed input (bands of
//! rows), and a crop (a box). A page is its [`ImageLayout`] (chunks: strips or
//! tiles) and the [`Bytes`] of its file: memory (a map, or the file read whole)
//! or positional reads of the open file, as [`ReadMode`](crate::ReadMode)
//! chose. A region is read chunk by chunk ([`ImageLayout::chunks_meeting`]),
//! so only the bytes of the chunks it meets are touched:
//!
//! - raw chunks: the stored bytes of the region's rows, one read per run of rows
//!   that lie next to each other in the file (the whole region, for rows of
//!   contiguous strips); bytes in the other order, packed depths and FillOrder 2
//!   are converted in the same pass;
//! - compressed chunks: only those that meet the region are decoded, a band of
//!   chunks per rayon task ([`ChunkDecoder`]);
//! - a view instead of a copy ([`Page::row_view`]) when the bytes are in memory,
//!   raw, in the host's order and aligned.

use std::ops::Range;
use std::path::Path;

use rayon::prelude::*;

use crate::bytes::ByteOrder;
use crate::decode::ChunkDecoder;
use crate::error::Problem;
use crate::sample::{self, Sample, SampleType};
use crate::source::{Bytes, ReadMode};
use crate::tiff::{Chunks, ImageLayout, IndexedPage};
use crate::{Error, Limits};

/// A box of a page, half-open: rows `rows`, columns `cols`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Region {
    pub rows: Range<u32>,
    pub cols: Range<u32>,
}

impl Region {
    /// All of a `width` x `height` image.
    pub fn whole(width: u32, height: u32) -> Region {
        Region {
            rows: 0..height,
            cols: 0..width,
        }
    }

    /// Samples per row.
    pub fn width(&self) -> usize {
        self.cols.len()
    }

    /// Rows.
    pub fn height(&self) -> usize {
        self.rows.len()
    }

    /// Samples in the region.
    pub fn samples(&self) -> usize {
        self.width() * self.height()
    }

    /// A usage error unless the region lies in a `width` x `height` image.
    pub fn check_within(&self, width: u32, height: u32) -> Result<(), Problem> {
        let ok = |r: &Range<u32>, n: u32| r.start <= r.end && r.end <= n;
        if ok(&self.rows, height) && ok(&self.cols, width) {
            Ok(())
        } else {
            Err(Problem::Usage(format!(
                "rows {}..{}, columns {}..{} asked for, the image is {width}x{height} \
                 (rows 0..{height}, columns 0..{width})",
                self.rows.start, self.rows.end, self.cols.start, self.cols.end
            )))
        }
    }
}

/// One page of a TIFF file, located and validated: what regions are read from.
#[derive(Clone, Copy)]
pub(crate) struct Page<'a> {
    /// The file, for messages.
    pub path: &'a Path,
    /// The file's bytes.
    pub bytes: Bytes<'a>,
    /// The page's place in the IFD chain.
    pub index: usize,
    pub layout: &'a ImageLayout,
}

/// How the rows of a page lie in memory when they can be viewed in place:
/// `starts[i]` is the first sample of run `i` of `rows_per_run` rows, each row
/// `row_step` samples after the one before (see [`Page::row_view`]).
pub(crate) struct RowView {
    pub starts: Vec<usize>,
    pub rows_per_run: usize,
    pub row_step: isize,
    /// What allowed the view: "one strip", "5 strips in one run", ...
    pub reason: String,
}

impl<'a> Page<'a> {
    /// Reads `region` into `dst` (row-major, `region.width()` samples per
    /// row), converting byte order, bit order and packed depths as it goes,
    /// decoding only the compressed chunks that meet the region.
    ///
    /// `T` must be the page's sample type and `dst` exactly the region's size
    /// ([`Error::Mismatch`] otherwise); a region outside the page is an
    /// [`Error::Usage`]. A file that shrank since its layout was read is an
    /// [`Error::Io`] (positional reads) naming it.
    pub fn read<T: Sample>(
        &self,
        region: &Region,
        dst: &mut [T],
        limits: &Limits,
    ) -> Result<(), Error> {
        self.read_with(region, dst, limits, &mut Vec::new())
    }

    /// [`Page::read`] with `scratch` for the stored bytes of raw chunks that
    /// must be converted (kept by callers that read many regions).
    pub fn read_with<T: Sample>(
        &self,
        region: &Region,
        dst: &mut [T],
        limits: &Limits,
        scratch: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let layout = self.layout;
        if T::TYPE != layout.sample_type {
            return Err(Error::mismatch_at(
                self.path,
                format!(
                    "holds {} samples, asked for {}",
                    layout.sample_type,
                    T::TYPE
                ),
            ));
        }
        region
            .check_within(layout.width, layout.height)
            .map_err(|p| p.at(self.path))?;
        if dst.len() != region.samples() {
            return Err(Error::mismatch_at(
                self.path,
                format!(
                    "destination holds {} samples, the {}x{} region has {}",
                    dst.len(),
                    region.width(),
                    region.height(),
                    region.samples()
                ),
            ));
        }
        if region.samples() == 0 {
            return Ok(());
        }
        if layout.is_raw() {
            self.read_raw(region, dst, scratch)
        } else {
            self.read_decoded(region, dst, limits)
        }
    }

    /// Whether the region's rows can be read straight into the destination:
    /// whole rows of strips, stored as served.
    fn reads_whole_rows<T: Sample>(&self, region: &Region) -> bool {
        let layout = self.layout;
        matches!(layout.chunks, Chunks::Strips { .. })
            && region.cols == (0..layout.width)
            && stored_as_served::<T>(layout)
    }

    /// [`Page::read`] of a raw page.
    fn read_raw<T: Sample>(
        &self,
        region: &Region,
        dst: &mut [T],
        scratch: &mut Vec<u8>,
    ) -> Result<(), Error> {
        if self.reads_whole_rows::<T>(region) {
            return self.read_row_runs(region.rows.clone(), bytemuck::cast_slice_mut(dst));
        }
        let layout = self.layout;
        let mut reversed = Vec::new();
        let width = region.width();
        let stride = layout.chunk_row_bytes();
        for band in layout.chunks_meeting(region.rows.clone(), region.cols.clone()) {
            for chunk in band {
                let (rows, cols) = layout.chunk_rect(chunk);
                let ys = rows.start.max(region.rows.start)..rows.end.min(region.rows.end);
                let xs = cols.start.max(region.cols.start)..cols.end.min(region.cols.end);
                // The stored bits of columns xs in a row of the chunk.
                let first_bit = u64::from(xs.start - cols.start) * u64::from(layout.bits);
                let end_bit = u64::from(xs.end - cols.start) * u64::from(layout.bits);
                let (from, to) = (first_bit / 8, end_bit.div_ceil(8));
                let skip = (first_bit % 8) as u32;
                let used = (to - from) as usize;
                // One read for the chunk's rows when most of their bytes are
                // used (or in memory, where nothing is read that is not used).
                let span = (u64::from(ys.len() as u32) - 1) * stride + to - from;
                let whole =
                    self.bytes.memory().is_some() || span <= 2 * used as u64 * ys.len() as u64;
                let row_start =
                    |y: u32| layout.offsets[chunk] + u64::from(y - rows.start) * stride + from;
                let dst_of = |y: u32| {
                    let at = (y - region.rows.start) as usize * width
                        + (xs.start - region.cols.start) as usize;
                    at..at + xs.len()
                };
                if whole {
                    let span = usize::try_from(span).map_err(|_| too_large(self.path))?;
                    self.bytes.with_range(
                        self.path,
                        (row_start(ys.start), span),
                        scratch,
                        |bytes| {
                            for y in ys.clone() {
                                let at = (u64::from(y - ys.start) * stride) as usize;
                                decode_row(
                                    &bytes[at..at + used],
                                    layout,
                                    skip,
                                    &mut reversed,
                                    &mut dst[dst_of(y)],
                                );
                            }
                        },
                    )?;
                } else {
                    for y in ys.clone() {
                        self.bytes.with_range(
                            self.path,
                            (row_start(y), used),
                            scratch,
                            |bytes| {
                                decode_row(bytes, layout, skip, &mut reversed, &mut dst[dst_of(y)]);
                            },
                        )?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads the stored bytes of whole rows `rows` of a strip-organised page
    /// into `dst`, one read per run of rows that lie next to each other in
    /// the file.
    fn read_row_runs(&self, rows: Range<u32>, dst: &mut [u8]) -> Result<(), Error> {
        let layout = self.layout;
        let row_bytes = layout.row_bytes();
        let rps = layout.band_rows() as usize;
        let (y0, y1) = (rows.start as usize, rows.end as usize);
        // (file offset, first byte in dst, length) of the run being gathered.
        let mut run: Option<(u64, usize, usize)> = None;
        let mut y = y0;
        while y < y1 {
            let in_strip = (rps - y % rps).min(y1 - y);
            // Offsets and strip sizes were checked against the file at parse time.
            let offset = layout.offsets[y / rps] + (y % rps) as u64 * row_bytes;
            let len = in_strip * row_bytes as usize;
            let at = (y - y0) * row_bytes as usize;
            run = match run {
                Some((o, d, l)) if o + l as u64 == offset => Some((o, d, l + len)),
                Some((o, d, l)) => {
                    self.bytes.read_at(self.path, o, &mut dst[d..d + l])?;
                    Some((offset, at, len))
                }
                None => Some((offset, at, len)),
            };
            y += in_strip;
        }
        if let Some((o, d, l)) = run {
            self.bytes.read_at(self.path, o, &mut dst[d..d + l])?;
        }
        Ok(())
    }

    /// [`Page::read`] of a compressed page: the chunks that meet the region
    /// decoded, a band of chunks per rayon task (bands write disjoint rows).
    fn read_decoded<T: Sample>(
        &self,
        region: &Region,
        dst: &mut [T],
        limits: &Limits,
    ) -> Result<(), Error> {
        let layout = self.layout;
        let width = region.width();
        // The destination rows of each band of chunks.
        let mut bands = Vec::new();
        let mut rest = dst;
        for chunks in layout.chunks_meeting(region.rows.clone(), region.cols.clone()) {
            let (rows, _) = layout.chunk_rect(chunks.start);
            let ys = rows.start.max(region.rows.start)..rows.end.min(region.rows.end);
            let (mine, after) = rest.split_at_mut(ys.len() * width);
            bands.push((chunks, ys, mine));
            rest = after;
        }
        let at = |p: Problem| p.on_page(self.index).at(self.path);
        let new_decoder = || ChunkDecoder::new(self.path, self.bytes, self.index, layout, limits);
        // A decoder per rayon worker, made when the worker takes its first band.
        bands.into_par_iter().try_for_each_init(
            || (None, Vec::<T>::new()),
            |(decoder, scratch), (chunks, ys, out)| {
                let decoder = match decoder {
                    Some(d) => d,
                    None => decoder.insert(new_decoder()?),
                };
                for chunk in chunks {
                    let (rows, cols) = layout.chunk_rect(chunk);
                    let xs = cols.start.max(region.cols.start)..cols.end.min(region.cols.end);
                    let chunk_width = cols.len();
                    // A strip wholly inside the region decodes in place.
                    if xs == cols && ys == rows && chunk_width == width {
                        decoder.decode(layout, chunk, out, limits).map_err(at)?;
                        continue;
                    }
                    scratch.clear();
                    scratch.resize(chunk_width * rows.len(), T::default());
                    decoder.decode(layout, chunk, scratch, limits).map_err(at)?;
                    for y in ys.clone() {
                        let src = (y - rows.start) as usize * chunk_width
                            + (xs.start - cols.start) as usize;
                        let dst = (y - ys.start) as usize * width
                            + (xs.start - region.cols.start) as usize;
                        out[dst..dst + xs.len()].copy_from_slice(&scratch[src..src + xs.len()]);
                    }
                }
                Ok(())
            },
        )
    }

    /// How the page's rows can be viewed in `memory` (the whole file) without a
    /// copy, or why not: they must be raw, unpacked, in strips, in the host's
    /// byte order, and every strip aligned for the sample type.
    pub fn row_view(&self, memory: &[u8]) -> Result<RowView, String> {
        let layout = self.layout;
        if !layout.is_raw() {
            return Err(layout.compression.with_predictor(layout.predictor));
        }
        if layout.is_packed() {
            return Err(format!(
                "{}-bit samples, unpacked to {}",
                layout.bits, layout.sample_type
            ));
        }
        if layout.bits_reversed {
            return Err("FillOrder 2, bits reversed in every byte".into());
        }
        let Chunks::Strips { rows_per_strip } = layout.chunks else {
            let (w, l) = (layout.chunk_columns(), layout.band_rows());
            return Err(format!("tiled ({w}x{l} tiles)"));
        };
        let size = layout.sample_bytes();
        if size > 1 {
            if layout.order != ByteOrder::host() {
                return Err(layout.order.name().to_string());
            }
            if let Some((i, off)) = layout
                .offsets
                .iter()
                .enumerate()
                .find(|(_, o)| **o % size != 0)
            {
                return Err(format!(
                    "strip {i} at offset {off}, not a multiple of {}",
                    layout.sample_type.bytes()
                ));
            }
            if memory.as_ptr().align_offset(size as usize) != 0 {
                return Err(format!(
                    "buffer not aligned for {} samples",
                    layout.sample_type
                ));
            }
        }
        let strip_bytes = u64::from(rows_per_strip) * layout.row_bytes();
        let first = layout.offsets[0];
        let in_one_run = layout.offsets.iter().enumerate().all(|(i, &o)| {
            Some(o)
                == (i as u64)
                    .checked_mul(strip_bytes)
                    .and_then(|d| d.checked_add(first))
        });
        // Offsets were checked to lie in the file, whose length is a usize.
        let to_samples = |o: u64| (o / size) as usize;
        let n = layout.offsets.len();
        let row_step = layout.width as isize;
        Ok(if in_one_run {
            RowView {
                starts: vec![to_samples(first)],
                rows_per_run: layout.height as usize,
                row_step,
                reason: if n == 1 {
                    "one strip".to_string()
                } else {
                    format!("{n} strips in one run")
                },
            }
        } else {
            RowView {
                starts: layout.offsets.iter().map(|&o| to_samples(o)).collect(),
                rows_per_run: rows_per_strip as usize,
                row_step,
                reason: format!("{n} scattered strips, viewed row by row"),
            }
        })
    }
}

/// Whether `layout`'s raw samples are stored as `T` is served: whole bytes, in
/// the host's order (or single bytes), bits in their usual order.
fn stored_as_served<T: Sample>(layout: &ImageLayout) -> bool {
    !layout.is_packed()
        && !layout.bits_reversed
        && (T::TYPE.bytes() == 1 || layout.order == ByteOrder::host())
}

fn too_large(path: &Path) -> Error {
    Problem::Limits("a region larger than this platform's address space".into()).at(path)
}

/// Decodes the stored bytes of one row's columns into `dst`: bits reversed
/// (FillOrder 2) into `reversed` first, then unpacked from `bits`-bit samples
/// after skipping `skip` bits, or converted from the file's byte order.
fn decode_row<T: Sample>(
    src: &[u8],
    layout: &ImageLayout,
    skip: u32,
    reversed: &mut Vec<u8>,
    dst: &mut [T],
) {
    let src = if layout.bits_reversed {
        reversed.clear();
        reversed.extend(src.iter().map(|b| b.reverse_bits()));
        &reversed[..]
    } else {
        src
    };
    if layout.is_packed() {
        unpack(src, layout.bits, skip, dst);
    } else {
        sample::decode_into(src, layout.order, dst);
    }
}

/// Unpacks `dst.len()` samples of `bits` bits (1 to 15), stored as one bit stream
/// most significant bit first (TIFF's packing, whatever the byte order) from
/// bit `skip` of `src` on, into unsigned integers, values unchanged.
fn unpack<T: Sample>(src: &[u8], bits: u32, skip: u32, dst: &mut [T]) {
    match T::TYPE {
        SampleType::U8 => unpack_into(
            src,
            (bits, skip),
            bytemuck::cast_slice_mut::<T, u8>(dst),
            |v| v as u8,
        ),
        SampleType::U16 => unpack_into(
            src,
            (bits, skip),
            bytemuck::cast_slice_mut::<T, u16>(dst),
            |v| v,
        ),
        // `check_supported` gives packed depths only the unsigned types.
        other => unreachable!("{other} samples are never packed"),
    }
}

fn unpack_into<U>(src: &[u8], (bits, skip): (u32, u32), dst: &mut [U], narrow: impl Fn(u16) -> U) {
    debug_assert!((1..16).contains(&bits) && skip < 8);
    let mask = (1u32 << bits) - 1;
    let mut bytes = src.iter();
    // The first byte's bits before `skip` belong to columns left of the region.
    let (mut acc, mut have) = match skip {
        0 => (0u32, 0u32),
        s => (
            u32::from(bytes.next().copied().unwrap_or(0)) & (0xFF >> s),
            8 - s,
        ),
    };
    for d in dst {
        while have < bits {
            // `src` is sized for the row; were it short, the missing bits read as 0.
            acc = (acc << 8) | u32::from(bytes.next().copied().unwrap_or(0));
            have += 8;
        }
        have -= bits;
        *d = narrow(((acc >> have) & mask) as u16);
        acc &= (1u32 << have) - 1;
    }
}

/// How a page's pixels are reached: what [`reach`] decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// Through this layer ([`Page::read`]), by positional reads of the open file.
    Positional,
    /// From a map of the file: through this layer for a region, as a
    /// [`Slice`](crate::Slice) of views into the map for a whole page.
    Mapped,
    /// As a [`Slice`](crate::Slice), opened as [`ReadMode`] says: a page this
    /// layer does not serve (another format, a depth conversion), or a
    /// compressed page read whole (decoded once).
    Slice,
}

/// How a caller reads a page: what [`reach`] needs besides the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reading {
    /// One region, once (a crop's box).
    Region,
    /// The whole page, a band of rows at a time (the pyramid's inputs).
    Bands,
}

/// The one decision of how a page's pixels are reached, for every reader that
/// opens a plan's page: `layout` is the page's (`None`: not a TIFF), `options`
/// the caller's. The meaning of each [`ReadMode`] is documented once, in
/// docs/memory-maps.md:
///
/// - a page this layer does not serve (not a TIFF, or served at another depth),
///   and a compressed page read in bands (decoded once, whole), is a [`Slice`](crate::Slice);
/// - [`ReadMode::Mmap`] maps the file;
/// - [`ReadMode::Buffered`] and [`ReadMode::Auto`] read it by positional reads:
///   `Auto` maps only a page handed out whole as a `Slice` (for its zero-copy
///   views), never one read in parts, where positional reads were measured as
///   fast and keep the process immune to a file truncated under it
///   ([`AUTO_READS_PARTS`]).
pub(crate) fn reach(
    options: &crate::OpenOptions,
    layout: Option<&ImageLayout>,
    reading: Reading,
) -> Reach {
    reach_kind(options, layout.map(PageKind::of), reading)
}

/// What [`reach`] needs of a page's layout, which the page index keeps for
/// every page it indexed (even where it does not keep the layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageKind {
    sample_type: crate::SampleType,
    raw: bool,
}

impl PageKind {
    pub fn of(layout: &ImageLayout) -> PageKind {
        PageKind {
            sample_type: layout.sample_type,
            raw: layout.is_raw(),
        }
    }
}

/// [`reach`] for a page known by its [`PageKind`] (`None`: not a TIFF).
pub(crate) fn reach_kind(
    options: &crate::OpenOptions,
    page: Option<PageKind>,
    reading: Reading,
) -> Reach {
    let Some(page) = page else {
        return Reach::Slice;
    };
    let converted = options
        .convert_depth
        .is_some_and(|to| to != page.sample_type);
    if converted || (reading == Reading::Bands && !page.raw) {
        return Reach::Slice;
    }
    match options.read_mode {
        ReadMode::Mmap => Reach::Mapped,
        ReadMode::Buffered => Reach::Positional,
        ReadMode::Auto if AUTO_READS_PARTS => Reach::Positional,
        ReadMode::Auto => Reach::Mapped,
    }
}

/// Whether the default policy, [`ReadMode::Auto`], reads the pages it reads
/// in parts (a pyramid's raw level-0 inputs in bands, a crop's box) by
/// positional reads (as `never` does) instead of mapping them (as `always`
/// does). Both paths give identical outputs and are tested; `--mmap
/// always|never` picks one explicitly.
///
/// Measured with `python3 benches/compare.py --cold --runs 5` (benches/results.md)
/// (64 x 2752x2752 u16, whole processes, medians of 5, quiet machine, load
/// average 1.7), mapped (`always`) / streamed (`auto`, `never`): warm 0.143 /
/// 0.141, 0.146 s; cold 0.826 / 0.768, 0.833 s. An earlier quiet run (before
/// the header walk and band-buffer changes) gave warm 0.154 / 0.162 and cold
/// 0.960 / 0.808; runs on a loaded machine (load 5.7): warm 0.738 / 0.714,
/// cold 1.878 / 1.659, 8-bit cold 0.949 / 0.739. Maps never won by more than
/// the noise; streamed reads win most rows, are immune to truncation and keep
/// peak RSS at 19 MB against 49 (resident map pages count), so `auto` streams.
///
/// Other systems: on Windows and macOS a map also costs a fault per page (16 KiB
/// pages on Apple silicon make that cheaper) and positional reads (`ReadFile`
/// with an offset, `pread`) copy from the system cache as here; on Windows a map
/// also keeps other programs from truncating the file. Neither was measured.
const AUTO_READS_PARTS: bool = true;

/// Reads `region` of slice `slice` (a page of a file) into `dst`, row-major:
/// the entry point of callers that read parts of slices (a crop). `indexed`:
/// the page's entry in a plan's page index, used while the file is unchanged
/// since the plan (else the page is found by walking the file's chain).
///
/// A TIFF page goes through the reading layer, so only the bytes of the
/// chunks the region meets are touched, by positional reads or in a map as
/// [`reach`] decides (in a map, only the pages the region's rows lie in are
/// faulted in). Other formats (BMP, PNG, JPEG), and pages served at another
/// depth ([`OpenOptions::convert_depth`](crate::OpenOptions)), are opened as a
/// [`Slice`](crate::Slice) and the region copied out of it.
///
/// Errors as [`Page::read`]; the file's own errors name it.
pub(crate) fn read_slice_region<T: Sample>(
    slice: &crate::stack::SliceRef,
    indexed: Option<&IndexedPage>,
    options: &crate::OpenOptions,
    region: &Region,
    dst: &mut [T],
) -> Result<(), Error> {
    let path = slice.path.as_path();
    let limits = &options.limits;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, "cannot open", e))?;
    let found = crate::tiff::locate(path, slice.page, &file, indexed, limits)?;
    let layout = found.as_ref().map(|(layout, _)| layout);
    let reached = reach(options, layout, Reading::Region);
    match (reached, &found) {
        (Reach::Positional | Reach::Mapped, Some((layout, stamp))) => {
            let mut read = |bytes| {
                let page = Page {
                    path,
                    bytes,
                    index: slice.page,
                    layout,
                };
                page.read(region, dst, limits)
            };
            if reached == Reach::Mapped {
                let source = crate::source::Source::open(path, options.read_mode, false)?;
                if source.bytes().len() as u64 != stamp.len {
                    return Err(crate::source::changed_while_read(path));
                }
                read(Bytes::Memory(source.bytes()))
            } else {
                read(Bytes::File {
                    file: &file,
                    len: stamp.len,
                })?;
                // A file rewritten meanwhile may have given a mix of two versions.
                stamp.check_unchanged(path, &file)
            }
        }
        _ => {
            let opened = crate::Slice::open_indexed(slice, indexed, options)?;
            region
                .check_within(opened.width(), opened.height())
                .map_err(|p| p.at(path))?;
            if dst.len() != region.samples() {
                return Err(Error::mismatch_at(
                    path,
                    format!(
                        "destination holds {} samples, the region has {}",
                        dst.len(),
                        region.samples()
                    ),
                ));
            }
            let rows = opened.rows::<T>()?;
            let (x0, x1) = (region.cols.start as usize, region.cols.end as usize);
            let width = region.width().max(1);
            for (y, out) in region.rows.clone().zip(dst.chunks_exact_mut(width)) {
                out.copy_from_slice(&rows.row(y as usize)[x0..x1]);
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiff::Compression;
    use crate::{OpenOptions, SampleType};

    /// The decision, whole: every policy, every kind of page, both readings.
    #[test]
    fn one_decision_reaches_every_page() {
        // A raw 16-bit page of the committed phantom.
        let path = std::path::Path::new("fixtures/stack/slice_0000.tif");
        let file = std::fs::File::open(path).unwrap();
        let (raw, _) = crate::tiff::page_layout(path, 0, &file, &Limits::default())
            .unwrap()
            .unwrap();
        assert!(raw.is_raw() && raw.sample_type == SampleType::U16);
        let compressed = ImageLayout {
            compression: Compression::Deflate,
            ..raw.clone()
        };
        let options = |read_mode, convert_depth| OpenOptions {
            read_mode,
            convert_depth,
            ..OpenOptions::default()
        };
        use Reach::{Mapped, Positional, Slice};
        use Reading::{Bands, Region};
        for (mode, region, bands) in [
            (ReadMode::Auto, Positional, Positional),
            (ReadMode::Buffered, Positional, Positional),
            (ReadMode::Mmap, Mapped, Mapped),
        ] {
            let served = options(mode, None);
            assert_eq!(reach(&served, Some(&raw), Region), region, "{mode:?}");
            assert_eq!(reach(&served, Some(&raw), Bands), bands, "{mode:?}");
            // A compressed page: its chunks in a region, decoded once whole in bands.
            assert_eq!(reach(&served, Some(&compressed), Region), region);
            assert_eq!(reach(&served, Some(&compressed), Bands), Slice);
            // Not a TIFF, or served at another depth: a Slice, whatever the policy.
            for reading in [Region, Bands] {
                assert_eq!(reach(&served, None, reading), Slice);
                let converted = options(mode, Some(SampleType::U8));
                assert_eq!(reach(&converted, Some(&raw), reading), Slice);
                let same = options(mode, Some(SampleType::U16));
                assert_ne!(reach(&same, Some(&raw), reading), Slice);
            }
        }
    }
}
