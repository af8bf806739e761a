//! The cascade: one loop over a stream of level-1 slices, each pushed up the
//! levels as soon as its partner exists.
//!
//! Level-1 slices come from a [`Level1Stream`] (which owns the look-ahead open and
//! the write-behind); every level above is made here, from two slices of the level
//! below, and written right away (they are 4x, 16x, ... smaller). A slice waits in
//! `pending[k]` for its partner and is dropped, its buffer recycled, once used, so
//! memory holds about one slice per level.
//!
//! The cascade runs over any span of inputs aligned to 2^L (a slab; the whole
//! stack is one): slices are named by their index in the whole pyramid, and a
//! level's last slice is paired with itself only at the end of the whole stack.
//!
//! Where a finished slice goes is the run's [`Output`]: the TIFF level folders
//! (with the manifest's journal), or a [`SliceSink`] (the OME-Zarr writer).

use std::ops::Range;
use std::path::Path;

use super::CancelFlag;
use super::level1::Level1Stream;
use super::manifest::{FileRecord, Recorder};
use super::plan::{LevelShape, Plan};
use super::resume::KeepTable;
use crate::sample::with_sample_type;
use crate::writer::write_slice_file;
use crate::{Error, OpenOptions, Rows, Sample, Slice, average_pair};

/// Spare slice buffers kept for reuse: a level-1 slice waiting for its partner,
/// one being written, one being computed, and one for the levels above. More
/// would only hold memory.
const SPARE_BUFFERS: usize = 4;

/// What a run did, in numbers.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counts {
    pub kept: usize,
    pub rebuilt: usize,
    pub input_bytes: u64,
}

/// Builds the outputs of `plan` that depend on inputs `span` (aligned: see
/// [`Plan::run_slab`]), keeping what `keep` says, listing what it writes in
/// `journal`.
pub(crate) fn run(
    plan: &Plan,
    keep: &KeepTable,
    span: Range<usize>,
    pool: Option<&rayon::ThreadPool>,
    journal: &mut dyn Recorder,
    progress: &mut dyn FnMut(u64, u64),
    cancel: &CancelFlag,
) -> Result<Counts, Error> {
    let ctx = Context {
        plan,
        keep,
        pool,
        output: Output::Tiff,
    };
    with_sample_type!(plan.sample_type, T => {
        Cascade::<T>::new(&ctx, span, journal, progress, cancel).run()
    })
}

/// Receives every level-k slice (k >= 1) of a run as soon as it is computed,
/// and every input slice (level 0) as soon as it is averaged, in index order
/// within each level, one call at a time (never concurrently, though not
/// always from the same thread). Inputs are handed over from what the run
/// read to average them: the sink reads no input again.
pub(crate) trait SliceSink: Sync {
    /// Level-`k` slice `j`, `pixels` the samples of the plan's sample type, row
    /// after row, as bytes in the host's order.
    fn put(&self, k: usize, j: usize, pixels: &[u8]) -> Result<(), Error>;

    /// Input slice `i`: `fill` writes its samples (as [`SliceSink::put`]'s
    /// `pixels`) into the buffer it is given, of the slice's size.
    fn put_input(
        &self,
        i: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> Result<(), Error>,
    ) -> Result<(), Error>;
}

/// Where finished slices go.
#[derive(Clone, Copy)]
pub(crate) enum Output<'p> {
    /// `<out>/<k>/<j:06>.tif`, listed in the manifest's journal.
    Tiff,
    /// Handed to a sink; nothing is kept from an earlier run, nothing journaled.
    #[cfg_attr(not(feature = "ome-zarr"), allow(dead_code))]
    Sink(&'p dyn SliceSink),
}

/// Computes every slice of levels 1 ..= L that depends on inputs `span` (aligned
/// as for [`run`]) and hands each to `sink`, writing no TIFF file.
#[cfg_attr(not(feature = "ome-zarr"), allow(dead_code))]
pub(crate) fn run_into(
    plan: &Plan,
    span: Range<usize>,
    sink: &dyn SliceSink,
    progress: &mut dyn FnMut(u64, u64),
    cancel: &CancelFlag,
) -> Result<Counts, Error> {
    let keep = KeepTable::from_fn(plan, |_, _| false);
    let pool = plan.thread_pool()?;
    let ctx = Context {
        plan,
        keep: &keep,
        pool: pool.as_ref(),
        output: Output::Sink(sink),
    };
    struct Unrecorded;
    impl Recorder for Unrecorded {
        fn record(&mut self, _: usize, _: usize, _: &Path, _: FileRecord) -> Result<(), Error> {
            Ok(())
        }
    }
    with_sample_type!(plan.sample_type, T => {
        Cascade::<T>::new(&ctx, span, &mut Unrecorded, progress, cancel).run()
    })
}

