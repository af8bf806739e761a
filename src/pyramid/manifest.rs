//! The manifest: a small JSON file at the top of the output folder that says what
//! every output slice was made from.
//!
//! It is what resume trusts (an output is kept only if the manifest says it was
//! made from the inputs it depends on now), what stale-output removal trusts (only
//! files it lists are ever deleted) and what [`Pyramid::open`](crate::Pyramid::open)
//! reads back. Its format and identity rule are documented on [`MANIFEST_FILE`].

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::plan::{LevelShape, Plan};
use crate::durable::{BackgroundSync, sync_dir, sync_dirs};
use crate::stack::SliceRef;
use crate::writer::{parent_of, write_atomically_durable};
use crate::{Error, SampleType};

/// The manifest's file name, at the top of the output folder: a small JSON file,
/// written atomically after every run (and at checkpoints during one), that
/// records what each output was made from.
///
/// ```json
/// {
///   "format": "ctstack-pyramid",
///   "version": 1,
///   "min_size": 500,
///   "sample_type": "uint16",
///   "folder": "/data/scan",
///   "inputs": [
///     { "name": "slice_0000.tif", "size": 15147216, "mtime_ns": 1796159193326627631,
///       "width": 2752, "height": 2752, "sample_type": "uint16" }
///   ],
///   "levels": [
///     { "k": 1, "width": 1376, "height": 1376, "count": 32,
///       "files": [ { "size": 3786928, "mtime_ns": 1796159784610662779 }, null ] }
///   ]
/// }
/// ```
///
/// `levels[k - 1].files[j]` is level-`k` slice `j` (`<out>/<k>/<j:06>.tif`), made
/// from `inputs[j * 2^k .. (j + 1) * 2^k]` (cut at the end of the list); `null`
/// while it is not (or no longer) a valid output. Inputs are named by file name
/// only, so a scan folder moved together with its thumbnails stays valid. A
/// slice that is a page of a multi-page file also has `"page": N` (N >= 1;
/// absent means page 0), and each page of a file has the file's size and time.
///
/// `"leftovers"` (absent when empty) lists outputs of an earlier plan that a run
/// could not remove (on Windows, another program had them open), as
/// `{ "k": 3, "j": 0, "size": ..., "mtime_ns": ... }`: they are still ctstack's,
/// and the next run removes them.
///
/// An input's identity is its name, size and modification time (in nanoseconds;
/// a time read through Windows, in 100 ns steps, matches the nanosecond time it
/// truncates: see `same_mtime`), the rule make and rsync use: reading every input's pixels to decide would cost
/// as much as building. What it cannot see: a rewrite that keeps both the size and
/// the modification time (a tool that restores mtimes, or a filesystem with coarse
/// timestamps rewritten within one tick). `force` rebuilds everything.
pub const MANIFEST_FILE: &str = "ctstack.json";

/// The `format` field: says the file is ours.
pub(super) const FORMAT: &str = "ctstack-pyramid";

/// The `version` field: bumped when the meaning of a field changes (an older or
/// newer manifest is then treated as absent: nothing trusted, nothing deleted;
/// a file of this name that is not a ctstack manifest at all refuses the run,
/// see `resume::read_old`).
const VERSION: u32 = 1;

/// A manifest larger than this is not read (treated as absent): a bound on what
/// a hostile file can make a run allocate, far above a real stack's manifest
/// (about 150 bytes per input and 60 per output).
const MAX_MANIFEST_BYTES: u64 = 64 << 20;

/// How often a run saves its progress to the manifest: a killed run then loses at
/// most this much work (outputs written since are rebuilt), for at most one small
/// write per interval.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(2);

/// The first fields of every record file ctstack writes (the manifest, a
/// slab's record, a crop's record, a store's record of its inputs): which
/// record it is (`format`) and its `version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RecordKind {
    format: String,
    version: u32,
}

impl RecordKind {
    /// The kind `format`, `version`.
    pub fn new(format: &str, version: u32) -> RecordKind {
        RecordKind {
            format: format.to_string(),
            version,
        }
    }

    /// What the record is instead of `format` `version`, if it is not that.
    pub fn check(&self, format: &str, version: u32) -> Result<(), String> {
        if self.format != format || self.version != version {
            return Err(format!(
                "format {:?} version {}, expected {format:?} version {version}",
                self.format, self.version
            ));
        }
        Ok(())
    }

