//! The TIFF tags and field types ctstack reads (TIFF 6.0, BigTIFF).

/// Tags read from the image directory. Others are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub(crate) enum Tag {
    NewSubfileType = 254,
    SubfileType = 255,
    ImageWidth = 256,
    ImageLength = 257,
    BitsPerSample = 258,
    Compression = 259,
    PhotometricInterpretation = 262,
    FillOrder = 266,
    ImageDescription = 270,
    StripOffsets = 273,
    SamplesPerPixel = 277,
    RowsPerStrip = 278,
    StripByteCounts = 279,
    PlanarConfiguration = 284,
    Predictor = 317,
    TileWidth = 322,
    TileLength = 323,
    TileOffsets = 324,
    TileByteCounts = 325,
    SampleFormat = 339,
    /// SGI's volume extension: planes stacked in one IFD.
    ImageDepth = 32997,
    /// SGI's volume extension: planes per tile.
    TileDepth = 32998,
}

impl Tag {
    pub fn name(self) -> &'static str {
        match self {
            Tag::NewSubfileType => "NewSubfileType",
            Tag::SubfileType => "SubfileType",
            Tag::ImageWidth => "ImageWidth",
            Tag::ImageLength => "ImageLength",
            Tag::BitsPerSample => "BitsPerSample",
            Tag::Compression => "Compression",
            Tag::PhotometricInterpretation => "PhotometricInterpretation",
            Tag::FillOrder => "FillOrder",
            Tag::ImageDescription => "ImageDescription",
            Tag::StripOffsets => "StripOffsets",
            Tag::SamplesPerPixel => "SamplesPerPixel",
            Tag::RowsPerStrip => "RowsPerStrip",
            Tag::StripByteCounts => "StripByteCounts",
            Tag::PlanarConfiguration => "PlanarConfiguration",
            Tag::Predictor => "Predictor",
            Tag::TileWidth => "TileWidth",
            Tag::TileLength => "TileLength",
            Tag::TileOffsets => "TileOffsets",
            Tag::TileByteCounts => "TileByteCounts",
            Tag::SampleFormat => "SampleFormat",
            Tag::ImageDepth => "ImageDepth",
            Tag::TileDepth => "TileDepth",
        }
    }
}

/// The size in bytes of one value of a TIFF field type (TIFF 6.0 and BigTIFF),
/// or `None` for a type neither defines.
pub(crate) fn field_type_size(field_type: u16) -> Option<u64> {
    match field_type {
        1 | 2 | 6 | 7 => Some(1),              // BYTE, ASCII, SBYTE, UNDEFINED
        3 | 8 => Some(2),                      // SHORT, SSHORT
        4 | 9 | 11 | 13 => Some(4),            // LONG, SLONG, FLOAT, IFD
        5 | 10 | 12 | 16 | 17 | 18 => Some(8), // RATIONAL, SRATIONAL, DOUBLE, LONG8, SLONG8, IFD8
        _ => None,
    }
}

/// A field type that holds unsigned integers, with its size in bytes.
///
/// Other types (ASCII, RATIONAL, FLOAT, ...) are only skipped: none of the tags
/// ctstack reads may use them.
pub(crate) fn unsigned_type_size(field_type: u16) -> Option<u64> {
    match field_type {
        1 | 7 => Some(1),   // BYTE, UNDEFINED
        3 => Some(2),       // SHORT
        4 | 13 => Some(4),  // LONG, IFD
        16 | 18 => Some(8), // LONG8, IFD8 (BigTIFF)
        _ => None,
    }
}
