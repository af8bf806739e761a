//! Writing slices: uncompressed grayscale TIFF, atomically.
//!
//! A slice is written to a temporary name in the target directory and renamed
//! into place only when complete, so a crash, a kill or a cancel never leaves a
//! partial file under a final name. Temporary files are made, named, told by
//! their names and swept by one module, `src/temp.rs`.
//!
//! Every rename and removal ctstack makes goes through [`rename`], [`remove_file`]
//! and [`remove_empty_dir`] here, so that a platform's quirk (Windows' sharing
//! violations) is handled in one place.
//!
//! Atomic is not durable: after a power loss a renamed file may be empty or stale
//! until its data and its folder are synced (`src/durable.rs`). [`write_atomically`]
//! leaves that to the caller, which batches it before the record that vouches for
//! the file; [`write_atomically_durable`] syncs both before it returns (records).

use std::fs::{File, Metadata};
use std::io::Write;
use std::path::Path;

use crate::bytes::ByteOrder;
use crate::temp::TempFile;
use crate::tiff::Resolution;
use crate::{Error, Photometric, Sample};

/// Where the pixel data starts when the IFD has no resolution tags: after the
/// 8-byte header and the IFD (2 + 12 per entry + 4 bytes), at a multiple of 16 so
/// the samples are aligned for a zero-copy view when read back. The 11 entries end
/// at byte 146: 176 leaves room for two more entries without moving the data.
const DATA_OFFSET: u32 = 176;

/// Where the pixel data starts for a header with `entries` IFD entries and
/// `extra` bytes of out-of-line values after the IFD (at an 8-byte boundary):
/// [`DATA_OFFSET`] when they fit before it, else the next multiple of 16.
fn layout(entries: usize, extra: usize) -> (usize, u32) {
    let ifd_end = 8 + 2 + 12 * entries + 4;
    let extra_at = ifd_end.next_multiple_of(8);
    let data = (extra_at + extra)
        .next_multiple_of(16)
        .max(DATA_OFFSET as usize);
    (extra_at, data as u32)
}

/// The bytes of a TIFF header and IFD for a `width` x `height` image of `T`, in the
/// host's byte order (so ctstack maps it back without a copy), and the offset where
/// the pixel data follows them. Without a resolution the data is at [`DATA_OFFSET`]
/// (the files every pyramid has written); with one, the two RATIONAL values follow
/// the IFD and the data starts after them.
fn header<T: Sample>(
    width: u32,
    height: u32,
    photometric: Photometric,
    resolution: Option<Resolution>,
) -> (Vec<u8>, u32) {
    let sample_bytes = T::BITS / 8;
    let data_len = width * height * sample_bytes;
    let n = if resolution.is_some() { 14 } else { 11 };
    let (extra_at, data_offset) = layout(n, if resolution.is_some() { 16 } else { 0 });
    // (tag, field type, value); entries in ascending tag order, as TIFF requires.
    let mut entries: Vec<(u16, u16, u32)> = vec![
        (256, 4, width),                               // ImageWidth, LONG
        (257, 4, height),                              // ImageLength, LONG
        (258, 3, T::BITS),                             // BitsPerSample, SHORT
        (259, 3, 1),                                   // Compression: none
        (262, 3, u32::from(photometric.tiff_value())), // PhotometricInterpretation
        (273, 4, data_offset),                         // StripOffsets: one strip
        (277, 3, 1),                                   // SamplesPerPixel
        (278, 4, height),                              // RowsPerStrip: the whole image
        (279, 4, data_len),                            // StripByteCounts
    ];
    if resolution.is_some() {
        entries.push((282, 5, extra_at as u32)); // XResolution, RATIONAL (offset)
        entries.push((283, 5, extra_at as u32 + 8)); // YResolution, RATIONAL (offset)
    }
    entries.push((284, 3, 1)); // PlanarConfiguration: chunky
    if let Some(r) = resolution {
        entries.push((296, 3, u32::from(r.unit))); // ResolutionUnit
    }
    entries.push((339, 3, u32::from(T::TYPE.tiff_sample_format()))); // SampleFormat
    let ne16 = |v: u16| v.to_ne_bytes();
    let ne32 = |v: u32| v.to_ne_bytes();
    let mut out = Vec::with_capacity(data_offset as usize);
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
    if let Some(r) = resolution {
        out.resize(extra_at, 0);
        for (num, den) in [r.x, r.y] {
            out.extend_from_slice(&ne32(num));
            out.extend_from_slice(&ne32(den));
        }
    }
    assert!(
        out.len() <= data_offset as usize,
        "the IFD outgrew the data offset"
    );
    out.resize(data_offset as usize, 0);
    (out, data_offset)
}

