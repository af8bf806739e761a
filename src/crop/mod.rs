//! Harvest: a box and a slice range cut out of a stack, at any pyramid level,
//! into one file per slice or into a caller's array.
//!
//! The stack is chosen as [`PyramidBuilder`] chooses it (a folder by the same
//! selection rules, an explicit file list, a multi-page TIFF). Level 0 is the
//! stack itself; level k >= 1 is level k of the pyramid built from it, found
//! through the pyramid's manifest and checked to be built from the stack as it
//! is now. Pixels are reached through one function, [`region::read_region`];
//! files are written by `output.rs`, named by `names.rs`.
//!
//! # Coordinates
//!
//! Everything is half-open and in the chosen level's pixels: columns
//! `x0..x1`, rows `y0..y1`, slices `z0..z1` (slice indices of the level,
//! 0-based). CTHarvester's crop maps onto it as: `x0 = crop_from_x`,
//! `x1 = crop_to_x`, `y0 = crop_from_y`, `y1 = crop_to_y` (the box PIL's
//! `Image.crop` takes, right and bottom excluded), `z0 = bottom_idx`,
//! `z1 = top_idx + 1` (CTHarvester's `top_idx` is included); a
//! `crop_from_x` of -1 (no box drawn) is the whole slice.
//!
//! # Slices are numbers, not positions
//!
//! In a folder of numbered files (`ct_0005.tif` ...), slice `i` of level 0 is
//! the file numbered `first + i` (`first`: the selection's first index, else
//! the first file's number), as CTHarvester counts them: an output named after
//! a number always holds that file's pixels. A number with no file is missing;
//! at level k >= 1, slice `j` stands for level-0 slices `j * 2^k ..= (j + 1) *
//! 2^k - 1`, and from the first gap on the pyramid's slices average other files
//! than those, so they are missing too. A crop that meets a missing slice is an
//! [`Error::State`] naming the missing numbers, before anything is written;
//! with [`Crop::skip_missing`] those slices are left out and each run of them
//! is a warning ([`CropPlan::warnings`]). Stacks without numbers (a file list,
//! the pages of one file) go by position.

use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::sample::with_sample_type;
use crate::stack::{Selection, SliceRef};
use crate::tiff::{IndexedPage, PageIndex};
use crate::writer::fits_classic_tiff;
use crate::{
    CancelFlag, Error, Format, Limits, OpenOptions, Photometric, Pyramid, PyramidBuilder, ReadMode,
    Sample, SampleType, Slice,
};

mod names;
mod numbering;
mod output;
mod record;
mod region;

pub use names::Naming;
pub use output::OutputFormat;
pub use record::RECORD_FILE as CROP_RECORD_FILE;

use numbering::Numbering;
use output::Density;

/// Where a crop's stack comes from.
#[derive(Debug, Clone)]
enum Input {
    Dir(PathBuf, Selection),
    File(PathBuf),
    Files(Vec<PathBuf>),
}

/// A crop of a stack: which stack, which level, which box and slices, where to.
///
/// ```no_run
/// use ctstack::{CancelFlag, Crop};
///
/// // Columns 100..612 and rows 40..552 of slices 8..56 of level 1 of the pyramid
/// // built from `scan` (in `scan/.thumbnail`), into `harvest/` as 000008.tif ...
/// let plan = Crop::from_dir("scan")
///     .level(1)
///     .region(100..612, 40..552)
///     .slices(8..56)
///     .output_dir("harvest")
///     .plan()?;
/// let summary = plan.run(&mut |done, total| eprint!("\r{done}/{total}"), &CancelFlag::new())?;
/// println!("{} files in {}", summary.written, summary.output_dir.display());
///
/// // The same box as one (count, height, width) volume, no files.
/// let mut volume = vec![0u16; plan.samples()];
/// plan.crop_to_array(&mut volume, &mut |_, _| {}, &CancelFlag::new())?;
/// # Ok::<(), ctstack::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Crop {
    input: Input,
    level: usize,
    columns: Option<Range<u32>>,
    rows: Option<Range<u32>>,
    slices: Option<Range<usize>>,
    output_dir: Option<PathBuf>,
    pyramid_dir: Option<PathBuf>,
    format: OutputFormat,
    naming: Naming,
    open: OpenOptions,
    threads: Option<usize>,
    skip_missing: bool,
}

