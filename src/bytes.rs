//! Byte order: the ground floor every reader and writer of multi-byte
//! samples shares (the TIFF parser, the formats, the samples' decoding, the
//! writers).

/// The order of the bytes of a multi-byte sample or integer: a TIFF's (its first
/// two bytes: `II` or `MM`), a format's convention, the host's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    /// `II`: least significant byte first (what x86-64 and aarch64 use).
    LittleEndian,
    /// `MM`: most significant byte first.
    BigEndian,
}

impl ByteOrder {
    /// The byte order of the machine running this code.
    pub const fn host() -> ByteOrder {
        if cfg!(target_endian = "little") {
            ByteOrder::LittleEndian
        } else {
            ByteOrder::BigEndian
        }
    }

    /// `"little-endian"` or `"big-endian"`.
    pub const fn name(self) -> &'static str {
        match self {
            ByteOrder::LittleEndian => "little-endian",
            ByteOrder::BigEndian => "big-endian",
        }
    }
}
