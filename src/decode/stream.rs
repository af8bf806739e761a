//! A compressed, strip-organised TIFF page read in bands of rows, top to
//! bottom, each strip decoded once however many bands it spans.
//!
//! A page whose strips are taller than the bands read from it (tifffile with
//! `rowsperstrip` the height, ImageJ, Pillow: the whole page in one strip) would
//! otherwise be decoded again for every band that meets a strip, from the
//! strip's start, into a buffer of the whole strip. Here one [`StripRows`] per
//! open page keeps the decoder of the strip being read between the bands: its
//! state (Deflate's 32 KiB window, a ZSTD frame's window, LZW's code table,
//! PackBits' pending run), a block of compressed bytes and where the next row
//! starts. A band's rows are decoded straight into the caller's rows, the byte
//! order and the horizontal predictor undone row by row ([`super::direct`]'s
//! `finish`), so the memory is the decoder's state, not the strip.
//!
//! Deflate streams through flate2 (libdeflate, the whole-chunk decoder, cannot
//! stop mid-stream), ZSTD through its streaming decoder with the window capped
//! as [`super::direct`] caps it, LZW through `weezl` (the `tiff` crate's LZW
//! decoder: ctstack's own [`super::lzw`] keeps the table as offsets into the
//! whole chunk's output, so it cannot stop and resume), PackBits through a small
//! resumable loop. The hostile-input rules are the whole-chunk decoder's: output
//! only into the caller's rows (more data than the strip holds is never asked
//! for), data that ends early or is corrupt a format error naming the strip,
//! old-style LZW refused (the `tiff` crate reads it, whole), the page checked
//! against the compression ratio limit before anything is decoded.
//!
//! Rows asked for out of order are served too (the strip is decoded again from
//! its start): correct whatever the order, once per strip in the order the
//! OME-Zarr writer asks (`crate::zarr`).

use std::ops::Range;
use std::path::Path;

use flate2::{Decompress, FlushDecompress, Status};

use super::{chunk_len, direct, lzw};
use crate::error::{Problem, format_problem};
use crate::region::Page;
use crate::sample::Sample;
use crate::source::FileStamp;
use crate::tiff::{Chunks, Compression};
use crate::{Error, Limits};

/// Compressed bytes read from the file at a time (each read once).
const READ_BLOCK: usize = 64 << 10;

/// The largest ZSTD window (log2) a strip read in bands may use: 8 MiB, the
/// window of zstd's levels up to 19. Each open page keeps its window between
/// bands, and many pages are open at once, so a page whose first frame asks
/// for more is read chunk by chunk instead ([`StripRows::start`]). A page is
/// given the window its first frame asks for (rounded up to a power of two;
/// tifffile's level 5 asks 2 MiB for a whole 2752^2 slice) and reserves only
/// that ([`StripRows::most_bytes`]); a later strip asking for more is read
/// chunk by chunk from there on, and a later frame inside one strip that asks
/// for more is refused by the decoder (a format error).
const ZSTD_WINDOW_LOG: u32 = 23;

/// The smallest window (log2) the ZSTD decoder takes (`ZSTD_WINDOWLOG_ABSOLUTEMIN`).
const ZSTD_WINDOW_LOG_MIN: u32 = 10;

/// The window (log2) a page's ZSTD decoder is given for a frame asking `window`.
fn window_log(window: u64) -> u32 {
    (u64::BITS - window.saturating_sub(1).leading_zeros()).max(ZSTD_WINDOW_LOG_MIN)
}

/// The window a ZSTD frame starting `data` asks for (RFC 8878, 3.1.1.1), or
/// `None` if `data` does not start with a whole frame header.
fn zstd_window(data: &[u8]) -> Option<u64> {
    let (magic, rest) = data.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*magic) != 0xFD2F_B528 {
        return None;
    }
    let (&descriptor, rest) = rest.split_first()?;
    let single_segment = descriptor & 0x20 != 0;
    if !single_segment {
        let &window = rest.first()?;
        let log = 10 + u64::from(window >> 3);
        let base = 1u64 << log;
        return Some(base + (base / 8) * u64::from(window & 7));
    }
    // A single segment's window is its content size, after the dictionary id.
    let id_bytes = [0, 1, 2, 4][usize::from(descriptor & 3)];
    let size = rest.get(id_bytes..)?;
    match descriptor >> 6 {
        0 => size.first().map(|&b| u64::from(b)),
        1 => size
            .first_chunk::<2>()
            .map(|b| u64::from(u16::from_le_bytes(*b)) + 256),
        2 => size
            .first_chunk::<4>()
            .map(|b| u64::from(u32::from_le_bytes(*b))),
        _ => size.first_chunk::<8>().map(|b| u64::from_le_bytes(*b)),
    }
}

