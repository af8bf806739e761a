//! What a page's IFD says about the image: size, depth, encoding and where its pixel
//! bytes lie, validated against the file.

use std::ops::Range;

use super::bytes::ByteOrder;
use super::compression::Compression;
use super::ifd::{Directory, FileHeader};
use super::tags::Tag;
use crate::error::{Problem, format_problem};
use crate::{Limits, SampleType};

/// How sample values map to brightness (the PhotometricInterpretation tag).
///
/// ctstack serves samples as stored, whichever it is (as tifffile does), and
/// writes the same photometric into pyramid levels so viewers show them alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Photometric {
    /// 1 (or the tag absent): 0 is black.
    MinIsBlack,
    /// 0: 0 is white (inverted grayscale).
    MinIsWhite,
}

impl Photometric {
    /// The tag's value: 1 or 0.
    pub const fn tiff_value(self) -> u16 {
        match self {
            Photometric::MinIsBlack => 1,
            Photometric::MinIsWhite => 0,
        }
    }

    /// `min-is-black` or `min-is-white`.
    pub const fn name(self) -> &'static str {
        match self {
            Photometric::MinIsBlack => "min-is-black",
            Photometric::MinIsWhite => "min-is-white",
        }
    }
}

/// How the pixel bytes are cut into chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunks {
    /// Strips of whole rows, `rows_per_strip` each (the last may hold fewer).
    Strips { rows_per_strip: u32 },
    /// Tiles of `width` x `length` samples, padded at the right and bottom edges.
    Tiles { width: u32, length: u32 },
}

/// One page (IFD) of a grayscale TIFF, with every chunk checked to lie in the file.
#[derive(Debug, Clone)]
pub(crate) struct ImageLayout {
    pub width: u32,
    pub height: u32,
    /// The type samples are served as.
    pub sample_type: SampleType,
    /// Bits per sample as stored: the type's, or fewer (packed, unpacked on copy).
    pub bits: u32,
    pub photometric: Photometric,
    pub order: ByteOrder,
    pub bigtiff: bool,
    pub compression: Compression,
    pub predictor: u16,
    /// FillOrder 2: the bits of every byte are stored least significant first.
    pub bits_reversed: bool,
    pub chunks: Chunks,
    /// One per chunk the image needs (extra entries in the file are dropped).
    pub offsets: Vec<u64>,
    /// One per chunk; for uncompressed files each covers at least the chunk's pixels.
    pub byte_counts: Vec<u64>,
    /// The largest ASCII entry's count (see [`Directory::largest_ascii_count`]).
    pub largest_ascii: u64,
    /// The largest count of an entry whose values lie in the file (see
    /// [`Directory::largest_count_in_file`]).
    pub largest_count: u64,
    /// `images=N` of an ImageJ description (ImageJ=...): the stack's image count.
    pub imagej_images: Option<u64>,
    /// Where the page's IFD is in the file (page 0's, for the pages of an
    /// ImageJ stack that lists only its first image).
    pub ifd_offset: u64,
}

impl ImageLayout {
    /// Page `index`, whose IFD is at `offset`, from `window`: the bytes of a
    /// file of `file_len` bytes from offset `base` on. Returns the layout and
    /// the offset of the next IFD (0: the last page).
    ///
    /// A format problem may only mean that the IFD, its values or its next-IFD
    /// field lie outside the window: the caller retries with a larger one, and
    /// a window of the whole file gives the final answer.
    ///
    /// With `skip_previews`, a page after the first that is marked as a reduced
    /// image of another (NewSubfileType bit 0, or SubfileType 2: the thumbnail
    /// some writers add after the image) is not parsed further: `None`.
    pub fn parse_window(
        window: &[u8],
        base: u64,
        header: FileHeader,
        (offset, index): (u64, usize),
        file_len: u64,
        (limits, skip_previews): (&Limits, bool),
    ) -> Result<(Option<ImageLayout>, u64), Problem> {
        let dir = Directory::in_window(window, base, header, offset, index, limits)?;
        let next = match dir.next_ifd()? {
            (next, true) => next,
            (_, false) if base + window.len() as u64 >= file_len => 0,
            (_, false) => {
                return Err(format_problem!(
                    "IFD {index}'s next-IFD offset lies past the bytes read"
                ));
            }
        };
        if skip_previews && index > 0 && is_preview(&dir)? {
            return Ok((None, next));
        }
        Ok((
            Some(ImageLayout::from_directory(&dir, offset, file_len, limits)?),
            next,
        ))
    }

