//! The banded average of a level-0 pair: the 2x2x2 mean of two inputs written
//! a band of output rows per rayon task, each task reading its inputs' rows
//! into buffers lent from a pool ([`BandBuffers`]) that stay in L2 cache.

use std::sync::Mutex;

use rayon::prelude::*;

use super::input::{Band, Input};
use crate::kernels::average_rows;
use crate::sample::Sample;
use crate::{Error, Kernel};

/// Input bytes one band of a pair may occupy: two rows of output need four
/// input rows (two of each slice). 256 KiB is half the L2 cache of the EPYC
/// this was tuned on (512 KiB per core) and a quarter of most desktop parts',
/// leaving room for the output rows and the kernels' own traffic.
const BAND_BYTES: usize = 256 << 10;

/// Band buffers lent to the workers of one run and returned after each
/// pair, so that a band costs no allocation: a fresh buffer per rayon task
/// cost an allocation and a page fault per 4 KiB each time (8 % of an 8-bit
/// run's profile). Dropped with the run: nothing outlives it.
pub(crate) struct BandBuffers<T>(Mutex<Vec<(Scratch<T>, Scratch<T>)>>);

impl<T> Default for BandBuffers<T> {
    fn default() -> Self {
        BandBuffers(Mutex::new(Vec::new()))
    }
}

impl<T: Sample> BandBuffers<T> {
    /// A pair of buffers of `samples` each: a returned one, or a new one.
    fn lend(&self, samples: usize) -> Lent<'_, T> {
        let mut spare = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let pair = match spare.iter().position(|(a, _)| a.samples.len() == samples) {
            Some(i) => spare.swap_remove(i),
            None => (Scratch::new(samples), Scratch::new(samples)),
        };
        Lent {
            pool: self,
            pair: Some(pair),
        }
    }
}

/// Buffers on loan from [`BandBuffers`], given back when dropped.
struct Lent<'p, T> {
    pool: &'p BandBuffers<T>,
    pair: Option<(Scratch<T>, Scratch<T>)>,
}

impl<T> Drop for Lent<'_, T> {
    fn drop(&mut self) {
        if let Some(pair) = self.pair.take() {
            let mut spare = self.pool.0.lock().unwrap_or_else(|p| p.into_inner());
            // At most one pair per worker is ever out at once.
            if spare.len() < rayon::current_num_threads().max(1) * 2 {
                spare.push(pair);
            }
        }
    }
}

/// One worker's band buffers for one slice.
struct Scratch<T> {
    samples: Vec<T>,
    /// Stored bytes as read, for pages whose samples must be converted (the
    /// other byte order, packed depths, tiles).
    bytes: Vec<u8>,
}

impl<T: Sample> Scratch<T> {
    fn new(samples: usize) -> Scratch<T> {
        Scratch {
            samples: vec![T::default(); samples],
            bytes: Vec::new(),
        }
    }
}

/// Output rows per band for inputs `width` samples of `T` wide: as many as fit
/// [`BAND_BYTES`] of input (four input rows per output row), at least one.
fn band_rows<T: Sample>(width: usize) -> usize {
    let input_per_output_row = 4 * width * std::mem::size_of::<T>();
    (BAND_BYTES / input_per_output_row.max(1)).max(1)
}

/// Writes the 2x2x2 mean of `a` and `b` (`None`: `a` with itself) into `out`,
/// `(width / 2) * (height / 2)` samples row-major, a band of rows per rayon
/// task, with `kernel`. `a` and `b` must have the same size and sample type `T`
/// ([`Error::Mismatch`] otherwise). A streamed input that turns out shorter than
/// its header said, or that changed while it was read, is an [`Error::Io`]
/// naming it; `out` is then partly written.
pub(crate) fn average_inputs<T: Sample>(
    kernel: Kernel,
    a: &Input,
    b: Option<&Input>,
    out: &mut [T],
    buffers: &BandBuffers<T>,
) -> Result<(), Error> {
    check_pair_of::<T>(a, b, out.len())?;
    let b_or_a = b.unwrap_or(a);
    let (width, height) = (a.size().0 as usize, a.size().1 as usize);
    if width / 2 == 0 || height / 2 == 0 {
        return Ok(());
    }
    average_in_bands(kernel, a, b, out, band_rows::<T>(width), buffers)?;
    a.check_unchanged()?;
    b_or_a.check_unchanged()
}