impl Crop {
    fn new(input: Input) -> Crop {
        Crop {
            input,
            level: 0,
            columns: None,
            rows: None,
            slices: None,
            output_dir: None,
            pyramid_dir: None,
            format: OutputFormat::Source,
            naming: Naming::Source,
            open: OpenOptions::default(),
            threads: None,
            skip_missing: false,
        }
    }

    /// The stack of `dir` under the default selection ([`crate::stack::select`]);
    /// its pyramid is `<dir>/.thumbnail`.
    pub fn from_dir(dir: impl Into<PathBuf>) -> Crop {
        Crop::from_selection(dir, &Selection::default())
    }

    /// The files of `dir` that `selection` picks, as [`PyramidBuilder::from_selection`].
    pub fn from_selection(dir: impl Into<PathBuf>, selection: &Selection) -> Crop {
        Crop::new(Input::Dir(dir.into(), selection.clone()))
    }

    /// A stack saved as one multi-page TIFF; its pyramid is `<stem>.thumbnail` beside it.
    pub fn from_file(path: impl Into<PathBuf>) -> Crop {
        Crop::new(Input::File(path.into()))
    }

    /// An explicit, ordered list of slice files (a multi-page TIFF among them
    /// gives all its pages); a crop at level k >= 1 needs [`Crop::pyramid_dir`].
    pub fn from_files(files: Vec<PathBuf>) -> Crop {
        Crop::new(Input::Files(files))
    }

    /// The level: 0 (default) the stack, k >= 1 level k of its pyramid.
    pub fn level(mut self, k: usize) -> Self {
        self.level = k;
        self
    }

    /// The box: columns `x` and rows `y`, half-open, in the level's pixels
    /// (default: the whole slice).
    pub fn region(mut self, x: Range<u32>, y: Range<u32>) -> Self {
        self.columns = Some(x);
        self.rows = Some(y);
        self
    }

    /// The level's slices `z`, half-open, 0-based (default: all).
    pub fn slices(mut self, z: Range<usize>) -> Self {
        self.slices = Some(z);
        self
    }

