//! The pyramid as an OME-Zarr multiscale image (feature `ome-zarr`).
//!
//! Level 0 is the input stack, levels 1 ..= L the pyramid's levels, made by the
//! same cascade as the TIFF pyramid (so sample for sample the same: same
//! kernels, rounding, shapes and `min_size` rule), handed slice by slice to the
//! Zarr writer (`sink.rs`) instead of the TIFF writer. One array per level, at
//! `<store>/<k>`, axes z y x.
//!
//! # The store, and interrupted runs
//!
//! - Every file (chunk, shard, metadata) appears atomically (temporary name,
//!   then rename), and a file that already holds the bytes a run would write is
//!   not written again (`store.rs`).
//! - The root group's OME metadata (`multiscales`) is written last, after every
//!   chunk of every level is on disk: a store that has it is complete. Until
//!   then the root group carries only ctstack's attribute (`"complete":
//!   false`), by which a rerun recognises its own store and finishes it.
//! - A folder that is neither empty nor a ctstack store is never overwritten or
//!   deleted unless [`ZarrBuilder::force`] says so.
//!
//! # Memory
//!
//! One band of `D` slices per level, `D` the chunk depth (the shard depth when
//! sharded): `D * W * H * b * 4 / 3` bytes at most for a `W` x `H` stack of
//! `b`-byte samples, plus the cascade's few slices per level. Flat in the
//! stack's depth.

mod metadata;
mod resolution;
mod sink;
mod store;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ome_zarr_metadata::v0_4::AxisUnitSpace;
use zarrs::array::{Array, ArrayMetadataOptions};

use self::metadata::{array_metadata, complete_attributes, ctstack_attributes, group_files};
use self::sink::ZarrSink;
use self::store::{AtomicFolder, sweep_temps};
use crate::pyramid::{self, LevelShape, Plan};
use crate::{CancelFlag, Error, PyramidBuilder, SampleType};

/// The default chunk: 16 slices of 256 x 256 (z, y, x). 1 MiB of u8, 2 MiB of
/// u16/i16, 4 MiB of f32: large enough that a filesystem or object store
/// serves it at streaming speed, small enough that a viewer browsing slices
/// reads 16 planes of one 256 x 256 tile, not of the whole slice, and that a
/// 3-D viewer's coarse levels come in few requests. The depth is also what the
/// writer holds per level (see the module docs): 16 slices, not 64 or 128.
pub const DEFAULT_CHUNKS: [u32; 3] = [16, 256, 256];

/// The OME-Zarr (NGFF) version written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Ngff {
    /// OME-NGFF 0.4 on Zarr v2: what Fiji/MoBIE/BigDataViewer read today.
    V0_4,
    /// OME-Zarr 0.5 on Zarr v3 (the default); allows sharding.
    #[default]
    V0_5,
}

impl Ngff {
    /// `"0.4"` or `"0.5"`.
    pub fn name(self) -> &'static str {
        match self {
            Ngff::V0_4 => "0.4",
            Ngff::V0_5 => "0.5",
        }
    }

    /// The version called `name` (`"0.4"`, `"0.5"`).
    pub fn from_name(name: &str) -> Option<Ngff> {
        match name {
            "0.4" => Some(Ngff::V0_4),
            "0.5" => Some(Ngff::V0_5),
            _ => None,
        }
    }
}

/// How chunks are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChunkCompression {
    /// Stored as they are.
    None,
    /// Zstandard at this level (-7 ..= 22).
    Zstd(i32),
}

impl Default for ChunkCompression {
    /// Zstandard level 3 (zstd's own default).
    fn default() -> Self {
        ChunkCompression::Zstd(3)
    }
}

impl std::str::FromStr for ChunkCompression {
    type Err = Error;

    /// `none`, `zstd` (level 3) or `zstd:LEVEL`.
    fn from_str(text: &str) -> Result<ChunkCompression, Error> {
        let bad = || {
            Error::usage(format!(
                "compression {text:?}: expected none, zstd or zstd:LEVEL (-7 ..= 22)"
            ))
        };
        match text.split_once(':') {
            None if text == "none" => Ok(ChunkCompression::None),
            None if text == "zstd" => Ok(ChunkCompression::default()),
            Some(("zstd", level)) => level
                .parse::<i32>()
                .ok()
                .filter(|l| (-7..=22).contains(l))
                .map(ChunkCompression::Zstd)
                .ok_or_else(bad),
            _ => Err(bad()),
        }
    }
}