/// Whether rows `rows` of `page` are better read by a [`StripRows`] than
/// chunk by chunk: a compressed page in strips the direct decoder reads, whose
/// rows end inside a strip (so the next band would decode that strip again).
/// `Some` with the window (log2) its ZSTD decoder needs (0 for other codecs).
fn streams(page: &Page<'_>, rows: &Range<u32>) -> Result<Option<u32>, Error> {
    let layout = page.layout;
    let Chunks::Strips { rows_per_strip } = layout.chunks else {
        return Ok(None);
    };
    if layout.is_raw()
        || rows.end >= layout.height
        || rows.end.is_multiple_of(rows_per_strip.max(1))
    {
        return Ok(None);
    }
    let strip = (rows.end / rows_per_strip.max(1)) as usize;
    let (Some(&offset), Some(&count)) = (layout.offsets.get(strip), layout.byte_counts.get(strip))
    else {
        return Ok(None);
    };
    // Two bytes tell the LZW code style; a ZSTD frame's header its window.
    let first = page.bytes.with_range(
        page.path,
        (offset, count.min(18) as usize),
        &mut Vec::new(),
        <[u8]>::to_vec,
    )?;
    let window = match layout.compression {
        Compression::Zstd => match zstd_window(&first).map(window_log) {
            Some(log) if log <= ZSTD_WINDOW_LOG => log,
            _ => return Ok(None),
        },
        _ => 0,
    };
    let reads = direct::reads(layout, &first) && layout.largest_ascii <= page.bytes.len();
    Ok(reads.then_some(window))
}

/// One page read in bands: the strip being decoded, kept between the bands.
pub(crate) struct StripRows {
    /// The file's stamp when the first band was read: a later band of a file
    /// rewritten since is an error, not a stream continued in another file.
    stamp: FileStamp,
    /// The window (log2) its ZSTD decoders are given (0 for other codecs).
    window_log: u32,
    strip: Option<Strip>,
}

/// The decoder of one strip, part way through.
struct Strip {
    index: usize,
    /// The page row the decoder gives next.
    next_row: u32,
    codec: Codec,
    /// Compressed bytes read and not yet consumed: `buffer[pos..len]`.
    buffer: Vec<u8>,
    pos: usize,
    len: usize,
    /// The next byte of the file to read, and the strip's end.
    at: u64,
    end: u64,
    /// Bytes decoded, for messages.
    made: u64,
    /// Whether the codec's last step ended its stream (a ZSTD frame: decoded
    /// and its checksum checked).
    ended: bool,
    /// The bytes the strip holds decoded.
    size: u64,
}

enum Codec {
    Deflate(Box<Decompress>),
    Zstd(Box<zstd::stream::raw::Decoder<'static>>),
    Lzw(Box<Lzw>),
    PackBits(PackBits),
}

/// LZW through `weezl`, and a bad code it met ahead of the bytes asked for.
///
/// `weezl` reads codes ahead of the output it was given and reports a bad one
/// in the call that fills that output. ctstack's whole-chunk decoder (and
/// libtiff) stop at the last byte asked for and never see such a code: the
/// bytes made are given, the error kept for the next call, so that both
/// decoders agree on every stream (`the_two_lzw_decoders_agree`).
/// [`Lzw::step`] also hides `weezl`'s idle calls (see there).
struct Lzw {
    decoder: weezl::decode::Decoder,
    failed: Option<weezl::LzwError>,
}

/// PackBits between two calls: literal bytes still to copy, or a run still to write.
#[derive(Default)]
struct PackBits {
    literal: usize,
    run: Option<(u8, usize)>,
}

impl StripRows {
    /// Starts reading `page` in bands (its file's stamp `stamp`) if rows
    /// `rows`, its first band, are better read so: a compressed page in strips
    /// the direct decoder reads, whose band ends inside a strip (else `None`:
    /// read it chunk by chunk). Checks the page against the compression ratio
    /// limit first, as the whole-chunk decoder does.
    pub fn start(
        page: &Page<'_>,
        rows: &Range<u32>,
        stamp: FileStamp,
        limits: &Limits,
    ) -> Result<Option<StripRows>, Error> {
        let Some(window_log) = streams(page, rows)? else {
            return Ok(None);
        };
        super::check_ratio((page.path, page.index), page.layout, page.bytes, limits)?;
        Ok(Some(StripRows {
            stamp,
            window_log,
            strip: None,
        }))
    }

    /// The most bytes this reader holds between bands: its block of
    /// compressed bytes and its decoder's state (with room: flate2's inflate
    /// state is about 43 KiB, weezl's LZW table about 20 KiB, a ZSTD context
    /// about 160 KiB plus its block buffer of 128 KiB and the window its first
    /// frame asked for, at most 2^[`ZSTD_WINDOW_LOG`]).
    pub fn most_bytes(&self) -> u64 {
        let state: u64 = match self.window_log {
            0 => 128 << 10,
            log => (1 << log) + (512 << 10),
        };
        READ_BLOCK as u64 + state
    }

