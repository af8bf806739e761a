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
//! Under [`ReadMode::Buffered`] raw inputs are not opened whole: they are read a
//! band of rows at a time as they are averaged (`input.rs`, `average.rs`); the shape stays:
//! open ahead, average, write behind.
//!
//! A run whose sink takes the inputs too (the OME-Zarr writer's level 0) reads
//! each streamed input whole instead, averages the pair from memory, and hands
//! both inputs to the sink with the level-1 slice they made, in the write
//! behind: every input byte is read once, by this stream.

use std::collections::VecDeque;
use std::ops::Range;

use super::average::{BandBuffers, average_inputs, check_pair_of};
use super::cascade::{Buffers, Context, Made, SliceSink};
use super::input::Input;
use super::plan::LevelShape;
use crate::source;
use crate::{Error, Kernel, ReadMode, Rows, Sample, Slice, average_pair_with};

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
    /// Buffers for input pairs read whole for a sink that takes the inputs:
    /// one pair is averaged while the one before is handed over.
    spare_whole: Vec<Whole<T>>,
}

/// The buffers of an input pair read whole ([`InputPair::average_whole`]).
type Whole<T> = [Vec<T>; 2];

/// A written level-1 slice for the cascade, and its pair's buffers for reuse.
type Written<T> = ((usize, Made<T>), Option<Whole<T>>);