/// What every part of a run reads: the plan, the keep decisions, the thread pool.
#[derive(Clone, Copy)]
pub(crate) struct Context<'p> {
    pub plan: &'p Plan,
    pub keep: &'p KeepTable,
    /// The pool to average on (`None`: rayon's global pool). The cascade itself,
    /// and so the progress callback, stays on the caller's thread.
    pool: Option<&'p rayon::ThreadPool>,
    output: Output<'p>,
}

impl Context<'_> {
    /// Runs `f` on the run's pool.
    pub fn parallel<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match self.pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }

    /// How input slices are opened.
    pub fn open_options(&self) -> &OpenOptions {
        &self.plan.builder.open
    }

    /// The sink that takes the input slices, if the run has one.
    pub fn input_sink(&self) -> Option<&dyn SliceSink> {
        match self.output {
            Output::Sink(sink) => Some(sink),
            Output::Tiff => None,
        }
    }

    /// A kept level-`k` slice `j`: read back if a rebuilt slice needs it.
    pub fn kept<T: Sample>(&self, k: usize, j: usize) -> Result<Made<T>, Error> {
        if !self.keep.needed(k, j) {
            return Ok(Made::Skipped);
        }
        let slice = Slice::open_with(self.plan.output_path(k, j), &OpenOptions::default())?;
        Ok(Made::Loaded(slice))
    }

    /// Writes level-`k` slice `j` and says what was written (`None`: handed to a sink).
    pub fn write<T: Sample>(
        &self,
        k: usize,
        j: usize,
        pixels: &[T],
    ) -> Result<Option<FileRecord>, Error> {
        if let Output::Sink(sink) = self.output {
            sink.put(k, j, bytemuck::cast_slice(pixels))?;
            return Ok(None);
        }
        let shape = self.plan.levels[k];
        let path = self.plan.output_path(k, j);
        let metadata = write_slice_file(
            &path,
            shape.width,
            shape.height,
            pixels,
            self.plan.photometric,
        )?;
        Ok(Some(FileRecord::of(&metadata)))
    }
}

/// A slice of level >= 1 as the cascade holds it.
pub(crate) enum Made<T> {
    /// Computed by this run and written (as `file`; `None`: handed to a sink).
    Built {
        pixels: Vec<T>,
        file: Option<FileRecord>,
    },
    /// Kept from an earlier run and read back, because a rebuilt slice needs it.
    Loaded(Slice),
    /// Kept from an earlier run; nothing needs its pixels.
    Skipped,
}

impl<T: Sample> Made<T> {
    /// The pixels, as a level of `shape`.
    fn rows(&self, shape: LevelShape) -> Result<Rows<'_, T>, Error> {
        let (width, height) = (shape.width as usize, shape.height as usize);
        match self {
            Made::Built { pixels, .. } => Rows::from_contiguous(pixels, width, height)
                .ok_or_else(|| Error::internal("a computed slice does not have its level's size")),
            Made::Loaded(slice) => {
                let rows = slice.rows::<T>()?;
                if (rows.width(), rows.height()) != (width, height) {
                    return Err(Error::state(
                        slice.path(),
                        "changed during the run: no longer the level's size",
                    ));
                }
                Ok(rows)
            }
            Made::Skipped => Err(Error::internal(
                "a kept slice that a rebuilt one needs was not read back",
            )),
        }
    }
}

/// Spare slice buffers: saves zeroing and faulting in fresh pages for every slice.
pub(crate) struct Buffers<T>(Vec<Vec<T>>);

impl<T: Sample> Buffers<T> {
    /// A buffer for one slice of `shape`: a spare one, or a new one.
    pub fn take(&mut self, shape: LevelShape) -> Vec<T> {
        let len = shape.width as usize * shape.height as usize;
        match self.0.iter().position(|v| v.len() == len) {
            Some(i) => self.0.swap_remove(i),
            None => vec![T::default(); len],
        }
    }