    /// The layout `dir` describes, in a file of `file_len` bytes.
    fn from_directory(
        dir: &Directory<'_>,
        ifd_offset: u64,
        file_len: u64,
        limits: &Limits,
    ) -> Result<ImageLayout, Problem> {
        let width = dimension(dir, Tag::ImageWidth)?;
        let height = dimension(dir, Tag::ImageLength)?;
        let PixelFormat {
            sample_type,
            bits,
            photometric,
        } = check_supported(dir)?;
        let compression = Compression::from_tag(dir.value(Tag::Compression)?.unwrap_or(1));
        if !compression.is_readable() {
            return Err(Problem::Unsupported(format!(
                "{} compression",
                compression.name()
            )));
        }
        let predictor = dir.value(Tag::Predictor)?.unwrap_or(1);
        let predictor = u16::try_from(predictor)
            .map_err(|_| format_problem!("Predictor {predictor} is not a valid value"))?;

        check_one_plane(dir)?;
        if bits % 8 != 0 && (compression != Compression::None || predictor != 1) {
            return Err(Problem::Unsupported(format!(
                "{bits}-bit samples with {} (packed depths are read uncompressed only)",
                compression.with_predictor(predictor)
            )));
        }
        let bits_reversed = match dir.value(Tag::FillOrder)?.unwrap_or(1) {
            1 => false,
            2 => true,
            f => return Err(format_problem!("FillOrder is {f}, not 1 or 2")),
        };
        if bits_reversed && (compression != Compression::None || predictor != 1) {
            // The bit order applies to the encoded bytes, which the decoders read
            // most significant bit first whatever the tag says.
            return Err(Problem::Unsupported(format!(
                "FillOrder 2 (bits stored least significant first) with {}",
                compression.with_predictor(predictor)
            )));
        }

        let planar = dir.value(Tag::PlanarConfiguration)?.unwrap_or(1);
        if !(1..=2).contains(&planar) {
            return Err(format_problem!(
                "PlanarConfiguration is {planar}, not 1 or 2"
            ));
        }
        let tiled = dir.value(Tag::TileWidth)?.is_some() || dir.value(Tag::TileOffsets)?.is_some();
        let (chunks, needed, offsets_tag, counts_tag) = if tiled {
            let tw = dimension(dir, Tag::TileWidth)?;
            let tl = dimension(dir, Tag::TileLength)?;
            let needed = u64::from(width.div_ceil(tw)) * u64::from(height.div_ceil(tl));
            let chunks = Chunks::Tiles {
                width: tw,
                length: tl,
            };
            (chunks, needed, Tag::TileOffsets, Tag::TileByteCounts)
        } else {
            // Absent RowsPerStrip means one strip for the whole image.
            let rps = dir.value(Tag::RowsPerStrip)?.unwrap_or(u64::from(u32::MAX));
            if rps == 0 {
                return Err(format_problem!("RowsPerStrip is 0"));
            }
            let rps = u32::try_from(rps.min(u64::from(height))).unwrap_or(height);
            let needed = u64::from(height.div_ceil(rps));
            let chunks = Chunks::Strips {
                rows_per_strip: rps,
            };
            (chunks, needed, Tag::StripOffsets, Tag::StripByteCounts)
        };
        let mut offsets = dir
            .values(offsets_tag)?
            .ok_or_else(|| format_problem!("required tag {} is missing", offsets_tag.name()))?;
        let mut byte_counts = dir
            .values(counts_tag)?
            .ok_or_else(|| format_problem!("required tag {} is missing", counts_tag.name()))?;
        let kind = if tiled { "tiles" } else { "strips" };
        for (tag, list) in [(offsets_tag, &mut offsets), (counts_tag, &mut byte_counts)] {
            if (list.len() as u64) < needed {
                return Err(format_problem!(
                    "{} lists {} {kind}, the {width}x{height} image needs {needed}",
                    tag.name(),
                    list.len()
                ));
            }
            list.truncate(needed as usize);
        }

        let layout = ImageLayout {
            width,
            height,
            sample_type,
            bits,
            photometric,
            order: dir.order(),
            bigtiff: dir.bigtiff(),
            compression,
            predictor,
            bits_reversed,
            chunks,
            offsets,
            byte_counts,
            largest_ascii: dir.largest_ascii_count(),
            largest_count: dir.largest_count_in_file(file_len),
            imagej_images: imagej_images(dir)?,
            ifd_offset,
        };
        layout.check_chunks_in_file(file_len)?;
        // Every byte of a raw image lies in the file, and in one chunk only, so a
        // raw image larger than the file must have overlapping chunks (every strip
        // at the same offset, say): a 400 KB file could then stand for a 2 GiB image
        // that is copied or averaged in full. No writer lays a raw image out that way.
        if layout.is_raw() && layout.stored_image_bytes() > file_len {
            return Err(format_problem!(
                "the uncompressed {width}x{height} image needs {} bytes, more than the \
                 whole file ({file_len} bytes): its {kind} overlap",
                layout.stored_image_bytes(),
            ));
        }
        let pixels = u64::from(width) * u64::from(height);
        if pixels > limits.max_pixels {
            return Err(Problem::Limits(format!(
                "{width}x{height} is {pixels} pixels, more than the limit of {}",
                limits.max_pixels
            )));
        }
        Ok(layout)
    }

