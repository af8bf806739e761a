//! `ctstack_pyramid_options`: every setting of a pyramid run, in one versioned
//! struct, and its conversion into a [`PyramidBuilder`].

use std::ffi::c_char;
use std::path::PathBuf;

use super::boundary::{Failure, ffi_boundary, invalid, optional_utf8_arg, utf8_arg};
use super::policy;
use super::versioned::{self, Versioned};
use crate::stack::Selection;
use crate::{DEFAULT_MIN_SIZE, PyramidBuilder, SampleType};

/// The default `min_size`: keep halving while width or height exceeds 500 px.
pub const CTSTACK_DEFAULT_MIN_SIZE: u32 = 500;
const _: () = assert!(CTSTACK_DEFAULT_MIN_SIZE == DEFAULT_MIN_SIZE);

/// The largest accepted `min_size` or `threads`: larger values are almost surely
/// a negative number passed through an unsigned type.
const MAX_ARG: u32 = i32::MAX as u32;

/// The settings of a pyramid run. Fill it with `ctstack_pyramid_options_init`,
/// then change the fields you need: later versions of the library append
/// fields, and `struct_size` tells it which ones the caller knows.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ctstack_pyramid_options {
    /// `sizeof(ctstack_pyramid_options)` as the caller compiled it (set by init).
    pub struct_size: usize,
    /// Where levels go (`<output_dir>/<k>/<j:06>.tif`); NULL: `<input_dir>/.thumbnail`
    /// (`STEM.thumbnail` beside the file when the input is one multi-page TIFF)
    /// (required for a file list).
    pub output_dir: *const c_char,
    /// Keep halving while width or height exceeds this; at least 1. Default 500.
    pub min_size: u32,
    /// Build at least this many levels even when the input already fits
    /// `min_size` (CTHarvester's Python path always builds level 1). Default 0.
    pub min_levels: u32,
    /// Averaging threads; 0 (the default) is one per core.
    pub threads: u32,
    /// A `CTSTACK_MMAP_*` policy for this run; init sets the process-wide one.
    pub mmap_policy: i32,
    /// Nonzero: a gap in the slice numbering is an error, not a warning.
    pub strict: i32,
    /// Nonzero: rebuild every output, trusting nothing an earlier run left.
    /// Default 0: keep the outputs the folder's manifest vouches for.
    pub force: i32,
    /// For a directory input: only files whose name starts with this before the
    /// index (CTHarvester's `prefix{index:0width}.{ext}`). NULL (the default): the
    /// most common prefix in the folder.
    pub prefix: *const c_char,
    /// For a directory input: only files with this extension (`tif`, `bmp`, ...,
    /// case-insensitive, with or without the dot). NULL: the most common one.
    pub extension: *const c_char,
    /// For a directory input: only indices `index_first..=index_last`; a missing
    /// index is a gap. Both -1 (the default): no range; otherwise both >= 0.
    pub index_first: i64,
    /// See `index_first`.
    pub index_last: i64,
    /// For a directory input: only indices written with this many digits,
    /// zero-padded. 0 (the default): any.
    pub index_width: u32,
    /// A slab build (one task of a distributed build, see docs/dask.md "On a Dask
    /// cluster"): with `slab_end` > 0, the run builds only the outputs of inputs
    /// `slab_start..slab_end` of the (whole, selected) stack, at the whole stack's
    /// level shapes. Both must be multiples of 2^L (L: the level count; `slab_end`
    /// may also be the stack's length). Slabs of one folder run at once, from
    /// many processes or hosts; each writes only its own outputs and its own
    /// slab record, and resumes from them. Once all have returned, the driver
    /// calls `ctstack_job_start_finish` (same input and options) to write the
    /// manifest. Both 0 (the default): the whole stack, as one run.
    pub slab_start: u64,
    /// See `slab_start`.
    pub slab_end: u64,
    /// 8 or 16: convert slices of the other depth to this one (8: `(v + 128) /
    /// 257`, 16: `v * 257`) instead of refusing a stack that mixes 8- and 16-bit
    /// slices (CTSTACK_ERR_MISMATCH); the pyramid is written at this depth. 0
    /// (the default): no conversion. The CLI's `--depth`.
    pub depth: u32,
    /// Nonzero: an input that is a file of one page is a stack of one slice.
    /// 0 (the default): such a file is refused (CTSTACK_ERR_INVALID_ARGUMENT,
    /// naming the folder to pass): one slice of a scan is most often given by
    /// mistake for its folder. A file list is always taken as given. The CLI's
    /// `--single-page`.
    pub single_page: i32,
}

