//! `Slice::from_bytes` with default options, then every row and an average with itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::run(data, &ctstack::OpenOptions::default());
});
