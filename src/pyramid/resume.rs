//! Before a run: which outputs are kept and which are rebuilt (by the manifest
//! and the dependency rule), and clearing what the plan no longer contains.

use std::path::Path;

use super::manifest::{
    FORMAT, FileRecord, InputRecord, Journal, Leftover, MANIFEST_FILE, Manifest,
};
use super::plan::{Plan, inputs_of, output_name};
use crate::temp::{Reach, is_temp_name, sweep as sweep_temps};
use crate::writer::{remove_empty_dir, remove_file};
use crate::{Error, Format, OpenOptions, Slice};

/// For every output slice of the plan: kept as it is, or (re)built.
#[derive(Debug, Clone)]
pub(crate) struct KeepTable {
    /// `keep[k][j]` for levels k >= 1; `keep[0]` is empty.
    keep: Vec<Vec<bool>>,
}

impl KeepTable {
    /// The table where `keep(k, j)` says whether level-`k` slice `j` is kept.
    pub fn from_fn(plan: &Plan, mut keep: impl FnMut(usize, usize) -> bool) -> KeepTable {
        let mut table = vec![Vec::new()];
        for k in 1..plan.levels.len() {
            table.push((0..plan.levels[k].count).map(|j| keep(k, j)).collect());
        }
        KeepTable { keep: table }
    }

    /// Whether level-`k` slice `j` is kept.
    pub fn keep(&self, k: usize, j: usize) -> bool {
        self.keep[k][j]
    }

    /// Whether level-`k` slice `j`'s pixels are needed: it is an input of a slice
    /// of level `k + 1` that is rebuilt. (A kept slice then has to be read back.)
    pub fn needed(&self, k: usize, j: usize) -> bool {
        self.keep.get(k + 1).is_some_and(|up| !up[j / 2])
    }
}

/// What [`reconcile`] decided and did.
pub(crate) struct Reconciled {
    pub keep: KeepTable,
    /// Stale outputs removed.
    pub removed: usize,
    /// Unexpected files left in place, a manifest not trusted, ...
    pub warnings: Vec<String>,
    /// The run's manifest: the kept outputs listed, the rebuilt ones not yet.
    pub journal: Journal,
}

/// Decides what to keep (see [`Plan::run`] for the rule), removes the outputs the
/// old manifest lists that the plan does not contain, removes temporary files of
/// killed runs, and reports files in level folders that are not outputs. The
/// caller holds the output folder's lock.
///
/// Errors (nothing changed then): a manifest file that is not ctstack's
/// ([`read_old`]), a file at an output name to rebuild that ctstack did not
/// write ([`refuse_foreign_outputs`]).
pub(crate) fn reconcile(
    plan: &Plan,
    inputs: Vec<InputRecord>,
    force: bool,
) -> Result<Reconciled, Error> {
    let out = plan.output_dir();
    let mut warnings = Vec::new();
    let (old, saved) = read_old(out, &mut warnings)?;
    let mut draft = Manifest::empty(plan, inputs);
    let keep = decide(plan, old.as_ref().filter(|_| !force), &mut draft);
    let all = 0..plan.levels[0].count;
    refuse_foreign_outputs(plan, &keep, all, |k, j| {
        old.as_ref().and_then(|old| old.file(k, j))
    })?;
    let removed = match &old {
        Some(old) => remove_stale(plan, old, &mut draft, &mut warnings),
        None => 0,
    };
    sweep(plan, &draft, &mut warnings);
    Ok(Reconciled {
        keep,
        removed,
        warnings,
        journal: Journal::new(out, draft, saved),
    })
}

