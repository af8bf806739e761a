//! Reading a built pyramid back, from its manifest (not from folder names: a
//! folder may hold stale or foreign files, the manifest says which are outputs).

use std::path::{Path, PathBuf};

use super::manifest::{InputRecord, Manifest, sample_type_named};
use super::plan::{LevelShape, output_name};
use crate::stack::SliceRef;
use crate::{Error, OpenOptions, Sample, SampleType, Slice};

/// One level of a built pyramid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PyramidLevel {
    /// The level: 1 is the first halving of the input.
    pub k: usize,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Number of slices.
    pub count: usize,
    /// The sample type.
    pub sample_type: SampleType,
}

impl PyramidLevel {
    /// Samples in the whole level: count x height x width.
    pub fn samples(&self) -> Option<usize> {
        self.count
            .checked_mul(self.height as usize)?
            .checked_mul(self.width as usize)
    }
}

/// A pyramid built by [`Plan::run`](crate::Plan::run), opened for reading.
///
/// ```no_run
/// use ctstack::Pyramid;
///
/// let pyramid = Pyramid::open("scan/.thumbnail")?;
/// let smallest = *pyramid.levels().last().expect("at least one level");
/// // One contiguous (count, height, width) volume, e.g. for a 3-D view.
/// let volume: Vec<u16> = pyramid.read_level(smallest.k)?;
/// # Ok::<(), ctstack::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Pyramid {
    dir: PathBuf,
    manifest: Manifest,
    levels: Vec<PyramidLevel>,
}

impl Pyramid {
    /// Opens the pyramid in output folder `dir` by its manifest.
    ///
    /// Errors: no manifest ([`Error::State`]: no pyramid there), one that is not
    /// a valid ctstack manifest ([`Error::Format`]), or a pyramid whose last run
    /// did not finish ([`Error::State`]: build it again to complete it).
    pub fn open(dir: impl AsRef<Path>) -> Result<Pyramid, Error> {
        let dir = dir.as_ref();
        let Some((manifest, _)) = Manifest::read(dir)? else {
            return Err(Error::state(
                dir.join(super::MANIFEST_FILE),
                "no pyramid manifest: no pyramid was built here (or not by this version of \
                 ctstack)",
            ));
        };
        if !manifest.is_complete() {
            return Err(Error::state(
                dir,
                "the pyramid is incomplete (its last build did not finish): build it again",
            ));
        }
        let sample_type =
            sample_type_named(&manifest.sample_type).ok_or_else(|| Error::Unsupported {
                path: dir.join(super::MANIFEST_FILE),
                what: format!("sample type {:?}", manifest.sample_type),
            })?;
        let levels = manifest
            .levels
            .iter()
            .map(|level| PyramidLevel {
                k: level.k,
                width: level.width,
                height: level.height,
                count: level.count,
                sample_type,
            })
            .collect();
        Ok(Pyramid {
            dir: dir.to_path_buf(),
            manifest,
            levels,
        })
    }

    /// Opens the pyramid in `dir` for a caller that reads its files in place of
    /// the stack's slices (a crop at level k): it must have been built from
    /// exactly `inputs` as they are now (names, pages, sizes, modification
    /// times: the resume rule), of `shape` and `sample_type`, and be complete.
    /// Every such error says to build the pyramid.
    pub(crate) fn open_built_from(
        dir: &Path,
        inputs: &[SliceRef],
        shape: LevelShape,
        sample_type: SampleType,
    ) -> Result<Pyramid, Error> {
        let build = "build it with PyramidBuilder first";
        let manifest = match Manifest::read(dir) {
            Ok(Some((manifest, _))) => manifest,
            Ok(None) => {
                return Err(Error::state(
                    dir,
                    format!("no pyramid there (no {}): {build}", super::MANIFEST_FILE),
                ));
            }
            // The manifest's own error names it; rebuilding writes a good one.
            Err(e) => {
                return Err(Error::state(
                    dir,
                    format!("the pyramid's manifest cannot be used ({e}): {build} again"),
                ));
            }
        };
        let now = InputRecord::stat_all(inputs, shape, sample_type)?;
        if !super::manifest::same_inputs(&manifest.inputs, &now) {
            let first_change = manifest
                .inputs
                .iter()
                .zip(&now)
                .position(|(a, b)| !a.same_as(b))
                .unwrap_or(manifest.inputs.len().min(now.len()));
            let what = match now.get(first_change) {
                _ if manifest.inputs.len() != now.len() => format!(
                    "it was built from {}, the stack has {} now",
                    match manifest.inputs.len() {
                        1 => "1 slice".to_string(),
                        n => format!("{n} slices"),
                    },
                    now.len()
                ),
                Some(input) => format!(
                    "slice {first_change} ({}) changed since it was built",
                    input.name
                ),
                None => "its inputs changed".into(),
            };
            return Err(Error::state(
                dir,
                format!("the pyramid is stale: {what}: {build} again"),
            ));
        }
        if !manifest.is_complete() {
            return Err(Error::state(
                dir,
                format!("the pyramid is incomplete (its last build did not finish): {build} again"),
            ));
        }
        Pyramid::open(dir)
    }