    /// An error unless the file is the one the first band was read from.
    pub fn check_stamp(&self, path: &Path, stamp: FileStamp) -> Result<(), Error> {
        if stamp == self.stamp {
            Ok(())
        } else {
            Err(crate::source::changed_while_read(path))
        }
    }

    /// Reads whole rows `rows` of `page` into `dst` (`rows.len()` rows of the
    /// page's width), continuing the strip being decoded when the rows follow
    /// on from the last band's. `false` when a strip's ZSTD frame asks for a
    /// larger window than this reader was given ([`Self::most_bytes`]):
    /// nothing is kept then, and these rows and the page's later bands must be
    /// read another way (chunk by chunk).
    ///
    /// A read that fails drops the strip's decoder, which may have stopped
    /// anywhere in the band: the next read starts the strip again (a failure
    /// that lasts is then met again, the same error).
    pub fn read<T: Sample>(
        &mut self,
        page: &Page<'_>,
        rows: Range<u32>,
        dst: &mut [T],
        limits: &Limits,
    ) -> Result<bool, Error> {
        let result = self.read_rows(page, rows, dst, limits);
        if result.is_err() {
            self.strip = None;
        }
        result
    }

    fn read_rows<T: Sample>(
        &mut self,
        page: &Page<'_>,
        rows: Range<u32>,
        dst: &mut [T],
        limits: &Limits,
    ) -> Result<bool, Error> {
        let layout = page.layout;
        let at = |p: Problem| p.on_page(page.index).at(page.path);
        let width = layout.width as usize;
        if rows.end > layout.height || dst.len() != rows.len() * width {
            return Err(Error::mismatch_at(
                page.path,
                format!(
                    "rows {}..{} into {} samples, the page is {}x{}",
                    rows.start,
                    rows.end,
                    dst.len(),
                    layout.width,
                    layout.height
                ),
            ));
        }
        let rps = layout.band_rows().max(1);
        let mut y = rows.start;
        while y < rows.end {
            let index = (y / rps) as usize;
            let (strip_rows, _) = layout.chunk_rect(index);
            let ys = y..strip_rows.end.min(rows.end);
            let current = self
                .strip
                .as_ref()
                .is_some_and(|s| s.index == index && s.next_row <= ys.start);
            if !current {
                self.strip = None;
                self.strip = match Strip::open(page, index, self.window_log, limits) {
                    Ok(strip) => Some(strip),
                    Err(Opened::Wider) => return Ok(false),
                    Err(e) => return Err(e.into_error(&at)),
                };
            }
            let Some(strip) = self.strip.as_mut() else {
                unreachable!("a strip was just opened")
            };
            let row_bytes = layout.row_bytes() as usize;
            // Rows of the strip before the band (asked for out of order): decoded, dropped.
            if strip.next_row < ys.start {
                let mut skip = vec![0u8; row_bytes];
                while strip.next_row < ys.start {
                    strip.fill(page, &mut skip).map_err(|e| e.into_error(&at))?;
                    strip.next_row += 1;
                }
            }
            let from = (ys.start - rows.start) as usize * width;
            let out = &mut dst[from..from + ys.len() * width];
            strip
                .fill(page, bytemuck::cast_slice_mut(out))
                .map_err(|e| e.into_error(&at))?;
            direct::finish(layout, out, width);
            strip.next_row = ys.end;
            if ys.end == strip_rows.end {
                strip.end_check(page).map_err(|e| e.into_error(&at))?;
                self.strip = None;
            }
            y = ys.end;
        }
        Ok(true)
    }
}

/// What opening or filling a strip can fail with: the data's fault, or the
/// file's; or, opening it, a ZSTD frame asking for a larger window than the
/// reader was given (not a fault: the strip is read another way).
enum Opened {
    Problem(Problem),
    Error(Error),
    Wider,
}

impl Opened {
    fn into_error(self, at: &impl Fn(Problem) -> Error) -> Error {
        match self {
            Opened::Problem(p) => at(p),
            Opened::Error(e) => e,
            Opened::Wider => at(format_problem!(
                "a ZSTD frame asks for a larger window than its strip was given"
            )),
        }
    }
}

impl From<Problem> for Opened {
    fn from(p: Problem) -> Opened {
        Opened::Problem(p)
    }
}

impl From<Error> for Opened {
    fn from(e: Error) -> Opened {
        Opened::Error(e)
    }
}

impl Strip {
    /// Opens strip `index`, a ZSTD decoder given a window of 2^`allowed_log`.
    fn open(
        page: &Page<'_>,
        index: usize,
        allowed_log: u32,
        limits: &Limits,
    ) -> Result<Strip, Opened> {
        let layout = page.layout;
        let (offset, count) = (layout.offsets[index], layout.byte_counts[index]);
        chunk_len(count, limits)?;
        let size = layout.raw_chunk_bytes(index);
        let corrupt = |what: &str, e: std::io::Error| format_problem!("{what}: {e}");
        let codec = match layout.compression {
            Compression::Deflate => Codec::Deflate(Box::new(Decompress::new(true))),
            Compression::Zstd => {
                let mut decoder = zstd::stream::raw::Decoder::new()
                    .map_err(|e| corrupt("cannot start a ZSTD decoder", e))?;
                // The window is the one reserved for it: this decoder is kept
                // between bands, with many others (see `ZSTD_WINDOW_LOG`).
                let log = allowed_log.clamp(ZSTD_WINDOW_LOG_MIN, ZSTD_WINDOW_LOG);
                decoder
                    .set_parameter(zstd::stream::raw::DParameter::WindowLogMax(log))
                    .map_err(|e| corrupt("ZSTD data is corrupt", e))?;
                Codec::Zstd(Box::new(decoder))
            }
            Compression::Lzw => Codec::Lzw(Box::new(Lzw::new())),
            Compression::PackBits => Codec::PackBits(PackBits::default()),
            other => {
                return Err(
                    Problem::Unsupported(format!("{} strips read in bands", other.name())).into(),
                );
            }
        };
        #[cfg(test)]
        super::probe::strip_started(page.path);
        let mut strip = Strip {
            index,
            next_row: layout.chunk_rect(index).0.start,
            codec,
            buffer: vec![0; READ_BLOCK.min(count as usize).max(16)],
            pos: 0,
            len: 0,
            at: offset,
            end: offset + count,
            made: 0,
            ended: false,
            size,
        };
        if matches!(strip.codec, Codec::Lzw(_)) {
            strip.refill(page)?;
            if lzw::is_old_style(&strip.buffer[..strip.len]) {
                return Err(Problem::Unsupported(format!(
                    "old-style LZW in strip {index} read in bands"
                ))
                .into());
            }
        }
        if matches!(strip.codec, Codec::Zstd(_)) {
            strip.refill(page)?;
            // A frame whose header cannot be read is left to the decoder's error.
            let window = zstd_window(&strip.buffer[..strip.len]);
            if window.is_some_and(|w| window_log(w) > allowed_log) {
                return Err(Opened::Wider);
            }
        }
        Ok(strip)
    }

