//! TIFF structure parsing: header, the image directories (one per page), the
//! walk along their chain, and the pixel layout a page describes (its chunks:
//! strips or tiles). No policy about how pixels are served.
//!
//! Everything here checks every offset and size against the file's length with
//! checked arithmetic, so no byte sequence can make it read out of bounds,
//! allocate without bound or loop.

mod bytes;
mod compression;
mod ifd;
mod layout;
mod tags;
mod walk;

pub use bytes::ByteOrder;
pub use compression::Compression;
pub(crate) use ifd::{Directory, FileHeader};
pub use layout::Photometric;
pub(crate) use layout::{Chunks, ImageLayout};
pub(crate) use walk::{PageAt, PageReader, page_layout};
