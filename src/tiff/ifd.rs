//! The file header and the image file directories (IFDs), one per page.
//!
//! One IFD is parsed from the bytes that hold it (the whole file, or a window
//! of it); the chain from one IFD to the next is walked in `walk.rs`.

use super::bytes::{ByteOrder, Reader};
use super::tags::{Tag, field_type_size, unsigned_type_size};
use crate::Limits;
use crate::error::{Problem, format_problem};

/// One directory entry, located but not yet decoded.
#[derive(Debug, Clone, Copy)]
struct Entry {
    tag: u16,
    field_type: u16,
    count: u64,
    /// Where the entry's 4-byte (classic) or 8-byte (BigTIFF) value field starts.
    value_field: u64,
}

/// One image file directory of a file: its entries and the reader to decode
/// their values with.
pub(crate) struct Directory<'a> {
    reader: Reader<'a>,
    bigtiff: bool,
    /// Which page this is (0 for the first), for messages.
    index: usize,
    entries: Vec<Entry>,
    /// Where the next-IFD offset field starts (right after the entries).
    table_end: u64,
}

/// What a TIFF file's header says: enough to parse its IFDs from windows of the
/// file (see [`Directory::in_window`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileHeader {
    pub order: ByteOrder,
    pub bigtiff: bool,
    /// The offset of IFD 0.
    pub first_ifd: u64,
}

impl FileHeader {
    /// The header from the first bytes of a file (8 for classic TIFF, 16 for BigTIFF).
    pub fn parse(bytes: &[u8]) -> Result<FileHeader, Problem> {
        let h = Header::parse(bytes)?;
        Ok(FileHeader {
            order: h.reader.order,
            bigtiff: h.bigtiff,
            first_ifd: h.first_ifd,
        })
    }
}

/// The file header: byte order, classic or BigTIFF, where IFD 0 starts.
struct Header<'a> {
    reader: Reader<'a>,
    bigtiff: bool,
    first_ifd: u64,
}

impl<'a> Header<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Header<'a>, Problem> {
        if bytes.len() < 8 {
            return Err(format_problem!(
                "not a TIFF file: {} bytes, too short for a TIFF header",
                bytes.len()
            ));
        }
        let order = match bytes.get(..2) {
            Some(b"II") => ByteOrder::LittleEndian,
            Some(b"MM") => ByteOrder::BigEndian,
            Some(b) => {
                return Err(format_problem!(
                    "not a TIFF file: starts with {:02x} {:02x}, not II or MM",
                    b[0],
                    b[1]
                ));
            }
            None => return Err(format_problem!("not a TIFF file")),
        };
        let reader = Reader {
            bytes,
            order,
            base: 0,
        };
        let (bigtiff, first_ifd) = match reader.u16(2, "TIFF version")? {
            42 => (false, u64::from(reader.u32(4, "first IFD offset")?)),
            43 => {
                let offset_size = reader.u16(4, "BigTIFF offset size")?;
                if offset_size != 8 {
                    return Err(format_problem!(
                        "BigTIFF header gives offset size {offset_size}, not 8"
                    ));
                }
                (true, reader.u64(8, "first IFD offset")?)
            }
            v => {
                return Err(format_problem!(
                    "not a TIFF file: version {v}, expected 42 (TIFF) or 43 (BigTIFF)"
                ));
            }
        };
        if first_ifd == 0 {
            return Err(format_problem!(
                "the file holds no image (first IFD offset is 0)"
            ));
        }
        Ok(Header {
            reader,
            bigtiff,
            first_ifd,
        })
    }
}