    /// Whether the record is `format` `version`.
    pub fn is(&self, format: &str, version: u32) -> bool {
        self.check(format, version).is_ok()
    }
}

/// What the output folder's manifest holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    #[serde(flatten)]
    kind: RecordKind,
    /// The `min_size` of the run that wrote it (informative: a level is kept or
    /// rebuilt by its shape, which is all `min_size` decides).
    pub min_size: u32,
    /// The sample type of every input and output, as [`SampleType::name`] spells it.
    pub sample_type: String,
    /// The folder that held the inputs, absolute (absent when not UTF-8, or in
    /// a manifest written before it was kept): informative, for `ctstack info`
    /// and `ctstack.open` on a pyramid written with `--out` elsewhere; resume
    /// never reads it (inputs are matched by name, so a scan folder moved
    /// together with its thumbnails stays valid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    /// The ordered input list.
    pub inputs: Vec<InputRecord>,
    /// Levels 1 ..= L.
    pub levels: Vec<LevelRecord>,
    /// Outputs of an earlier plan that a run had to remove but could not (on
    /// Windows, another program had them open): still ctstack's, so the next run
    /// tries again. Absent when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leftovers: Vec<Leftover>,
}

/// An output of an earlier plan not removed yet: level-`k` slice `j` as ctstack wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Leftover {
    /// The level (>= 1).
    pub k: usize,
    /// The slice.
    pub j: usize,
    /// The file as written.
    #[serde(flatten)]
    pub file: FileRecord,
}

/// One input slice's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct InputRecord {
    /// File name (no directory).
    pub name: String,
    /// The page of a multi-page file (absent for 0, so a stack of single-page
    /// files has the manifest it always had).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub page: usize,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The sample type, as [`SampleType::name`] spells it.
    pub sample_type: String,
}

/// One level of the pyramid and its files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LevelRecord {
    /// The level: 1 is the first halving.
    pub k: usize,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Number of slices.
    pub count: usize,
    /// `files[j]`: the file of slice `j` as ctstack wrote it, or `None`.
    pub files: Vec<Option<FileRecord>>,
}

/// An output file as ctstack wrote it: if either figure differs now, someone
/// else changed the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileRecord {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
}

impl FileRecord {
    /// The record of a file with this metadata.
    pub fn of(metadata: &std::fs::Metadata) -> FileRecord {
        FileRecord {
            size: metadata.len(),
            mtime_ns: metadata.modified().map(mtime_ns).unwrap_or(0),
        }
    }

    /// Whether the file at `path` is still the one recorded (a plain file of the
    /// same size and modification time, [`same_mtime`]).
    pub fn matches(&self, path: &Path) -> bool {
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && FileRecord::of(&m).same_as(self))
    }

    /// Whether both records describe the same file: same size, [`same_mtime`].
    pub fn same_as(&self, other: &FileRecord) -> bool {
        self.size == other.size && same_mtime(self.mtime_ns, other.mtime_ns)
    }
}

/// NTFS (and SMB, which carries Windows' FILETIME) keeps times in 100 ns steps.
const NTFS_TICK_NS: i64 = 100;

/// Whether two modification times are the same time: equal, or, when one of them
/// is a whole number of 100 ns steps, equal at that resolution. A file's time read
/// on Linux or macOS (nanoseconds) and the same file's time read through Windows
/// (a lab share seen from both, a disk moved between them) differ below 100 ns
/// only, as Windows truncates: a manifest made on one is trusted on the other.
/// Two nanosecond times that differ are different times.
pub(crate) fn same_mtime(a: i64, b: i64) -> bool {
    a == b
        || ((a % NTFS_TICK_NS == 0 || b % NTFS_TICK_NS == 0)
            && a.div_euclid(NTFS_TICK_NS) == b.div_euclid(NTFS_TICK_NS))
}

/// Whether two input lists name the same files, in order, with the same size,
/// shape, type and [`same_mtime`] time.
pub(crate) fn same_inputs(a: &[InputRecord], b: &[InputRecord]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.same_as(b))
}

/// Nanoseconds since the Unix epoch (negative before it), saturating.
fn mtime_ns(t: SystemTime) -> i64 {
    let ns = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => ns(after),
        Err(before) => -ns(before.duration()),
    }
}

