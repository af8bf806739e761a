//! PNG, decoded by the `png` crate: 8- and 16-bit gray as they are (PNG's
//! 16-bit samples are big-endian; the crate hands them over as bytes and they
//! are put in native order here), gray + alpha, RGB and RGBA converted to gray
//! with [`luma`] (alpha ignored), palettes expanded to RGB first, 1/2/4-bit gray
//! scaled to 8 bits (as Pillow does).

use std::io::Cursor;

use png::{BitDepth, ColorType, Decoder, DecodingError, Transformations};

use super::{Header, Image, ImagePixels, check_ratio, check_size, luma, to_gray};
use crate::Limits;
use crate::error::{Problem, format_problem};
use crate::sample::{SampleType, Samples};

type Reader<'a> = png::Reader<Cursor<&'a [u8]>>;

/// Reads the header chunks (up to the first image data) with the decoder's own
/// memory budget set from `limits`.
fn open<'a>(bytes: &'a [u8], limits: &Limits) -> Result<Reader<'a>, Problem> {
    let budget = usize::try_from(limits.max_decoded_bytes).unwrap_or(usize::MAX);
    let mut decoder = Decoder::new_with_limits(Cursor::new(bytes), png::Limits { bytes: budget });
    decoder.set_transformations(Transformations::EXPAND);
    let reader = decoder.read_info().map_err(problem)?;
    let info = reader.info();
    let (width, height) = (info.width, info.height);
    let (color, depth) = reader.output_color_type();
    let channels = color.samples() as u64;
    let sample_bytes = if depth == BitDepth::Sixteen { 2 } else { 1 };
    // What the decoder will fill: every channel.
    check_size(width, height, channels * sample_bytes, limits)?;
    // Deflate's ratio bounds the rows as stored (a filter byte each, 1-bit gray or
    // palette indices packed), not the expanded pixels: 1-bit gray expands 8 times
    // beyond what it inflates to, a 1-bit palette (to RGB) 24 times.
    let stored = u64::from(height) * info.raw_row_length() as u64;
    check_ratio(stored, bytes.len(), "PNG", limits)?;
    Ok(reader)
}

fn header(reader: &Reader<'_>) -> Header {
    let info = reader.info();
    let (_, depth) = reader.output_color_type();
    Header {
        width: info.width,
        height: info.height,
        sample_type: if depth == BitDepth::Sixteen {
            SampleType::U16
        } else {
            SampleType::U8
        },
    }
}

pub(super) fn read_header(bytes: &[u8], limits: &Limits) -> Result<Header, Problem> {
    Ok(header(&open(bytes, limits)?))
}

pub(super) fn read(bytes: &[u8], limits: &Limits) -> Result<Image, Problem> {
    let mut reader = open(bytes, limits)?;
    let header = header(&reader);
    let source_color = reader.info().color_type;
    let (color, _) = reader.output_color_type();
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| Problem::Limits("the PNG image does not fit in memory".into()))?;
    let mut buffer = vec![0u8; size];
    let frame = reader.next_frame(&mut buffer).map_err(problem)?;
    buffer.truncate(frame.buffer_size());
    let channels = color.samples();
    let pixels = header.width as usize * header.height as usize;
    if buffer.len() != pixels * channels * header.sample_type.bytes() {
        return Err(format_problem!(
            "the png decoder returned {} bytes for a {}x{} image of {channels} channels",
            buffer.len(),
            header.width,
            header.height
        ));
    }
    let samples = if header.sample_type == SampleType::U16 {
        // Big-endian samples straight to native gray: no second full-size buffer.
        let sample = |p: &[u8], c: usize| u32::from(u16::from_be_bytes([p[2 * c], p[2 * c + 1]]));
        let gray: Vec<u16> = buffer
            .chunks_exact(2 * channels)
            .map(|p| match channels {
                1 | 2 => sample(p, 0) as u16,
                _ => luma(sample(p, 0), sample(p, 1), sample(p, 2)) as u16,
            })
            .collect();
        Samples::from_vec(gray)
    } else if channels == 1 {
        Samples::from_vec(buffer)
    } else {
        Samples::from_vec(to_gray(&buffer, channels))
    };
    let converted = match source_color {
        ColorType::Grayscale => None,
        ColorType::GrayscaleAlpha => Some("gray + alpha"),
        ColorType::Rgb => Some("RGB"),
        ColorType::Rgba => Some("RGBA"),
        ColorType::Indexed => Some("palette"),
    };
    let reason = match converted {
        Some(from) => format!("{from} to gray (PNG)"),
        None if header.sample_type == SampleType::U16 => "PNG, 16-bit big-endian".into(),
        None => "PNG".into(),
    };
    Ok(Image {
        header,
        pixels: ImagePixels::Owned {
            samples,
            converted: converted.is_some(),
            reason,
        },
    })
}

/// Sorts a `png` crate error into ctstack's classes.
fn problem(e: DecodingError) -> Problem {
    match e {
        DecodingError::Format(e) => format_problem!("PNG: {e}"),
        // The decoder reads from memory: an I/O error means the data ended early.
        DecodingError::IoError(e) => format_problem!("PNG data is truncated or corrupt: {e}"),
        DecodingError::LimitsExceeded => {
            Problem::Limits("the png decoder's memory limit was exceeded".into())
        }
        DecodingError::Parameter(e) => Problem::Unsupported(format!("PNG: {e}")),
    }
}