    /// Where the files go (required by [`CropPlan::run`]; created if missing).
    pub fn output_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.output_dir = Some(dir.into());
        self
    }

    /// Where the pyramid is (default: where [`PyramidBuilder`] puts it for this input).
    pub fn pyramid_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.pyramid_dir = Some(dir.into());
        self
    }

    /// The output format (default [`OutputFormat::Source`]).
    pub fn format(mut self, format: OutputFormat) -> Self {
        self.format = format;
        self
    }

    /// How outputs are named (default [`Naming::Source`]).
    pub fn naming(mut self, naming: Naming) -> Self {
        self.naming = naming;
        self
    }

    /// How slices are read (default [`ReadMode::Auto`]).
    pub fn read_mode(mut self, mode: ReadMode) -> Self {
        self.open.read_mode = mode;
        self
    }

    /// Caps on what one slice may make ctstack allocate.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.open.limits = limits;
        self
    }

    /// Slices read and written at once (default: one per CPU, rayon's pool).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads);
        self
    }

    /// Missing slices (see "Slices are numbers, not positions" in the module
    /// docs): `false` (default) refuses them with [`Error::State`], `true`
    /// leaves them out with a warning ([`CropPlan::warnings`]).
    pub fn skip_missing(mut self, skip: bool) -> Self {
        self.skip_missing = skip;
        self
    }

    /// Checks the stack's headers, the pyramid (level k >= 1), the box, the range
    /// and the output names; nothing is written.
    ///
    /// Errors: those of [`PyramidBuilder::plan`]; a box or range outside the level
    /// ([`Error::Usage`], naming the level's bounds); at level k, a missing,
    /// stale or incomplete pyramid ([`Error::State`], saying to build it); a
    /// missing slice in the range, unless [`Crop::skip_missing`] ([`Error::State`],
    /// naming the numbers), or only missing slices; a format that cannot hold the
    /// samples, or names that would leave the output folder or collide
    /// ([`Error::Usage`]).
    pub fn plan(&self) -> Result<CropPlan, Error> {
        if self.threads == Some(0) {
            return Err(Error::usage("threads must be at least 1"));
        }
        let builder = match &self.input {
            Input::Dir(dir, selection) => PyramidBuilder::from_selection(dir, selection)?,
            // A crop of a file of one image is a crop of that image: a box
            // named on purpose, not a stack given for its folder.
            Input::File(path) => PyramidBuilder::from_file(path).single_page(true),
            Input::Files(files) => {
                let out = self.pyramid_dir.clone().unwrap_or_default();
                PyramidBuilder::from_files(files.clone(), out)
            }
        };
        let mut builder = builder
            .read_mode(self.open.read_mode)
            .limits(self.open.limits);
        if let Some(dir) = &self.pyramid_dir {
            builder = builder.output_dir(dir);
        }
        let stack = builder.plan()?;
        let stack_shape = stack.levels()[0];
        let sample_type = stack.sample_type();
        let first = &stack.inputs()[0];
        let head = Slice::read_page_header(&first.path, first.page, &self.open)?;
        let mut notes: Vec<String> = stack.warnings().to_vec();
        let (numbering, input_dir) = match &self.input {
            Input::Dir(dir, selection) => (
                Numbering::of(stack.inputs(), selection.range.map(|r| r.0))?,
                dir.clone(),
            ),
            Input::File(path) => (Numbering::positions(stack.inputs().len()), path.clone()),
            Input::Files(_) => (
                Numbering::positions(stack.inputs().len()),
                stack.output_dir().to_path_buf(),
            ),
        };

        let k = self.level;
        let density = stack_density(first, head.format, &mut notes);
        let (shape, pyramid, source_format, density) = if k == 0 {
            let shape = crate::LevelShape {
                count: numbering.count_at(0),
                ..stack_shape
            };
            (shape, None, head.format, density)
        } else {
            if matches!(self.input, Input::Files(_)) && self.pyramid_dir.is_none() {
                return Err(Error::usage(
                    "a crop of an explicit file list at level 1 or more needs the pyramid's folder",
                ));
            }
            let dir = stack.output_dir();
            let pyramid = Pyramid::open_built_from(dir, stack.inputs(), stack_shape, sample_type)?;
            let level = pyramid.level(k)?;
            let shape = crate::LevelShape {
                width: level.width,
                height: level.height,
                count: numbering.count_at(k),
            };
            let density = density.and_then(|d| d.at_level(k));
            notes.push(format!(
                "level {k} slice j is the mean of level-0 slices j*{n} ..= j*{n} + {m} (cut at \
                 the stack's end)",
                n = 1u64 << k.min(63),
                m = (1u64 << k.min(63)) - 1
            ));
            (shape, Some(pyramid), Format::Tiff, density)
        };

        let what = match k {
            0 => "the stack".to_string(),
            k => format!("level {k}"),
        };
        let x = self.columns.clone().unwrap_or(0..shape.width);
        let y = self.rows.clone().unwrap_or(0..shape.height);
        let z = self.slices.clone().unwrap_or(0..shape.count);
        if x.start >= x.end || y.start >= y.end || x.end > shape.width || y.end > shape.height {
            return Err(Error::usage(format!(
                "box x {}..{}, y {}..{} is not inside {what}: x 0..{}, y 0..{} (half-open, \
                 non-empty)",
                x.start, x.end, y.start, y.end, shape.width, shape.height
            )));
        }
        if z.start >= z.end || z.end > shape.count {
            return Err(Error::usage(format!(
                "slice range {}..{} is not inside {what}: slices 0..{} (half-open, non-empty)",
                z.start, z.end, shape.count
            )));
        }
        // Which slices of `z` exist, by number; at level k, each file is checked
        // to be the one the manifest lists.
        let mut warnings = Vec::new();
        type Found = (
            Vec<usize>,
            Vec<(SliceRef, Option<IndexedPage>)>,
            Option<String>,
        );
        let (indices, found, missing): Found = match &pyramid {
            None => {
                let level0 = numbering.level0(z.clone());
                let missing = (!level0.missing.is_empty())
                    .then(|| numbering.level0_message(&input_dir, &level0.missing));
                let (indices, sources) = level0
                    .present
                    .iter()
                    .map(|&(i, p)| {
                        let indexed = stack.page_index().get(p).cloned();
                        (i, (stack.inputs()[p].clone(), indexed))
                    })
                    .unzip();
                (indices, sources, missing)
            }
            Some(pyramid) => {
                let (present, absent) = numbering.level_k(k, z.clone());
                let missing = (!absent.is_empty()).then(|| numbering.level_k_message(k, &absent));
                let sources = present
                    .clone()
                    .map(|j| Ok((SliceRef::new(pyramid.checked_slice_path(k, j)?, 0), None)))
                    .collect::<Result<_, Error>>()?;
                (present.collect(), sources, missing)
            }
        };
        let (sources, index): (Vec<SliceRef>, Vec<Option<IndexedPage>>) = found.into_iter().unzip();
        let index = PageIndex::new(index);
        if let Some(message) = missing {
            if !self.skip_missing {
                return Err(Error::state(
                    &input_dir,
                    format!(
                        "{message}; nothing was written (skip them with \
                         Crop::skip_missing(true))"
                    ),
                ));
            }
            if sources.is_empty() {
                return Err(Error::state(
                    &input_dir,
                    format!("{message}; no slice of {}..{} is left", z.start, z.end),
                ));
            }
            warnings.push(format!("skipped: {message}"));
        }

        let (format, note) = self.format.resolve(source_format);
        notes.extend(note);
        format.check(sample_type, head.photometric)?;
        let bytes = x.len() as u64 * y.len() as u64 * sample_type.bytes() as u64;
        if format == OutputFormat::Tiff && !fits_classic_tiff(bytes) {
            return Err(Error::usage(format!(
                "a {}x{} box of {sample_type} samples is too large for one TIFF strip (4 GB)",
                x.len(),
                y.len()
            )));
        }
        let multi = names::multi_page_files(stack.inputs());
        let names = names::output_names(
            &self.naming,
            k,
            &indices,
            &sources,
            &multi,
            format.extension(),
        )?;
        Ok(CropPlan {
            level: k,
            x,
            y,
            level_shape: shape,
            sample_type,
            photometric: head.photometric,
            format,
            density,
            sources,
            index,
            names,
            stack_files: stack.inputs().iter().map(|s| s.path.clone()).collect(),
            output_dir: self.output_dir.clone(),
            warnings,
            notes,
            open: self.open.clone(),
            threads: self.threads,
        })
    }
}