    /// The page count of an ImageJ stack that lists only its first image in the
    /// chain (ImageJ does so past 4 GiB; tifffile with `truncate=True`): the
    /// description's `images=N`, its pages' pixels following page 0's in the file.
    /// `None` if this is not such a stack. Refused when the pages cannot be
    /// located that way (compressed, tiled, scattered strips: Unsupported) or
    /// do not fit in the file (Format), rather than read as one page.
    pub fn imagej_pages(&self, file_len: u64, limits: &Limits) -> Result<Option<u64>, Problem> {
        let Some(n) = self.imagej_images.filter(|&n| n > 1) else {
            return Ok(None);
        };
        let contiguous = matches!(self.chunks, Chunks::Strips { .. })
            && self.is_raw()
            && self.offsets.iter().enumerate().all(|(i, &o)| {
                Some(o)
                    == (i as u64)
                        .checked_mul(self.raw_chunk_bytes(0))
                        .and_then(|d| d.checked_add(self.offsets[0]))
            });
        if !contiguous {
            return Err(Problem::Unsupported(format!(
                "an ImageJ stack of {n} images in one IFD whose pixels are not one \
                 uncompressed run ({})",
                self.compression.with_predictor(self.predictor)
            )));
        }
        if n > limits.max_pages {
            return Err(Problem::Limits(format!(
                "the ImageJ stack holds {n} images, more than the limit of {} pages",
                limits.max_pages
            )));
        }
        let end = n
            .checked_mul(self.stored_image_bytes())
            .and_then(|b| b.checked_add(self.offsets[0]));
        if end.is_none_or(|e| e > file_len) {
            return Err(format_problem!(
                "the ImageJ description says images={n}: {} bytes of pixels from offset {}, \
                 the file holds {}",
                n.saturating_mul(self.stored_image_bytes()),
                self.offsets[0],
                file_len
            ));
        }
        Ok(Some(n))
    }

    /// Page `index` of a stack [`ImageLayout::imagej_pages`] accepted: page 0
    /// moved on by `index` images.
    pub fn imagej_page(&self, index: u64) -> ImageLayout {
        let shift = index * self.stored_image_bytes();
        ImageLayout {
            offsets: self.offsets.iter().map(|&o| o + shift).collect(),
            ..self.clone()
        }
    }

    /// Bytes per sample.
    pub fn sample_bytes(&self) -> u64 {
        self.sample_type.bytes() as u64
    }

    /// Bytes `n` consecutive samples of a row take in the file (rows of packed
    /// samples are padded to a whole byte).
    pub fn stored_bytes(&self, n: u64) -> u64 {
        (n * u64::from(self.bits)).div_ceil(8)
    }

    /// Whether samples are stored with fewer bits than their type has.
    pub fn is_packed(&self) -> bool {
        self.bits != self.sample_type.bits()
    }

    /// Bytes of one image row as stored.
    pub fn row_bytes(&self) -> u64 {
        self.stored_bytes(u64::from(self.width))
    }

