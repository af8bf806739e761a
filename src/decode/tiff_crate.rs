//! The `tiff` crate's decoder, for every compressed layout ctstack does not decode
//! itself, with its limits set from ctstack's so a large but legitimate slice is
//! not refused by the crate's 256 MiB default.
//!
//! The crate inverts MinIsWhite samples (`max - v`); ctstack serves them as stored,
//! so for integers the inversion is undone (`!v` is exactly `max - v`), and
//! MinIsWhite floats or signed samples, whose inversion is not undone exactly,
//! are refused.

use std::io::Cursor;

use tiff::decoder::{Decoder, DecodingResult};
use tiff::{ColorType, TiffError};

use crate::SampleType;
use crate::error::{Problem, format_problem};
use crate::sample::Samples;
use crate::tiff::{ImageLayout, Photometric};

/// Decodes IFD 0 of `bytes` (validated as `layout`, within the caller's budget).
pub(super) fn decode(bytes: &[u8], layout: &ImageLayout) -> Result<Samples, Problem> {
    let image_bytes = layout.image_bytes();
    // The crate allocates an ASCII tag's count in full and, when that is over its
    // limit, refuses through a stray `dbg!` (tiff 0.11.3, the newest release) that
    // prints to the user's terminal. A count beyond the file is the file's fault,
    // said here; any other fits the limit, which is raised to it (it is at most the
    // file's length, already in memory).
    if layout.largest_ascii > bytes.len() as u64 {
        return Err(format_problem!(
            "an ASCII tag claims {} bytes, more than the whole file ({} bytes)",
            layout.largest_ascii,
            bytes.len()
        ));
    }
    let budget = usize::try_from(image_bytes.saturating_mul(2))
        .unwrap_or(usize::MAX)
        .max(layout.largest_ascii as usize);
    let mut tiff_limits = tiff::decoder::Limits::default();
    tiff_limits.decoding_buffer_size = budget;
    tiff_limits.intermediate_buffer_size = budget;
    let mut decoder = Decoder::new(Cursor::new(bytes))
        .map_err(problem)?
        .with_limits(tiff_limits);
    let colortype = decoder.colortype().map_err(problem)?;
    let ty = layout.sample_type;
    if colortype != ColorType::Gray(ty.bits() as u8) {
        return Err(Problem::Unsupported(format!(
            "the tiff decoder reads this file as {colortype:?}, not {ty} grayscale"
        )));
    }
    let inverted = layout.photometric == Photometric::MinIsWhite;
    if inverted && !matches!(ty, SampleType::U8 | SampleType::U16) {
        // The crate serves MinIsWhite inverted (1.0 - v for floats: not exactly
        // undone), and ctstack serves samples as stored.
        return Err(Problem::Unsupported(format!(
            "min-is-white {ty} samples with {} compression",
            layout.compression.name()
        )));
    }
    let pixels = u64::from(layout.width) * u64::from(layout.height);
    let result = decoder.read_image().map_err(problem)?;
    let samples = match (result, ty) {
        (DecodingResult::U8(mut v), SampleType::U8) => {
            if inverted {
                v.iter_mut().for_each(|x| *x = !*x);
            }
            Samples::U8(v)
        }
        (DecodingResult::U16(mut v), SampleType::U16) => {
            if inverted {
                v.iter_mut().for_each(|x| *x = !*x);
            }
            Samples::U16(v)
        }
        (DecodingResult::I16(v), SampleType::I16) => Samples::I16(v),
        (DecodingResult::F32(v), SampleType::F32) => Samples::F32(v),
        _ => {
            return Err(Problem::Unsupported(
                "the tiff decoder returned another sample type than the file declares".into(),
            ));
        }
    };
    let got = samples.len() as u64;
    if got != pixels {
        return Err(format_problem!(
            "the tiff decoder returned {got} samples for a {}x{} image",
            layout.width,
            layout.height
        ));
    }
    Ok(samples)
}

/// Sorts a `tiff` crate error into ctstack's classes, by who is to blame: the
/// file (`Format`: malformed structure, corrupt or truncated data), the decoder's
/// reach (`Unsupported`: a feature it does not implement, or a request it cannot
/// serve), the budget (`Limits`). Layouts the decoder is known not to read are
/// refused before it runs (packed depths, FillOrder 2, unsupported JPEG frames,
/// unnamed compressions), so what reaches it is structurally valid TIFF.
fn problem(e: TiffError) -> Problem {
    match e {
        TiffError::FormatError(e) => format_problem!("{e}"),
        TiffError::UnsupportedError(e) => Problem::Unsupported(e.to_string()),
        TiffError::UsageError(e) => Problem::Unsupported(format!("the tiff decoder: {e}")),
        TiffError::LimitsExceeded => {
            Problem::Limits("the tiff decoder's buffer limit was exceeded".into())
        }
        TiffError::IntSizeError => {
            Problem::Limits("the image's sizes do not fit this platform's integers".into())
        }
        // The decoder reads from memory: an I/O error means the data ended early
        // or, for ZSTD, that the stream is corrupt.
        TiffError::IoError(e) => format_problem!("compressed data is truncated or corrupt: {e}"),
    }
}