impl InputRecord {
    /// Whether both records describe the same input: every field equal but the
    /// time, which is compared with [`same_mtime`].
    pub fn same_as(&self, other: &InputRecord) -> bool {
        let time_aside = |r: &InputRecord| InputRecord {
            mtime_ns: 0,
            ..r.clone()
        };
        time_aside(self) == time_aside(other) && same_mtime(self.mtime_ns, other.mtime_ns)
    }

    /// The identity of every input now: one `stat` each, no read. `shape` and
    /// `sample_type` are the plan's (every input was checked against them).
    pub fn stat_all(
        inputs: &[SliceRef],
        shape: LevelShape,
        sample_type: SampleType,
    ) -> Result<Vec<InputRecord>, Error> {
        inputs
            .iter()
            .map(|SliceRef { path, page }| {
                let metadata =
                    std::fs::metadata(path).map_err(|e| Error::io(path, "cannot open", e))?;
                let file = FileRecord::of(&metadata);
                Ok(InputRecord {
                    name: path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    page: *page,
                    size: file.size,
                    mtime_ns: file.mtime_ns,
                    width: shape.width,
                    height: shape.height,
                    sample_type: sample_type.name().to_string(),
                })
            })
            .collect()
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The folder that holds `inputs` (the first one's), absolute, if its path is
/// UTF-8: what the pyramid's manifest and the store's record name.
pub(crate) fn input_folder(inputs: &[SliceRef]) -> Option<String> {
    let parent = inputs.first()?.path.parent()?;
    let parent = match parent.as_os_str().is_empty() {
        true => Path::new("."),
        false => parent,
    };
    let absolute = std::fs::canonicalize(parent).ok()?;
    absolute.to_str().map(str::to_string)
}

/// The sample type's name in the manifest.
pub(crate) fn sample_type_named(name: &str) -> Option<SampleType> {
    SampleType::from_name(name)
}

impl Manifest {
    /// A manifest for `plan` made from `inputs`, with no file listed yet.
    pub fn empty(plan: &Plan, inputs: Vec<InputRecord>) -> Manifest {
        Manifest {
            kind: RecordKind::new(FORMAT, VERSION),
            min_size: plan.builder.min_size,
            sample_type: plan.sample_type.name().to_string(),
            folder: input_folder(plan.inputs()),
            inputs,
            levels: plan.levels[1..]
                .iter()
                .enumerate()
                .map(|(i, shape)| LevelRecord {
                    k: i + 1,
                    width: shape.width,
                    height: shape.height,
                    count: shape.count,
                    files: vec![None; shape.count],
                })
                .collect(),
            leftovers: Vec::new(),
        }
    }

    /// The manifest of the output folder `out` and its bytes; `Ok(None)` if there
    /// is none. A manifest that cannot be trusted (unreadable, truncated,
    /// malformed, of another format version) is an error: a reader refuses
    /// it; a run treats one of ctstack's own as absent and says why, and
    /// refuses one that is not ctstack's (`resume::read_old`).
    pub fn read(out: &Path) -> Result<Option<(Manifest, Vec<u8>)>, Error> {
        let path = out.join(MANIFEST_FILE);
        let Some(bytes) = read_small(&path, "ctstack manifest")? else {
            return Ok(None);
        };
        let malformed = |what: String| Error::Format {
            path: path.clone(),
            what,
        };
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| malformed(format!("not a valid ctstack manifest: {e}")))?;
        manifest.check().map_err(malformed)?;
        Ok(Some((manifest, bytes)))
    }

    /// Checks what the rest of ctstack relies on: ours, this version, levels
    /// numbered 1, 2, ... with one file entry per slice.
    fn check(&self) -> Result<(), String> {
        self.kind.check(FORMAT, VERSION)?;
        if sample_type_named(&self.sample_type).is_none() {
            return Err(format!("unknown sample type {:?}", self.sample_type));
        }
        if let Some(bad) = self.leftovers.iter().find(|l| l.k == 0) {
            return Err(format!("leftover {} of level 0 (the inputs)", bad.j));
        }
        for (i, level) in self.levels.iter().enumerate() {
            if level.k != i + 1 || level.files.len() != level.count {
                return Err(format!(
                    "level entry {i} says k = {} with {} files for {} slices",
                    level.k,
                    level.files.len(),
                    level.count
                ));
            }
        }
        Ok(())
    }

    /// Level `k` (>= 1), if the manifest has it.
    pub fn level(&self, k: usize) -> Option<&LevelRecord> {
        k.checked_sub(1).and_then(|i| self.levels.get(i))
    }

    /// The record of level-`k` slice `j`, if listed.
    pub fn file(&self, k: usize, j: usize) -> Option<&FileRecord> {
        self.level(k)?.files.get(j)?.as_ref()
    }

    /// Lists level-`k` slice `j` as written (`k` and `j` within the manifest's levels).
    pub fn set_file(&mut self, k: usize, j: usize, file: FileRecord) {
        if let Some(slot) = self.levels.get_mut(k - 1).and_then(|l| l.files.get_mut(j)) {
            *slot = Some(file);
        }
    }

    /// Whether every slice of every level is listed.
    pub fn is_complete(&self) -> bool {
        self.levels
            .iter()
            .all(|level| level.files.iter().all(Option::is_some))
    }
}

/// What a [`Journal`] keeps on disk: the folder's [`Manifest`], or a slab's own
/// record (`slab.rs`); both list output files as they are written.
pub(crate) trait Document: Serialize {
    /// Lists level-`k` slice `j` as written (ignored outside the document's levels).
    fn set_file(&mut self, k: usize, j: usize, file: FileRecord);
}

impl Document for Manifest {
    fn set_file(&mut self, k: usize, j: usize, file: FileRecord) {
        Manifest::set_file(self, k, j, file);
    }
}

/// Where a run lists the outputs it writes (the cascade's view of a [`Journal`]).
pub(crate) trait Recorder {
    /// Lists level-`k` slice `j`, written at `path`, as written; saves if a
    /// checkpoint is due.
    fn record(&mut self, k: usize, j: usize, path: &Path, file: FileRecord) -> Result<(), Error>;
}

/// A document of a run in progress: outputs are listed as they are written and
/// saved at checkpoints and at the end, never rewritten when unchanged.
///
/// What a save writes is durable, and so is everything it lists: the files
/// recorded since the last save are synced first, then their folders (the
/// renames that put them in place), then the document is written atomically and
/// synced with its folder (`src/durable.rs`). After a power loss the file on disk
/// is an earlier save or this one, and every output it lists holds its data.
pub(crate) struct Journal<D = Manifest> {
    path: PathBuf,
    doc: D,
    /// The bytes the file holds now (`None`: no file, or one not trusted).
    saved: Option<Vec<u8>>,
    last_save: Instant,
    /// Syncs the files recorded, in the background; waited for at each save.
    unsynced: BackgroundSync,
    /// Whether the record folder's parent was synced (its entry for the folder).
    parent_synced: bool,
}

impl Journal<Manifest> {
    /// A journal for the output folder `out`'s manifest, starting from
    /// `manifest`; `saved` is what the folder's manifest file holds now, if it was read.
    pub fn new(out: &Path, manifest: Manifest, saved: Option<Vec<u8>>) -> Journal {
        Journal::at(out.join(MANIFEST_FILE), manifest, saved)
    }
}

impl<D: Document> Journal<D> {
    /// A journal kept in the file `path`, starting from `doc`; `saved` is what
    /// the file holds now, if it was read.
    pub fn at(path: PathBuf, doc: D, saved: Option<Vec<u8>>) -> Journal<D> {
        Journal {
            path,
            doc,
            saved,
            last_save: Instant::now(),
            unsynced: BackgroundSync::new(),
            parent_synced: false,
        }
    }

    /// Syncs the files recorded since the last save and their folders, then
    /// writes the document (atomically, durably) unless the file already holds
    /// exactly it.
    pub fn save(&mut self) -> Result<(), Error> {
        self.last_save = Instant::now();
        // The data of every file recorded since the last save is on disk.
        let mut folders = self.unsynced.barrier()?;
        let bytes = to_bytes(&self.doc);
        if self.saved.as_ref() == Some(&bytes) {
            return sync_dirs(&folders);
        }
        // The level folders were made in the record's folder: their names too.
        let folder = parent_of(&self.path);
        folders.insert(folder.to_path_buf());
        // Then the record's own data, then those folders (on a journaling
        // filesystem one commit makes all of it durable), then its rename.
        write_atomically_durable(
            &self.path,
            |file| {
                use std::io::Write;
                file.write_all(&bytes)
            },
            || sync_dirs(&folders),
        )?;
        // The record's folder may be new too: its name in its parent, best
        // effort (the parent may not be readable), once per journal.
        if !self.parent_synced {
            self.parent_synced = true;
            if let Some(up) = folder.parent().filter(|p| !p.as_os_str().is_empty()) {
                let _ = sync_dir(up);
            }
        }
        self.saved = Some(bytes);
        Ok(())
    }

    /// The document, to change what [`Recorder::record`] does not.
    pub fn doc_mut(&mut self) -> &mut D {
        &mut self.doc
    }
}

impl<D: Document> Recorder for Journal<D> {
    fn record(&mut self, k: usize, j: usize, path: &Path, file: FileRecord) -> Result<(), Error> {
        self.doc.set_file(k, j, file);
        self.unsynced.push(path.to_path_buf());
        if self.last_save.elapsed() >= CHECKPOINT_INTERVAL {
            self.save()?;
        }
        Ok(())
    }
}

/// The bytes of the small file `path` (a manifest or a slab record, `what`);
/// `Ok(None)` if there is none; a [`Error::Format`] if it is larger than any
/// real one could be (a bound on what a hostile file makes a run allocate).
pub(crate) fn read_small(path: &Path, what: &str) -> Result<Option<Vec<u8>>, Error> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, "cannot open", e)),
    };
    let mut bytes = Vec::new();
    use std::io::Read;
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, "cannot read", e))?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(Error::Format {
            path: path.to_path_buf(),
            what: format!("larger than {MAX_MANIFEST_BYTES} bytes: not a {what}"),
        });
    }
    Ok(Some(bytes))
}

