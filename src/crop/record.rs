//! The crop's record: which files of an output folder ctstack's crop wrote, so
//! that a later crop replaces those and nothing else.
//!
//! ctstack never replaces a file it did not write. A crop's output names are
//! ordinary names (`000003.tif`, `ct_0015.tif`) that a user's own files may
//! hold, so the proof of authorship is a small hidden file in the output
//! folder, [`RECORD_FILE`]:
//!
//! ```json
//! {
//!   "format": "ctstack-crop",
//!   "version": 1,
//!   "files": {
//!     "ct_0015.tif": { "size": 131330, "mtime_ns": 1796159193326627631 },
//!     "ct_0016.tif": { "writing": { "width": 376, "height": 352, "sample_type": "uint8" } }
//!   }
//! }
//! ```
//!
//! A file at an output name is ctstack's if the record lists it with its size
//! and modification time as they are now (written by a crop, unchanged since),
//! or lists it as `writing` and it parses as an image of exactly that width,
//! height and sample type (written by a crop that was killed before its
//! record's last save). Anything else at an output name (a file the record
//! does not list, one changed since, a folder, a link) refuses the whole crop
//! before anything is written ([`Error::State`]).
//!
//! The order makes a kill or a power loss harmless: before the first output,
//! the record is saved with every output name marked `writing` (the old
//! entries kept beside the mark); once every output is written, synced and
//! its folder synced, the record is saved again with their sizes and times.
//! Each save is atomic and synced with its folder. Entries of other names
//! stay, so two crops into one folder are both ctstack's; entries whose file
//! is gone are dropped. The folder's lock (the pyramid's, [`crate::LOCK_FILE`])
//! keeps two crops from updating one record at once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::pyramid::manifest::RecordKind;
use crate::pyramid::{FileRecord, read_small, same_mtime, to_bytes};
use crate::writer::write_atomically_durable;
use crate::{Error, OpenOptions, SampleType, Slice};

/// The record's file name, in the output folder.
pub const RECORD_FILE: &str = ".ctstack-crop.json";

/// The `format` field: says the file is ctstack's.
const FORMAT: &str = "ctstack-crop";
/// The `version` field (a record of another version vouches for nothing and
/// is replaced: it is ctstack's own).
const VERSION: u32 = 1;

/// How many foreign files a refusal names (then a count).
const NAMED: usize = 3;

/// The record of one output folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Record {
    #[serde(flatten)]
    kind: RecordKind,
    files: BTreeMap<String, Entry>,
}

/// One output name: the file a crop wrote there, and the one a crop is writing.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct Entry {
    /// The file's size as ctstack wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    /// Its modification time, nanoseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mtime_ns: Option<i64>,
    /// Set while a crop writes this name: what the file will be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    writing: Option<Shape>,
}

/// What a crop's output holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Shape {
    pub width: u32,
    pub height: u32,
    /// As [`SampleType::name`] spells it.
    pub sample_type: String,
}

impl Shape {
    pub fn new(width: u32, height: u32, sample_type: SampleType) -> Shape {
        Shape {
            width,
            height,
            sample_type: sample_type.name().to_string(),
        }
    }
}

impl Record {
    fn empty() -> Record {
        Record {
            kind: RecordKind::new(FORMAT, VERSION),
            files: BTreeMap::new(),
        }
    }