/// Builds an OME-Zarr multiscale image from a stack of slices: the inputs and
/// the levels as a [`PyramidBuilder`] says (its output folder and `force` are
/// not used), the store's layout as set here.
///
/// ```no_run
/// use ctstack::{PyramidBuilder, ZarrBuilder};
///
/// let plan = ZarrBuilder::new(PyramidBuilder::from_dir("scan")?, "scan.ome.zarr")
///     .voxel_size([0.5, 0.5, 0.5])
///     .plan()?;
/// let summary = plan.run(&mut |done, total| eprintln!("{done}/{total}"), &Default::default())?;
/// println!("{} files written, {} already there", summary.written, summary.unchanged);
/// # Ok::<(), ctstack::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ZarrBuilder {
    pyramid: PyramidBuilder,
    store: PathBuf,
    ngff: Ngff,
    chunks: [u32; 3],
    shard: Option<[u32; 3]>,
    compression: ChunkCompression,
    voxel_size: Option<[f64; 3]>,
    unit: String,
    force: bool,
}

impl ZarrBuilder {
    /// The stack `pyramid` picks, written to the store folder `store`.
    pub fn new(pyramid: PyramidBuilder, store: impl Into<PathBuf>) -> ZarrBuilder {
        ZarrBuilder {
            pyramid,
            store: store.into(),
            ngff: Ngff::default(),
            chunks: DEFAULT_CHUNKS,
            shard: None,
            compression: ChunkCompression::default(),
            voxel_size: None,
            unit: "micrometer".into(),
            force: false,
        }
    }

    /// OME-Zarr 0.5 on Zarr v3 (default) or 0.4 on Zarr v2.
    pub fn ngff(mut self, ngff: Ngff) -> Self {
        self.ngff = ngff;
        self
    }

    /// Chunk shape z, y, x (default [`DEFAULT_CHUNKS`]), the same at every
    /// level; a dimension larger than the stack's is cut to it.
    pub fn chunks(mut self, chunks: [u32; 3]) -> Self {
        self.chunks = chunks;
        self
    }

    /// Shard shape z, y, x, each a multiple of the chunk's (v3 only; default
    /// none); cut, as chunks are, to whole chunks covering the stack.
    pub fn shard(mut self, shard: Option<[u32; 3]>) -> Self {
        self.shard = shard;
        self
    }

    /// Chunk compression (default zstd level 3).
    pub fn compression(mut self, compression: ChunkCompression) -> Self {
        self.compression = compression;
        self
    }

    /// Level 0's voxel size z, y, x in [`ZarrBuilder::unit`]s (default 1, 1, 1).
    pub fn voxel_size(mut self, voxel_size: [f64; 3]) -> Self {
        self.voxel_size = Some(voxel_size);
        self
    }

    /// The unit of the axes: an NGFF space unit, `micrometer` by default.
    pub fn unit(mut self, unit: impl Into<String>) -> Self {
        self.unit = unit.into();
        self
    }

    /// Replace whatever is at the store's path, even if it is not a ctstack store.
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    /// Checks the options and every input slice's header (as
    /// [`PyramidBuilder::plan`]); writes nothing.
    pub fn plan(&self) -> Result<ZarrPlan, Error> {
        self.plan_with(self.pyramid.plan()?)
    }

