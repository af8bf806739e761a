//! The `tiff` crate's decoder, for every compressed layout ctstack does not decode
//! itself, with its limits set from ctstack's so a large but legitimate slice is
//! not refused by the crate's 256 MiB default.
//!
//! The crate inverts MinIsWhite samples (`max - v`); ctstack serves them as stored,
//! so for integers the inversion is undone (`!v` is exactly `max - v`), and
//! MinIsWhite floats or signed samples, whose inversion is not undone exactly,
//! are refused.

use tiff::decoder::{Decoder, DecodingResult};
use tiff::{ColorType, TiffError};

use crate::SampleType;
use crate::error::{Problem, format_problem};
use crate::sample::Sample;
use crate::source::PositionalReader;
use crate::tiff::{ImageLayout, Photometric};

/// The `tiff` crate's decoder, at one page, checked to read it as `layout` says.
pub(super) struct TiffCrate<'a> {
    decoder: Decoder<PositionalReader<'a>>,
    inverted: bool,
}

impl<'a> TiffCrate<'a> {
    /// A decoder of page `index` (in chain order) of the file read through
    /// `reader`, validated as `layout` (within the caller's budget, its ASCII
    /// tags within the file): the crate's IFD must be the one ctstack parsed.
    pub fn new(
        reader: PositionalReader<'a>,
        (index, ifd_offset): (usize, u64),
        layout: &ImageLayout,
    ) -> Result<TiffCrate<'a>, Problem> {
        let budget = usize::try_from(decoder_budget(layout)).unwrap_or(usize::MAX);
        let mut tiff_limits = tiff::decoder::Limits::default();
        tiff_limits.decoding_buffer_size = budget;
        tiff_limits.intermediate_buffer_size = budget;
        let mut decoder = Decoder::new(reader)
            .map_err(problem)?
            .with_limits(tiff_limits);
        if index > 0 {
            decoder.seek_to_image(index).map_err(problem)?;
        }
        if decoder.ifd_pointer().map(|p| p.0) != Some(ifd_offset) {
            return Err(format_problem!(
                "the tiff decoder finds page {index} at another IFD than offset {ifd_offset}"
            ));
        }
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
        Ok(TiffCrate { decoder, inverted })
    }

    /// Decodes chunk `index` into `dst`, which holds its data (the chunk
    /// without its padding) row-major.
    pub fn decode_chunk<T: Sample>(&mut self, index: usize, dst: &mut [T]) -> Result<(), Problem> {
        let chunk = u32::try_from(index)
            .map_err(|_| format_problem!("chunk {index} is past what TIFF can index"))?;
        let result = self.decoder.read_chunk(chunk).map_err(problem)?;
        let got = match result {
            DecodingResult::U8(v) => self.put(v, dst, |x: &mut u8| *x = !*x),
            DecodingResult::U16(v) => self.put(v, dst, |x: &mut u16| *x = !*x),
            DecodingResult::I16(v) => self.put(v, dst, |_: &mut i16| {}),
            DecodingResult::F32(v) => self.put(v, dst, |_: &mut f32| {}),
            _ => None,
        };
        match got {
            Some(n) if n == dst.len() => Ok(()),
            Some(n) => Err(format_problem!(
                "the tiff decoder returned {n} samples for chunk {index}, which holds {}",
                dst.len()
            )),
            None => Err(Problem::Unsupported(
                "the tiff decoder returned another sample type than the file declares".into(),
            )),
        }
    }

    /// Copies `v` into `dst` if it holds `T` samples and is as long, undoing
    /// the crate's inversion of MinIsWhite integers (`!v` is exactly `max - v`);
    /// the number of samples decoded, or `None` for another sample type.
    fn put<T: Sample, U: Sample>(
        &self,
        mut v: Vec<U>,
        dst: &mut [T],
        invert: impl Fn(&mut U),
    ) -> Option<usize> {
        if U::TYPE != T::TYPE {
            return None;
        }
        if self.inverted {
            v.iter_mut().for_each(invert);
        }
        if v.len() == dst.len() {
            // The same type: the cast cannot fail.
            let dst: &mut [U] = bytemuck::try_cast_slice_mut(dst).ok()?;
            dst.copy_from_slice(&v);
        }
        Some(v.len())
    }
}

/// The largest buffer the `tiff` crate may allocate for `layout`: what the file's
/// own contents need, so that no valid file, however small, is refused, while a
/// forged claim (a chunk or tag larger than the file) still cannot make it
/// allocate more than twice the image (itself within [`crate::Limits`]) or a
/// fixed multiple of the bytes really in the file. The largest of:
/// - twice the image's decoded bytes (the crate's result and working buffers);
/// - the largest chunk decoded, with a tile's padding (a tile of a tiny image is
///   larger than the image);
/// - the largest chunk's compressed bytes, which the crate reads whole (a few
///   compressed pixels take more bytes than they decode to: Deflate's header and
///   checksum alone are 6);
/// - the largest tag it may read, at one `tiff::decoder::ifd::Value` per element
///   (entries that claim more than the file holds do not count);
/// - the largest ASCII tag, which it reads whole (checked to be within the file).
fn decoder_budget(layout: &ImageLayout) -> u64 {
    // The first chunk is the largest: strips lose rows only at the end, tiles are alike.
    let largest_chunk = if layout.offsets.is_empty() {
        0
    } else {
        layout.raw_chunk_bytes(0)
    };
    let largest_compressed = layout.byte_counts.iter().copied().max().unwrap_or(0);
    let value = std::mem::size_of::<tiff::decoder::ifd::Value>() as u64;
    [
        layout.image_bytes().saturating_mul(2),
        largest_chunk,
        largest_compressed,
        layout.largest_count.saturating_mul(value),
        layout.largest_ascii,
    ]
    .into_iter()
    .max()
    .unwrap_or(0)
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
        // The file was checked to hold every chunk: an I/O error means the data
        // ended early, that the stream is corrupt (ZSTD) or the file shrank.
        TiffError::IoError(e) => format_problem!("compressed data is truncated or corrupt: {e}"),
    }
}
