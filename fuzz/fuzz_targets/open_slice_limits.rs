//! `Slice::from_bytes` with tiny limits, then every row and an average with itself.
#![no_main]

use ctstack::{Limits, OpenOptions};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let options = OpenOptions {
        limits: Limits {
            max_pixels: 1 << 16,
            max_decoded_bytes: 1 << 17,
            max_ifd_entries: 64,
            max_compression_ratio: 64,
        },
        ..OpenOptions::default()
    };
    common::run(data, &options);
});
