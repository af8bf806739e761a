//! An opened slice: rows served straight from the mapped file when its layout
//! allows, from an owned buffer otherwise. One type for callers either way.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::decode;
use crate::depth;
use crate::formats::{self, Format, Image, ImagePixels};
use crate::region::{Page, Region};
use crate::sample::{Sample, SampleType, Samples, with_sample_type};
use crate::source::{Bytes, FileStamp, ReadMode, Source};
use crate::stack::SliceRef;
use crate::tiff::{
    ByteOrder, Compression, ImageLayout, IndexedPage, PageReader, Photometric, locate_in_memory,
    page_layout,
};
use crate::{Error, Limits};

/// How a slice's pixels reach the caller, in order of cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AccessPath {
    /// Rows are views into the memory-mapped file: no decode, no copy.
    Mapped,
    /// The file was read whole into memory ([`ReadMode::Buffered`], the policy
    /// `never`, or [`ReadMode::Auto`] for a file on a network filesystem, which the
    /// reason then says); rows are views into that buffer: no decode, one copy.
    /// A distinct path from [`AccessPath::Mapped`] because a read view is immune
    /// to the file changing, and not zero-copy.
    Read,
    /// Uncompressed but not viewable (other byte order, odd offset, tiles): assembled
    /// into an owned buffer by ctstack in one pass.
    Copied,
    /// Compressed or with a predictor: decoded by the `tiff` crate (or the PNG or
    /// JPEG decoder) into an owned buffer.
    Decoded,
    /// Color or palette pixels (or samples of the other depth, when asked)
    /// converted to gray into an owned buffer, after any decoding.
    Converted,
}

impl AccessPath {
    /// `mapped`, `read`, `copied`, `decoded` or `converted`.
    pub fn name(self) -> &'static str {
        match self {
            AccessPath::Mapped => "mapped",
            AccessPath::Read => "read",
            AccessPath::Copied => "copied",
            AccessPath::Decoded => "decoded",
            AccessPath::Converted => "converted",
        }
    }
}

/// The access path a slice took, and why: e.g. `copied: big-endian`, `decoded: LZW`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The path.
    pub path: AccessPath,
    /// Why this path: what in the file allowed or forbade a view.
    pub reason: String,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.name(), self.reason)
    }
}

/// What a slice's header says, read without touching its pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SliceHeader {
    /// The file's format.
    pub format: Format,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The sample type as served (after [`OpenOptions::convert_depth`]).
    pub sample_type: SampleType,
    /// Bits per sample as stored (fewer than the type's for packed depths).
    pub stored_bits: u32,
    /// How values map to brightness; samples are served as stored.
    pub photometric: Photometric,
    /// The file's compression (see [`Slice::compression`] for other formats than TIFF).
    pub compression: Compression,
    /// The file's byte order (see [`Slice::byte_order`] for other formats than TIFF).
    pub byte_order: ByteOrder,
}

impl SliceHeader {
    /// The header as served when slices are converted to `depth` ([`wanted_depth`]).
    pub(crate) fn served_as(self, depth: Option<SampleType>) -> SliceHeader {
        SliceHeader {
            sample_type: depth.unwrap_or(self.sample_type),
            ..self
        }
    }

    /// What a TIFF's parsed IFD 0 says (samples as stored: no depth conversion).
    pub(crate) fn of_tiff(layout: &ImageLayout) -> SliceHeader {
        SliceHeader {
            format: Format::Tiff,
            width: layout.width,
            height: layout.height,
            sample_type: layout.sample_type,
            stored_bits: layout.bits,
            photometric: layout.photometric,
            compression: layout.compression,
            byte_order: layout.order,
        }
    }
}

