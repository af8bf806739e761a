//! The streaming pyramid builder.
//!
//! Level 0 is the input stack; level k+1 slice j is the 2x2x2 mean of level-k
//! slices 2j and 2j+1 (an odd last slice is paired with itself). Levels are made
//! as a cascade: a level-k+1 slice is computed as soon as its two level-k slices
//! exist, and they are dropped right after, so memory holds a couple of slices
//! per level, never the stack.
//!
//! I/O follows what CTHarvester's own performance work found: input is read in
//! order, the next pair is opened and prefetched (MAP_POPULATE / madvise
//! WILLNEED, or decoded when compressed) on one thread while the current pair is
//! averaged on the others, and mappings are released as soon as a pair is used.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::sample::with_sample_type;
use crate::writer::{self, write_slice};
use crate::{
    Error, Limits, OpenOptions, ReadMode, Rows, Sample, SampleType, Slice, average_pair, stack,
};

/// The default `min_size`: CTHarvester halves until slices fit 500 px.
pub const DEFAULT_MIN_SIZE: u32 = 500;

/// Whether look-ahead opens fault whole maps in (MAP_POPULATE). Off: in the
/// pyramid benchmark (16 x 2752x2752, same run) plain maps gave 6.97 GiB/s and
/// populated ones 6.78; the kernel's fault-around already maps pages in batches.
const POPULATE_AHEAD: bool = false;

/// Spare slice buffers kept for reuse: a level-1 slice is held by the cascade
/// (pending its partner) and by the writer, and one is being computed; a fourth
/// covers the next level. More would only hold memory.
const SPARE_BUFFERS: usize = 4;

/// Name of the lock file that keeps two runs from writing one output directory at once.
pub const LOCK_FILE: &str = ".ctstack.lock";

/// The size and slice count of one pyramid level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelShape {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Number of slices.
    pub count: usize,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Levels beyond the input (level 1 ..= levels).
    pub levels: usize,
    /// Output slices written by this run.
    pub written: usize,
    /// Output slices that existed already, were valid and were kept.
    pub kept: usize,
    /// Bytes of input pixels (level 0) read by this run.
    pub input_bytes: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// Builds a level-of-detail pyramid from a stack of slices.
///
/// ```no_run
/// use ctstack::PyramidBuilder;
///
/// let plan = PyramidBuilder::from_dir("scan")?.min_size(500).plan()?;
/// for warning in plan.warnings() {
///     eprintln!("warning: {warning}");
/// }
/// let summary = plan.run(&mut |done, total| eprintln!("{done}/{total}"), &Default::default())?;
/// println!("{} slices written", summary.written);
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
    open: OpenOptions,
}

