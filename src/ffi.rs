//! The C ABI (the contract is shared/ABI.md; the header, include/ctstack.h, is
//! generated from this file by cbindgen). This file holds the ABI and nothing else.
//!
//! Conventions for every function:
//! - It never unwinds: the body runs behind one panic boundary (`boundary`) and a
//!   panic becomes `CTSTACK_ERR_INTERNAL`.
//! - NULL arguments give `CTSTACK_ERR_INVALID_ARGUMENT`; `_free(NULL)` is a no-op.
//! - A failed call stores its message for [`ctstack_last_error`], per thread.
//! - Status codes come from [`ErrorKind`] through `status_of`, in one place.

#![allow(non_camel_case_types)]

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use crate::{
    CancelFlag, Error, ErrorKind, OpenOptions, PyramidBuilder, ReadMode, Rows, Sample, Slice,
    average_pair,
};

/// Success.
pub const CTSTACK_OK: i32 = 0;
/// File missing or unreadable, write failure.
pub const CTSTACK_ERR_IO: i32 = 1;
/// Not a TIFF, malformed or truncated TIFF.
pub const CTSTACK_ERR_FORMAT: i32 = 2;
/// A valid TIFF this library does not handle (RGB, float, 1-bit, or beyond the size limits).
pub const CTSTACK_ERR_UNSUPPORTED: i32 = 3;
/// Slices differ in size or depth, or a destination buffer has the wrong length.
pub const CTSTACK_ERR_MISMATCH: i32 = 4;
/// The progress callback (or a cancel call) asked to stop.
pub const CTSTACK_ERR_CANCELLED: i32 = 5;
/// Null pointer, path not UTF-8, min_size out of range.
pub const CTSTACK_ERR_INVALID_ARGUMENT: i32 = 6;
/// A caught panic or other bug.
pub const CTSTACK_ERR_INTERNAL: i32 = 7;

/// Memory-map policy `auto` (the default): map, except small files and files on
/// network filesystems, which are read (see `ctstack_set_mmap_policy`).
pub const CTSTACK_MMAP_AUTO: i32 = 0;
/// Memory-map policy `always`: map every file.
pub const CTSTACK_MMAP_ALWAYS: i32 = 1;
/// Memory-map policy `never`: read every file into memory (immune to truncation).
pub const CTSTACK_MMAP_NEVER: i32 = 2;

/// The largest accepted `min_size`: larger values are almost surely a negative
/// number passed through a signed type.
const MAX_MIN_SIZE: u32 = i32::MAX as u32;

/// The one mapping from error kinds to status codes.
fn status_of(kind: ErrorKind) -> i32 {
    match kind {
        ErrorKind::Io => CTSTACK_ERR_IO,
        ErrorKind::Format => CTSTACK_ERR_FORMAT,
        // A file beyond the limits is a valid TIFF this library will not handle.
        ErrorKind::Unsupported | ErrorKind::LimitsExceeded => CTSTACK_ERR_UNSUPPORTED,
        ErrorKind::Mismatch => CTSTACK_ERR_MISMATCH,
        ErrorKind::Cancelled => CTSTACK_ERR_CANCELLED,
        ErrorKind::Usage => CTSTACK_ERR_INVALID_ARGUMENT,
    }
}

/// A failure inside an ABI call: a status and its message.
struct Failure {
    status: i32,
    message: String,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure {
            status: status_of(e.kind()),
            message: e.to_string(),
        }
    }
}

fn invalid(message: impl Into<String>) -> Failure {
    Failure {
        status: CTSTACK_ERR_INVALID_ARGUMENT,
        message: message.into(),
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    let c = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("internal error (a bug in ctstack, please report it): {text}")
}

/// The panic boundary: runs `body`, turns its failure or panic into a status code
/// and records the message for `ctstack_last_error`.
fn boundary(body: impl FnOnce() -> Result<(), Failure>) -> i32 {
    let failure = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return CTSTACK_OK,
        Ok(Err(failure)) => failure,
        Err(payload) => Failure {
            status: CTSTACK_ERR_INTERNAL,
            message: panic_message(&*payload),
        },
    };
    set_last_error(&failure.message);
    failure.status
}