/// Options for [`Slice::open_with`].
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// How the file's bytes are brought in (default [`ReadMode::Auto`]).
    pub read_mode: ReadMode,
    /// Caps on what the file may make ctstack allocate.
    pub limits: Limits,
    /// Fault the whole mapping in at open (MAP_POPULATE on Linux; no effect elsewhere
    /// or in buffered mode).
    pub populate: bool,
    /// Serve every slice at this depth ([`SampleType::U8`] or [`SampleType::U16`]):
    /// a slice of the other depth is converted into an owned buffer, 8 to 16 bits
    /// by `v * 257` (0 stays 0, 255 becomes 65535), 16 to 8 bits by
    /// `(v + 128) / 257` (the nearest 8-bit level, 65535 becomes 255). `None`
    /// (default): each slice keeps its type.
    pub convert_depth: Option<SampleType>,
}

/// One CT slice: a page of a TIFF file (page 0 unless [`Slice::open_page`] says
/// otherwise), or a BMP, PNG or JPEG image, served as grayscale of a
/// [`SampleType`].
///
/// The format is told by the file's first bytes ([`Slice::format`]). TIFF and
/// 8-bit gray-palette BMP rows can be views of the file; PNG and JPEG are decoded,
/// and color is converted to gray (see [`AccessPath::Converted`]).
///
/// Pixels are handed out as rows ([`Slice::rows`]): a strip always holds whole
/// rows, so even files whose strips are scattered through the file are served
/// without a copy. When the file is uncompressed, in the host's byte order and
/// aligned, every row is a view into the memory-mapped file ([`AccessPath::Mapped`],
/// or into the file read whole, [`AccessPath::Read`], as [`ReadMode`] decides);
/// otherwise ctstack assembles or decodes the pixels into an owned buffer once,
/// at open. [`Slice::access`] tells which happened and why.
///
/// A mapped slice shares memory-mapping's hazard: see [`ReadMode`].
pub struct Slice {
    path: PathBuf,
    /// Which page of the file (0 unless opened with [`Slice::open_page`]).
    page: usize,
    format: Format,
    width: u32,
    height: u32,
    sample_type: SampleType,
    stored_bits: u32,
    photometric: Photometric,
    order: ByteOrder,
    compression: Compression,
    bigtiff: bool,
    access: Access,
    pixels: Pixels,
    /// A contiguous copy, made on first request, for slices whose rows are scattered
    /// or stored bottom-up. Boxed: rarely made, and it keeps `Slice` small to move.
    contiguous: OnceLock<Box<Samples>>,
}

enum Pixels {
    /// Rows are views into `source`; `starts` holds each strip's first row, in
    /// samples, and `row_step` the samples from one row of a strip to the next
    /// (negative for a bottom-up BMP, more than the width for padded rows).
    View {
        source: Source,
        starts: Vec<usize>,
        rows_per_strip: usize,
        row_step: isize,
    },
    /// Rows live in an owned, contiguous buffer.
    Owned(Samples),
}

/// The rows of a slice, typed. Cheap to copy; borrows the slice.
#[derive(Clone, Copy)]
pub struct Rows<'a, T> {
    /// The samples the rows live in: the whole file (for views) or the owned buffer.
    base: &'a [T],
    /// Where each strip's first row starts in `base`, in samples; one entry when
    /// the rows follow a single step.
    starts: &'a [usize],
    rows_per_strip: usize,
    /// Samples from the start of one row of a strip to the next: the width for
    /// packed rows, more for padded ones, negative for rows stored bottom-up.
    row_step: isize,
    width: usize,
    height: usize,
}

impl<'a, T: Sample> Rows<'a, T> {
    /// Rows over a contiguous row-major buffer of `width * height` samples (an owned
    /// level of a pyramid, a caller's array). `None` if the length does not match.
    pub fn from_contiguous(data: &'a [T], width: usize, height: usize) -> Option<Rows<'a, T>> {
        (width.checked_mul(height) == Some(data.len())).then_some(Rows {
            base: data,
            starts: &[0],
            rows_per_strip: height.max(1),
            row_step: width as isize,
            width,
            height,
        })
    }

    /// Row `y`, `width` samples. Panics if `y >= height`, like slice indexing.
    #[inline]
    pub fn row(&self, y: usize) -> &'a [T] {
        assert!(y < self.height, "row {y} of a {}-row slice", self.height);
        let within = (y % self.rows_per_strip) as isize * self.row_step;
        let start = self.starts[y / self.rows_per_strip].wrapping_add_signed(within);
        &self.base[start..start + self.width]
    }

