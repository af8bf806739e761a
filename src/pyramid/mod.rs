//! The streaming pyramid builder, its resume rule and the read-back of a built
//! pyramid.
//!
//! Level 0 is the input stack; level k+1 slice j is the 2x2x2 mean of level-k
//! slices 2j and 2j+1 (an odd last slice is paired with itself). Levels are made
//! as a cascade (`cascade.rs`): a level-k+1 slice is computed as soon as its
//! two level-k slices exist, and they are dropped right after, so memory holds a
//! couple of slices per level, never the stack. Input is read in order, the next
//! pair opened while the current one is averaged (`level1.rs`). What is kept
//! from an earlier run is decided in `resume.rs` from the manifest
//! (`manifest.rs`); `lock.rs` serialises runs on one folder; `read.rs` reads a
//! built pyramid back; `slab.rs` builds one pyramid as many concurrent slab tasks
//! (a Dask map) and finishes it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::{Error, Limits, OpenOptions, ReadMode, SampleType, stack};

mod average;
mod cascade;
mod input;
mod inputs;
mod level1;
pub(crate) mod lock;
pub(crate) mod manifest;
mod plan;
mod read;
mod resume;
mod run;
mod slab;
mod slices;

pub use lock::LOCK_FILE;
pub use manifest::MANIFEST_FILE;
pub(crate) use manifest::{FileRecord, read_small, same_mtime, to_bytes};
use plan::level_shapes_with;
pub use plan::{LevelShape, Plan, inputs_of, level_shapes};
pub use read::{Pyramid, PyramidLevel};

/// The default `min_size`: CTHarvester halves until slices fit 500 px.
pub const DEFAULT_MIN_SIZE: u32 = 500;

/// Whether look-ahead opens fault whole maps in (MAP_POPULATE). Off: in the
/// pyramid benchmark (16 x 2752x2752, same run) plain maps gave 6.97 GiB/s and
/// populated ones 6.78; the kernel's fault-around already maps pages in batches.
const POPULATE_AHEAD: bool = false;

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Summary {
    /// Where the levels are.
    pub output_dir: PathBuf,
    /// Levels 0 ..= L, as [`Plan::levels`]: the input, then each halving.
    pub levels: Vec<LevelShape>,
    /// Output slices that were valid and kept (not written).
    pub kept: usize,
    /// Output slices written by this run.
    pub rebuilt: usize,
    /// Stale outputs (of an earlier run, no longer in the plan) removed.
    pub removed: usize,
    /// Non-fatal findings: the plan's ([`Plan::warnings`]: gaps in the numbering)
    /// first, then the run's: files in level folders that are not outputs (left
    /// in place), a manifest that could not be trusted.
    pub warnings: Vec<String>,
    /// Bytes of input pixels (level 0) read by this run.
    pub input_bytes: u64,
    /// Wall time of the run, from when it had the output folder's lock (time
    /// spent waiting for another run on the folder is not counted).
    pub elapsed: Duration,
}