    /// Takes back a used slice's buffer, if it had one.
    fn recycle(&mut self, made: Made<T>) {
        if let Made::Built { pixels, .. } = made
            && self.0.len() < SPARE_BUFFERS
        {
            self.0.push(pixels);
        }
    }
}

/// The state of one run.
struct Cascade<'c, T> {
    ctx: &'c Context<'c>,
    /// Level-1 slice indices to make.
    level1: Range<usize>,
    journal: &'c mut dyn Recorder,
    progress: &'c mut dyn FnMut(u64, u64),
    cancel: &'c CancelFlag,
    /// `pending[k]`: a level-k slice whose partner is not made yet.
    pending: Vec<Option<Made<T>>>,
    buffers: Buffers<T>,
    counts: Counts,
    done: u64,
    total: u64,
}

impl<'c, T: Sample> Cascade<'c, T> {
    fn new(
        ctx: &'c Context<'c>,
        span: Range<usize>,
        journal: &'c mut dyn Recorder,
        progress: &'c mut dyn FnMut(u64, u64),
        cancel: &'c CancelFlag,
    ) -> Self {
        let levels = &ctx.plan.levels;
        // Level-k slices of the span: start / 2^k .. ceil(end / 2^k).
        let range = |k: usize| span.start >> k..span.end.div_ceil(1 << k);
        let total = (1..levels.len()).map(|k| range(k).len() as u64).sum();
        Cascade {
            ctx,
            level1: if levels.len() > 1 { range(1) } else { 0..0 },
            journal,
            progress,
            cancel,
            pending: (0..levels.len()).map(|_| None).collect(),
            buffers: Buffers(Vec::new()),
            counts: Counts::default(),
            done: 0,
            total,
        }
    }

    fn run(mut self) -> Result<Counts, Error> {
        (self.progress)(self.done, self.total);
        let mut stream = Level1Stream::new(self.ctx, self.level1.clone());
        loop {
            self.check_cancel()?;
            let Some((j, made)) = stream.next(&mut self.buffers)? else {
                break;
            };
            self.push(1, j, made)?;
        }
        self.counts.input_bytes = stream.input_bytes();
        Ok(self.counts)
    }

    fn check_cancel(&self) -> Result<(), Error> {
        if self.cancel.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Level-`k` slice `j` is made: count it, then pair it with the pending one,
    /// or with itself if it is its level's odd last slice, or make it pending.
    fn push(&mut self, k: usize, j: usize, made: Made<T>) -> Result<(), Error> {
        match &made {
            Made::Built { file, .. } => {
                self.counts.rebuilt += 1;
                if let Some(file) = file {
                    let path = self.ctx.plan.output_path(k, j);
                    self.journal.record(k, j, &path, file.clone())?;
                }
            }
            Made::Loaded(_) | Made::Skipped => self.counts.kept += 1,
        }
        self.done += 1;
        (self.progress)(self.done, self.total);
        let levels = &self.ctx.plan.levels;
        if k + 1 == levels.len() {
            self.buffers.recycle(made);
            return Ok(());
        }
        let last = j + 1 == levels[k].count;
        match self.pending[k].take() {
            Some(first) => self.combine(k, j / 2, first, Some(made)),
            None if last => self.combine(k, j / 2, made, None),
            None => {
                self.pending[k] = Some(made);
                Ok(())
            }
        }
    }

    /// Makes level-`k + 1` slice `j` from `a` and `b` (`None`: `a` with itself).
    fn combine(&mut self, k: usize, j: usize, a: Made<T>, b: Option<Made<T>>) -> Result<(), Error> {
        self.check_cancel()?;
        let ctx = self.ctx;
        let made = if ctx.keep.keep(k + 1, j) {
            ctx.kept(k + 1, j)?
        } else {
            let (src, dst) = (ctx.plan.levels[k], ctx.plan.levels[k + 1]);
            let ra = a.rows(src)?;
            let rb = match &b {
                Some(b) => b.rows(src)?,
                None => ra,
            };
            let mut pixels = self.buffers.take(dst);
            ctx.parallel(|| average_pair(&ra, &rb, &mut pixels))?;
            let file = ctx.write(k + 1, j, &pixels)?;
            Made::Built { pixels, file }
        };
        self.buffers.recycle(a);
        if let Some(b) = b {
            self.buffers.recycle(b);
        }
        self.push(k + 1, j, made)
    }
}