/// The panic boundary for functions that return a value rather than a status.
fn boundary_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        set_last_error(&panic_message(&*payload));
        fallback
    })
}

/// A `&str` from a C string argument.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string valid for the call.
unsafe fn utf8_arg<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(invalid(format!("{name} is NULL")));
    }
    // SAFETY: non-NULL, and the caller guarantees NUL termination and validity.
    let c = unsafe { CStr::from_ptr(ptr) };
    c.to_str()
        .map_err(|_| invalid(format!("{name} is not valid UTF-8")))
}

/// A shared reference from a handle argument.
///
/// # Safety
/// `ptr` is NULL or a live handle of this type made by this library.
unsafe fn handle<'a, T>(ptr: *const T, name: &str) -> Result<&'a T, Failure> {
    // SAFETY: the caller guarantees a live handle when non-NULL.
    unsafe { ptr.as_ref() }.ok_or_else(|| invalid(format!("{name} is NULL")))
}

/// A caller's byte buffer.
///
/// # Safety
/// `ptr` is NULL or valid for writes of `len` bytes for the call.
unsafe fn buffer<'a>(ptr: *mut c_void, len: usize, name: &str) -> Result<&'a mut [u8], Failure> {
    if ptr.is_null() {
        return Err(invalid(format!("{name} is NULL")));
    }
    // SAFETY: non-NULL, and the caller guarantees `len` writable bytes.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr.cast::<u8>(), len) })
}

fn min_size_arg(min_size: u32) -> Result<u32, Failure> {
    match min_size {
        0 => Ok(crate::DEFAULT_MIN_SIZE),
        n if n > MAX_MIN_SIZE => Err(invalid(format!(
            "min_size {n} is out of range (1..={MAX_MIN_SIZE}, or 0 for 500)"
        ))),
        n => Ok(n),
    }
}

/// Runs `fill` on `dst` viewed as `T` samples when aligned, else through an aligned
/// temporary copied into `dst` (a C caller's `void *` may be unaligned).
fn with_samples<T: Sample>(
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

/// The process-wide memory-map policy, a `CTSTACK_MMAP_*` value.
static MMAP_POLICY: AtomicI32 = AtomicI32::new(CTSTACK_MMAP_AUTO);

/// The read mode that the current policy selects.
fn read_mode() -> ReadMode {
    match MMAP_POLICY.load(Ordering::Relaxed) {
        CTSTACK_MMAP_ALWAYS => ReadMode::Mmap,
        CTSTACK_MMAP_NEVER => ReadMode::Buffered,
        _ => ReadMode::Auto,
    }
}

/// Sets the process-wide memory-map policy for every later `ctstack_slice_open`
/// and pyramid run (`ctstack_build_pyramid`, `ctstack_pyramid_start*`; a job
/// reads the policy when it starts): `CTSTACK_MMAP_AUTO` (0, the default) maps
/// files except those on network filesystems (NFS, SMB, FUSE, ...), which it
/// reads; `CTSTACK_MMAP_ALWAYS` (1) maps every file;
/// `CTSTACK_MMAP_NEVER` (2) reads every file into memory. Any other value gives
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
pub extern "C" fn ctstack_set_mmap_policy(policy: i32) -> i32 {
    boundary(|| match policy {
        CTSTACK_MMAP_AUTO | CTSTACK_MMAP_ALWAYS | CTSTACK_MMAP_NEVER => {
            MMAP_POLICY.store(policy, Ordering::Relaxed);
            Ok(())
        }
        other => Err(invalid(format!(
            "mmap policy {other} is not one of 0 (auto), 1 (always), 2 (never)"
        ))),
    })
}

/// The current memory-map policy: `CTSTACK_MMAP_AUTO` (0), `CTSTACK_MMAP_ALWAYS`
/// (1) or `CTSTACK_MMAP_NEVER` (2). Threading: callable from any thread.
#[unsafe(no_mangle)]
pub extern "C" fn ctstack_mmap_policy() -> i32 {
    boundary_value(CTSTACK_MMAP_AUTO, || MMAP_POLICY.load(Ordering::Relaxed))
}

/// One image (page 0) of a TIFF file. Opaque.
pub struct ctstack_slice {
    slice: Slice,
}

/// Opens the TIFF file at `path` (UTF-8) and stores a new slice handle in `*out`.
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
) -> i32 {
    boundary(|| {
        if out.is_null() {
            return Err(invalid("out is NULL"));
        }
        // SAFETY: `out` is non-NULL and writable per the contract.
        unsafe { *out = std::ptr::null_mut() };
        // SAFETY: per the contract above.
        let path = unsafe { utf8_arg(path, "path") }?;
        let options = OpenOptions {
            read_mode: read_mode(),
            ..OpenOptions::default()
        };
        let slice = Slice::open_with(path, &options)?;
        // SAFETY: as above.
        unsafe { *out = Box::into_raw(Box::new(ctstack_slice { slice })) };
        Ok(())
    })
}

