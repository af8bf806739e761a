//! The stream of level-1 slices, in order: the one place where input slices are
//! read.
//!
//! A level-1 slice to rebuild is the average of an input pair. While one pair is
//! averaged (on the pool), the next pair to rebuild is opened (mapped, or read,
//! or decoded when compressed) and the previous result is written: look-ahead
//! and write-behind overlap the compute. A slice is handed to the cascade once it
//! is on disk, so every buffer has one owner at a time: this stream until it is
//! written, then the cascade. Kept slices are read back only if a rebuilt slice
//! above needs them.
//!
//! Inputs are opened as the reading layer decides (`crate::region::reach`):
//! raw inputs read by positional reads are not opened whole but read a band of
//! rows at a time as they are averaged (`input.rs`, `average.rs`); the shape
//! stays: open ahead, average, write behind.

use std::collections::VecDeque;
use std::ops::Range;

use super::average::{BandBuffers, average_inputs};
use super::input::{Input, hinted};
use super::slices::{Buffers, Context, Made};
use crate::source;
use crate::{Error, Kernel, Sample};

/// Level-1 slices of a span, in order, each as the cascade needs it.
pub(crate) struct Level1Stream<'c, T> {
    ctx: &'c Context<'c>,
    /// Indices still to make.
    indices: Range<usize>,
    /// The next pair to rebuild, opened while the previous one was averaged.
    ahead: Option<(usize, Result<InputPair, Error>)>,
    /// A computed slice not yet on disk: written while the next pair is averaged.
    unwritten: Option<Unwritten<T>>,
    /// Slices ready for the cascade, in index order.
    ready: VecDeque<(usize, Made<T>)>,
    input_bytes: u64,
    /// The workers' band buffers, reused from pair to pair.
    bands: BandBuffers<T>,
}

/// A computed level-1 slice not yet written.
struct Unwritten<T> {
    j: usize,
    pixels: Vec<T>,
}

impl<'c, T: Sample> Level1Stream<'c, T> {
    /// The stream of level-1 slices `indices`.
    pub fn new(ctx: &'c Context<'c>, indices: Range<usize>) -> Self {
        Level1Stream {
            ctx,
            indices,
            ahead: None,
            unwritten: None,
            ready: VecDeque::new(),
            input_bytes: 0,
            bands: BandBuffers::default(),
        }
    }

    /// Bytes of input pixels read so far.
    pub fn input_bytes(&self) -> u64 {
        self.input_bytes
    }

    /// The next level-1 slice and its index; `None` at the end of the span.
    /// Buffers for computed slices come from `buffers`.
    pub fn next(&mut self, buffers: &mut Buffers<T>) -> Result<Option<(usize, Made<T>)>, Error> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Ok(Some(item));
            }
            let Some(j) = self.indices.next() else {
                // The last slice computed has nothing left to overlap its write with.
                return match self.unwritten.take() {
                    Some(last) => Ok(Some(write(self.ctx, last)?)),
                    None => Ok(None),
                };
            };
            if self.ctx.keep.keep(1, j) {
                // Slices leave in order: an earlier one still unwritten goes first.
                if let Some(earlier) = self.unwritten.take() {
                    self.ready.push_back(write(self.ctx, earlier)?);
                }
                self.ready.push_back((j, self.ctx.kept(1, j)?));
            } else {
                self.rebuild(j, buffers)?;
            }
        }
    }

    /// Averages pair `j` while the next pair to rebuild opens and the previous
    /// result is written.
    fn rebuild(&mut self, j: usize, buffers: &mut Buffers<T>) -> Result<(), Error> {
        let ctx = *self.ctx;
        // `ahead` holds the next index to rebuild after the previous one, which is `j`.
        let current = match self.ahead.take() {
            Some((i, opened)) if i == j => opened?,
            _ => InputPair::open(ctx, j)?,
        };
        let mut to_rebuild = self.indices.clone().filter(|&i| !ctx.keep.keep(1, i));
        let upcoming = to_rebuild.next();
        // The pair after the look-ahead one is only asked for: its files are
        // read into the page cache while this pair is averaged.
        if PREFETCH_AHEAD && let Some(later) = to_rebuild.next() {
            for i in pair_slices(later, ctx.plan.inputs().len()) {
                prefetch_slice(ctx, i);
            }
        }
        let previous = self.unwritten.take();
        let buffer = buffers.take(ctx.plan.levels[1]);
        let bands = &self.bands;
        let (pixels, (opened, written)) = ctx.parallel(|| {
            rayon::join(
                || current.average(buffer, bands),
                || {
                    (
                        upcoming.map(|i| (i, InputPair::open(ctx, i))),
                        previous.map(|item| write(&ctx, item)),
                    )
                },
            )
        });
        self.ahead = opened;
        if let Some(written) = written {
            self.ready.push_back(written?);
        }
        self.input_bytes += current.image_bytes();
        self.unwritten = Some(Unwritten { j, pixels: pixels? });
        Ok(())
    }
}