impl PyramidBuilder {
    /// The `.tif`/`.tiff` files of `dir` (not recursive), in natural order; output
    /// to `<dir>/.thumbnail` unless [`PyramidBuilder::output_dir`] says otherwise.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<PyramidBuilder, Error> {
        let dir = dir.as_ref();
        let inputs = stack::list_slices(dir)?;
        if inputs.is_empty() {
            return Err(Error::usage(format!(
                "{}: no .tif or .tiff files in the directory",
                dir.display()
            )));
        }
        Ok(PyramidBuilder::from_files(inputs, dir.join(".thumbnail")))
    }

    /// An explicit, ordered list of slice files, written to `output_dir`.
    pub fn from_files(inputs: Vec<PathBuf>, output_dir: impl Into<PathBuf>) -> PyramidBuilder {
        PyramidBuilder {
            inputs,
            output_dir: output_dir.into(),
            min_size: DEFAULT_MIN_SIZE,
            min_levels: 0,
            threads: None,
            strict: false,
            open: OpenOptions {
                populate: POPULATE_AHEAD,
                ..OpenOptions::default()
            },
        }
    }

    /// Where levels go: `<dir>/<k>/<j:06>.tif`.
    pub fn output_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.output_dir = dir.into();
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

    /// How input slices (and kept outputs) are read (default: [`ReadMode::Auto`]).
    pub fn read_mode(mut self, mode: ReadMode) -> Self {
        self.open.read_mode = mode;
        self
    }

    /// Whether look-ahead opens fault the whole mapping in (MAP_POPULATE; default off).
    pub fn populate(mut self, populate: bool) -> Self {
        self.open.populate = populate;
        self
    }

    /// Caps on what one input slice may make ctstack allocate.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.open.limits = limits;
        self
    }

    /// Checks every input slice's header (nothing is written) and works out the levels.
    ///
    /// Errors: a slice that does not parse, or whose size or depth differs from the
    /// first one ([`Error::Mismatch`], naming it); a gap in the numbering when strict.
    pub fn plan(&self) -> Result<Plan, Error> {
        if self.min_size == 0 {
            return Err(Error::usage("min_size must be at least 1"));
        }
        if self.threads == Some(0) {
            return Err(Error::usage("threads must be at least 1"));
        }
        let Some(first) = self.inputs.first() else {
            return Err(Error::usage("the stack is empty: no input slices"));
        };
        let head = Slice::read_header(first, &self.open)?;
        for path in &self.inputs[1..] {
            let info = Slice::read_header(path, &self.open)?;
            if (info.width, info.height, info.sample_type)
                != (head.width, head.height, head.sample_type)
            {
                return Err(Error::mismatch(format!(
                    "{}: {}x{} {}, but {} is {}x{} {}: all slices of a stack must match",
                    path.display(),
                    info.width,
                    info.height,
                    info.sample_type,
                    first.display(),
                    head.width,
                    head.height,
                    head.sample_type
                )));
            }
        }
        let warnings = stack::numbering_gaps(&self.inputs);
        if self.strict && !warnings.is_empty() {
            return Err(Error::mismatch(warnings.join("; ")));
        }
        let levels = level_shapes_with(
            head.width,
            head.height,
            self.inputs.len(),
            self.min_size,
            self.min_levels,
        );
        Ok(Plan {
            builder: self.clone(),
            sample_type: head.sample_type,
            levels,
            warnings,
        })
    }
}

/// The shapes of levels 0 ..= L for an input of `width` x `height` x `count`:
/// keep halving while width or height exceeds `min_size` (CTHarvester's rule),
/// stopping early only if a dimension would reach 0.
pub fn level_shapes(width: u32, height: u32, count: usize, min_size: u32) -> Vec<LevelShape> {
    level_shapes_with(width, height, count, min_size, 0)
}

/// [`level_shapes`], building at least `min_levels` levels beyond the input.
fn level_shapes_with(
    width: u32,
    height: u32,
    count: usize,
    min_size: u32,
    min_levels: usize,
) -> Vec<LevelShape> {
    let mut levels = vec![LevelShape {
        width,
        height,
        count,
    }];
    loop {
        let last = levels[levels.len() - 1];
        let wants_more =
            last.width > min_size || last.height > min_size || levels.len() <= min_levels;
        if !wants_more || last.width < 2 || last.height < 2 {
            return levels;
        }
        levels.push(LevelShape {
            width: last.width / 2,
            height: last.height / 2,
            count: last.count.div_ceil(2),
        });
    }
}

/// A checked stack, ready to run.
#[derive(Debug, Clone)]
pub struct Plan {
    builder: PyramidBuilder,
    sample_type: SampleType,
    levels: Vec<LevelShape>,
    warnings: Vec<String>,
}

/// Asks a running build to stop; share it between the thread that runs and the
/// one that cancels.
///
/// ```
/// use std::sync::Arc;
/// use ctstack::{CancelFlag, Error, PyramidBuilder, write_slice};
///
/// let dir = std::env::temp_dir().join(format!("ctstack-doc-cancel-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
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

impl Plan {
    /// Levels 0 ..= L: the input, then each halving.
    pub fn levels(&self) -> &[LevelShape] {
        &self.levels
    }

    /// The stack's sample type.
    pub fn sample_type(&self) -> SampleType {
        self.sample_type
    }

    /// Non-fatal findings (gaps in the numbering).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Where the levels are written.
    pub fn output_dir(&self) -> &Path {
        &self.builder.output_dir
    }