/// Writes `samples` (row-major, `width` x `height`) as an uncompressed grayscale
/// (min-is-black) TIFF at `path`, atomically: through a temporary file renamed
/// into place. The SampleFormat tag says unsigned, signed or float, from `T`.
/// A file already at `path` is replaced, as `std::fs::write` would: the caller
/// named it. (ctstack's own commands never call this on a name they have not
/// checked is theirs: see `src/crop/record.rs` and `PyramidBuilder`.)
///
/// Atomic, not synced: a reader sees the old file or the whole new one, never
/// part of one, but after a power loss the file may be empty or missing until
/// the system has written it back (seconds). To make it durable, sync the file
/// (`File::open(path)?.sync_all()`) and, on Unix, its folder (open the folder
/// and `sync_all` it) before anything relies on it. The pyramid and the crop do
/// that for their outputs before they report them done.
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
    write_tiff_file(path, width, height, samples, photometric, None, false)
}

/// [`write_slice_file`] with the resolution tags, if given, and the data synced
/// before the rename if `synced` ([`write_atomically_synced`]). The caller has
/// checked that `samples` holds `width * height` samples and that they fit a
/// classic TIFF ([`fits_classic_tiff`]).
pub(crate) fn write_tiff_file<T: Sample>(
    path: &Path,
    width: u32,
    height: u32,
    samples: &[T],
    photometric: Photometric,
    resolution: Option<Resolution>,
    synced: bool,
) -> Result<Metadata, Error> {
    let fill = |file: &mut &File| {
        let (header, _) = header::<T>(width, height, photometric, resolution);
        file.write_all(&header)?;
        file.write_all(bytemuck::cast_slice(samples))
    };
    if synced {
        write_atomically_synced(path, fill)
    } else {
        write_atomically(path, fill)
    }
}

/// Whether `bytes` of pixel data fit one strip of a classic TIFF as ctstack writes it
/// (offsets and counts are 32-bit).
pub(crate) fn fits_classic_tiff(bytes: u64) -> bool {
    bytes <= u64::from(u32::MAX - 256)
}

/// Writes a file at `path` atomically: `fill` writes a temporary file in the same
/// directory, which is renamed into place only once complete (and removed on any
/// error). Returns the complete file's metadata, read once the file is closed and
/// in place (Windows sets the last-write time when the last handle closes). Nothing is synced: the caller syncs the
/// file ([`crate::durable::sync_path`]) and its folder before a record vouches
/// for it.
pub(crate) fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut &File) -> std::io::Result<()>,
) -> Result<Metadata, Error> {
    write_temp_then_rename(path, fill, Durability::<fn() -> _>::Renamed)
}

/// [`write_atomically`], durable when it returns: the data is synced, then
/// `before_rename` runs (a record makes what it vouches for durable there),
/// then the rename, then the folder is synced.
pub(crate) fn write_atomically_durable(
    path: &Path,
    fill: impl FnOnce(&mut &File) -> std::io::Result<()>,
    before_rename: impl FnOnce() -> Result<(), Error>,
) -> Result<Metadata, Error> {
    write_temp_then_rename(path, fill, Durability::Durable(before_rename))
}

/// [`write_atomically`] with the data synced before the rename, so the name
/// never points at data still in the page cache; the caller syncs the folder
/// (once for many files) before reporting the file done.
pub(crate) fn write_atomically_synced(
    path: &Path,
    fill: impl FnOnce(&mut &File) -> std::io::Result<()>,
) -> Result<Metadata, Error> {
    write_temp_then_rename(path, fill, Durability::<fn() -> _>::DataSynced)
}

/// How much of a write [`write_temp_then_rename`] makes durable before it
/// returns.
enum Durability<B> {
    /// Nothing: the caller syncs.
    Renamed,
    /// The data, before the rename; the caller syncs the folder.
    DataSynced,
    /// The data, then `B` runs, then the rename, then the folder is synced.
    Durable(B),
}