/// Builds a level-of-detail pyramid from a stack of slices.
///
/// # The output folder
///
/// `<out>/<k>/<j:06>.tif` for every level k >= 1, and the manifest
/// [`MANIFEST_FILE`] (what each output was made from; its format and the input
/// identity rule, size + modification time, are described in `manifest.rs` and
/// in [`Plan::run`]). After a run (done, failed or cancelled) the folder holds the
/// level folders, the manifest and the user's own files, nothing else: no lock
/// file, no temporary file.
///
/// - An output is kept only if the manifest vouches for it (see [`Plan::run`]);
///   everything else in the plan is rebuilt. [`PyramidBuilder::force`] rebuilds all
///   of ctstack's own outputs, and widens nothing else.
/// - ctstack never replaces a file it did not write. A file at the name of an
///   output to rebuild is replaced only if the manifest lists it unchanged, or
///   it is recognisably an earlier pyramid of this stack (a TIFF of the
///   planned level's width, height and sample type: the thumbnails CTHarvester
///   writes into `.thumbnail` under the same names, which the drop-in
///   replaces), or it holds nothing (empty or only zero bytes: what a power
///   loss leaves of an output not yet synced). Anything else at an output
///   name refuses the run before anything is written ([`Error::State`],
///   naming the first files and their count).
/// - A [`MANIFEST_FILE`] that is not a ctstack manifest (not JSON, no
///   `"format": "ctstack-pyramid"`) proves nothing and is not replaced: the run
///   is refused ([`Error::State`], saying to move it away). A ctstack manifest
///   this version cannot trust (another version) is treated as absent, with
///   a warning, and rewritten.
/// - Outputs the plan no longer contains (a shorter stack, a larger `min_size`)
///   are removed, but only files the manifest lists as written by ctstack and
///   unchanged since. Anything else in a level folder is left in place and
///   reported in [`Summary::warnings`].
/// - Without a manifest (an older ctstack, another tool), nothing is trusted:
///   every planned file is rebuilt (under the rule above), and files outside
///   the plan are reported, not deleted.
/// - Nothing else is ever removed, whatever the flags ([`PyramidBuilder::force`]
///   included): temporary files only under the exact names ctstack's own writes
///   use, the lock file only if ctstack created it. Inputs inside a level folder
///   of the output folder (`ctstack pyramid OUT/1 --out OUT`) are refused
///   ([`Error::Usage`]), as the outputs would replace them.
/// - Durable before recorded: the manifest is saved (at checkpoints and at the
///   end) only once every output it lists has its data and its folder synced,
///   and is itself written atomically and synced. After a power loss it lists
///   only complete outputs (see `src/durable.rs`).
///
/// ```no_run
/// use ctstack::PyramidBuilder;
///
/// let plan = PyramidBuilder::from_dir("scan")?.min_size(500).plan()?;
/// for warning in plan.warnings() {
///     eprintln!("warning: {warning}");
/// }
/// let summary = plan.run(&mut |done, total| eprintln!("{done}/{total}"), &Default::default())?;
/// println!("{} rebuilt, {} kept, {} removed", summary.rebuilt, summary.kept, summary.removed);
/// # Ok::<(), ctstack::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct PyramidBuilder {
    inputs: Vec<PathBuf>,
    output_dir: PathBuf,
    min_size: u32,
    min_levels: usize,
    threads: Option<usize>,
    strict: bool,
    force: bool,
    open: OpenOptions,
    /// How the inputs were picked from a directory, if they were.
    listing: Option<stack::Listing>,
    /// Whether `output_dir` is the default beside (or inside) the input, which
    /// an archived or shared scan may not allow: its errors name the option.
    default_output: bool,
    /// Whether the input is one file ([`PyramidBuilder::from_file`]).
    one_file: bool,
    /// Whether a one-page file is accepted as a stack of one slice.
    single_page: bool,
}

