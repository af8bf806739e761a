//! Compressed slices (LZW, Deflate, PackBits, JPEG, predictors): LZW strips by
//! ctstack's own decoder (src/lzw.rs, for speed), everything else by the `tiff` crate.

use std::io::Cursor;

use tiff::decoder::{Decoder, DecodingResult};
use tiff::{ColorType, TiffError};

use crate::Limits;
use crate::error::{Problem, format_problem};
use crate::lzw;
use crate::sample::Sample;
use crate::sample::Samples;
use crate::tiff::{ByteOrder, Chunks, Compression, ImageLayout};

/// Decodes IFD 0 of `bytes`, whose layout `layout` has already been validated.
///
/// The decoded size and the compression ratio are checked against `limits`
/// before the decoder allocates anything, and the decoder's own limits are set
/// from ours, so a large but legitimate slice is not refused by its 256 MiB default.
pub(crate) fn decode(
    bytes: &[u8],
    layout: &ImageLayout,
    limits: &Limits,
) -> Result<Samples, Problem> {
    let image_bytes = layout.image_bytes();
    check_decoded_size(image_bytes, limits)?;
    // Chunks may overlap (every strip pointing at the same bytes), so the byte
    // counts can add up to more than the file; the compressed data cannot be
    // larger than the file itself, whatever they claim.
    let compressed: u64 = layout
        .byte_counts
        .iter()
        .fold(0u64, |a, &b| a.saturating_add(b))
        .min(bytes.len() as u64);
    if image_bytes > compressed.saturating_mul(limits.max_compression_ratio) {
        return Err(Problem::Limits(format!(
            "{} claims {image_bytes} decoded bytes from {compressed} compressed bytes, \
             a ratio above the limit of {}:1 (a decompression bomb)",
            layout.compression.name(),
            limits.max_compression_ratio
        )));
    }
    if let Some(samples) = decode_lzw_strips(bytes, layout)? {
        return Ok(samples);
    }
    let budget = usize::try_from(image_bytes.saturating_mul(2)).unwrap_or(usize::MAX);
    let mut tiff_limits = tiff::decoder::Limits::default();
    tiff_limits.decoding_buffer_size = budget;
    tiff_limits.intermediate_buffer_size = budget;
    let mut decoder = Decoder::new(Cursor::new(bytes))
        .map_err(problem)?
        .with_limits(tiff_limits);
    let colortype = decoder.colortype().map_err(problem)?;
    let expected = match colortype {
        ColorType::Gray(8) if layout.bits == 8 => 8,
        ColorType::Gray(16) if layout.bits == 16 => 16,
        other => {
            return Err(Problem::Unsupported(format!(
                "the tiff decoder reads this file as {other:?}, not {}-bit grayscale",
                layout.bits
            )));
        }
    };
    let pixels = u64::from(layout.width) * u64::from(layout.height);
    let result = decoder.read_image().map_err(problem)?;
    let samples = match result {
        DecodingResult::U8(v) if expected == 8 => Samples::U8(v),
        DecodingResult::U16(v) if expected == 16 => Samples::U16(v),
        _ => {
            return Err(Problem::Unsupported(
                "the tiff decoder returned another sample type than the file declares".into(),
            ));
        }
    };
    let got = match &samples {
        Samples::U8(v) => v.len(),
        Samples::U16(v) => v.len(),
    } as u64;
    if got != pixels {
        return Err(format_problem!(
            "the tiff decoder returned {got} samples for a {}x{} image",
            layout.width,
            layout.height
        ));
    }
    Ok(samples)
}

/// Refuses a pixel buffer larger than `limits.max_decoded_bytes`.
pub(crate) fn check_decoded_size(image_bytes: u64, limits: &Limits) -> Result<(), Problem> {
    if image_bytes > limits.max_decoded_bytes {
        return Err(Problem::Limits(format!(
            "the image needs a {image_bytes}-byte buffer, more than the limit of {}",
            limits.max_decoded_bytes
        )));
    }
    Ok(())
}

/// Sorts a `tiff` crate error into ctstack's classes.
fn problem(e: TiffError) -> Problem {
    match e {
        TiffError::FormatError(e) => format_problem!("{e}"),
        TiffError::UnsupportedError(e) => Problem::Unsupported(e.to_string()),
        TiffError::LimitsExceeded => {
            Problem::Limits("the tiff decoder's buffer limit was exceeded".into())
        }
        // The decoder reads from memory: an I/O error means the data ended early.
        TiffError::IoError(e) => format_problem!("compressed data is truncated or corrupt: {e}"),
        other => format_problem!("{other}"),
    }
}

