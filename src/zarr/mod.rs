//! The pyramid as an OME-Zarr multiscale image (feature `ome-zarr`).
//!
//! Level 0 is the input stack, levels 1 ..= L the pyramid's levels, sample for
//! sample the TIFF pyramid's (same kernels, rounding, shapes and `min_size`
//! rule), made and written by bands of rows (`sink.rs`): level 0's chunks cut
//! from the inputs by the reading layer's region reader, each input byte read
//! once. One array per level, at `<store>/<k>`, axes z y x.
//!
//! # Where each voxel is
//!
//! Level-k voxel (z, y, x) of the metadata sits at the centre of the level-0
//! voxels it averages: scale `s0 * 2^k` and translation `s0 * (2^k - 1) / 2`
//! on every axis. In y and x that is exact as is (the pyramid drops an odd
//! last row or column). In z, the TIFF pyramid pairs an odd last plane with
//! itself (CTHarvester's rule), so a level's last plane can average fewer than
//! `2^k` slices, with unequal weights: no regular grid places it. The OME-Zarr
//! levels therefore keep only the planes that average exactly `2^k` slices,
//! the first `floor(n / 2^k)` of the TIFF level (the same samples); when no
//! plane does (`n < 2^k`), the level's one plane is kept and spans the stack:
//! z scale `s0 * n`, translation `s0 * (n - 1) / 2` (its sources' centre; the
//! weights within are the pairing's, equal only when `n` is a power of two).
//! So a level is the TIFF level without its last plane exactly when `2^k`
//! does not divide `n` and `n >= 2^k`. See `zarr_depth`.
//!
//! # The store, and interrupted runs
//!
//! At every instant of a build, a rerun or an overwrite, each array path
//! either does not open as an array or opens as the complete, correct array,
//! in any reader (zarr-python, tensorstore, dask, which skip the OME metadata):
//!
//! - Every file (chunk, shard, metadata) appears atomically (temporary name,
//!   then rename), and a file that already holds the bytes a run would write is
//!   not written again (`store.rs`).
//! - An array's own metadata (`zarr.json`, or `.zattrs` then `.zarray`) is
//!   written only after its last chunk is on disk and synced, with the folders
//!   that hold them ([`ZarrPlan::finish`]). Before the first chunk of a run
//!   changes, every array's metadata is removed, the removal synced, and the
//!   root group marked incomplete (`store.rs`, "withdrawing"): an unchanged
//!   rerun touches nothing.
//! - The root group's OME metadata (`multiscales`) is written last: a store
//!   that has it is complete. Until then the root group carries only ctstack's
//!   attribute (`"complete": false`, and each level's array layout), by which a
//!   rerun recognises its own store and finishes it.
//!
//! # Whose files
//!
//! ctstack deletes only what it writes in a store: the metadata files, the
//! chunk files of its levels (digit names), its temporary files, and folders
//! of those once empty. A path that holds anything else and is not a ctstack
//! store is refused, whatever the options; a file a user put inside a ctstack
//! store is left in place (and named in [`ZarrSummary::notes`]). A store path
//! equal to, inside, or containing an input is refused by the plan.
//!
//! # One writer at a time
//!
//! A run, a `prepare` and a `finish` hold the store's lock ([`LOCK_FILE`], the
//! pyramid's) exclusively; the slabs of a distributed build hold it shared, so
//! they run at once. A writer that finds it held in a way that excludes it is
//! refused ([`Error::State`] naming the store and the holder's pid and host),
//! never made to wait or let in. Between the slabs, `prepare` leaves the
//! build's identity in [`BUILD_FILE`] (the plan's layout and the inputs' names,
//! sizes and times); a slab or `finish` of another build (other inputs or
//! options) finds it differs and is refused. `prepare` also removes every
//! chunk file it cannot tell is this build's, as it does chunks of another
//! layout: unless [`BUILD_FILE`] is this build's (a rerun of its prepare,
//! say after a kill), or there is none and the record names these very
//! inputs (a complete store made from them), the chunks may be another
//! build's of the same layout (a rescanned stack), which `finish`, checking
//! only that each chunk file is there, would take for a slab that never ran.
//! So two builds never mix in one store. `finish` removes [`BUILD_FILE`]; a
//! run removes it too (no slab may join a run), so a distributed rerun of a
//! store last finished by slabs, or after a killed run, writes every chunk
//! again.
//!
//! # Memory
//!
//! One unit of rows per level (`sink.rs`): the grid cell's depth `D` by its
//! height `Y` (each doubled when odd) across the level's width, at most
//! `2 * D * Y * W * b` bytes for a `W`-wide stack of `b`-byte samples, plus a
//! chunk per worker being encoded: flat in the stack's height and depth. At
//! the default chunks that is 45 MB for 2752-wide u16 slices, 256 MiB for
//! 16384-wide ones.

mod metadata;
mod record;
mod sink;
mod store;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ome_zarr_metadata::v0_4::AxisUnitSpace;
use serde_json::Value;
use zarrs::array::Array;

use self::metadata::{
    CTSTACK_KEY, array_files, array_metadata, array_record, complete_attributes,
    ctstack_attributes, group_files, read_ctstack_attribute,
};
use self::record::{RECORD_FILE, Record};
use self::store::{
    ARRAY_METADATA, AtomicFolder, Withdrawal, holds, remove_chunks, remove_dir_if_empty,
    remove_file_if_there, sweep_temps, sync_files_and_folders,
};
use crate::durable::sync_dir;
use crate::pyramid::LOCK_FILE;
use crate::pyramid::lock::{OutputLock, Share};
use crate::pyramid::manifest::InputRecord;
use crate::pyramid::{LevelShape, Plan};
use crate::{CancelFlag, Error, Photometric, PyramidBuilder, SampleType, Slice};

/// The default chunk: 16 slices of 256 x 256 (z, y, x). 1 MiB of u8, 2 MiB of
/// u16/i16, 4 MiB of f32: large enough that a filesystem or object store
/// serves it at streaming speed, small enough that a viewer browsing slices
/// reads 16 planes of one 256 x 256 tile, not of the whole slice, and that a
/// 3-D viewer's coarse levels come in few requests. Depth times height is also
/// what the writer holds per level, across the width (see the module docs).
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