/// An error unless `a` and `b` (`None`: `a` with itself) hold samples of type
/// `T`, have the same size, and their mean has `out_len` samples.
pub(crate) fn check_pair_of<T: Sample>(
    a: &Input,
    b: Option<&Input>,
    out_len: usize,
) -> Result<(), Error> {
    let b_or_a = b.unwrap_or(a);
    for input in [a, b_or_a] {
        if input.sample_type() != T::TYPE {
            return Err(Error::mismatch_at(
                input.path(),
                format!("holds {} samples, not {}", input.sample_type(), T::TYPE),
            ));
        }
    }
    if a.size() != b_or_a.size() {
        let ((aw, ah), (bw, bh)) = (a.size(), b_or_a.size());
        return Err(Error::mismatch(format!(
            "{} is {aw}x{ah}, {} is {bw}x{bh}: a pair must match",
            a.path().display(),
            b_or_a.path().display()
        )));
    }
    let (width, height) = (a.size().0 as usize, a.size().1 as usize);
    let (ow, oh) = (width / 2, height / 2);
    if out_len != ow * oh {
        return Err(Error::mismatch(format!(
            "{}: output holds {out_len} samples, the pair makes {}",
            a.path().display(),
            ow * oh
        )));
    }
    Ok(())
}

/// The work of [`average_inputs`], on checked inputs, `band` output rows per task.
///
/// Bands are claimed in order from one cursor by whichever worker is free, so
/// that a streamed input is read front to back as one stream, as a program
/// reading the file with `read()` would: the kernel's sequential read-ahead then
/// keeps the disk busy with large requests. Split in halves (rayon's
/// `par_chunks`), each worker read from its own place in the same file, and the
/// file's read-ahead state, shared by both, saw no sequence: cold, 1.3-1.6x the
/// read floor on a virtio disk, against 1.0x in order ([`super::input`] has the
/// measurements).
fn average_in_bands<T: Sample>(
    kernel: Kernel,
    a: &Input,
    b: Option<&Input>,
    out: &mut [T],
    band: usize,
    buffers: &BandBuffers<T>,
) -> Result<(), Error> {
    let width = a.size().0 as usize;
    let ow = width / 2;
    let tasks = out.len().div_ceil(ow * band);
    let cursor = Mutex::new(Some(out.chunks_mut(ow * band).enumerate()));
    let workers = rayon::current_num_threads().clamp(1, tasks.max(1));
    (0..workers).into_par_iter().try_for_each_init(
        || buffers.lend(2 * band * width),
        |lent, _| loop {
            let claimed = {
                let mut cursor = cursor.lock().unwrap_or_else(|p| p.into_inner());
                cursor.as_mut().and_then(Iterator::next)
            };
            let Some((task, chunk)) = claimed else {
                return Ok(());
            };
            let (sa, sb) = lent.pair.as_mut().expect("lent until dropped");
            let done = average_band(kernel, (a, b), (sa, sb), 2 * task * band, chunk, ow);
            if done.is_err() {
                // The other workers stop at their next claim.
                *cursor.lock().unwrap_or_else(|p| p.into_inner()) = None;
                return done;
            }
        },
    )
}

/// Output rows `chunk` (`ow` samples each) of the mean of `a` and `b` (`None`:
/// `a` with itself), from input rows `y0 ..`, read into `sa` and `sb`.
fn average_band<T: Sample>(
    kernel: Kernel,
    (a, b): (&Input, Option<&Input>),
    (sa, sb): (&mut Scratch<T>, &mut Scratch<T>),
    y0: usize,
    chunk: &mut [T],
    ow: usize,
) -> Result<(), Error> {
    let rows = chunk.len() / ow;
    let ra = a.band::<T>(y0, 2 * rows, &mut sa.samples, &mut sa.bytes)?;
    let rb = match b {
        Some(b) => b.band::<T>(y0, 2 * rows, &mut sb.samples, &mut sb.bytes)?,
        None => Band {
            rows: ra.rows,
            first: ra.first,
        },
    };
    for (r, orow) in chunk.chunks_exact_mut(ow).enumerate() {
        let (a0, a1) = (ra.row(2 * r), ra.row(2 * r + 1));
        average_rows(kernel, a0, a1, rb.row(2 * r), rb.row(2 * r + 1), orow);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
