//! What the cascade (`cascade.rs`) and the stream of level-1 slices
//! (`level1.rs`) share: the run's context (plan, keep decisions, pool, the
//! [`TiffSink`] finished slices go to), a slice of level >= 1 as they hold it,
//! and the spare buffers they pass between them. Neither imports the other's
//! internals: the stream hands slices over as [`Made`].

use std::sync::Mutex;

use super::manifest::{FileRecord, Recorder};
use super::plan::{LevelShape, Plan};
use super::resume::KeepTable;
use crate::writer::write_slice_file;
use crate::{Error, OpenOptions, Rows, Sample, Slice};

/// Spare slice buffers kept for reuse: a level-1 slice waiting for its partner,
/// one being written, one being computed, and one for the levels above. More
/// would only hold memory.
const SPARE_BUFFERS: usize = 4;

/// What every part of a run reads: the plan, the keep decisions, the thread
/// pool, and where finished slices go.
#[derive(Clone, Copy)]
pub(crate) struct Context<'p> {
    pub plan: &'p Plan,
    pub keep: &'p KeepTable,
    /// The pool to average on (`None`: rayon's global pool). The cascade itself,
    /// and so the progress callback, stays on the caller's thread.
    pub pool: Option<&'p rayon::ThreadPool>,
    pub sink: &'p TiffSink<'p>,
}

/// Where the cascade's finished slices go: the pyramid's TIFF level folders,
/// each file listed in the run's journal (the manifest, or a slab's record)
/// once it is written. The cascade's math hands it typed slices and knows
/// nothing of files or records.
///
/// One type, not a trait: the OME-Zarr writer, the only other output, walks the
/// levels by bands of rows (`crate::zarr`) and never takes whole slices from
/// the cascade, so a trait would have this one implementation.
pub(crate) struct TiffSink<'p> {
    plan: &'p Plan,
    /// Locked only to list a file: level-1 slices are written behind the
    /// averaging, on a worker, the levels above on the cascade's thread, never
    /// both at once.
    journal: Mutex<&'p mut (dyn Recorder + Send)>,
}

impl<'p> TiffSink<'p> {
    pub fn new(plan: &'p Plan, journal: &'p mut (dyn Recorder + Send)) -> TiffSink<'p> {
        TiffSink {
            plan,
            journal: Mutex::new(journal),
        }
    }

    /// Writes level-`k` slice `j` (`pixels`, of the level's shape) to its file
    /// (atomically: `write_slice_file`), then lists it in the journal, whose
    /// next save syncs it before the record names it.
    pub fn put<T: Sample>(&self, k: usize, j: usize, pixels: &[T]) -> Result<(), Error> {
        let shape = self.plan.levels[k];
        let path = self.plan.output_path(k, j);
        let metadata = write_slice_file(
            &path,
            shape.width,
            shape.height,
            pixels,
            self.plan.photometric,
        )?;
        let mut journal = self.journal.lock().unwrap_or_else(|e| e.into_inner());
        journal.record(k, j, &path, FileRecord::of(&metadata))
    }
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

    /// A kept level-`k` slice `j`: read back if a rebuilt slice needs it.
    pub fn kept<T: Sample>(&self, k: usize, j: usize) -> Result<Made<T>, Error> {
        if !self.keep.needed(k, j) {
            return Ok(Made::Skipped);
        }
        let slice = Slice::open_with(self.plan.output_path(k, j), &OpenOptions::default())?;
        Ok(Made::Loaded(slice))
    }
}

/// A slice of level >= 1 as the cascade holds it.
pub(crate) enum Made<T> {
    /// Computed by this run and handed to the [`TiffSink`].
    Built { pixels: Vec<T> },
    /// Kept from an earlier run and read back, because a rebuilt slice needs it.
    Loaded(Slice),
    /// Kept from an earlier run; nothing needs its pixels.
    Skipped,
}

impl<T: Sample> Made<T> {
    /// The pixels, as a level of `shape`.
    pub fn rows(&self, shape: LevelShape) -> Result<Rows<'_, T>, Error> {
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
#[derive(Default)]
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
    pub fn recycle(&mut self, made: Made<T>) {
        if let Made::Built { pixels, .. } = made
            && self.0.len() < SPARE_BUFFERS
        {
            self.0.push(pixels);
        }
    }
}