    fn plan_with(&self, pyramid: Plan) -> Result<ZarrPlan, Error> {
        if self.chunks.contains(&0) {
            return Err(Error::usage("chunk sizes must be at least 1"));
        }
        // A chunk larger than the stack is cut to it (as other writers do): its
        // padding would only cost memory, time and disk.
        let level0 = pyramid.levels()[0];
        let extent = [
            level0.count as u64,
            level0.height.into(),
            level0.width.into(),
        ];
        let chunks: [u64; 3] = std::array::from_fn(|i| u64::from(self.chunks[i]).min(extent[i]));
        let shard = match (self.shard, self.ngff) {
            (None, _) => None,
            (Some(_), Ngff::V0_4) => {
                return Err(Error::usage(
                    "sharding needs Zarr v3 (OME-Zarr 0.5), not ZarrBuilder::ngff(Ngff::V0_4): \
                     drop the shard (ZarrBuilder::shard(None))",
                ));
            }
            (Some(shard), Ngff::V0_5) => {
                let shard = shard.map(u64::from);
                if shard
                    .iter()
                    .zip(&chunks)
                    .any(|(&s, &c)| s == 0 || s % c != 0)
                {
                    return Err(Error::usage(format!(
                        "shard {shard:?} must be a whole multiple of the chunk {chunks:?} in \
                         every dimension"
                    )));
                }
                // Cut as the chunk is, to whole chunks covering the stack.
                Some(std::array::from_fn(|i| {
                    shard[i].min(extent[i].div_ceil(chunks[i]) * chunks[i])
                }))
            }
        };
        let grid = shard.unwrap_or(chunks);
        // One encoded chunk or shard must fit in memory and in zarrs' sizes.
        let sample = pyramid.sample_type().bytes() as u64;
        let grid_bytes = grid.iter().try_fold(sample, |a, &n| a.checked_mul(n));
        if grid_bytes.is_none_or(|n| n > MAX_GRID_BYTES) {
            return Err(Error::usage(format!(
                "a {grid:?} chunk or shard of {} samples is more than {} GiB",
                pyramid.sample_type(),
                MAX_GRID_BYTES >> 30
            )));
        }
        // The writer holds one band of `D` slices per level (see the module docs).
        let band = (grid[0].min(level0.count as u64))
            .checked_mul(u64::from(level0.width) * u64::from(level0.height) * sample);
        if band.is_none_or(|n| n > MAX_BAND_BYTES) {
            return Err(Error::usage(format!(
                "a chunk (shard) depth of {} slices of {}x{} {} would hold more than {} GiB per \
                 level in memory: choose a smaller depth",
                grid[0],
                level0.width,
                level0.height,
                pyramid.sample_type(),
                MAX_BAND_BYTES >> 30
            )));
        }
        let from_tags = || {
            let first = pyramid.inputs().first()?;
            resolution::from_tags(&first.path, &self.unit)
        };
        let (voxel_size, voxel_note) = match self.voxel_size {
            Some(size) => (size, None),
            None => match from_tags() {
                Some((size, note)) => (size, Some(note)),
                None => ([1.0; 3], None),
            },
        };
        // Every level's scale must stay a finite f32 (the NGFF types' number).
        let top = (1u64 << (pyramid.levels().len() - 1).min(63)) as f64;
        if voxel_size
            .iter()
            .any(|s| !s.is_finite() || *s <= 0.0 || !((s * top) as f32).is_finite())
        {
            return Err(Error::usage(format!(
                "voxel size {voxel_size:?}: every value must be a number > 0 (and below 1e30)"
            )));
        }
        let unit: AxisUnitSpace =
            serde_json::from_value(serde_json::json!(self.unit)).map_err(|_| {
                Error::usage(format!(
                    "unit {:?} is not an NGFF space unit (micrometer, nanometer, millimeter, ...)",
                    self.unit
                ))
            })?;
        Ok(ZarrPlan {
            pyramid,
            store: self.store.clone(),
            ngff: self.ngff,
            chunks,
            shard,
            compression: self.compression,
            voxel_size,
            voxel_note,
            unit,
            force: self.force,
        })
    }
}

/// The largest chunk or shard, uncompressed, ctstack writes: 2 GiB.
const MAX_GRID_BYTES: u64 = 2 << 30;

/// The largest band of level-0 slices the writer holds: 8 GiB (a guard
/// against a mistyped chunk depth, far above any sensible one: the default
/// 16 slices of a 4096 x 4096 u16 stack is 512 MiB).
const MAX_BAND_BYTES: u64 = 8 << 30;

