//! Slabs: one pyramid built by many tasks at once on one output folder (a Dask
//! map over a shared filesystem, from different processes or hosts), then
//! finished once by the driver.
//!
//! Level-k slice j depends only on inputs `j * 2^k .. (j + 1) * 2^k` (cut at the
//! stack's end, [`inputs_of`]), so a slab of inputs whose ends are multiples of
//! 2^L (or the stack's end) owns every output slice that depends on it, at every
//! level, and shares none with another slab. The odd-count rule needs nothing
//! more: a level's last slice is paired with itself only when its partner would
//! start at or beyond the stack's end, which only the slab holding the end sees,
//! and it sees it exactly as a whole run does (the cascade knows the whole
//! stack's level shapes).
//!
//! So that slabs run at once, a slab task
//! - writes only its own outputs (each atomically) and its own small *slab
//!   record*, `.ctstack-slab-<start>-<end>.json` at the top of the folder (a name
//!   the finished folder does not keep), and never the folder's manifest;
//! - takes no lock and removes nothing (another slab's temporary files may be
//!   in flight): removal waits for [`finish`];
//! - resumes from the folder's manifest (a previous complete run: its valid
//!   outputs are kept, unless `force`) and from its own record (what an earlier
//!   attempt of this slab wrote, checked by the same identity rule: the inputs'
//!   names, sizes and mtimes, the file's size and mtime), so a retried task skips
//!   its finished files. Its record is saved at the manifest's checkpoints, so a
//!   killed attempt loses at most a couple of seconds of work.
//!
//! [`finish`] (the driver, once every slab task has returned) takes the folder's
//! lock, checks every output of the plan against the slab records and the old
//! manifest, writes the one final manifest once, removes stale outputs exactly as
//! a whole run does (files the old manifest lists, unchanged since, and outside
//! the plan; never a user's file), sweeps temporary files of killed tasks, removes
//! the slab records and returns the [`Summary`] a whole run would. If an output is
//! missing (a slab failed for good) it changes nothing and says which slab to run
//! again.
//!
//! A task built through [`PyramidBuilder::run_slab`](crate::PyramidBuilder::run_slab)
//! (what the C ABI and Python use) checks only the first slice's header and its
//! slab's, not the whole stack's again: on a stack of thousands of slices on a
//! network filesystem that would cost every task as much as the driver's one
//! check. `finish` checks the whole stack.
//!
//! What `force` means here: a slab ignores the folder's manifest, but still
//! trusts its own record (files this build wrote from these very inputs), so a
//! retried task of a forced build still skips its finished files.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::lock::OutputLock;
use super::manifest::{
    Document, FileRecord, InputRecord, Journal, Manifest, RecordKind, read_small,
};
use super::plan::{Plan, inputs_of};
use super::resume::{self, KeepTable};
use super::run::{Run, build};
use super::{CancelFlag, Summary};
use crate::Error;
use crate::writer::remove_file;

/// Slab records are named `<PREFIX><start>-<end><SUFFIX>`.
const PREFIX: &str = ".ctstack-slab-";
const SUFFIX: &str = ".json";

/// The `format` field of a slab record.
const FORMAT: &str = "ctstack-slab";
/// The `version` field: an older or newer record is ignored (its slab rebuilt).
const VERSION: u32 = 1;

/// What one slab wrote: the identity of its inputs and its output files, for
/// the levels of the whole stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SlabRecord {
    #[serde(flatten)]
    kind: RecordKind,
    /// The whole stack's length.
    count: usize,
    /// The slab: inputs `start..end` of the stack.
    start: usize,
    end: usize,
    /// The sample type, as [`crate::SampleType::name`] spells it.
    sample_type: String,
    /// Inputs `start..end`.
    inputs: Vec<InputRecord>,
    /// Levels 1 ..= L.
    levels: Vec<SlabLevel>,
    /// Bytes of input pixels read by the attempts that completed.
    input_bytes: u64,
}

/// One level of the whole stack and this slab's files of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SlabLevel {
    k: usize,
    width: u32,
    height: u32,
    /// The level's slice count in the whole stack.
    count: usize,
    /// The slab's first slice of this level.
    first: usize,
    /// `files[i]`: slice `first + i` as written, or `None`.
    files: Vec<Option<FileRecord>>,
}

/// Level-`k` slices that depend on inputs `slab` (aligned): `start / 2^k ..
/// ceil(end / 2^k)`.
fn slices_of(k: usize, slab: &Range<usize>) -> Range<usize> {
    slab.start >> k..slab.end.div_ceil(1 << k)
}

