//! Caps on what a file can make ctstack allocate or do.

/// Caps on what one file may make ctstack allocate or walk.
///
/// New caps may be added in a minor release: start from [`Limits::default`] (or
/// [`Limits::unlimited`]) and set the fields you change.
///
/// Every TIFF is treated as hostile: a header can claim any size. These caps are
/// checked before any allocation that depends on the file's claims, and a file
/// that goes beyond them gets [`Error::LimitsExceeded`](crate::Error::LimitsExceeded).
///
/// ```
/// use ctstack::{Error, Limits, OpenOptions, Slice, write_slice};
///
/// let path = std::env::temp_dir().join(format!("ctstack-doc-limits-{}.tif", std::process::id()));
/// write_slice::<u16>(&path, 64, 64, &vec![0; 64 * 64])?;
/// // A viewer that only ever shows thumbnails refuses anything bigger than 32x32.
/// let mut limits = Limits::default();
/// limits.max_pixels = 32 * 32;
/// let options = OpenOptions {
///     limits,
///     ..OpenOptions::default()
/// };
/// let refused = Slice::open_with(&path, &options).unwrap_err();
/// assert!(matches!(refused, Error::LimitsExceeded { .. }), "{refused}");
/// assert!(Slice::open(&path).is_ok()); // the default limits allow 2^30 pixels
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest image accepted, in pixels (width x height).
    pub max_pixels: u64,
    /// Largest pixel buffer ctstack will allocate for one slice (copied or decoded), in bytes.
    pub max_decoded_bytes: u64,
    /// Largest entry count accepted in the image's directory (IFD).
    pub max_ifd_entries: u64,
    /// Largest ratio of decoded bytes to compressed bytes accepted for a compressed slice.
    ///
    /// Deflate cannot exceed about 1032:1 and TIFF's LZW about 1400:1, so a file
    /// that claims more is a decompression bomb, refused before decoding starts.
    /// ZSTD can (a blank slice reaches 10000:1, an RLE block 32768:1): a ZSTD page
    /// beyond this ratio and within 32768:1 is inflated once first, its bytes
    /// counted in a 64 KiB buffer, and accepted if it holds what it claims.
    pub max_compression_ratio: u64,
    /// Longest chain of pages (IFDs) walked in one file: a multi-page stack of
    /// more pages is refused (the walk is also cycle-safe).
    pub max_pages: u64,
}

impl Limits {
    /// No caps beyond what the file's own length implies (use with trusted files only).
    pub const fn unlimited() -> Limits {
        Limits {
            max_pixels: u64::MAX,
            max_decoded_bytes: u64::MAX,
            max_ifd_entries: u64::MAX,
            max_compression_ratio: u64::MAX,
            max_pages: u64::MAX,
        }
    }
}

impl Default for Limits {
    /// Generous for CT data (a 32768 x 32768 16-bit slice, 2 GiB, fits), small enough
    /// that a forged header cannot exhaust the memory of a desktop machine.
    fn default() -> Limits {
        Limits {
            max_pixels: 1 << 30,
            max_decoded_bytes: 2 << 30,
            max_ifd_entries: 4096,
            max_compression_ratio: 4096,
            max_pages: 1 << 17,
        }
    }
}