/// Releases a slice and its mapping. NULL is a no-op. Pointers from
/// `ctstack_slice_data` become invalid.
///
/// # Safety
/// `slice` is NULL or a handle from `ctstack_slice_open` not yet freed, used by no
/// other thread during or after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_slice_free(slice: *mut ctstack_slice) {
    boundary_value((), || {
        if !slice.is_null() {
            // SAFETY: the handle came from Box::into_raw and is freed once.
            drop(unsafe { Box::from_raw(slice) });
        }
    })
}

/// Width in pixels; 0 if `slice` is NULL.
///
/// # Safety
/// `slice` is NULL or a live slice handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_slice_width(slice: *const ctstack_slice) -> u32 {
    // SAFETY: per the contract above.
    boundary_value(0, || {
        // SAFETY: the caller passes NULL or a live handle (the function's contract).
        unsafe { slice.as_ref() }.map_or(0, |s| s.slice.width())
    })
}

/// Height in pixels; 0 if `slice` is NULL.
///
/// # Safety
/// `slice` is NULL or a live slice handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_slice_height(slice: *const ctstack_slice) -> u32 {
    // SAFETY: per the contract above.
    boundary_value(0, || {
        // SAFETY: the caller passes NULL or a live handle (the function's contract).
        unsafe { slice.as_ref() }.map_or(0, |s| s.slice.height())
    })
}

/// Bits per sample, 8 or 16; 0 if `slice` is NULL.
///
/// # Safety
/// `slice` is NULL or a live slice handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_slice_bits(slice: *const ctstack_slice) -> u32 {
    // SAFETY: per the contract above.
    boundary_value(0, || {
        // SAFETY: the caller passes NULL or a live handle (the function's contract).
        unsafe { slice.as_ref() }.map_or(0, |s| s.slice.bits())
    })
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
    boundary_value(0, || {
        // SAFETY: the caller passes NULL or a live handle (the function's contract).
        unsafe { slice.as_ref() }.map_or(0, |s| i32::from(s.slice.is_zero_copy()))
    })
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
) -> i32 {
    boundary(|| {
        // SAFETY: per the contract above.
        let s = &unsafe { handle(slice, "slice") }?.slice;
        // SAFETY: per the contract above.
        let dst = unsafe { buffer(dst, dst_len, "dst") }?;
        if dst_len != s.image_bytes() {
            return Err(Failure {
                status: CTSTACK_ERR_MISMATCH,
                message: format!(
                    "{}: dst_len is {dst_len} bytes, the {}x{} {}-bit slice needs {}",
                    s.path().display(),
                    s.width(),
                    s.height(),
                    s.bits(),
                    s.image_bytes()
                ),
            });
        }
        match s.bits() {
            8 => with_samples::<u8>(dst, |d| s.copy_to(d))?,
            _ => with_samples::<u16>(dst, |d| s.copy_to(d))?,
        }
        Ok(())
    })
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
) -> i32 {
    boundary(|| {
        if data.is_null() || len.is_null() {
            return Err(invalid("data or len is NULL"));
        }
        // SAFETY: per the contract above.
        let s = &unsafe { handle(slice, "slice") }?.slice;
        let bytes: &[u8] = match s.bits() {
            8 => s.contiguous::<u8>()?,
            _ => bytemuck::cast_slice(s.contiguous::<u16>()?),
        };
        // SAFETY: both checked non-NULL and writable per the contract.
        unsafe {
            *data = bytes.as_ptr().cast();
            *len = bytes.len();
        }
        Ok(())
    })
}