impl SlabRecord {
    /// A record of `slab` made from `inputs` (its own), with no file listed.
    fn empty(plan: &Plan, slab: Range<usize>, inputs: Vec<InputRecord>) -> SlabRecord {
        SlabRecord {
            kind: RecordKind::new(FORMAT, VERSION),
            count: plan.levels[0].count,
            sample_type: plan.sample_type.name().to_string(),
            inputs,
            levels: (1..plan.levels.len())
                .map(|k| {
                    let shape = plan.levels[k];
                    let slices = slices_of(k, &slab);
                    SlabLevel {
                        k,
                        width: shape.width,
                        height: shape.height,
                        count: shape.count,
                        first: slices.start,
                        files: vec![None; slices.len()],
                    }
                })
                .collect(),
            start: slab.start,
            end: slab.end,
            input_bytes: 0,
        }
    }

    /// The record at `path` and its bytes; `Ok(None)` if there is none; an
    /// error for one not to trust (malformed, another version).
    fn read(path: &Path) -> Result<Option<(SlabRecord, Vec<u8>)>, Error> {
        let Some(bytes) = read_small(path, "ctstack slab record")? else {
            return Ok(None);
        };
        let malformed = |what: String| Error::Format {
            path: path.to_path_buf(),
            what,
        };
        let record: SlabRecord = serde_json::from_slice(&bytes)
            .map_err(|e| malformed(format!("not a valid ctstack slab record: {e}")))?;
        record.kind.check(FORMAT, VERSION).map_err(malformed)?;
        Ok(Some((record, bytes)))
    }

    /// Whether the record is of this plan's pyramid: same stack length, sample
    /// type and level shapes, and its slab's parts are consistent.
    fn fits(&self, plan: &Plan) -> bool {
        let slab = self.start..self.end;
        self.count == plan.levels[0].count
            && self.start <= self.end
            && self.end <= self.count
            && self.inputs.len() == slab.len()
            && self.sample_type == plan.sample_type.name()
            && self.levels.len() + 1 == plan.levels.len()
            && self.levels.iter().enumerate().all(|(i, level)| {
                let shape = plan.levels[i + 1];
                let slices = slices_of(i + 1, &slab);
                (level.k, level.width, level.height, level.count)
                    == (i + 1, shape.width, shape.height, shape.count)
                    && (level.first, level.files.len()) == (slices.start, slices.len())
            })
    }

    /// The record's level-`k` slice `j`, if it lists it (made from any inputs).
    fn file(&self, k: usize, j: usize) -> Option<&FileRecord> {
        let level = self.levels.get(k.checked_sub(1)?)?;
        level.files.get(j.checked_sub(level.first)?)?.as_ref()
    }

    /// The record's level-`k` slice `j`, if it lists it as made from `now` (the
    /// inputs it depends on now) and the file is still that one. The caller
    /// has checked [`SlabRecord::fits`].
    fn vouches(&self, plan: &Plan, k: usize, j: usize, now: &[InputRecord]) -> Option<&FileRecord> {
        let level = self.levels.get(k.checked_sub(1)?)?;
        let file = level.files.get(j.checked_sub(level.first)?)?.as_ref()?;
        let deps = inputs_of(k, j, self.count);
        let then = self
            .inputs
            .get(deps.start.checked_sub(self.start)?..deps.end.checked_sub(self.start)?)?;
        (super::manifest::same_inputs(then, now) && file.matches(&plan.output_path(k, j)))
            .then_some(file)
    }
}

impl Document for SlabRecord {
    fn set_file(&mut self, k: usize, j: usize, file: FileRecord) {
        let Some(level) = k.checked_sub(1).and_then(|i| self.levels.get_mut(i)) else {
            return;
        };
        let slot = j
            .checked_sub(level.first)
            .and_then(|i| level.files.get_mut(i));
        if let Some(slot) = slot {
            *slot = Some(file);
        }
    }
}

/// The slab record's path for inputs `slab` of output folder `out`.
fn record_path(out: &Path, slab: &Range<usize>) -> PathBuf {
    out.join(format!("{PREFIX}{:09}-{:09}{SUFFIX}", slab.start, slab.end))
}

/// Whether `name` is a slab record's file name, exactly as [`record_path`]
/// makes it.
pub(super) fn is_record_name(name: &str) -> bool {
    let Some(span) = name
        .strip_prefix(PREFIX)
        .and_then(|n| n.strip_suffix(SUFFIX))
    else {
        return false;
    };
    let nine_digits = |s: &str| s.len() == 9 && s.bytes().all(|b| b.is_ascii_digit());
    span.split_once('-')
        .is_some_and(|(a, b)| nine_digits(a) && nine_digits(b))
}