    /// Progress units of a run: one per output slice.
    pub fn total_units(&self) -> u64 {
        self.levels[1..].iter().map(|l| l.count as u64).sum()
    }

    /// Path of output slice `j` of level `k` (k >= 1).
    pub fn output_path(&self, k: usize, j: usize) -> PathBuf {
        self.builder
            .output_dir
            .join(k.to_string())
            .join(format!("{j:06}.tif"))
    }

    /// Builds the pyramid. `progress(done, total)` is called after every output
    /// slice (done never decreases and reaches total on success); raising `cancel`
    /// stops the run at the next slice with [`Error::Cancelled`].
    ///
    /// Existing outputs that parse and have the right size and depth are kept
    /// (resume); damaged ones are rebuilt. Every file appears atomically. A lock
    /// file in the output directory serialises concurrent runs on one directory.
    pub fn run(
        &self,
        progress: &mut dyn FnMut(u64, u64),
        cancel: &CancelFlag,
    ) -> Result<Summary, Error> {
        let started = Instant::now();
        let out = &self.builder.output_dir;
        std::fs::create_dir_all(out)
            .map_err(|e| Error::io(out, "cannot create output directory", e))?;
        let _lock = lock_output(out, cancel)?;
        for k in 1..self.levels.len() {
            let dir = out.join(k.to_string());
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::io(&dir, "cannot create output directory", e))?;
            remove_stale_temps(&dir);
        }
        let pool = match self.builder.threads {
            Some(n) => Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .map_err(|e| Error::usage(format!("cannot start {n} threads: {e}")))?,
            ),
            None => None,
        };
        let pool = pool.as_ref();
        let mut summary = with_sample_type!(self.sample_type, T => {
            Cascade::<T>::new(self, pool, progress, cancel).run()?
        });
        summary.elapsed = started.elapsed();
        Ok(summary)
    }
}

/// Takes the output directory's lock, waiting for another run to finish; the
/// lock goes with the returned file (and with the process, if it dies).
fn lock_output(out: &Path, cancel: &CancelFlag) -> Result<File, Error> {
    let path = out.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, "cannot create lock file", e))?;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => {
                if cancel.is_cancelled() {
                    return Err(Error::Cancelled);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, "cannot lock", e)),
        }
    }
}

/// Removes temporary files a killed run left behind (safe: we hold the lock).
fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if writer::is_temp_name(&entry.file_name().to_string_lossy()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A slice of level >= 1: computed now, or an existing output kept from an earlier run.
enum Made<T> {
    Computed(Arc<Vec<T>>),
    Kept(Slice),
}

impl<T: Sample> Made<T> {
    fn rows(&self, shape: LevelShape) -> Result<Rows<'_, T>, Error> {
        match self {
            Made::Computed(v) => {
                Ok(
                    Rows::from_contiguous(v, shape.width as usize, shape.height as usize)
                        .expect("computed level buffers have the level's size"),
                )
            }
            Made::Kept(s) => s.rows::<T>(),
        }
    }
}

/// The state of one run: a pending slice per level waiting for its partner.
struct Cascade<'p, T> {
    plan: &'p Plan,
    /// The pool to average on (`None`: rayon's global pool). The cascade itself,
    /// and so the progress callback, stays on the caller's thread.
    pool: Option<&'p rayon::ThreadPool>,
    progress: &'p mut dyn FnMut(u64, u64),
    cancel: &'p CancelFlag,
    /// `pending[k]`: a level-k slice whose partner is not made yet.
    pending: Vec<Option<Made<T>>>,
    /// `next[k]`: index of the next level-k slice to make.
    next: Vec<usize>,
    done: u64,
    total: u64,
    summary: Summary,
    /// Buffers of computed slices no longer needed, kept for the next ones: saves
    /// zeroing and faulting in fresh pages for every slice.
    spare: Vec<Vec<T>>,
}

