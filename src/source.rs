//! How a file's bytes arrive: a read-only memory map, or one buffered read.
//!
//! This is the one place ctstack maps files.
//!
//! # The mapping hazard
//! A memory map shows the file as it is *now*. If another process truncates a
//! mapped file, touching the lost pages raises SIGBUS on Unix and the process
//! dies; if it rewrites the file in place, the pixels change under the reader. On
//! Windows the hazard moves to the other process: a mapped file cannot be
//! truncated or deleted while the map exists (the writer fails with error 1224,
//! `ERROR_USER_MAPPED_FILE`). No library can prevent either. ctstack keeps the
//! window short (a slice's map is dropped as soon as the slice is), checks the
//! file's length after it maps it, and offers [`ReadMode::Buffered`], which copies
//! the bytes into memory once and is immune. [`ReadMode::Auto`], the default,
//! reads instead of mapping where mapping is risky or slow.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use memmap2::{Mmap, MmapOptions};

use crate::Error;

/// How a slice's bytes are brought into memory: the mmap policy.
///
/// | mode | what it does | use it when |
/// |---|---|---|
/// | [`Auto`](ReadMode::Auto) (default) | maps, except files on network filesystems, which it reads | almost always |
/// | [`Mmap`](ReadMode::Mmap) (always) | maps every file | you want zero-copy views of every file, even tiny ones, and nothing else writes the files |
/// | [`Buffered`](ReadMode::Buffered) (never) | reads every file into memory | the files may be truncated or rewritten while ctstack reads them (a scanner still writing, a sync client), or maps misbehave on your filesystem |
///
/// **The hazard of a map.** A memory map shows the file as it is now. If another
/// process truncates a mapped file, touching the lost pages raises SIGBUS on Unix
/// and the reading process is killed; no error can be returned. If it rewrites the
/// file in place, pixels change under the reader. On Windows a mapped file cannot
/// be truncated or deleted at all while mapped (the other process gets error 1224,
/// `ERROR_USER_MAPPED_FILE`). ctstack narrows the window (the length is checked
/// again right after mapping, and every map is dropped as soon as its slice is)
/// but cannot close it. A buffered read is immune: a file that changes while it is
/// read gives an [`Error`] or the bytes as they were read, never a crash.
///
/// The same policy is `ctstack pyramid --mmap auto|always|never` (`--no-mmap` is
/// `never`) and `ctstack_set_mmap_policy` in the C ABI.
///
/// ```
/// use ctstack::{AccessPath, OpenOptions, ReadMode, Slice, write_slice};
///
/// let path = std::env::temp_dir().join(format!("ctstack-doc-readmode-{}.tif", std::process::id()));
/// write_slice::<u16>(&path, 8, 8, &[7; 64])?;
/// // A scanner may still be writing: read the file instead of mapping it.
/// let options = OpenOptions {
///     read_mode: ReadMode::from_policy_name("never").unwrap(),
///     ..OpenOptions::default()
/// };
/// let slice = Slice::open_with(&path, &options)?;
/// assert_eq!(slice.access().path, AccessPath::Read);
/// assert_eq!(slice.contiguous::<u16>()?, &[7; 64][..]);
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), ctstack::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ReadMode {
    /// Map, unless mapping is risky or slow: files on a network filesystem are
    /// read (detected with `fstatfs` on Linux and Android: NFS, SMB/CIFS, FUSE such
    /// as sshfs, AFS, Ceph, 9P, Coda, NCP; on macOS: nfs, smbfs, afpfs, webdav,
    /// cifs). Elsewhere (Windows, the BSDs) every file is mapped.
    /// [`Access`](crate::Access) tells which happened and why.
    ///
    /// Small local files are mapped too, although one `read` is faster for them
    /// (measured, release build, warm cache, open + sum of every sample: 4 KB
    /// 14.5 us mapped vs 4.8 us read, 66 KB 22.5 vs 11.9, 524 KB 93.5 vs 102.7):
    /// the gain is microseconds per file, while a zero-copy view is what callers
    /// ask `is_zero_copy` about and build on.
    #[default]
    Auto,
    /// Always memory-map the file: uncompressed pixels are served straight from
    /// the page cache, with no copy. See the hazard above.
    Mmap,
    /// Never map: read the whole file into memory with one `read`. One copy, but
    /// immune to the file changing afterwards.
    Buffered,
}

