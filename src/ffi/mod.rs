//! The C ABI. The contract is docs/ABI.md; the header, include/ctstack.h, is
//! generated from these files by cbindgen (tests/header.rs). One file per concern:
//!
//! - [`boundary`]: the panic boundary (`ffi_boundary!`), the last error, argument checks;
//! - [`status`]: the status codes and their names;
//! - [`policy`]: the process-wide memory-map policy;
//! - [`slice`]: slice handles;
//! - [`options`], [`pyramid`], [`job`]: pyramid runs, blocking or on a thread;
//! - [`crop`]: crops: a checked crop, read into an array or written by a job;
//! - [`report`]: what a finished job did;
//! - [`slab`]: the slab geometry a distributed build's driver needs;
//! - [`pyramid_read`]: reading a built pyramid back.
//!
//! Conventions for every function: it never unwinds (a panic becomes
//! `CTSTACK_ERR_INTERNAL`, or the return type's zero); NULL arguments give
//! `CTSTACK_ERR_INVALID_ARGUMENT`; `_free(NULL)` is a no-op; a failed call stores
//! its message for [`ctstack_last_error`], per thread.

#![allow(non_camel_case_types)]

pub(crate) mod boundary;
mod crop;
mod job;
mod options;
mod policy;
mod pyramid;
mod pyramid_read;
mod report;
mod slab;
mod slice;
mod status;

use std::ffi::{CStr, c_char};

use boundary::ffi_boundary;
pub use status::ctstack_status;

/// The message of the last failed call on this thread, "" if none. Valid until the
/// next failing call on this thread.
#[unsafe(no_mangle)]
pub extern "C" fn ctstack_last_error() -> *const c_char {
    ffi_boundary! { boundary::last_error() }
}

/// The library's version, e.g. "0.1.0". Static.
#[unsafe(no_mangle)]
pub extern "C" fn ctstack_version() -> *const c_char {
    const VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => c"unknown",
        };
    VERSION.as_ptr()
}
