//! What kind of JPEG a chunk holds, read from its frame header, so that JPEG
//! variants the `tiff` crate's decoder (zune-jpeg) does not read are refused as
//! Unsupported before decoding, instead of failing inside it with a message that
//! blames the file ("Bad Huffman Table" for valid lossless JPEG).

use crate::error::Problem;

/// Checks the frame (SOF) header of one JPEG chunk: baseline, extended or
/// progressive Huffman, 8-bit precision. A chunk without a frame header before
/// its scan is left to the decoder (which reports what is wrong with it).
pub(super) fn check_chunk(data: &[u8]) -> Result<(), Problem> {
    if data.get(..2) != Some(&[0xFF, 0xD8]) {
        return Ok(());
    }
    let mut at = 2usize;
    // Each step moves past a marker and its segment: at most data.len() / 2 steps.
    while let Some(&[0xFF, marker]) = data.get(at..at + 2) {
        if marker == 0xFF {
            at += 1; // fill byte
            continue;
        }
        match marker {
            0xC0..=0xC2 => {
                let precision = data.get(at + 4).copied();
                return match precision {
                    Some(8) | None => Ok(()),
                    Some(p) => Err(Problem::Unsupported(format!(
                        "{p}-bit JPEG (the decoder reads 8-bit JPEG only)"
                    ))),
                };
            }
            0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                return Err(Problem::Unsupported(format!(
                    "{} JPEG (the decoder reads baseline, extended and progressive \
                     Huffman JPEG only)",
                    frame_name(marker)
                )));
            }
            0xDA | 0xD9 => return Ok(()), // scan or end before any frame header
            0x01 | 0xD0..=0xD7 => at += 2, // markers without a length
            _ => {
                let Some(&[hi, lo]) = data.get(at + 2..at + 4) else {
                    return Ok(());
                };
                at += 2 + usize::from(u16::from_be_bytes([hi, lo]));
            }
        }
    }
    Ok(())
}

fn frame_name(marker: u8) -> &'static str {
    match marker {
        0xC3 => "lossless",
        0xC5 => "differential sequential",
        0xC6 => "differential progressive",
        0xC7 => "differential lossless",
        0xC9 => "arithmetic-coded extended",
        0xCA => "arithmetic-coded progressive",
        0xCB => "arithmetic-coded lossless",
        0xCD => "arithmetic-coded differential sequential",
        0xCE => "arithmetic-coded differential progressive",
        _ => "arithmetic-coded differential lossless",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SOI, an APP0 segment, then a frame header of the given marker and precision.
    fn stream(sof: u8, precision: u8) -> Vec<u8> {
        let mut v = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 4, b'J', b'F'];
        v.extend_from_slice(&[0xFF, 0xFF, sof, 0, 11, precision, 0, 8, 0, 8, 1, 1, 0x11, 0]);
        v
    }

    #[test]
    fn frames_are_sorted_by_what_the_decoder_reads() {
        assert!(check_chunk(&stream(0xC0, 8)).is_ok());
        assert!(check_chunk(&stream(0xC2, 8)).is_ok());
        let lossless = check_chunk(&stream(0xC3, 16)).unwrap_err();
        assert!(matches!(&lossless, Problem::Unsupported(m) if m.contains("lossless JPEG")));
        let twelve = check_chunk(&stream(0xC1, 12)).unwrap_err();
        assert!(matches!(&twelve, Problem::Unsupported(m) if m.contains("12-bit JPEG")));
        assert!(check_chunk(&stream(0xC9, 8)).is_err());
    }

    #[test]
    fn truncated_or_foreign_data_is_left_to_the_decoder() {
        let full = stream(0xC3, 8);
        // The SOF3 marker ends at byte 11: before it, nothing to judge; from it on,
        // the marker alone says lossless.
        for n in 0..full.len() {
            assert_eq!(check_chunk(&full[..n]).is_ok(), n < 11, "{n} bytes");
        }
        assert!(check_chunk(b"not a jpeg").is_ok());
        assert!(check_chunk(&[0xFF, 0xD8, 0xFF, 0xE0, 0xFF, 0xFF]).is_ok());
    }
}
