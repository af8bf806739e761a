//! ctstack turns stacks of CT-scan slices into thumbnail pyramids as fast as the
//! memory bus allows.
//!
//! An uncompressed TIFF (or an 8-bit gray BMP, what Bruker's NRecon writes) *is*
//! the pixel array, already on disk. ctstack parses the file structure itself,
//! memory-maps the file and views the mapped pixels as `&[u16]` (or `&[u8]`,
//! `&[i16]`, `&[f32]`) without decoding or copying; compressed TIFFs are decoded
//! (LZW by ctstack, the rest by the `tiff` crate), PNG and JPEG by the `png` and
//! `zune-jpeg` crates, color converted to gray.
//!
//! - [`Slice`]: one slice, its [`SampleType`] and how its pixels arrived ([`Access`]).
//! - [`PyramidBuilder`] / [`Plan`]: the 2x2x2 pyramid of a stack, streamed, resumable
//!   (by a manifest), atomic; [`Pyramid`] reads a built one back.
//! - `ZarrBuilder` / `ZarrPlan` (feature `ome-zarr`, on by default): the stack and its
//!   pyramid as an OME-Zarr multiscale image (napari, Fiji, neuroglancer), the same levels.
//! - [`stack`]: which files of a folder form the stack (CTHarvester's rule).
//! - [`Crop`] / [`CropPlan`]: a box and a slice range of a stack, at any pyramid
//!   level, into files or an array (the harvest).
//!
//! ```no_run
//! use ctstack::{PyramidBuilder, Slice};
//!
//! let slice = Slice::open("scan/slice_0000.tif")?;
//! println!("{}x{} {}, {}", slice.width(), slice.height(), slice.sample_type(), slice.access());
//! let rows = slice.rows::<u16>()?;
//! let brightest = rows.iter().flat_map(|r| r.iter()).max();
//!
//! let summary = PyramidBuilder::from_dir("scan")?.plan()?.run(&mut |_, _| {}, &Default::default())?;
//! println!("{} rebuilt, {} kept", summary.rebuilt, summary.kept);
//! # Ok::<(), ctstack::Error>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

mod bytes;
mod crop;
mod decode;
mod depth;
mod durable;
mod error;
mod ffi;
mod formats;
mod fs_retry;
mod kernels;
mod limits;
mod pyramid;
mod region;
mod sample;
mod slice;
mod source;
pub mod stack;
mod temp;
mod threads;
mod tiff;
mod voxel;
mod writer;
#[cfg(feature = "ome-zarr")]
mod zarr;

pub use bytes::ByteOrder;
pub use crop::{CROP_RECORD_FILE, Crop, CropPlan, CropSummary, Naming, OutputFormat};
pub use error::{Dialect, Error, ErrorKind};
pub use formats::Format;
pub use kernels::{Kernel, average_pair, average_pair_with};
pub use limits::Limits;
pub use pyramid::{
    CancelFlag, DEFAULT_MIN_SIZE, LOCK_FILE, LevelShape, MANIFEST_FILE, Plan, Pyramid,
    PyramidBuilder, PyramidLevel, Summary, inputs_of, level_shapes,
};
pub use sample::{Sample, SampleType};
pub use slice::{Access, AccessPath, OpenOptions, Rows, Slice, SliceHeader};
pub use source::ReadMode;
pub use tiff::{Compression, Photometric};
pub use voxel::{VoxelSize, VoxelSizeLookup};
pub use writer::{write_slice, write_slice_as};
#[cfg(feature = "ome-zarr")]
pub use zarr::{
    BloscCompressor, BloscShuffle, ChunkCompression, DEFAULT_CHUNKS, Ngff, ZarrBuilder, ZarrPlan,
    ZarrSummary,
};

/// The documentation's pages, whose Rust examples `cargo test --doc` compiles and
/// runs (from the package's folder, on its fixtures): a renamed or removed API
/// fails the tests. tests/docs.rs checks that every page with a Rust block is here.
#[cfg(doctest)]
mod doc_pages {
    #[doc = include_str!("../README.md")]
    struct Readme;
    #[doc = include_str!("../docs/rust.md")]
    struct Rust;
    #[doc = include_str!("../docs/harvest.md")]
    struct Harvest;
}