/// A checked stack and store layout, ready to run.
#[derive(Debug, Clone)]
pub struct ZarrPlan {
    pyramid: Plan,
    store: PathBuf,
    ngff: Ngff,
    chunks: [u64; 3],
    shard: Option<[u64; 3]>,
    compression: ChunkCompression,
    voxel_size: [f64; 3],
    /// Where the voxel size came from, when not from the user nor the default.
    voxel_note: Option<String>,
    unit: AxisUnitSpace,
    force: bool,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ZarrSummary {
    /// The store.
    pub store: PathBuf,
    /// Levels 0 ..= L.
    pub levels: Vec<LevelShape>,
    /// Files (chunks, shards, metadata) this run wrote.
    pub written: usize,
    /// Files that already held what this run would have written: left alone.
    pub unchanged: usize,
    /// Bytes of input pixels read.
    pub input_bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl ZarrPlan {
    /// The pyramid's plan the levels come from.
    pub fn pyramid(&self) -> &Plan {
        &self.pyramid
    }

    /// Levels 0 ..= L, as the TIFF pyramid's.
    pub fn levels(&self) -> &[LevelShape] {
        self.pyramid.levels()
    }

    /// The stack's sample type: every level's data type.
    pub fn sample_type(&self) -> SampleType {
        self.pyramid.sample_type()
    }

    /// Non-fatal findings of the plan (gaps in the numbering).
    pub fn warnings(&self) -> &[String] {
        self.pyramid.warnings()
    }

    /// Level 0's voxel size (z, y, x): as given, else from the first slice's
    /// TIFF resolution tags (see [`ZarrPlan::notes`]), else 1, 1, 1.
    pub fn voxel_size(&self) -> [f64; 3] {
        self.voxel_size
    }

    /// Notes on the plan: where the voxel size came from when the resolution
    /// tags gave it.
    pub fn notes(&self) -> Vec<String> {
        self.voxel_note.iter().cloned().collect()
    }

    /// The store's folder.
    pub fn store(&self) -> &Path {
        &self.store
    }

    /// Chunk shape z, y, x.
    pub fn chunks(&self) -> [u64; 3] {
        self.chunks
    }

    /// Shard shape z, y, x, if sharded.
    pub fn shard(&self) -> Option<[u64; 3]> {
        self.shard
    }

    /// The chunk grid's cell: the shard if sharded, else the chunk.
    fn grid_shape(&self) -> [u64; 3] {
        self.shard.unwrap_or(self.chunks)
    }

    /// Slices per band: the grid cell's depth.
    fn band_depth(&self) -> usize {
        self.grid_shape()[0] as usize
    }

    /// Progress units of a whole run: one per slice of levels 1 ..= L (of level
    /// 0 when there is no other level).
    pub fn total_units(&self) -> u64 {
        match self.levels().len() {
            1 => self.levels()[0].count as u64,
            _ => self.pyramid.total_units(),
        }
    }

    /// Slabs of inputs that can be built independently start and end on
    /// multiples of this (or end at the stack's end): `D * 2^L`, so that at
    /// every level k a slab's slices start on a chunk (shard) boundary, and no
    /// two slabs write the same chunk file.
    pub fn slab_alignment(&self) -> usize {
        self.band_depth() << (self.levels().len() - 1)
    }

    /// Builds the store: [`ZarrPlan::prepare`], [`ZarrPlan::run_slab`] over the
    /// whole stack, [`ZarrPlan::finish`]. A rerun after an interruption (or of a
    /// finished store) writes only the files that are missing or differ.
    ///
    /// Errors: [`Error::State`] if the path holds something that is not a ctstack
    /// store and [`ZarrBuilder::force`] is off; the pyramid's errors for bad inputs.
    pub fn run(
        &self,
        progress: &mut dyn FnMut(u64, u64),
        cancel: &CancelFlag,
    ) -> Result<ZarrSummary, Error> {
        let started = Instant::now();
        let prepared = self.prepare()?;
        let mut summary = self.run_slab(0..self.levels()[0].count, progress, cancel)?;
        let finished = self.finish()?;
        summary.written += prepared.written + finished.written;
        summary.unchanged += prepared.unchanged + finished.unchanged;
        summary.elapsed = started.elapsed();
        Ok(summary)
    }

    /// The first step: claims the folder (see [`ZarrPlan::run`] for what is
    /// refused), removes temporary files of killed runs and what an earlier
    /// run made that no longer fits (arrays of other shapes or codecs, levels
    /// beyond L), and writes the root group (marked incomplete) and every
    /// level's array metadata. Slabs run after it.
    pub fn prepare(&self) -> Result<ZarrSummary, Error> {
        let started = Instant::now();
        self.claim()?;
        let store = Arc::new(AtomicFolder::new(&self.store));
        for (key, bytes) in group_files(self.ngff, ctstack_attributes(self, false))? {
            store.put(key, &bytes)?;
        }
        for (k, array) in self.arrays(&store)?.iter().enumerate() {
            let before = store.counts().0;
            // Without zarrs' own attribute (its version): a zarrs upgrade alone
            // must not make a rerun think the array changed.
            let options = ArrayMetadataOptions::default().with_include_zarrs_metadata(false);
            array.store_metadata_opt(&options).map_err(|e| {
                let what = "cannot write array metadata";
                Error::io(
                    &self.level_dir(k),
                    what,
                    std::io::Error::other(e.to_string()),
                )
            })?;
            if store.counts().0 != before {
                // New or different metadata: chunks left by another layout are not this array's.
                self.clear_chunks(k)?;
            }
        }
        Ok(self.summary(&store, 0, started))
    }

    /// Builds the chunks of every level that depend on inputs `span`, after
    /// [`ZarrPlan::prepare`]. `span` must start and end on multiples of
    /// [`ZarrPlan::slab_alignment`] (or end at the stack's end). Slabs write
    /// disjoint chunk files, so they may run at once, on many machines sharing
    /// the folder, in any order, any number of times.
    pub fn run_slab(
        &self,
        span: Range<usize>,
        progress: &mut dyn FnMut(u64, u64),
        cancel: &CancelFlag,
    ) -> Result<ZarrSummary, Error> {
        let started = Instant::now();
        let count = self.levels()[0].count;
        let align = self.slab_alignment();
        let aligned = |i: usize| i.is_multiple_of(align) || i == count;
        if span.start >= span.end || span.end > count || !aligned(span.start) || !aligned(span.end)
        {
            return Err(Error::usage(format!(
                "slab {}..{} of a {count}-slice stack: must be non-empty and start and end on \
                 multiples of {align} (or at the stack's end)",
                span.start, span.end
            )));
        }
        let group = self.store.join(self.group_key());
        if metadata::read_ctstack_attribute(&self.store)?.is_none_or(|a| a.is_null()) {
            return Err(Error::state(
                group,
                "not a ctstack store: run prepare() before the slabs",
            ));
        }
        let store = Arc::new(AtomicFolder::new(&self.store));
        let arrays = self.arrays(&store)?;
        let sink = ZarrSink::new(self, &arrays);
        let input_bytes = if self.levels().len() == 1 {
            let total = span.len() as u64;
            progress(0, total);
            for (done, i) in span.enumerate() {
                if cancel.is_cancelled() {
                    return Err(Error::Cancelled);
                }
                sink.put_input(i)?;
                progress(done as u64 + 1, total);
            }
            sink.input_bytes()
        } else {
            let counts = pyramid::run_into(&self.pyramid, span, &sink, progress, cancel)?;
            counts.input_bytes
        };
        let mut summary = self.summary(&store, input_bytes, started);
        summary.input_bytes = input_bytes;
        Ok(summary)
    }

    /// The last step, after every slab: checks that every chunk of every level
    /// is on disk, then writes the root group's OME metadata, which declares
    /// the store complete.
    ///
    /// Errors: [`Error::State`] naming a missing chunk (a slab did not finish:
    /// run it again); nothing is written then.
    pub fn finish(&self) -> Result<ZarrSummary, Error> {
        let started = Instant::now();
        let store = Arc::new(AtomicFolder::new(&self.store));
        for array in self.arrays(&store)? {
            let grid = array.chunk_grid_shape().to_vec();
            for z in 0..grid[0] {
                for y in 0..grid[1] {
                    for x in 0..grid[2] {
                        let path = store.path_of(array.chunk_key(&[z, y, x]).as_str());
                        if !path.is_file() {
                            return Err(Error::state(
                                path,
                                "missing: a slab did not finish (run it again, then finish)",
                            ));
                        }
                    }
                }
            }
        }
        for (key, bytes) in group_files(self.ngff, complete_attributes(self)?)? {
            store.put(key, &bytes)?;
        }
        Ok(self.summary(&store, 0, started))
    }

    fn summary(&self, store: &AtomicFolder, input_bytes: u64, started: Instant) -> ZarrSummary {
        let (written, unchanged) = store.counts();
        ZarrSummary {
            store: self.store.clone(),
            levels: self.levels().to_vec(),
            written,
            unchanged,
            input_bytes,
            elapsed: started.elapsed(),
        }
    }

    /// The root group's metadata file, the one that says whose store it is.
    fn group_key(&self) -> &'static str {
        match self.ngff {
            Ngff::V0_4 => ".zattrs",
            Ngff::V0_5 => "zarr.json",
        }
    }

    fn level_dir(&self, k: usize) -> PathBuf {
        self.store.join(k.to_string())
    }

    /// Every level's array, writing through `store`.
    fn arrays(&self, store: &Arc<AtomicFolder>) -> Result<Vec<Array<AtomicFolder>>, Error> {
        (0..self.levels().len())
            .map(|k| {
                let meta = array_metadata(self, k)?;
                Array::new_with_metadata(Arc::clone(store), &format!("/{k}"), meta).map_err(|e| {
                    Error::usage(format!(
                        "{}: invalid array: {e}",
                        self.level_dir(k).display()
                    ))
                })
            })
            .collect()
    }

    /// Makes the store's folder ours: creates it, or checks that it is empty or
    /// a ctstack store (removing it first under `force` if it is not), then
    /// tidies a ctstack store for this plan.
    fn claim(&self) -> Result<(), Error> {
        let root = &self.store;
        let io = |what: &str| {
            let what = what.to_string();
            move |e| Error::io(root, what, e)
        };
        match std::fs::symlink_metadata(root) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(root, "cannot inspect the store's path", e)),
            Ok(meta) => {
                let ours = meta.is_dir()
                    && metadata::read_ctstack_attribute(root)?.is_some_and(|a| !a.is_null());
                let empty = meta.is_dir()
                    && std::fs::read_dir(root)
                        .map_err(io("cannot list"))?
                        .next()
                        .is_none();
                if !ours && !empty {
                    if !self.force {
                        return Err(Error::state(
                            root,
                            "exists and is not a ctstack OME-Zarr store (no \"ctstack\" \
                             attribute in its root zarr.json or .zattrs): left untouched; \
                             pass ZarrBuilder::force(true) to replace it",
                        ));
                    }
                    if meta.is_dir() {
                        std::fs::remove_dir_all(root).map_err(io("cannot remove (--force)"))?;
                    } else {
                        crate::fs_retry::remove_with_retry(root)
                            .map_err(io("cannot remove (--force)"))?;
                    }
                }
                if ours {
                    self.tidy()?;
                }
            }
        }
        std::fs::create_dir_all(root).map_err(io("cannot create the store's folder"))
    }

    /// In a ctstack store: removes temporary files of killed runs, the root
    /// metadata of the other Zarr version, and levels beyond this plan's.
    fn tidy(&self) -> Result<(), Error> {
        let root = &self.store;
        sweep_temps(root);
        let other: &[&str] = match self.ngff {
            Ngff::V0_4 => &["zarr.json"],
            Ngff::V0_5 => &[".zgroup", ".zattrs"],
        };
        for name in other {
            remove_file_if_there(&root.join(name))?;
        }
        let levels = self.levels().len();
        for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let level = name.parse::<usize>().ok().filter(|k| k.to_string() == name);
            if level.is_some_and(|k| k >= levels) && entry.path().is_dir() {
                std::fs::remove_dir_all(entry.path())
                    .map_err(|e| Error::io(&entry.path(), "cannot remove a stale level", e))?;
            }
        }
        Ok(())
    }

    /// Removes everything in level `k`'s folder but its array metadata.
    fn clear_chunks(&self, k: usize) -> Result<(), Error> {
        let keep: &[&str] = match self.ngff {
            Ngff::V0_4 => &[".zarray", ".zattrs"],
            Ngff::V0_5 => &["zarr.json"],
        };
        let dir = self.level_dir(k);
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name();
            if keep.iter().any(|k| name == *k) {
                continue;
            }
            let path = entry.path();
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                crate::fs_retry::remove_with_retry(&path)
            };
            removed.map_err(|e| Error::io(&path, "cannot remove an outdated chunk", e))?;
        }
        Ok(())
    }
}

fn remove_file_if_there(path: &Path) -> Result<(), Error> {
    match crate::fs_retry::remove_with_retry(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io(path, "cannot remove", e))
        }
        _ => Ok(()),
    }
}
