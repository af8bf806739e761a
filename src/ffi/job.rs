//! Jobs: a pyramid build or a crop on its own thread, polled for progress,
//! cancelled, waited for.

use std::ffi::{CString, c_char};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use super::boundary::{Failure, OutHandle, ffi_boundary, free_handle, handle, write_optional};
use super::ctstack_status;
use super::options::{Input, Request, Step, ctstack_pyramid_options};
use super::report::JobReport;
use crate::{CancelFlag, PyramidBuilder};

/// A pyramid build or a crop running on its own thread. Opaque.
pub struct ctstack_job {
    shared: Arc<JobState>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// What the job's thread and its pollers share.
struct JobState {
    cancel: CancelFlag,
    /// Progress: `total` is stored before `done` (Release), so a poller that reads
    /// `done` first (Acquire) never sees it ahead of `total`.
    done: AtomicU64,
    total: AtomicU64,
    /// The outcome, set once when the run ends: its report, or the failure and
    /// its message as a C string.
    outcome: OnceLock<Result<JobReport, (Failure, CString)>>,
}

impl Drop for ctstack_job {
    /// Cancels a job still running and waits for it.
    fn drop(&mut self) {
        self.shared.cancel.cancel();
        self.join();
    }
}

impl ctstack_job {
    fn start(builder: Result<PyramidBuilder, Failure>, step: Step) -> ctstack_job {
        ctstack_job::spawn(move |report, cancel| {
            let builder = builder?;
            let mut summary = step.run(&builder, report, cancel)?;
            summary
                .warnings
                .splice(0..0, super::report::left_out(builder.listing()));
            Ok(JobReport::new(summary))
        })
    }

    /// Runs `body` (a pyramid build, a crop) on its own thread, with the progress
    /// and cancel every job shares; its panics become `CTSTACK_ERR_INTERNAL`.
    pub(super) fn spawn(
        body: impl FnOnce(&mut dyn FnMut(u64, u64), &CancelFlag) -> Result<JobReport, Failure>
        + Send
        + 'static,
    ) -> ctstack_job {
        let shared = Arc::new(JobState {
            cancel: CancelFlag::new(),
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
            outcome: OnceLock::new(),
        });
        let state = Arc::clone(&shared);
        let thread = std::thread::spawn(move || {
            let mut report = |done: u64, total: u64| {
                state.total.store(total, Ordering::Relaxed);
                state.done.store(done, Ordering::Release);
            };
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                body(&mut report, &state.cancel)
            }));
            let outcome = match run {
                Ok(result) => result,
                Err(_) => Err(Failure {
                    status: ctstack_status::CTSTACK_ERR_INTERNAL,
                    message:
                        "internal error (a bug in ctstack, please report it): the job panicked"
                            .into(),
                }),
            };
            let _ = state.outcome.set(outcome.map_err(|f| {
                let c = CString::new(f.message.replace('\0', " ")).unwrap_or_default();
                (f, c)
            }));
        });
        ctstack_job {
            shared,
            thread: Mutex::new(Some(thread)),
        }
    }

    /// The outcome, once the run has ended.
    pub(super) fn outcome(&self) -> Option<Result<&JobReport, &Failure>> {
        self.shared
            .outcome
            .get()
            .map(|o| o.as_ref().map_err(|(failure, _)| failure))
    }

    /// Waits for the thread. The lock is held while joining, so a second waiter
    /// blocks until the run ends.
    fn join(&self) {
        let mut thread = self.thread.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = thread.take() {
            // The job's body catches its own panics, so join cannot fail.
            let _ = t.join();
        }
    }
}

/// Checks the request of `input` (made after `out` is checked) and `options`,
/// and stores its job in `*out`: the run the options say (the whole stack or a
/// slab) or, with `finish`, the last step of a slab build.
///
/// # Safety
/// `options` as for `ctstack_pyramid_build`; `out` is NULL or writable.
unsafe fn start_into(
    input: impl FnOnce() -> Result<Input, Failure>,
    options: *const ctstack_pyramid_options,
    out: *mut *mut ctstack_job,
    finish: bool,
) -> Result<(), Failure> {
    // SAFETY: per the contract above.
    let out = unsafe { OutHandle::new(out, "out") }?;
    // SAFETY: per the contract above.
    let request = unsafe { Request::new(input()?, options) }?;
    let (builder, step) = match finish {
        true => (request.into_finish()?, Step::Finish),
        false => {
            let step = request.step()?;
            (request.into_owned(), step)
        }
    };
    out.set(ctstack_job::start(builder, step));
    Ok(())
}

/// Starts `ctstack_pyramid_build`'s work on a background thread and stores the
/// job in `*out` (same arguments; no callback: poll `ctstack_job_progress`).
/// Returns CTSTACK_OK once started (bad options fail here); the run's own status
/// comes from `ctstack_job_wait`. Ownership: the caller owns `*out` and must
/// release it with `ctstack_job_free`; on failure `*out` is NULL.
///
/// # Safety
/// `input_dir` is NULL or NUL-terminated; `options` as for `ctstack_pyramid_build`;
/// `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_job_start(
    input_dir: *const c_char,
    options: *const ctstack_pyramid_options,
    out: *mut *mut ctstack_job,
) -> ctstack_status {
    ffi_boundary! {
        // SAFETY: per the contract above.
        unsafe { start_into(|| Input::dir(input_dir), options, out, false) }
    }
}

