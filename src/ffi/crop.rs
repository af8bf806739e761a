//! Crops: `ctstack_crop_options`, a checked crop (`ctstack_crop`), its shape, an
//! array read on the caller's thread, and a job that writes the files.

use std::ffi::{CString, c_char, c_void};
use std::ops::Range;
use std::sync::OnceLock;

use super::boundary::{
    Failure, OutHandle, buffer, ffi_boundary, free_handle, handle, invalid, optional_utf8_arg,
    write_optional,
};
use super::ctstack_status;
use super::job::ctstack_job;
use super::options::{Input, selection_of};
use super::policy;
use super::pyramid::ctstack_progress_fn;
use super::report::JobReport;
use super::slice::{sample_type_code, with_samples};
use super::versioned::{self, Versioned};
use crate::sample::with_sample_type;
use crate::{CancelFlag, Crop, CropPlan, Naming, OutputFormat};

/// Output format: the source's (TIFF for TIFF and for pyramid levels, BMP for
/// BMP, PNG for PNG, PNG for JPEG).
pub const CTSTACK_CROP_FORMAT_SOURCE: i32 = 0;
/// Output format: uncompressed TIFF, any sample type.
pub const CTSTACK_CROP_FORMAT_TIFF: i32 = 1;
/// Output format: PNG, 8- or 16-bit gray.
pub const CTSTACK_CROP_FORMAT_PNG: i32 = 2;
/// Output format: BMP, 8-bit gray with a gray palette.
pub const CTSTACK_CROP_FORMAT_BMP: i32 = 3;

/// The settings of a crop. Fill it with `ctstack_crop_options_init`, then change
/// the fields you need (later versions append fields; `struct_size` tells which
/// ones the caller knows). Coordinates are half-open and in the level's pixels:
/// columns `x0..x1`, rows `y0..y1`, slices `z0..z1` (0-based); an end of 0 means
/// the level's end (so all zeros is every slice, whole).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ctstack_crop_options {
    /// `sizeof(ctstack_crop_options)` as the caller compiled it (set by init).
    pub struct_size: usize,
    /// 0: the slices themselves; k >= 1: level k of the pyramid built from them.
    pub level: u32,
    /// First column.
    pub x0: u32,
    /// End column (excluded); 0: the level's width.
    pub x1: u32,
    /// First row.
    pub y0: u32,
    /// End row (excluded); 0: the level's height.
    pub y1: u32,
    /// First slice of the level.
    pub z0: u64,
    /// End slice (excluded); 0: the level's slice count.
    pub z1: u64,
    /// Where the files go (required by `ctstack_crop_start`; created if missing).
    pub output_dir: *const c_char,
    /// The pyramid's folder; NULL: `<input_dir>/.thumbnail` (`STEM.thumbnail`
    /// beside a multi-page TIFF); required for a file list at level >= 1.
    pub pyramid_dir: *const c_char,
    /// A `CTSTACK_CROP_FORMAT_*` value. Default: the source's.
    pub format: i32,
    /// NULL (the default): at level 0 the sources' own names, at level k the
    /// pyramid's `<j:06>`; otherwise numbered names,
    /// `name_prefix + (name_start + j)` zero-padded to `name_width` digits, `j`
    /// the slice's index in its level. A prefix with a path separator, `..` or
    /// `:` is refused.
    pub name_prefix: *const c_char,
    /// See `name_prefix`.
    pub name_start: u64,
    /// See `name_prefix`.
    pub name_width: u32,
    /// Slices read and written at once; 0 (the default) is one per core.
    pub threads: u32,
    /// A `CTSTACK_MMAP_*` policy for this crop; init sets the process-wide one.
    pub mmap_policy: i32,
    /// Stack selection of a directory input, as in `ctstack_pyramid_options`.
    pub prefix: *const c_char,
    /// See `prefix`.
    pub extension: *const c_char,
    /// See `prefix`; both -1 (the default): no range.
    pub index_first: i64,
    /// See `index_first`.
    pub index_last: i64,
    /// See `prefix`; 0 (the default): any width.
    pub index_width: u32,
    /// In a folder of numbered files, slice `i` is the file numbered `first + i`
    /// (`first`: `index_first`, else the first file's number), and a number with
    /// no file is missing (at level k >= 1, so is every slice from the first gap
    /// on). 0 (the default): a missing slice in the range fails the plan with
    /// CTSTACK_ERR_STATE naming the numbers, nothing written; nonzero: missing
    /// slices are left out, each run named by `ctstack_crop_warning` and in the
    /// job report's warnings.
    pub skip_missing: u32,
}