impl<'a> Directory<'a> {
    /// Parses IFD `index`, at `offset`, from `window`: the file's bytes from
    /// offset `base` on. Anything the IFD points to outside the window is a
    /// format problem, as it would be past the end of a file: the caller reads
    /// a larger window and parses again.
    pub fn in_window(
        window: &'a [u8],
        base: u64,
        header: FileHeader,
        offset: u64,
        index: usize,
        limits: &Limits,
    ) -> Result<Directory<'a>, Problem> {
        let reader = Reader {
            bytes: window,
            order: header.order,
            base,
        };
        Directory::at(reader, header.bigtiff, offset, index, limits)
    }

    /// The offset of the next IFD in the chain (0: this is the last), and
    /// whether its field lies in the bytes this directory was parsed from (a
    /// window that ends before it cannot tell).
    pub fn next_ifd(&self) -> Result<(u64, bool), Problem> {
        let size = if self.bigtiff { 8 } else { 4 };
        let seen = self.table_end + size <= self.reader.len();
        Ok((
            next_offset(&self.reader, self.bigtiff, self.table_end, self.index)?,
            seen,
        ))
    }

    /// Parses the IFD at `offset` (page `index`).
    fn at(
        reader: Reader<'a>,
        bigtiff: bool,
        offset: u64,
        index: usize,
        limits: &Limits,
    ) -> Result<Directory<'a>, Problem> {
        let (count, table_end) = entry_table(&reader, bigtiff, offset, index)?;
        if count > limits.max_ifd_entries {
            return Err(Problem::Limits(format!(
                "IFD {index} has {count} entries, more than the limit of {}",
                limits.max_ifd_entries
            )));
        }
        let (count_size, entry_size) = if bigtiff { (8u64, 20u64) } else { (2, 12) };
        // `count` entries fit in the file, so this allocation is bounded by its length.
        let mut entries = Vec::with_capacity(count as usize);
        for i in 0..count {
            let at = offset + count_size + i * entry_size;
            let tag = reader.u16(at, "IFD entry")?;
            let field_type = reader.u16(at + 2, "IFD entry")?;
            let (count, value_field) = if bigtiff {
                (reader.u64(at + 4, "IFD entry")?, at + 12)
            } else {
                (u64::from(reader.u32(at + 4, "IFD entry")?), at + 8)
            };
            entries.push(Entry {
                tag,
                field_type,
                count,
                value_field,
            });
        }
        debug_assert!(table_end <= reader.len());
        Ok(Directory {
            reader,
            bigtiff,
            index,
            entries,
            table_end,
        })
    }

    /// The largest count of any ASCII (type 2) entry: the bytes a decoder that
    /// reads that tag would allocate for it.
    pub fn largest_ascii_count(&self) -> u64 {
        self.entries
            .iter()
            .filter(|e| e.field_type == 2)
            .map(|e| e.count)
            .max()
            .unwrap_or(0)
    }

    /// The largest count of an entry whose values lie in the file, `file_len`
    /// bytes (inline, or at an offset from which they end before the file does):
    /// a decoder that reads that tag allocates one value per element. Entries
    /// whose values would run past the file, or of an unknown field type, are
    /// left out: their claims are not backed by bytes, and must not raise a
    /// decoder's budget.
    pub fn largest_count_in_file(&self, file_len: u64) -> u64 {
        let inline_size = if self.bigtiff { 8 } else { 4 };
        self.entries
            .iter()
            .filter(|e| {
                let Some(total) =
                    field_type_size(e.field_type).and_then(|s| e.count.checked_mul(s))
                else {
                    return false;
                };
                if total <= inline_size {
                    return true;
                }
                let start = if self.bigtiff {
                    self.reader.u64(e.value_field, "value offset")
                } else {
                    self.reader
                        .u32(e.value_field, "value offset")
                        .map(u64::from)
                };
                start.is_ok_and(|s| s.checked_add(total).is_some_and(|end| end <= file_len))
            })
            .map(|e| e.count)
            .max()
            .unwrap_or(0)
    }

    pub fn order(&self) -> ByteOrder {
        self.reader.order
    }

    pub fn bigtiff(&self) -> bool {
        self.bigtiff
    }

    /// The entry for `tag`, if present; a tag present twice is a format error.
    ///
    /// Readers disagree on duplicates (libtiff keeps the first, the `tiff` crate the
    /// last), and compressed slices are decoded by the `tiff` crate after this parser
    /// has validated the layout: with two ImageWidth or StripOffsets entries, the
    /// decoder would read another image than the one checked here.
    fn find(&self, tag: Tag) -> Result<Option<&Entry>, Problem> {
        let mut found = self.entries.iter().filter(|e| e.tag == tag as u16);
        let first = found.next();
        if found.next().is_some() {
            return Err(format_problem!(
                "tag {} appears more than once in IFD {}",
                tag.name(),
                self.index
            ));
        }
        Ok(first)
    }

    /// Where an entry's values start and how many bytes each takes; checks they lie in the file.
    fn locate(&self, entry: &Entry, name: &str) -> Result<(u64, u64), Problem> {
        let size = unsigned_type_size(entry.field_type).ok_or_else(|| {
            format_problem!(
                "tag {name} has field type {}, not an unsigned integer type",
                entry.field_type
            )
        })?;
        self.locate_sized(entry, size, name)
    }

    /// The bytes of a text or byte tag (ASCII, BYTE or UNDEFINED), as stored
    /// (an ASCII value keeps its NUL), or `None` if absent or of another type.
    pub fn bytes(&self, tag: Tag) -> Result<Option<&'a [u8]>, Problem> {
        let Some(entry) = self.find(tag)? else {
            return Ok(None);
        };
        if !matches!(entry.field_type, 1 | 2 | 7) {
            return Ok(None);
        }
        let (start, _) = self.locate_sized(entry, 1, tag.name())?;
        // `locate_sized` checked that `count` bytes from `start` lie in the bytes read.
        match self.reader.get(start, entry.count) {
            Some(b) => Ok(Some(b)),
            None => Err(format_problem!(
                "tag {}: {} bytes at offset {start} lie past the end of the file ({} bytes)",
                tag.name(),
                entry.count,
                self.reader.len()
            )),
        }
    }

    fn locate_sized(&self, entry: &Entry, size: u64, name: &str) -> Result<(u64, u64), Problem> {
        let inline_size = if self.bigtiff { 8 } else { 4 };
        let total = entry.count.checked_mul(size).ok_or_else(|| {
            format_problem!(
                "tag {name} claims {} values, more than any file holds",
                entry.count
            )
        })?;
        let start = if total <= inline_size {
            entry.value_field
        } else if self.bigtiff {
            self.reader.u64(entry.value_field, name)?
        } else {
            u64::from(self.reader.u32(entry.value_field, name)?)
        };
        if start
            .checked_add(total)
            .is_none_or(|end| end > self.reader.len())
        {
            return Err(format_problem!(
                "tag {name}: {} values at offset {start} run past the end of the file ({} bytes)",
                entry.count,
                self.reader.len()
            ));
        }
        Ok((start, size))
    }

    fn read_at(&self, at: u64, size: u64, name: &str) -> Result<u64, Problem> {
        Ok(match size {
            1 => u64::from(self.reader.array::<1>(at, name)?[0]),
            2 => u64::from(self.reader.u16(at, name)?),
            4 => u64::from(self.reader.u32(at, name)?),
            _ => self.reader.u64(at, name)?,
        })
    }

    /// All values of an unsigned-integer tag, or `None` if the tag is absent.
    ///
    /// The values must lie inside the file, so the returned vector is bounded by the file's length.
    pub fn values(&self, tag: Tag) -> Result<Option<Vec<u64>>, Problem> {
        let Some(entry) = self.find(tag)? else {
            return Ok(None);
        };
        let (start, size) = self.locate(entry, tag.name())?;
        // `locate` checked that count * size bytes lie in the file: the capacity is bounded by its length.
        let mut out = Vec::with_capacity(entry.count as usize);
        for i in 0..entry.count {
            out.push(self.read_at(start + i * size, size, tag.name())?);
        }
        Ok(Some(out))
    }

    /// The first value of a tag (BitsPerSample has one per sample), or `None` if absent.
    pub fn value(&self, tag: Tag) -> Result<Option<u64>, Problem> {
        let Some(entry) = self.find(tag)? else {
            return Ok(None);
        };
        if entry.count == 0 {
            return Err(format_problem!("tag {} has no value", tag.name()));
        }
        let (start, size) = self.locate(entry, tag.name())?;
        self.read_at(start, size, tag.name()).map(Some)
    }

    /// Like [`Directory::value`], but the tag must be present.
    pub fn required(&self, tag: Tag) -> Result<u64, Problem> {
        self.value(tag)?
            .ok_or_else(|| format_problem!("required tag {} is missing", tag.name()))
    }
}