// SAFETY: `#[repr(C)]`, `struct_size: usize` first, fields only appended, and
// every field a C integer, float or raw pointer (the fields above).
unsafe impl Versioned for ctstack_pyramid_options {
    const INIT: &'static str = "ctstack_pyramid_options_init";

    fn defaults() -> Self {
        ctstack_pyramid_options::defaults()
    }
}

impl ctstack_pyramid_options {
    fn defaults() -> ctstack_pyramid_options {
        ctstack_pyramid_options {
            struct_size: std::mem::size_of::<ctstack_pyramid_options>(),
            output_dir: std::ptr::null(),
            min_size: CTSTACK_DEFAULT_MIN_SIZE,
            min_levels: 0,
            threads: 0,
            mmap_policy: policy::current(),
            strict: 0,
            force: 0,
            prefix: std::ptr::null(),
            extension: std::ptr::null(),
            index_first: -1,
            index_last: -1,
            index_width: 0,
            slab_start: 0,
            slab_end: 0,
            depth: 0,
            single_page: 0,
        }
    }

    /// The caller's options, or the defaults for NULL. Fields past the caller's
    /// `struct_size` (an older caller) keep their defaults.
    ///
    /// # Safety
    /// `ptr` is NULL or points to a `ctstack_pyramid_options` of at least its own
    /// `struct_size` bytes.
    pub(crate) unsafe fn read(
        ptr: *const ctstack_pyramid_options,
    ) -> Result<ctstack_pyramid_options, Failure> {
        // SAFETY: as this function's contract.
        match unsafe { versioned::read(ptr, "options") }? {
            Some(options) => Ok(options),
            None => Ok(ctstack_pyramid_options::defaults()),
        }
    }

    /// The stack selection for a directory input; `None` when no field asks for one.
    ///
    /// # Safety
    /// String fields are NULL or NUL-terminated.
    unsafe fn selection(&self) -> Result<Option<Selection>, Failure> {
        // SAFETY: per the contract above.
        unsafe {
            selection_of(
                self.prefix,
                self.extension,
                (self.index_first, self.index_last),
                self.index_width,
                "options->",
            )
        }
    }

    /// Applies the settings to `builder`, checking each.
    ///
    /// # Safety
    /// String fields are NULL or NUL-terminated.
    pub(crate) unsafe fn apply(&self, builder: PyramidBuilder) -> Result<PyramidBuilder, Failure> {
        let mut b = builder;
        // SAFETY: per the contract above.
        if let Some(dir) = unsafe { optional_utf8_arg(self.output_dir, "options->output_dir") }? {
            b = b.output_dir(dir);
        }
        if self.min_size == 0 || self.min_size > MAX_ARG {
            return Err(invalid(format!(
                "options->min_size {} is out of range 1..={MAX_ARG} (the default is {})",
                self.min_size, CTSTACK_DEFAULT_MIN_SIZE
            )));
        }
        b = b.min_size(self.min_size);
        if self.min_levels > 64 {
            return Err(invalid(format!(
                "options->min_levels {} is out of range 0..=64",
                self.min_levels
            )));
        }
        b = b.min_levels(self.min_levels as usize);
        if self.threads > MAX_ARG {
            return Err(invalid(format!(
                "options->threads {} is out of range",
                self.threads
            )));
        }
        if self.threads > 0 {
            b = b.threads(self.threads as usize);
        }
        b = b.read_mode(policy::read_mode_of(self.mmap_policy)?);
        match self.depth {
            0 => {}
            8 => b = b.convert_depth(SampleType::U8),
            16 => b = b.convert_depth(SampleType::U16),
            other => {
                return Err(invalid(format!(
                    "options->depth {other}: 0 (no conversion), 8 or 16"
                )));
            }
        }
        Ok(b.strict(self.strict != 0)
            .force(self.force != 0)
            .single_page(self.single_page != 0))
    }
}

