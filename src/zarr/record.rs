//! The store's record of what it was made from, which lets a rerun of an
//! unchanged, complete store do nothing, as cheaply as a pyramid's rerun.
//!
//! [`RECORD_FILE`] at the store's root lists the inputs as the pyramid's
//! manifest does (name, page, size, modification time, shape, sample type:
//! `pyramid::manifest::InputRecord`, the same rule and its same blind spot, a
//! rewrite that keeps both size and time) and every chunk (shard) file of every
//! level as written (size and time: `FileRecord`). It is written last, after
//! the root group's metadata that declares the store complete, and removed
//! first, before the store is withdrawn for a chunk that changes
//! (`store.rs`): a record on disk always describes a complete store.
//!
//! A run skips all work when the record's inputs are the inputs now, every
//! level's metadata and the root group's are exactly what this plan would write
//! (so the layout, codecs, voxel size and every other option match), and every
//! chunk file is still the one recorded. Otherwise it runs as without a record,
//! comparing what it encodes with what is there, and writes a new record.
//!
//! A distributed build (`prepare`, slabs, `finish`) has its `finish` write the
//! record: the inputs as the build's identity names them (each slab and the
//! finish checked that they are the ones its `prepare` saw), and the chunks
//! the finish checked. Its `prepare` keeps the chunks of a store whose record
//! names its very inputs, and removes them otherwise (`mod.rs`, "One writer
//! at a time"), so its reruns of its own finished store rewrite no chunk that
//! holds what they encode.
//!
//! The record also names the folder that held the inputs (`folder`, absolute),
//! so that `ctstack info` and `ctstack.open` can tell whether a store is still
//! current wherever it was written (`--out`): the run itself does not use it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::store::holds;
use crate::Error;
use crate::pyramid::manifest::{FileRecord, InputRecord, RecordKind, read_small, to_bytes};
use crate::writer::write_atomically_durable;

/// The record's file name, at the store's root.
pub(crate) const RECORD_FILE: &str = "ctstack-inputs.json";

/// The `format` field: says the file is ctstack's record of a store.
const FORMAT: &str = "ctstack-zarr-inputs";

/// The `version` field: a record of another version is ignored.
const VERSION: u32 = 1;

/// What the record holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Record {
    #[serde(flatten)]
    kind: RecordKind,
    /// The folder that held the inputs when the store was written, absolute
    /// (absent when the path is not UTF-8, or in a record written before it
    /// was kept): where `ctstack info` looks for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    /// The inputs, in stack order.
    pub inputs: Vec<InputRecord>,
    /// Every chunk (shard) file of every level by its key (`0/c/0/0/0`), as written.
    pub chunks: BTreeMap<String, FileRecord>,
}

impl Record {
    /// A record of `inputs`, the files of `folder` (absolute), and the chunk
    /// files `chunks` (key, path) as they are now.
    pub fn of(
        folder: Option<String>,
        inputs: Vec<InputRecord>,
        chunks: &[(String, PathBuf)],
    ) -> Result<Record, Error> {
        let chunks = chunks
            .iter()
            .map(|(key, path)| {
                let metadata =
                    std::fs::metadata(path).map_err(|e| Error::io(path, "cannot inspect", e))?;
                Ok((key.clone(), FileRecord::of(&metadata)))
            })
            .collect::<Result<_, Error>>()?;
        Ok(Record {
            kind: RecordKind::new(FORMAT, VERSION),
            folder,
            inputs,
            chunks,
        })
    }

    /// The record of the store at `root`, if there is one ctstack can trust
    /// (a file of another format or version, unreadable or malformed, is none:
    /// the run then compares everything, and replaces it).
    pub fn read(root: &Path) -> Option<Record> {
        let bytes = read_small(&root.join(RECORD_FILE), "ctstack store record").ok()??;
        let record: Record = serde_json::from_slice(&bytes).ok()?;
        record.kind.is(FORMAT, VERSION).then_some(record)
    }

    /// Writes the record at `root`, atomically and durably, unless the file
    /// already holds it.
    pub fn write(&self, root: &Path) -> Result<(), Error> {
        let bytes = to_bytes(self);
        let path = root.join(RECORD_FILE);
        if holds(&path, &bytes) {
            return Ok(());
        }
        write_atomically_durable(
            &path,
            |file| {
                use std::io::Write;
                file.write_all(&bytes)
            },
            || Ok(()),
        )?;
        Ok(())
    }

    /// Whether the record lists exactly the chunk files `chunks` (key, path),
    /// each still the file recorded.
    pub fn vouches_for(&self, chunks: &[(String, PathBuf)]) -> bool {
        self.chunks.len() == chunks.len()
            && chunks.iter().all(|(key, path)| {
                self.chunks
                    .get(key)
                    .is_some_and(|recorded| recorded.matches(path))
            })
    }
}