impl PyramidBuilder {
    /// The stack of `dir` under the default [`Selection`](stack::Selection): its
    /// most common (prefix, extension) group of image files, in natural order
    /// (see [`stack::select`]); output to `<dir>/.thumbnail` unless
    /// [`PyramidBuilder::output_dir`] says otherwise.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<PyramidBuilder, Error> {
        PyramidBuilder::from_selection(dir, &stack::Selection::default())
    }

    /// The files of `dir` that `selection` picks ([`stack::select`]), output to
    /// `<dir>/.thumbnail`. The listing, with the files left out, stays available
    /// from [`PyramidBuilder::listing`]; its gaps become the plan's warnings.
    ///
    /// Errors: those of [`stack::select`], and [`Error::State`] when no file is
    /// selected (an empty folder, or none that matches the selection).
    pub fn from_selection(
        dir: impl AsRef<Path>,
        selection: &stack::Selection,
    ) -> Result<PyramidBuilder, Error> {
        let dir = dir.as_ref();
        let listing = stack::select(dir, selection)?;
        if listing.files.is_empty() {
            let extensions = stack::EXTENSIONS.map(|e| format!(".{e}")).join(" ");
            let skipped = match listing.skipped.len() {
                0 => String::new(),
                n => format!(
                    " ({n} image files left out, e.g. {}: {})",
                    listing.skipped[0].path.display(),
                    listing.skipped[0].reason
                ),
            };
            return Err(Error::state(
                dir,
                format!("no slice files ({extensions}) selected in the directory{skipped}"),
            ));
        }
        let mut builder = PyramidBuilder::from_files(listing.files.clone(), dir.join(".thumbnail"));
        builder.listing = Some(listing);
        builder.default_output = true;
        Ok(builder)
    }

    /// A stack saved as one multi-page TIFF (ImageJ/Fiji, tifffile): its pages
    /// are the slices, in order. Output to `<stem>.thumbnail` beside the file
    /// (`scan/stack.tif` -> `scan/stack.thumbnail`) unless
    /// [`PyramidBuilder::output_dir`] says otherwise. A file of one image (one
    /// slice of a scan, given by mistake for its folder) is refused by the plan
    /// unless [`PyramidBuilder::single_page`] accepts it as a stack of one slice.
    pub fn from_file(path: impl AsRef<Path>) -> PyramidBuilder {
        let path = path.as_ref();
        let stem = path.file_stem().map_or_else(
            || std::ffi::OsString::from("stack"),
            std::ffi::OsStr::to_os_string,
        );
        let mut out = stem;
        out.push(".thumbnail");
        let mut builder =
            PyramidBuilder::from_files(vec![path.to_path_buf()], path.with_file_name(out));
        builder.default_output = true;
        builder.one_file = true;
        builder
    }

    /// An explicit, ordered list of slice files, written to `output_dir`. A
    /// multi-page TIFF among them contributes every page, in order (see
    /// [`Plan::inputs`]).
    pub fn from_files(inputs: Vec<PathBuf>, output_dir: impl Into<PathBuf>) -> PyramidBuilder {
        PyramidBuilder {
            inputs,
            output_dir: output_dir.into(),
            min_size: DEFAULT_MIN_SIZE,
            min_levels: 0,
            threads: None,
            strict: false,
            force: false,
            open: OpenOptions {
                populate: POPULATE_AHEAD,
                ..OpenOptions::default()
            },
            listing: None,
            default_output: false,
            one_file: false,
            single_page: false,
        }
    }

    /// How [`PyramidBuilder::from_selection`] or [`PyramidBuilder::from_dir`]
    /// picked the inputs: the files left out and the gaps; `None` for
    /// [`PyramidBuilder::from_files`].
    pub fn listing(&self) -> Option<&stack::Listing> {
        self.listing.as_ref()
    }

    /// Where levels go: `<dir>/<k>/<j:06>.tif`.
    pub fn output_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.output_dir = dir.into();
        self.default_output = false;
        self
    }

    /// Accept a file of one page given to [`PyramidBuilder::from_file`] as a
    /// stack of one slice (default false: the plan refuses it, naming the
    /// folder to pass instead). An explicit file list
    /// ([`PyramidBuilder::from_files`]) is always taken as given.
    pub fn single_page(mut self, yes: bool) -> Self {
        self.single_page = yes;
        self
    }

    /// Keep halving while width or height exceeds this (default 500; must be >= 1).
    pub fn min_size(mut self, min_size: u32) -> Self {
        self.min_size = min_size;
        self
    }

    /// Build at least this many levels even when the input already fits
    /// `min_size` (default 0; CTHarvester's Python path always builds level 1).
    /// Halving still stops where a dimension would reach 0.
    pub fn min_levels(mut self, min_levels: usize) -> Self {
        self.min_levels = min_levels;
        self
    }

    /// Worker threads for averaging (default: rayon's global pool, one per core).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads);
        self
    }

    /// Make a gap in the slice numbering an error instead of a warning.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Rebuild every output, keeping none an earlier run left (default off).
    /// It replaces only what ctstack may replace without it (its own listed
    /// outputs, earlier level slices of this stack): no flag widens that.
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    /// How input slices are read (default: [`ReadMode::Auto`]).
    pub fn read_mode(mut self, mode: ReadMode) -> Self {
        self.open.read_mode = mode;
        self
    }

    /// Whether look-ahead opens fault the whole mapping in (MAP_POPULATE; default off).
    pub fn populate(mut self, populate: bool) -> Self {
        self.open.populate = populate;
        self
    }

    /// Convert slices of the other depth to `to` ([`SampleType::U8`] or
    /// [`SampleType::U16`]) instead of refusing a stack that mixes depths: see
    /// [`OpenOptions::convert_depth`] for the rule. The pyramid is then written as `to`.
    pub fn convert_depth(mut self, to: SampleType) -> Self {
        self.open.convert_depth = Some(to);
        self
    }

    /// Caps on what one input slice may make ctstack allocate.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.open.limits = limits;
        self
    }

    /// A usage error for a file of one page (`slices` is 1) given as the stack
    /// ([`PyramidBuilder::from_file`]) unless [`PyramidBuilder::single_page`]:
    /// one slice of a scan is most often given by mistake for its folder.
    /// Checked after the file's pages are read, so that a file that cannot be
    /// read says why first.
    fn refuse_one_slice(&self, slices: usize) -> Result<(), Error> {
        let [path] = self.inputs.as_slice() else {
            return Ok(());
        };
        if !self.one_file || self.single_page || slices != 1 {
            return Ok(());
        }
        let folder = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.display().to_string(),
            _ => ".".into(),
        };
        Err(Error::usage(format!(
            "{} holds one slice (one page), not a stack: pass the folder that holds the slices \
             ({folder}), or PyramidBuilder::single_page(true) to make a stack of this one slice",
            path.display()
        )))
    }

    /// Checks every input slice's header (nothing is written) and works out the levels.
    ///
    /// Errors: a slice that does not parse, or whose size or depth differs from the
    /// first one ([`Error::Mismatch`], naming it); a gap in the numbering when strict.
    pub fn plan(&self) -> Result<Plan, Error> {
        self.plan_checking(None)
    }

    /// Builds the outputs of the slab `inputs` as [`Plan::run_slab`] does, checking
    /// only the first slice's header and the slab's (a plan checks every slice's),
    /// so that each of many slab tasks of a large stack does not read every
    /// header of the stack again. The driver's [`Plan::finish_slabs`] checks the
    /// whole stack once.
    pub fn run_slab(
        &self,
        inputs: std::ops::Range<usize>,
        progress: &mut dyn FnMut(u64, u64),
        cancel: &CancelFlag,
    ) -> Result<Summary, Error> {
        // The first header gives the levels, and so whether this is a slab.
        let first = self.plan_checking(Some(0..0))?;
        first.check_slab(&inputs)?;
        // A stack of multi-page files is walked whole whatever is asked: once is enough.
        let plan = match first.all_checked {
            true => first,
            false => self.plan_checking(Some(inputs.clone()))?,
        };
        plan.run_slab(inputs, progress, cancel)
    }

    /// [`PyramidBuilder::plan`], checking the headers of the first slice and of
    /// the slices `check` only, if given (see `inputs::inspect`).
    fn plan_checking(&self, check: Option<std::ops::Range<usize>>) -> Result<Plan, Error> {
        if self.min_size == 0 {
            return Err(Error::usage("min_size must be at least 1"));
        }
        if self.threads == Some(0) {
            return Err(Error::usage("threads must be at least 1"));
        }
        let inputs::Inspected {
            slices,
            indexed,
            head,
            all_checked,
        } = inputs::inspect(&self.inputs, check, &self.open)?;
        self.refuse_one_slice(slices.len())?;
        let mut warnings = match &self.listing {
            Some(listing) => listing.gaps.clone(),
            None => stack::numbering_gaps(&self.inputs),
        };
        stack::explain_gaps_for_pyramid(&mut warnings);
        if self.strict && !warnings.is_empty() {
            return Err(Error::mismatch(warnings.join("; ")));
        }
        let levels = level_shapes_with(
            head.width,
            head.height,
            slices.len(),
            self.min_size,
            self.min_levels,
        );
        Ok(Plan {
            builder: self.clone(),
            sample_type: head.sample_type,
            photometric: head.photometric,
            levels,
            warnings,
            slices: slices.into(),
            index: crate::tiff::PageIndex::new(indexed),
            all_checked,
        })
    }
}

