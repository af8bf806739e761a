//! The panic boundary every ABI function runs behind, the thread's last error,
//! and the checked conversions of raw arguments.
//!
//! Each `extern "C"` function's body is one [`ffi_boundary!`] block. The
//! function's return type decides what the block produces ([`Returned`]): a
//! function returning [`ctstack_status`] has a `Result<(), Failure>` body (a
//! failure's message goes to `ctstack_last_error`); a function returning a plain
//! value has a body of that value. A panic becomes the type's
//! [`Returned::on_panic`] value (for a status, `CTSTACK_ERR_INTERNAL`), so no
//! function writes a fallback of its own.

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::status::ctstack_status;
use crate::Error;

/// A failure inside an ABI call: a status and its message.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub status: ctstack_status,
    pub message: String,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure {
            status: ctstack_status::of(e.kind()),
            message: e.message_for(crate::Dialect::C),
        }
    }
}

/// A `CTSTACK_ERR_INVALID_ARGUMENT` failure.
pub(crate) fn invalid(message: impl Into<String>) -> Failure {
    Failure {
        status: ctstack_status::CTSTACK_ERR_INVALID_ARGUMENT,
        message: message.into(),
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

pub(crate) fn set_last_error(message: &str) {
    let c = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// The calling thread's last error; valid until its next failing call.
pub(crate) fn last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("internal error (a bug in ctstack, please report it): {text}")
}

/// What an ABI function returns, and what its body produces for it.
pub(crate) trait Returned: Sized {
    /// What the body evaluates to.
    type Body;
    /// The return value for a body that finished.
    fn finish(body: Self::Body) -> Self;
    /// The return value for a body that panicked.
    fn on_panic() -> Self;
}

impl Returned for ctstack_status {
    type Body = Result<(), Failure>;
    fn finish(body: Result<(), Failure>) -> ctstack_status {
        match body {
            Ok(()) => ctstack_status::CTSTACK_OK,
            Err(failure) => {
                set_last_error(&failure.message);
                failure.status
            }
        }
    }
    fn on_panic() -> ctstack_status {
        ctstack_status::CTSTACK_ERR_INTERNAL
    }
}

/// Plain values: returned as they are; a panic gives the type's zero.
macro_rules! plain_returned {
    ($($t:ty => $zero:expr),* $(,)?) => {$(
        impl Returned for $t {
            type Body = $t;
            fn finish(body: $t) -> $t {
                body
            }
            fn on_panic() -> $t {
                $zero
            }
        }
    )*};
}
plain_returned!(() => (), u32 => 0, i32 => 0, *const c_char => c"".as_ptr());

/// Runs `body` behind the panic boundary (see the module doc); `R`, the
/// function's return type, decides what `body` must produce.
pub(crate) fn run<R: Returned>(body: impl FnOnce() -> R::Body) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(outcome) => R::finish(outcome),
        Err(payload) => {
            set_last_error(&panic_message(&*payload));
            R::on_panic()
        }
    }
}

/// The body of an ABI function, behind the panic boundary: `ffi_boundary! { ... }`.
macro_rules! ffi_boundary {
    ($($body:tt)*) => {
        $crate::ffi::boundary::run(move || { $($body)* })
    };
}
pub(crate) use ffi_boundary;

/// A `&str` from a C string argument.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string valid for the call.
pub(crate) unsafe fn utf8_arg<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(invalid(format!("{name} is NULL")));
    }
    // SAFETY: non-NULL, and the caller guarantees NUL termination and validity.
    let c = unsafe { CStr::from_ptr(ptr) };
    c.to_str()
        .map_err(|_| invalid(format!("{name} is not valid UTF-8")))
}

/// [`utf8_arg`] where NULL means "not given".
///
/// # Safety
/// As for [`utf8_arg`].
pub(crate) unsafe fn optional_utf8_arg<'a>(
    ptr: *const c_char,
    name: &str,
) -> Result<Option<&'a str>, Failure> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: as the caller guarantees.
    unsafe { utf8_arg(ptr, name) }.map(Some)
}

/// A shared reference from a handle argument.
///
/// # Safety
/// `ptr` is NULL or a live handle of this type made by this library.
pub(crate) unsafe fn handle<'a, T>(ptr: *const T, name: &str) -> Result<&'a T, Failure> {
    // SAFETY: the caller guarantees a live handle when non-NULL.
    unsafe { ptr.as_ref() }.ok_or_else(|| invalid(format!("{name} is NULL")))
}

/// A caller's byte buffer.
///
/// # Safety
/// `ptr` is NULL or valid for writes of `len` bytes for the call.
pub(crate) unsafe fn buffer<'a>(
    ptr: *mut c_void,
    len: usize,
    name: &str,
) -> Result<&'a mut [u8], Failure> {
    if ptr.is_null() {
        return Err(invalid(format!("{name} is NULL")));
    }
    // SAFETY: non-NULL, and the caller guarantees `len` writable bytes.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr.cast::<u8>(), len) })
}

/// An out-parameter for a new handle: checked non-NULL and set to NULL, so it
/// holds NULL on every failure; [`OutHandle::set`] stores the handle on success.
pub(crate) struct OutHandle<T>(*mut *mut T);

impl<T> OutHandle<T> {
    /// # Safety
    /// `out` is NULL or valid for writing one pointer during the call.
    pub(crate) unsafe fn new(out: *mut *mut T, name: &str) -> Result<OutHandle<T>, Failure> {
        if out.is_null() {
            return Err(invalid(format!("{name} is NULL")));
        }
        // SAFETY: non-NULL and writable per the caller's guarantee.
        unsafe { *out = std::ptr::null_mut() };
        Ok(OutHandle(out))
    }

    /// Hands `value` to the caller, who then owns it.
    pub(crate) fn set(self, value: T) {
        // SAFETY: checked non-NULL and writable in `new`, for this call.
        unsafe { *self.0 = Box::into_raw(Box::new(value)) };
    }
}

/// Writes `value` through an optional out-pointer (NULL: not wanted).
///
/// # Safety
/// `ptr` is NULL or valid for one write of `T`.
pub(crate) unsafe fn write_optional<T>(ptr: *mut T, value: T) {
    // SAFETY: NULL or writable, as the caller guarantees.
    if let Some(slot) = unsafe { ptr.as_mut() } {
        *slot = value;
    }
}

/// Drops a handle made by [`OutHandle::set`]; NULL is a no-op.
///
/// # Safety
/// `ptr` is NULL or a handle from [`OutHandle::set`] not yet freed and not used
/// by another thread during or after the call.
pub(crate) unsafe fn free_handle<T>(ptr: *mut T) {
    if !ptr.is_null() {
        // SAFETY: it came from Box::into_raw and is freed once, per the contract.
        drop(unsafe { Box::from_raw(ptr) });
    }
}