/// The 2x2x2 mean of `a` and `b` into (width/2)*(height/2) samples of the same
/// depth; `a == b` is allowed. Sizes or depths that differ, or a `dst_len` other
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
) -> i32 {
    boundary(|| {
        // SAFETY: per the contract above.
        let (a, b) = unsafe { (&handle(a, "a")?.slice, &handle(b, "b")?.slice) };
        // SAFETY: per the contract above.
        let dst = unsafe { buffer(dst, dst_len, "dst") }?;
        if (a.width(), a.height(), a.bits()) != (b.width(), b.height(), b.bits()) {
            return Err(Error::mismatch(format!(
                "{} is {}x{} {}-bit but {} is {}x{} {}-bit",
                a.path().display(),
                a.width(),
                a.height(),
                a.bits(),
                b.path().display(),
                b.width(),
                b.height(),
                b.bits()
            ))
            .into());
        }
        let want = (a.width() as usize / 2) * (a.height() as usize / 2) * (a.bits() as usize / 8);
        if dst_len != want {
            return Err(Error::mismatch(format!(
                "dst_len is {dst_len} bytes, the average of two {}x{} {}-bit slices needs {want}",
                a.width(),
                a.height(),
                a.bits()
            ))
            .into());
        }
        fn run<T: Sample>(a: &Slice, b: &Slice, dst: &mut [u8]) -> Result<(), Error> {
            let (ra, rb): (Rows<'_, T>, Rows<'_, T>) = (a.rows()?, b.rows()?);
            with_samples::<T>(dst, |out| average_pair(&ra, &rb, out))
        }
        match a.bits() {
            8 => run::<u8>(a, b, dst)?,
            _ => run::<u16>(a, b, dst)?,
        }
        Ok(())
    })
}

/// Progress callback: `done` of `total` work units (one per output slice); return
/// nonzero to cancel the run.
pub type ctstack_progress_fn =
    Option<unsafe extern "C" fn(done: u64, total: u64, user_data: *mut c_void) -> i32>;

/// A validated pyramid request, before it runs.
struct Request {
    builder: Result<PyramidBuilder, Error>,
}

impl Request {
    /// # Safety
    /// String arguments are NULL or NUL-terminated.
    unsafe fn from_dir(
        input_dir: *const c_char,
        output_dir: *const c_char,
        min_size: u32,
    ) -> Result<Request, Failure> {
        // SAFETY: per the contract of the caller.
        let input = unsafe { utf8_arg(input_dir, "input_dir") }?;
        let output = if output_dir.is_null() {
            None
        } else {
            // SAFETY: as above.
            Some(unsafe { utf8_arg(output_dir, "output_dir") }?)
        };
        let min_size = min_size_arg(min_size)?;
        let builder = PyramidBuilder::from_dir(input).map(|b| {
            let b = b.min_size(min_size).read_mode(read_mode());
            match output {
                Some(o) => b.output_dir(o),
                None => b,
            }
        });
        Ok(Request { builder })
    }

    /// Plans and runs: the same work whether on the caller's thread or a job's.
    fn run(self, progress: &mut dyn FnMut(u64, u64), cancel: &CancelFlag) -> Result<(), Error> {
        self.builder?.plan()?.run(progress, cancel).map(|_| ())
    }
}

/// Builds the pyramid of the .tif/.tiff files in `input_dir` (natural order) into
/// `<output_dir>/<k>/<j:06>.tif`. `output_dir` NULL: `<input_dir>/.thumbnail`;
/// `min_size` 0: 500; `progress` may be NULL. Blocks until done; `progress` is
/// called on the calling thread after every output slice, and a nonzero return
/// cancels (CTSTACK_ERR_CANCELLED). Valid existing outputs are kept (resume); no
/// partial or temporary file is left behind.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `progress`, if set, is safe to call
/// with `user_data` from this thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_build_pyramid(
    input_dir: *const c_char,
    output_dir: *const c_char,
    min_size: u32,
    progress: ctstack_progress_fn,
    user_data: *mut c_void,
) -> i32 {
    boundary(|| {
        // SAFETY: per the contract above.
        let request = unsafe { Request::from_dir(input_dir, output_dir, min_size) }?;
        let cancel = CancelFlag::new();
        let mut report = |done: u64, total: u64| {
            if let Some(f) = progress {
                // SAFETY: the caller vouches for the callback and its user_data.
                if unsafe { f(done, total, user_data) } != 0 {
                    cancel.cancel();
                }
            }
        };
        request.run(&mut report, &cancel)?;
        Ok(())
    })
}

