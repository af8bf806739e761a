//! Building a pyramid on the caller's thread.

use std::ffi::{c_char, c_void};

use super::boundary::ffi_boundary;
use super::ctstack_status;
use super::options::{Input, Request, ctstack_pyramid_options};
use crate::CancelFlag;

/// Progress callback: `done` of `total` work units (one per output slice); return
/// nonzero to cancel the run.
pub type ctstack_progress_fn =
    Option<unsafe extern "C" fn(done: u64, total: u64, user_data: *mut c_void) -> i32>;

/// Runs `request` on this thread, reporting to `progress`.
///
/// # Safety
/// `progress`, if set, is safe to call with `user_data` from this thread.
unsafe fn build(
    request: Request,
    progress: ctstack_progress_fn,
    user_data: *mut c_void,
) -> Result<(), super::boundary::Failure> {
    let step = request.step()?;
    let builder = request.into_owned()?;
    let cancel = CancelFlag::new();
    let mut report = |done: u64, total: u64| {
        if let Some(f) = progress {
            // SAFETY: the caller vouches for the callback and its user_data.
            if unsafe { f(done, total, user_data) } != 0 {
                cancel.cancel();
            }
        }
    };
    step.run(&builder, &mut report, &cancel)?;
    Ok(())
}

/// Builds the pyramid of the slices in `input_dir` (found by extension, natural
/// order; a multi-page TIFF among them gives all its pages), or of the pages of
/// `input_dir` when it names one multi-page TIFF (ImageJ/Fiji, tifffile), with
/// `options` (NULL: the defaults of `ctstack_pyramid_options_init`).
/// Blocks until done; `progress` (may be NULL) is called on the calling thread
/// after every output slice, and a nonzero return cancels (CTSTACK_ERR_CANCELLED).
/// No partial or temporary file is left behind.
///
/// # Safety
/// `input_dir` is NULL or NUL-terminated; `options` is NULL or an initialised
/// options struct whose strings are NULL or NUL-terminated; `progress`, if set, is
/// safe to call with `user_data` from this thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_pyramid_build(
    input_dir: *const c_char,
    options: *const ctstack_pyramid_options,
    progress: ctstack_progress_fn,
    user_data: *mut c_void,
) -> ctstack_status {
    ffi_boundary! {
        // SAFETY: per the contract above.
        let request = unsafe { Request::new(Input::dir(input_dir)?, options) }?;
        // SAFETY: per the contract above.
        unsafe { build(request, progress, user_data) }
    }
}

/// `ctstack_pyramid_build` for an explicit, ordered list of `n_paths` slice
/// files (each multi-page TIFF gives all its pages, in order);
/// `options->output_dir` is required.
///
/// # Safety
/// `paths` is NULL or points to `n_paths` NUL-terminated strings; other arguments
/// as for `ctstack_pyramid_build`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_pyramid_build_files(
    paths: *const *const c_char,
    n_paths: usize,
    options: *const ctstack_pyramid_options,
    progress: ctstack_progress_fn,
    user_data: *mut c_void,
) -> ctstack_status {
    ffi_boundary! {
        // SAFETY: per the contract above.
        let request = unsafe { Request::new(Input::files(paths, n_paths)?, options) }?;
        // SAFETY: per the contract above.
        unsafe { build(request, progress, user_data) }
    }
}