    /// Bytes of the whole image as served (unpacked), unpadded.
    pub fn image_bytes(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height) * self.sample_bytes()
    }

    /// Bytes of the whole image as stored, uncompressed.
    pub fn stored_image_bytes(&self) -> u64 {
        self.row_bytes() * u64::from(self.height)
    }

    /// Whether the pixels are stored raw (no compression, no predictor).
    pub fn is_raw(&self) -> bool {
        self.compression == Compression::None && self.predictor == 1
    }

    /// Bytes an uncompressed chunk must hold.
    pub fn raw_chunk_bytes(&self, index: usize) -> u64 {
        match self.chunks {
            Chunks::Strips { rows_per_strip } => {
                let first = index as u64 * u64::from(rows_per_strip);
                let rows = u64::from(rows_per_strip).min(u64::from(self.height) - first);
                rows * self.row_bytes()
            }
            Chunks::Tiles { width, length } => {
                self.stored_bytes(u64::from(width)) * u64::from(length)
            }
        }
    }

    /// Image rows per band of chunks: a strip's rows, or a tile's length.
    pub fn band_rows(&self) -> u32 {
        match self.chunks {
            Chunks::Strips { rows_per_strip } => rows_per_strip,
            Chunks::Tiles { length, .. } => length,
        }
    }

    /// Image columns per chunk: the width for strips, a tile's width.
    pub fn chunk_columns(&self) -> u32 {
        match self.chunks {
            Chunks::Strips { .. } => self.width,
            Chunks::Tiles { width, .. } => width,
        }
    }

    /// Chunks per band: 1 for strips, tiles across for tiles.
    pub fn chunks_across(&self) -> u32 {
        self.width.div_ceil(self.chunk_columns())
    }

    /// Bytes from one row of a chunk to the next as stored: an image row for
    /// strips, a padded tile row for tiles.
    pub fn chunk_row_bytes(&self) -> u64 {
        self.stored_bytes(u64::from(self.chunk_columns()))
    }

    /// The image rows and columns chunk `index` holds data for: its place in
    /// the image, without the padding a tile at the right or bottom edge has.
    pub fn chunk_rect(&self, index: usize) -> (Range<u32>, Range<u32>) {
        let across = self.chunks_across() as usize;
        let (band, col) = ((index / across) as u32, (index % across) as u32);
        let (bh, cw) = (self.band_rows(), self.chunk_columns());
        let y0 = band * bh;
        let x0 = col * cw;
        (
            y0..(y0 + bh).min(self.height),
            x0..(x0 + cw).min(self.width),
        )
    }

    /// The chunks that hold any of rows `rows` and columns `cols`, band by
    /// band: for each band of chunks (a strip, a row of tiles) that meets the
    /// rows, the indices of its chunks that meet the columns. Empty for an
    /// empty region.
    pub fn chunks_meeting(
        &self,
        rows: Range<u32>,
        cols: Range<u32>,
    ) -> impl Iterator<Item = Range<usize>> + '_ {
        let (bh, cw) = (self.band_rows(), self.chunk_columns());
        let across = self.chunks_across() as usize;
        let empty = rows.is_empty() || cols.is_empty();
        let bands = if empty {
            0..0
        } else {
            rows.start / bh..rows.end.div_ceil(bh)
        };
        let (c0, c1) = (
            (cols.start / cw) as usize,
            (cols.end.div_ceil(cw) as usize).max(1),
        );
        bands.map(move |band| {
            let first = band as usize * across;
            first + c0..first + c1
        })
    }

    fn chunk_name(&self) -> &'static str {
        match self.chunks {
            Chunks::Strips { .. } => "strip",
            Chunks::Tiles { .. } => "tile",
        }
    }

    /// Every chunk lies in the file; raw chunks hold at least the pixels they must.
    fn check_chunks_in_file(&self, file_len: u64) -> Result<(), Problem> {
        let name = self.chunk_name();
        for (i, (&offset, &count)) in self.offsets.iter().zip(&self.byte_counts).enumerate() {
            if self.is_raw() {
                let need = self.raw_chunk_bytes(i);
                if count < need {
                    return Err(format_problem!(
                        "{name} {i} holds {count} bytes, its pixels need {need}"
                    ));
                }
            }
            let used = count;
            if offset >= file_len && used > 0 {
                return Err(format_problem!(
                    "{name} {i} starts past the end of the file (offset {offset}, file {file_len} bytes)"
                ));
            }
            if offset.checked_add(used).is_none_or(|end| end > file_len) {
                return Err(format_problem!(
                    "{name} {i} (offset {offset}, {used} bytes) runs past the end of the file ({file_len} bytes)"
                ));
            }
        }
        Ok(())
    }
}