/// How chunks are compressed: spelled `none`, `zstd[:LEVEL]` or
/// `blosc-lz4[-bitshuffle][:LEVEL]`, `blosc-zstd[-bitshuffle][:LEVEL]` (its
/// [`FromStr`](std::str::FromStr) and [`Display`](std::fmt::Display)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChunkCompression {
    /// Stored as they are.
    None,
    /// Zstandard at this level (-7 ..= 22).
    Zstd(i32),
    /// Blosc (the container numcodecs, zarr-python, Fiji/MoBIE and neuroglancer
    /// read): each chunk's samples shuffled, then compressed.
    Blosc {
        /// The compressor inside Blosc.
        compressor: BloscCompressor,
        /// How samples are rearranged before compressing.
        shuffle: BloscShuffle,
        /// The compression level, 0 ..= 9 (Blosc's default 5).
        level: u8,
    },
}

/// The compressor inside [`ChunkCompression::Blosc`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BloscCompressor {
    /// LZ4: fast, lighter compression.
    Lz4,
    /// Zstandard.
    Zstd,
}

/// The shuffle filter of [`ChunkCompression::Blosc`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BloscShuffle {
    /// Byte shuffle: the first bytes of every sample, then the second bytes, ...
    Byte,
    /// Bit shuffle: the first bits of every sample, then the second bits, ...
    Bit,
}

impl Default for ChunkCompression {
    /// Blosc with LZ4 at level 5 after a bit shuffle (`blosc-lz4-bitshuffle`):
    /// on CT stacks as small as zstd level 3 or smaller, in about half its time
    /// (docs/ome-zarr.md, "Compression", has the table).
    fn default() -> Self {
        ChunkCompression::Blosc {
            compressor: BloscCompressor::Lz4,
            shuffle: BloscShuffle::Bit,
            level: 5,
        }
    }
}

impl std::fmt::Display for ChunkCompression {
    /// The spelling [`FromStr`](std::str::FromStr) reads: `none`, `zstd:3`,
    /// `blosc-lz4-bitshuffle:5`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChunkCompression::None => write!(f, "none"),
            ChunkCompression::Zstd(level) => write!(f, "zstd:{level}"),
            ChunkCompression::Blosc {
                compressor,
                shuffle,
                level,
            } => {
                let cname = match compressor {
                    BloscCompressor::Lz4 => "lz4",
                    BloscCompressor::Zstd => "zstd",
                };
                let bits = match shuffle {
                    BloscShuffle::Byte => "",
                    BloscShuffle::Bit => "-bitshuffle",
                };
                write!(f, "blosc-{cname}{bits}:{level}")
            }
        }
    }
}

impl std::str::FromStr for ChunkCompression {
    type Err = Error;

    /// `none`, `zstd` (level 3) or `zstd:LEVEL`; `blosc-lz4`, `blosc-zstd`, each
    /// with `-bitshuffle` (else byte shuffle) and `:LEVEL` (0 ..= 9, else 5).
    fn from_str(text: &str) -> Result<ChunkCompression, Error> {
        let bad = || {
            Error::usage(format!(
                "compression {text:?}: expected none, zstd or zstd:LEVEL (-7 ..= 22), or \
                 blosc-lz4, blosc-lz4-bitshuffle, blosc-zstd, blosc-zstd-bitshuffle with an \
                 optional :LEVEL (0 ..= 9)"
            ))
        };
        let (name, level) = match text.split_once(':') {
            Some((name, level)) => (name, Some(level)),
            None => (text, None),
        };
        let blosc = |compressor, shuffle| {
            let level = match level {
                None => 5,
                Some(l) => l.parse::<u8>().ok().filter(|l| *l <= 9).ok_or_else(bad)?,
            };
            Ok(ChunkCompression::Blosc {
                compressor,
                shuffle,
                level,
            })
        };
        match (name, level) {
            ("none", None) => Ok(ChunkCompression::None),
            ("zstd", None) => Ok(ChunkCompression::Zstd(3)),
            ("zstd", Some(level)) => level
                .parse::<i32>()
                .ok()
                .filter(|l| (-7..=22).contains(l))
                .map(ChunkCompression::Zstd)
                .ok_or_else(bad),
            ("blosc-lz4", _) => blosc(BloscCompressor::Lz4, BloscShuffle::Byte),
            ("blosc-lz4-bitshuffle", _) => blosc(BloscCompressor::Lz4, BloscShuffle::Bit),
            ("blosc-zstd", _) => blosc(BloscCompressor::Zstd, BloscShuffle::Byte),
            ("blosc-zstd-bitshuffle", _) => blosc(BloscCompressor::Zstd, BloscShuffle::Bit),
            _ => Err(bad()),
        }
    }
}

/// Level `k`'s depth in the OME-Zarr store of an `n`-slice stack: the planes
/// of the TIFF pyramid's level `k` that average exactly `2^k` slices,
/// `floor(n / 2^k)`, or its one plane when none does (see the module docs).
pub(crate) fn zarr_depth(n: usize, k: usize) -> usize {
    n.checked_shr(k as u32).unwrap_or(0).max(1).min(n.max(1))
}

/// How MinIsWhite samples are stored so that viewers show them as TIFF viewers
/// do: inverted, `max - v` for unsigned integers (`max = 2^bits - 1`, `bits` as
/// stored in the file), `-1 - v` for `i16`, `-v` for `f32`: all exact.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Inversion {
    /// `2^bits - 1` for unsigned samples.
    pub max: u32,
}

