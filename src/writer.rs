//! Writing slices: uncompressed grayscale TIFF, atomically.
//!
//! A slice is written to a temporary name in the target directory and renamed
//! into place only when complete, so a crash, a kill or a cancel never leaves a
//! partial file under a final name. Temporary names start with `.` and end with
//! [`TEMP_SUFFIX`], so they are recognisable and never mistaken for slices.

use std::fs::{File, Metadata, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::tiff::ByteOrder;
use crate::{Error, Photometric, Sample};

/// The suffix of temporary files.
pub const TEMP_SUFFIX: &str = ".ctstack-tmp";

/// Where the pixel data starts: after the 8-byte header and the IFD (2 + 12 per
/// entry + 4 bytes), at a multiple of 16 so the samples are aligned for a
/// zero-copy view when read back. The 11 entries end at byte 146: 176 leaves room
/// for two more entries without moving the data.
const DATA_OFFSET: u32 = 176;

/// The bytes of a TIFF header and IFD for a `width` x `height` image of `T`, in the
/// host's byte order (so ctstack maps it back without a copy), data at [`DATA_OFFSET`].
fn header<T: Sample>(width: u32, height: u32, photometric: Photometric) -> Vec<u8> {
    let sample_bytes = T::BITS / 8;
    let data_len = width * height * sample_bytes;
    let entries: [(u16, u16, u32); 11] = [
        (256, 4, width),                                   // ImageWidth, LONG
        (257, 4, height),                                  // ImageLength, LONG
        (258, 3, T::BITS),                                 // BitsPerSample, SHORT
        (259, 3, 1),                                       // Compression: none
        (262, 3, u32::from(photometric.tiff_value())),     // PhotometricInterpretation
        (273, 4, DATA_OFFSET),                             // StripOffsets: one strip
        (277, 3, 1),                                       // SamplesPerPixel
        (278, 4, height),                                  // RowsPerStrip: the whole image
        (279, 4, data_len),                                // StripByteCounts
        (284, 3, 1),                                       // PlanarConfiguration: chunky
        (339, 3, u32::from(T::TYPE.tiff_sample_format())), // SampleFormat
    ];
    let ne16 = |v: u16| v.to_ne_bytes();
    let ne32 = |v: u32| v.to_ne_bytes();
    let mut out = Vec::with_capacity(DATA_OFFSET as usize);
    out.extend_from_slice(match ByteOrder::host() {
        ByteOrder::LittleEndian => b"II",
        ByteOrder::BigEndian => b"MM",
    });
    out.extend_from_slice(&ne16(42));
    out.extend_from_slice(&ne32(8));
    out.extend_from_slice(&ne16(entries.len() as u16));
    for (tag, ty, value) in entries {
        out.extend_from_slice(&ne16(tag));
        out.extend_from_slice(&ne16(ty));
        out.extend_from_slice(&ne32(1));
        // A SHORT value sits in the first two bytes of the value field.
        if ty == 3 {
            out.extend_from_slice(&ne16(value as u16));
            out.extend_from_slice(&[0, 0]);
        } else {
            out.extend_from_slice(&ne32(value));
        }
    }
    out.extend_from_slice(&ne32(0)); // no next IFD
    assert!(
        out.len() <= DATA_OFFSET as usize,
        "the IFD outgrew DATA_OFFSET"
    );
    out.resize(DATA_OFFSET as usize, 0);
    out
}

/// Writes `samples` (row-major, `width` x `height`) as an uncompressed grayscale
/// (min-is-black) TIFF at `path`, atomically: through a temporary file renamed
/// into place. The SampleFormat tag says unsigned, signed or float, from `T`.
pub fn write_slice<T: Sample>(
    path: &Path,
    width: u32,
    height: u32,
    samples: &[T],
) -> Result<(), Error> {
    write_slice_as(path, width, height, samples, Photometric::MinIsBlack)
}

/// [`write_slice`] with the given photometric, so a level of a min-is-white stack
/// shows as its input does.
pub fn write_slice_as<T: Sample>(
    path: &Path,
    width: u32,
    height: u32,
    samples: &[T],
    photometric: Photometric,
) -> Result<(), Error> {
    let len = u64::from(width) * u64::from(height) * u64::from(T::BITS / 8);
    if samples.len() as u64 * u64::from(T::BITS / 8) != len
        || len > u64::from(u32::MAX - DATA_OFFSET)
    {
        return Err(Error::usage(format!(
            "{}: cannot write {} samples as a {width}x{height} classic TIFF",
            path.display(),
            samples.len()
        )));
    }
    write_slice_file(path, width, height, samples, photometric).map(|_| ())
}

/// [`write_slice_as`], returning the written file's metadata (what the pyramid's
/// manifest records: size and modification time).
pub(crate) fn write_slice_file<T: Sample>(
    path: &Path,
    width: u32,
    height: u32,
    samples: &[T],
    photometric: Photometric,
) -> Result<Metadata, Error> {
    write_atomically(path, |file| {
        file.write_all(&header::<T>(width, height, photometric))?;
        file.write_all(bytemuck::cast_slice(samples))
    })
}

/// Writes a file at `path` atomically: `fill` writes a temporary file in the same
/// directory, which is renamed into place only once complete (and removed on any
/// error). Returns the complete file's metadata, taken before the rename (a rename
/// keeps size and modification time).
pub(crate) fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut &File) -> std::io::Result<()>,
) -> Result<Metadata, Error> {
    let temp = TempFile::create(path)?;
    let mut file = &temp.file;
    let metadata = fill(&mut file)
        .and_then(|()| file.metadata())
        .map_err(|e| Error::io(path, format!("cannot write {}", temp.describe()), e))?;
    // Dropping `temp` on an error above removes the partial file.
    temp.persist(path)?;
    Ok(metadata)
}

/// A temporary file removed on drop unless persisted.
struct TempFile {
    path: PathBuf,
    file: File,
    persisted: bool,
}

impl TempFile {
    fn create(target: &Path) -> Result<TempFile, Error> {
        static SEQUENCE: AtomicU64 = AtomicU64::new(0);
        let dir = target.parent().unwrap_or(Path::new("."));
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".{name}.{}.{seq}{TEMP_SUFFIX}", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| {
                let what = format!("cannot create {}", describe(&path));
                Error::io(target, what, e)
            })?;
        Ok(TempFile {
            path,
            file,
            persisted: false,
        })
    }

    /// `temporary file NAME`, for messages that name the final path first.
    fn describe(&self) -> String {
        describe(&self.path)
    }

    fn persist(mut self, target: &Path) -> Result<(), Error> {
        std::fs::rename(&self.path, target).map_err(|e| {
            let what = format!("cannot rename {} into place", self.describe());
            Error::io(target, what, e)
        })?;
        self.persisted = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// `temporary file NAME` for the temporary file at `path`.
fn describe(path: &Path) -> String {
    let name = path.file_name().unwrap_or(path.as_os_str());
    format!("temporary file {}", name.to_string_lossy())
}

/// Whether `name` is one of our temporary files.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(TEMP_SUFFIX)
}
