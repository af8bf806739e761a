//! The Compression tag: the codes ctstack reads, and the names of those it does not.

/// The Compression tag's value, named.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// 1: uncompressed; the only encoding ctstack reads itself.
    None,
    /// 5: LZW.
    Lzw,
    /// 8 or 32946: Deflate (zlib).
    Deflate,
    /// 32773: PackBits.
    PackBits,
    /// 7: JPEG ("new-style", TIFF Technical Note 2), 8-bit baseline, extended or
    /// progressive. Old-style JPEG (6) and lossless JPEG are refused.
    Jpeg,
    /// 50000: Zstandard.
    Zstd,
    /// Any other value, kept as found: refused, by name where it has one.
    Other(u16),
}

impl Compression {
    pub(crate) fn from_tag(value: u64) -> Compression {
        match value {
            1 => Compression::None,
            5 => Compression::Lzw,
            8 | 32946 => Compression::Deflate,
            32773 => Compression::PackBits,
            7 => Compression::Jpeg,
            50000 => Compression::Zstd,
            v => Compression::Other(u16::try_from(v).unwrap_or(u16::MAX)),
        }
    }

    /// A short human name: `none`, `LZW`, `Deflate`, ..., `LZMA (34925)`.
    pub fn name(self) -> String {
        match self {
            Compression::None => "none".into(),
            Compression::Lzw => "LZW".into(),
            Compression::Deflate => "Deflate".into(),
            Compression::PackBits => "PackBits".into(),
            Compression::Jpeg => "JPEG".into(),
            Compression::Zstd => "ZSTD".into(),
            Compression::Other(v) => match other_name(v) {
                Some(name) => format!("{name} ({v})"),
                None => format!("compression {v}"),
            },
        }
    }

    /// The compression with its predictor, as messages name an encoding: `LZW`,
    /// `LZW with predictor 2`, `predictor 2` (uncompressed), `none`.
    pub(crate) fn with_predictor(self, predictor: u16) -> String {
        match (self, predictor) {
            (c, 1) => c.name(),
            (Compression::None, p) => format!("predictor {p}"),
            (c, p) => format!("{} with predictor {p}", c.name()),
        }
    }

    /// Whether ctstack (or the `tiff` crate behind it) decodes this compression.
    pub fn is_readable(self) -> bool {
        !matches!(self, Compression::Other(_))
    }
}

/// The names of registered compression codes ctstack does not read (TIFF 6.0,
/// the TIFF tag registry, libtiff's tiff.h).
fn other_name(code: u16) -> Option<&'static str> {
    Some(match code {
        2 => "CCITT modified Huffman RLE",
        3 => "CCITT Group 3 fax",
        4 => "CCITT Group 4 fax",
        6 => "old-style JPEG",
        9 => "JBIG (T.85)",
        10 => "JBIG (T.43)",
        32766 => "NeXT 2-bit RLE",
        32771 => "CCITT RLEW",
        32809 => "ThunderScan",
        32895..=32898 => "IT8",
        32908 => "Pixar film",
        32909 => "PixarLog",
        32947 => "Kodak DCS",
        34661 => "JBIG",
        34676 => "SGI LogLuv",
        34677 => "SGI LogL",
        34712 => "JPEG 2000",
        34887 => "LERC",
        34892 => "lossy JPEG (DNG)",
        34925 => "LZMA",
        50001 => "WebP",
        50002 => "JPEG XL",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_are_named_and_unknown_ones_numbered() {
        assert_eq!(Compression::from_tag(34925).name(), "LZMA (34925)");
        assert_eq!(Compression::from_tag(6).name(), "old-style JPEG (6)");
        assert_eq!(Compression::from_tag(34887).name(), "LERC (34887)");
        assert_eq!(Compression::from_tag(12345).name(), "compression 12345");
        assert_eq!(Compression::from_tag(70000).name(), "compression 65535");
        assert_eq!(Compression::from_tag(50000), Compression::Zstd);
        assert!(Compression::from_tag(32946).is_readable());
        assert!(!Compression::from_tag(6).is_readable());
    }
}
