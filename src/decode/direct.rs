//! Deflate, ZSTD, PackBits and LZW chunks, decoded by ctstack straight into the
//! slice's buffer.
//!
//! The `tiff` crate decodes them correctly, but each chunk into a fresh `Vec`
//! that ctstack then copies, through a reader that copies the compressed bytes
//! too, and its Deflate was miniz_oxide's (libdeflate is what tifffile uses:
//! `Cargo.toml` says why it is used here). Here a strip inflates in place into
//! the rows it holds (a tile into a per-decoder buffer, then its columns are
//! copied), by libdeflate, ZSTD's single-pass decoder, a PackBits loop or
//! ctstack's LZW decoder ([`super::lzw`]); then the byte order and the horizontal predictor are undone
//! in one pass over the chunk. The chunks of a slice are decoded in parallel
//! by the caller (`crate::region`), one [`Direct`] per thread.
//!
//! Hostile data cannot make it write past the chunk or allocate beyond it: the
//! output is the chunk's own buffer, data that would decode to more is cut at
//! its end (libtiff and the `tiff` crate do the same), and data that ends early
//! or is corrupt is a format error naming what was decoded.

use flate2::{Decompress, FlushDecompress, Status};

use super::lzw;

use crate::Limits;
use crate::SampleType;
use crate::bytes::ByteOrder;
use crate::error::{Problem, format_problem};
use crate::sample::Sample;
use crate::tiff::{Chunks, Compression, ImageLayout, Photometric};

/// The most bytes one compressed byte can decode to, per codec (rounded up):
/// Deflate's longest match (258 bytes) in two bits is about 1032:1; an LZW code
/// of at least 9 bits emits at most 4096 bytes; a PackBits pair at most 128;
/// ZSTD as [`super::ZSTD_MAX_RATIO`].
fn max_ratio(compression: Compression) -> u64 {
    match compression {
        Compression::Deflate => 1100,
        Compression::Lzw => 4096,
        Compression::PackBits => 128,
        _ => super::ZSTD_MAX_RATIO,
    }
}

/// Whether this module decodes the chunks of `layout`: Deflate, ZSTD, PackBits
/// or new-style LZW (`first_chunk`: the first chunk's first bytes, which tell
/// the old style; every chunk is checked again as it is decoded, since a page
/// can mix them, and an old-style one refused); whole 8-, 16- or 32-bit samples with bits in their usual
/// order; no predictor, or (for integers) the horizontal one. MinIsWhite floats
/// stay with the `tiff` crate, which refuses them (ctstack serves samples as
/// stored).
pub(super) fn reads(layout: &ImageLayout, first_chunk: &[u8]) -> bool {
    let predictor_ok = match layout.sample_type {
        SampleType::F32 => layout.predictor == 1,
        _ => matches!(layout.predictor, 1 | 2),
    };
    let codec_ok = match layout.compression {
        Compression::Deflate | Compression::Zstd | Compression::PackBits => true,
        Compression::Lzw => !lzw::is_old_style(first_chunk),
        _ => false,
    };
    codec_ok
        && predictor_ok
        && !layout.is_packed()
        && !layout.bits_reversed
        && !(layout.sample_type == SampleType::F32 && layout.photometric == Photometric::MinIsWhite)
}

/// One thread's decoder state: the inflaters and ZSTD context (made on first
/// use, reset per chunk) and a tile's padded buffer.
#[derive(Default)]
pub(super) struct Direct {
    libdeflate: Option<libdeflater::Decompressor>,
    inflate: Option<Decompress>,
    zstd: Option<zstd::bulk::Decompressor<'static>>,
    /// Words, not bytes: a buffer of `u64` is aligned for every sample type, so
    /// its bytes can be viewed as samples without a copy.
    tile: Vec<u64>,
}

