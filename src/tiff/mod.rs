//! TIFF structure parsing: header, the image directories (one per page), the
//! walk along their chain, the index of a plan's pages (`index.rs`: the walk's
//! findings kept for the readers), and the pixel layout a page describes (its chunks:
//! strips or tiles). No policy about how pixels are served.
//!
//! Everything here checks every offset and size against the file's length with
//! checked arithmetic, so no byte sequence can make it read out of bounds,
//! allocate without bound or loop.

mod bytes;
mod compression;
mod ifd;
mod index;
mod layout;
mod resolution;
mod tags;
mod walk;

pub use compression::Compression;
pub(crate) use ifd::{Directory, FileHeader};
pub(crate) use index::{IndexedPage, PageIndex, locate, locate_in_memory};
pub use layout::Photometric;
pub(crate) use layout::{Chunks, ImageLayout};
pub(crate) use resolution::Resolution;
#[cfg(test)]
pub(crate) use walk::probe;
pub(crate) use walk::{PageAt, PageReader, page_layout};