    /// Moves the unread bytes to the front and reads the strip's next bytes behind them.
    fn refill(&mut self, page: &Page<'_>) -> Result<(), Error> {
        self.buffer.copy_within(self.pos..self.len, 0);
        self.len -= self.pos;
        self.pos = 0;
        let n = ((self.end - self.at) as usize).min(self.buffer.len() - self.len);
        if n > 0 {
            page.bytes
                .read_at(page.path, self.at, &mut self.buffer[self.len..self.len + n])?;
            #[cfg(test)]
            super::probe::compressed_read(page.path, n as u64);
            self.at += n as u64;
            self.len += n;
        }
        Ok(())
    }

    /// Decodes the strip's next `out.len()` bytes into `out`.
    fn fill(&mut self, page: &Page<'_>, out: &mut [u8]) -> Result<(), Opened> {
        let mut o = 0;
        while o < out.len() {
            if self.len - self.pos < 16 && self.at < self.end {
                self.refill(page)?;
            }
            let input = &self.buffer[self.pos..self.len];
            let (used, made, ended) = self.codec.step(input, &mut out[o..])?;
            self.pos += used;
            o += made;
            self.made += made as u64;
            self.ended = ended;
            // A strip may hold ZSTD frames one after the other: a frame's end
            // ends the data only when no frame follows (no progress below).
            let ended = ended && !matches!(self.codec, Codec::Zstd(_));
            #[cfg(test)]
            super::probe::decoded(page.path, made as u64);
            if o == out.len() {
                break;
            }
            if ended || used == 0 && made == 0 {
                return Err(format_problem!(
                    "{} data of strip {} ends after {} of its {} bytes",
                    page.layout.compression.name(),
                    self.index,
                    self.made,
                    self.size
                )
                .into());
            }
        }
        Ok(())
    }