impl<'p, T: Sample> Cascade<'p, T> {
    fn new(
        plan: &'p Plan,
        pool: Option<&'p rayon::ThreadPool>,
        progress: &'p mut dyn FnMut(u64, u64),
        cancel: &'p CancelFlag,
    ) -> Self {
        let n = plan.levels.len();
        Cascade {
            plan,
            pool,
            progress,
            cancel,
            pending: (0..n).map(|_| None).collect(),
            next: vec![0; n],
            done: 0,
            total: plan.total_units(),
            spare: Vec::new(),
            summary: Summary {
                levels: n - 1,
                written: 0,
                kept: 0,
                input_bytes: 0,
                elapsed: Duration::ZERO,
            },
        }
    }

    fn run(mut self) -> Result<Summary, Error> {
        (self.progress)(0, self.total);
        if self.plan.levels.len() < 2 {
            return Ok(self.summary);
        }
        let inputs = &self.plan.builder.inputs;
        let pairs = self.plan.levels[1].count;
        // Level-1 outputs already there need no input read at all.
        let kept: Vec<bool> = (0..pairs).map(|j| self.existing(1, j).is_some()).collect();
        let opts = &self.plan.builder.open;
        // The two slices of a pair open side by side: for compressed stacks that is
        // two decodes in parallel; for mapped ones, two prefetches.
        let open_pair = |j: usize| -> Result<InputPair, Error> {
            let (first, second) = rayon::join(
                || Slice::open_with(&inputs[2 * j], opts),
                // An odd count: the last slice is paired with itself.
                || {
                    inputs
                        .get(2 * j + 1)
                        .map(|p| Slice::open_with(p, opts))
                        .transpose()
                },
            );
            Ok(InputPair {
                index: j,
                first: first?,
                second: second?,
            })
        };
        let shape = self.plan.levels[1];
        // Writes a level-1 slice and hands its buffer back for reuse.
        let write_level1 = |(j, pixels): (usize, Arc<Vec<T>>)| {
            write_slice(
                &self.plan.output_path(1, j),
                shape.width,
                shape.height,
                &pixels,
            )
            .map(|()| pixels)
        };
        let mut ahead: Option<Result<InputPair, Error>> = None;
        // A computed level-1 slice not yet on disk: written while the next pair is averaged.
        let mut unwritten: Option<(usize, Arc<Vec<T>>)> = None;
        for j in 0..pairs {
            self.check_cancel()?;
            let made = match kept[j].then(|| self.existing(1, j)).flatten() {
                Some(slice) => {
                    self.summary.kept += 1;
                    Made::Kept(slice)
                }
                None => {
                    let current = match ahead.take() {
                        Some(opened) if opened.as_ref().map_or(true, |p| p.index == j) => opened?,
                        _ => open_pair(j)?,
                    };
                    // While this pair is averaged, the next pair to compute opens (and
                    // is prefetched or decoded) and the previous result is written.
                    let upcoming = (j + 1..pairs).find(|&i| !kept[i]);
                    let previous = unwritten.take();
                    let buffer = self.buffer(shape);
                    let (pixels, (opened, wrote)) = self.parallel(|| {
                        rayon::join(
                            || current.average::<T>(buffer),
                            || (upcoming.map(open_pair), previous.map(write_level1)),
                        )
                    });
                    ahead = opened;
                    if let Some(wrote) = wrote {
                        self.reuse(wrote?);
                        self.summary.written += 1;
                    }
                    let pixels = Arc::new(pixels?);
                    self.summary.input_bytes += current.image_bytes();
                    drop(current);
                    unwritten = Some((j, Arc::clone(&pixels)));
                    Made::Computed(pixels)
                }
            };
            self.next[1] = j + 1;
            self.advance();
            self.push(1, made)?;
        }
        if let Some(last) = unwritten.take() {
            let buffer = write_level1(last)?;
            self.reuse(buffer);
            self.summary.written += 1;
        }
        // Odd counts: a level's last slice is paired with itself, lowest level first.
        for k in 1..self.plan.levels.len() {
            if let Some(last) = self.pending[k].take() {
                self.combine(k, &last, None)?;
                self.recycle(last);
            }
        }
        Ok(self.summary)
    }

