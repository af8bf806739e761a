//! TIFF structure parsing: header, the image directories (one per page), and the pixel layout
//! it describes. Parsing only: no I/O, no policy about how pixels are served.
//!
//! Everything here works on a byte slice holding the whole file and checks every
//! offset and size against its length with checked arithmetic, so no byte
//! sequence can make it read out of bounds, allocate without bound or loop.

mod bytes;
mod compression;
mod ifd;
mod layout;
mod tags;

pub use bytes::ByteOrder;
pub use compression::Compression;
pub(crate) use ifd::FileHeader;
pub use layout::Photometric;
pub(crate) use layout::{Chunks, ImageLayout, page_count};
