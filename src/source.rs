//! How a file's bytes arrive: a read-only memory map, or one buffered read.
//!
//! This is the one place ctstack maps files.
//!
//! # The mapping hazard
//! A memory map shows the file as it is *now*. If another process truncates a
//! mapped file, touching the lost pages raises SIGBUS on Unix (the process dies);
//! if it rewrites the file, the pixels change under the reader. No library can
//! prevent that. ctstack keeps the window short (a slice's map is dropped as
//! soon as the slice is), checks the file's length when it maps it, and offers
//! [`ReadMode::Buffered`], which copies the bytes into memory once and is immune.
//! Use buffered reads for files that may change while they are read (a scanner
//! still writing, a sync tool), and on network filesystems.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use memmap2::{Mmap, MmapOptions};

use crate::Error;

/// How a slice's bytes are brought into memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ReadMode {
    /// Memory-map the file (the default): uncompressed pixels are served straight
    /// from the page cache, with no copy. See the module docs for the hazard.
    #[default]
    Mmap,
    /// Read the whole file into memory with one `read`: one copy, but immune to
    /// the file changing afterwards, and usually better on network filesystems.
    Buffered,
}

/// The bytes of one file.
pub(crate) enum Source {
    /// A read-only map of the whole file.
    Mapped(Mmap),
    /// The file read into memory. Held as `u16` words so the buffer is aligned for
    /// 16-bit samples; `len` is the file's length in bytes.
    Read { words: Vec<u16>, len: usize },
}

impl Source {
    /// Opens `path` and makes its bytes available as `mode` says.
    pub fn open(path: &Path, mode: ReadMode, populate: bool) -> Result<Source, Error> {
        let file = File::open(path).map_err(|e| Error::io(path, "cannot open", e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io(path, "cannot read metadata", e))?
            .len();
        let len = usize::try_from(len).map_err(|_| Error::LimitsExceeded {
            path: path.to_path_buf(),
            what: format!("file of {len} bytes does not fit in this machine's address space"),
        })?;
        // An empty file cannot be mapped on every platform; there is nothing to map anyway.
        if mode == ReadMode::Buffered || len == 0 {
            return Source::read(path, file, len);
        }
        let mut options = MmapOptions::new();
        options.len(len);
        if populate {
            // MAP_POPULATE on Linux; no effect elsewhere.
            options.populate();
        }
        // SAFETY: the map is read-only and private to this `Source`; it is only ever
        // viewed as `&[u8]` borrowed from `self`, so it cannot outlive the mapping.
        // memmap2's hazard remains: if another process truncates or rewrites the file
        // while it is mapped, reads see the change or fault (SIGBUS). That is
        // documented on this module and on `ReadMode`, which offers `Buffered` for
        // files that may change. The length mapped is the one just read from the file.
        let map = unsafe { options.map(&file) }.map_err(|e| Error::io(path, "cannot map", e))?;
        Ok(Source::Mapped(map))
    }

    fn read(path: &Path, mut file: File, len: usize) -> Result<Source, Error> {
        let mut words = vec![0u16; len.div_ceil(2)];
        let bytes = &mut bytemuck::cast_slice_mut::<u16, u8>(&mut words)[..len];
        file.read_exact(bytes).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                let e = std::io::Error::new(e.kind(), "the file shrank while it was read");
                Error::io(path, "cannot read", e)
            } else {
                Error::io(path, "cannot read", e)
            }
        })?;
        Ok(Source::Read { words, len })
    }

    /// A copy of `bytes` in an aligned buffer, as if read from a file.
    pub fn copy_of(bytes: &[u8]) -> Source {
        let mut words = vec![0u16; bytes.len().div_ceil(2)];
        bytemuck::cast_slice_mut::<u16, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        Source::Read {
            words,
            len: bytes.len(),
        }
    }

    /// All of the file's bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Source::Mapped(map) => map,
            Source::Read { words, len } => &bytemuck::cast_slice::<u16, u8>(words)[..*len],
        }
    }

    /// Whether the bytes are a memory map of the file (as opposed to a copy in memory).
    pub fn is_mapped(&self) -> bool {
        matches!(self, Source::Mapped(_))
    }

    /// Asks the kernel to start reading `range` of the file into the page cache now,
    /// so a later pass finds it there (madvise WILLNEED). A hint only: does nothing
    /// for buffered sources or off Unix, and errors are ignored.
    pub fn prefetch(&self, range: std::ops::Range<usize>) {
        #[cfg(unix)]
        if let Source::Mapped(map) = self {
            let end = range.end.min(map.len());
            if range.start < end {
                let _ = map.advise_range(memmap2::Advice::WillNeed, range.start, end - range.start);
            }
        }
        #[cfg(not(unix))]
        let _ = range;
    }
}