// SAFETY: `#[repr(C)]`, `struct_size: usize` first, fields only appended, and
// every field a C integer, float or raw pointer (the fields above).
unsafe impl Versioned for ctstack_crop_options {
    const INIT: &'static str = "ctstack_crop_options_init";

    fn defaults() -> Self {
        ctstack_crop_options::defaults()
    }
}

impl ctstack_crop_options {
    fn defaults() -> ctstack_crop_options {
        ctstack_crop_options {
            struct_size: std::mem::size_of::<ctstack_crop_options>(),
            level: 0,
            x0: 0,
            x1: 0,
            y0: 0,
            y1: 0,
            z0: 0,
            z1: 0,
            output_dir: std::ptr::null(),
            pyramid_dir: std::ptr::null(),
            format: CTSTACK_CROP_FORMAT_SOURCE,
            name_prefix: std::ptr::null(),
            name_start: 0,
            name_width: 0,
            threads: 0,
            mmap_policy: policy::current(),
            prefix: std::ptr::null(),
            extension: std::ptr::null(),
            index_first: -1,
            index_last: -1,
            index_width: 0,
            skip_missing: 0,
        }
    }

    /// The caller's options, or the defaults for NULL; fields past the caller's
    /// `struct_size` keep their defaults.
    ///
    /// # Safety
    /// `ptr` is NULL or points to a `ctstack_crop_options` of at least its own
    /// `struct_size` bytes.
    unsafe fn read(ptr: *const ctstack_crop_options) -> Result<ctstack_crop_options, Failure> {
        // SAFETY: as this function's contract.
        match unsafe { versioned::read(ptr, "options") }? {
            Some(options) => Ok(options),
            None => Ok(ctstack_crop_options::defaults()),
        }
    }

    /// The crop these options describe, of `input`.
    ///
    /// # Safety
    /// String fields are NULL or NUL-terminated.
    unsafe fn crop(&self, input: Input) -> Result<Crop, Failure> {
        // SAFETY: per the contract above.
        let selection = unsafe {
            selection_of(
                self.prefix,
                self.extension,
                (self.index_first, self.index_last),
                self.index_width,
                "options->",
            )
        }?;
        let mut crop = match input {
            Input::Dir(dir) if dir.is_file() => {
                if selection.is_some() {
                    return Err(invalid(
                        "options->prefix, extension, index_* select files of a directory, \
                         not the pages of one file",
                    ));
                }
                Crop::from_file(dir)
            }
            Input::Dir(dir) => Crop::from_selection(dir, &selection.unwrap_or_default()),
            Input::Files(files) => {
                if selection.is_some() {
                    return Err(invalid(
                        "options->prefix, extension, index_* select files of a directory, \
                         not of a list of files",
                    ));
                }
                Crop::from_files(files)
            }
        };
        crop = crop.level(self.level as usize);
        crop = crop.skip_missing(self.skip_missing != 0);
        crop = crop.read_mode(policy::read_mode_of(self.mmap_policy)?);
        // SAFETY: per the contract above.
        if let Some(dir) = unsafe { optional_utf8_arg(self.output_dir, "options->output_dir") }? {
            crop = crop.output_dir(dir);
        }
        // SAFETY: per the contract above.
        if let Some(dir) = unsafe { optional_utf8_arg(self.pyramid_dir, "options->pyramid_dir") }? {
            crop = crop.pyramid_dir(dir);
        }
        crop = crop.format(match self.format {
            CTSTACK_CROP_FORMAT_SOURCE => OutputFormat::Source,
            CTSTACK_CROP_FORMAT_TIFF => OutputFormat::Tiff,
            CTSTACK_CROP_FORMAT_PNG => OutputFormat::Png,
            CTSTACK_CROP_FORMAT_BMP => OutputFormat::Bmp,
            other => {
                return Err(invalid(format!(
                    "options->format {other} is not a CTSTACK_CROP_FORMAT_* value (0 to 3)"
                )));
            }
        });
        // SAFETY: per the contract above.
        let name_prefix = unsafe { optional_utf8_arg(self.name_prefix, "options->name_prefix") }?;
        if let Some(prefix) = name_prefix {
            crop = crop.naming(Naming::numbered(
                prefix,
                self.name_start,
                self.name_width as usize,
            ));
        }
        if self.threads > 0 {
            crop = crop.threads(self.threads as usize);
        }
        let open_ends = [self.x1 == 0, self.y1 == 0, self.z1 == 0];
        let whole = open_ends.iter().all(|&e| e) && self.x0 == 0 && self.y0 == 0 && self.z0 == 0;
        if whole {
            return Ok(crop);
        }
        // An end of 0 is the level's: planned once without a box to learn it.
        let shape = if open_ends.iter().any(|&e| e) {
            crop.plan()?.level_shape()
        } else {
            crate::LevelShape {
                width: self.x1,
                height: self.y1,
                count: usize::MAX,
            }
        };
        Ok(self.with_box(crop, (shape.width, shape.height, shape.count)))
    }

