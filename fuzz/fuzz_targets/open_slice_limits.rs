//! `Slice::from_bytes` with tiny limits, then every row and an average with itself.
#![no_main]

use ctstack::{Limits, OpenOptions};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let mut limits = Limits::default();
    limits.max_pixels = 1 << 16;
    limits.max_decoded_bytes = 1 << 17;
    limits.max_ifd_entries = 64;
    limits.max_compression_ratio = 64;
    limits.max_pages = 64;
    let options = OpenOptions {
        limits,
        ..OpenOptions::default()
    };
    common::run(data, &options);
});