impl ReadMode {
    /// `auto`, `always` or `never`: the policy's name on the command line.
    pub fn policy_name(self) -> &'static str {
        match self {
            ReadMode::Auto => "auto",
            ReadMode::Mmap => "always",
            ReadMode::Buffered => "never",
        }
    }

    /// The mode for a policy name: `auto`, `always` (or `mmap`), `never` (or
    /// `buffered`); `None` for anything else.
    pub fn from_policy_name(name: &str) -> Option<ReadMode> {
        match name {
            "auto" => Some(ReadMode::Auto),
            "always" | "mmap" => Some(ReadMode::Mmap),
            "never" | "buffered" => Some(ReadMode::Buffered),
            _ => None,
        }
    }
}

/// The bytes of one file.
pub(crate) enum Source {
    /// A read-only map of the whole file.
    Mapped(Mmap),
    /// The file read into memory. Held as `u16` words so the buffer is aligned for
    /// 16-bit samples; `len` is the file's length in bytes; `why` says why
    /// [`ReadMode::Auto`] read rather than mapped it (`None` for other modes).
    Read {
        words: Vec<u16>,
        len: usize,
        why: Option<String>,
    },
}

impl Source {
    /// Opens `path` and makes its bytes available as `mode` says.
    ///
    /// A mapped file is checked again right after mapping: if it is now shorter
    /// than the map (another process truncated it meanwhile), the map is dropped
    /// and the open fails with an [`Error::Io`] (kind `UnexpectedEof`) rather than
    /// leave a map whose tail would raise SIGBUS when touched. That check narrows
    /// the window; only [`ReadMode::Buffered`] closes it.
    pub fn open(path: &Path, mode: ReadMode, populate: bool) -> Result<Source, Error> {
        Source::open_for(path, mode, populate, true)
    }

    /// Opens `path` to parse its header only (a few pages of it), as `mode` says,
    /// with one difference: under [`ReadMode::Auto`] a file on a network
    /// filesystem is mapped, not read, because reading a whole 15 MB slice over the
    /// network to parse its header would double what a pyramid run transfers
    /// (headers are checked before pixels are read), while the map is touched only
    /// for the microseconds the parse takes. `Buffered` still never maps.
    pub fn open_header(path: &Path, mode: ReadMode) -> Result<Source, Error> {
        Source::open_for(path, mode, false, false)
    }