    /// The file of level-`k` slice `j`, checked to be the one the manifest lists
    /// (same size and modification time).
    pub(crate) fn checked_slice_path(&self, k: usize, j: usize) -> Result<PathBuf, Error> {
        let path = self.slice_path(k, j);
        if !self.manifest.file(k, j).is_some_and(|f| f.matches(&path)) {
            return Err(Error::state(
                path,
                "not the file ctstack wrote for this pyramid (changed or removed since): \
                 build the pyramid again",
            ));
        }
        Ok(path)
    }

    /// The output folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Levels 1 ..= L, largest first (empty if the input was already small).
    pub fn levels(&self) -> &[PyramidLevel] {
        &self.levels
    }

    /// Level `k` (1 ..= L).
    pub fn level(&self, k: usize) -> Result<PyramidLevel, Error> {
        k.checked_sub(1)
            .and_then(|i| self.levels.get(i))
            .copied()
            .ok_or_else(|| {
                Error::usage(format!(
                    "{}: no level {k} (the pyramid has levels 1 to {})",
                    self.dir.display(),
                    self.levels.len()
                ))
            })
    }

    /// The file of level-`k` slice `j`.
    pub fn slice_path(&self, k: usize, j: usize) -> PathBuf {
        self.dir.join(k.to_string()).join(output_name(j))
    }

    /// Reads level `k` as one contiguous (count, height, width) volume into a new
    /// buffer. `T` must match the level's depth.
    pub fn read_level<T: Sample>(&self, k: usize) -> Result<Vec<T>, Error> {
        let level = self.level(k)?;
        // Each file must exist with room for its slice before anything is
        // allocated: the manifest's figures alone are not trusted with memory.
        let plane_bytes = u64::from(level.width) * u64::from(level.height) * T::TYPE.bytes() as u64;
        for j in 0..level.count {
            let path = self.slice_path(k, j);
            let len = std::fs::metadata(&path)
                .map_err(|e| Error::io(&path, "cannot open", e))?
                .len();
            if len < plane_bytes {
                return Err(self.changed(&path));
            }
        }
        let samples = level.samples().ok_or_else(|| Error::LimitsExceeded {
            path: self.dir.clone(),
            what: format!("level {k} is too large for this machine's address space"),
        })?;
        let mut volume = vec![T::default(); samples];
        self.read_level_into(k, &mut volume)?;
        Ok(volume)
    }

    /// Reads level `k` into `dst`, which must hold exactly count x height x width
    /// samples of the level's depth ([`Error::Mismatch`] otherwise): slice `j` at
    /// `dst[j * height * width ..]`, row-major.
    pub fn read_level_into<T: Sample>(&self, k: usize, dst: &mut [T]) -> Result<(), Error> {
        let level = self.level(k)?;
        if T::TYPE != level.sample_type {
            return Err(Error::mismatch(format!(
                "{}: level {k} is {}, asked for {} samples",
                self.dir.display(),
                level.sample_type,
                T::TYPE
            )));
        }
        let plane = level.width as usize * level.height as usize;
        if level.samples() != Some(dst.len()) {
            return Err(Error::mismatch(format!(
                "{}: destination holds {} samples, level {k} ({} x {}x{}) has {}",
                self.dir.display(),
                dst.len(),
                level.count,
                level.width,
                level.height,
                level.count as u128 * plane as u128
            )));
        }
        for (j, out) in dst.chunks_exact_mut(plane.max(1)).enumerate() {
            let path = self.slice_path(k, j);
            let recorded = self.manifest.file(k, j);
            if !recorded.is_some_and(|file| file.matches(&path)) {
                return Err(self.changed(&path));
            }
            let slice = Slice::open_with(&path, &OpenOptions::default())?;
            if (slice.width(), slice.height()) != (level.width, level.height) {
                return Err(self.changed(&path));
            }
            slice.copy_to(out)?;
        }
        Ok(())
    }

    fn changed(&self, path: &Path) -> Error {
        Error::state(
            path,
            "not the file ctstack wrote for this pyramid (changed or removed since): build it again",
        )
    }
}