    /// Samples per row.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Number of rows.
    pub fn height(&self) -> usize {
        self.height
    }

    /// All rows, top to bottom.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a [T]> + '_ {
        (0..self.height).map(|y| self.row(y))
    }

    /// The whole image as one row-major slice, if its rows follow each other.
    pub fn as_contiguous(&self) -> Option<&'a [T]> {
        (self.starts.len() == 1 && self.row_step == self.width as isize).then(|| {
            let start = self.starts[0];
            &self.base[start..start + self.width * self.height]
        })
    }
}

impl Slice {
    /// Opens `path` with default options ([`ReadMode::Auto`], default [`Limits`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Slice, Error> {
        Slice::open_with(path, &OpenOptions::default())
    }

    /// Opens `path` (its first page) with `options`.
    pub fn open_with(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Slice, Error> {
        Slice::open_page(path, 0, options)
    }

    /// Opens page `index` (0-based, in IFD chain order) of a multi-page TIFF: a
    /// stack saved as one file (ImageJ/Fiji, tifffile). Each page is served as a
    /// slice is: ImageJ writes its pages' pixels contiguously and uncompressed, so
    /// they are views into the one mapped file ([`AccessPath::Mapped`]).
    ///
    /// The chain is walked from the start (cycle-safe, at most
    /// [`Limits::max_pages`] pages); a page past the last is an [`Error::Usage`].
    /// See [`Slice::page_count`].
    pub fn open_page(
        path: impl AsRef<Path>,
        index: usize,
        options: &OpenOptions,
    ) -> Result<Slice, Error> {
        let path = path.as_ref();
        let source = Source::open(path, options.read_mode, options.populate)?;
        Slice::from_source(path, source, index, options, None)
    }

    /// [`Slice::open_page`] of a plan's slice, its page located by `indexed`
    /// (its entry in the plan's page index) while the file is unchanged since
    /// the plan, not by walking the chain again.
    pub(crate) fn open_indexed(
        slice: &SliceRef,
        indexed: Option<&IndexedPage>,
        options: &OpenOptions,
    ) -> Result<Slice, Error> {
        let path = slice.path.as_path();
        let Some(indexed) = indexed else {
            return Slice::open_page(path, slice.page, options);
        };
        let (source, stamp) = Source::open_stamped(path, options.read_mode, options.populate)?;
        Slice::from_source(path, source, slice.page, options, Some((stamp, indexed)))
    }

    /// The number of pages (IFDs) of the TIFF at `path`, without touching pixels:
    /// the chain is walked cycle-safe and bounded by [`Limits::max_pages`] (a
    /// longer one is [`Error::LimitsExceeded`], a loop [`Error::Format`]). Opened
    /// as [`Slice::read_header`] opens files.
    pub fn page_count(path: impl AsRef<Path>, options: &OpenOptions) -> Result<usize, Error> {
        let path = path.as_ref();
        let source = Source::open_header(path, options.read_mode)?;
        PageReader::in_memory(path, source.bytes(), &options.limits)?.page_count()
    }

    /// Reads and validates a slice's header and strip table without touching its
    /// pixels (for a memory-mapped file, only the header's pages are read): the
    /// same checks as [`Slice::open_with`] except decoding.
    ///
    /// Under [`ReadMode::Auto`] a file on a network filesystem is mapped for this
    /// (only its header's pages travel); [`ReadMode::Buffered`], which never maps,
    /// reads a TIFF's header from windows of the file at its IFD that grow only
    /// as far as the header needs (one 64 KiB read for most files, any page of a
    /// multi-page file without reading the pages before it); other formats it
    /// reads whole.
    pub fn read_header(
        path: impl AsRef<Path>,
        options: &OpenOptions,
    ) -> Result<SliceHeader, Error> {
        Slice::read_page_header(path, 0, options)
    }

    /// [`Slice::read_header`] for page `index` of a multi-page file.
    pub fn read_page_header(
        path: impl AsRef<Path>,
        index: usize,
        options: &OpenOptions,
    ) -> Result<SliceHeader, Error> {
        let path = path.as_ref();
        let depth = wanted_depth(options)?;
        // Never mapped: a TIFF's page is found by positional reads of windows.
        if options.read_mode == ReadMode::Buffered {
            let file = std::fs::File::open(path).map_err(|e| Error::io(path, "cannot open", e))?;
            if let Some((layout, _)) = page_layout(path, index, &file, &options.limits)? {
                return Ok(SliceHeader::of_tiff(&layout).served_as(depth));
            }
        }
        let source = Source::open_header(path, options.read_mode)?;
        let bytes = source.bytes();
        let header = match Format::sniff(bytes) {
            None => return Err(formats::unknown(bytes).at(path)),
            Some(format) if format != Format::Tiff => {
                if index > 0 {
                    return Err(Error::usage(format!(
                        "{}: page {index} asked for, a {} file holds one image",
                        path.display(),
                        format.name()
                    )));
                }
                let h =
                    formats::read_header(format, bytes, &options.limits).map_err(|p| p.at(path))?;
                let (compression, byte_order) = formats::nominal_encoding(format);
                SliceHeader {
                    format,
                    width: h.width,
                    height: h.height,
                    sample_type: h.sample_type,
                    stored_bits: h.sample_type.bits(),
                    photometric: Photometric::MinIsBlack,
                    compression,
                    byte_order,
                }
            }
            Some(_) => {
                let layout = PageReader::in_memory(path, bytes, &options.limits)?.page(index)?;
                SliceHeader::of_tiff(&layout)
            }
        };
        Ok(header.served_as(depth))
    }

    /// Parses a slice file (TIFF, BMP, PNG, JPEG) held in memory; `name` stands
    /// for the file in messages.
    ///
    /// The bytes are copied once into an aligned buffer (views then point into
    /// it, [`AccessPath::Read`]). `options.read_mode` and `options.populate` do not apply.
    pub fn from_bytes(
        name: impl AsRef<Path>,
        bytes: &[u8],
        options: &OpenOptions,
    ) -> Result<Slice, Error> {
        Slice::from_source(name.as_ref(), Source::copy_of(bytes), 0, options, None)
    }

    /// The slice of page `page` of `source`, the bytes of the file at `path`;
    /// `indexed`: the file's stamp as opened and the page's index entry.
    fn from_source(
        path: &Path,
        source: Source,
        page: usize,
        options: &OpenOptions,
        indexed: Option<(FileStamp, &IndexedPage)>,
    ) -> Result<Slice, Error> {
        let depth = wanted_depth(options)?;
        let slice = match Format::sniff(source.bytes()) {
            None => return Err(formats::unknown(source.bytes()).at(path)),
            Some(format) if format != Format::Tiff => {
                if page > 0 {
                    return Err(Error::usage(format!(
                        "{}: page {page} asked for, a {} file holds one image",
                        path.display(),
                        format.name()
                    )));
                }
                let image = formats::read(format, source.bytes(), &options.limits)
                    .map_err(|p| p.at(path))?;
                Slice::from_image(path, format, source, image)
            }
            Some(_) => {
                let layout = match indexed {
                    Some((stamp, known)) => locate_in_memory(
                        path,
                        page,
                        (source.bytes(), stamp),
                        Some(known),
                        &options.limits,
                    )?,
                    None => {
                        PageReader::in_memory(path, source.bytes(), &options.limits)?.page(page)?
                    }
                };
                let (access, pixels) = arrange(path, source, (page, &layout), &options.limits)?;
                Slice {
                    path: path.to_path_buf(),
                    page,
                    format: Format::Tiff,
                    width: layout.width,
                    height: layout.height,
                    sample_type: layout.sample_type,
                    stored_bits: layout.bits,
                    photometric: layout.photometric,
                    order: layout.order,
                    compression: layout.compression,
                    bigtiff: layout.bigtiff,
                    access,
                    pixels,
                    contiguous: OnceLock::new(),
                }
            }
        };
        #[cfg(test)]
        crate::source::probe::pixels_read(path, slice.image_bytes() as u64);
        match depth {
            Some(to) if to != slice.sample_type => slice.converted_to(to, &options.limits),
            _ => Ok(slice),
        }
    }

    /// A slice over a BMP, PNG or JPEG image read by [`formats::read`].
    fn from_image(path: &Path, format: Format, source: Source, image: Image) -> Slice {
        let (compression, order) = formats::nominal_encoding(format);
        let (access, pixels) = match image.pixels {
            ImagePixels::InFile {
                first_row,
                row_step,
                reason,
            } => (
                view_access(&source, reason),
                Pixels::View {
                    source,
                    starts: vec![first_row],
                    rows_per_strip: image.header.height as usize,
                    row_step,
                },
            ),
            ImagePixels::Owned {
                samples,
                converted,
                reason,
            } => {
                let path = if converted {
                    AccessPath::Converted
                } else {
                    AccessPath::Decoded
                };
                (Access { path, reason }, Pixels::Owned(samples))
            }
        };
        Slice {
            path: path.to_path_buf(),
            page: 0,
            format,
            width: image.header.width,
            height: image.header.height,
            sample_type: image.header.sample_type,
            stored_bits: image.header.sample_type.bits(),
            photometric: Photometric::MinIsBlack,
            order,
            compression,
            bigtiff: false,
            access,
            pixels,
            contiguous: OnceLock::new(),
        }
    }

    /// This slice at the other depth, in an owned buffer (see [`OpenOptions::convert_depth`]).
    fn converted_to(self, to: SampleType, limits: &Limits) -> Result<Slice, Error> {
        let pixels = self.width as u64 * self.height as u64;
        decode::check_decoded_size(pixels * to.bytes() as u64, limits)
            .map_err(|p| p.at(&self.path))?;
        let (samples, rule) = match (self.sample_type, to) {
            (SampleType::U8, SampleType::U16) => (
                Samples::from_vec(depth::widen(self.rows::<u8>()?)),
                "v * 257",
            ),
            (SampleType::U16, SampleType::U8) => (
                Samples::from_vec(depth::narrow(self.rows::<u16>()?)),
                "(v + 128) / 257",
            ),
            (from, to) => {
                return Err(Error::Unsupported {
                    path: self.path,
                    what: format!("converting {from} samples to {to}"),
                });
            }
        };
        let reason = format!(
            "{}-bit to {}-bit by {rule} (was {})",
            self.bits(),
            to.bits(),
            self.access
        );
        Ok(Slice {
            sample_type: to,
            access: Access {
                path: AccessPath::Converted,
                reason,
            },
            pixels: Pixels::Owned(samples),
            contiguous: OnceLock::new(),
            ..self
        })
    }

    /// The file this slice was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Which page of the file this slice is (0 for a one-page file).
    pub fn page(&self) -> usize {
        self.page
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The sample type as served.
    pub fn sample_type(&self) -> SampleType {
        self.sample_type
    }

    /// Bits per sample (of [`Slice::sample_type`]).
    pub fn bits(&self) -> u32 {
        self.sample_type.bits()
    }
    /// Bits per sample as stored in the file: [`Slice::bits`], or fewer for packed
    /// depths (a 12-bit file is served as `u16`, values unchanged, 0..=4095).
    pub fn stored_bits(&self) -> u32 {
        self.stored_bits
    }
    /// How values map to brightness. Samples are served as stored (a MinIsWhite
    /// file's 0 is white), as tifffile does; pyramids keep the photometric.
    pub fn photometric(&self) -> Photometric {
        self.photometric
    }

    /// The file's format, told by its first bytes.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The file's byte order. For other formats than TIFF, the format's own:
    /// little-endian for BMP, big-endian for PNG and JPEG.
    pub fn byte_order(&self) -> ByteOrder {
        self.order
    }

    /// The file's compression. For other formats than TIFF: `None` for BMP,
    /// `Deflate` for PNG, `Jpeg` for JPEG.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Whether the file is a BigTIFF.
    pub fn is_bigtiff(&self) -> bool {
        self.bigtiff
    }

    /// Which path the pixels took, and why.
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// Whether rows are served straight from the mapped file (no decode, no copy).
    pub fn is_zero_copy(&self) -> bool {
        self.access.path == AccessPath::Mapped
    }

    /// Bytes of the whole image, unpadded: width x height x bits / 8.
    pub fn image_bytes(&self) -> usize {
        self.width as usize * self.height as usize * self.sample_type.bytes()
    }

    /// The rows as `T` samples; `T` must match the depth ([`Slice::bits`]), else a
    /// [`Error::Mismatch`].
    pub fn rows<T: Sample>(&self) -> Result<Rows<'_, T>, Error> {
        if T::TYPE != self.sample_type {
            return Err(Error::mismatch_at(
                &self.path,
                format!(
                    "the slice holds {} samples, asked for {}",
                    self.sample_type,
                    T::TYPE
                ),
            ));
        }
        let (width, height) = (self.width as usize, self.height as usize);
        match &self.pixels {
            Pixels::View {
                source,
                starts,
                rows_per_strip,
                row_step,
            } => {
                let base = whole_words::<T>(source.bytes()).ok_or_else(|| {
                    // `arrange` made this view only after the same cast succeeded.
                    Error::mismatch_at(
                        &self.path,
                        "mapped bytes are not aligned for the sample type",
                    )
                })?;
                Ok(Rows {
                    base,
                    starts,
                    rows_per_strip: *rows_per_strip,
                    row_step: *row_step,
                    width,
                    height,
                })
            }
            Pixels::Owned(samples) => Ok(Rows {
                base: samples.get::<T>().unwrap_or(&[]),
                starts: &[0],
                rows_per_strip: height.max(1),
                row_step: width as isize,
                width,
                height,
            }),
        }
    }

    /// The whole image as one row-major slice of samples.
    ///
    /// Free when the rows are contiguous (one run in the file, or an owned buffer);
    /// for files with scattered strips, the first call copies the rows into a buffer
    /// kept for the slice's lifetime. Prefer [`Slice::rows`] in hot paths.
    pub fn contiguous<T: Sample>(&self) -> Result<&[T], Error> {
        let rows = self.rows::<T>()?;
        if let Some(all) = rows.as_contiguous() {
            return Ok(all);
        }
        let samples = self.contiguous.get_or_init(|| {
            let mut out = Vec::with_capacity(rows.width() * rows.height());
            for row in rows.iter() {
                out.extend_from_slice(row);
            }
            Box::new(Samples::from_vec(out))
        });
        Ok(samples.get::<T>().unwrap_or(&[]))
    }

    /// Copies the image row-major into `dst`, which must hold exactly width x height samples.
    pub fn copy_to<T: Sample>(&self, dst: &mut [T]) -> Result<(), Error> {
        let rows = self.rows::<T>()?;
        if dst.len() != rows.width() * rows.height() {
            return Err(Error::mismatch(format!(
                "{}: destination holds {} samples, the {}x{} slice has {}",
                self.path.display(),
                dst.len(),
                self.width,
                self.height,
                rows.width() * rows.height()
            )));
        }
        for (d, row) in dst.chunks_exact_mut(rows.width().max(1)).zip(rows.iter()) {
            d.copy_from_slice(row);
        }
        Ok(())
    }

    /// The address range of the file's bytes in memory, when the slice still holds
    /// them (mapped or read views). Lets tests and callers verify a zero-copy claim.
    pub fn source_address_range(&self) -> Option<std::ops::Range<usize>> {
        match &self.pixels {
            Pixels::View { source, .. } => {
                let b = source.bytes();
                Some(b.as_ptr() as usize..b.as_ptr() as usize + b.len())
            }
            Pixels::Owned(_) => None,
        }
    }

    /// Hints the OS to read the slice's pixel bytes ahead (madvise WILLNEED on a
    /// mapped slice); a no-op for owned pixels and off Unix.
    pub fn prefetch(&self) {
        if let Pixels::View { source, .. } = &self.pixels {
            source.prefetch(0..source.bytes().len());
        }
    }
}