/// The resolution of the stack's level 0 for the outputs, by
/// [`crate::VoxelSize`]'s rule: a TIFF slice's own resolution tags when they
/// have a length unit; else the scanner's voxel size from the file beside the
/// slices (said in `notes`), which wins over the pixels per metre of a BMP, PNG
/// or JPEG header (most writers fill those with a screen's 72 or 96 dpi); else
/// what the slice has (such a density, a unitless aspect, or nothing).
fn stack_density(first: &SliceRef, format: Format, notes: &mut Vec<String>) -> Option<Density> {
    let own = output::read_density(&first.path, first.page, format);
    if format == Format::Tiff && own.is_some_and(Density::has_length_unit) {
        return own;
    }
    let lookup = crate::VoxelSize::from_sidecar(&first.path);
    notes.extend(lookup.warnings);
    let Some(size) = lookup.size else {
        return own;
    };
    let [_, y, x] = size.micrometres;
    let density = Density::from_micrometres(x, y);
    if density.is_some() {
        notes.push(format!("the outputs' resolution: {}", size.note()));
    }
    density.or(own)
}

/// A checked crop, ready to write files ([`CropPlan::run`]) or fill an array
/// ([`CropPlan::crop_to_array`]).
#[derive(Debug, Clone)]
pub struct CropPlan {
    level: usize,
    x: Range<u32>,
    y: Range<u32>,
    level_shape: crate::LevelShape,
    sample_type: SampleType,
    photometric: Photometric,
    format: OutputFormat,
    density: Option<Density>,
    /// The level's files (or pages) of the slice range that exist, in order.
    sources: Vec<SliceRef>,
    /// Their entries in the stack plan's page index (level 0), entry `i` for
    /// source `i`: each page's place, found once by the plan.
    index: PageIndex,
    /// Their output names.
    names: Vec<String>,
    /// Every file of the stack (never written to).
    stack_files: HashSet<PathBuf>,
    output_dir: Option<PathBuf>,
    warnings: Vec<String>,
    notes: Vec<String>,
    open: OpenOptions,
    threads: Option<usize>,
}