/// Fills `*options` with the defaults: pass `sizeof *options`, the size of
/// the struct as the caller compiled it. Only that many bytes are written (a
/// caller built against an older, shorter struct is never overrun), and
/// `struct_size` is set to the smaller of `size` and this library's struct, so
/// later calls read only the fields both know. NULL, or a `size` too small to hold
/// `struct_size`, is a no-op.
///
/// # Safety
/// `options` is NULL or writable for `size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_pyramid_options_init(
    options: *mut ctstack_pyramid_options,
    size: usize,
) {
    ffi_boundary! {
        // SAFETY: as this function's contract.
        unsafe { versioned::init(options, size) }
    }
}

/// The input of a run: a directory (its slices found by extension), or an
/// explicit, ordered list of files.
pub(crate) enum Input {
    Dir(PathBuf),
    Files(Vec<PathBuf>),
}

impl Input {
    /// # Safety
    /// `dir` is NULL or NUL-terminated.
    pub(crate) unsafe fn dir(dir: *const c_char) -> Result<Input, Failure> {
        // SAFETY: per the contract above.
        Ok(Input::Dir(unsafe { utf8_arg(dir, "input_dir") }?.into()))
    }

    /// # Safety
    /// `paths` is NULL or points to `n` NULL-or-NUL-terminated strings.
    pub(crate) unsafe fn files(paths: *const *const c_char, n: usize) -> Result<Input, Failure> {
        if paths.is_null() {
            return Err(invalid("paths is NULL"));
        }
        if n == 0 {
            return Err(invalid("n_paths is 0: the stack is empty"));
        }
        // SAFETY: `paths` holds `n` pointers per the contract.
        let list = unsafe { std::slice::from_raw_parts(paths, n) };
        let mut files = Vec::with_capacity(n);
        for (i, &p) in list.iter().enumerate() {
            // SAFETY: each is NULL or NUL-terminated per the contract.
            files.push(PathBuf::from(unsafe {
                utf8_arg(p, &format!("paths[{i}]"))
            }?));
        }
        Ok(Input::Files(files))
    }
}

/// What a run does with its plan.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// [`Plan::run`](crate::Plan::run).
    Whole,
    /// [`Plan::run_slab`](crate::Plan::run_slab) of these inputs.
    Slab(std::ops::Range<usize>),
    /// [`Plan::finish_slabs`](crate::Plan::finish_slabs).
    Finish,
}

impl Step {
    /// Runs the step of `builder`'s plan.
    pub(crate) fn run(
        &self,
        builder: &PyramidBuilder,
        progress: &mut dyn FnMut(u64, u64),
        cancel: &crate::CancelFlag,
    ) -> Result<crate::Summary, crate::Error> {
        match self {
            Step::Whole => builder.plan()?.run(progress, cancel),
            Step::Slab(inputs) => builder.run_slab(inputs.clone(), progress, cancel),
            Step::Finish => builder.plan()?.finish_slabs(cancel),
        }
    }
}

/// The stack selection of the selection fields of an options struct (`field`
/// prefixes their names in messages); `None` when no field asks for one.
///
/// # Safety
/// `prefix` and `extension` are NULL or NUL-terminated.
pub(crate) unsafe fn selection_of(
    prefix: *const c_char,
    extension: *const c_char,
    (first, last): (i64, i64),
    index_width: u32,
    field: &str,
) -> Result<Option<Selection>, Failure> {
    let mut selection = Selection::default();
    let mut any = false;
    // SAFETY: per the contract above.
    if let Some(prefix) = unsafe { optional_utf8_arg(prefix, &format!("{field}prefix")) }? {
        selection = selection.prefix(prefix);
        any = true;
    }
    // SAFETY: per the contract above.
    if let Some(ext) = unsafe { optional_utf8_arg(extension, &format!("{field}extension")) }? {
        selection = selection.extension(ext);
        any = true;
    }
    match (first, last) {
        (-1, -1) => {}
        (first, last) if first >= 0 && last >= first => {
            selection = selection.range(first as u64, last as u64);
            any = true;
        }
        (first, last) => {
            return Err(invalid(format!(
                "{field}index_first {first} and index_last {last}: both -1 (no range), \
                 or 0 <= index_first <= index_last"
            )));
        }
    }
    if index_width > 0 {
        selection = selection.index_width(index_width as usize);
        any = true;
    }
    Ok(any.then_some(selection))
}

