//! TIFF's LZW (Compression = 5), decoded by ctstack for speed.
//!
//! The `tiff` crate decodes LZW correctly but, on CT data (noise compresses
//! poorly, so codes are short and many), at about half libtiff's speed: the
//! decode was 85% of a pyramid run over an LZW stack. This decoder is the hot path
//! for LZW strips; everything else compressed still goes to the `tiff` crate, which
//! also serves as the reference in the tests.
//!
//! The trick: every string in the code table is a run of bytes already written
//! to the output (the string of the previous code plus one byte), so an entry is
//! just (offset, length) into the output and emitting a code is a copy from
//! earlier output. Strips decode independently, so a slice's strips decode in
//! parallel. Hostile data cannot read or write out of bounds: every offset comes
//! from output already written, and output stops at the strip's size.

use crate::error::{Problem, format_problem};

const CLEAR: u16 = 256;
const END: u16 = 257;
const FIRST_FREE: u16 = 258;
const MAX_CODES: usize = 4096;

/// Whether `data` looks like the pre-1992 "old-style" (LSB-first) LZW, which this
/// decoder does not read (the `tiff` crate gets such files).
pub fn is_old_style(data: &[u8]) -> bool {
    data.len() >= 2 && data[0] == 0 && data[1] & 1 != 0
}

/// Decodes one LZW strip into `out`, which must be filled exactly.
///
/// Data that ends early is an error; data that would decode to more than `out`
/// holds is cut at its end (libtiff does the same).
pub fn decode(data: &[u8], out: &mut [u8]) -> Result<(), Problem> {
    // Table entries for codes >= 258: where an occurrence of the string starts in
    // `out`, and its length.
    let mut start = [0u32; MAX_CODES];
    let mut len = [0u32; MAX_CODES];
    let mut next = FIRST_FREE as usize;
    let mut width = 9u32;
    // The output range the previous code was just written to (None after a clear).
    let mut prev: Option<(usize, usize)> = None;
    let mut pos = 0usize;

    let mut bits = 0u64;
    let mut nbits = 0u32;
    let mut next_byte = 0usize;
    while pos < out.len() {
        if nbits < width {
            // Refill, most significant bit first: eight bytes at once while they
            // last, then byte by byte.
            if let Some(chunk) = data.get(next_byte..next_byte + 8) {
                let word = u64::from_be_bytes(chunk.try_into().unwrap_or([0; 8]));
                let take = (64 - nbits) / 8;
                bits |= (word >> nbits) & mask_top(nbits + take * 8);
                next_byte += take as usize;
                nbits += take * 8;
            } else {
                while nbits <= 56 && next_byte < data.len() {
                    bits |= u64::from(data[next_byte]) << (56 - nbits);
                    next_byte += 1;
                    nbits += 8;
                }
            }
        }
        if nbits < width {
            return Err(format_problem!(
                "LZW data ends after {pos} of {} bytes (no end code)",
                out.len()
            ));
        }
        let code = (bits >> (64 - width)) as usize;
        bits <<= width;
        nbits -= width;

        if code == usize::from(END) {
            break;
        }
        if code == usize::from(CLEAR) {
            next = usize::from(FIRST_FREE);
            width = 9;
            prev = None;
            continue;
        }
        let here = pos;
        let room = out.len() - pos;
        match prev {
            None => {
                // The first code after a clear is a literal.
                if code > 255 {
                    return Err(format_problem!("LZW code {code} follows a clear code"));
                }
                out[pos] = code as u8;
                pos += 1;
            }
            Some((p_start, p_len)) => {
                if code < 256 {
                    out[pos] = code as u8;
                    pos += 1;
                } else if code < next {
                    // A known string: a copy of earlier output.
                    let (s, n) = (
                        start[code & (MAX_CODES - 1)] as usize,
                        (len[code & (MAX_CODES - 1)] as usize).min(room),
                    );
                    copy_short(out, s, pos, n);
                    pos += n;
                } else if code == next {
                    // KwKwK: the previous string plus its own first byte.
                    let n = p_len.min(room);
                    copy_short(out, p_start, pos, n);
                    pos += n;
                    if pos < out.len() {
                        out[pos] = out[p_start];
                        pos += 1;
                    }
                } else {
                    return Err(format_problem!(
                        "LZW code {code} is not in the table (next free code {next})"
                    ));
                }
                // The new entry is the previous string followed by this string's
                // first byte: exactly the output from `p_start`, one byte longer.
                if next < MAX_CODES {
                    start[next] = p_start as u32;
                    len[next] = (p_len + 1) as u32;
                    next += 1;
                }
            }
        }
        prev = Some((here, pos - here));
        // TIFF's "early change": codes widen one entry before the table is full.
        if next + 1 >= (1 << width) && width < 12 {
            width += 1;
        }
    }
    if pos < out.len() {
        return Err(format_problem!(
            "LZW data ends after {pos} of {} bytes",
            out.len()
        ));
    }
    Ok(())
}

/// Copies `n` bytes of `out` from `from` to `to` (`from + n <= to`).
///
/// Noisy data is made of strings of a few bytes: for those, one fixed 16-byte
/// copy through a register beats a call to `memmove`. The bytes past `n` it writes
/// are not yet final output and are overwritten by the strings that follow.
#[inline(always)]
fn copy_short(out: &mut [u8], from: usize, to: usize, n: usize) {
    if n <= 16 && to + 16 <= out.len() {
        let mut chunk = [0u8; 16];
        chunk.copy_from_slice(&out[from..from + 16]);
        out[to..to + 16].copy_from_slice(&chunk);
    } else {
        out.copy_within(from..from + n, to);
    }
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
            table.insert(wb, next);
            next += 1;
            // libtiff's encoder: clear at 4094 entries, widen past the code mask.
            if next == 4094 {
                put(256, width, &mut out);
                table.clear();
                next = 258;
                width = 9;
            } else if next > (1 << width) - 1 {
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