    /// `crop` with the options' box, ends of 0 replaced by `(width, height, count)`.
    fn with_box(&self, crop: Crop, (width, height, count): (u32, u32, usize)) -> Crop {
        let end = |v: u32, whole: u32| if v == 0 { whole } else { v };
        let x: Range<u32> = self.x0..end(self.x1, width);
        let y: Range<u32> = self.y0..end(self.y1, height);
        let z1 = if self.z1 == 0 {
            count
        } else {
            usize::try_from(self.z1).unwrap_or(usize::MAX)
        };
        let z0 = usize::try_from(self.z0).unwrap_or(usize::MAX);
        crop.region(x, y).slices(z0..z1)
    }
}

/// Fills `*options` with the defaults (every slice of level 0, whole, in the
/// source's format and names, one thread per core, the process-wide mmap policy).
/// `size` must be `sizeof(ctstack_crop_options)` as the caller compiled it; NULL
/// or a size too small for `struct_size` does nothing.
///
/// # Safety
/// `options` is NULL or writable for `size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_crop_options_init(
    options: *mut ctstack_crop_options,
    size: usize,
) {
    ffi_boundary! {
        // SAFETY: as this function's contract.
        unsafe { versioned::init(options, size) }
    }
}

/// A checked crop, ready to read into an array or to write. Opaque.
pub struct ctstack_crop {
    plan: CropPlan,
    /// The output names as C strings, made on first use.
    names: OnceLock<Vec<CString>>,
    /// The plan's warnings as C strings, made on first use.
    warnings: OnceLock<Vec<CString>>,
}

/// # Safety
/// As for `ctstack_crop_plan`, with `input` made from the caller's arguments.
unsafe fn plan_into(
    input: impl FnOnce() -> Result<Input, Failure>,
    options: *const ctstack_crop_options,
    out: *mut *mut ctstack_crop,
) -> Result<(), Failure> {
    // SAFETY: per the contract above.
    let out = unsafe { OutHandle::new(out, "out") }?;
    // SAFETY: per the contract above.
    let options = unsafe { ctstack_crop_options::read(options) }?;
    // SAFETY: the option strings are the caller's, live for this call.
    let crop = unsafe { options.crop(input()?) }?;
    out.set(ctstack_crop {
        plan: crop.plan()?,
        names: OnceLock::new(),
        warnings: OnceLock::new(),
    });
    Ok(())
}

/// Checks a crop of the stack in `input_dir` (selected as for a pyramid, or the
/// pages of one multi-page TIFF) with `options` (NULL: the defaults): the
/// headers, at level k the pyramid (missing, stale or incomplete:
/// CTSTACK_ERR_STATE, saying to build it), the box and range (outside
/// the level: CTSTACK_ERR_INVALID_ARGUMENT naming its bounds), the format and
/// the names. Nothing is written. Ownership: the caller owns `*out` and frees it
/// with `ctstack_crop_free`; on failure `*out` is NULL.
///
/// # Safety
/// `input_dir` is NULL or NUL-terminated; `options` is NULL or an initialised
/// options struct whose strings are NULL or NUL-terminated; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_crop_plan(
    input_dir: *const c_char,
    options: *const ctstack_crop_options,
    out: *mut *mut ctstack_crop,
) -> ctstack_status {
    ffi_boundary! {
        // SAFETY: per the contract above.
        unsafe { plan_into(|| Input::dir(input_dir), options, out) }
    }
}