/// The manifest of output folder `out` and its bytes, if there is one to
/// trust.
///
/// A manifest ctstack cannot trust is one of two things. If it is ctstack's
/// (JSON whose `format` is ctstack's: another version, or damaged), it
/// vouches for nothing: treated as absent and replaced, with a warning. If it
/// is not (not JSON, another format, too large, unreadable), it proves
/// nothing, and ctstack does not replace a file it did not write: an
/// [`Error::State`] saying to move it away or choose another output folder.
pub(super) fn read_old(
    out: &Path,
    warnings: &mut Vec<String>,
) -> Result<(Option<Manifest>, Option<Vec<u8>>), Error> {
    match Manifest::read(out) {
        Ok(Some((manifest, bytes))) => Ok((Some(manifest), Some(bytes))),
        Ok(None) => Ok((None, None)),
        Err(e) if is_ctstack_document(&out.join(MANIFEST_FILE), FORMAT) => {
            warnings.push(format!(
                "{e}: treated as absent (nothing kept, nothing removed)"
            ));
            Ok((None, None))
        }
        Err(e) => Err(Error::state(
            out.join(MANIFEST_FILE),
            format!(
                "not a ctstack manifest ({}), so it cannot say which files here ctstack \
                 wrote, and ctstack does not replace it: move it away (ctstack then rebuilds \
                 the pyramid, taking over only files that are an earlier pyramid of this \
                 stack) or choose another output folder; nothing was written",
                e.to_string()
                    .strip_prefix(&format!("{}: ", out.join(MANIFEST_FILE).display()))
                    .unwrap_or(&e.to_string())
            ),
        )),
    }
}

/// Whether the small file `path` is JSON whose `format` field is `format`:
/// a record of ctstack's own (of any version), replaceable by ctstack.
pub(super) fn is_ctstack_document(path: &Path, format: &str) -> bool {
    let Ok(Some(bytes)) = super::manifest::read_small(path, "ctstack record") else {
        return false;
    };
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .is_ok_and(|v| v.get("format").and_then(|f| f.as_str()) == Some(format))
}

/// How many files a refusal names (then a count).
const NAMED: usize = 3;

/// Refuses the run ([`Error::State`], before anything is written) if a file
/// at the name of an output it would write (level-`k` slice `j` depending on
/// inputs `span`, not kept) is not ctstack's to replace.
///
/// ctstack never replaces a file it did not write. A file at a planned name
/// is replaced only if
/// - `listed(k, j)` (the old manifest, or a slab's own record) lists it and
///   it is unchanged since (same size and modification time): ctstack wrote it;
/// - or it is recognisably an earlier pyramid of this stack: a TIFF that
///   parses, of the planned level's width, height and sample type. This is
///   the takeover of CTHarvester's own thumbnails (a `.thumbnail` folder
///   CTHarvester made holds its levels under the same names), which the
///   drop-in exists to replace, and of the outputs of an earlier ctstack run
///   whose manifest is gone;
/// - or it holds nothing: empty, or only zero bytes (what a power loss can
///   leave of an output renamed into place before its data reached the disk;
///   the manifest never lists such a file).
///
/// Anything else (another image, another size, a folder, a link) refuses the
/// run, naming the first files and their count.
pub(super) fn refuse_foreign_outputs<'a>(
    plan: &Plan,
    keep: &KeepTable,
    span: std::ops::Range<usize>,
    listed: impl Fn(usize, usize) -> Option<&'a FileRecord>,
) -> Result<(), Error> {
    let out = plan.output_dir();
    let mut foreign = Vec::new();
    for k in 1..plan.levels.len() {
        let shape = plan.levels[k];
        let slices = span.start >> k..span.end.div_ceil(1 << k).min(shape.count);
        for j in slices {
            if keep.keep(k, j) {
                continue;
            }
            let path = plan.output_path(k, j);
            let replaceable = match std::fs::symlink_metadata(&path) {
                // No file seen there: nothing to replace (writing there fails
                // with its own error: a level folder's name taken by a file).
                Err(_) => true,
                Ok(m) if !m.is_file() => false,
                Ok(m) => {
                    listed(k, j).is_some_and(|file| *file == FileRecord::of(&m))
                        || earlier_level_slice(&path, shape.width, shape.height, plan)
                        || holds_nothing(&path, m.len())
                }
            };
            if !replaceable {
                foreign.push(format!("{k}/{}", output_name(j)));
            }
        }
    }
    let Some(first) = foreign.first() else {
        return Ok(());
    };
    let it = if foreign.len() == 1 { "it" } else { "them" };
    let what = match foreign.len() {
        1 => format!("{first} is at an output name of the pyramid"),
        n => {
            let mut named: Vec<String> = foreign.iter().take(NAMED).cloned().collect();
            if n > NAMED {
                named.push(format!("and {} more", n - NAMED));
            }
            format!(
                "{n} files are at output names of the pyramid ({})",
                named.join(", ")
            )
        }
    };
    Err(Error::state(
        out,
        format!(
            "{what}, and ctstack did not write {it}, nor {is} an earlier pyramid of this \
             stack (a TIFF of the level's width, height and sample type); ctstack never \
             replaces a file it did not write: choose another output folder, or move {it} \
             away; nothing was written",
            is = if foreign.len() == 1 {
                "is it"
            } else {
                "are they"
            },
        ),
    ))
}

