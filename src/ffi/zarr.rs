//! OME-Zarr jobs (feature `ome-zarr`): the stack and the levels as
//! `ctstack_pyramid_options` say (its `output_dir` and slab fields unused), the
//! store as `ctstack_zarr_options` says, run on a `ctstack_job`.

use std::ffi::c_char;
use std::path::PathBuf;

use super::boundary::{
    Failure, OutHandle, ffi_boundary, invalid, optional_utf8_arg, utf8_arg, write_optional,
};
use super::ctstack_status;
use super::job::ctstack_job;
use super::options::{Input, Request, ctstack_pyramid_options};
use super::report::JobReport;
use super::versioned::{self, Versioned};
use crate::{
    ChunkCompression, DEFAULT_CHUNKS, Ngff, PyramidBuilder, Summary, ZarrBuilder, ZarrPlan,
};

/// `ctstack_zarr_options.step`: the whole build (prepare, every chunk, finish).
pub const CTSTACK_ZARR_WHOLE: i32 = 0;
/// `ctstack_zarr_options.step`: the first step of a slab build: claim the
/// store, write the arrays' metadata.
pub const CTSTACK_ZARR_PREPARE: i32 = 1;
/// `ctstack_zarr_options.step`: the chunks of inputs `slab_start..slab_end`.
pub const CTSTACK_ZARR_SLAB: i32 = 2;
/// `ctstack_zarr_options.step`: the last step of a slab build: check every
/// chunk, write the multiscales metadata.
pub const CTSTACK_ZARR_FINISH: i32 = 3;

/// How the OME-Zarr store is laid out. Initialise with
/// `ctstack_zarr_options_init`, then set fields; later versions append fields.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ctstack_zarr_options {
    /// `sizeof(ctstack_zarr_options)` as the caller compiled it (set by init).
    pub struct_size: usize,
    /// The store's folder (required).
    pub store: *const c_char,
    /// 5: OME-Zarr 0.5 on Zarr v3 (default); 4: OME-NGFF 0.4 on Zarr v2.
    pub ngff: u32,
    /// Chunk shape z, y, x (default 16, 256, 256).
    pub chunks: [u32; 3],
    /// Shard shape z, y, x, multiples of the chunk's (v3 only); all 0 (default): none.
    pub shard: [u32; 3],
    /// 0: none; 1: zstd at `zstd_level`; 2 (default): Blosc with
    /// `blosc_compressor`, `blosc_shuffle` and `blosc_level`.
    pub compression: i32,
    /// zstd level, -7 ..= 22 (default 3).
    pub zstd_level: i32,
    /// Level 0's voxel size z, y, x in `unit`s, stored exactly; all 0 (default):
    /// from the first slice's TIFF resolution tags (z = x unless ImageJ's spacing
    /// says), else from the scanner's file beside the slices (Bruker NRecon
    /// `*_rec.log`, Nikon `.xtekct`, GE phoenix `.pcr` / `.pca`), else unknown:
    /// 1, 1, 1 with no unit, and a report warning.
    pub voxel_size: [f64; 3],
    /// An NGFF space unit; NULL: "micrometer".
    pub unit: *const c_char,
    /// `CTSTACK_ZARR_WHOLE` (default), `_PREPARE`, `_SLAB` or `_FINISH`.
    pub step: i32,
    /// With `CTSTACK_ZARR_SLAB`: the inputs whose chunks to build, both
    /// multiples of the alignment `ctstack_zarr_slab_alignment` gives (or
    /// `slab_end` the stack's end).
    pub slab_start: u64,
    /// See `slab_start`.
    pub slab_end: u64,
    /// With `compression` 2: 0: lz4 (default); 1: zstd.
    pub blosc_compressor: i32,
    /// With `compression` 2: 1: byte shuffle; 2: bit shuffle (default)
    /// (numcodecs' numbers).
    pub blosc_shuffle: i32,
    /// With `compression` 2: 0 ..= 9 (default 5).
    pub blosc_level: i32,
}

