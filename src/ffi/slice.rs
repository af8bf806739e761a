//! Slice handles: open, query, read, view, and the 2x2x2 mean of two slices.

use std::ffi::{c_char, c_void};

use super::boundary::{
    Failure, OutHandle, buffer, ffi_boundary, free_handle, handle, invalid, utf8_arg,
};
use super::{ctstack_status, policy};
use crate::sample::with_sample_type;
use crate::{Error, OpenOptions, Sample, SampleType, Slice, average_pair};

/// Sample type `uint8_t`.
pub const CTSTACK_SAMPLE_U8: i32 = 1;
/// Sample type `uint16_t`.
pub const CTSTACK_SAMPLE_U16: i32 = 2;
/// Sample type `int16_t`.
pub const CTSTACK_SAMPLE_I16: i32 = 3;
/// Sample type `float` (32-bit IEEE 754).
pub const CTSTACK_SAMPLE_F32: i32 = 4;

/// The `CTSTACK_SAMPLE_*` number of a sample type.
pub(crate) fn sample_type_code(t: SampleType) -> i32 {
    match t {
        SampleType::U8 => CTSTACK_SAMPLE_U8,
        SampleType::U16 => CTSTACK_SAMPLE_U16,
        SampleType::I16 => CTSTACK_SAMPLE_I16,
        SampleType::F32 => CTSTACK_SAMPLE_F32,
    }
}

/// One image of a file. Opaque.
pub struct ctstack_slice {
    slice: Slice,
}

/// Opens the image file at `path` (UTF-8) and stores a new slice handle in `*out`.
///
/// Ownership: on success the caller owns `*out` and must release it with
/// `ctstack_slice_free`; on failure `*out` is set to NULL. Threading: a slice may
/// be read from several threads at once; different slices are independent.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_slice_open(
    path: *const c_char,
    out: *mut *mut ctstack_slice,
) -> ctstack_status {
    ffi_boundary! {
        // SAFETY: per the contract above.
        let out = unsafe { OutHandle::new(out, "out") }?;
        // SAFETY: per the contract above.
        let path = unsafe { utf8_arg(path, "path") }?;
        let options = OpenOptions {
            read_mode: policy::read_mode(),
            ..OpenOptions::default()
        };
        out.set(ctstack_slice { slice: Slice::open_with(path, &options)? });
        Ok(())
    }
}

/// Releases a slice and its mapping. NULL is a no-op. Pointers from
/// `ctstack_slice_data` become invalid.
///
/// # Safety
/// `slice` is NULL or a handle from `ctstack_slice_open` not yet freed, used by no
/// other thread during or after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_slice_free(slice: *mut ctstack_slice) {
    // SAFETY: per the contract above.
    ffi_boundary! { unsafe { free_handle(slice) } }
}

/// Runs `f` on a live slice handle, or returns `T::default()` for NULL.
///
/// # Safety
/// `slice` is NULL or a live slice handle.
unsafe fn query<T: Default>(slice: *const ctstack_slice, f: impl FnOnce(&Slice) -> T) -> T {
    // SAFETY: NULL or live, as the caller guarantees.
    unsafe { slice.as_ref() }.map_or_else(T::default, |s| f(&s.slice))
}

/// Width in pixels; 0 if `slice` is NULL.
///
/// # Safety
/// `slice` is NULL or a live slice handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_slice_width(slice: *const ctstack_slice) -> u32 {
    // SAFETY: per the contract above.
    ffi_boundary! { unsafe { query(slice, Slice::width) } }
}

/// Height in pixels; 0 if `slice` is NULL.
///
/// # Safety
/// `slice` is NULL or a live slice handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_slice_height(slice: *const ctstack_slice) -> u32 {
    // SAFETY: per the contract above.
    ffi_boundary! { unsafe { query(slice, Slice::height) } }
}

/// Bits per sample: 8, 16 or 32 (`CTSTACK_SAMPLE_F32`); 0 if `slice` is NULL.
///
/// # Safety
/// `slice` is NULL or a live slice handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_slice_bits(slice: *const ctstack_slice) -> u32 {
    // SAFETY: per the contract above.
    ffi_boundary! { unsafe { query(slice, Slice::bits) } }
}

/// The sample type, a `CTSTACK_SAMPLE_*` value; 0 if `slice` is NULL.
///
/// # Safety
/// `slice` is NULL or a live slice handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_slice_sample_type(slice: *const ctstack_slice) -> i32 {
    // SAFETY: per the contract above.
    ffi_boundary! { unsafe { query(slice, |s| sample_type_code(s.sample_type())) } }
}

/// 1 if the pixels are served straight from the mapped file, 0 if decoded,
/// copied or read into memory instead of mapped (see `ctstack_set_mmap_policy`),
/// or `slice` is NULL.
///
/// # Safety
/// `slice` is NULL or a live slice handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_slice_is_zero_copy(slice: *const ctstack_slice) -> i32 {
    // SAFETY: per the contract above.
    ffi_boundary! { unsafe { query(slice, |s| i32::from(s.is_zero_copy())) } }
}