/// A computed level-1 slice not yet written, and the pair it was made from
/// when a sink takes the inputs.
struct Unwritten<T> {
    j: usize,
    pixels: Vec<T>,
    held: Option<(InputPair, Whole<T>)>,
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
            spare_whole: Vec::new(),
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
                    Some(last) => Ok(Some(write(self.ctx, last)?.0)),
                    None => Ok(None),
                };
            };
            if self.ctx.keep.keep(1, j) {
                // Slices leave in order: an earlier one still unwritten goes first.
                if let Some(earlier) = self.unwritten.take() {
                    let (item, _) = write(self.ctx, earlier)?;
                    self.ready.push_back(item);
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
        // A sink that takes the inputs: the pair is read whole into buffers
        // kept until it is handed over.
        let mut whole = ctx
            .input_sink()
            .map(|_| self.spare_whole.pop().unwrap_or_default());
        let bands = &self.bands;
        let (pixels, (opened, written)) = ctx.parallel(|| {
            rayon::join(
                || match whole.as_mut() {
                    Some(whole) => current.average_whole(buffer, whole),
                    None => current.average(buffer, bands),
                },
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
            let (item, spare) = written?;
            self.ready.push_back(item);
            self.spare_whole.extend(spare);
        }
        self.input_bytes += current.image_bytes();
        self.unwritten = Some(Unwritten {
            j,
            pixels: pixels?,
            held: whole.map(|whole| (current, whole)),
        });
        Ok(())
    }
}

/// Writes computed level-1 slice `j`, which then belongs to the cascade; a
/// sink that takes the inputs gets the pair it was made from first. Returns
/// the slice and the pair's buffers, for reuse.
fn write<T: Sample>(
    ctx: &Context<'_>,
    Unwritten { j, pixels, held }: Unwritten<T>,
) -> Result<Written<T>, Error> {
    let spare = match (held, ctx.input_sink()) {
        (Some((pair, whole)), Some(sink)) => {
            pair.hand_over(sink, (2 * j, ctx.plan.levels[0]), &whole)?;
            Some(whole)
        }
        _ => None,
    };
    let file = ctx.write(1, j, &pixels)?;
    Ok(((j, Made::Built { pixels, file }), spare))
}

/// The input slices of one level-1 slice: two, or one for an odd count's last.
pub(crate) struct InputPair {
    first: Input,
    second: Option<Input>,
}

impl InputPair {
    /// Opens the inputs of level-1 slice `j`, side by side (for compressed
    /// stacks that is two decodes in parallel), and asks the OS to read them
    /// ahead ([`PREFETCH_AHEAD`]). Under [`ReadMode::Buffered`] raw inputs are
    /// streamed by positional reads, with the header the plan parsed.
    fn open(ctx: Context<'_>, j: usize) -> Result<InputPair, Error> {
        let inputs = ctx.plan.inputs();
        let opts = ctx.open_options();
        let streamed = match opts.read_mode {
            ReadMode::Buffered => true,
            ReadMode::Auto => AUTO_STREAMS,
            ReadMode::Mmap => false,
        };
        let open = |i: usize| {
            if streamed {
                Input::open(&inputs[i], opts, ctx.plan.page_index().get(i))
            } else {
                Slice::open_indexed(&inputs[i], ctx.plan.page_index().get(i), opts)
                    .map(Input::Opened)
            }
        };
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

    /// Averages the pair into `out`, a level-1 buffer, from the inputs read
    /// whole (a streamed input into `whole[0]` or `whole[1]`), and returns it.
    fn average_whole<T: Sample>(
        &self,
        mut out: Vec<T>,
        whole: &mut [Vec<T>; 2],
    ) -> Result<Vec<T>, Error> {
        check_pair_of::<T>(&self.first, self.second.as_ref(), out.len())?;
        let [wa, wb] = whole;
        let (a, b) = rayon::join(
            || self.first.read_whole(wa, &mut Vec::new()),
            || {
                let b = self.second.as_ref()?;
                Some(b.read_whole(wb, &mut Vec::new()))
            },
        );
        let a = a?;
        let b = b.transpose()?.unwrap_or(a);
        average_pair_with(Kernel::best(), &a, &b, &mut out)?;
        Ok(out)
    }

    /// Hands the pair, averaged by [`InputPair::average_whole`] (`whole`: its
    /// buffers), to `sink` as input slices `first` and `first + 1` of a stack
    /// whose slices are `level0`'s size (an input of another size, changed
    /// since the plan, is an [`Error::Mismatch`] naming it).
    fn hand_over<T: Sample>(
        &self,
        sink: &dyn SliceSink,
        (first, level0): (usize, LevelShape),
        whole: &[Vec<T>; 2],
    ) -> Result<(), Error> {
        let inputs = std::iter::once(&self.first).chain(&self.second);
        for ((i, input), held) in (first..).zip(inputs).zip(whole) {
            let rows = match input {
                Input::Streamed(_) => {
                    let (w, h) = input.size();
                    Rows::from_contiguous(held, w as usize, h as usize)
                        .ok_or_else(|| Error::internal("an input read whole has another size"))?
                }
                Input::Opened(slice) => slice.rows::<T>()?,
            };
            if (rows.width(), rows.height()) != (level0.width as usize, level0.height as usize) {
                return Err(Error::mismatch_at(
                    input.path(),
                    format!(
                        "changed since the plan: now {}x{}, the stack is {}x{}",
                        rows.width(),
                        rows.height(),
                        level0.width,
                        level0.height
                    ),
                ));
            }
            sink.put_input(i, &mut |dst| {
                let row_bytes = rows.width() * size_of::<T>();
                for (y, out) in dst.chunks_exact_mut(row_bytes.max(1)).enumerate() {
                    out.copy_from_slice(bytemuck::cast_slice(rows.row(y)));
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Input pixel bytes this pair brought in.
    fn image_bytes(&self) -> u64 {
        let n = if self.second.is_some() { 2 } else { 1 };
        n * self.first.image_bytes()
    }
}

/// Whether the OS is asked to read input ahead of use: the look-ahead pair's
/// pixels when it opens (`posix_fadvise` / `madvise` WILLNEED), and the files
/// of the pair after it, so two pairs' reads are in flight while one pair is
/// averaged. A hint, in order, at most two pairs (60 MB for 15 MB slices) ahead.
/// Measured on the 64 x 2752x2752 stack, input evicted before each run, `--mmap
/// never`, 2 cores shared with other jobs: 2.05-2.26 s with the look-ahead
/// pair advised, 2.55-3.22 s without. On the quiet machine (default policy, 11
/// runs each, alternating) the hint neither helps nor hurts beyond the noise:
/// medians 0.786 s with, 0.766 s without (cold floor 0.668). It is kept for the
/// loaded case, where reads go on while the process waits for a core: a
/// pyramid built while a viewer and other work share the machine.
const PREFETCH_AHEAD: bool = true;

/// Whether the default policy, [`ReadMode::Auto`], streams a pyramid's raw
/// level-0 inputs by positional reads (as `never` does) instead of mapping them
/// (as `always` does). Both paths give identical pyramids and are tested;
/// `--mmap always|never` picks one explicitly.
///
/// Measured with `python3 benches/compare.py --cold --runs 5` (benches/results.md)
/// (64 x 2752x2752 u16, whole processes, medians of 5, quiet machine, load
/// average 1.7), mapped (`always`) / streamed (`auto`, `never`): warm 0.143 /
/// 0.141, 0.146 s; cold 0.826 / 0.768, 0.833 s. An earlier quiet run (before
/// the header walk and band-buffer changes) gave warm 0.154 / 0.162 and cold
/// 0.960 / 0.808; runs on a loaded machine (load 5.7): warm 0.738 / 0.714,
/// cold 1.878 / 1.659, 8-bit cold 0.949 / 0.739. Maps never won by more than
/// the noise; streamed reads win most rows, are immune to truncation and keep
/// peak RSS at 19 MB against 49 (resident map pages count), so `auto` streams.
///
/// Other systems: on Windows and macOS a map also costs a fault per page (16 KiB
/// pages on Apple silicon make that cheaper) and positional reads (`ReadFile`
/// with an offset, `pread`) copy from the system cache as here; on Windows a map
/// also keeps other programs from truncating the file. Neither was measured.
const AUTO_STREAMS: bool = true;

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