/// `ctstack_crop_plan` for an explicit, ordered list of `n_paths` slice files.
///
/// # Safety
/// `paths` is NULL or points to `n_paths` NUL-terminated strings; other
/// arguments as for `ctstack_crop_plan`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_crop_plan_files(
    paths: *const *const c_char,
    n_paths: usize,
    options: *const ctstack_crop_options,
    out: *mut *mut ctstack_crop,
) -> ctstack_status {
    ffi_boundary! {
        // SAFETY: per the contract above.
        unsafe { plan_into(|| Input::files(paths, n_paths), options, out) }
    }
}

/// The crop's shape: slices, height, width, and its sample type (a
/// `CTSTACK_SAMPLE_*` value); any pointer may be NULL.
///
/// # Safety
/// `crop` is NULL or a live crop handle; the others are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_crop_shape(
    crop: *const ctstack_crop,
    count: *mut u64,
    height: *mut u32,
    width: *mut u32,
    sample_type: *mut i32,
) -> ctstack_status {
    ffi_boundary! {
        // SAFETY: per the contract above.
        let plan = &unsafe { handle(crop, "crop") }?.plan;
        let (n, h, w) = plan.shape();
        // SAFETY: each is NULL or writable per the contract.
        unsafe {
            write_optional(count, n as u64);
            write_optional(height, h);
            write_optional(width, w);
            write_optional(sample_type, sample_type_code(plan.sample_type()));
        }
        Ok(())
    }
}

/// Output file name `i` (0 ..< count) of the crop, "" if none. Valid while the
/// crop lives.
///
/// # Safety
/// `crop` is NULL or a live crop handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_crop_output_name(
    crop: *const ctstack_crop,
    i: u64,
) -> *const c_char {
    ffi_boundary! {
        // SAFETY: per the contract above.
        match unsafe { crop.as_ref() } {
            Some(c) => c.names_c().get(i as usize).map_or(c"".as_ptr(), |n| n.as_ptr()),
            None => c"".as_ptr(),
        }
    }
}

/// Warning `i` (0, 1, ...) of the checked crop: a run of missing slices left
/// out under `options->skip_missing`, naming the numbers; NULL past the last
/// (and for a crop with none). Show these to the user. Valid while the crop lives.
///
/// # Safety
/// `crop` is NULL or a live crop handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_crop_warning(crop: *const ctstack_crop, i: u64) -> *const c_char {
    ffi_boundary! {
        // SAFETY: per the contract above.
        match unsafe { crop.as_ref() } {
            Some(c) => c
                .warnings_c()
                .get(usize::try_from(i).unwrap_or(usize::MAX))
                .map_or(std::ptr::null(), |w| w.as_ptr()),
            None => std::ptr::null(),
        }
    }
}

impl ctstack_crop {
    /// The plan's warnings as C strings.
    fn warnings_c(&self) -> &[CString] {
        self.warnings.get_or_init(|| {
            let warnings = self.plan.warnings().iter();
            warnings
                .map(|w| CString::new(w.replace('\0', " ")).unwrap_or_default())
                .collect()
        })
    }

    /// The output names as C strings.
    fn names_c(&self) -> &[CString] {
        self.names.get_or_init(|| {
            let names = self.plan.output_names().iter();
            names
                .map(|n| CString::new(n.replace('\0', " ")).unwrap_or_default())
                .collect()
        })
    }
}

/// Reads the crop into `dst`, one contiguous (count, height, width) volume,
/// row-major, native-endian: `dst_len` must be count * height * width * bytes
/// per sample (else CTSTACK_ERR_MISMATCH); `dst` needs no alignment. Blocks;
/// `progress` (may be NULL) is called on the calling thread after every slice,
/// and a nonzero return cancels (CTSTACK_ERR_CANCELLED). No file is written.
///
/// # Safety
/// `crop` is NULL or a live crop handle; `dst` is NULL or writable for
/// `dst_len` bytes; `progress`, if set, is safe to call with `user_data` from
/// this thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_crop_read(
    crop: *const ctstack_crop,
    dst: *mut c_void,
    dst_len: usize,
    progress: ctstack_progress_fn,
    user_data: *mut c_void,
) -> ctstack_status {
    ffi_boundary! {
        // SAFETY: per the contract above.
        let plan = &unsafe { handle(crop, "crop") }?.plan;
        // SAFETY: per the contract above.
        let dst = unsafe { buffer(dst, dst_len, "dst") }?;
        let want = plan.samples() as u128 * plan.sample_type().bytes() as u128;
        if dst_len as u128 != want {
            let (n, h, w) = plan.shape();
            return Err(Failure {
                status: ctstack_status::CTSTACK_ERR_MISMATCH,
                message: format!(
                    "dst_len is {dst_len} bytes, the crop ({n} x {h}x{w} {}) needs {want}",
                    plan.sample_type()
                ),
            });
        }
        let cancel = CancelFlag::new();
        let mut report = |done: u64, total: u64| {
            if let Some(f) = progress {
                // SAFETY: the caller vouches for the callback and its user_data.
                if unsafe { f(done, total, user_data) } != 0 {
                    cancel.cancel();
                }
            }
        };
        with_sample_type!(plan.sample_type(), T => {
            with_samples::<T>(dst, |samples| plan.crop_to_array(samples, &mut report, &cancel))?
        });
        Ok(())
    }
}