/// Builds slab `slab` (checked by the caller: aligned, non-empty) of `plan`.
pub(crate) fn run(
    plan: &Plan,
    slab: Range<usize>,
    progress: &mut dyn FnMut(u64, u64),
    cancel: &CancelFlag,
) -> Result<Summary, Error> {
    let started = Instant::now();
    let out = plan.output_dir();
    resume::refuse_inputs_in_level_folders(plan)?;
    let now = InputRecord::stat_all(
        &plan.inputs()[slab.clone()],
        plan.levels[0],
        plan.sample_type,
    )?;
    let mut warnings = Vec::new();
    let force = plan.builder.force;
    // Read even when forced: what it lists is ctstack's to replace.
    let (listed, _) = resume::read_old(out, &mut warnings)?;
    let old = listed.as_ref().filter(|_| !force);
    let path = record_path(out, &slab);
    let (previous, saved) = match SlabRecord::read(&path) {
        Ok(Some((record, bytes))) => (Some(record), Some(bytes)),
        Ok(None) => (None, None),
        Err(e) if resume::is_ctstack_document(&path, FORMAT) => {
            warnings.push(format!("{e}: treated as absent (the slab is rebuilt)"));
            (None, None)
        }
        // Not ctstack's record: not replaced.
        Err(e) => {
            return Err(Error::state(
                &path,
                format!(
                    "not a ctstack slab record ({e}), and ctstack does not replace a file it                      did not write: move it away; nothing was written"
                ),
            ));
        }
    };
    let previous = previous.filter(|r| r.fits(plan) && (r.start..r.end) == slab);
    let mut record = SlabRecord::empty(plan, slab.clone(), now.clone());
    let deps = |k: usize, j: usize| {
        let r = inputs_of(k, j, plan.levels[0].count);
        &now[r.start - slab.start..r.end - slab.start]
    };
    let keep = KeepTable::from_fn(plan, |k, j| {
        if !slices_of(k, &slab).contains(&j) {
            return false; // not this slab's: never looked at
        }
        if let Some(file) = previous
            .as_ref()
            .and_then(|p| p.vouches(plan, k, j, deps(k, j)))
        {
            record.set_file(k, j, file.clone());
            return true;
        }
        old.is_some_and(|old| resume::manifest_vouches(plan, old, k, j, deps(k, j)))
    });
    resume::refuse_foreign_outputs(plan, &keep, slab.clone(), |k, j| {
        previous
            .as_ref()
            .and_then(|p| p.file(k, j))
            .or_else(|| listed.as_ref().and_then(|old| old.file(k, j)))
    })?;
    plan.create_dirs()?;
    record.input_bytes = previous.as_ref().map_or(0, |p| p.input_bytes);
    let mut journal = Journal::at(path, record, saved);
    journal.save()?;
    let run = Run {
        started,
        removed: 0,
        warnings,
    };
    build(
        plan,
        (&keep, slab),
        &mut journal,
        (progress, cancel),
        run,
        |record, counts| record.input_bytes += counts.input_bytes,
    )
}

