//! ctstack turns stacks of CT-scan TIFF slices into thumbnail pyramids as fast as
//! the memory bus allows.
//!
//! An uncompressed TIFF *is* the pixel array, already on disk. ctstack parses the
//! TIFF structure itself, memory-maps the file and views the mapped pixels as
//! `&[u16]` (or `&[u8]`) without decoding or copying; compressed files fall back to
//! the `tiff` crate's decoder.
//!
//! ```no_run
//! use ctstack::Slice;
//!
//! let slice = Slice::open("scan/slice_0000.tif")?;
//! println!("{}x{} {}-bit, {}", slice.width(), slice.height(), slice.bits(), slice.access());
//! let rows = slice.rows::<u16>()?;
//! let brightest = rows.iter().flat_map(|r| r.iter()).max();
//! # Ok::<(), ctstack::Error>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

mod decode;
mod depth;
mod error;
mod ffi;
mod formats;
mod kernels;
mod limits;
mod pyramid;
mod sample;
mod slice;
mod source;
pub mod stack;
mod tiff;
mod writer;

pub use error::{Error, ErrorKind};
pub use formats::Format;
pub use kernels::{Kernel, average_pair, average_pair_with};
pub use limits::Limits;
pub use pyramid::{
    CancelFlag, DEFAULT_MIN_SIZE, LevelShape, MANIFEST_FILE, Plan, Pyramid, PyramidBuilder,
    PyramidLevel, Summary, inputs_of, level_shapes,
};
pub use sample::{Sample, SampleType};
pub use slice::{Access, AccessPath, OpenOptions, Rows, Slice, SliceHeader};
pub use source::ReadMode;
pub use tiff::{ByteOrder, Compression, Photometric};
pub use writer::{write_slice, write_slice_as};