/// What a crop run did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CropSummary {
    /// Where the files are.
    pub output_dir: PathBuf,
    /// The files written, in slice order.
    pub files: Vec<PathBuf>,
    /// How many (`files.len()`).
    pub written: usize,
    /// The plan's warnings ([`CropPlan::warnings`]: missing slices skipped), then
    /// its notes (gaps in the numbering, a format change, how level-k names map
    /// to source slices).
    pub notes: Vec<String>,
    /// Wall time.
    pub elapsed: Duration,
}

impl CropPlan {
    /// The level cropped.
    pub fn level(&self) -> usize {
        self.level
    }

    /// The level's size: width, height, slice count (in a numbered stack, the
    /// numbers from the first to the last, missing ones included).
    pub fn level_shape(&self) -> crate::LevelShape {
        self.level_shape
    }

    /// The crop's shape: (slices, height, width); the slices are those of the
    /// range that exist ([`CropPlan::warnings`] names those skipped).
    pub fn shape(&self) -> (usize, u32, u32) {
        (self.sources.len(), self.y.len() as u32, self.x.len() as u32)
    }

    /// Samples in the whole crop: slices x height x width.
    pub fn samples(&self) -> usize {
        self.sources.len() * self.y.len() * self.x.len()
    }

    /// The sample type of the stack (and of the outputs).
    pub fn sample_type(&self) -> SampleType {
        self.sample_type
    }

    /// The format written (never [`OutputFormat::Source`]: resolved from the sources).
    pub fn format(&self) -> OutputFormat {
        self.format
    }

    /// The files (or pages) read, one per output slice.
    pub fn sources(&self) -> &[SliceRef] {
        &self.sources
    }

    /// The output file names, one per slice, in order.
    pub fn output_names(&self) -> &[String] {
        &self.names
    }

    /// Missing slices left out under [`Crop::skip_missing`], one message per
    /// run, naming the numbers: show these to the user.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Non-fatal findings: gaps in the numbering, a format change, how level-k
    /// outputs map to source slices.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Progress units: one per output slice.
    pub fn total_units(&self) -> u64 {
        self.sources.len() as u64
    }

    fn pool(&self) -> Result<Option<rayon::ThreadPool>, Error> {
        crate::threads::pool(self.threads)
    }

    /// Slices handled at once: one per thread of the pool.
    fn batch(&self, pool: Option<&rayon::ThreadPool>) -> usize {
        pool.map_or_else(rayon::current_num_threads, |p| p.current_num_threads())
            .max(1)
    }