impl Direct {
    /// Decodes chunk `chunk` of `layout` from its compressed bytes `data` into
    /// `dst`, which holds the chunk's data (without a tile's padding) row-major,
    /// in the host's byte order, the predictor undone.
    pub fn decode_chunk<T: Sample>(
        &mut self,
        data: &[u8],
        layout: &ImageLayout,
        chunk: usize,
        dst: &mut [T],
        limits: &Limits,
    ) -> Result<(), Problem> {
        let padded_width = layout.chunk_columns() as usize;
        let (rows, cols) = layout.chunk_rect(chunk);
        let strip = matches!(layout.chunks, Chunks::Strips { .. });
        if strip {
            // A strip's data is its rows: decode in place.
            self.decode_bytes(data, layout.compression, bytemuck::cast_slice_mut(dst))?;
            finish(layout, dst, padded_width);
            return Ok(());
        }
        // A tile is decoded padding and all (the predictor runs over padded rows),
        // as far as its last row in the image (the rest is cut), then its columns
        // copied. Its buffer is bounded before it is made: a forged tile width
        // cannot make it larger than its data can inflate to, or than the limits.
        let bytes = (padded_width as u64)
            .saturating_mul(rows.len() as u64)
            .saturating_mul(std::mem::size_of::<T>() as u64);
        let can_hold = (data.len() as u64 + 1).saturating_mul(max_ratio(layout.compression));
        if bytes > can_hold {
            return Err(format_problem!(
                "tile {chunk}: {} compressed bytes cannot hold its {bytes} bytes of rows \
                 ({} padded samples wide)",
                data.len(),
                padded_width
            ));
        }
        if bytes > limits.max_decoded_bytes {
            return Err(Problem::Limits(format!(
                "tile {chunk} needs a {bytes}-byte buffer, more than the limit of {}",
                limits.max_decoded_bytes
            )));
        }
        let bytes = bytes as usize;
        let mut tile = std::mem::take(&mut self.tile);
        tile.clear();
        tile.resize(bytes.div_ceil(8), 0);
        let raw = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut tile)[..bytes];
        let result = self
            .decode_bytes(data, layout.compression, raw)
            .and_then(|()| {
                // Aligned (a u64 buffer) and a whole number of samples (`bytes` is
                // rows x padded width x the sample's size): the view cannot fail,
                // and if it did it would be an error, not a panic.
                let padded: &mut [T] = bytemuck::try_cast_slice_mut(raw).map_err(|e| {
                    format_problem!("tile {chunk}: its buffer is not a slice of samples: {e}")
                })?;
                finish(layout, padded, padded_width);
                let width = cols.len();
                for (row, out) in dst.chunks_exact_mut(width).take(rows.len()).enumerate() {
                    out.copy_from_slice(&padded[row * padded_width..row * padded_width + width]);
                }
                Ok(())
            });
        self.tile = tile;
        result
    }

    /// Decodes `data` into `out`, which must be filled; more data is cut off.
    fn decode_bytes(
        &mut self,
        data: &[u8],
        compression: Compression,
        out: &mut [u8],
    ) -> Result<(), Problem> {
        let written = match compression {
            Compression::Deflate => {
                let libdeflate = self
                    .libdeflate
                    .get_or_insert_with(libdeflater::Decompressor::new);
                match libdeflate.zlib_decompress(data, out) {
                    Ok(n) => n,
                    // More data than the chunk holds (libdeflate refuses to cut):
                    // inflate again as a stream, cut at the end.
                    Err(libdeflater::DecompressionError::InsufficientSpace) => {
                        let inflate = self.inflate.get_or_insert_with(|| Decompress::new(true));
                        inflate.reset(true);
                        inflate_into(inflate, data, out)?
                    }
                    Err(libdeflater::DecompressionError::BadData) => {
                        return Err(format_problem!(
                            "Deflate data is corrupt or truncated (not a zlib stream, a bad \
                             code or checksum)"
                        ));
                    }
                }
            }
            Compression::Zstd => {
                let zstd = match &mut self.zstd {
                    Some(z) => z,
                    None => self.zstd.insert(
                        zstd::bulk::Decompressor::new()
                            .map_err(|e| format_problem!("cannot start a ZSTD decoder: {e}"))?,
                    ),
                };
                match zstd.decompress_to_buffer(data, out) {
                    Ok(n) => n,
                    // More data than the chunk holds (the single-pass decoder
                    // refuses to cut): decode again as a stream, cut at the end.
                    Err(_) => zstd_stream_into(data, out)?,
                }
            }
            Compression::PackBits => unpack_bits(data, out),
            Compression::Lzw => {
                lzw::decode(data, out)?;
                out.len()
            }
            other => {
                return Err(Problem::Unsupported(format!(
                    "{} chunks in ctstack's own decoder",
                    other.name()
                )));
            }
        };
        if written < out.len() {
            return Err(format_problem!(
                "{} data ends after {written} of the chunk's {} bytes",
                compression.name(),
                out.len()
            ));
        }
        Ok(())
    }
}