/// Builds an OME-Zarr multiscale image from a stack of slices: the inputs and
/// the levels as a [`PyramidBuilder`] says (its output folder and `force` are
/// not used), the store's layout as set here. The store path must be new, an
/// empty folder or a ctstack store, which is replaced with no option needed
/// (only ctstack's own files in it); anything else is refused and left as it is.
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
    unit: Option<String>,
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
            unit: None,
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

    /// Chunk compression (default [`ChunkCompression::default`]:
    /// `blosc-lz4-bitshuffle`).
    pub fn compression(mut self, compression: ChunkCompression) -> Self {
        self.compression = compression;
        self
    }

    /// Level 0's voxel size z, y, x in [`ZarrBuilder::unit`]s, stored exactly
    /// as given. Without it: from the first slice's resolution tags, else
    /// from the scanner's file beside the slices (a Bruker NRecon `*_rec.log`,
    /// ...: see [`VoxelSize::of_stack`](crate::VoxelSize::of_stack)), else
    /// unknown (1, 1, 1 with no unit, and a warning).
    pub fn voxel_size(mut self, voxel_size: [f64; 3]) -> Self {
        self.voxel_size = Some(voxel_size);
        self
    }

    /// The unit of the axes: an NGFF space unit, `micrometer` by default.
    pub fn unit(mut self, unit: impl Into<String>) -> Self {
        self.unit = Some(unit.into());
        self
    }

    /// Checks the options and every input slice's header (as
    /// [`PyramidBuilder::plan`]); writes nothing.
    ///
    /// Errors: [`Error::Usage`] for a bad option, or a store path that is an
    /// input, holds one or lies inside the input folder.
    pub fn plan(&self) -> Result<ZarrPlan, Error> {
        self.plan_with(self.pyramid.plan()?)
    }

    fn plan_with(&self, pyramid: Plan) -> Result<ZarrPlan, Error> {
        if self.chunks.contains(&0) {
            return Err(Error::usage("chunk sizes must be at least 1"));
        }
        self.check_store_apart_from_inputs(&pyramid)?;
        let levels: Vec<LevelShape> = pyramid
            .levels()
            .iter()
            .enumerate()
            .map(|(k, l)| LevelShape {
                count: zarr_depth(pyramid.levels()[0].count, k),
                ..*l
            })
            .collect();
        // A chunk larger than the stack is cut to it (as other writers do): its
        // padding would only cost memory, time and disk.
        let level0 = levels[0];
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
        // C-Blosc compresses at most 2^31 - 1 - 16 bytes at once (a shard's
        // inner chunks are what it compresses): refused now, not at the first
        // chunk after reading its inputs.
        let chunk_bytes = chunks.iter().try_fold(sample, |a, &n| a.checked_mul(n));
        if matches!(self.compression, ChunkCompression::Blosc { .. })
            && chunk_bytes.is_none_or(|n| n > MAX_BLOSC_BYTES)
        {
            return Err(Error::usage(format!(
                "a {chunks:?} chunk of {} samples is more than Blosc compresses at once \
                 ({MAX_BLOSC_BYTES} bytes): choose smaller chunks, or zstd",
                pyramid.sample_type(),
            )));
        }
        // The writer holds one unit of rows per level (see the module docs):
        // the grid cell's depth and height (doubled when odd) across the width.
        let unit = |n: u64, extent: u64| (if n.is_multiple_of(2) { n } else { 2 * n }).min(extent);
        let band = (unit(grid[0], level0.count as u64) * unit(grid[1], level0.height.into()))
            .checked_mul(2 * u64::from(level0.width) * sample);
        if band.is_none_or(|n| n > MAX_BAND_BYTES) {
            return Err(Error::usage(format!(
                "a chunk (shard) of {} slices by {} rows of {}-wide {} slices would hold more \
                 than {} GiB of bands in memory: choose a smaller depth or height",
                grid[0],
                grid[1],
                level0.width,
                pyramid.sample_type(),
                MAX_BAND_BYTES >> 30
            )));
        }
        let unit_name = self.unit.as_deref().unwrap_or("micrometer");
        let parsed_unit: AxisUnitSpace = serde_json::from_value(serde_json::json!(unit_name))
            .map_err(|_| {
                Error::usage(format!(
                    "unit {unit_name:?} is not an NGFF space unit (micrometer, nanometer, \
                     millimeter, ...)"
                ))
            })?;
        let mut warnings = pyramid.warnings().to_vec();
        let mut passed_over = Vec::new();
        let mut voxel_from = VoxelFrom::Given;
        let mut found = || {
            let first = pyramid.inputs().first()?;
            let lookup = crate::VoxelSize::of_stack(&first.path);
            warnings.extend(lookup.warnings);
            passed_over = lookup.passed_over;
            let size = lookup.size?;
            let per_unit = micrometres_per(unit_name)?;
            Some((size.micrometres.map(|v| v / per_unit), size))
        };
        let (voxel_size, voxel_note, unit) = match self.voxel_size {
            Some(size) => (size, None, Some(parsed_unit)),
            None => match found() {
                Some((size, found)) => {
                    voxel_from = match found.sidecar {
                        Some(_) => VoxelFrom::ScannerFile(found.source.clone()),
                        None => VoxelFrom::Tags(found.source.clone()),
                    };
                    let note = format!(
                        "voxel size {} x {} x {} {unit_name} (z, y, x) from {} (--voxel-size \
                         overrides)",
                        size[0], size[1], size[2], found.source
                    );
                    (size, Some(note), Some(parsed_unit))
                }
                None => {
                    warnings.push(format!(
                        "the physical voxel size is unknown (no resolution tags in {}, {}, no \
                         voxel size given): the axes are written without a unit and scaled in \
                         voxels (level 0: 1, 1, 1); give --voxel-size Z,Y,X (and --unit) to \
                         record it",
                        pyramid
                            .inputs()
                            .first()
                            .map_or_else(String::new, |i| i.path.display().to_string()),
                        crate::VoxelSize::why_unknown(&passed_over),
                    ));
                    voxel_from = VoxelFrom::Unknown;
                    ([1.0; 3], None, None)
                }
            },
        };
        // Every level's scale must stay a finite f32 (the NGFF types' number;
        // the file holds the f64).
        let top = (1u64 << (levels.len() - 1).min(63)).max(level0.count as u64) as f64;
        if voxel_size
            .iter()
            .any(|s| !s.is_finite() || *s <= 0.0 || !((s * top) as f32).is_finite())
        {
            return Err(Error::usage(format!(
                "voxel size {voxel_size:?}: every value must be a number > 0 (and below 1e30)"
            )));
        }
        let inversion = match pyramid.photometric() {
            Photometric::MinIsBlack => None,
            Photometric::MinIsWhite => Some(inversion_of(&pyramid)?),
        };
        Ok(ZarrPlan {
            pyramid,
            levels,
            store: self.store.clone(),
            ngff: self.ngff,
            chunks,
            shard,
            compression: self.compression,
            voxel_size,
            voxel_note,
            voxel_from,
            unit,
            warnings,
            inversion,
        })
    }

    /// Refuses a store path that is an input, holds one, or (for a folder of
    /// slices) lies inside the input folder: compared as canonical paths, so
    /// that `..`, `.` and symbolic links do not hide it.
    fn check_store_apart_from_inputs(&self, pyramid: &Plan) -> Result<(), Error> {
        let store = canonical_target(&self.store);
        let refuse = |input: &Path, how: &str| {
            Err(Error::usage(format!(
                "the store {} {how} {}: ctstack does not write a store there (it would mix \
                 with, or replace, the input); choose a store path outside it, e.g. {}",
                self.store.display(),
                input.display(),
                suggested_store(input).display()
            )))
        };
        // A folder of slices: the folder itself is the input.
        let folder = self
            .pyramid
            .listing()
            .and_then(|l| l.files.first())
            .and_then(|f| f.parent())
            .map(Path::to_path_buf);
        if let Some(folder) = folder {
            let input = canonical_target(&folder);
            if store == input {
                return refuse(&folder, "is the input folder");
            }
            if input.starts_with(&store) {
                return refuse(&folder, "contains the input folder");
            }
            if store.starts_with(&input) {
                return refuse(&folder, "is inside the input folder");
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for slice in pyramid.inputs() {
            if !seen.insert(&slice.path) {
                continue;
            }
            let input = canonical_target(&slice.path);
            if store == input {
                return refuse(&slice.path, "is the input file");
            }
            if input.starts_with(&store) {
                return refuse(&slice.path, "contains the input file");
            }
        }
        Ok(())
    }
}

/// `path` made canonical as far as it exists (symbolic links resolved), the
/// rest appended (`..` removing a component).
fn canonical_target(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut rest = Vec::new();
    let mut head = absolute.as_path();
    loop {
        if let Ok(real) = std::fs::canonicalize(head) {
            let mut out = real;
            for part in rest.iter().rev() {
                match part {
                    std::path::Component::ParentDir => {
                        out.pop();
                    }
                    std::path::Component::CurDir => {}
                    other => out.push(other.as_os_str()),
                }
            }
            return out;
        }
        match (head.parent(), head.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                head = parent;
            }
            _ => return absolute,
        }
    }
}