/// Runs `fill` on `dst` viewed as `T` samples when aligned, else through an aligned
/// temporary copied into `dst` (a C caller's `void *` may be unaligned).
pub(super) fn with_samples<T: Sample>(
    dst: &mut [u8],
    fill: impl FnOnce(&mut [T]) -> Result<(), Error>,
) -> Result<(), Error> {
    match bytemuck::try_cast_slice_mut::<u8, T>(dst) {
        Ok(samples) => fill(samples),
        Err(_) => {
            let mut tmp = vec![T::default(); dst.len() / std::mem::size_of::<T>()];
            fill(&mut tmp)?;
            dst.copy_from_slice(bytemuck::cast_slice(&tmp));
            Ok(())
        }
    }
}

/// Copies width*height samples, row-major, native-endian, into `dst`;
/// `dst_len` must equal width*height*bits/8 (else CTSTACK_ERR_MISMATCH). `dst`
/// needs no particular alignment. Thread-safe on a shared slice.
///
/// # Safety
/// `slice` is NULL or a live slice handle; `dst` is NULL or writable for `dst_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_slice_read(
    slice: *const ctstack_slice,
    dst: *mut c_void,
    dst_len: usize,
) -> ctstack_status {
    ffi_boundary! {
        // SAFETY: per the contract above.
        let s = &unsafe { handle(slice, "slice") }?.slice;
        // SAFETY: per the contract above.
        let dst = unsafe { buffer(dst, dst_len, "dst") }?;
        if dst_len != s.image_bytes() {
            return Err(Failure {
                status: ctstack_status::CTSTACK_ERR_MISMATCH,
                message: format!(
                    "{}: dst_len is {dst_len} bytes, the {}x{} {} slice needs {}",
                    s.path().display(),
                    s.width(),
                    s.height(),
                    s.sample_type(),
                    s.image_bytes()
                ),
            });
        }
        with_sample_type!(s.sample_type(), T => with_samples::<T>(dst, |d| s.copy_to(d)))?;
        Ok(())
    }
}

/// The samples in place, row-major, native-endian: `*data` points to
/// `*len` = width*height*bits/8 bytes, valid until `ctstack_slice_free`. A pointer
/// into the mapped file when zero-copy, else into the slice's own buffer (for a
/// file with scattered strips, assembled on first use and kept). Read-only.
///
/// # Safety
/// `slice` is NULL or a live slice handle; `data` and `len` are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_slice_data(
    slice: *const ctstack_slice,
    data: *mut *const c_void,
    len: *mut usize,
) -> ctstack_status {
    ffi_boundary! {
        if data.is_null() || len.is_null() {
            return Err(invalid("data or len is NULL"));
        }
        // SAFETY: per the contract above.
        let s = &unsafe { handle(slice, "slice") }?.slice;
        let bytes: &[u8] = with_sample_type!(s.sample_type(), T => {
            bytemuck::cast_slice(s.contiguous::<T>()?)
        });
        // SAFETY: both checked non-NULL and writable per the contract.
        unsafe {
            *data = bytes.as_ptr().cast();
            *len = bytes.len();
        }
        Ok(())
    }
}

/// The 2x2x2 mean of `a` and `b` into (width/2)*(height/2) samples of the same
/// type; `a == b` is allowed. Sizes or types that differ, or a `dst_len` other
/// than (width/2)*(height/2)*bits/8, give CTSTACK_ERR_MISMATCH. Uses all cores.
///
/// # Safety
/// `a`, `b` are NULL or live slice handles; `dst` is NULL or writable for `dst_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_average_pair(
    a: *const ctstack_slice,
    b: *const ctstack_slice,
    dst: *mut c_void,
    dst_len: usize,
) -> ctstack_status {
    ffi_boundary! {
        // SAFETY: per the contract above.
        let (a, b) = unsafe { (&handle(a, "a")?.slice, &handle(b, "b")?.slice) };
        // SAFETY: per the contract above.
        let dst = unsafe { buffer(dst, dst_len, "dst") }?;
        let describe = |s: &Slice| format!("{}x{} {}", s.width(), s.height(), s.sample_type());
        if (a.width(), a.height(), a.sample_type()) != (b.width(), b.height(), b.sample_type()) {
            return Err(Error::mismatch(format!(
                "{} is {} but {} is {}",
                a.path().display(),
                describe(a),
                b.path().display(),
                describe(b)
            ))
            .into());
        }
        let want = (a.width() as usize / 2) * (a.height() as usize / 2) * a.sample_type().bytes();
        if dst_len != want {
            return Err(Error::mismatch(format!(
                "dst_len is {dst_len} bytes, the average of two {} slices needs {want}",
                describe(a)
            ))
            .into());
        }
        with_sample_type!(a.sample_type(), T => {
            let (ra, rb) = (a.rows::<T>()?, b.rows::<T>()?);
            with_samples::<T>(dst, |out| average_pair(&ra, &rb, out))?
        });
        Ok(())
    }
}