    fn open_for(
        path: &Path,
        mode: ReadMode,
        populate: bool,
        network_check: bool,
    ) -> Result<Source, Error> {
        let file = File::open(path).map_err(|e| Error::io(path, "cannot open", e))?;
        let len = file_len(path, &file)?;
        let len = usize::try_from(len).map_err(|_| Error::LimitsExceeded {
            path: path.to_path_buf(),
            what: format!("file of {len} bytes does not fit in this machine's address space"),
        })?;
        let why = match mode {
            ReadMode::Buffered => return Source::read(path, file, len, None),
            ReadMode::Mmap => None,
            ReadMode::Auto => auto_read_reason(&file, network_check),
        };
        if why.is_some() {
            return Source::read(path, file, len, why);
        }
        // An empty file cannot be mapped on every platform; there is nothing to map anyway.
        if len == 0 {
            return Source::read(path, file, len, None);
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
        // files that may change. The length mapped is the one just read from the
        // file, and it is checked again below, once the map exists.
        let map = unsafe { options.map(&file) }.map_err(|e| Error::io(path, "cannot map", e))?;
        #[cfg(test)]
        tests::after_map(path);
        let now = file_len(path, &file)?;
        if now < len as u64 {
            drop(map);
            let e = std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "the file shrank from {len} to {now} bytes as it was mapped: another \
                     program is changing it (mmap policy never reads such files safely)"
                ),
            );
            return Err(Error::io(path, "cannot map", e));
        }
        Ok(Source::Mapped(map))
    }

    fn read(path: &Path, mut file: File, len: usize, why: Option<String>) -> Result<Source, Error> {
        let stamp = |file: &File| file.metadata().map(|m| (m.len(), m.modified().ok()));
        let before = stamp(&file).map_err(|e| Error::io(path, "cannot read metadata", e))?;
        let mut words = pooled_buffer(len.div_ceil(2));
        let bytes = &mut bytemuck::cast_slice_mut::<u16, u8>(&mut words)[..len];
        file.read_exact(bytes).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                let e = std::io::Error::new(e.kind(), "the file shrank while it was read");
                Error::io(path, "cannot read", e)
            } else {
                Error::io(path, "cannot read", e)
            }
        })?;
        // A read that overlaps a truncation can see zeroed pages and still succeed
        // (read() is not atomic against truncate): refuse the bytes if the file's
        // length or modification time changed while they were read.
        let after = stamp(&file).map_err(|e| Error::io(path, "cannot read metadata", e))?;
        if after != before || before.0 != len as u64 {
            let e = std::io::Error::other("the file changed while it was read");
            return Err(Error::io(path, "cannot read", e));
        }
        Ok(Source::Read { words, len, why })
    }

    /// A copy of `bytes` in an aligned buffer, as if read from a file.
    pub fn copy_of(bytes: &[u8]) -> Source {
        let mut words = vec![0u16; bytes.len().div_ceil(2)];
        bytemuck::cast_slice_mut::<u16, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        Source::Read {
            words,
            len: bytes.len(),
            why: None,
        }
    }

    /// All of the file's bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Source::Mapped(map) => map,
            Source::Read { words, len, .. } => &bytemuck::cast_slice::<u16, u8>(words)[..*len],
        }
    }

    /// Whether the bytes are a memory map of the file (as opposed to a copy in memory).
    pub fn is_mapped(&self) -> bool {
        matches!(self, Source::Mapped(_))
    }

    /// Why [`ReadMode::Auto`] read this file instead of mapping it, if it did.
    pub fn read_reason(&self) -> Option<&str> {
        match self {
            Source::Read { why, .. } => why.as_deref(),
            Source::Mapped(_) => None,
        }
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

/// Read buffers kept after their slices are dropped, for the next reads: a
/// pyramid reads slice after slice of one size, and a fresh 15 MB buffer costs a
/// page fault and a zeroed page per 4 KiB. Measured with hyperfine on the 64 x
/// 2752x2752 stack, `ctstack pyramid --no-mmap`: 424 ms before, 397 ms after.
static READ_BUFFERS: std::sync::Mutex<Vec<Vec<u16>>> = std::sync::Mutex::new(Vec::new());

/// At most this many read buffers are kept: the pyramid holds two pairs at once.
const POOLED_READ_BUFFERS: usize = 4;

/// A buffer of `words` samples: a pooled one if one is large enough, else a new one.
/// Its contents are whatever was there: the caller overwrites them.
fn pooled_buffer(words: usize) -> Vec<u16> {
    let pooled = {
        let mut pool = READ_BUFFERS.lock().unwrap_or_else(|p| p.into_inner());
        let i = pool.iter().position(|b| b.capacity() >= words);
        i.map(|i| pool.swap_remove(i))
    };
    match pooled {
        Some(mut buffer) => {
            buffer.resize(words, 0);
            buffer
        }
        None => vec![0u16; words],
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        if let Source::Read { words, .. } = self {
            let buffer = std::mem::take(words);
            // Tiny files are not worth keeping a buffer for.
            if buffer.capacity() >= 1 << 16 {
                let mut pool = READ_BUFFERS.lock().unwrap_or_else(|p| p.into_inner());
                if pool.len() < POOLED_READ_BUFFERS {
                    pool.push(buffer);
                }
            }
        }
    }
}

/// The file's current length, from `fstat` on the open file.
fn file_len(path: &Path, file: &File) -> Result<u64, Error> {
    Ok(file
        .metadata()
        .map_err(|e| Error::io(path, "cannot read metadata", e))?
        .len())
}

/// Why [`ReadMode::Auto`] should read rather than map `file`, or `None` to map
/// it. `network_check`: whether to look at all (header reads skip it).
fn auto_read_reason(file: &File, network_check: bool) -> Option<String> {
    if !network_check {
        return None;
    }
    network_filesystem(file).map(|fs| format!("auto: on a network filesystem ({fs})"))
}

/// Linux `statfs.f_type` magic numbers of network filesystems (and FUSE, which
/// serves sshfs, rclone and other remote mounts), from `linux/magic.h`; the `libc`
/// crate lacks several of them. All fit in 32 bits.
#[cfg(any(target_os = "linux", target_os = "android"))]
const NETWORK_FS_MAGIC: [(u32, &str); 12] = [
    (0x6969, "nfs"),
    (0x517B, "smb"),
    (0xFF53_4D42, "cifs"),
    (0xFE53_4D42, "smb2"),
    (0x6573_5546, "fuse"),
    (0x5346_414F, "afs"),
    (0x6B41_4653, "kafs"),
    (0x00C3_6400, "ceph"),
    (0x0102_1997, "9p"),
    (0x7375_7245, "coda"),
    (0x564C, "ncp"),
    (0x0BD0_0BD0, "lustre"),
];

/// The name of the network filesystem `file` lives on, if it does.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn network_filesystem(file: &File) -> Option<&'static str> {
    use std::os::fd::AsRawFd;

    let mut stats = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: the descriptor is open for the call (borrowed from `file`), and
    // `stats` points to writable memory of the struct's size, which fstatfs fills
    // completely when it returns 0.
    let stats = unsafe {
        if libc::fstatfs(file.as_raw_fd(), stats.as_mut_ptr()) != 0 {
            return None;
        }
        stats.assume_init()
    };
    // f_type is signed on some targets and wider than 32 bits on others; the
    // magic numbers are its low 32 bits.
    let magic = stats.f_type as u32;
    NETWORK_FS_MAGIC
        .iter()
        .find(|(m, _)| *m == magic)
        .map(|(_, name)| *name)
}