/// `scan` -> `scan.ome.zarr` beside it (a file: its stem), named after the
/// canonical path (so `.` gives a name).
fn suggested_store(input: &Path) -> PathBuf {
    let input = &canonical_target(input);
    let mut name = match input.is_file() {
        true => input.file_stem(),
        false => input.file_name(),
    }
    .map_or_else(|| "stack".into(), std::ffi::OsStr::to_os_string);
    name.push(".ome.zarr");
    input.with_file_name(name)
}

/// The inversion of a MinIsWhite stack: `max` from the first slice's stored bits
/// (or the sample type's, when the stack's depth is converted).
fn inversion_of(pyramid: &Plan) -> Result<Inversion, Error> {
    let bits = match pyramid.inputs().first() {
        Some(first) => {
            let indexed = pyramid.page_index().get(0);
            let slice = Slice::open_indexed(first, indexed, pyramid.open_options())?;
            match slice.sample_type() == pyramid.sample_type() {
                true => slice.stored_bits(),
                false => pyramid.sample_type().bits(),
            }
        }
        None => pyramid.sample_type().bits(),
    };
    let max = match bits {
        1..=31 => (1u32 << bits) - 1,
        _ => u32::MAX,
    };
    Ok(Inversion { max })
}

/// Micrometres per `unit`, for the NGFF space units a CT voxel is measured in.
pub(crate) fn micrometres_per(unit: &str) -> Option<f64> {
    Some(match unit {
        "angstrom" => 1e-4,
        "nanometer" => 1e-3,
        "micrometer" => 1.0,
        "millimeter" => 1e3,
        "centimeter" => 1e4,
        "meter" => 1e6,
        "inch" => 25_400.0,
        _ => return None,
    })
}

/// The largest chunk or shard, uncompressed, ctstack writes: 2 GiB.
const MAX_GRID_BYTES: u64 = 2 << 30;

/// The largest chunk Blosc compresses: `BLOSC_MAX_BUFFERSIZE`, `INT_MAX - 16`.
const MAX_BLOSC_BYTES: u64 = i32::MAX as u64 - 16;

/// The most the writer's bands may hold, all levels together: 8 GiB (a guard
/// against a mistyped chunk shape, far above any sensible one: the default
/// chunks of a 16384-wide u16 stack hold 256 MiB).
const MAX_BAND_BYTES: u64 = 8 << 30;

/// A checked stack and store layout, ready to run.
#[derive(Debug, Clone)]
pub struct ZarrPlan {
    pyramid: Plan,
    /// The arrays' shapes: the pyramid's levels, z as `zarr_depth` says.
    levels: Vec<LevelShape>,
    store: PathBuf,
    ngff: Ngff,
    chunks: [u64; 3],
    shard: Option<[u64; 3]>,
    compression: ChunkCompression,
    voxel_size: [f64; 3],
    /// Where the voxel size came from, when not from the user nor the default.
    voxel_note: Option<String>,
    /// Where the voxel size came from, for the C and Python reports.
    voxel_from: VoxelFrom,
    /// The axes' unit; `None`: unknown (no unit written).
    unit: Option<AxisUnitSpace>,
    warnings: Vec<String>,
    /// How MinIsWhite samples are stored; `None` for MinIsBlack.
    inversion: Option<Inversion>,
}

