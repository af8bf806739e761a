//! JPEG, decoded by `zune-jpeg`: 8-bit gray as decoded, color decoded to RGB and
//! converted to gray with [`luma`] (as Pillow's `convert("L")` does after
//! libjpeg's own YCbCr to RGB step). 12- and 16-bit JPEG, CMYK and YCCK are
//! refused as unsupported.

use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;
use zune_jpeg::errors::DecodeErrors;

use super::{Header, Image, ImagePixels, check_ratio, check_size, to_gray};
use crate::Limits;
use crate::error::{Problem, format_problem};
use crate::sample::{SampleType, Samples};
use crate::tiff::Resolution;

type Decoder<'a> = JpegDecoder<ZCursor<&'a [u8]>>;

/// The fewest bits of the file one 8x8 block of a Huffman-coded JPEG can take:
/// sequential frames (SOF0, SOF1) code at least a DC difference and an end of
/// block, one bit each at best; a progressive frame (SOF2) at least the DC
/// difference of its first scan. `None` for other frames (arithmetic, lossless,
/// hierarchical), which the decoder refuses anyway.
fn min_bits_per_block(frame_marker: u8) -> Option<u64> {
    match frame_marker {
        0xc0 | 0xc1 => Some(2),
        0xc2 => Some(1),
        _ => None,
    }
}

/// The marker and sample precision of the first frame header (SOFn), found by
/// walking the marker segments up to the first scan; `None` if there is none
/// before it. Each step moves forward, so the walk ends on any byte sequence.
fn frame_header(bytes: &[u8]) -> Option<(u8, u8)> {
    let mut at = 2;
    while at + 1 < bytes.len() {
        if bytes[at] != 0xff {
            return None;
        }
        let marker = bytes[at + 1];
        match marker {
            // Fill bytes, and markers without a length.
            0xff => at += 1,
            0x01 | 0xd0..=0xd8 => at += 2,
            0xd9 | 0xda => return None,
            0xc0..=0xcf if !matches!(marker, 0xc4 | 0xc8 | 0xcc) => {
                return bytes.get(at + 4).map(|&p| (marker, p));
            }
            _ => {
                let len = usize::from(u16::from_be_bytes([
                    *bytes.get(at + 2)?,
                    *bytes.get(at + 3)?,
                ]));
                at += 2 + len;
            }
        }
    }
    None
}

/// Reads the headers, refusing what ctstack does not decode, and checks the
/// decoded size against `limits`. Returns the decoder and whether the image is gray.
fn open<'a>(bytes: &'a [u8], limits: &Limits) -> Result<(Decoder<'a>, bool), Problem> {
    let frame = frame_header(bytes);
    if let Some((_, p)) = frame
        && p != 8
    {
        return Err(Problem::Unsupported(format!("{p}-bit JPEG")));
    }
    let options = DecoderOptions::default()
        .set_max_width(usize::from(u16::MAX))
        .set_max_height(usize::from(u16::MAX));
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().map_err(problem)?;
    let info = decoder
        .info()
        .ok_or_else(|| format_problem!("JPEG headers could not be read"))?;
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    // Every 8x8 block costs the file at least a bit or two, so a JPEG holds at
    // most 256 (sequential) or 512 (progressive) pixels per byte. A header that
    // claims more is forged or truncated, and the decoder would spend its time
    // inventing the missing blocks.
    let pixels = u64::from(width) * u64::from(height);
    if let Some(bits) = frame.and_then(|(marker, _)| min_bits_per_block(marker)) {
        let needed = (pixels.div_ceil(64) * bits).div_ceil(8);
        if needed > bytes.len() as u64 {
            return Err(format_problem!(
                "the {width}x{height} JPEG needs at least {needed} bytes ({bits} bits per \
                 8x8 block), the file has {}: truncated or forged",
                bytes.len()
            ));
        }
    }
    let gray = match decoder.input_colorspace() {
        Some(ColorSpace::Luma) => true,
        Some(ColorSpace::YCbCr | ColorSpace::RGB) => false,
        Some(other) => {
            return Err(Problem::Unsupported(format!(
                "JPEG in the {other:?} color space"
            )));
        }
        None => return Err(format_problem!("JPEG color space unknown")),
    };
    let out = if gray {
        ColorSpace::Luma
    } else {
        ColorSpace::RGB
    };
    decoder.set_options(options.jpeg_set_out_colorspace(out));
    let channels = out.num_components() as u64;
    // The output buffer, and as much again for the decoder's coefficients and rows.
    check_size(width, height, 3 * channels, limits)?;
    check_ratio(
        u64::from(width) * u64::from(height) * channels,
        bytes.len(),
        "JPEG",
        limits,
    )?;
    Ok((decoder, gray))
}