// SAFETY: `#[repr(C)]`, `struct_size: usize` first, fields only appended, and
// every field a C integer, float or raw pointer (the fields above).
unsafe impl Versioned for ctstack_zarr_options {
    const INIT: &'static str = "ctstack_zarr_options_init";

    fn defaults() -> Self {
        ctstack_zarr_options::defaults()
    }
}

impl ctstack_zarr_options {
    fn defaults() -> ctstack_zarr_options {
        ctstack_zarr_options {
            struct_size: std::mem::size_of::<ctstack_zarr_options>(),
            store: std::ptr::null(),
            ngff: 5,
            chunks: DEFAULT_CHUNKS,
            shard: [0; 3],
            compression: 2,
            zstd_level: 3,
            voxel_size: [0.0; 3],
            unit: std::ptr::null(),
            step: CTSTACK_ZARR_WHOLE,
            slab_start: 0,
            slab_end: 0,
            blosc_compressor: 0,
            blosc_shuffle: 2,
            blosc_level: 5,
        }
    }

    /// The caller's options (fields past its `struct_size` keep their defaults).
    ///
    /// # Safety
    /// `ptr` is NULL or points to a `ctstack_zarr_options` of at least its own
    /// `struct_size` bytes.
    unsafe fn read(ptr: *const ctstack_zarr_options) -> Result<ctstack_zarr_options, Failure> {
        // SAFETY: as this function's contract.
        match unsafe { versioned::read(ptr, "zarr_options") }? {
            Some(options) => Ok(options),
            None => Err(invalid("zarr_options is NULL: its store is required")),
        }
    }

    /// The builder of `pyramid`'s stack with these options.
    ///
    /// # Safety
    /// The string fields are NULL or NUL-terminated and live.
    unsafe fn apply(&self, pyramid: PyramidBuilder) -> Result<ZarrBuilder, Failure> {
        // SAFETY: per the contract above.
        let store = unsafe { utf8_arg(self.store, "zarr_options->store") }?;
        // SAFETY: per the contract above.
        let unit = unsafe { optional_utf8_arg(self.unit, "zarr_options->unit") }?;
        let ngff = match self.ngff {
            4 => Ngff::V0_4,
            5 => Ngff::V0_5,
            n => return Err(invalid(format!("zarr_options->ngff is {n}: 4 or 5"))),
        };
        let compression = match self.compression {
            0 => ChunkCompression::None,
            1 => format!("zstd:{}", self.zstd_level).parse()?,
            2 => {
                let compressor = match self.blosc_compressor {
                    0 => "lz4",
                    1 => "zstd",
                    n => {
                        return Err(invalid(format!(
                            "zarr_options->blosc_compressor is {n}: 0 (lz4) or 1 (zstd)"
                        )));
                    }
                };
                let shuffle = match self.blosc_shuffle {
                    1 => "",
                    2 => "-bitshuffle",
                    n => {
                        return Err(invalid(format!(
                            "zarr_options->blosc_shuffle is {n}: 1 (byte) or 2 (bit)"
                        )));
                    }
                };
                format!("blosc-{compressor}{shuffle}:{}", self.blosc_level).parse()?
            }
            n => {
                return Err(invalid(format!(
                    "zarr_options->compression is {n}: 0, 1 or 2"
                )));
            }
        };
        let shard = (self.shard != [0; 3]).then_some(self.shard);
        let mut builder = ZarrBuilder::new(pyramid, PathBuf::from(store))
            .ngff(ngff)
            .chunks(self.chunks)
            .shard(shard)
            .compression(compression);
        if let Some(unit) = unit {
            builder = builder.unit(unit);
        }
        Ok(match self.voxel_size {
            [0.0, 0.0, 0.0] => builder,
            size => builder.voxel_size(size),
        })
    }
}

/// Fills `*options` with the defaults, as `ctstack_pyramid_options_init` does
/// (only `size` bytes are written). NULL or a too small `size` is a no-op.
///
/// # Safety
/// `options` is NULL or writable for `size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_zarr_options_init(
    options: *mut ctstack_zarr_options,
    size: usize,
) {
    ffi_boundary! {
        // SAFETY: as this function's contract.
        unsafe { versioned::init(options, size) }
    }
}