/// A checked request: the input and the options, before anything is read.
pub(crate) struct Request {
    input: Input,
    options: ctstack_pyramid_options,
}

impl Request {
    /// Checks what can be checked without touching the disk.
    ///
    /// # Safety
    /// `options` as for [`ctstack_pyramid_options::read`].
    pub(crate) unsafe fn new(
        input: Input,
        options: *const ctstack_pyramid_options,
    ) -> Result<Request, Failure> {
        // SAFETY: per the contract above.
        let options = unsafe { ctstack_pyramid_options::read(options) }?;
        // SAFETY: per the contract above.
        let selection = unsafe { options.selection() }?;
        if matches!(input, Input::Files(_)) {
            if options.output_dir.is_null() {
                return Err(invalid(
                    "options->output_dir is required for a list of files",
                ));
            }
            if selection.is_some() {
                return Err(invalid(
                    "options->prefix, extension, index_* select files of a directory, \
                     not of a list of files",
                ));
            }
        }
        let request = Request { input, options };
        // Validate the options now, so a bad one fails the call, not the job.
        // SAFETY: the strings were given by this call's caller and are live.
        unsafe {
            request
                .options
                .apply(PyramidBuilder::from_files(Vec::new(), ""))
        }?;
        Ok(request)
    }

    /// The builder: lists the directory, applies the options.
    ///
    /// # Safety
    /// The option strings are still live (they are read again here).
    unsafe fn builder(&self) -> Result<PyramidBuilder, Failure> {
        let builder = match &self.input {
            // SAFETY: per the contract above.
            Input::Dir(dir) => match unsafe { self.options.selection() }? {
                Some(_) if dir.is_file() => {
                    return Err(invalid(
                        "options->prefix, extension, index_* select files of a directory, \
                         not the pages of one file",
                    ));
                }
                // One multi-page TIFF: its pages are the slices.
                None if dir.is_file() => PyramidBuilder::from_file(dir),
                Some(selection) => PyramidBuilder::from_selection(dir, &selection)?,
                None => PyramidBuilder::from_dir(dir)?,
            },
            Input::Files(files) => PyramidBuilder::from_files(files.clone(), ""),
        };
        // SAFETY: per the contract above.
        unsafe { self.options.apply(builder) }
    }

    /// What the request runs: the whole stack, or the slab the options name.
    pub(crate) fn step(&self) -> Result<Step, Failure> {
        let (start, end) = (self.options.slab_start, self.options.slab_end);
        match (start, end) {
            (0, 0) => Ok(Step::Whole),
            (start, end) if start < end => {
                let index = |v: u64| usize::try_from(v).map_err(|_| invalid("slab out of range"));
                Ok(Step::Slab(index(start)?..index(end)?))
            }
            (start, end) => Err(invalid(format!(
                "options->slab_start {start} and slab_end {end}: both 0 (the whole stack), \
                 or slab_start < slab_end"
            ))),
        }
    }

    /// [`Request::into_owned`] for the finish step: the slab fields must be 0.
    pub(crate) fn into_finish(self) -> Result<Result<PyramidBuilder, Failure>, Failure> {
        if !matches!(self.step()?, Step::Whole) {
            return Err(invalid(
                "options->slab_start and slab_end must be 0 to finish a slab build",
            ));
        }
        Ok(self.into_owned())
    }

    /// Turns the request into one that owns everything it needs (the option
    /// strings are read now), so it can run on another thread.
    pub(crate) fn into_owned(self) -> Result<PyramidBuilder, Failure> {
        // SAFETY: called within the ABI call that made the request, so the
        // caller's strings are live.
        unsafe { self.builder() }
    }
}