/// LZW strips (predictor none or horizontal, new-style codes): decoded by
/// [`lzw::decode`], strips in parallel. `None` for anything else.
fn decode_lzw_strips(bytes: &[u8], layout: &ImageLayout) -> Result<Option<Samples>, Problem> {
    let Chunks::Strips { rows_per_strip } = layout.chunks else {
        return Ok(None);
    };
    let first = layout
        .offsets
        .first()
        .map_or(&[][..], |&o| &bytes[o as usize..]);
    if layout.compression != Compression::Lzw
        || !matches!(layout.predictor, 1 | 2)
        || lzw::is_old_style(first)
    {
        return Ok(None);
    }
    Ok(Some(match layout.bits {
        8 => Samples::U8(lzw_strips::<u8>(bytes, layout, rows_per_strip as usize)?),
        _ => Samples::U16(lzw_strips::<u16>(bytes, layout, rows_per_strip as usize)?),
    }))
}

fn lzw_strips<T: Sample>(
    bytes: &[u8],
    layout: &ImageLayout,
    rows_per_strip: usize,
) -> Result<Vec<T>, Problem> {
    use rayon::prelude::*;
    let (width, height) = (layout.width as usize, layout.height as usize);
    let mut out = vec![T::default(); width * height];
    let strips: Vec<(usize, usize)> = layout
        .offsets
        .iter()
        .zip(&layout.byte_counts)
        .map(|(&o, &c)| (o as usize, c as usize))
        .collect();
    // `ImageLayout::parse` checked every strip lies in the file.
    out.par_chunks_mut(rows_per_strip * width)
        .zip(strips)
        .try_for_each(|(dst, (offset, count))| {
            lzw::decode(
                &bytes[offset..offset + count],
                bytemuck::cast_slice_mut(dst),
            )?;
            if std::mem::size_of::<T>() == 2 && layout.order != ByteOrder::host() {
                for v in dst.iter_mut() {
                    *v = T::from_u32(u32::from((v.to_u32() as u16).swap_bytes()));
                }
            }
            if layout.predictor == 2 {
                // Horizontal differencing: each sample was stored minus its left neighbour.
                for row in dst.chunks_exact_mut(width) {
                    let mut acc = 0u32;
                    for v in row.iter_mut() {
                        acc = acc.wrapping_add(v.to_u32()) & T::MAX.to_u32();
                        *v = T::from_u32(acc);
                    }
                }
            }
            Ok::<(), Problem>(())
        })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::{OpenOptions, Slice};

    /// A big-endian 16-bit LZW file with a predictor, in two strips, built by hand:
    /// the byte swap and the predictor of the LZW path, against the `tiff` crate.
    #[test]
    fn big_endian_lzw_with_predictor_matches_the_tiff_crate() {
        let (w, h, rps) = (37u32, 6u32, 4u32);
        let pixels: Vec<u16> = (0..w * h)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u16 | 1)
            .collect();
        let mut strips = Vec::new();
        for rows in pixels.chunks((w * rps) as usize) {
            // Horizontal differencing per row, then big-endian bytes, then LZW.
            let mut raw = Vec::new();
            for row in rows.chunks(w as usize) {
                let mut left = 0u16;
                for &v in row {
                    raw.extend_from_slice(&v.wrapping_sub(left).to_be_bytes());
                    left = v;
                }
            }
            strips.push(crate::lzw::tests::encode(&raw));
        }
        let mut file = b"MM\0\x2a\0\0\0\x08".to_vec();
        let entries: Vec<(u16, u16, u32, u32)> = vec![
            (256, 4, 1, w),
            (257, 4, 1, h),
            (258, 3, 1, 16 << 16),
            (259, 3, 1, 5 << 16),
            (262, 3, 1, 1 << 16),
            (273, 4, 2, 0), // patched below
            (278, 4, 1, rps),
            (279, 4, 2, 0), // patched below
            (317, 3, 1, 2 << 16),
        ];
        let ifd_len = 2 + 12 * entries.len() + 4;
        let arrays = 8 + ifd_len;
        let data = arrays + 16;
        let offsets = [data, data + strips[0].len()];
        file.extend_from_slice(&(entries.len() as u16).to_be_bytes());
        for (tag, ty, count, value) in entries {
            let value = match tag {
                273 => arrays as u32,
                279 => arrays as u32 + 8,
                _ => value,
            };
            file.extend_from_slice(&tag.to_be_bytes());
            file.extend_from_slice(&ty.to_be_bytes());
            file.extend_from_slice(&count.to_be_bytes());
            file.extend_from_slice(&value.to_be_bytes());
        }
        file.extend_from_slice(&[0; 4]);
        for o in offsets {
            file.extend_from_slice(&(o as u32).to_be_bytes());
        }
        for s in &strips {
            file.extend_from_slice(&(s.len() as u32).to_be_bytes());
        }
        for s in &strips {
            file.extend_from_slice(s);
        }

        let slice = Slice::from_bytes("be_lzw_pred.tif", &file, &OpenOptions::default()).unwrap();
        assert_eq!(slice.access().to_string(), "decoded: LZW with predictor 2");
        assert_eq!(slice.contiguous::<u16>().unwrap(), &pixels[..]);
        let mut decoder = tiff::decoder::Decoder::new(std::io::Cursor::new(&file)).unwrap();
        match decoder.read_image().unwrap() {
            tiff::decoder::DecodingResult::U16(v) => assert_eq!(v, pixels),
            _ => panic!("not 16-bit"),
        }
    }
}