/// The checked request: the Zarr plan's builder and the step to run.
struct ZarrRequest {
    builder: ZarrBuilder,
    step: Step,
    /// The image files the directory's selection left out, as report warnings.
    left_out: Vec<String>,
}

/// `zarr_options`' step and slab, without its pointers (so it can go to the job's thread).
#[derive(Clone, Copy)]
struct Step {
    step: i32,
    slab_start: u64,
    slab_end: u64,
}

impl ZarrRequest {
    /// # Safety
    /// `pyramid_options` as for `ctstack_pyramid_build`, `zarr_options` as for
    /// `ctstack_zarr_job_start`.
    unsafe fn new(
        input: Input,
        pyramid_options: *const ctstack_pyramid_options,
        zarr_options: *const ctstack_zarr_options,
    ) -> Result<ZarrRequest, Failure> {
        // SAFETY: per the contract above.
        let options = unsafe { ctstack_zarr_options::read(zarr_options) }?;
        // SAFETY: per the contract above.
        let mut pyramid = unsafe { ctstack_pyramid_options::read(pyramid_options) }?;
        if pyramid.slab_start != 0 || pyramid.slab_end != 0 {
            return Err(invalid(
                "pyramid options' slab fields are for TIFF pyramids: use zarr_options->step and \
                 its slab_start / slab_end",
            ));
        }
        // The pyramid's output folder is not used; a list of files needs one set.
        pyramid.output_dir = options.store;
        // SAFETY: per the contract above; the copy's strings are the caller's.
        let request = unsafe { Request::new(input, &pyramid) }?;
        let pyramid = request.into_owned()?;
        let left_out = super::report::left_out(pyramid.listing()).collect();
        // SAFETY: per the contract above.
        let builder = unsafe { options.apply(pyramid) }?;
        let step = Step {
            step: options.step,
            slab_start: options.slab_start,
            slab_end: options.slab_end,
        };
        Ok(ZarrRequest {
            builder,
            step,
            left_out,
        })
    }

    /// Runs the step on `plan`.
    fn run(
        plan: &ZarrPlan,
        options: Step,
        progress: &mut dyn FnMut(u64, u64),
        cancel: &crate::CancelFlag,
    ) -> Result<crate::ZarrSummary, Failure> {
        let index = |v: u64| usize::try_from(v).map_err(|_| invalid("slab out of range"));
        Ok(match options.step {
            CTSTACK_ZARR_WHOLE => plan.run(progress, cancel)?,
            CTSTACK_ZARR_PREPARE => plan.prepare()?,
            CTSTACK_ZARR_SLAB => {
                let span = index(options.slab_start)?..index(options.slab_end)?;
                plan.run_slab(span, progress, cancel)?
            }
            CTSTACK_ZARR_FINISH => plan.finish()?,
            n => return Err(invalid(format!("zarr_options->step is {n}: 0, 1, 2 or 3"))),
        })
    }

    fn start(self) -> ctstack_job {
        let ZarrRequest {
            builder,
            step,
            left_out,
        } = self;
        ctstack_job::spawn(move |progress, cancel| {
            let plan = builder.plan()?;
            let z = ZarrRequest::run(&plan, step, progress, cancel)?;
            // The plan's warnings (gaps, an unknown voxel size), then what the
            // run found (a user's files left in the store).
            let mut warnings = plan.warnings().to_vec();
            warnings.extend(z.notes.iter().cloned());
            // The job report's counts: files written ("rebuilt") and files
            // already holding their bytes ("kept").
            Ok(JobReport::new(Summary {
                output_dir: z.store,
                levels: z.levels,
                kept: z.unchanged,
                rebuilt: z.written,
                removed: 0,
                warnings: left_out.into_iter().chain(warnings).collect(),
                input_bytes: z.input_bytes,
                elapsed: z.elapsed,
            })
            .with_voxel_size(&plan))
        })
    }
}

