//! TIFF's LZW (Compression = 5), decoded by ctstack for speed.
//!
//! The `tiff` crate decodes LZW correctly but, on CT data (noise compresses
//! poorly, so codes are short and many), at about half libtiff's speed: the
//! decode was 85% of a pyramid run over an LZW stack. This decoder is the hot path
//! for LZW strips and tiles (driven by [`super::direct`], which undoes the byte
//! order and predictor); the `tiff` crate serves as the reference in the tests.
//! Old-style (pre-1992) codes are read by neither: a chunk in them is refused
//! (`super::ChunkDecoder::decode`, chunk by chunk).
//!
//! The trick: every string in the code table is a run of bytes already written
//! to the output (the string of the previous code plus one byte), so an entry is
//! just (offset, length) into the output and emitting a code is a copy from
//! earlier output. Chunks decode independently, so a slice's chunks decode in
//! parallel. Hostile data cannot read or write out of bounds: every offset comes
//! from output already written, and output stops at the strip's size.

use crate::error::{Problem, format_problem};

const CLEAR: u16 = 256;
const END: u16 = 257;
const FIRST_FREE: u16 = 258;
const MAX_CODES: usize = 4096;

/// Whether `data` (a chunk's first bytes) looks like the pre-1992 "old-style"
/// (LSB-first) LZW, which this decoder does not read (nor the `tiff` crate's:
/// such a chunk is refused as unsupported). libtiff's test: a Clear code
/// written LSB-first makes byte 0 zero and sets bit 0 of byte 1.
pub(super) fn is_old_style(data: &[u8]) -> bool {
    data.len() >= 2 && data[0] == 0 && data[1] & 1 != 0
}

/// Bytes after the output in the scratch buffer, so a string of up to 16 bytes
/// can always be copied as one fixed 16-byte block.
const SLACK: usize = 16;

/// Where the output starts in the scratch buffer: after the 256 one-byte strings
/// of the literal codes, so every code, literal or not, is a copy.
const OUTPUT: usize = 256;