/// Inflates the zlib stream `data` into `out`; the bytes written.
fn inflate_into(inflate: &mut Decompress, data: &[u8], out: &mut [u8]) -> Result<usize, Problem> {
    loop {
        let (read, written) = (inflate.total_in() as usize, inflate.total_out() as usize);
        if written == out.len() {
            return Ok(written);
        }
        let status = inflate
            .decompress(&data[read..], &mut out[written..], FlushDecompress::Finish)
            .map_err(|e| format_problem!("Deflate data is corrupt: {e}"))?;
        let progress = inflate.total_in() as usize > read || inflate.total_out() as usize > written;
        match status {
            Status::StreamEnd => return Ok(inflate.total_out() as usize),
            Status::Ok | Status::BufError if progress => continue,
            _ => return Ok(inflate.total_out() as usize),
        }
    }
}

/// Decodes the ZSTD stream `data` into `out` as a stream, cut at `out`'s end;
/// the bytes written. The window is capped at what `out` can need (at least
/// 8 MiB), so a forged frame header cannot make it allocate more.
fn zstd_stream_into(data: &[u8], out: &mut [u8]) -> Result<usize, Problem> {
    use zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};
    let corrupt = |e: std::io::Error| format_problem!("ZSTD data is corrupt: {e}");
    let mut decoder = Decoder::new().map_err(corrupt)?;
    let window_log = (usize::BITS - out.len().saturating_sub(1).leading_zeros()).clamp(23, 31);
    decoder
        .set_parameter(zstd::stream::raw::DParameter::WindowLogMax(window_log))
        .map_err(corrupt)?;
    let mut input = InBuffer::around(data);
    let mut output = OutBuffer::around(out);
    while output.pos() < output.capacity() {
        let before = (input.pos(), output.pos());
        let hint = decoder.run(&mut input, &mut output).map_err(corrupt)?;
        if hint == 0 && input.pos() == data.len() || before == (input.pos(), output.pos()) {
            break;
        }
    }
    Ok(output.pos())
}

/// PackBits (Apple's run-length code): a header byte n, then n + 1 literal
/// bytes (n >= 0) or one byte repeated 1 - n times (n < 0; -128 is skipped).
/// Decodes into `out`, cut at its end; the bytes written.
pub(super) fn unpack_bits(data: &[u8], out: &mut [u8]) -> usize {
    let (mut i, mut o) = (0usize, 0usize);
    while i < data.len() && o < out.len() {
        let n = data[i] as i8;
        i += 1;
        if n >= 0 {
            let len = (n as usize + 1).min(data.len() - i).min(out.len() - o);
            out[o..o + len].copy_from_slice(&data[i..i + len]);
            i += n as usize + 1;
            o += len;
            if len < n as usize + 1 && o < out.len() {
                // The literal run breaks off with the data.
                break;
            }
        } else if n != -128 {
            let Some(&byte) = data.get(i) else { break };
            i += 1;
            let len = (1 - n as isize) as usize;
            let len = len.min(out.len() - o);
            out[o..o + len].fill(byte);
            o += len;
        }
    }
    o
}

/// Puts a decoded chunk (rows of `row_len` samples) in the host's byte order
/// and undoes the horizontal predictor, one pass per row.
pub(super) fn finish<T: Sample>(layout: &ImageLayout, samples: &mut [T], row_len: usize) {
    let swap = layout.order != ByteOrder::host();
    let horizontal = layout.predictor == 2;
    match T::TYPE.bytes() {
        1 => {
            if horizontal {
                undo_horizontal(bytemuck::cast_slice_mut::<T, u8>(samples), row_len, |v| v);
            }
        }
        2 => {
            // Differencing modulo 2^16 is the same for u16 and i16.
            let words = bytemuck::cast_slice_mut::<T, u16>(samples);
            match (swap, horizontal) {
                (false, false) => {}
                (true, false) => words.iter_mut().for_each(|v| *v = v.swap_bytes()),
                (false, true) => undo_horizontal(words, row_len, |v| v),
                (true, true) => undo_horizontal(words, row_len, u16::swap_bytes),
            }
        }
        _ => {
            // 32-bit floats: `reads` takes them only without a predictor.
            if swap {
                let words = bytemuck::cast_slice_mut::<T, u32>(samples);
                words.iter_mut().for_each(|v| *v = v.swap_bytes());
            }
        }
    }
}