/// Where level 0's voxel size came from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum VoxelFrom {
    /// The caller gave it ([`ZarrBuilder::voxel_size`]).
    Given,
    /// The first slice's resolution tags: their description.
    Tags(String),
    /// The scanner's file beside the slices: its name and the fields read.
    ScannerFile(String),
    /// None of them: 1, 1, 1 with no unit (a warning says so).
    Unknown,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ZarrSummary {
    /// The store.
    pub store: PathBuf,
    /// The arrays' shapes, levels 0 ..= L.
    pub levels: Vec<LevelShape>,
    /// Files (chunks, shards, metadata) this run wrote; a file written twice
    /// (the root group: first marked incomplete, then complete) counts once.
    pub written: usize,
    /// Files that already held what this run would have written: left alone.
    pub unchanged: usize,
    /// Bytes of input pixels read.
    pub input_bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// What the user should know: files in the store that ctstack did not
    /// write, left in place.
    pub notes: Vec<String>,
}

impl ZarrPlan {
    /// The pyramid's plan the levels come from.
    pub fn pyramid(&self) -> &Plan {
        &self.pyramid
    }

    /// The arrays' shapes, levels 0 ..= L: the TIFF pyramid's levels, but
    /// in z only the planes that average exactly `2^k` slices, `floor(n / 2^k)`
    /// (at least 1), so that the metadata places every voxel exactly at the
    /// centre of the slices it averages. A level is the TIFF level without its
    /// last plane when `2^k` does not divide `n` and `n >= 2^k`.
    pub fn levels(&self) -> &[LevelShape] {
        &self.levels
    }

    /// The stack's sample type: every level's data type.
    pub fn sample_type(&self) -> SampleType {
        self.pyramid.sample_type()
    }

    /// Non-fatal findings of the plan: gaps in the numbering, an unknown
    /// physical voxel size.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Level 0's voxel size (z, y, x): as given, else from the first slice's
    /// TIFF resolution tags or the scanner's file beside the slices (see
    /// [`ZarrPlan::notes`]), else 1, 1, 1 (unknown:
    /// see [`ZarrPlan::unit`]).
    pub fn voxel_size(&self) -> [f64; 3] {
        self.voxel_size
    }

    /// Where [`ZarrPlan::voxel_size`] came from.
    pub(crate) fn voxel_from(&self) -> &VoxelFrom {
        &self.voxel_from
    }

    /// The axes' unit (`"micrometer"`, ...), or `None` when the physical size
    /// is unknown and the axes carry no unit.
    pub fn unit(&self) -> Option<String> {
        let unit = self.unit?;
        serde_json::to_value(unit)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
    }

    /// Notes on the plan: where the voxel size came from when the resolution
    /// tags gave it; how MinIsWhite samples are stored.
    pub fn notes(&self) -> Vec<String> {
        let mut notes: Vec<String> = self.voxel_note.iter().cloned().collect();
        if let Some(note) = self.inversion_note() {
            notes.push(note);
        }
        notes
    }

