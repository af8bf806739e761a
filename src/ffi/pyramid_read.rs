//! Reading a built pyramid back: open it by its manifest, query its levels,
//! read one level into the caller's buffer.

use std::ffi::{c_char, c_void};

use super::boundary::{Failure, OutHandle, buffer, ffi_boundary, free_handle, handle, invalid};
use super::ctstack_status;
use super::slice::sample_type_code;
use crate::sample::with_sample_type;
use crate::{Pyramid, PyramidLevel};

/// A built pyramid, opened for reading. Opaque.
pub struct ctstack_pyramid(Pyramid);

/// One level of a built pyramid.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ctstack_level_info {
    /// The level: 1 is the first halving of the input.
    pub k: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Number of slices.
    pub count: u64,
    /// A `CTSTACK_SAMPLE_*` value.
    pub sample_type: i32,
    /// Bytes of the whole level: count x height x width x bytes per sample.
    pub bytes: u64,
}

impl ctstack_level_info {
    fn of(level: &PyramidLevel) -> ctstack_level_info {
        ctstack_level_info {
            k: u32::try_from(level.k).unwrap_or(u32::MAX),
            width: level.width,
            height: level.height,
            count: level.count as u64,
            sample_type: sample_type_code(level.sample_type),
            // Saturates for a manifest that claims the impossible: a read of it
            // then fails on the length check.
            bytes: (level.count as u64)
                .saturating_mul(u64::from(level.width) * u64::from(level.height))
                .saturating_mul(level.sample_type.bytes() as u64),
        }
    }
}

/// Opens the pyramid that a build wrote to `output_dir`, by its manifest (not
/// by folder names), and stores it in `*out`. Fails with CTSTACK_ERR_STATE if
/// there is no manifest or the last build did not finish, and
/// CTSTACK_ERR_FORMAT if the manifest is not a valid one. Ownership: the
/// caller owns `*out` and releases it with `ctstack_pyramid_free`; on failure
/// `*out` is NULL.
///
/// # Safety
/// `output_dir` is NULL or NUL-terminated; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_pyramid_open(
    output_dir: *const c_char,
    out: *mut *mut ctstack_pyramid,
) -> ctstack_status {
    ffi_boundary! {
        // SAFETY: per the contract above.
        let out = unsafe { OutHandle::new(out, "out") }?;
        // SAFETY: per the contract above.
        let dir = unsafe { super::boundary::utf8_arg(output_dir, "output_dir") }?;
        out.set(ctstack_pyramid(Pyramid::open(dir)?));
        Ok(())
    }
}

/// The number of levels beyond the input (L: levels are numbered 1 ..= L,
/// largest first); 0 if `pyramid` is NULL (or the input was already small).
///
/// # Safety
/// `pyramid` is NULL or a live pyramid handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_pyramid_level_count(pyramid: *const ctstack_pyramid) -> u32 {
    ffi_boundary! {
        // SAFETY: per the contract above.
        unsafe { pyramid.as_ref() }
            .map_or(0, |p| u32::try_from(p.0.levels().len()).unwrap_or(u32::MAX))
    }
}

/// Fills `*info` with level `k` (1 ..= `ctstack_pyramid_level_count`).
///
/// # Safety
/// `pyramid` is NULL or a live pyramid handle; `info` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_pyramid_level(
    pyramid: *const ctstack_pyramid,
    k: u32,
    info: *mut ctstack_level_info,
) -> ctstack_status {
    ffi_boundary! {
        // SAFETY: per the contract above.
        let pyramid = unsafe { handle(pyramid, "pyramid") }?;
        // SAFETY: NULL or writable per the contract.
        let info = unsafe { info.as_mut() }.ok_or_else(|| invalid("info is NULL"))?;
        *info = ctstack_level_info::of(&pyramid.0.level(k as usize)?);
        Ok(())
    }
}

/// Reads level `k` into `dst` as one contiguous (count, height, width) volume
/// of the level's sample type in the host's byte order: `dst_bytes` must be
/// exactly the level's `bytes`, and `dst` aligned for the sample type (as
/// `malloc` gives). A slice file that is not the one the build wrote (changed or
/// removed since) fails with CTSTACK_ERR_STATE, naming it.
///
/// # Safety
/// `pyramid` is NULL or a live pyramid handle; `dst` is NULL or valid for
/// writes of `dst_bytes` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_pyramid_read_level(
    pyramid: *const ctstack_pyramid,
    k: u32,
    dst: *mut c_void,
    dst_bytes: usize,
) -> ctstack_status {
    ffi_boundary! {
        // SAFETY: per the contract above.
        let pyramid = unsafe { handle(pyramid, "pyramid") }?;
        let level = pyramid.0.level(k as usize)?;
        // SAFETY: per the contract above.
        let bytes = unsafe { buffer(dst, dst_bytes, "dst") }?;
        with_sample_type!(level.sample_type, T => {
            let samples = bytemuck::try_cast_slice_mut::<u8, T>(bytes).map_err(|e| {
                invalid(format!(
                    "dst of {dst_bytes} bytes cannot hold {} samples: {e}",
                    level.sample_type
                ))
            })?;
            pyramid.0.read_level_into(k as usize, samples).map_err(Failure::from)
        })
    }
}

/// Releases a pyramid handle. NULL is a no-op.
///
/// # Safety
/// `pyramid` is NULL or a live pyramid handle, used by no other thread during or
/// after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_pyramid_free(pyramid: *mut ctstack_pyramid) {
    // SAFETY: per the contract above.
    ffi_boundary! { unsafe { free_handle(pyramid) } }
}