/// A pyramid build running on its own thread. Opaque.
pub struct ctstack_job {
    shared: Arc<JobState>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// What the job's thread and its pollers share.
struct JobState {
    cancel: CancelFlag,
    done: AtomicU64,
    total: AtomicU64,
    finished: AtomicBool,
    status: AtomicI32,
    error: OnceLock<CString>,
}

fn start_job(request: Request, out: *mut *mut ctstack_job) {
    let shared = Arc::new(JobState {
        cancel: CancelFlag::new(),
        done: AtomicU64::new(0),
        total: AtomicU64::new(0),
        finished: AtomicBool::new(false),
        status: AtomicI32::new(CTSTACK_OK),
        error: OnceLock::new(),
    });
    let state = Arc::clone(&shared);
    let thread = std::thread::spawn(move || {
        let status = boundary(|| {
            let mut report = |done: u64, total: u64| {
                state.total.store(total, Ordering::Relaxed);
                state.done.store(done, Ordering::Release);
            };
            request
                .run(&mut report, &state.cancel)
                .map_err(Failure::from)
        });
        if status != CTSTACK_OK {
            let message = LAST_ERROR.with(|e| e.borrow().clone());
            let _ = state.error.set(message);
        }
        state.status.store(status, Ordering::Release);
        state.finished.store(true, Ordering::Release);
    });
    let job = ctstack_job {
        shared,
        thread: Mutex::new(Some(thread)),
    };
    // SAFETY: `out` was checked non-NULL by the caller of this function.
    unsafe { *out = Box::into_raw(Box::new(job)) };
}

/// Starts `ctstack_build_pyramid`'s work on a background thread and stores the job
/// in `*out` (same arguments and semantics; no callback: poll
/// `ctstack_job_progress`). Returns CTSTACK_OK once started; the run's own status
/// comes from `ctstack_job_wait`. Ownership: the caller owns `*out` and must
/// release it with `ctstack_job_free`; on failure `*out` is NULL.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_pyramid_start(
    input_dir: *const c_char,
    output_dir: *const c_char,
    min_size: u32,
    out: *mut *mut ctstack_job,
) -> i32 {
    boundary(|| {
        if out.is_null() {
            return Err(invalid("out is NULL"));
        }
        // SAFETY: non-NULL and writable per the contract.
        unsafe { *out = std::ptr::null_mut() };
        // SAFETY: per the contract above.
        let request = unsafe { Request::from_dir(input_dir, output_dir, min_size) }?;
        start_job(request, out);
        Ok(())
    })
}

/// Like `ctstack_pyramid_start`, for an explicit, ordered list of `n_paths` slice
/// files; `output_dir` is required.
///
/// # Safety
/// `paths` is NULL or points to `n_paths` NUL-terminated strings; other arguments as
/// for `ctstack_pyramid_start`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_pyramid_start_files(
    paths: *const *const c_char,
    n_paths: usize,
    output_dir: *const c_char,
    min_size: u32,
    out: *mut *mut ctstack_job,
) -> i32 {
    boundary(|| {
        if out.is_null() {
            return Err(invalid("out is NULL"));
        }
        // SAFETY: non-NULL and writable per the contract.
        unsafe { *out = std::ptr::null_mut() };
        if paths.is_null() {
            return Err(invalid("paths is NULL"));
        }
        if n_paths == 0 {
            return Err(invalid("n_paths is 0: the stack is empty"));
        }
        // SAFETY: `paths` holds `n_paths` pointers per the contract.
        let list = unsafe { std::slice::from_raw_parts(paths, n_paths) };
        let mut files = Vec::with_capacity(n_paths);
        for (i, &p) in list.iter().enumerate() {
            // SAFETY: each is NULL or NUL-terminated per the contract.
            files.push(PathBuf::from(unsafe {
                utf8_arg(p, &format!("paths[{i}]"))
            }?));
        }
        // SAFETY: per the contract above.
        let output = unsafe { utf8_arg(output_dir, "output_dir") }?;
        let min_size = min_size_arg(min_size)?;
        let builder = Ok(PyramidBuilder::from_files(files, output)
            .min_size(min_size)
            .read_mode(read_mode()));
        start_job(Request { builder }, out);
        Ok(())
    })
}