    /// The record of folder `out` (an empty one if there is none).
    ///
    /// A file at [`RECORD_FILE`] that is not a ctstack crop record (not JSON,
    /// another format, unreadable, too large) proves nothing and is not
    /// ctstack's to replace: an [`Error::State`] saying what to do. A record
    /// of another version is ctstack's: it vouches for nothing and is replaced.
    pub fn read(out: &Path) -> Result<Record, Error> {
        let path = out.join(RECORD_FILE);
        let refuse = |why: String| {
            Error::state(
                &path,
                format!(
                    "{why}: not a record of ctstack's crop, so it cannot say which files here \
                     ctstack wrote, and ctstack does not replace it; move it away or choose \
                     another output folder; nothing was written"
                ),
            )
        };
        let bytes = match read_small(&path, "ctstack crop record") {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(Record::empty()),
            Err(e) => return Err(refuse(e.to_string())),
        };
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| refuse(format!("not valid JSON ({e})")))?;
        if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(refuse(format!("no \"format\": \"{FORMAT}\"")));
        }
        match serde_json::from_value::<Record>(value) {
            Ok(record) if record.kind.is(FORMAT, VERSION) => Ok(record),
            _ => Ok(Record::empty()),
        }
    }

    /// The refusal for output `paths` (in folder `out`) that are not
    /// ctstack's, if any: see the module docs for the rule.
    pub fn refuse_foreign(&self, out: &Path, paths: &[PathBuf]) -> Result<(), Error> {
        let foreign: Vec<&PathBuf> = paths.iter().filter(|p| !self.vouches(p)).collect();
        let Some(first) = foreign.first() else {
            return Ok(());
        };
        let name = |p: &PathBuf| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let mut named: Vec<String> = foreign.iter().take(NAMED).map(|p| name(p)).collect();
        if foreign.len() > NAMED {
            named.push(format!("and {} more", foreign.len() - NAMED));
        }
        let count = match foreign.len() {
            1 => format!("{} is at an output name of the crop", name(first)),
            n => format!(
                "{n} files are at output names of the crop ({})",
                named.join(", ")
            ),
        };
        Err(Error::state(
            out,
            format!(
                "{count}, and ctstack did not write {} (ctstack never replaces a file it did not \
                 write): choose another output folder, or move {} away; nothing was written",
                if foreign.len() == 1 { "it" } else { "them" },
                if foreign.len() == 1 { "it" } else { "them" },
            ),
        ))
    }

    /// Whether the entry at `path` is absent or ctstack's crop wrote it.
    fn vouches(&self, path: &Path) -> bool {
        let metadata = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            // No file seen there: nothing to replace (writing fails on its own).
            Err(_) => return true,
        };
        let Some(entry) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| self.files.get(n))
        else {
            return false;
        };
        if !metadata.is_file() {
            return false;
        }
        let now = FileRecord::of(&metadata);
        // The time at the coarser resolution when one side is Windows' (100 ns):
        // a crop recorded on Linux is still ctstack's when seen from Windows.
        if entry.size == Some(now.size)
            && entry.mtime_ns.is_some_and(|t| same_mtime(t, now.mtime_ns))
        {
            return true;
        }
        entry.writing.as_ref().is_some_and(|shape| {
            Slice::read_header(path, &OpenOptions::default()).is_ok_and(|h| {
                (h.width, h.height, h.sample_type.name())
                    == (shape.width, shape.height, shape.sample_type.as_str())
            })
        })
    }

    /// Marks `names` as being written with `shape` (their old entries kept),
    /// drops entries whose file is gone, and saves the record durably in `out`.
    pub fn save_writing(
        &mut self,
        out: &Path,
        names: &[String],
        shape: &Shape,
    ) -> Result<(), Error> {
        self.files
            .retain(|name, entry| entry.writing.is_some() || out.join(name).exists());
        for name in names {
            self.files.entry(name.clone()).or_default().writing = Some(shape.clone());
        }
        self.save(out)
    }

    /// Lists the files written (`written`: name and file), clears the
    /// `writing` marks of `names` (a name not written keeps its old entry, or
    /// none), and saves the record durably in `out`. The caller synced the
    /// files and the folder first.
    pub fn save_written(
        &mut self,
        out: &Path,
        names: &[String],
        written: Vec<(String, FileRecord)>,
    ) -> Result<(), Error> {
        for name in names {
            if let Some(entry) = self.files.get_mut(name) {
                entry.writing = None;
            }
        }
        for (name, file) in written {
            self.files.insert(
                name,
                Entry {
                    size: Some(file.size),
                    mtime_ns: Some(file.mtime_ns),
                    writing: None,
                },
            );
        }
        self.files.retain(|name, entry| {
            // Another crop's marks stay (it may have been killed: its rerun needs them).
            entry.writing.is_some() || (entry.size.is_some() && out.join(name).exists())
        });
        self.save(out)
    }

    fn save(&self, out: &Path) -> Result<(), Error> {
        let bytes = to_bytes(self);
        write_atomically_durable(
            &out.join(RECORD_FILE),
            |file| {
                use std::io::Write;
                file.write_all(&bytes)
            },
            || Ok(()),
        )
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A crop recorded where times are nanoseconds (Linux) is still ctstack's
    /// when the same file's time is read through Windows (100 ns steps), and a
    /// time a whole step away is not.
    #[test]
    fn a_recorded_time_matches_at_windows_resolution() {
        let dir = std::env::temp_dir().join(format!("ctstack-record-ntfs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("slice_0000.tif");
        std::fs::write(&path, b"12345").unwrap();
        // The file's time as Windows keeps it: a whole number of 100 ns steps.
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(1_796_159_193_326_627_600);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(at)
            .unwrap();
        let record = |mtime_ns: i64| {
            let mut record = Record::empty();
            let entry = Entry {
                size: Some(5),
                mtime_ns: Some(mtime_ns),
                writing: None,
            };
            record.files.insert("slice_0000.tif".into(), entry);
            record
        };
        // Recorded on Linux: the same instant with its nanoseconds.
        assert!(record(1_796_159_193_326_627_631).vouches(&path));
        assert!(!record(1_796_159_193_326_627_731).vouches(&path));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