/// Reads part of the crop into `dst`, numpy's `[z0:z1:zs, y0:y1:ys, x0:x1:xs]`:
/// `start`, `end` and `step` each point to 3 numbers, slices, rows, columns
/// (z, y, x), half-open ranges relative to the crop's box, steps >= 1. `dst`
/// receives one contiguous volume of `ceil((end - start) / step)` per axis,
/// row-major, native-endian; `dst_len` must be its size in bytes (else
/// CTSTACK_ERR_MISMATCH); `dst` needs no alignment. Only the kept slices are
/// read, and with a row step only the kept rows. One crop of a whole level
/// serves any number of these reads (planning reads every slice's header;
/// this reads only the box). Blocks; thread-safe on a shared crop. An empty
/// range, a step of 0 or a range outside the crop is CTSTACK_ERR_INVALID_ARGUMENT.
///
/// # Safety
/// `crop` is NULL or a live crop handle; `start`, `end`, `step` are NULL or
/// readable for 3 `uint64_t`; `dst` is NULL or writable for `dst_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_crop_read_box(
    crop: *const ctstack_crop,
    start: *const u64,
    end: *const u64,
    step: *const u64,
    dst: *mut c_void,
    dst_len: usize,
) -> ctstack_status {
    ffi_boundary! {
        // SAFETY: per the contract above.
        let plan = &unsafe { handle(crop, "crop") }?.plan;
        // SAFETY: per the contract above.
        let (start, end, step) = unsafe {
            (triple(start, "start")?, triple(end, "end")?, triple(step, "step")?)
        };
        let (n, h, w) = plan.shape();
        let bounds = [n as u64, u64::from(h), u64::from(w)];
        for (i, axis) in ["z (slices)", "y (rows)", "x (columns)"].iter().enumerate() {
            if start[i] > bounds[i] || end[i] > bounds[i] {
                return Err(invalid(format!(
                    "{axis} {}..{} is past the crop's 0..{} (the crop is {n} x {h}x{w})",
                    start[i], end[i], bounds[i]
                )));
            }
        }
        // Within the bounds, so each fits its type.
        let step_of = |i: usize| usize::try_from(step[i]).unwrap_or(usize::MAX);
        let z = (start[0] as usize..end[0] as usize, step_of(0));
        let y = (start[1] as u32..end[1] as u32, step_of(1));
        let x = (start[2] as u32..end[2] as u32, step_of(2));
        // SAFETY: per the contract above.
        let dst = unsafe { buffer(dst, dst_len, "dst") }?;
        let bytes = plan.sample_type().bytes();
        if !dst_len.is_multiple_of(bytes) {
            return Err(Failure {
                status: ctstack_status::CTSTACK_ERR_MISMATCH,
                message: format!(
                    "dst_len is {dst_len} bytes, not a whole number of {} samples",
                    plan.sample_type()
                ),
            });
        }
        with_sample_type!(plan.sample_type(), T => {
            with_samples::<T>(dst, |samples| plan.read_box(z, y, x, samples))?
        });
        Ok(())
    }
}

