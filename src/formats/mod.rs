//! Slice formats other than TIFF: BMP (ctstack's own parser, rows viewed in place
//! when they are gray), PNG (the `png` crate) and JPEG (`zune-jpeg`).
//!
//! Each reader turns the file's bytes into an [`Image`]: its size and depth, and
//! either where its rows lie in the file or an owned gray buffer. Color is turned
//! to gray by one rule, [`luma`]. Like the TIFF parser, the readers work on the
//! whole file as a byte slice, check every size against it and against
//! [`Limits`] before allocating, and report problems as [`Problem`]s.

mod bmp;
mod jpeg;
mod png;

pub(crate) use png::PngRows;

use crate::Limits;
use crate::bytes::ByteOrder;
use crate::error::Problem;
use crate::sample::{SampleType, Samples};
use crate::tiff::{Compression, Resolution};

/// The file format of a slice, told by its first bytes (not its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// TIFF or BigTIFF (`II`/`MM`), read by ctstack's own parser.
    Tiff,
    /// Windows bitmap (`BM`), read by ctstack's own parser.
    Bmp,
    /// PNG, decoded by the `png` crate.
    Png,
    /// JPEG (baseline or progressive, 8-bit), decoded by `zune-jpeg`.
    Jpeg,
}

impl Format {
    /// `TIFF`, `BMP`, `PNG` or `JPEG`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Tiff => "TIFF",
            Format::Bmp => "BMP",
            Format::Png => "PNG",
            Format::Jpeg => "JPEG",
        }
    }

    /// The format whose signature `bytes` start with; `None` if none does.
    pub(crate) fn sniff(bytes: &[u8]) -> Option<Format> {
        match bytes {
            [b'I', b'I', ..] | [b'M', b'M', ..] => Some(Format::Tiff),
            [b'B', b'M', ..] => Some(Format::Bmp),
            [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n', ..] => Some(Format::Png),
            [0xff, 0xd8, 0xff, ..] => Some(Format::Jpeg),
            _ => None,
        }
    }
}

/// The problem with a file whose first bytes are no known signature.
pub(crate) fn unknown(bytes: &[u8]) -> Problem {
    let start: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let start = match start.len() {
        0 => "it is empty".to_string(),
        _ => format!("it starts with {}", start.join(" ")),
    };
    Problem::Format(format!("not a TIFF, BMP, PNG or JPEG file: {start}"))
}

/// Size and depth of a non-TIFF image, read from its header alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub width: u32,
    pub height: u32,
    /// The gray samples once read: `U8` or `U16`.
    pub sample_type: SampleType,
    /// The density the header records with a length unit (a BMP's or PNG's
    /// pixels per metre, a JPEG's JFIF dots per inch or centimetre), if any.
    pub resolution: Option<Resolution>,
}

/// A non-TIFF image, ready to be served.
#[derive(Debug)]
pub(crate) struct Image {
    pub header: Header,
    pub pixels: ImagePixels,
}

#[derive(Debug)]
pub(crate) enum ImagePixels {
    /// 8-bit gray rows in the file itself: row `y` (top first) starts at byte
    /// `first_row + y * row_step`; every row checked to lie in the file.
    InFile {
        first_row: usize,
        row_step: isize,
        /// What the view handles (`bottom-up rows, padded to 4 bytes`).
        reason: String,
    },
    /// Gray samples in an owned, row-major buffer.
    Owned {
        samples: Samples,
        /// Converted from color or a palette (true), or only decoded.
        converted: bool,
        /// What was done (`RGB to gray (PNG)`, `PNG`).
        reason: String,
    },
}

/// Reads the header of a `format` file (not TIFF).
pub(crate) fn read_header(
    format: Format,
    bytes: &[u8],
    limits: &Limits,
) -> Result<Header, Problem> {
    match format {
        Format::Bmp => bmp::read_header(bytes, limits),
        Format::Png => png::read_header(bytes, limits),
        Format::Jpeg => jpeg::read_header(bytes, limits),
        Format::Tiff => unreachable!("TIFF files are read by crate::tiff"),
    }
}

/// Reads a `format` file (not TIFF) whole.
pub(crate) fn read(format: Format, bytes: &[u8], limits: &Limits) -> Result<Image, Problem> {
    match format {
        Format::Bmp => bmp::read(bytes, limits),
        Format::Png => png::read(bytes, limits),
        Format::Jpeg => jpeg::read(bytes, limits),
        Format::Tiff => unreachable!("TIFF files are read by crate::tiff"),
    }
}

/// What [`Slice::compression`](crate::Slice::compression) and
/// [`Slice::byte_order`](crate::Slice::byte_order) say for a file of `format`:
/// the format's own convention (BMP: none, little-endian; PNG: Deflate,
/// big-endian; JPEG: JPEG, big-endian).
pub(crate) fn nominal_encoding(format: Format) -> (Compression, ByteOrder) {
    match format {
        Format::Bmp => (Compression::None, ByteOrder::LittleEndian),
        Format::Png => (Compression::Deflate, ByteOrder::BigEndian),
        Format::Jpeg => (Compression::Jpeg, ByteOrder::BigEndian),
        Format::Tiff => unreachable!("a TIFF's encoding is its own"),
    }
}