/// The entry count of the IFD at `offset` and where its entry table ends (the
/// next-IFD offset field), checked to lie in the file.
fn entry_table(
    reader: &Reader<'_>,
    bigtiff: bool,
    offset: u64,
    index: usize,
) -> Result<(u64, u64), Problem> {
    let (count_size, entry_size) = if bigtiff { (8u64, 20u64) } else { (2, 12) };
    let what = format!("IFD {index} entry count");
    let count = if bigtiff {
        reader.u64(offset, &what)?
    } else {
        u64::from(reader.u16(offset, &what)?)
    };
    let table_end = count
        .checked_mul(entry_size)
        .and_then(|n| n.checked_add(offset))
        .and_then(|n| n.checked_add(count_size));
    match table_end {
        Some(end) if end <= reader.len() => Ok((count, end)),
        _ => Err(format_problem!(
            "IFD {index} at offset {offset} claims {count} entries, more than the file ({} bytes) holds",
            reader.len()
        )),
    }
}

/// The next-IFD offset stored at `at`, after IFD `index`'s entries. A file that
/// ends right after its last entry table (no next-offset field) has no next IFD.
fn next_offset(reader: &Reader<'_>, bigtiff: bool, at: u64, index: usize) -> Result<u64, Problem> {
    let size = if bigtiff { 8 } else { 4 };
    if at + size > reader.len() {
        return Ok(0);
    }
    let what = format!("IFD {index} next-IFD offset");
    if bigtiff {
        reader.u64(at, &what)
    } else {
        reader.u32(at, &what).map(u64::from)
    }
}