/// Writes computed level-1 slice `j`, which then belongs to the cascade.
fn write<T: Sample>(
    ctx: &Context<'_>,
    Unwritten { j, pixels }: Unwritten<T>,
) -> Result<(usize, Made<T>), Error> {
    ctx.sink.put(1, j, &pixels)?;
    Ok((j, Made::Built { pixels }))
}

/// The input slices of one level-1 slice: two, or one for an odd count's last.
pub(crate) struct InputPair {
    first: Input,
    second: Option<Input>,
}

impl InputPair {
    /// Opens the inputs of level-1 slice `j`, side by side (for compressed
    /// stacks that is two decodes in parallel), each as the reading layer
    /// decides ([`Input::open`]), and asks the OS to read them ahead
    /// ([`PREFETCH_AHEAD`]). Streamed inputs use the header the plan parsed.
    fn open(ctx: Context<'_>, j: usize) -> Result<InputPair, Error> {
        let inputs = ctx.plan.inputs();
        let opts = ctx.open_options();
        let open = |i: usize| Input::open(&inputs[i], opts, ctx.plan.page_index().get(i));
        // An odd count: the last slice is paired with itself.
        let second = (2 * j + 1 < inputs.len()).then_some(2 * j + 1);
        let (first, second) = rayon::join(|| open(2 * j), || second.map(open).transpose());
        let pair = InputPair {
            first: first?,
            second: second?,
        };
        if PREFETCH_AHEAD {
            pair.first.prefetch();
            if let Some(second) = &pair.second {
                second.prefetch();
            }
        }
        Ok(pair)
    }

    /// Averages the pair into `out`, a level-1 buffer, and returns it.
    fn average<T: Sample>(&self, mut out: Vec<T>, bands: &BandBuffers<T>) -> Result<Vec<T>, Error> {
        average_inputs(
            Kernel::best(),
            &self.first,
            self.second.as_ref(),
            &mut out,
            bands,
        )?;
        Ok(out)
    }

    /// Input pixel bytes this pair brought in.
    fn image_bytes(&self) -> u64 {
        let n = if self.second.is_some() { 2 } else { 1 };
        n * self.first.image_bytes()
    }
}

/// Whether the OS is asked to read input ahead of use: the look-ahead pair's
/// pixels when it opens (`madvise` WILLNEED), and the files of the pair after
/// it, so two pairs' reads are in flight while one pair is averaged. A hint, in
/// order, at most two pairs (60 MB for 15 MB slices) ahead, for inputs that
/// are mapped or read whole: streamed inputs are read in order and left to the
/// kernel's read-ahead ([`super::input::hinted`] says why).
///
/// Measured on the 64 x 2752x2752 stack, input evicted before each run, `--mmap
/// never`, 2 cores shared with other jobs: 2.05-2.26 s with the look-ahead
/// pair advised, 2.55-3.22 s without (bands then read in halves, not in order).
const PREFETCH_AHEAD: bool = true;

/// The input slices of level-1 slice `j`, of a stack of `count`.
fn pair_slices(j: usize, count: usize) -> Range<usize> {
    (2 * j).min(count)..(2 * j + 2).min(count)
}

/// Asks the OS to read input slice `i` into the page cache: the bytes its
/// pixels span if the plan indexed its page, else its whole file (only for the
/// first page: the whole of a multi-page file is far more than one slice).
fn prefetch_slice(ctx: Context<'_>, i: usize) {
    let slice = &ctx.plan.inputs()[i];
    match ctx.plan.page_index().get(i) {
        Some(indexed) if !hinted(ctx.open_options(), indexed) => {}
        Some(indexed) => {
            if let Ok(file) = std::fs::File::open(&slice.path) {
                let span = indexed.span();
                source::advise_willneed(&file, span.start, span.end - span.start);
            }
        }
        None if slice.page == 0 => source::prefetch_file(&slice.path),
        None => {}
    }
}