thread_local! {
    /// One scratch buffer per thread: `[0, 1, ..., 255]`, the output, slack.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Decodes one LZW chunk into `out`, which must be filled exactly.
///
/// Data that ends early is an error; data that would decode to more than `out`
/// holds is cut at its end (libtiff does the same).
pub(crate) fn decode(data: &[u8], out: &mut [u8]) -> Result<(), Problem> {
    SCRATCH.with(|scratch| {
        let mut buf = scratch.borrow_mut();
        let needed = OUTPUT + out.len() + SLACK;
        if buf.len() < needed {
            buf.clear();
            buf.extend(0..=255u8);
            buf.resize(needed, 0);
        }
        let written = decode_into(data, &mut buf, out.len())?;
        if written < out.len() {
            return Err(format_problem!(
                "LZW data ends after {written} of {} bytes",
                out.len()
            ));
        }
        out.copy_from_slice(&buf[OUTPUT..OUTPUT + out.len()]);
        Ok(())
    })
}

/// Decodes into `buf[OUTPUT..OUTPUT + n]` (`buf` starts with the 256 literal bytes
/// and has [`SLACK`] bytes after the output); returns how many bytes were written.
fn decode_into(data: &[u8], buf: &mut [u8], n: usize) -> Result<usize, Problem> {
    // Every code is a string somewhere in `buf`: where it starts and its length.
    // Literals are the bytes 0..=255 at the front; codes from 258 on are earlier output.
    let mut start = [0u32; MAX_CODES];
    let mut len = [1u32; MAX_CODES];
    for (code, s) in start.iter_mut().enumerate().take(256) {
        *s = code as u32;
    }
    let mut next = usize::from(FIRST_FREE);
    let mut width = 9u32;
    // The string the previous code was just written as (length 0: none, after a clear).
    let (mut prev_start, mut prev_len) = (0usize, 0usize);
    let end = OUTPUT + n;
    let mut pos = OUTPUT;

    let mut bits = 0u64;
    let mut nbits = 0u32;
    let mut next_byte = 0usize;
    while pos < end {
        if nbits < width {
            // Refill, most significant bit first: eight bytes at once while they
            // last, then byte by byte.
            if let Some(chunk) = data.get(next_byte..next_byte + 8) {
                let mut word = [0u8; 8];
                word.copy_from_slice(chunk);
                let take = (64 - nbits) / 8;
                bits |= (u64::from_be_bytes(word) >> nbits) & mask_top(nbits + take * 8);
                next_byte += take as usize;
                nbits += take * 8;
            } else {
                while nbits <= 56 && next_byte < data.len() {
                    bits |= u64::from(data[next_byte]) << (56 - nbits);
                    next_byte += 1;
                    nbits += 8;
                }
            }
            if nbits < width {
                return Err(format_problem!(
                    "LZW data ends after {} of {n} bytes (no end code)",
                    pos - OUTPUT
                ));
            }
        }
        let code = (bits >> (64 - width)) as usize;
        bits <<= width;
        nbits -= width;

        let (from, length) =
            if code < next && code != usize::from(CLEAR) && code != usize::from(END) {
                (start[code] as usize, len[code] as usize)
            } else if code == usize::from(END) {
                break;
            } else if code == usize::from(CLEAR) {
                next = usize::from(FIRST_FREE);
                width = 9;
                prev_len = 0;
                continue;
            } else if code == next && prev_len > 0 {
                // KwKwK: the previous string plus its own first byte, which the copy
                // below writes by reading one byte past the previous string's end, the
                // byte this very copy has just written.
                (prev_start, prev_len + 1)
            } else if prev_len == 0 {
                return Err(format_problem!("LZW code {code} follows a clear code"));
            } else {
                return Err(format_problem!(
                    "LZW code {code} is not in the table (next free code {next})"
                ));
            };
        let room = end - pos;
        if length <= 16 && from + length <= pos {
            // A short string from earlier output: one 16-byte block (the bytes past
            // `length` land in output not yet final, or in the slack).
            let mut block = [0u8; 16];
            block.copy_from_slice(&buf[from..from + 16]);
            buf[pos..pos + 16].copy_from_slice(&block);
        } else {
            // Long strings, and KwKwK (whose source overlaps its destination by one
            // byte): byte order matters, so copy forward.
            for i in 0..length.min(room) {
                buf[pos + i] = buf[from + i];
            }
        }
        // The new entry is the previous string followed by this string's first
        // byte: the output from `prev_start`, one byte longer.
        if prev_len > 0 && next < MAX_CODES {
            start[next] = prev_start as u32;
            len[next] = (prev_len + 1) as u32;
            next += 1;
        }
        prev_start = pos;
        prev_len = length;
        pos += length.min(room);
        // TIFF's "early change": codes widen one entry before the table is full.
        if next + 1 >= (1 << width) && width < 12 {
            width += 1;
        }
    }
    Ok(pos.min(end) - OUTPUT)
}

/// A mask of the top `n` bits of a `u64` (all bits for 64).
#[inline(always)]
fn mask_top(n: u32) -> u64 {
    if n >= 64 { u64::MAX } else { !(u64::MAX >> n) }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A plain TIFF LZW encoder (MSB-first, early change), for round trips.
    pub(crate) fn encode(data: &[u8]) -> Vec<u8> {
        encode_with(data, true)
    }

    /// [`encode`], clearing the table at 4094 entries as libtiff's encoder
    /// does (`clear`), or never: the table then fills (4096 entries) and
    /// stays, the codes 12 bits wide (libtiff's decoder reads such streams).
    pub(crate) fn encode_with(data: &[u8], clear: bool) -> Vec<u8> {
        use std::collections::HashMap;
        let mut out = Vec::new();
        let (mut acc, mut nacc) = (0u64, 0u32);
        let mut put = |code: u32, width: u32, out: &mut Vec<u8>| {
            acc = (acc << width) | u64::from(code);
            nacc += width;
            while nacc >= 8 {
                out.push((acc >> (nacc - 8)) as u8);
                nacc -= 8;
            }
        };
        let mut table: HashMap<Vec<u8>, u32> = HashMap::new();
        let mut next = 258u32;
        let mut width = 9u32;
        put(256, width, &mut out);
        let mut w: Vec<u8> = Vec::new();
        for &b in data {
            let mut wb = w.clone();
            wb.push(b);
            if wb.len() == 1 || table.contains_key(&wb) {
                w = wb;
                continue;
            }
            let code = if w.len() == 1 {
                u32::from(w[0])
            } else {
                table[&w]
            };
            put(code, width, &mut out);
            if next < 4096 {
                table.insert(wb, next);
                next += 1;
            }
            // libtiff's encoder: clear at 4094 entries, widen past the code mask.
            if clear && next == 4094 {
                put(256, width, &mut out);
                table.clear();
                next = 258;
                width = 9;
            } else if next > (1 << width) - 1 && width < 12 {
                width += 1;
            }
            w = vec![b];
        }
        if !w.is_empty() {
            let code = if w.len() == 1 {
                u32::from(w[0])
            } else {
                table[&w]
            };
            put(code, width, &mut out);
            next += 1;
            if next > (1 << width) - 1 && width < 12 {
                width += 1;
            }
        }
        put(257, width, &mut out);
        put(0, 7, &mut out); // flush
        out
    }

    #[test]
    fn round_trips_noise_runs_and_table_resets() {
        let mut state = 12345u32;
        let mut noise = || {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (state >> 16) as u8
        };
        let cases: Vec<Vec<u8>> = vec![
            vec![7],
            vec![0; 100_000],
            (0..50_000).map(|_| noise()).collect(),
            (0..80_000)
                .map(|i| if i % 1000 < 500 { noise() & 3 } else { 9 })
                .collect(),
            b"TOBEORNOTTOBEORTOBEORNOT#".repeat(300),
        ];
        for data in cases {
            let packed = encode(&data);
            let mut out = vec![0u8; data.len()];
            decode(&packed, &mut out).unwrap();
            assert_eq!(out, data);
            // Shorter output: cut cleanly. Longer: an error, not a panic.
            let mut short = vec![0u8; data.len() / 2];
            decode(&packed, &mut short).unwrap();
            assert_eq!(short, data[..data.len() / 2]);
            let mut long = vec![0u8; data.len() + 10];
            assert!(decode(&packed, &mut long).is_err());
        }
    }

    #[test]
    fn hostile_codes_are_errors() {
        let mut out = vec![0u8; 64];
        assert!(decode(&[], &mut out).is_err());
        assert!(decode(&[0xFF; 40], &mut out).is_err());
        // Clear, then code 300 (not a literal).
        assert!(decode(&[0x80, 0x4B, 0x00], &mut out).is_err());
    }
}