/// The name of the network filesystem `file` lives on, if it does.
#[cfg(target_os = "macos")]
fn network_filesystem(file: &File) -> Option<&'static str> {
    use std::os::fd::AsRawFd;

    const NETWORK: [&str; 5] = ["nfs", "smbfs", "afpfs", "webdav", "cifs"];
    let mut stats = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: as on Linux: an open descriptor and a writable struct of the right
    // size, filled completely when fstatfs returns 0.
    let stats = unsafe {
        if libc::fstatfs(file.as_raw_fd(), stats.as_mut_ptr()) != 0 {
            return None;
        }
        stats.assume_init()
    };
    // f_fstypename is a NUL-terminated name in a fixed array of c_char.
    let name: Vec<u8> = stats
        .f_fstypename
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    NETWORK
        .into_iter()
        .find(|n| n.as_bytes() == name.as_slice())
}

/// Portable fallback (Windows, the BSDs, ...): no detection, every file is mapped.
/// On Windows a network share could be recognised with `GetDriveTypeW`; mapping a
/// file there works, and the truncation hazard is the writer's (error 1224).
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "macos")))]
fn network_filesystem(_file: &File) -> Option<&'static str> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// Runs between mapping a file and checking its length again.
        static AFTER_MAP: Cell<Option<fn(&Path)>> = const { Cell::new(None) };
    }

    pub(super) fn after_map(path: &Path) {
        if let Some(hook) = AFTER_MAP.with(Cell::get) {
            hook(path);
        }
    }

    #[test]
    fn a_file_that_shrinks_as_it_is_mapped_is_an_error_not_a_map() {
        let dir = std::env::temp_dir().join(format!("ctstack-shrink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("shrinks.bin");
        std::fs::write(&path, vec![1u8; 256 * 1024]).unwrap();
        AFTER_MAP.with(|h| {
            h.set(Some(|p: &Path| {
                let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
                f.set_len(10).unwrap();
            }))
        });
        let result = Source::open(&path, ReadMode::Mmap, true);
        AFTER_MAP.with(|h| h.set(None));
        let err = result.err().expect("the shrunken map was kept");
        assert_eq!(err.kind(), crate::ErrorKind::Io);
        assert!(
            err.to_string().contains("shrank from 262144 to 10 bytes"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn policy_names_round_trip() {
        for mode in [ReadMode::Auto, ReadMode::Mmap, ReadMode::Buffered] {
            assert_eq!(ReadMode::from_policy_name(mode.policy_name()), Some(mode));
        }
        assert_eq!(ReadMode::from_policy_name("sometimes"), None);
        assert_eq!(ReadMode::default(), ReadMode::Auto);
    }

    #[test]
    fn auto_maps_local_files() {
        let dir = std::env::temp_dir().join(format!("ctstack-source-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let small = dir.join("small.bin");
        let large = dir.join("large.bin");
        std::fs::write(&small, vec![7u8; 1000]).unwrap();
        std::fs::write(&large, vec![7u8; 200_000]).unwrap();
        let on_network = network_filesystem(&File::open(&small).unwrap());
        let s = Source::open(&small, ReadMode::Auto, false).unwrap();
        assert_eq!(s.is_mapped(), on_network.is_none(), "{:?}", s.read_reason());
        assert!(
            Source::open(&small, ReadMode::Mmap, false)
                .unwrap()
                .is_mapped()
        );
        let l = Source::open(&large, ReadMode::Auto, false).unwrap();
        assert_eq!(l.is_mapped(), on_network.is_none(), "{:?}", l.read_reason());
        assert_eq!(l.bytes().len(), 200_000);
        let b = Source::open(&large, ReadMode::Buffered, false).unwrap();
        assert!(!b.is_mapped() && b.read_reason().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