/// Gray from red, green and blue: the ITU-R 601-2 luma with the integer weights
/// of Pillow's `convert("L")` (`L24` in its `Convert.c`), so gray values are the
/// ones CTHarvester shows:
/// `(19595 R + 38470 G + 7471 B + 0x8000) >> 16`.
/// The weights add up to 65536, so gray input (R = G = B) stays exactly as it
/// was. The same rule is applied to 16-bit samples (in 64-bit arithmetic), where
/// Pillow would first drop to 8 bits.
#[inline]
pub(crate) fn luma(r: u32, g: u32, b: u32) -> u32 {
    ((19595 * u64::from(r) + 38470 * u64::from(g) + 7471 * u64::from(b) + 0x8000) >> 16) as u32
}

/// Checks that a `width` x `height` image of `bytes_per_pixel` fits `limits`
/// (pixels, and the buffer ctstack or the decoder will allocate for it).
pub(crate) fn check_size(
    width: u32,
    height: u32,
    bytes_per_pixel: u64,
    limits: &Limits,
) -> Result<(), Problem> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(Problem::Limits(format!(
            "{width}x{height} is {pixels} pixels, more than the limit of {}",
            limits.max_pixels
        )));
    }
    crate::decode::check_decoded_size(pixels.saturating_mul(bytes_per_pixel), limits)
}

/// Refuses a compressed image that claims more decoded bytes than
/// `limits.max_compression_ratio` times the file (a decompression bomb).
pub(crate) fn check_ratio(
    decoded: u64,
    file_len: usize,
    codec: &str,
    limits: &Limits,
) -> Result<(), Problem> {
    if decoded > (file_len as u64).saturating_mul(limits.max_compression_ratio) {
        return Err(Problem::Limits(format!(
            "{codec} claims {decoded} decoded bytes from a {file_len}-byte file, a ratio above \
             the limit of {}:1 (a decompression bomb)",
            limits.max_compression_ratio
        )));
    }
    Ok(())
}

/// Gray from interleaved 8-bit samples of `channels` channels (2 or more): gray
/// and alpha keep the first channel, RGB (and alpha) goes through [`luma`];
/// alpha is ignored.
pub(crate) fn to_gray(pixels: &[u8], channels: usize) -> Vec<u8> {
    match channels {
        2 => pixels.chunks_exact(2).map(|p| p[0]).collect(),
        _ => pixels
            .chunks_exact(channels)
            .map(|p| luma(p[0].into(), p[1].into(), p[2].into()) as u8)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luma_keeps_gray_and_matches_pillows_weights() {
        for v in 0..=255 {
            assert_eq!(luma(v, v, v), v);
        }
        for v in [0u32, 1, 257, 32768, 65535] {
            assert_eq!(luma(v, v, v), v);
        }
        // Pillow 13: Image.new("RGB", (1, 1), c).convert("L").getpixel((0, 0))
        assert_eq!(luma(255, 0, 0), 76);
        assert_eq!(luma(0, 255, 0), 150);
        assert_eq!(luma(0, 0, 255), 29);
        assert_eq!(luma(10, 200, 30), 124);
    }

    /// A blank `width` x `height` PNG of `color` and `depth` (palette: two entries).
    fn blank_png(
        width: u32,
        height: u32,
        color: ::png::ColorType,
        depth: ::png::BitDepth,
    ) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut encoder = ::png::Encoder::new(&mut bytes, width, height);
        encoder.set_color(color);
        encoder.set_depth(depth);
        if color == ::png::ColorType::Indexed {
            encoder.set_palette(vec![0, 0, 0, 255, 255, 255]);
        }
        encoder.set_compression(::png::Compression::High);
        let mut writer = encoder.write_header().unwrap();
        let row_bits = width as usize * color.samples() * depth as usize;
        let zeros = vec![0u8; row_bits.div_ceil(8) * height as usize];
        writer.write_image_data(&zeros).unwrap();
        writer.finish().unwrap();
        bytes
    }

    #[test]
    fn blank_packed_pngs_are_not_taken_for_bombs() {
        // Deflate's ratio bounds the rows as stored: these 1-bit images expand 8
        // (gray) or 24 (palette to RGB) times beyond what they inflate to, and
        // were refused as above 4096:1.
        let limits = Limits::default();
        for (color, depth) in [
            (::png::ColorType::Grayscale, ::png::BitDepth::One),
            (::png::ColorType::Indexed, ::png::BitDepth::One),
        ] {
            let bytes = blank_png(2048, 2048, color, depth);
            let expanded = 2048 * 2048 * color.samples() as u64 * 8 / depth as u64;
            assert!(
                expanded > bytes.len() as u64 * 4096,
                "{color:?}: {} bytes do not test the ratio",
                bytes.len()
            );
            let image = read(Format::Png, &bytes, &limits).unwrap_or_else(|e| panic!("{e:?}"));
            assert_eq!((image.header.width, image.header.height), (2048, 2048));
            match image.pixels {
                ImagePixels::Owned { samples, .. } => {
                    let gray = samples.get::<u8>().unwrap();
                    assert_eq!(gray.len(), 2048 * 2048);
                    assert!(gray.iter().all(|&v| v == 0));
                }
                _ => panic!("{color:?}: not decoded"),
            }
        }
    }

    #[test]
    fn signatures_pick_the_format() {
        assert_eq!(Format::sniff(b"II*\0"), Some(Format::Tiff));
        assert_eq!(Format::sniff(b"BM\0\0"), Some(Format::Bmp));
        assert_eq!(Format::sniff(b"\x89PNG\r\n\x1a\n"), Some(Format::Png));
        assert_eq!(Format::sniff(b"\xff\xd8\xff\xe0"), Some(Format::Jpeg));
        assert_eq!(Format::sniff(b"\x89PNG"), None);
        assert_eq!(Format::sniff(b""), None);
    }
}