    /// At a strip's last row: a Deflate stream or a ZSTD frame must end there
    /// with its checksum right (if it has one), as the whole-chunk decoders
    /// demand. More data than the strip holds is cut, as there.
    fn end_check(&mut self, page: &Page<'_>) -> Result<(), Opened> {
        if !matches!(self.codec, Codec::Deflate(_) | Codec::Zstd(_)) || self.ended {
            return Ok(());
        }
        let mut sink = [0u8; 64];
        loop {
            if self.len - self.pos < 16 && self.at < self.end {
                self.refill(page)?;
            }
            let input = &self.buffer[self.pos..self.len];
            let (used, made, ended) = self.codec.step(input, &mut sink)?;
            self.pos += used;
            if ended || made > 0 {
                return Ok(());
            }
            if used == 0 {
                return Err(format_problem!(
                    "{} data of strip {} is truncated (no end of stream after its {} bytes)",
                    page.layout.compression.name(),
                    self.index,
                    self.size
                )
                .into());
            }
        }
    }
}

impl Codec {
    /// Decodes from `input` into `out`: the bytes used, the bytes made, and
    /// whether the stream has ended.
    fn step(&mut self, input: &[u8], out: &mut [u8]) -> Result<(usize, usize, bool), Problem> {
        match self {
            Codec::Deflate(inflate) => {
                let (i0, o0) = (inflate.total_in(), inflate.total_out());
                let status = inflate
                    .decompress(input, out, FlushDecompress::None)
                    .map_err(|e| format_problem!("Deflate data is corrupt: {e}"))?;
                let used = (inflate.total_in() - i0) as usize;
                let made = (inflate.total_out() - o0) as usize;
                Ok((used, made, status == Status::StreamEnd))
            }
            Codec::Zstd(decoder) => {
                use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
                let mut inb = InBuffer::around(input);
                let mut outb = OutBuffer::around(out);
                // A hint of 0: the frame is decoded, its checksum checked.
                let hint = decoder
                    .run(&mut inb, &mut outb)
                    .map_err(|e| format_problem!("ZSTD data is corrupt: {e}"))?;
                Ok((inb.pos(), outb.pos(), hint == 0))
            }
            Codec::Lzw(lzw) => lzw.step(input, out),
            Codec::PackBits(state) => Ok(state.step(input, out)),
        }
    }
}

impl Lzw {
    fn new() -> Lzw {
        Lzw {
            decoder: weezl::decode::Decoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8),
            failed: None,
        }
    }

    fn step(&mut self, input: &[u8], out: &mut [u8]) -> Result<(usize, usize, bool), Problem> {
        let bad = |e: weezl::LzwError| format_problem!("LZW: {e}");
        if let Some(e) = self.failed {
            return Err(bad(e));
        }
        // A call can take no input and make no output and yet not be at the
        // data's end: after two Clear codes in a row (Ok), or with codes left
        // in the bits it holds once the input is used up (NoProgress, then the
        // next call decodes them). The caller would take an idle call for the
        // data's end, so call again (the bits held are at most a few codes).
        let mut result = self.decoder.decode_bytes(input, out);
        for _ in 0..8 {
            let idle = result.consumed_in == 0 && result.consumed_out == 0;
            let more = matches!(
                result.status,
                Ok(weezl::LzwStatus::Ok | weezl::LzwStatus::NoProgress)
            );
            if !(idle && more && !out.is_empty()) {
                break;
            }
            result = self.decoder.decode_bytes(input, out);
        }
        match result.status {
            Ok(status) => Ok((
                result.consumed_in,
                result.consumed_out,
                matches!(status, weezl::LzwStatus::Done),
            )),
            // Every byte asked for was made before the bad code: given.
            Err(e) if result.consumed_out == out.len() && !out.is_empty() => {
                self.failed = Some(e);
                Ok((result.consumed_in, result.consumed_out, false))
            }
            Err(e) => Err(bad(e)),
        }
    }
}