/// A required, nonzero dimension that fits in `u32`.
fn dimension(dir: &Directory<'_>, tag: Tag) -> Result<u32, Problem> {
    let v = dir.required(tag)?;
    match u32::try_from(v) {
        Ok(0) => Err(format_problem!("{} is 0", tag.name())),
        Ok(v) => Ok(v),
        Err(_) => Err(format_problem!(
            "{} is {v}, larger than TIFF allows",
            tag.name()
        )),
    }
}

/// `images=N` from an ImageJ ImageDescription (`ImageJ=1.x` on its first line).
fn imagej_images(dir: &Directory<'_>) -> Result<Option<u64>, Problem> {
    let Some(text) = dir.bytes(Tag::ImageDescription)? else {
        return Ok(None);
    };
    if !text.starts_with(b"ImageJ=") {
        return Ok(None);
    }
    Ok(text
        .split(|&b| b == b'\n' || b == 0)
        .find_map(|line| line.strip_prefix(b"images="))
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse().ok()))
}

/// Whether `dir` says it is a reduced-resolution copy of another image.
fn is_preview(dir: &Directory<'_>) -> Result<bool, Problem> {
    let new = dir.value(Tag::NewSubfileType)?.unwrap_or(0);
    let old = dir.value(Tag::SubfileType)?.unwrap_or(1);
    Ok(new & 1 == 1 || old == 2)
}

/// Refuses a volume stored in one IFD (SGI's ImageDepth/TileDepth): page 0 would
/// be one plane of it, not the whole image.
fn check_one_plane(dir: &Directory<'_>) -> Result<(), Problem> {
    for tag in [Tag::ImageDepth, Tag::TileDepth] {
        match dir.value(tag)? {
            None | Some(0 | 1) => {}
            Some(depth) => {
                return Err(Problem::Unsupported(format!(
                    "a volume of {depth} planes in one image ({} {depth}): \
                     only the first plane would be read",
                    tag.name()
                )));
            }
        }
    }
    Ok(())
}

/// What the samples are: their served type, stored depth and photometric.
struct PixelFormat {
    sample_type: SampleType,
    bits: u32,
    photometric: Photometric,
}

/// Accepts single-sample grayscale of the types in [`SampleType`] (unsigned
/// integers of 1 to 16 bits, i16, f32), black or white zero; names anything else
/// as `Unsupported`.
fn check_supported(dir: &Directory<'_>) -> Result<PixelFormat, Problem> {
    let samples = dir.value(Tag::SamplesPerPixel)?.unwrap_or(1);
    let photometric = dir.value(Tag::PhotometricInterpretation)?;
    let bits = dir.value(Tag::BitsPerSample)?.unwrap_or(1);
    let format = dir.value(Tag::SampleFormat)?.unwrap_or(1);
    let unsupported = |what: String| Err(Problem::Unsupported(what));
    let photometric = match photometric {
        None | Some(1) => Photometric::MinIsBlack,
        Some(0) => Photometric::MinIsWhite,
        Some(2) => return unsupported(format!("RGB color, {samples} samples per pixel")),
        Some(3) => return unsupported("palette color".into()),
        Some(4) => return unsupported("transparency mask".into()),
        Some(5) => return unsupported("CMYK color".into()),
        Some(6) => return unsupported("YCbCr color".into()),
        Some(8) => return unsupported("CIE L*a*b* color".into()),
        Some(32844 | 32845) => return unsupported("LogLuv (SGI) color".into()),
        Some(p) => return unsupported(format!("photometric interpretation {p}")),
    };
    if samples != 1 {
        return unsupported(format!("{samples} samples per pixel, not 1"));
    }
    if bits == 0 {
        return Err(format_problem!("BitsPerSample is 0"));
    }
    let sample_type = match (format, bits) {
        (1, 1..=8) => SampleType::U8,
        (1, 9..=16) => SampleType::U16,
        (1, b) => return unsupported(format!("{b}-bit unsigned integer samples (at most 16)")),
        (2, 16) => SampleType::I16,
        (2, b) => {
            return unsupported(format!(
                "{b}-bit signed integer samples (only 16-bit signed)"
            ));
        }
        (3, 32) => SampleType::F32,
        (3, b) => {
            return unsupported(format!(
                "{b}-bit floating-point samples (only 32-bit float)"
            ));
        }
        (f, b) => return unsupported(format!("{b}-bit samples of sample format {f}")),
    };
    Ok(PixelFormat {
        sample_type,
        bits: bits as u32,
        photometric,
    })
}