    /// What the stored values are, for a MinIsWhite stack.
    fn inversion_note(&self) -> Option<String> {
        let inversion = self.inversion?;
        let rule = match self.sample_type() {
            SampleType::I16 => "-1 - v".to_string(),
            SampleType::F32 => "-v".to_string(),
            _ => format!("{} - v", inversion.max),
        };
        Some(format!(
            "the slices are MinIsWhite (0 is white): stored inverted, {rule} of the file's value \
             v, so that viewers that read OME-Zarr show what TIFF viewers show"
        ))
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
    /// whole stack, [`ZarrPlan::finish`], then a record of the inputs and of
    /// every chunk file (`ctstack-inputs.json`, written last). A rerun after an
    /// interruption writes only the files that are missing or differ; a rerun of
    /// a complete store whose record matches the inputs (names, sizes,
    /// modification times), the options (every metadata file is what this plan
    /// writes) and the chunk files (sizes, times) reads no pixel and writes
    /// nothing (all the image's files count as unchanged; the record is not
    /// counted).
    ///
    /// Errors: [`Error::State`] if the path holds something that is not a
    /// ctstack store (nothing is written or removed then); the pyramid's errors
    /// for bad inputs.
    pub fn run(
        &self,
        progress: &mut dyn FnMut(u64, u64),
        cancel: &CancelFlag,
    ) -> Result<ZarrSummary, Error> {
        let started = Instant::now();
        let _lock = self.lock(Share::Exclusive)?;
        // The inputs as they are before any is read: a change during the run
        // makes the record disagree with them, so the next run checks again.
        let inputs = InputRecord::stat_all(
            self.pyramid.inputs(),
            self.pyramid.levels()[0],
            self.pyramid.sample_type(),
        )?;
        let store = Arc::new(self.open_store()?);
        if let Some(files) = self.unchanged(&store, &inputs)? {
            let total = self.total_units();
            progress(total, total);
            let mut summary = self.summary(&store, 0, started);
            summary.unchanged = files;
            summary.notes = foreign_notes(foreign_entries(&self.store));
            return Ok(summary);
        }
        let notes = self.prepare_in(&store, false)?;
        let input_bytes = self.run_slab_in(&store, 0..self.levels()[0].count, progress, cancel)?;
        let chunks = self.finish_in(&store)?;
        // The record is not one of the image's files: the summary counts those.
        let folder = crate::pyramid::manifest::input_folder(self.pyramid.inputs());
        Record::of(folder, inputs, &chunks)?.write(&self.store)?;
        let mut summary = self.summary(&store, input_bytes, started);
        summary.notes = notes;
        Ok(summary)
    }

    /// The number of the image's files (metadata and chunks) when the store is
    /// complete and its record vouches for it as this plan would write it from
    /// `inputs` (see [`ZarrPlan::run`]); `None` when a run has work to do or
    /// to check.
    fn unchanged(
        &self,
        store: &Arc<AtomicFolder>,
        inputs: &[InputRecord],
    ) -> Result<Option<usize>, Error> {
        let Some(record) = Record::read(&self.store) else {
            return Ok(None);
        };
        if record.inputs != inputs {
            return Ok(None);
        }
        let mut metadata: Vec<(String, Vec<u8>)> = (0..self.levels().len())
            .map(|k| array_files(self, k))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect();
        for (key, bytes) in group_files(self.ngff, complete_attributes(self)?)? {
            metadata.push((key.to_string(), bytes));
        }
        if !metadata
            .iter()
            .all(|(key, bytes)| holds(&store.path_of(key), bytes))
        {
            return Ok(None);
        }
        let chunks = self.chunk_files(store)?;
        Ok(record
            .vouches_for(&chunks)
            .then_some(metadata.len() + chunks.len()))
    }

    /// The first step: claims the folder (see [`ZarrPlan::run`] for what is
    /// refused), removes temporary files of killed runs and what an earlier
    /// run made that no longer fits (chunks of arrays of other shapes or
    /// codecs, levels beyond L, and every chunk not known to be this build's:
    /// see the module docs; only ctstack's files), and records the levels'
    /// layout in the root group, marked incomplete. Slabs run after it.
    pub fn prepare(&self) -> Result<ZarrSummary, Error> {
        let started = Instant::now();
        let _lock = self.lock(Share::Exclusive)?;
        let store = Arc::new(self.open_store()?);
        let notes = self.prepare_in(&store, true)?;
        let mut summary = self.summary(&store, 0, started);
        summary.notes = notes;
        Ok(summary)
    }

    /// Builds the chunks of every level that depend on inputs `span`, after
    /// [`ZarrPlan::prepare`]. `span` must start and end on multiples of
    /// [`ZarrPlan::slab_alignment`] (or end at the stack's end). Slabs write
    /// disjoint chunk files, so they may run at once, on many machines sharing
    /// the folder, in any order, any number of times.
    ///
    /// Errors: [`Error::State`] if the store was not prepared for this very
    /// build (another build's prepare, a run or a finish came since), or a
    /// run, prepare or finish holds its lock.
    pub fn run_slab(
        &self,
        span: Range<usize>,
        progress: &mut dyn FnMut(u64, u64),
        cancel: &CancelFlag,
    ) -> Result<ZarrSummary, Error> {
        let started = Instant::now();
        // The call's own mistakes first, then what is on disk.
        self.check_span(&span)?;
        let group = self.store.join(self.group_key());
        if read_ctstack_attribute(&self.store)?.is_none_or(|a| a.is_null()) {
            return Err(Error::state(
                group,
                "not a ctstack store: run prepare() before the slabs",
            ));
        }
        let _lock = self.lock(Share::Shared)?;
        self.check_build()?;
        let store = Arc::new(self.open_store()?);
        let input_bytes = self.run_slab_in(&store, span, progress, cancel)?;
        Ok(self.summary(&store, input_bytes, started))
    }

    /// The last step, after every slab: checks that every chunk of every level
    /// is on disk; per level, syncs its chunks and their folders, then writes
    /// the array's metadata (from then on it opens as an array); last, the root
    /// group's OME metadata, which declares the store complete.
    ///
    /// Errors: [`Error::State`] naming a missing chunk (a slab did not finish:
    /// run it again), or saying that the store was not prepared for this very
    /// build, or that another run or running slabs hold its lock; no array
    /// metadata is written then.
    pub fn finish(&self) -> Result<ZarrSummary, Error> {
        let started = Instant::now();
        let _lock = self.lock(Share::Exclusive)?;
        self.check_build()?;
        let store = Arc::new(self.open_store()?);
        self.finish_in(&store)?;
        Ok(self.summary(&store, 0, started))
    }

    /// The store, withdrawn (root incomplete, array metadata removed) before
    /// its first chunk changes.
    fn open_store(&self) -> Result<AtomicFolder, Error> {
        let root = group_files(self.ngff, ctstack_attributes(self, false)?)?;
        let levels = (0..self.levels().len()).map(|k| k.to_string()).collect();
        Ok(AtomicFolder::new(&self.store, Withdrawal { root, levels }))
    }

    /// `distributed`: for [`ZarrPlan::prepare`], whose slabs may not all run
    /// before a `finish`: chunks on disk that are not known to be this build's
    /// are removed (see the module docs); a run writes every chunk itself.
    fn prepare_in(&self, store: &AtomicFolder, distributed: bool) -> Result<Vec<String>, Error> {
        let root = &self.store;
        let ours = self.claim()?;
        let incomplete = ctstack_attributes(self, false)?;
        let build = self.build_identity()?;
        let mut kept = Vec::new();
        if ours {
            sweep_temps(root, &ROOT_FILES);
            let previous = read_ctstack_attribute(root)?.unwrap_or(Value::Null);
            let recorded = previous.get("arrays").and_then(Value::as_array);
            let n = self.levels().len();
            // Another build's chunks (other inputs, same layout) would pass
            // finish's check for a slab of this one that never ran: cleared
            // as chunks of another layout are.
            let foreign = distributed && !self.chunks_are_this_builds(&build)?;
            let changed: Vec<usize> = (0..n)
                .filter(|&k| {
                    let was = recorded.and_then(|r| r.get(k));
                    self.level_dir(k).exists()
                        && (foreign || array_record(self, k).ok().as_ref() != was)
                })
                .collect();
            let stale: Vec<PathBuf> = level_dirs(root)
                .into_iter()
                .filter(|(k, dir)| *k >= n && holds_ctstack_files(dir))
                .map(|(_, dir)| dir)
                .collect();
            let other: Vec<PathBuf> = self
                .other_version_files()
                .iter()
                .map(|name| root.join(name))
                .filter(|p| p.is_file())
                .collect();
            let mut same = previous.clone();
            if let Some(a) = same.as_object_mut() {
                a.remove("complete");
            }
            let mut wanted = incomplete[CTSTACK_KEY].clone();
            if let Some(a) = wanted.as_object_mut() {
                a.remove("complete");
            }
            if !changed.is_empty() || !stale.is_empty() || !other.is_empty() || same != wanted {
                // The root keeps recording the layout of the chunks on disk until
                // those that no longer fit are gone (a run stopped in between
                // finds them changed again and clears them); the new layout is
                // recorded below, after.
                let mut old = previous.clone();
                if let Some(a) = old.as_object_mut() {
                    a.insert("complete".into(), Value::Bool(false));
                }
                let root_files = match old.is_object() {
                    true => group_files(
                        self.ngff,
                        serde_json::Map::from_iter([(CTSTACK_KEY.to_string(), old)]),
                    )?,
                    false => group_files(self.ngff, incomplete.clone())?,
                };
                store.withdraw_as(&root_files)?;
            }
            for path in &other {
                remove_file_if_there(path)?;
            }
            for dir in &stale {
                for name in ARRAY_METADATA {
                    remove_file_if_there(&dir.join(name))?;
                }
                kept.extend(remove_chunks(dir)?);
                remove_dir_if_empty(dir)?;
            }
            for &k in &changed {
                kept.extend(remove_chunks(&self.level_dir(k))?);
            }
            kept.extend(foreign_entries(root));
            sync_dir(root)?;
        }
        // Left alone when it already says this (a finished store of the same
        // layout stays complete until a chunk changes).
        if !self.root_says_complete_with_same_layout()? {
            for (key, bytes) in group_files(self.ngff, incomplete)? {
                store.put_metadata(key, &bytes)?;
            }
        }
        let path = self.store.join(BUILD_FILE);
        if !distributed {
            // A run is no distributed build: no slab may join it, and a
            // prepare after it was killed does not take its chunks for its own.
            // Synced before any chunk changes: after a power loss the old
            // build's file must not vouch for this run's chunks.
            if remove_file_if_there(&path)? {
                sync_dir(&self.store)?;
            }
        } else if !holds(&path, &build) {
            crate::writer::write_atomically_durable(
                &path,
                |file| std::io::Write::write_all(file, &build),
                || Ok(()),
            )?;
        }
        Ok(foreign_notes(kept))
    }

    /// Whether the chunks on disk are known to be this build's (identity
    /// `build`): [`BUILD_FILE`] is this build's (a prepare of it came last), or
    /// there is none and the record names these very inputs (a complete store
    /// made from them). Otherwise they may be another build's, or a killed
    /// run's.
    fn chunks_are_this_builds(&self, build: &[u8]) -> Result<bool, Error> {
        match std::fs::read(self.store.join(BUILD_FILE)) {
            Ok(found) => return Ok(found == build),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => return Ok(false),
        }
        let Some(record) = Record::read(&self.store) else {
            return Ok(false);
        };
        let inputs = InputRecord::stat_all(
            self.pyramid.inputs(),
            self.pyramid.levels()[0],
            self.pyramid.sample_type(),
        )?;
        Ok(record.inputs == inputs)
    }

    /// This build's identity, as [`BUILD_FILE`] holds it: the layout the root
    /// group records and the inputs' names, sizes and times.
    fn build_identity(&self) -> Result<Vec<u8>, Error> {
        let inputs = InputRecord::stat_all(
            self.pyramid.inputs(),
            self.pyramid.levels()[0],
            self.pyramid.sample_type(),
        )?;
        let identity = serde_json::json!({
            "format": "ctstack-zarr-build",
            "attributes": ctstack_attributes(self, false)?,
            "inputs": inputs,
        });
        serde_json::to_vec(&identity)
            .map_err(|e| Error::internal(format!("cannot serialise the build's identity: {e}")))
    }

    /// Refuses a slab or finish of a build that is not the one the store was
    /// last prepared for (see the module docs).
    fn check_build(&self) -> Result<(), Error> {
        let path = self.store.join(BUILD_FILE);
        let found = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::state(
                    &self.store,
                    format!(
                        "not prepared for this build (no {BUILD_FILE}: a finish, or another \
                         build, came since its prepare): run prepare() again, then the slabs"
                    ),
                ));
            }
            Err(e) => return Err(Error::io(&path, "cannot read", e)),
        };
        if found != self.build_identity()? {
            return Err(Error::state(
                &self.store,
                "prepared for another build since this one's prepare (other inputs or \
                 options): its slabs and finish are refused so that the two never mix in one \
                 store; run prepare() again, then the slabs",
            ));
        }
        Ok(())
    }

    /// Takes the store's lock as `share` says (see the module docs), after
    /// checking (or creating) the folder as [`ZarrPlan::claim`] does, so that
    /// no lock file is ever made in a folder that is not a store.
    fn lock(&self, share: Share) -> Result<OutputLock, Error> {
        self.claim()?;
        OutputLock::try_acquire(&self.store, share)?.map_err(|holder| {
            // Refused an exclusive lock: the holders may be slabs, which hold it
            // shared: its file names only the slab that created it, which may
            // have ended while others run (a shared request is refused only by
            // an exclusive holder, which names itself).
            let holders = match share {
                Share::Exclusive => format!(
                    "{holder} holds its {LOCK_FILE}, or slabs of a distributed build do: \
                     the file names only the slab that created it, and others may hold it \
                     still; do not remove it while any runs"
                ),
                Share::Shared => format!("{holder} holds its {LOCK_FILE}"),
            };
            Error::state(
                &self.store,
                format!(
                    "another ctstack run is writing this store ({holders}): left untouched; \
                     wait for it to end, or stop it (a killed run's lock is free again)"
                ),
            )
        })
    }

    /// Whether the root group already holds this plan's complete attributes
    /// (then a prepare has nothing to record).
    fn root_says_complete_with_same_layout(&self) -> Result<bool, Error> {
        let Some(current) = read_ctstack_attribute(&self.store)? else {
            return Ok(false);
        };
        let complete = ctstack_attributes(self, true)?;
        Ok(current == complete[CTSTACK_KEY])
    }

    fn run_slab_in(
        &self,
        store: &Arc<AtomicFolder>,
        span: Range<usize>,
        progress: &mut dyn FnMut(u64, u64),
        cancel: &CancelFlag,
    ) -> Result<u64, Error> {
        self.check_span(&span)?;
        let arrays = self.arrays(store)?;
        sink::write_span(self, &arrays, span, progress, cancel)
    }

    /// Refuses a slab that is empty, beyond the stack or off the alignment.
    fn check_span(&self, span: &Range<usize>) -> Result<(), Error> {
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
        Ok(())
    }

    /// Checks, syncs and declares the store complete (see [`ZarrPlan::finish`]);
    /// returns every level's chunk files, `(key, path)`.
    fn finish_in(&self, store: &Arc<AtomicFolder>) -> Result<Vec<(String, PathBuf)>, Error> {
        let all = self.chunk_files(store)?;
        for (_, path) in &all {
            match std::fs::metadata(path) {
                Ok(meta) if meta.is_file() => {}
                Ok(_) => {
                    return Err(Error::state(
                        path,
                        "is not a file: a chunk file was expected here",
                    ));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Error::state(
                        path,
                        "missing: a slab did not finish (run it again, then finish)",
                    ));
                }
                // Not a slab's fault: the system's error, as it is.
                Err(e) => return Err(Error::io(path, "cannot inspect the chunk file", e)),
            }
        }
        for k in 0..self.levels().len() {
            let prefix = format!("{k}/");
            let chunks: Vec<PathBuf> = all
                .iter()
                .filter(|(key, _)| key.starts_with(&prefix))
                .map(|(_, path)| path.clone())
                .collect();
            // The chunks (and the renames that put them there) are durable
            // before the metadata that makes the level an array.
            sync_files_and_folders(&chunks)?;
            sync_dir(&self.level_dir(k))?;
            for (key, bytes) in array_files(self, k)? {
                store.put_metadata(&key, &bytes)?;
            }
        }
        for (key, bytes) in group_files(self.ngff, complete_attributes(self)?)? {
            store.put_metadata(key, &bytes)?;
        }
        // The build is over: a slab of it can no longer join.
        remove_file_if_there(&self.store.join(BUILD_FILE))?;
        Ok(all)
    }

    /// Every level's chunk (shard) files, `(key, path)`, level by level in grid order.
    fn chunk_files(&self, store: &Arc<AtomicFolder>) -> Result<Vec<(String, PathBuf)>, Error> {
        let mut files = Vec::new();
        for array in self.arrays(store)? {
            let grid = array.chunk_grid_shape().to_vec();
            for z in 0..grid[0] {
                for y in 0..grid[1] {
                    for x in 0..grid[2] {
                        let key = array.chunk_key(&[z, y, x]).as_str().to_string();
                        let path = store.path_of(&key);
                        files.push((key, path));
                    }
                }
            }
        }
        Ok(files)
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
            notes: Vec::new(),
        }
    }

    /// The root group's metadata file, the one that says whose store it is.
    fn group_key(&self) -> &'static str {
        match self.ngff {
            Ngff::V0_4 => ".zattrs",
            Ngff::V0_5 => "zarr.json",
        }
    }

    /// The other Zarr version's root group files.
    fn other_version_files(&self) -> &'static [&'static str] {
        match self.ngff {
            Ngff::V0_4 => &["zarr.json"],
            Ngff::V0_5 => &[".zgroup", ".zattrs"],
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

    /// Makes the store's folder ours: creates it, or checks that it is an empty
    /// folder or a ctstack store (says which: `true` for a ctstack store).
    /// Anything else is refused and left untouched.
    fn claim(&self) -> Result<bool, Error> {
        let root = &self.store;
        match std::fs::metadata(root) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(root)
                    .map_err(|e| Error::io(root, "cannot create the store's folder", e))?;
                // The new folder's own entry, durable before anything in it is.
                if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
                    sync_dir(parent)?;
                }
                Ok(false)
            }
            Err(e) => Err(Error::io(root, "cannot inspect the store's path", e)),
            Ok(meta) if !meta.is_dir() => Err(Error::state(
                root,
                "exists and is not a folder: left untouched; choose another store path",
            )),
            Ok(_) => {
                if read_ctstack_attribute(root)?.is_some_and(|a| !a.is_null()) {
                    return Ok(true);
                }
                // A run killed before its first rename leaves only its temporary
                // files (exact names of ctstack's): the folder is still empty of
                // anything else, so it is claimed as empty.
                let empty = std::fs::read_dir(root)
                    .map_err(|e| Error::io(root, "cannot list", e))?
                    .flatten()
                    .all(|entry| {
                        let name = entry.file_name().to_string_lossy().into_owned();
                        (crate::temp::temp_target(&name).is_some() || name == LOCK_FILE)
                            && entry.file_type().is_ok_and(|t| t.is_file())
                    });
                if empty {
                    return Ok(false);
                }
                Err(Error::state(
                    root,
                    "holds files and is not a ctstack OME-Zarr store (no \"ctstack\" attribute \
                     in its root zarr.json or .zattrs): left untouched; ctstack writes a store \
                     only into a new or empty folder, or over its own store: choose another \
                     store path",
                ))
            }
        }
    }
}