/// Whether `path` is a TIFF of `width` x `height` samples of the plan's type.
fn earlier_level_slice(path: &Path, width: u32, height: u32, plan: &Plan) -> bool {
    Slice::read_header(path, &OpenOptions::default()).is_ok_and(|h| {
        h.format == Format::Tiff
            && (h.width, h.height, h.sample_type) == (width, height, plan.sample_type)
    })
}

/// Whether the file at `path` (`len` bytes) is empty or holds only zero bytes.
fn holds_nothing(path: &Path, len: u64) -> bool {
    use std::io::Read;
    if len == 0 {
        return true;
    }
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) if buf[..n].iter().all(|&b| b == 0) => {}
            _ => return false,
        }
    }
}

/// The keep table, listing every kept output in `draft`.
fn decide(plan: &Plan, old: Option<&Manifest>, draft: &mut Manifest) -> KeepTable {
    KeepTable::from_fn(plan, |k, j| {
        let Some(old) = old.filter(|old| still_valid(plan, old, draft, k, j)) else {
            return false;
        };
        if let Some(file) = old.file(k, j) {
            draft.set_file(k, j, file.clone());
        }
        true
    })
}

/// Whether the old manifest's level-`k` slice `j` is what the plan would make now.
fn still_valid(plan: &Plan, old: &Manifest, now: &Manifest, k: usize, j: usize) -> bool {
    manifest_vouches(
        plan,
        old,
        k,
        j,
        &now.inputs[inputs_of(k, j, now.inputs.len())],
    )
}

/// Whether `old` lists level-`k` slice `j` as made from `now` (the inputs it
/// depends on now), at the plan's level shape and sample type, and the file is
/// still that one and parses as such.
pub(super) fn manifest_vouches(
    plan: &Plan,
    old: &Manifest,
    k: usize,
    j: usize,
    now: &[InputRecord],
) -> bool {
    let (Some(file), Some(level)) = (old.file(k, j), old.level(k)) else {
        return false;
    };
    let shape = plan.levels[k];
    let path = plan.output_path(k, j);
    old.inputs
        .get(inputs_of(k, j, old.inputs.len()))
        .is_some_and(|then| super::manifest::same_inputs(then, now))
        && (level.width, level.height) == (shape.width, shape.height)
        && old.sample_type == plan.sample_type.name()
        && file.matches(&path)
        && Slice::read_header(&path, &OpenOptions::default()).is_ok_and(|h| {
            (h.width, h.height, h.sample_type) == (shape.width, shape.height, plan.sample_type)
        })
}

/// Removes the outputs `old` lists that the plan does not contain (its levels'
/// files and its leftovers), if they are still the files ctstack wrote; returns
/// how many. One that cannot be removed is listed in `draft`'s leftovers, so the
/// next run tries again. Level folders left empty beyond the plan's levels go too.
pub(super) fn remove_stale(
    plan: &Plan,
    old: &Manifest,
    draft: &mut Manifest,
    warnings: &mut Vec<String>,
) -> usize {
    let listed = old.levels.iter().flat_map(|level| {
        let planned = plan.levels.get(level.k).map_or(0, |shape| shape.count);
        let files = level.files.iter().enumerate().skip(planned);
        files.filter_map(|(j, file)| Some((level.k, j, file.as_ref()?)))
    });
    let leftovers = old.leftovers.iter().map(|l| (l.k, l.j, &l.file));
    let mut removed = 0;
    for (k, j, file) in listed.chain(leftovers) {
        if plan.levels.get(k).is_some_and(|shape| j < shape.count) {
            continue; // an output of this plan again: rebuilt or kept, not removed
        }
        let path = plan.output_path(k, j);
        if !file.matches(&path) {
            if path.exists() {
                warnings.push(format!(
                    "{}: changed since ctstack wrote it: left in place",
                    path.display()
                ));
            }
            continue;
        }
        match remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                warnings.push(format!(
                    "{}: cannot remove (the next run tries again): {e}",
                    path.display()
                ));
                let file = file.clone();
                draft.leftovers.push(Leftover { k, j, file });
            }
        }
    }
    let old_levels = old.levels.iter().map(|level| level.k);
    for k in old_levels.chain(old.leftovers.iter().map(|l| l.k)) {
        if k >= plan.levels.len() {
            // Succeeds only if nothing else is in it.
            let _ = remove_empty_dir(&plan.output_dir().join(k.to_string()));
        }
    }
    removed
}

