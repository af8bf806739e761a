//! The process-wide memory-map policy.

use std::sync::atomic::{AtomicI32, Ordering};

use super::boundary::{Failure, ffi_boundary, invalid};
use crate::ReadMode;

/// Memory-map policy `auto` (the default): map, except files on network
/// filesystems, which are read (see `ctstack_set_mmap_policy`).
pub const CTSTACK_MMAP_AUTO: i32 = 0;
/// Memory-map policy `always`: map every file.
pub const CTSTACK_MMAP_ALWAYS: i32 = 1;
/// Memory-map policy `never`: never map; read files (a pyramid's uncompressed inputs
/// in bands of rows by positional reads, a slice opened on its own whole): immune
/// to truncation.
pub const CTSTACK_MMAP_NEVER: i32 = 2;

/// The process-wide memory-map policy, a `CTSTACK_MMAP_*` value.
static MMAP_POLICY: AtomicI32 = AtomicI32::new(CTSTACK_MMAP_AUTO);

/// The read mode for a `CTSTACK_MMAP_*` value.
pub(crate) fn read_mode_of(policy: i32) -> Result<ReadMode, Failure> {
    match policy {
        CTSTACK_MMAP_AUTO => Ok(ReadMode::Auto),
        CTSTACK_MMAP_ALWAYS => Ok(ReadMode::Mmap),
        CTSTACK_MMAP_NEVER => Ok(ReadMode::Buffered),
        other => Err(invalid(format!(
            "mmap policy {other} is not one of 0 (auto), 1 (always), 2 (never)"
        ))),
    }
}

/// The read mode that the process-wide policy selects.
pub(crate) fn read_mode() -> ReadMode {
    read_mode_of(MMAP_POLICY.load(Ordering::Relaxed)).unwrap_or_default()
}

/// The process-wide policy's current value.
pub(crate) fn current() -> i32 {
    MMAP_POLICY.load(Ordering::Relaxed)
}

/// Sets the process-wide memory-map policy for every later `ctstack_slice_open`
/// and every pyramid run that does not set its own (`ctstack_pyramid_options`
/// starts from this value): `CTSTACK_MMAP_AUTO` (0, the default) maps files
/// except those on network filesystems (NFS, SMB, FUSE, ...), which it reads;
/// `CTSTACK_MMAP_ALWAYS` (1) maps every file; `CTSTACK_MMAP_NEVER` (2) reads
/// every file instead of mapping it. Any other value gives
/// CTSTACK_ERR_INVALID_ARGUMENT and leaves the policy unchanged.
///
/// Why: if another process truncates a mapped file, the reading process gets
/// SIGBUS on Unix and dies; a read file is immune (a change gives an error or the
/// old data). Use `CTSTACK_MMAP_NEVER` when files may change while they are read.
/// Slices already open keep how they were opened.
///
/// Threading: callable from any thread at any time (an atomic store); opens that
/// race with the call use the old or the new policy.
#[unsafe(no_mangle)]
pub extern "C" fn ctstack_set_mmap_policy(policy: i32) -> super::ctstack_status {
    ffi_boundary! {
        read_mode_of(policy)?;
        MMAP_POLICY.store(policy, Ordering::Relaxed);
        Ok(())
    }
}

/// The current memory-map policy: `CTSTACK_MMAP_AUTO` (0), `CTSTACK_MMAP_ALWAYS`
/// (1) or `CTSTACK_MMAP_NEVER` (2). Threading: callable from any thread.
#[unsafe(no_mangle)]
pub extern "C" fn ctstack_mmap_policy() -> i32 {
    ffi_boundary! { current() }
}