impl fmt::Debug for Slice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slice")
            .field("path", &self.path)
            .field("page", &self.page)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("sample_type", &self.sample_type)
            .field("access", &self.access.to_string())
            .finish()
    }
}

/// The file's bytes as `T` samples, cut to a whole number of samples; `None` if
/// the buffer is not aligned for `T`.
fn whole_words<T: Sample>(bytes: &[u8]) -> Option<&[T]> {
    let size = std::mem::size_of::<T>();
    bytemuck::try_cast_slice(&bytes[..bytes.len() - bytes.len() % size]).ok()
}

/// Chooses the access path for page `index`, of validated layout `layout`, of
/// the file at `path` and prepares the pixels: a view of `source` when the
/// reading layer allows one ([`Page::row_view`]), else the page read whole
/// into an owned buffer (copied, or decoded).
fn arrange(
    path: &Path,
    source: Source,
    (index, layout): (usize, &ImageLayout),
    limits: &Limits,
) -> Result<(Access, Pixels), Error> {
    let page = |bytes| Page {
        path,
        bytes: Bytes::Memory(bytes),
        index,
        layout,
    };
    let refusal = match page(source.bytes()).row_view(source.bytes()) {
        Ok(view) => {
            return Ok((
                view_access(&source, view.reason),
                Pixels::View {
                    source,
                    starts: view.starts,
                    rows_per_strip: view.rows_per_run,
                    row_step: view.row_step,
                },
            ));
        }
        Err(refusal) => refusal,
    };
    let at = |p: crate::error::Problem| p.on_page(index).at(path);
    decode::check_decoded_size(layout.image_bytes(), limits).map_err(at)?;
    if !layout.is_raw() {
        decode::check_ratio((path, index), layout, Bytes::Memory(source.bytes()), limits)?;
    }
    let whole = Region::whole(layout.width, layout.height);
    let samples = with_sample_type!(layout.sample_type, T => {
        let mut out = vec![T::default(); whole.samples()];
        page(source.bytes()).read(&whole, &mut out, limits)?;
        Samples::from_vec(out)
    });
    let path = if layout.is_raw() {
        AccessPath::Copied
    } else {
        AccessPath::Decoded
    };
    Ok((
        Access {
            path,
            reason: refusal,
        },
        Pixels::Owned(samples),
    ))
}

/// The access of rows viewed in `source`: mapped, or read and why.
fn view_access(source: &Source, reason: String) -> Access {
    let path = if source.is_mapped() {
        AccessPath::Mapped
    } else {
        AccessPath::Read
    };
    let reason = match source.read_reason() {
        Some(why) => format!("{reason} ({why})"),
        None => reason,
    };
    Access { path, reason }
}

/// The sample type `options` ask every slice to be served at, checked.
pub(crate) fn wanted_depth(options: &OpenOptions) -> Result<Option<SampleType>, Error> {
    let Some(to) = options.convert_depth else {
        return Ok(None);
    };
    #[allow(unreachable_patterns)] // sample types beyond these two are not converted
    match to {
        SampleType::U8 | SampleType::U16 => Ok(Some(to)),
        other => Err(Error::usage(format!(
            "convert_depth is {other}: slices are converted to uint8 or uint16 only"
        ))),
    }
}