/// Undoes horizontal differencing (Predictor 2) over rows of `row_len`
/// samples, each first converted by `load` (a byte swap, or nothing): each
/// sample was stored minus its left neighbour, modulo the sample's range.
#[inline]
pub(super) fn undo_horizontal<W: Copy + WrappingAdd>(
    samples: &mut [W],
    row_len: usize,
    load: impl Fn(W) -> W,
) {
    if row_len == 0 {
        return;
    }
    for row in samples.chunks_exact_mut(row_len) {
        let mut left = load(row[0]);
        row[0] = left;
        for v in &mut row[1..] {
            left = load(*v).wrapping_add(left);
            *v = left;
        }
    }
}

/// Addition modulo the type's range.
pub(super) trait WrappingAdd {
    fn wrapping_add(self, other: Self) -> Self;
}

impl WrappingAdd for u8 {
    fn wrapping_add(self, other: u8) -> u8 {
        u8::wrapping_add(self, other)
    }
}

impl WrappingAdd for u16 {
    fn wrapping_add(self, other: u16) -> u16 {
        u16::wrapping_add(self, other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packbits_runs_literals_and_cuts() {
        // Apple's example: literals, a run, the -128 no-op.
        let data = [
            0xFE, 0xAA, 0x02, 0x80, 0x00, 0x2A, 0xFD, 0xAA, 0x03, 0x80, 0x00, 0x2A, 0x22, 0xF7,
            0xAA,
        ];
        let want = [
            0xAA, 0xAA, 0xAA, 0x80, 0x00, 0x2A, 0xAA, 0xAA, 0xAA, 0xAA, 0x80, 0x00, 0x2A, 0x22,
            0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA,
        ];
        let mut out = [0u8; 24];
        assert_eq!(unpack_bits(&data, &mut out), 24);
        assert_eq!(out, want);
        let mut short = [0u8; 5];
        assert_eq!(unpack_bits(&data, &mut short), 5);
        assert_eq!(short, want[..5]);
        let mut long = [0u8; 30];
        assert_eq!(unpack_bits(&data, &mut long), 24);
        // Broken off: a literal run past the data, a repeat without its byte.
        assert_eq!(unpack_bits(&[0x05, 1, 2], &mut long), 2);
        assert_eq!(unpack_bits(&[0xFD], &mut long), 0);
        assert_eq!(unpack_bits(&[0x80; 10], &mut long), 0);
    }

    #[test]
    fn hostile_deflate_and_zstd_are_errors_not_panics() {
        let mut direct = Direct::default();
        let mut out = vec![0u8; 4096];
        for data in [
            &[][..],
            &[0x78, 0x9C],
            &[0xFF; 64],
            &[0x78, 0x9C, 0xFF, 0xFF, 0xFF],
        ] {
            assert!(
                direct
                    .decode_bytes(data, Compression::Deflate, &mut out)
                    .is_err()
            );
            assert!(
                direct
                    .decode_bytes(data, Compression::Zstd, &mut out)
                    .is_err()
            );
        }
        // A valid stream of more bytes than the chunk holds is cut; fewer is an error.
        let big: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let z = zstd::bulk::compress(&big, 3).unwrap();
        let mut d = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut d, &big).unwrap();
        let d = d.finish().unwrap();
        for (data, c) in [(&z, Compression::Zstd), (&d, Compression::Deflate)] {
            let mut cut = vec![0u8; 4096];
            direct.decode_bytes(data, c, &mut cut).unwrap();
            assert_eq!(cut, big[..4096]);
            let mut exact = vec![0u8; big.len()];
            direct.decode_bytes(data, c, &mut exact).unwrap();
            assert_eq!(exact, big);
            let mut long = vec![0u8; big.len() + 1];
            let e = direct.decode_bytes(data, c, &mut long).unwrap_err();
            assert!(format!("{e:?}").contains("ends after 10000 of"), "{e:?}");
            // Truncated data.
            let half = &data[..data.len() / 2];
            assert!(direct.decode_bytes(half, c, &mut exact).is_err());
        }
    }

    #[test]
    fn horizontal_predictor_with_and_without_swap() {
        let plain: Vec<u16> = vec![5, 65535, 3, 9, 100, 1];
        let mut stored: Vec<u16> = Vec::new();
        for row in plain.chunks(3) {
            let mut left = 0u16;
            for &v in row {
                stored.push(v.wrapping_sub(left));
                left = v;
            }
        }
        let mut a = stored.clone();
        undo_horizontal(&mut a, 3, |v| v);
        assert_eq!(a, plain);
        let mut b: Vec<u16> = stored.iter().map(|v| v.swap_bytes()).collect();
        undo_horizontal(&mut b, 3, u16::swap_bytes);
        assert_eq!(b, plain);
    }
}
