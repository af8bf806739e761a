//! What a pyramid is made of: the level shapes, which inputs each output slice
//! depends on, and the checked stack ready to run.

use super::{CancelFlag, PyramidBuilder, Summary};
use super::{run, slab};
use crate::stack::SliceRef;
use crate::tiff::PageIndex;
use crate::{Error, Photometric, SampleType};
use std::ops::Range;
use std::path::{Path, PathBuf};

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

/// The shapes of levels 0 ..= L for an input of `width` x `height` x `count`:
/// keep halving while width or height exceeds `min_size` (CTHarvester's rule),
/// stopping early only if a dimension would reach 0.
pub fn level_shapes(width: u32, height: u32, count: usize, min_size: u32) -> Vec<LevelShape> {
    level_shapes_with(width, height, count, min_size, 0)
}

/// [`level_shapes`], building at least `min_levels` levels beyond the input.
pub(super) fn level_shapes_with(
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

/// The inputs that level-`k` slice `j` is made from, of a stack of `count`:
/// `j * 2^k .. (j + 1) * 2^k`, cut at the end of the stack.
///
/// The cut range alone decides the pixels: at every level a slice is paired with
/// itself exactly when its partner would start at or beyond `count`, which is
/// when the range runs past the end. So two stacks whose inputs agree over this
/// range give the same slice, whatever their lengths (the resume rule and slabs
/// rely on this).
pub fn inputs_of(k: usize, j: usize, count: usize) -> Range<usize> {
    let start = j.saturating_mul(1 << k).min(count);
    let end = (j.saturating_add(1)).saturating_mul(1 << k).min(count);
    start..end
}

/// A checked stack, ready to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub(super) builder: PyramidBuilder,
    pub(super) sample_type: SampleType,
    /// The inputs' photometric, written into every level.
    pub(super) photometric: Photometric,
    pub(super) levels: Vec<LevelShape>,
    pub(super) warnings: Vec<String>,
    /// The stack's slices: the input files' pages, in order.
    pub(super) slices: std::sync::Arc<[SliceRef]>,
    /// By slice: where its page is and how its pixels lie, as the check found
    /// them (`tiff/index.rs`), for every reader of the slices.
    pub(super) index: PageIndex,
    /// Whether every slice's header was checked (a slab task's plan of a stack
    /// of single-page files checks only the first file and its own).
    pub(super) all_checked: bool,
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

    /// The stack's slices, in order: every page of each input file (one for a
    /// file of one image), file after file. Pages after the first that are
    /// marked as reduced-resolution copies (NewSubfileType bit 0: the thumbnail
    /// some writers append) are not slices.
    pub fn inputs(&self) -> &[SliceRef] {
        &self.slices
    }

    /// The index of the inputs' pages: entry `i` for input `i`.
    pub(crate) fn page_index(&self) -> &PageIndex {
        &self.index
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
            .join(output_name(j))
    }

    /// The input range a slab must cover to be built on its own: `start` and `end`
    /// on multiples of 2^L (`end` may also be the stack's end), so that every
    /// output slice depending on the slab depends on nothing else.
    pub fn slab_alignment(&self) -> usize {
        1 << (self.levels.len() - 1)
    }

    /// Builds the pyramid. `progress(done, total)` is called after every output
    /// slice (done never decreases and reaches total on success); raising `cancel`
    /// stops the run at the next slice with [`Error::Cancelled`].
    ///
    /// Resume: an existing output is kept only if the output folder's manifest
    /// says it was made from exactly the inputs it depends on now (same names,
    /// sizes and modification times, see [`inputs_of`]), at the same level shape
    /// and sample type, and the file is still the one written (same size and
    /// modification time) and parses as such. Everything else is rebuilt, so one
    /// replaced input rebuilds its dependants at every level and nothing else.
    /// Without a manifest nothing is trusted. See [`PyramidBuilder`](super::PyramidBuilder)
    /// for what is removed and what is only reported.
    ///
    /// Every file appears atomically, and the manifest lists it only once it is
    /// synced to disk with its folder. The output folder is locked for the run
    /// (concurrent runs on one folder take turns) and the lock leaves no file.
    ///
    /// A file at an output name that ctstack did not write, and that is not an
    /// earlier pyramid of this stack, refuses the run before anything is
    /// written; see [`PyramidBuilder`](super::PyramidBuilder), "The output folder".
    ///
    /// Errors: [`Error::Usage`] if an input is inside a level folder of the
    /// output folder; [`Error::State`] for a file at an output name that is
    /// not ctstack's to replace, or a manifest file that is not ctstack's.
    pub fn run(
        &self,
        progress: &mut dyn FnMut(u64, u64),
        cancel: &CancelFlag,
    ) -> Result<Summary, Error> {
        run::whole(self, progress, cancel).map_err(|e| self.with_output_hint(e))
    }

    /// `e` with, for a file or folder that cannot be created in the default
    /// output folder (beside or inside the input, which an archived or shared
    /// scan may not allow), the option that writes elsewhere.
    pub(super) fn with_output_hint(&self, e: Error) -> Error {
        match e {
            Error::Io { path, what, source }
                if self.builder.default_output
                    && what.starts_with("cannot create")
                    && path.starts_with(&self.builder.output_dir) =>
            {
                Error::Io {
                    what: format!(
                        "{what} (to write elsewhere, e.g. when the scan's folder is read-only, \
                         pass PyramidBuilder::output_dir(DIR))"
                    ),
                    path,
                    source,
                }
            }
            other => other,
        }
    }

    /// Builds only the outputs that depend on inputs `start..end` (a slab), byte
    /// for byte as [`Plan::run`] would, with the level shapes of the whole stack.
    ///
    /// `start` and `end` must be multiples of [`Plan::slab_alignment`] (`end` may
    /// also be the stack's length), else a usage error: then each output depends on
    /// one slab only. Slabs of one folder run at once (from many processes or
    /// hosts, on a shared filesystem), in any order, any number of times: a slab
    /// takes no lock, writes only its own outputs and its own slab record (never
    /// the folder's manifest), removes nothing, and resumes from the folder's
    /// manifest and its own record, so a retried slab skips what an earlier
    /// attempt finished. Once every slab has returned, [`Plan::finish_slabs`]
    /// writes the manifest and cleans up; until then the folder is not a finished
    /// pyramid. The returned summary counts this slab's outputs. The design is
    /// described in src/pyramid/slab.rs.
    pub fn run_slab(
        &self,
        inputs: Range<usize>,
        progress: &mut dyn FnMut(u64, u64),
        cancel: &CancelFlag,
    ) -> Result<Summary, Error> {
        self.check_slab(&inputs)?;
        slab::run(self, inputs, progress, cancel).map_err(|e| self.with_output_hint(e))
    }

    /// A usage error unless `inputs` is a slab of this plan (see [`Plan::run_slab`]).
    pub(super) fn check_slab(&self, inputs: &Range<usize>) -> Result<(), Error> {
        let count = self.levels[0].count;
        let align = self.slab_alignment();
        let aligned = |i: usize| i.is_multiple_of(align) || i == count;
        if inputs.start >= inputs.end
            || inputs.end > count
            || !aligned(inputs.start)
            || !aligned(inputs.end)
        {
            return Err(Error::usage(format!(
                "slab {}..{} of a {count}-slice stack: must be non-empty and start and end on \
                 multiples of {align} (or at the stack's end)",
                inputs.start, inputs.end
            )));
        }
        Ok(())
    }

    /// The driver's last step of a slab build, after every [`Plan::run_slab`]
    /// task has returned: checks that every output of the plan is there and
    /// valid, writes the folder's manifest (once), removes stale outputs as
    /// [`Plan::run`] does, removes temporary files and the slab records, and
    /// returns the summary [`Plan::run`] would (kept: outputs of a previous run
    /// the slabs kept; rebuilt: outputs the slabs wrote; `elapsed` is this step's
    /// time). Takes the folder's lock (raising `cancel` stops the wait).
    ///
    /// Errors: [`Error::State`] naming an output no slab built (a slab failed: run
    /// it again, then finish); nothing is changed then.
    pub fn finish_slabs(&self, cancel: &CancelFlag) -> Result<Summary, Error> {
        slab::finish(self, cancel)
    }

    /// Creates the output folder and its level folders.
    pub(super) fn create_dirs(&self) -> Result<(), Error> {
        let out = &self.builder.output_dir;
        std::fs::create_dir_all(out)
            .map_err(|e| Error::io(out, "cannot create output directory", e))?;
        for k in 1..self.levels.len() {
            let dir = out.join(k.to_string());
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::io(&dir, "cannot create output directory", e))?;
        }
        Ok(())
    }

    /// The run's own thread pool, if [`PyramidBuilder::threads`] asked for one.
    pub(super) fn thread_pool(&self) -> Result<Option<rayon::ThreadPool>, Error> {
        crate::threads::pool(self.builder.threads)
    }
}

/// The file name of output slice `j`: `000042.tif`.
pub(super) fn output_name(j: usize) -> String {
    format!("{j:06}.tif")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependency_ranges_cut_at_the_end() {
        assert_eq!(inputs_of(1, 0, 5), 0..2);
        assert_eq!(inputs_of(1, 2, 5), 4..5);
        assert_eq!(inputs_of(2, 1, 5), 4..5);
        assert_eq!(inputs_of(3, 0, 5), 0..5);
        assert_eq!(inputs_of(60, 3, 5), 5..5);
    }
}