/// The one atomic write: `fill` writes a temporary file beside `path`
/// ([`TempFile`]), synced as `durability` says, renamed into place.
fn write_temp_then_rename<B: FnOnce() -> Result<(), Error>>(
    path: &Path,
    fill: impl FnOnce(&mut &File) -> std::io::Result<()>,
    durability: Durability<B>,
) -> Result<Metadata, Error> {
    let temp = TempFile::create(path)?;
    let mut file = temp.file();
    fill(&mut file).map_err(|e| Error::io(path, format!("cannot write {}", temp.describe()), e))?;
    let folder = match durability {
        Durability::Renamed => false,
        Durability::DataSynced => {
            crate::durable::sync_file(file, path)?;
            false
        }
        Durability::Durable(before_rename) => {
            crate::durable::sync_file(file, path)?;
            before_rename()?;
            true
        }
    };
    // Dropping `temp` on an error above removes the partial file.
    temp.persist(path)?;
    if folder {
        crate::durable::sync_dir(parent_of(path))?;
    }
    metadata_after_close(path)
}

/// The metadata of the file just written and renamed into place (`persist`
/// closed it): read now, because Windows sets a file's last-write time when its
/// last handle closes, so a time read while it was open may not be the one the
/// file keeps.
fn metadata_after_close(path: &Path) -> Result<Metadata, Error> {
    #[cfg(test)]
    tests::after_close(path);
    std::fs::metadata(path).map_err(|e| Error::io(path, "cannot read metadata", e))
}

/// The folder of `path` (`.` for a bare name).
pub(crate) fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Renames `from` to `to`, replacing `to` (every rename ctstack makes).
/// On Windows, retried while another program holds either file ([`crate::fs_retry`]).
pub(crate) fn rename(from: &Path, to: &Path) -> std::io::Result<()> {
    crate::fs_retry::rename_with_retry(from, to)
}

/// Removes the file `path` (every file removal ctstack makes; each caller has
/// proved the file is its own: a temporary name of its own, or a file its record
/// lists and that is unchanged since).
/// On Windows, retried while another program holds it ([`crate::fs_retry`]).
pub(crate) fn remove_file(path: &Path) -> std::io::Result<()> {
    crate::fs_retry::remove_with_retry(path)
}

/// Removes the folder `path` if it is empty (fails otherwise, removing nothing).
pub(crate) fn remove_empty_dir(path: &Path) -> std::io::Result<()> {
    std::fs::remove_dir(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::time::{Duration, SystemTime};

    thread_local! {
        /// Runs once a written file is closed and in place.
        static AFTER_CLOSE: Cell<Option<fn(&Path)>> = const { Cell::new(None) };
    }

    pub(super) fn after_close(path: &Path) {
        if let Some(hook) = AFTER_CLOSE.with(Cell::get) {
            hook(path);
        }
    }

    /// The time recorded is the one the file keeps once closed: on NTFS the
    /// last-write time changes when the last handle closes (simulated here by the
    /// hook, which sets it then), and a manifest holding the time read while the
    /// file was open would take its own output for someone else's.
    #[test]
    fn the_metadata_is_read_after_the_file_is_closed() {
        let dir = std::env::temp_dir().join(format!("ctstack-writer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("closed.bin");
        AFTER_CLOSE.with(|h| {
            h.set(Some(|p: &Path| {
                let later = SystemTime::now() + Duration::from_secs(3600);
                let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
                f.set_modified(later).unwrap();
            }))
        });
        let written = write_atomically(&path, |file| file.write_all(b"pixels"));
        AFTER_CLOSE.with(|h| h.set(None));
        let written = written.unwrap();
        let now = std::fs::metadata(&path).unwrap();
        assert_eq!(written.modified().unwrap(), now.modified().unwrap());
        assert_eq!(written.len(), 6);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A failed write removes its own temporary file and nothing else: the
    /// target and a file named like a temporary one stay as they were.
    #[test]
    fn a_failed_write_removes_only_its_own_temporary_file() {
        let dir = std::env::temp_dir().join(format!("ctstack-writer-fail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("000003.tif");
        std::fs::write(&target, b"the user's").unwrap();
        let lookalike = dir.join(format!(".000003.tif.{}.0.ctstack-tmp", u32::MAX));
        std::fs::write(&lookalike, b"not this run's").unwrap();
        let failed = write_atomically(&target, |file| {
            file.write_all(b"partial")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"the user's");
        assert_eq!(std::fs::read(&lookalike).unwrap(), b"not this run's");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 2, "{names:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
