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
//! Finished slices go to a [`TiffSink`]: the TIFF level folders, each file
//! listed in the run's journal. (The OME-Zarr writer walks the levels by bands
//! of rows instead: `zarr/sink.rs`.)

use std::ops::Range;

use super::CancelFlag;
use super::level1::Level1Stream;
use super::manifest::Recorder;
use super::plan::Plan;
use super::resume::KeepTable;
use super::slices::{Buffers, Context, Made, TiffSink};
use crate::sample::with_sample_type;
use crate::{Error, Sample, average_pair};

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
    journal: &mut (dyn Recorder + Send),
    progress: &mut dyn FnMut(u64, u64),
    cancel: &CancelFlag,
) -> Result<Counts, Error> {
    let sink = TiffSink::new(plan, journal);
    let ctx = Context {
        plan,
        keep,
        pool,
        sink: &sink,
    };
    with_sample_type!(plan.sample_type, T => {
        Cascade::<T>::new(&ctx, span, progress, cancel).run()
    })
}

/// The state of one run.
struct Cascade<'c, T> {
    ctx: &'c Context<'c>,
    /// Level-1 slice indices to make.
    level1: Range<usize>,
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
            progress,
            cancel,
            pending: (0..levels.len()).map(|_| None).collect(),
            buffers: Buffers::default(),
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
            Made::Built { .. } => self.counts.rebuilt += 1,
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
            ctx.sink.put(k + 1, j, &pixels)?;
            Made::Built { pixels }
        };
        self.buffers.recycle(a);
        if let Some(b) = b {
            self.buffers.recycle(b);
        }
        self.push(k + 1, j, made)
    }
}
