//! What a finished job reports: the output folder, the levels, the counts kept /
//! rebuilt / removed, the warnings and the elapsed time.

use std::ffi::{CString, c_char};

use super::boundary::{Failure, ffi_boundary, handle, invalid};
use super::ctstack_status;
use super::job::ctstack_job;
use crate::{CropSummary, Summary};

/// A finished run's summary (a pyramid's or a crop's), with its strings as C
/// strings (they live as long as the job).
pub(crate) struct JobReport {
    levels: usize,
    kept: usize,
    rebuilt: usize,
    removed: usize,
    elapsed: std::time::Duration,
    output_dir: CString,
    warnings: Vec<CString>,
}

/// The image files a directory's selection left out, as warnings: the
/// command line's notes ([`Listing::left_out_notes`](crate::stack::Listing::left_out_notes)),
/// so every interface says the same.
pub(crate) fn left_out(listing: Option<&crate::stack::Listing>) -> impl Iterator<Item = String> {
    listing
        .map(|l| l.left_out_notes())
        .unwrap_or_default()
        .into_iter()
}

fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).unwrap_or_default()
}

impl JobReport {
    /// A pyramid run's report.
    pub(crate) fn new(summary: Summary) -> JobReport {
        JobReport {
            levels: summary.levels.len().saturating_sub(1),
            kept: summary.kept,
            rebuilt: summary.rebuilt,
            removed: summary.removed,
            elapsed: summary.elapsed,
            output_dir: c_string(&summary.output_dir.to_string_lossy()),
            warnings: summary.warnings.iter().map(|w| c_string(w)).collect(),
        }
    }

    /// A crop run's report: `rebuilt` counts the files written, `warnings` holds
    /// the plan's notes.
    pub(crate) fn crop(summary: CropSummary) -> JobReport {
        JobReport {
            levels: 0,
            kept: 0,
            rebuilt: summary.written,
            removed: 0,
            elapsed: summary.elapsed,
            output_dir: c_string(&summary.output_dir.to_string_lossy()),
            warnings: summary.notes.iter().map(|w| c_string(w)).collect(),
        }
    }
}

/// What a finished job did. Fill `struct_size` with `sizeof(ctstack_job_report)`
/// before the call: later versions append fields and fill only what the caller
/// knows. For a crop job (`ctstack_crop_start`): `rebuilt` is the number of
/// files written, the warnings are the crop's notes, the other counts are 0.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ctstack_job_report {
    /// `sizeof(ctstack_job_report)` as the caller compiled it.
    pub struct_size: usize,
    /// Levels beyond the input (L): the output has levels 1 ..= L.
    pub levels: u32,
    /// Output slices that were valid and kept.
    pub kept: u64,
    /// Output slices written by the run.
    pub rebuilt: u64,
    /// Stale outputs of an earlier run removed.
    pub removed: u64,
    /// Warnings: read them with `ctstack_job_warning`.
    pub warnings: u32,
    /// Wall time of the run, in seconds.
    pub elapsed_seconds: f64,
}

/// The job's report, once it has finished.
fn finished(job: &ctstack_job) -> Result<&JobReport, Failure> {
    match job.outcome() {
        Some(Ok(report)) => Ok(report),
        Some(Err(failure)) => Err(failure.clone()),
        None => Err(invalid("the job has not finished: ctstack_job_wait first")),
    }
}

/// Fills `*report` with what the finished job did. Fails with the job's own
/// status if it failed, and CTSTACK_ERR_INVALID_ARGUMENT if it still runs.
///
/// # Safety
/// `job` is NULL or a live job handle; `report` is NULL or points to a
/// `ctstack_job_report` of at least its own `struct_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_job_report_get(
    job: *const ctstack_job,
    report: *mut ctstack_job_report,
) -> ctstack_status {
    ffi_boundary! {
        // SAFETY: per the contract above.
        let job = unsafe { handle(job, "job") }?;
        if report.is_null() {
            return Err(invalid("report is NULL"));
        }
        // SAFETY: non-NULL; the first field is always there.
        let size = unsafe { (*report).struct_size };
        // Version 1 is the whole struct as it is now.
        if size < std::mem::size_of::<ctstack_job_report>() {
            return Err(invalid(format!(
                "report->struct_size is {size}: set it to sizeof(ctstack_job_report)"
            )));
        }
        let r = finished(job)?;
        let filled = ctstack_job_report {
            struct_size: std::mem::size_of::<ctstack_job_report>(),
            levels: u32::try_from(r.levels).unwrap_or(u32::MAX),
            kept: r.kept as u64,
            rebuilt: r.rebuilt as u64,
            removed: r.removed as u64,
            warnings: u32::try_from(r.warnings.len()).unwrap_or(u32::MAX),
            elapsed_seconds: r.elapsed.as_secs_f64(),
        };
        // SAFETY: non-NULL and holds `size` bytes, of which this writes at most
        // the fields this version knows (a newer caller's later fields stay).
        unsafe {
            std::ptr::copy_nonoverlapping(
                (&raw const filled).cast::<u8>(),
                report.cast::<u8>(),
                size.min(std::mem::size_of::<ctstack_job_report>()),
            );
        }
        Ok(())
    }
}

/// Warning `i` (0 ..< the report's `warnings`) of the finished job. A pyramid
/// or OME-Zarr job's warnings start with the image files of the input folder
/// that the selection left out (named, a few, with their count, as the
/// command line says it), then the run's own: gaps in the numbering, files in
/// the output folder that are not outputs (left in place), a ctstack manifest
/// it could not trust (pyramid); gaps, an unknown voxel size, the user's files
/// left in a replaced store (OME-Zarr). A crop job's (`ctstack_crop_start`)
/// are the missing slices it skipped, then its notes. "" if there is no such
/// warning (or `job` is NULL or unfinished). Valid until `ctstack_job_free`.
///
/// # Safety
/// `job` is NULL or a live job handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_job_warning(job: *const ctstack_job, i: u32) -> *const c_char {
    ffi_boundary! {
        // SAFETY: per the contract above.
        unsafe { job.as_ref() }
            .and_then(|job| finished(job).ok())
            .and_then(|r| r.warnings.get(i as usize))
            .map_or(c"".as_ptr(), |w| w.as_ptr())
    }
}

/// The output folder of the finished job (open it with `ctstack_pyramid_open`);
/// "" if `job` is NULL, unfinished or failed. Valid until `ctstack_job_free`.
///
/// # Safety
/// `job` is NULL or a live job handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_job_output_dir(job: *const ctstack_job) -> *const c_char {
    ffi_boundary! {
        // SAFETY: per the contract above.
        unsafe { job.as_ref() }
            .and_then(|job| finished(job).ok())
            .map_or(c"".as_ptr(), |r| r.output_dir.as_ptr())
    }
}