/// `ctstack_job_start` for an explicit, ordered list of `n_paths` slice files;
/// `options->output_dir` is required.
///
/// # Safety
/// `paths` is NULL or points to `n_paths` NUL-terminated strings; other arguments
/// as for `ctstack_job_start`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_job_start_files(
    paths: *const *const c_char,
    n_paths: usize,
    options: *const ctstack_pyramid_options,
    out: *mut *mut ctstack_job,
) -> ctstack_status {
    ffi_boundary! {
        // SAFETY: per the contract above.
        unsafe { start_into(|| Input::files(paths, n_paths), options, out, false) }
    }
}

/// Starts the last step of a slab build (see `ctstack_pyramid_options.slab_start`)
/// on a background thread, once every slab run has returned: checks that every
/// output is there and valid, writes the folder's manifest once, removes stale
/// outputs (only files an earlier manifest lists, unchanged since) and temporary
/// files as a whole run does, and removes the slab records. Same input and
/// options as the slab runs (the options' slab fields must be 0). Wait for it
/// with `ctstack_job_wait`; its report (`ctstack_job_report_get`) is the one a
/// whole run would give (`rebuilt`: outputs the slabs wrote; `elapsed_seconds`:
/// this step only). CTSTACK_ERR_STATE from the wait if an output is
/// missing (a slab failed: run it again, then finish); nothing is changed then.
/// Ownership as for `ctstack_job_start`.
///
/// # Safety
/// As for `ctstack_job_start`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_job_start_finish(
    input_dir: *const c_char,
    options: *const ctstack_pyramid_options,
    out: *mut *mut ctstack_job,
) -> ctstack_status {
    ffi_boundary! {
        // SAFETY: per the contract above.
        unsafe { start_into(|| Input::dir(input_dir), options, out, true) }
    }
}

/// `ctstack_job_start_finish` for an explicit, ordered list of `n_paths` slice
/// files; `options->output_dir` is required.
///
/// # Safety
/// As for `ctstack_job_start_files`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_job_start_finish_files(
    paths: *const *const c_char,
    n_paths: usize,
    options: *const ctstack_pyramid_options,
    out: *mut *mut ctstack_job,
) -> ctstack_status {
    ffi_boundary! {
        // SAFETY: per the contract above.
        unsafe { start_into(|| Input::files(paths, n_paths), options, out, true) }
    }
}

/// Fills `*done` and `*total` (either may be NULL); returns 1 while the job runs, 0
/// once it has finished (or `job` is NULL). Callable from any thread. `total` is
/// 0 while the job still checks its inputs' headers (before the first slice),
/// so a (0, 0) from a running job means "starting".
///
/// # Safety
/// `job` is NULL or a live job handle; `done`, `total` are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_job_progress(
    job: *const ctstack_job,
    done: *mut u64,
    total: *mut u64,
) -> i32 {
    ffi_boundary! {
        // SAFETY: per the contract above.
        let Some(job) = (unsafe { job.as_ref() }) else {
            return 0;
        };
        let s = &job.shared;
        let running = s.outcome.get().is_none();
        let d = s.done.load(Ordering::Acquire);
        let t = s.total.load(Ordering::Relaxed);
        // SAFETY: each is NULL or writable per the contract.
        unsafe {
            write_optional(total, t);
            write_optional(done, d);
        }
        i32::from(running)
    }
}

/// Asks the job to stop; returns at once. The job then ends with
/// CTSTACK_ERR_CANCELLED (unless it had finished). Callable from any thread.
///
/// # Safety
/// `job` is NULL or a live job handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_job_cancel(job: *mut ctstack_job) {
    ffi_boundary! {
        // SAFETY: per the contract above.
        if let Some(job) = unsafe { job.as_ref() } {
            job.shared.cancel.cancel();
        }
    }
}

/// Blocks until the job has finished and returns its status (CTSTACK_OK,
/// CTSTACK_ERR_CANCELLED, ...); may be called again, and from any thread.
///
/// # Safety
/// `job` is NULL or a live job handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_job_wait(job: *mut ctstack_job) -> ctstack_status {
    ffi_boundary! {
        // SAFETY: per the contract above.
        let job = unsafe { handle(job.cast_const(), "job") }?;
        job.join();
        match job.shared.outcome.get() {
            Some(Ok(_)) => Ok(()),
            Some(Err((failure, _))) => Err(failure.clone()),
            None => Err(Failure {
                status: ctstack_status::CTSTACK_ERR_INTERNAL,
                message: "the job's thread ended without an outcome".into(),
            }),
        }
    }
}

/// The failed run's message, "" if none (or not finished, or `job` is NULL); valid
/// until `ctstack_job_free`.
///
/// # Safety
/// `job` is NULL or a live job handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_job_error(job: *const ctstack_job) -> *const c_char {
    ffi_boundary! {
        // SAFETY: per the contract above.
        match unsafe { job.as_ref() }.and_then(|j| j.shared.outcome.get()) {
            Some(Err((_, message))) => message.as_ptr(),
            _ => c"".as_ptr(),
        }
    }
}

/// Releases a job; if it still runs, cancels it and waits for it first. NULL is a no-op.
///
/// # Safety
/// `job` is NULL or a live job handle, used by no other thread during or after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_job_free(job: *mut ctstack_job) {
    // SAFETY: per the contract above.
    ffi_boundary! { unsafe { free_handle(job) } }
}
