//! What a driver of a slab build (a distributed one, see `Plan::run_slab`) needs
//! before mapping slabs: the stack's length and the slab alignment, 2^L. The
//! slabs themselves run through `ctstack_pyramid_options.slab_start`/`slab_end`,
//! and `ctstack_job_start_finish` ends the build.

use std::ffi::c_char;

use super::boundary::{Failure, ffi_boundary, write_optional};
use super::ctstack_status;
use super::options::{Input, Request, ctstack_pyramid_options};

/// Plans `request` (reads every input's header) and writes its slab geometry.
///
/// # Safety
/// `n_inputs` and `alignment` are NULL or writable.
unsafe fn slab_geometry(
    request: Request,
    n_inputs: *mut u64,
    alignment: *mut u64,
) -> Result<(), Failure> {
    let plan = request.into_owned()?.plan()?;
    // SAFETY: per the contract above.
    unsafe {
        write_optional(n_inputs, plan.inputs().len() as u64);
        write_optional(alignment, plan.slab_alignment() as u64);
    }
    Ok(())
}

/// Checks the stack of `input_dir` as a build with `options` would (every
/// slice's header; the selection fields apply) and writes its slice count to
/// `*n_inputs` and the slab alignment 2^L (L: the level count) to `*alignment`
/// (either may be NULL). Slabs given to `options->slab_start`/`slab_end` start
/// and end on multiples of the alignment (the last may end at the stack's end).
///
/// # Safety
/// As for `ctstack_pyramid_build`; `n_inputs`, `alignment` are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_pyramid_slab_alignment(
    input_dir: *const c_char,
    options: *const ctstack_pyramid_options,
    n_inputs: *mut u64,
    alignment: *mut u64,
) -> ctstack_status {
    ffi_boundary! {
        // SAFETY: per the contract above.
        let request = unsafe { Request::new(Input::dir(input_dir)?, options) }?;
        // SAFETY: per the contract above.
        unsafe { slab_geometry(request, n_inputs, alignment) }
    }
}

/// `ctstack_pyramid_slab_alignment` for an explicit, ordered list of `n_paths`
/// slice files; `options->output_dir` is required.
///
/// # Safety
/// As for `ctstack_pyramid_build_files`; `n_inputs`, `alignment` are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_pyramid_slab_alignment_files(
    paths: *const *const c_char,
    n_paths: usize,
    options: *const ctstack_pyramid_options,
    n_inputs: *mut u64,
    alignment: *mut u64,
) -> ctstack_status {
    ffi_boundary! {
        // SAFETY: per the contract above.
        let request = unsafe { Request::new(Input::files(paths, n_paths)?, options) }?;
        // SAFETY: per the contract above.
        unsafe { slab_geometry(request, n_inputs, alignment) }
    }
}
