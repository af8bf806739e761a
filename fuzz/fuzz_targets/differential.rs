//! Differential: whenever ctstack opens a slice and the `tiff` crate decodes the
//! same bytes to an image of the same size and depth, the pixels must agree.
//! (ctstack's own parser serves uncompressed files; the `tiff` crate decodes the
//! compressed ones after ctstack validated the layout.) Either reader refusing a
//! file the other accepts is not a failure here: ctstack is stricter by design.
#![no_main]

use std::io::Cursor;

use ctstack::{OpenOptions, Slice};
use libfuzzer_sys::fuzz_target;
use tiff::decoder::{Decoder, DecodingResult, Limits};

fn ours(slice: &Slice) -> Vec<u16> {
    match slice.bits() {
        8 => slice
            .rows::<u8>()
            .unwrap()
            .iter()
            .flatten()
            .map(|&v| u16::from(v))
            .collect(),
        _ => slice
            .rows::<u16>()
            .unwrap()
            .iter()
            .flatten()
            .copied()
            .collect(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(slice) = Slice::from_bytes("fuzz.tif", data, &OpenOptions::default()) else {
        return;
    };
    let budget = slice.image_bytes() * 2 + (1 << 20);
    let mut limits = Limits::default();
    limits.decoding_buffer_size = budget;
    limits.intermediate_buffer_size = budget;
    let Ok(decoder) = Decoder::new(Cursor::new(data)) else {
        return;
    };
    let mut decoder = decoder.with_limits(limits);
    let Ok((w, h)) = decoder.dimensions() else {
        return;
    };
    if (w, h) != (slice.width(), slice.height()) {
        return;
    }
    let theirs: Vec<u16> = match decoder.read_image() {
        Ok(DecodingResult::U8(v)) if slice.bits() == 8 => v.into_iter().map(u16::from).collect(),
        Ok(DecodingResult::U16(v)) if slice.bits() == 16 => v,
        _ => return,
    };
    let ours = ours(&slice);
    if ours.len() != theirs.len() {
        return;
    }
    if let Some(i) = ours.iter().zip(&theirs).position(|(a, b)| a != b) {
        panic!(
            "pixel {i} (x {}, y {}): ctstack {} ({}), tiff crate {}",
            i % w as usize,
            i / w as usize,
            ours[i],
            slice.access(),
            theirs[i]
        );
    }
});