/// The density of a JFIF APP0 segment right after SOI ("JFIF\0", version,
/// units: 1 dots per inch, 2 per centimetre, 0 an aspect ratio only; X and Y
/// density), if it has a length unit.
fn jfif_resolution(bytes: &[u8]) -> Option<Resolution> {
    let head = bytes.get(..18)?;
    if head[..4] != [0xFF, 0xD8, 0xFF, 0xE0] || &head[6..11] != b"JFIF\0" {
        return None;
    }
    let unit = match head[13] {
        1 => 2,
        2 => 3,
        _ => return None,
    };
    let x = u32::from(u16::from_be_bytes([head[14], head[15]]));
    let y = u32::from(u16::from_be_bytes([head[16], head[17]]));
    (x > 0 && y > 0).then_some(Resolution {
        x: (x, 1),
        y: (y, 1),
        unit,
    })
}

pub(super) fn read_header(bytes: &[u8], limits: &Limits) -> Result<Header, Problem> {
    let (decoder, _) = open(bytes, limits)?;
    let (width, height) = decoder.dimensions().unwrap_or_default();
    Ok(Header {
        width: width as u32,
        height: height as u32,
        sample_type: SampleType::U8,
        resolution: jfif_resolution(bytes),
    })
}

pub(super) fn read(bytes: &[u8], limits: &Limits) -> Result<Image, Problem> {
    let (mut decoder, gray) = open(bytes, limits)?;
    let (width, height) = decoder.dimensions().unwrap_or_default();
    let size = decoder
        .output_buffer_size()
        .ok_or_else(|| format_problem!("JPEG headers could not be read"))?;
    let mut buffer = vec![0u8; size];
    decoder.decode_into(&mut buffer).map_err(problem)?;
    let channels = decoder
        .output_colorspace()
        .map_or(0, |c| c.num_components());
    if channels == 0 || buffer.len() != width * height * channels {
        return Err(format_problem!(
            "the JPEG decoder returned {} bytes for a {width}x{height} image",
            buffer.len()
        ));
    }
    let header = Header {
        width: width as u32,
        height: height as u32,
        sample_type: SampleType::U8,
        resolution: jfif_resolution(bytes),
    };
    let (samples, reason) = if channels == 1 {
        (buffer, "JPEG")
    } else {
        (to_gray(&buffer, channels), "RGB to gray (JPEG)")
    };
    Ok(Image {
        header,
        pixels: ImagePixels::Owned {
            samples: Samples::from_vec(samples),
            converted: !gray,
            reason: reason.into(),
        },
    })
}

/// Sorts a `zune-jpeg` error into ctstack's classes.
fn problem(e: DecodeErrors) -> Problem {
    match e {
        DecodeErrors::Unsupported(scheme) => Problem::Unsupported(format!("JPEG: {scheme:?}")),
        DecodeErrors::LargeDimensions(n) => {
            Problem::Limits(format!("JPEG dimension {n} is above the decoder's limit"))
        }
        other => format_problem!("JPEG: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JFIF density with a length unit is the header's resolution (dots
    /// per inch: unit 2); an aspect ratio only, or no JFIF segment, is none.
    #[test]
    fn the_header_carries_a_jfif_density() {
        let mut head = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 16];
        head.extend_from_slice(b"JFIF\0\x01\x02\x01\x01\x2c\x00\x96");
        assert_eq!(
            jfif_resolution(&head),
            Some(Resolution {
                x: (300, 1),
                y: (150, 1),
                unit: 2
            })
        );
        head[13] = 0;
        assert_eq!(jfif_resolution(&head), None);
        assert_eq!(jfif_resolution(&head[..10]), None);
    }
}