/// Starts an OME-Zarr build of the stack of `input_dir` (a directory, or one
/// multi-page TIFF) on a background thread: inputs, `min_size`, threads and
/// read policy from `pyramid_options` (NULL: defaults; its `output_dir` and
/// slab fields are not used), the store and the step from `zarr_options`
/// (required, for its `store`). Poll, cancel, wait for and free the job as a
/// pyramid job; its report's `rebuilt` counts files written, `kept` files that
/// already held their bytes. Levels 1 ..= L are the pyramid's; level 0 the input.
///
/// # Safety
/// `input_dir` is NULL or NUL-terminated; `pyramid_options` as for
/// `ctstack_pyramid_build`; `zarr_options` is NULL or an initialised options
/// struct whose strings are NULL or NUL-terminated; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_zarr_job_start(
    input_dir: *const c_char,
    pyramid_options: *const ctstack_pyramid_options,
    zarr_options: *const ctstack_zarr_options,
    out: *mut *mut ctstack_job,
) -> ctstack_status {
    ffi_boundary! {
        // SAFETY: per the contract above.
        let out = unsafe { OutHandle::new(out, "out") }?;
        // SAFETY: per the contract above.
        let input = unsafe { Input::dir(input_dir) }?;
        // SAFETY: per the contract above.
        let request = unsafe { ZarrRequest::new(input, pyramid_options, zarr_options) }?;
        out.set(request.start());
        Ok::<(), Failure>(())
    }
}

/// `ctstack_zarr_job_start` for an explicit, ordered list of `n_paths` slice files.
///
/// # Safety
/// `paths` is NULL or points to `n_paths` NUL-terminated strings; other
/// arguments as for `ctstack_zarr_job_start`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_zarr_job_start_files(
    paths: *const *const c_char,
    n_paths: usize,
    pyramid_options: *const ctstack_pyramid_options,
    zarr_options: *const ctstack_zarr_options,
    out: *mut *mut ctstack_job,
) -> ctstack_status {
    ffi_boundary! {
        // SAFETY: per the contract above.
        let out = unsafe { OutHandle::new(out, "out") }?;
        // SAFETY: per the contract above.
        let input = unsafe { Input::files(paths, n_paths) }?;
        // SAFETY: per the contract above.
        let request = unsafe { ZarrRequest::new(input, pyramid_options, zarr_options) }?;
        out.set(request.start());
        Ok::<(), Failure>(())
    }
}

/// Plans the build as `ctstack_zarr_job_start` would (every input's header is
/// read) and writes the stack's slice count to `*n_inputs` and the slab
/// alignment (chunk or shard depth x 2^L) to `*alignment` (either may be NULL).
/// Slabs on that alignment write disjoint chunk files at every level.
///
/// # Safety
/// As for `ctstack_zarr_job_start_files` (`n_paths` 0 and `paths` NULL: use
/// `input_dir`); `n_inputs`, `alignment` are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ctstack_zarr_slab_alignment(
    input_dir: *const c_char,
    paths: *const *const c_char,
    n_paths: usize,
    pyramid_options: *const ctstack_pyramid_options,
    zarr_options: *const ctstack_zarr_options,
    n_inputs: *mut u64,
    alignment: *mut u64,
) -> ctstack_status {
    ffi_boundary! {
        let input = match paths.is_null() && n_paths == 0 {
            // SAFETY: per the contract above.
            true => unsafe { Input::dir(input_dir) }?,
            // SAFETY: per the contract above.
            false => unsafe { Input::files(paths, n_paths) }?,
        };
        // SAFETY: per the contract above.
        let request = unsafe { ZarrRequest::new(input, pyramid_options, zarr_options) }?;
        let plan = request.builder.plan()?;
        // SAFETY: per the contract above.
        unsafe {
            write_optional(n_inputs, plan.levels()[0].count as u64);
            write_optional(alignment, plan.slab_alignment() as u64);
        }
        Ok::<(), Failure>(())
    }
}
