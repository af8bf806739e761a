//! Bounds-checked reads of integers at file offsets, in a file's byte order.

use crate::bytes::ByteOrder;
use crate::error::{Problem, format_problem};

/// A file's bytes together with its byte order: the one place integers are decoded.
///
/// `bytes` are the file's bytes from offset `base` on: the whole file (`base`
/// 0), a prefix of it, or a window read from the middle of a large file. Reads
/// outside them are format problems, as reads past the end of a file are: a
/// caller that holds only part of the file reads more and parses again.
#[derive(Clone, Copy)]
pub(crate) struct Reader<'a> {
    pub bytes: &'a [u8],
    pub order: ByteOrder,
    /// The file offset of `bytes[0]`.
    pub base: u64,
}

impl<'a> Reader<'a> {
    /// The `len` bytes at file offset `offset`, if they were read.
    pub fn get(&self, offset: u64, len: u64) -> Option<&'a [u8]> {
        let start = usize::try_from(offset.checked_sub(self.base)?).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        self.bytes.get(start..end)
    }

    /// The `N` bytes at `offset`, or a format problem naming `what` if they are not all in the file.
    pub fn array<const N: usize>(&self, offset: u64, what: &str) -> Result<[u8; N], Problem> {
        match self.get(offset, N as u64) {
            Some(b) => {
                let mut out = [0u8; N];
                out.copy_from_slice(b);
                Ok(out)
            }
            None => Err(format_problem!(
                "{what} at offset {offset} lies past the end of the file ({} bytes)",
                self.len()
            )),
        }
    }

    pub fn u16(&self, offset: u64, what: &str) -> Result<u16, Problem> {
        let b = self.array::<2>(offset, what)?;
        Ok(match self.order {
            ByteOrder::LittleEndian => u16::from_le_bytes(b),
            ByteOrder::BigEndian => u16::from_be_bytes(b),
        })
    }

    pub fn u32(&self, offset: u64, what: &str) -> Result<u32, Problem> {
        let b = self.array::<4>(offset, what)?;
        Ok(match self.order {
            ByteOrder::LittleEndian => u32::from_le_bytes(b),
            ByteOrder::BigEndian => u32::from_be_bytes(b),
        })
    }

    pub fn u64(&self, offset: u64, what: &str) -> Result<u64, Problem> {
        let b = self.array::<8>(offset, what)?;
        Ok(match self.order {
            ByteOrder::LittleEndian => u64::from_le_bytes(b),
            ByteOrder::BigEndian => u64::from_be_bytes(b),
        })
    }

    /// The end of the bytes read: the file length, for a reader of the whole file.
    pub fn len(&self) -> u64 {
        self.base + self.bytes.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_orders_and_refuses_out_of_bounds() {
        let bytes = [1u8, 2, 3, 4, 5, 6, 7, 8];
        let le = Reader {
            bytes: &bytes,
            order: ByteOrder::LittleEndian,
            base: 0,
        };
        let be = Reader {
            bytes: &bytes,
            order: ByteOrder::BigEndian,
            base: 0,
        };
        assert_eq!(le.u16(0, "x").unwrap(), 0x0201);
        assert_eq!(be.u16(0, "x").unwrap(), 0x0102);
        assert_eq!(le.u32(4, "x").unwrap(), 0x0807_0605);
        assert_eq!(be.u64(0, "x").unwrap(), 0x0102_0304_0506_0708);
        assert!(le.u32(5, "x").is_err());
        assert!(le.u16(u64::MAX, "x").is_err());
        assert!(le.u64(1, "x").is_err());
        // A window of the file from offset 100: offsets before it and past it are refused.
        let window = Reader { base: 100, ..le };
        assert_eq!(window.u16(100, "x").unwrap(), 0x0201);
        assert_eq!(window.u32(104, "x").unwrap(), 0x0807_0605);
        assert!(window.u16(99, "x").is_err());
        assert!(window.u16(0, "x").is_err());
        assert!(window.u16(107, "x").is_err());
        assert_eq!(window.len(), 108);
    }
}