/// The JSON of a document, pretty-printed, with a final newline.
pub(crate) fn to_bytes(doc: &impl Serialize) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(doc).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_agree_at_the_coarser_resolution_only() {
        // Linux's nanoseconds and the same instant through Windows (truncated to 100 ns).
        let linux = 1_796_159_193_326_627_631;
        let windows = 1_796_159_193_326_627_600;
        assert!(same_mtime(linux, windows) && same_mtime(windows, linux));
        assert!(same_mtime(linux, linux));
        // Two nanosecond times in one 100 ns step are still two times.
        assert!(!same_mtime(linux, linux + 1));
        // A whole step apart is a change.
        assert!(!same_mtime(linux, windows + 100));
        assert!(!same_mtime(windows, windows - 100));
        // Before 1970 (negative), truncation is towards the earlier step.
        assert!(same_mtime(-1_000, -950));
        assert!(!same_mtime(-1_000, -1_050));
    }

    #[test]
    fn inputs_compare_by_the_time_rule_and_every_other_field() {
        let input = InputRecord {
            name: "slice_0000.tif".into(),
            page: 0,
            size: 1000,
            mtime_ns: 1_796_159_193_326_627_631,
            width: 10,
            height: 10,
            sample_type: "uint16".into(),
        };
        let on_windows = InputRecord {
            mtime_ns: 1_796_159_193_326_627_600,
            ..input.clone()
        };
        let one = std::slice::from_ref(&input);
        assert!(same_inputs(one, std::slice::from_ref(&on_windows)));
        let resized = InputRecord {
            size: 1001,
            ..on_windows
        };
        assert!(!same_inputs(one, &[resized]));
        assert!(!same_inputs(one, &[]));
        let file = FileRecord {
            size: 5,
            mtime_ns: 1_796_159_193_326_627_631,
        };
        let file_on_windows = FileRecord {
            size: 5,
            mtime_ns: 1_796_159_193_326_627_600,
        };
        assert!(file.same_as(&file_on_windows));
    }

    #[test]
    fn a_leftover_of_level_zero_is_refused() {
        // Level 0 is the inputs: a manifest naming one must never make a run remove it.
        let json = br#"{"format": "ctstack-pyramid", "version": 1, "min_size": 500,
            "sample_type": "uint16", "inputs": [], "levels": [],
            "leftovers": [{"k": 0, "j": 0, "size": 1, "mtime_ns": 0}]}"#;
        let manifest: Manifest = serde_json::from_slice(json).unwrap();
        assert!(manifest.check().unwrap_err().contains("level 0"));
    }
}
