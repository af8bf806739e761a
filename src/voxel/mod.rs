//! A stack's physical voxel size, and where it came from: the one rule that
//! the OME-Zarr metadata, a crop's resolution and `ctstack info` follow.
//!
//! 1. The first slice's own size: TIFF resolution tags with a length unit
//!    (inch, centimetre), or ImageJ's description (`unit=`, `spacing=`)
//!    (`tags.rs`).
//! 2. Else the scanner's file beside the slices: a Bruker SkyScan NRecon
//!    `*_rec.log`, a Nikon `.xtekct`, a GE phoenix `.pcr` / `.pca`
//!    (`sidecar.rs`, which lists the fields read).
//! 3. Else unknown.
//!
//! A size the caller gives (`ZarrBuilder::voxel_size`, `--voxel-size`) wins
//! over all of them; that choice is the caller's, not made here.

mod sidecar;
mod tags;

use std::path::{Path, PathBuf};

/// A stack's physical voxel size and where it came from.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct VoxelSize {
    /// z, y, x in micrometres.
    pub micrometres: [f64; 3],
    /// Where it came from, for a note: `the resolution tags of s0.tif (z taken
    /// equal to x)`, `sample_rec.log ([Reconstruction] Pixel Size (um), a
    /// Bruker SkyScan NRecon log)`.
    pub source: String,
    /// The scanner's file it was read from; `None` when the slice's own tags
    /// gave it.
    pub sidecar: Option<PathBuf>,
}

/// What [`VoxelSize::of_stack`] found: the size, if known, and what the user
/// should know (a scanner's file with a malformed field, files that disagree).
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct VoxelSizeLookup {
    /// The size, if known.
    pub size: Option<VoxelSize>,
    /// Warnings, each naming its file.
    pub warnings: Vec<String>,
}

impl VoxelSize {
    /// The voxel size of the stack whose first slice is the file
    /// `first_slice`, by the rule of the module docs: its own tags, else the
    /// scanner's file in its folder. Never fails: what cannot be read gives no
    /// size (and a warning when a scanner's file is malformed).
    pub fn of_stack(first_slice: impl AsRef<Path>) -> VoxelSizeLookup {
        let first = first_slice.as_ref();
        match tags::from_tags(first) {
            Some((micrometres, source)) => VoxelSizeLookup {
                size: Some(VoxelSize {
                    micrometres,
                    source,
                    sidecar: None,
                }),
                warnings: Vec::new(),
            },
            None => VoxelSize::from_sidecar(first),
        }
    }

    /// Step 2 alone: the scanner's file in `first_slice`'s folder (for a caller
    /// that has read the slice's own size already, as a crop reads any format's).
    pub(crate) fn from_sidecar(first_slice: &Path) -> VoxelSizeLookup {
        let lookup = sidecar::find(first_slice);
        VoxelSizeLookup {
            size: lookup.found.map(|s| VoxelSize {
                micrometres: s.micrometres,
                source: format!(
                    "{} ({}; the slices carry none)",
                    s.path.file_name().map_or_else(
                        || s.path.display().to_string(),
                        |n| n.to_string_lossy().into_owned()
                    ),
                    s.fields
                ),
                sidecar: Some(s.path),
            }),
            warnings: lookup.warnings,
        }
    }

    /// The size in micrometres, short: `12.5 um` when cubic, else
    /// `25 x 12.5 x 12.5 um (z, y, x)`.
    pub fn describe(&self) -> String {
        let [z, y, x] = self.micrometres;
        if z == y && y == x {
            format!("{x} um")
        } else {
            format!("{z} x {y} x {x} um (z, y, x)")
        }
    }

    /// `voxel size 12.5 um from sample_rec.log (...)`: the size and its source.
    pub fn note(&self) -> String {
        format!("voxel size {} from {}", self.describe(), self.source)
    }
}