/// Fills `*done` and `*total` (either may be NULL); returns 1 while the job runs, 0
/// once it has finished (or `job` is NULL). Callable from any thread.
///
/// # Safety
/// `job` is NULL or a live job handle; `done`, `total` are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_job_progress(
    job: *const ctstack_job,
    done: *mut u64,
    total: *mut u64,
) -> i32 {
    boundary_value(0, || {
        // SAFETY: per the contract above.
        let Some(job) = (unsafe { job.as_ref() }) else {
            return 0;
        };
        let s = &job.shared;
        let running = !s.finished.load(Ordering::Acquire);
        // `done` first: the job stores `total` before `done` (Release), so a `done`
        // read with Acquire is never ahead of the `total` read after it.
        let d = s.done.load(Ordering::Acquire);
        let t = s.total.load(Ordering::Relaxed);
        // SAFETY: each is NULL or writable per the contract.
        unsafe {
            if let Some(total) = total.as_mut() {
                *total = t;
            }
            if let Some(done) = done.as_mut() {
                *done = d;
            }
        }
        i32::from(running)
    })
}

/// Asks the job to stop; returns at once. The job then ends with
/// CTSTACK_ERR_CANCELLED (unless it had finished). Callable from any thread.
///
/// # Safety
/// `job` is NULL or a live job handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_job_cancel(job: *mut ctstack_job) {
    boundary_value((), || {
        // SAFETY: per the contract above.
        if let Some(job) = unsafe { job.as_ref() } {
            job.shared.cancel.cancel();
        }
    })
}

/// Blocks until the job has finished and returns its status (CTSTACK_OK,
/// CTSTACK_ERR_CANCELLED, ...); may be called again, and from any thread.
///
/// # Safety
/// `job` is NULL or a live job handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_job_wait(job: *mut ctstack_job) -> i32 {
    boundary(|| {
        // SAFETY: per the contract above.
        let job = unsafe { handle(job.cast_const(), "job") }?;
        // The lock is held while joining, so a second waiter blocks until the run ends.
        let mut thread = job.thread.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = thread.take() {
            // The job's body runs behind its own panic boundary, so join cannot fail.
            let _ = t.join();
        }
        drop(thread);
        match job.shared.status.load(Ordering::Acquire) {
            CTSTACK_OK => Ok(()),
            status => Err(Failure {
                status,
                message: job
                    .shared
                    .error
                    .get()
                    .map(|m| m.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            }),
        }
    })
}

/// The failed run's message, "" if none (or not finished, or `job` is NULL); valid
/// until `ctstack_job_free`.
///
/// # Safety
/// `job` is NULL or a live job handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_job_error(job: *const ctstack_job) -> *const c_char {
    boundary_value(c"".as_ptr(), || {
        // SAFETY: per the contract above.
        let job = unsafe { job.as_ref() };
        match job
            .filter(|j| j.shared.finished.load(Ordering::Acquire))
            .and_then(|j| j.shared.error.get())
        {
            Some(message) => message.as_ptr(),
            None => c"".as_ptr(),
        }
    })
}

/// Releases a job; if it still runs, cancels it and waits for it first. NULL is a no-op.
///
/// # Safety
/// `job` is NULL or a live job handle, used by no other thread during or after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_job_free(job: *mut ctstack_job) {
    boundary_value((), || {
        if job.is_null() {
            return;
        }
        // SAFETY: the handle came from Box::into_raw and is freed once.
        let job = unsafe { Box::from_raw(job) };
        job.shared.cancel.cancel();
        if let Some(t) = job.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    })
}

/// The message of the last failed call on this thread, "" if none. Valid until the
/// next failing call on this thread.
#[unsafe(no_mangle)]
pub extern "C" fn ctstack_last_error() -> *const c_char {
    boundary_value(c"".as_ptr(), || LAST_ERROR.with(|e| e.borrow().as_ptr()))
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