    /// Writes one file per slice into the output folder (created if missing):
    /// the box of each, in [`CropPlan::format`], named [`CropPlan::output_names`],
    /// with the resolution of the stack's first slice (TIFF XResolution,
    /// YResolution and ResolutionUnit, a BMP's or PNG's pixels per metre, a
    /// JPEG's JFIF density), halved per level at level k, where the output
    /// format has a place for it.
    /// `progress(done, total)` after every file; raising `cancel` stops at the
    /// next slice with [`Error::Cancelled`].
    ///
    /// Each file appears atomically (temporary name, rename), its data synced
    /// before the rename and the folder synced before the run returns (durable
    /// once reported).
    ///
    /// ctstack never replaces a file it did not write: an existing file at an
    /// output name is replaced (as a whole) only if ctstack's crop wrote it,
    /// which the folder's crop record [`CROP_RECORD_FILE`] proves (written
    /// last, atomically and synced; see `src/crop/record.rs`). Any other file
    /// at an output name refuses the crop before anything is written. Files
    /// of the folder that are not outputs are never touched, except the
    /// temporary files of these outputs that a killed run left (removed
    /// first). The folder is locked for the run ([`crate::LOCK_FILE`], as a
    /// pyramid's): crops into one folder take turns. A slice that cannot be
    /// read or written stops the run with an error naming it; the files
    /// written before it stay, complete, and are recorded. A rerun writes the
    /// same bytes.
    ///
    /// Errors: no output folder given, or one that is the folder of a source
    /// whose file an output would replace ([`Error::Usage`]); a file at an
    /// output name that ctstack did not write, or a file at
    /// [`CROP_RECORD_FILE`] that is not a crop record ([`Error::State`],
    /// naming the files and saying what to do); reading and writing errors,
    /// naming the file.
    pub fn run(
        &self,
        progress: &mut dyn FnMut(u64, u64),
        cancel: &CancelFlag,
    ) -> Result<CropSummary, Error> {
        let started = Instant::now();
        let Some(out) = &self.output_dir else {
            return Err(Error::usage("no output folder given for the crop's files"));
        };
        std::fs::create_dir_all(out)
            .map_err(|e| Error::io(out, "cannot create output directory", e))?;
        let paths: Vec<PathBuf> = self.names.iter().map(|n| out.join(n)).collect();
        self.refuse_overwriting_sources(out, &paths)?;
        let _lock = crate::pyramid::lock::OutputLock::acquire(out, cancel)?;
        let mut record = record::Record::read(out)?;
        record.refuse_foreign(out, &paths)?;
        remove_own_temporaries(out, &self.names)?;
        let pool = self.pool()?;
        let shape = record::Shape::new(self.x.len() as u32, self.y.len() as u32, self.sample_type);
        record.save_writing(out, &self.names, &shape)?;
        let total = self.total_units();
        progress(0, total);
        let mut written = Vec::with_capacity(paths.len());
        let wrote = self.write_all(&paths, pool.as_ref(), progress, cancel, &mut written);
        // Whatever happened, what was written is synced, then recorded.
        let finished = output::finish(out);
        let recorded = record.save_written(out, &self.names, written);
        wrote?;
        finished?;
        recorded?;
        Ok(CropSummary {
            output_dir: out.clone(),
            written: paths.len(),
            files: paths,
            notes: self.warnings.iter().chain(&self.notes).cloned().collect(),
            elapsed: started.elapsed(),
        })
    }