/// The files ctstack writes at a store's root (beside the level folders and
/// the lock).
const ROOT_FILES: [&str; 5] = ["zarr.json", ".zgroup", ".zattrs", RECORD_FILE, BUILD_FILE];

/// The file, at the store's root, that names the build the store was last
/// prepared for (see the module docs); removed by `finish`.
pub(crate) const BUILD_FILE: &str = ".ctstack-build.json";

/// The level folders (`<k>`, decimal) of the store at `root`.
fn level_dirs(root: &Path) -> Vec<(usize, PathBuf)> {
    std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let k = name
                .parse::<usize>()
                .ok()
                .filter(|k| k.to_string() == name)?;
            e.file_type().ok()?.is_dir().then(|| (k, e.path()))
        })
        .collect()
}

/// Whether the level folder `dir` holds anything ctstack writes there (array
/// metadata, chunk folders, temporary files), i.e. more than a user's files.
fn holds_ctstack_files(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            ARRAY_METADATA.contains(&name.as_str())
                || name == "c"
                || name.bytes().all(|b| b.is_ascii_digit())
                || crate::temp::temp_target(&name).is_some()
        })
}

/// The notes that name a user's files left in the store.
fn foreign_notes(mut kept: Vec<PathBuf>) -> Vec<String> {
    kept.sort();
    kept.dedup();
    kept.iter()
        .map(|p| format!("{}: not written by ctstack, left in place", p.display()))
        .collect()
}

/// Entries of the store's root that ctstack does not write (a user's files):
/// reported, never removed.
fn foreign_entries(root: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let level = name.parse::<usize>().is_ok_and(|k| k.to_string() == name)
                && e.file_type().is_ok_and(|t| t.is_dir());
            let metadata = ROOT_FILES.contains(&name.as_str()) || name == LOCK_FILE;
            !level && !metadata
        })
        .map(|e| e.path())
        .collect()
}