/// Removes temporary files of killed runs from the output folder and its level
/// folders (ours by their names: a temporary name of the manifest or a slab
/// record at the top, of an output name in a level folder; any other file is
/// someone else's), and reports the files of level folders that are neither
/// outputs of the plan nor `draft`'s leftovers: they are left in place.
pub(super) fn sweep(plan: &Plan, draft: &Manifest, warnings: &mut Vec<String>) {
    let out = plan.output_dir();
    // Failures are left for the next run's sweep.
    let _ = sweep_temps(out, Reach::Folder, |target| {
        target == MANIFEST_FILE || super::slab::is_record_name(target)
    });
    let Ok(entries) = std::fs::read_dir(out) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(k) = canonical_index(&name) else {
            continue;
        };
        if k == 0 || !entry.path().is_dir() {
            continue;
        }
        let _ = sweep_temps(&entry.path(), Reach::Folder, |target| {
            target
                .strip_suffix(".tif")
                .and_then(canonical_output)
                .is_some()
        });
        let count = plan.levels.get(k).map_or(0, |shape| shape.count);
        let mut unexpected: Vec<String> = std::fs::read_dir(entry.path())
            .into_iter()
            .flatten()
            .flatten()
            .map(|f| f.file_name().to_string_lossy().into_owned())
            .filter(|f| {
                let planned = f
                    .strip_suffix(".tif")
                    .and_then(canonical_output)
                    .is_some_and(|j| j < count);
                let leftover = (draft.leftovers.iter()).any(|l| l.k == k && output_name(l.j) == *f);
                !planned && !leftover && !is_temp_name(f)
            })
            .collect();
        if !unexpected.is_empty() {
            unexpected.sort();
            let first = &unexpected[0];
            warnings.push(format!(
                "{}: {} not written by ctstack for this pyramid, left in place ({first}{})",
                entry.path().display(),
                if unexpected.len() == 1 {
                    "1 file".to_string()
                } else {
                    format!("{} files", unexpected.len())
                },
                if unexpected.len() > 1 { ", ..." } else { "" }
            ));
        }
    }
}

/// `k` if `name` is exactly `k.to_string()`.
fn canonical_index(name: &str) -> Option<usize> {
    name.parse::<usize>().ok().filter(|k| k.to_string() == name)
}

/// `j` if `stem` is exactly the stem of [`output_name`]`(j)`.
fn canonical_output(stem: &str) -> Option<usize> {
    stem.parse::<usize>()
        .ok()
        .filter(|&j| output_name(j).strip_suffix(".tif") == Some(stem))
}

/// A usage error if an input slice is in a level folder of the output folder
/// (`ctstack pyramid OUT/1 --out OUT`, or a level folder that is a link to the
/// inputs' folder): its outputs would replace the inputs, and stale-output
/// removal could delete them.
pub(super) fn refuse_inputs_in_level_folders(plan: &Plan) -> Result<(), Error> {
    let Ok(entries) = std::fs::read_dir(plan.output_dir()) else {
        return Ok(()); // not there yet: nothing can be inside it
    };
    let mut folders: Vec<&Path> = plan
        .inputs()
        .iter()
        .filter_map(|s| s.path.parent())
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .collect();
    folders.dedup();
    let inputs: Vec<(&Path, std::path::PathBuf)> = folders
        .into_iter()
        .filter_map(|f| Some((f, std::fs::canonicalize(f).ok()?)))
        .collect();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(k) = name.to_str().and_then(canonical_index).filter(|&k| k >= 1) else {
            continue;
        };
        let Ok(level) = std::fs::canonicalize(entry.path()) else {
            continue;
        };
        if let Some((folder, _)) = inputs.iter().find(|(_, c)| c.starts_with(&level)) {
            return Err(Error::usage(format!(
                "{}: the inputs are inside level folder {k} of the output folder {}, where \
                 ctstack writes and removes level-{k} slices: choose an output folder that \
                 does not contain them",
                folder.display(),
                plan.output_dir().display()
            )));
        }
    }
    Ok(())
}