    /// Runs `f` on the cascade's pool.
    fn parallel<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match self.pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }

    /// An existing, valid output of level `k`, index `j`, if there is one.
    fn existing(&self, k: usize, j: usize) -> Option<Slice> {
        let shape = self.plan.levels[k];
        let slice = Slice::open_with(self.plan.output_path(k, j), &self.plan.builder.open).ok()?;
        (slice.width() == shape.width
            && slice.height() == shape.height
            && slice.sample_type() == T::TYPE)
            .then_some(slice)
    }

    fn check_cancel(&self) -> Result<(), Error> {
        if self.cancel.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }

    fn advance(&mut self) {
        self.done += 1;
        (self.progress)(self.done, self.total);
    }

    /// A level-`k` slice is made: pair it with the pending one, or make it pending.
    fn push(&mut self, k: usize, made: Made<T>) -> Result<(), Error> {
        if k + 1 >= self.plan.levels.len() {
            self.recycle(made);
            return Ok(());
        }
        match self.pending[k].take() {
            None => {
                self.pending[k] = Some(made);
                Ok(())
            }
            Some(first) => {
                let result = self.combine(k, &first, Some(&made));
                self.recycle(first);
                self.recycle(made);
                result
            }
        }
    }

    /// A buffer for one slice of `shape`: a spare one, or a new one.
    fn buffer(&mut self, shape: LevelShape) -> Vec<T> {
        let len = shape.width as usize * shape.height as usize;
        match self.spare.iter().position(|v| v.len() == len) {
            Some(i) => self.spare.swap_remove(i),
            None => vec![T::default(); len],
        }
    }

    /// Keeps a computed slice's buffer for reuse once nobody else holds it (the
    /// writer and the cascade each hold one, and either may be last).
    fn reuse(&mut self, pixels: Arc<Vec<T>>) {
        if let Ok(v) = Arc::try_unwrap(pixels)
            && self.spare.len() < SPARE_BUFFERS
        {
            self.spare.push(v);
        }
    }

    fn recycle(&mut self, made: Made<T>) {
        if let Made::Computed(pixels) = made {
            self.reuse(pixels);
        }
    }

    /// Makes the next level-`k+1` slice from `a` and `b` (`None`: `a` with itself).
    fn combine(&mut self, k: usize, a: &Made<T>, b: Option<&Made<T>>) -> Result<(), Error> {
        self.check_cancel()?;
        let j = self.next[k + 1];
        self.next[k + 1] = j + 1;
        let made = match self.existing(k + 1, j) {
            Some(slice) => {
                self.summary.kept += 1;
                Made::Kept(slice)
            }
            None => {
                let (src, dst) = (self.plan.levels[k], self.plan.levels[k + 1]);
                let ra = a.rows(src)?;
                let rb = match b {
                    Some(b) => b.rows(src)?,
                    None => ra,
                };
                let mut out = self.buffer(dst);
                self.parallel(|| average_pair(&ra, &rb, &mut out))?;
                write_slice(
                    &self.plan.output_path(k + 1, j),
                    dst.width,
                    dst.height,
                    &out,
                )?;
                self.summary.written += 1;
                Made::Computed(Arc::new(out))
            }
        };
        self.advance();
        self.push(k + 1, made)
    }
}

/// Two opened level-0 slices (one, for an odd count's last pair) and the index
/// of the level-1 slice they make.
struct InputPair {
    index: usize,
    first: Slice,
    second: Option<Slice>,
}

impl InputPair {
    /// Averages the pair into `out`, a level-1 buffer, and returns it.
    fn average<T: Sample>(&self, mut out: Vec<T>) -> Result<Vec<T>, Error> {
        let ra = self.first.rows::<T>()?;
        let rb = match &self.second {
            Some(b) => b.rows::<T>()?,
            None => ra,
        };
        average_pair(&ra, &rb, &mut out)?;
        Ok(out)
    }

    /// Input pixel bytes this pair brought in.
    fn image_bytes(&self) -> u64 {
        let n = if self.second.is_some() { 2 } else { 1 };
        n * self.first.image_bytes() as u64
    }
}