/// Finishes a slab build of `plan`: see the module doc.
pub(crate) fn finish(plan: &Plan, cancel: &CancelFlag) -> Result<Summary, Error> {
    let out = plan.output_dir();
    resume::refuse_inputs_in_level_folders(plan)?;
    std::fs::create_dir_all(out)
        .map_err(|e| Error::io(out, "cannot create output directory", e))?;
    let _lock = OutputLock::acquire(out, cancel)?;
    // Counted from when the folder is ours, as a whole run's time.
    let started = Instant::now();
    let now = InputRecord::stat_all(plan.inputs(), plan.levels[0], plan.sample_type)?;
    let mut warnings = Vec::new();
    let (old, saved) = resume::read_old(out, &mut warnings)?;
    let (record_paths, records) = read_records(plan, &mut warnings)?;
    let count = plan.levels[0].count;
    let mut draft = Manifest::empty(plan, now.clone());
    let (mut kept, mut rebuilt) = (0, 0);
    let mut missing = Vec::new();
    for k in 1..plan.levels.len() {
        for j in 0..plan.levels[k].count {
            let deps = &now[inputs_of(k, j, count)];
            if let Some(file) = records.iter().find_map(|r| r.vouches(plan, k, j, deps)) {
                draft.set_file(k, j, file.clone());
                rebuilt += 1;
            } else if let Some(file) = old
                .as_ref()
                .filter(|old| {
                    !plan.builder.force && resume::manifest_vouches(plan, old, k, j, deps)
                })
                .and_then(|old| old.file(k, j))
            {
                draft.set_file(k, j, file.clone());
                kept += 1;
            } else {
                missing.push((k, j));
            }
        }
    }
    if let Some(&(k, j)) = missing.first() {
        let deps = inputs_of(k, j, count);
        return Err(Error::state(
            out,
            format!(
                "{} of {} outputs were not built by any slab, e.g. {} (made from inputs \
                 {}..{}): run the slabs holding them again, then finish; nothing was changed",
                missing.len(),
                plan.total_units(),
                plan.output_path(k, j).display(),
                deps.start,
                deps.end,
            ),
        ));
    }
    let removed = match &old {
        Some(old) => resume::remove_stale(plan, old, &mut draft, &mut warnings),
        None => 0,
    };
    resume::sweep(plan, &draft, &mut warnings);
    // Every file the draft lists is one a slab synced before saving the record
    // that lists it; the manifest is written durably, and only then do the
    // records go.
    Journal::new(out, draft, saved).save()?;
    for path in &record_paths {
        if let Err(e) = remove_file(path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            warnings.push(format!("{}: cannot remove: {e}", path.display()));
        }
    }
    Ok(Summary {
        output_dir: out.to_path_buf(),
        levels: plan.levels.clone(),
        kept,
        rebuilt,
        removed,
        warnings: plan.warnings.iter().cloned().chain(warnings).collect(),
        input_bytes: records.iter().map(|r| r.input_bytes).sum(),
        elapsed: started.elapsed(),
    })
}

/// Every slab record in the output folder (paths of those that are ctstack's
/// records, to remove) and those of this plan's pyramid (to trust); files
/// named like a record that are not one are reported and left in place.
fn read_records(
    plan: &Plan,
    warnings: &mut Vec<String>,
) -> Result<(Vec<PathBuf>, Vec<SlabRecord>), Error> {
    let out = plan.output_dir();
    let entries =
        std::fs::read_dir(out).map_err(|e| Error::io(out, "cannot list output directory", e))?;
    let mut named: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| is_record_name(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    named.sort();
    let (mut paths, mut records) = (Vec::new(), Vec::new());
    for path in named {
        match SlabRecord::read(&path) {
            Ok(Some((record, _))) => {
                if record.fits(plan) {
                    records.push(record);
                }
                paths.push(path);
            }
            Ok(None) => {}
            Err(e) => warnings.push(format!("{e}: ignored, left in place")),
        }
    }
    Ok((paths, records))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slab_slices_tile_each_level() {
        // 37 inputs, L = 3, slabs of 8: every level-k slice belongs to one slab.
        let slabs: Vec<Range<usize>> = (0..37).step_by(8).map(|s| s..(s + 8).min(37)).collect();
        for (k, count) in [(1, 19), (2, 10), (3, 5)] {
            let mut all: Vec<usize> = slabs.iter().flat_map(|s| slices_of(k, s)).collect();
            all.sort();
            assert_eq!(all, (0..count).collect::<Vec<_>>(), "level {k}");
        }
    }

    #[test]
    fn record_names_are_recognised() {
        let path = record_path(Path::new("out"), &(16..37));
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(name, ".ctstack-slab-000000016-000000037.json");
        assert!(is_record_name(&name));
        assert!(!is_record_name("ctstack.json"));
    }

    /// A record's kind is its first two fields, as before it was one type;
    /// a record of another kind or version is refused with both named.
    #[test]
    fn a_record_starts_with_its_kind() {
        let record = SlabRecord {
            kind: RecordKind::new(FORMAT, VERSION),
            count: 1,
            start: 0,
            end: 1,
            sample_type: "uint16".into(),
            inputs: Vec::new(),
            levels: Vec::new(),
            input_bytes: 0,
        };
        let bytes = crate::pyramid::to_bytes(&record);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.starts_with(
                "{\n  \"format\": \"ctstack-slab\",\n  \"version\": 1,\n  \"count\": 1,"
            ),
            "{text}"
        );
        let back: SlabRecord = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, record);
        let other: SlabRecord =
            serde_json::from_str(&text.replace("\"version\": 1", "\"version\": 2")).unwrap();
        let refused = other.kind.check(FORMAT, VERSION).unwrap_err();
        assert!(refused.contains("version 2, expected"), "{refused}");
    }
}