    /// Writes every output, in batches of one slice per thread; lists each
    /// file written in `written` (its name and its size and time).
    fn write_all(
        &self,
        paths: &[PathBuf],
        pool: Option<&rayon::ThreadPool>,
        progress: &mut dyn FnMut(u64, u64),
        cancel: &CancelFlag,
        written: &mut Vec<(String, crate::pyramid::FileRecord)>,
    ) -> Result<(), Error> {
        let total = self.total_units();
        let batch = self.batch(pool);
        let mut done = 0u64;
        for start in (0..self.sources.len()).step_by(batch) {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let end = (start + batch).min(self.sources.len());
            let work = || -> Vec<Result<std::fs::Metadata, Error>> {
                use rayon::prelude::*;
                (start..end)
                    .into_par_iter()
                    .map(|i| self.write_one(i, &paths[i]))
                    .collect()
            };
            let results = match pool {
                Some(p) => p.install(work),
                None => work(),
            };
            let mut first_error = None;
            for (i, result) in (start..end).zip(results) {
                match result {
                    Ok(metadata) => written.push((
                        self.names[i].clone(),
                        crate::pyramid::FileRecord::of(&metadata),
                    )),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = first_error {
                return Err(e);
            }
            for _ in start..end {
                done += 1;
                progress(done, total);
            }
        }
        Ok(())
    }

    /// Reads slice `i`'s box and writes it to `path`; the file's metadata.
    fn write_one(&self, i: usize, path: &Path) -> Result<std::fs::Metadata, Error> {
        let (w, h) = (self.x.len() as u32, self.y.len() as u32);
        with_sample_type!(self.sample_type, T => {
            let mut buf = vec![T::default(); w as usize * h as usize];
            self.read_one(i, &mut buf)?;
            output::write(path, self.format, w, h, &buf, self.photometric, self.density)
        })?;
        // Under the folder's lock nothing else writes the name.
        std::fs::symlink_metadata(path).map_err(|e| Error::io(path, "cannot read back", e))
    }

    /// Slice `i`'s box into `dst` (height x width samples).
    fn read_one<T: Sample>(&self, i: usize, dst: &mut [T]) -> Result<(), Error> {
        region::read_region(
            &self.sources[i],
            self.index.get(i),
            &self.open,
            self.y.clone(),
            self.x.clone(),
            dst,
        )
    }

    /// [`Error::Mismatch`] unless the stack's samples are `T`: a caller's array
    /// of another type is refused before anything is read.
    fn holds<T: Sample>(&self) -> Result<(), Error> {
        if T::TYPE == self.sample_type {
            return Ok(());
        }
        Err(Error::mismatch(format!(
            "the stack holds {} samples, asked for {}",
            self.sample_type,
            T::TYPE
        )))
    }

    /// The crop as one contiguous (slices, height, width) volume in `dst`, which
    /// must hold exactly [`CropPlan::samples`] samples of the stack's type `T`
    /// ([`Error::Mismatch`] otherwise): slice `i` at `dst[i * height * width ..]`,
    /// row-major. No file is written. Progress and cancel as in [`CropPlan::run`].
    pub fn crop_to_array<T: Sample>(
        &self,
        dst: &mut [T],
        progress: &mut dyn FnMut(u64, u64),
        cancel: &CancelFlag,
    ) -> Result<(), Error> {
        self.holds::<T>()?;
        if dst.len() != self.samples() {
            let (n, h, w) = self.shape();
            return Err(Error::mismatch(format!(
                "destination holds {} samples, the crop ({n} x {h}x{w}) has {}",
                dst.len(),
                self.samples()
            )));
        }
        let plane = self.x.len() * self.y.len();
        let pool = self.pool()?;
        let batch = self.batch(pool.as_ref());
        let total = self.total_units();
        progress(0, total);
        let mut done = 0u64;
        for (b, planes) in dst.chunks_mut(plane * batch).enumerate() {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let first = b * batch;
            let n = planes.len() / plane;
            let work = move || -> Result<(), Error> {
                use rayon::prelude::*;
                let planes = planes;
                planes
                    .par_chunks_mut(plane)
                    .enumerate()
                    .map(|(i, out)| self.read_one(first + i, out))
                    .collect::<Vec<_>>()
                    .into_iter()
                    .collect()
            };
            match &pool {
                Some(p) => p.install(work)?,
                None => work()?,
            }
            for _ in 0..n {
                done += 1;
                progress(done, total);
            }
        }
        Ok(())
    }

    /// Part of the crop, numpy's `[z, y, x]` with steps: the crop's slices
    /// `z.0` every `z.1`-th, rows `y.0` every `y.1`-th, columns `x.0` every
    /// `x.1`-th (half-open ranges relative to the crop's box, steps >= 1), into
    /// `dst`, one contiguous (slices, rows, columns) volume of
    /// `ceil(len / step)` per axis, row-major. Only the kept slices are read,
    /// and with a row step only the kept rows (each through the region
    /// reader, touching the strips or tiles it meets); a column step reads the
    /// columns from the first to the last kept one. Slices are read in
    /// parallel on the crop's threads. One plan serves any number of such
    /// reads: a viewer plans the whole level once, then reads what it shows.
    ///
    /// Errors: an empty range, a step of 0, or a range outside the crop
    /// ([`Error::Usage`], naming the crop's shape); `dst` of another length or
    /// sample type ([`Error::Mismatch`]); reading errors, naming the file.
    pub fn read_box<T: Sample>(
        &self,
        z: (Range<usize>, usize),
        y: (Range<u32>, usize),
        x: (Range<u32>, usize),
        dst: &mut [T],
    ) -> Result<(), Error> {
        self.holds::<T>()?;
        let (n, h, w) = self.shape();
        let (zs, ys, xs) = (
            kept(z.0.start as u64..z.0.end as u64, z.1, n as u64, "slices z")?,
            kept(y.0.start as u64..y.0.end as u64, y.1, h as u64, "rows y")?,
            kept(x.0.start as u64..x.0.end as u64, x.1, w as u64, "columns x")?,
        );
        let plane = ys.count as usize * xs.count as usize;
        if dst.len() as u128 != zs.count as u128 * plane as u128 {
            return Err(Error::mismatch(format!(
                "destination holds {} samples, the box ({} x {}x{}) has {}",
                dst.len(),
                zs.count,
                ys.count,
                xs.count,
                zs.count as u128 * plane as u128
            )));
        }
        // Columns read per row: the first to the last kept one, in crop coordinates.
        let cols = xs.start as u32..xs.last as u32 + 1;
        let cols = self.x.start + cols.start..self.x.start + cols.end;
        let read_plane = |i: usize, out: &mut [T]| -> Result<(), Error> {
            let source = zs.start as usize + i * zs.step as usize;
            let slice = &self.sources[source];
            let indexed = self.index.get(source);
            let row = |r: u64| self.y.start + r as u32;
            if ys.step == 1 && xs.step == 1 {
                let rows = row(ys.start)..row(ys.last) + 1;
                return region::read_region(slice, indexed, &self.open, rows, cols.clone(), out);
            }
            let mut buf = vec![T::default(); if xs.step == 1 { 0 } else { cols.len() }];
            for (j, out_row) in out.chunks_mut(xs.count as usize).enumerate() {
                let r = row(ys.start + j as u64 * ys.step);
                if xs.step == 1 {
                    region::read_region(
                        slice,
                        indexed,
                        &self.open,
                        r..r + 1,
                        cols.clone(),
                        out_row,
                    )?;
                } else {
                    region::read_region(
                        slice,
                        indexed,
                        &self.open,
                        r..r + 1,
                        cols.clone(),
                        &mut buf,
                    )?;
                    let picked = buf.iter().step_by(xs.step as usize);
                    out_row.iter_mut().zip(picked).for_each(|(o, v)| *o = *v);
                }
            }
            Ok(())
        };
        let pool = self.pool()?;
        let work = move || -> Result<(), Error> {
            use rayon::prelude::*;
            let dst = dst;
            dst.par_chunks_mut(plane)
                .enumerate()
                .map(|(i, out)| read_plane(i, out))
                .collect::<Vec<_>>()
                .into_iter()
                .collect()
        };
        match &pool {
            Some(p) => p.install(work),
            None => work(),
        }
    }

    /// A usage error if an output would replace a file of the stack.
    fn refuse_overwriting_sources(&self, out: &Path, paths: &[PathBuf]) -> Result<(), Error> {
        let canonical = |p: &Path| std::fs::canonicalize(p).ok();
        let sources: HashSet<PathBuf> = self
            .stack_files
            .iter()
            .filter_map(|p| canonical(p))
            .collect();
        let sources: HashSet<PathBuf> = sources
            .into_iter()
            .chain(self.sources.iter().filter_map(|s| canonical(&s.path)))
            .collect();
        for path in paths {
            if canonical(path).is_some_and(|c| sources.contains(&c)) {
                return Err(Error::usage(format!(
                    "{}: the crop would replace this source file: choose another output folder \
                     than {}",
                    path.display(),
                    out.display()
                )));
            }
        }
        Ok(())
    }
}

/// Removes the temporary files a killed run left for the outputs `names` (and
/// only those: other temporary files may be another run's).
fn remove_own_temporaries(out: &Path, names: &[String]) -> Result<(), Error> {
    let ours: HashSet<&str> = names.iter().map(String::as_str).collect();
    crate::temp::sweep(out, crate::temp::Reach::Folder, |output| {
        ours.contains(output)
    })
    .map(drop)
}

/// The indices an axis keeps: `count` of them, `start`, `start + step`, ..., `last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Kept {
    start: u64,
    step: u64,
    count: u64,
    last: u64,
}

/// `range` every `step`-th within `0..len` (the crop's `what`), or a usage error.
fn kept(range: Range<u64>, step: usize, len: u64, what: &str) -> Result<Kept, Error> {
    if step == 0 {
        return Err(Error::usage(format!("{what}: a step of 0")));
    }
    if range.start >= range.end || range.end > len {
        return Err(Error::usage(format!(
            "{what} {}..{} is not inside the crop's 0..{len} (half-open, non-empty)",
            range.start, range.end
        )));
    }
    let step = step as u64;
    let count = (range.end - range.start).div_ceil(step);
    Ok(Kept {
        start: range.start,
        step,
        count,
        last: range.start + (count - 1) * step,
    })
}
