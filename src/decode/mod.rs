//! Decoding compressed TIFF images (LZW, Deflate, PackBits, JPEG, ZSTD, predictors):
//! LZW strips by ctstack's own decoder ([`lzw`], for speed), everything else by
//! the `tiff` crate ([`tiff_crate`]). Both run behind the same budget checks.

mod jpeg_probe;
mod lzw;
mod tiff_crate;

use crate::Limits;
use crate::error::Problem;
use crate::sample::Samples;
use crate::tiff::{Compression, ImageLayout};

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
    if layout.compression == Compression::Jpeg {
        // Chunks were checked to lie in the file.
        for (&offset, &count) in layout.offsets.iter().zip(&layout.byte_counts) {
            jpeg_probe::check_chunk(&bytes[offset as usize..(offset + count) as usize])?;
        }
    }
    if let Some(samples) = lzw::decode_strips(bytes, layout)? {
        return Ok(samples);
    }
    tiff_crate::decode(bytes, layout)
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
            strips.push(super::lzw::tests::encode(&raw));
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