impl PackBits {
    /// PackBits as [`super::direct`]'s `unpack_bits`, resumable: a header
    /// byte n, then n + 1 literal bytes (n >= 0) or the next byte repeated
    /// 1 - n times (n < 0; -128 is skipped).
    fn step(&mut self, input: &[u8], out: &mut [u8]) -> (usize, usize, bool) {
        let (mut i, mut o) = (0usize, 0usize);
        while o < out.len() {
            if let Some((byte, n)) = self.run {
                let k = n.min(out.len() - o);
                out[o..o + k].fill(byte);
                o += k;
                self.run = (n > k).then_some((byte, n - k));
            } else if self.literal > 0 {
                let k = self.literal.min(input.len() - i).min(out.len() - o);
                if k == 0 {
                    break;
                }
                out[o..o + k].copy_from_slice(&input[i..i + k]);
                (i, o, self.literal) = (i + k, o + k, self.literal - k);
            } else {
                let Some(&header) = input.get(i) else { break };
                let n = header as i8;
                if n >= 0 {
                    self.literal = n as usize + 1;
                    i += 1;
                } else if n == -128 {
                    i += 1;
                } else {
                    let Some(&byte) = input.get(i + 1) else { break };
                    self.run = Some((byte, (1 - isize::from(n)) as usize));
                    i += 2;
                }
            }
        }
        (i, o, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page's ZSTD decoder is given the power of two that holds its first
    /// frame's window, never less than zstd's least.
    #[test]
    fn a_frames_window_is_rounded_up_to_a_power_of_two() {
        assert_eq!(window_log(0), ZSTD_WINDOW_LOG_MIN);
        assert_eq!(window_log(520), ZSTD_WINDOW_LOG_MIN);
        assert_eq!(window_log(1024), 10);
        assert_eq!(window_log(1025), 11);
        assert_eq!(window_log(2 << 20), 21);
        assert_eq!(window_log((2 << 20) + (2 << 20) / 8), 22);
        assert_eq!(window_log(u64::MAX), 64);
    }

    /// The window a frame's header asks for, as zstd writes it and as a
    /// hostile header claims it: what decides whether a page is streamed.
    #[test]
    fn a_zstd_frames_window_is_read_from_its_header() {
        // One-shot, content size known: a single segment, window = content.
        let data = vec![7u8; 5000];
        let frame = zstd::bulk::compress(&data, 3).unwrap();
        assert_eq!(zstd_window(&frame), Some(5000));
        // Streamed with no size given: a window descriptor (level 3: 2 MiB at most).
        let mut streamed = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
        std::io::Write::write_all(&mut streamed, &data).unwrap();
        let frame = streamed.finish().unwrap();
        let window = zstd_window(&frame).unwrap();
        assert!(
            (1 << 10..=1 << ZSTD_WINDOW_LOG).contains(&window),
            "{window}"
        );
        // A header asking for 2^27 + 3/8 of it, and one for 2^41: too large to keep open.
        let magic = 0xFD2F_B528u32.to_le_bytes();
        let big = [&magic[..], &[0x00, (17 << 3) | 3]].concat();
        assert_eq!(zstd_window(&big), Some((1 << 27) + 3 * (1 << 24)));
        let huge = [&magic[..], &[0x00, 31 << 3]].concat();
        assert_eq!(zstd_window(&huge), Some(1 << 41));
        // Single segment, 2-byte content size (+256), a 1-byte dictionary id first.
        let single = [&magic[..], &[0x61, 0x09, 0x10, 0x00]].concat();
        assert_eq!(zstd_window(&single), Some(0x10 + 256));
        // Not a frame, or cut short: no window, so not streamed.
        assert_eq!(zstd_window(b"\x28\xb5\x2f\xfc\x00\x00"), None);
        assert_eq!(zstd_window(&magic), None);
        assert_eq!(zstd_window(&[&magic[..], &[0x00]].concat()), None);
        assert_eq!(zstd_window(&[&magic[..], &[0xE0, 1, 2]].concat()), None);
    }

    /// `data` decoded by the banded reader's LZW codec into `n` bytes, fed as
    /// [`Strip::fill`] feeds it (a block of `block` compressed bytes refilled
    /// when fewer than 16 are left) and asked for `rows` bytes at a time.
    fn banded_lzw(data: &[u8], n: usize, block: usize, rows: usize) -> Result<Vec<u8>, Problem> {
        let mut codec = Codec::Lzw(Box::new(Lzw::new()));
        let mut out = vec![0u8; n];
        let (mut pos, mut len) = (0usize, block.min(data.len()));
        let mut o = 0;
        while o < n {
            let want = (o + rows).min(n);
            while o < want {
                if len - pos < 16 && len < data.len() {
                    len = (pos + block).min(data.len()).max(len);
                }
                let (used, made, ended) = codec.step(&data[pos..len], &mut out[o..want])?;
                pos += used;
                o += made;
                if o < want && (ended || used == 0 && made == 0) {
                    return Err(format_problem!("LZW data ends after {o} of {n} bytes"));
                }
            }
        }
        Ok(out)
    }

    /// `data` decoded whole by ctstack's LZW decoder into `n` bytes.
    fn whole_lzw(data: &[u8], n: usize) -> Result<Vec<u8>, Problem> {
        let mut out = vec![0u8; n];
        lzw::decode(data, &mut out).map(|()| out)
    }

    /// The bytes of fixtures/lzw_styles/noise_runs.lzw, made as
    /// fixtures/make_lzw_fixtures.py makes them.
    fn noise_runs() -> Vec<u8> {
        let mut state = 12345u32;
        (0..60_000u32)
            .map(|i| {
                let block = i / 1000;
                if block % 2 == 1 {
                    return block as u8;
                }
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let byte = (state >> 16) as u8;
                if block % 4 == 2 { byte & 3 } else { byte }
            })
            .collect()
    }

    /// Review s27: the banded reader decodes LZW with `weezl`, whole chunks
    /// go through ctstack's own decoder. Both must give the same bytes, or
    /// both refuse, on every stream: random data, what tifffile writes,
    /// a table that fills without a Clear code, streams cut short, hostile
    /// bytes; and the banded one however its input and output are cut.
    #[test]
    fn the_two_lzw_decoders_agree() {
        let mut state = 99u32;
        let mut noise = move || {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (state >> 16) as u8
        };
        let random: Vec<u8> = (0..40_000).map(|_| noise()).collect();
        let runs: Vec<u8> = (0..30_000u32).map(|i| (i / 3000) as u8).collect();
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/lzw_styles/noise_runs.lzw");
        let tifffile = std::fs::read(&fixture).unwrap();
        let streams: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
            ("random", lzw::tests::encode(&random), random.clone()),
            ("runs", lzw::tests::encode(&runs), runs.clone()),
            ("tifffile", tifffile, noise_runs()),
            (
                "full table, no clear",
                lzw::tests::encode_with(&random, false),
                random.clone(),
            ),
            (
                "full table, runs",
                lzw::tests::encode_with(&noise_runs(), false),
                noise_runs(),
            ),
        ];
        for (name, packed, want) in &streams {
            let n = want.len();
            let same = |got: Result<Vec<u8>, Problem>, want: &[u8], what: &str| match got {
                Ok(got) => assert!(got == want, "{name}: {what}: other bytes"),
                Err(e) => panic!("{name}: {what}: {e:?}"),
            };
            same(whole_lzw(packed, n), want, "whole");
            for (block, rows) in [(READ_BLOCK, n), (READ_BLOCK, 997), (4096, 64), (17, 1)] {
                same(
                    banded_lzw(packed, n, block, rows),
                    want,
                    &format!("banded {block} {rows}"),
                );
            }
            // Fewer bytes asked for: both cut; more: both refuse.
            for m in [1, n / 3, n - 1] {
                same(
                    whole_lzw(packed, m),
                    &want[..m],
                    &format!("whole {m} of {n}"),
                );
                same(
                    banded_lzw(packed, m, 4096, 500),
                    &want[..m],
                    &format!("banded {m} of {n}"),
                );
            }
            assert!(whole_lzw(packed, n + 1).is_err(), "{name}: one byte more");
            assert!(
                banded_lzw(packed, n + 1, 4096, 500).is_err(),
                "{name}: one byte more"
            );
            // Cut short anywhere: both refuse.
            for k in (0..packed.len()).step_by(packed.len() / 37 + 1) {
                let (a, b) = (
                    whole_lzw(&packed[..k], n),
                    banded_lzw(&packed[..k], n, 4096, 500),
                );
                assert!(
                    a.is_err() && b.is_err(),
                    "{name}: cut at {k}: {:?} {:?}",
                    a.err(),
                    b.err()
                );
            }
        }
        // Hostile bytes (after a Clear code, so that they are read as codes):
        // the same bytes or both refuse.
        let mut agreed = [0usize; 2];
        for seed in 0..2000u32 {
            let mut s = seed.wrapping_mul(2_654_435_761) | 1;
            let mut byte = move || {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                s as u8
            };
            let len = 2 + usize::from(byte()) % 64;
            let (data, n) = if seed % 2 == 0 {
                // Random codes after a Clear.
                let data: Vec<u8> = std::iter::once(0x80)
                    .chain((0..len).map(|_| byte()))
                    .collect();
                (data, 1 + usize::from(byte()) % 96)
            } else {
                // A valid stream (few byte values: long strings) with one bit flipped.
                let plain: Vec<u8> = (0..len * 4).map(|_| byte() % 3).collect();
                let mut data = lzw::tests::encode(&plain);
                let bit = usize::from(byte()) * 7 % (data.len() * 8);
                data[bit / 8] ^= 0x80 >> (bit % 8);
                (data, plain.len())
            };
            let (a, b) = (whole_lzw(&data, n), banded_lzw(&data, n, 4096, 7));
            match (&a, &b) {
                (Ok(x), Ok(y)) => assert_eq!(x, y, "seed {seed}: {data:02x?}"),
                (Err(_), Err(_)) => {}
                _ => panic!("seed {seed}: {data:02x?}: whole {a:?}, banded {b:?}"),
            }
            agreed[usize::from(a.is_ok())] += 1;
        }
        // Both kinds of outcome were met, often.
        assert!(agreed[0] > 200 && agreed[1] > 200, "{agreed:?}");
    }

    /// A little-endian 8-bit TIFF of `pixels` (`w` x `h`) in one LZW strip,
    /// and where the strip's data starts.
    fn one_strip_lzw_tiff(w: u32, h: u32, pixels: &[u8]) -> (Vec<u8>, usize) {
        let strip = lzw::tests::encode(pixels);
        let entries: [(u16, u16, u32); 8] = [
            (256, 4, w),
            (257, 4, h),
            (258, 3, 8),
            (259, 3, 5),
            (262, 3, 1),
            (273, 4, 0), // the data's offset, below
            (278, 4, h),
            (279, 4, strip.len() as u32),
        ];
        let data_at = 8 + 2 + 12 * entries.len() + 4;
        let mut file = b"II*\0\x08\0\0\0".to_vec();
        file.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for (tag, kind, value) in entries {
            let value = if tag == 273 { data_at as u32 } else { value };
            file.extend_from_slice(&tag.to_le_bytes());
            file.extend_from_slice(&kind.to_le_bytes());
            file.extend_from_slice(&1u32.to_le_bytes());
            file.extend_from_slice(&value.to_le_bytes());
        }
        file.extend_from_slice(&[0; 4]);
        file.extend_from_slice(&strip);
        (file, data_at)
    }

    /// Review s27: a band whose read fails midway (here the file's bytes end
    /// inside the strip, a short read) left the strip's decoder part way
    /// through the band while the reader still said the band's first row came
    /// next; the next band was then cut from the wrong rows. A failed band now
    /// drops the decoder: the next band starts the strip again and is right,
    /// and a failure that lasts is the same error again.
    #[test]
    fn a_band_after_a_failed_band_is_read_from_its_own_rows() {
        let (w, h) = (512u32, 512u32);
        let mut state = 7u32;
        let pixels: Vec<u8> = (0..w * h)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (state >> 16) as u8
            })
            .collect();
        let (file, data_at) = one_strip_lzw_tiff(w, h, &pixels);
        // Noise does not compress: the strip is larger than one block of
        // compressed bytes, so band 2 needs a second read.
        assert!(file.len() - data_at > 2 * READ_BLOCK, "{}", file.len());
        let path = Path::new("band-after-failure.tif");
        let limits = Limits::default();
        let layout = crate::tiff::PageReader::in_memory(path, &file, &limits)
            .unwrap()
            .page(0)
            .unwrap();
        let cut = &file[..data_at + READ_BLOCK + 5000];
        fn page<'a>(
            path: &'a Path,
            bytes: &'a [u8],
            layout: &'a crate::tiff::ImageLayout,
        ) -> Page<'a> {
            Page {
                path,
                bytes: crate::source::Bytes::Memory(bytes),
                index: 0,
                layout,
            }
        }
        let page = |bytes| page(path, bytes, &layout);
        // Any file's stamp will do (a folder cannot be opened so on Windows).
        let own = std::fs::File::open(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
        let stamp = FileStamp::of(path, &own).unwrap();
        let band = |k: u32| k * 64..(k + 1) * 64;
        let want = |k: u32| &pixels[(k * 64 * w) as usize..((k + 1) * 64 * w) as usize];
        let mut dst = vec![0u8; (64 * w) as usize];

        // A reader that has read band 0 of the whole file.
        let started = |dst: &mut [u8]| {
            let mut strips = StripRows::start(&page(&file), &band(0), stamp, &limits)
                .unwrap()
                .expect("a band ending inside the strip is streamed");
            assert!(strips.read(&page(&file), band(0), dst, &limits).unwrap());
            strips
        };
        let mut strips = started(&mut dst);
        assert!(dst == want(0));
        // Band 1 breaks off: the bytes end inside it.
        let first = strips
            .read(&page(cut), band(1), &mut dst, &limits)
            .unwrap_err();
        assert_eq!(first.kind(), crate::ErrorKind::Io, "{first}");
        // The same bytes again: the same error.
        let again = strips
            .read(&page(cut), band(1), &mut dst, &limits)
            .unwrap_err();
        assert_eq!(again.to_string(), first.to_string());
        // The whole file again: the next band, then the failed one, right.
        assert!(
            strips
                .read(&page(&file), band(2), &mut dst, &limits)
                .unwrap()
        );
        assert!(dst == want(2), "band 2 after a failed band 1: other rows");
        let mut strips = started(&mut dst);
        strips
            .read(&page(cut), band(1), &mut dst, &limits)
            .unwrap_err();
        assert!(
            strips
                .read(&page(&file), band(1), &mut dst, &limits)
                .unwrap()
        );
        assert!(
            dst == want(1),
            "band 1 read again after it failed: other rows"
        );
    }

    #[test]
    fn packbits_resumes_anywhere() {
        let data = [
            0xFE, 0xAA, 0x02, 0x80, 0x00, 0x2A, 0xFD, 0xAA, 0x03, 0x80, 0x00, 0x2A, 0x22, 0xF7,
            0xAA,
        ];
        let mut whole = [0u8; 24];
        assert_eq!(direct::unpack_bits(&data, &mut whole), 24);
        // Every split of the input and of the output gives the same bytes.
        for cut_in in 0..=data.len() {
            for cut_out in 0..=24 {
                let mut state = PackBits::default();
                let mut out = [0u8; 24];
                let (mut i, mut o) = (0, 0);
                let (a, b, _) = state.step(&data[..cut_in], &mut out[..cut_out]);
                i += a;
                o += b;
                while o < 24 {
                    let (a, b, _) = state.step(&data[i..], &mut out[o..]);
                    if a == 0 && b == 0 {
                        break;
                    }
                    (i, o) = (i + a, o + b);
                }
                assert_eq!(out, whole, "{cut_in} {cut_out}");
            }
        }
    }
}