/// The physical voxel size (z, y, x) in `unit` (an NGFF space unit:
/// "micrometer", "millimeter", ...; NULL: "micrometer") of the crop's first
/// source, by the rule of the OME-Zarr writer (`VoxelSize::of_stack`: its
/// resolution tags (XResolution, YResolution and ResolutionUnit, or an ImageJ
/// file's `unit=` and `spacing=`; without a z step, z equals x), else the
/// scanner's file beside it, such as a Bruker NRecon `.log`). `*found` is 1 and
/// `size` holds the three numbers when one is found; 0 (and `size` untouched)
/// when not (no tags, no scanner's file, an unknown unit): the size is then
/// unknown, not an error. At level k the source is the pyramid's slice, whose
/// tags carry the level's own (coarser) size. Built with the `ome-zarr`
/// feature (the default).
///
/// # Safety
/// `crop` is NULL or a live crop handle; `unit` is NULL or NUL-terminated;
/// `size` is NULL or writable for 3 `double`s; `found` is NULL or writable.
#[cfg(feature = "ome-zarr")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_crop_voxel_size(
    crop: *const ctstack_crop,
    unit: *const c_char,
    size: *mut f64,
    found: *mut i32,
) -> ctstack_status {
    ffi_boundary! {
        // SAFETY: per the contract above.
        let plan = &unsafe { handle(crop, "crop") }?.plan;
        // SAFETY: per the contract above.
        let unit = unsafe { optional_utf8_arg(unit, "unit") }?.unwrap_or("micrometer");
        if size.is_null() || found.is_null() {
            return Err(invalid(if size.is_null() { "size is NULL" } else { "found is NULL" }));
        }
        let from_tags = plan.sources().first().and_then(|s| {
            let size = crate::VoxelSize::of_stack(&s.path).size?;
            let per_unit = crate::zarr::micrometres_per(unit)?;
            Some((size.micrometres.map(|v| v / per_unit), size.source))
        });
        // SAFETY: non-NULL and writable per the contract above (3 doubles for size).
        unsafe {
            match from_tags {
                Some((zyx, _)) => {
                    std::ptr::write_unaligned(size.cast::<[f64; 3]>(), zyx);
                    *found = 1;
                }
                None => *found = 0,
            }
        }
        Ok(())
    }
}

/// Three numbers (z, y, x) from a caller's array.
///
/// # Safety
/// `ptr` is NULL or readable for 3 `u64`.
unsafe fn triple(ptr: *const u64, name: &str) -> Result<[u64; 3], Failure> {
    if ptr.is_null() {
        return Err(invalid(format!("{name} is NULL")));
    }
    // SAFETY: non-NULL, and the caller guarantees 3 readable numbers; read
    // unaligned, as a C caller's array may be packed anywhere.
    Ok(unsafe { std::ptr::read_unaligned(ptr.cast::<[u64; 3]>()) })
}

/// Starts writing the crop's files (into `options->output_dir` of the plan) on
/// a background thread and stores the job in `*out`: poll it with
/// `ctstack_job_progress` (one unit per file), cancel it with
/// `ctstack_job_cancel`, wait with `ctstack_job_wait`; its report
/// (`ctstack_job_report_get`) counts the files written in `rebuilt` and gives
/// the crop's notes as warnings. Every file appears atomically; a failing slice
/// stops the job with an error naming it. A file at an output name that
/// ctstack did not write (the folder's `.ctstack-crop.json` lists what its
/// crops wrote) is never replaced: the job stops with `CTSTACK_ERR_STATE`
/// naming it, before anything is written. The job keeps its own copy of the
/// crop: `crop` may be freed at once. Ownership: the caller owns `*out` and
/// frees it with `ctstack_job_free`; on failure `*out` is NULL.
///
/// # Safety
/// `crop` is NULL or a live crop handle; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_crop_start(
    crop: *const ctstack_crop,
    out: *mut *mut ctstack_job,
) -> ctstack_status {
    ffi_boundary! {
        // SAFETY: per the contract above.
        let out = unsafe { OutHandle::new(out, "out") }?;
        // SAFETY: per the contract above.
        let plan = unsafe { handle(crop, "crop") }?.plan.clone();
        out.set(ctstack_job::spawn(move |report, cancel| {
            plan.run(report, cancel).map(JobReport::crop).map_err(Failure::from)
        }));
        Ok(())
    }
}

/// Releases a crop; NULL is a no-op.
///
/// # Safety
/// `crop` is NULL or a live crop handle, used by no other thread during or after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_crop_free(crop: *mut ctstack_crop) {
    // SAFETY: per the contract above.
    ffi_boundary! { unsafe { free_handle(crop) } }
}