#[cfg(feature = "ome-zarr")]
impl Plan {
    /// The inputs' photometric.
    pub(crate) fn photometric(&self) -> crate::Photometric {
        self.photometric
    }

    /// How input slices are opened.
    pub(crate) fn open_options(&self) -> &OpenOptions {
        &self.builder.open
    }
}

/// Asks a running build to stop; share it between the thread that runs and the
/// one that cancels.
///
/// ```
/// use std::sync::Arc;
/// use ctstack::{CancelFlag, Error, PyramidBuilder, write_slice};
///
/// // A new folder of its own (create_dir fails on one that exists), so that the
/// // cleanup below removes only what this example wrote.
/// let dir = std::env::temp_dir().join(format!("ctstack-doc-cancel-{}", std::process::id()));
/// std::fs::create_dir(&dir).unwrap();
/// for k in 0..8 {
///     write_slice::<u16>(&dir.join(format!("s{k}.tif")), 64, 64, &vec![k; 64 * 64])?;
/// }
/// let plan = PyramidBuilder::from_dir(&dir)?.min_size(8).output_dir(dir.join("out")).plan()?;
/// // A GUI's cancel button or a Ctrl-C handler holds a clone and calls cancel() from its
/// // own thread; here the first progress report does.
/// let cancel = Arc::new(CancelFlag::new());
/// let button = Arc::clone(&cancel);
/// let result = plan.run(&mut |_done, _total| button.cancel(), &cancel);
/// assert!(matches!(result, Err(Error::Cancelled)));
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, Default)]
pub struct CancelFlag(AtomicBool);

impl CancelFlag {
    /// A flag not yet raised.
    pub fn new() -> CancelFlag {
        CancelFlag::default()
    }
    /// Asks the run to stop at the next slice boundary.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    /// Whether [`CancelFlag::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
