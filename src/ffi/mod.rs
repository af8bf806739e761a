//! The C ABI. The contract is docs/ABI.md; the header, include/ctstack.h, is
//! generated from these files by cbindgen (tests/header.rs). One file per concern:
//!
//! - [`boundary`]: the panic boundary (`ffi_boundary!`), the last error, argument checks;
//! - [`status`]: the status codes and their names;
//! - [`policy`]: the process-wide memory-map policy;
//! - [`slice`]: slice handles;
//! - [`options`], [`pyramid`], [`job`]: pyramid runs, blocking or on a thread;
//! - [`crop`]: crops: a checked crop, read into an array or written by a job;
//! - [`versioned`]: reading and initialising the versioned options structs;
//! - [`report`]: what a finished job did;
//! - [`slab`]: the slab geometry a distributed build's driver needs;
//! - [`pyramid_read`]: reading a built pyramid back;
//! - `zarr` (feature `ome-zarr`): OME-Zarr builds, on a job.
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
mod versioned;
#[cfg(feature = "ome-zarr")]
mod zarr;

use std::ffi::{CStr, c_char};

use boundary::ffi_boundary;
pub use status::ctstack_status;

// The C ABI's version, MAJOR.MINOR.PATCH: the `version` of Cargo.toml's
// `[package.metadata.capi.library]`, from which cargo-c derives the SONAME
// (`libctstack.so.0.MINOR` while MAJOR is 0, `libctstack.so.MAJOR` from 1.0).
// docs/ABI.md "Versioning" has the rule; tests/header.rs checks that the header
// changes only with this version (include/abi-versions.txt).

/// The C ABI's major version (see `CTSTACK_ABI_VERSION_MINOR`).
pub const CTSTACK_ABI_VERSION_MAJOR: u32 = 0;
/// The C ABI's minor version. While the major version is 0, a break (a
/// function removed or changed, a struct field or a status number changed)
/// bumps the minor version and with it the SONAME (`libctstack.so.0.MINOR`);
/// from 1.0 a break bumps the major version.
pub const CTSTACK_ABI_VERSION_MINOR: u32 = 1;
/// The C ABI's patch version: bumped by additions that break no caller (a new
/// function, status, constant or appended options field); the SONAME stays.
pub const CTSTACK_ABI_VERSION_PATCH: u32 = 0;

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

/// The loaded library's ABI version, `(MAJOR << 16) | (MINOR << 8) | PATCH`: a
/// caller compiled against this header may compare it with the
/// `CTSTACK_ABI_VERSION_*` constants (same MAJOR, and same MINOR while MAJOR is
/// 0; PATCH at least the header's). Static; any thread.
#[unsafe(no_mangle)]
pub extern "C" fn ctstack_abi_version() -> u32 {
    (CTSTACK_ABI_VERSION_MAJOR << 16) | (CTSTACK_ABI_VERSION_MINOR << 8) | CTSTACK_ABI_VERSION_PATCH
}
