//! How a file's bytes arrive: a read-only memory map, a buffered read of the
//! whole file, or positional reads of parts of it.
//!
//! This is the one place ctstack maps or reads input files.
//!
//! # The mapping hazard
//! A memory map shows the file as it is *now*. If another process truncates a
//! mapped file, touching the lost pages raises SIGBUS on Unix and the process
//! dies; if it rewrites the file in place, the pixels change under the reader. On
//! Windows the hazard moves to the other process: a mapped file cannot be
//! truncated or deleted while the map exists (the writer fails with error 1224,
//! `ERROR_USER_MAPPED_FILE`). No library can prevent either. ctstack keeps the
//! window short (a slice's map is dropped as soon as the slice is), checks the
//! file's length after it maps it, and offers [`ReadMode::Buffered`], which never
//! maps and is immune. [`ReadMode::Auto`], the default, reads instead of mapping
//! where mapping is risky or slow (network filesystems).
//!
//! # One name per concept
//! The *mmap policy* is [`ReadMode`]; its three values are named `auto`,
//! `always` and `never` everywhere outside Rust: `ctstack --mmap auto|always|never`
//! (`--no-mmap` is accepted for `never`), `CTSTACK_MMAP_AUTO|ALWAYS|NEVER` in
//! the C ABI, `ctstack.set_mmap_policy("auto"|"always"|"never")` in Python. In Rust they are
//! [`ReadMode::Auto`], [`ReadMode::Mmap`] (`always`) and [`ReadMode::Buffered`]
//! (`never`). [`AccessPath::Read`](crate::AccessPath::Read) is not a policy: it
//! is what one opened [`Slice`](crate::Slice) *got* (its file read whole into
//! memory), which `never` gives, and `auto` too for a file on a network
//! filesystem.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use memmap2::{Mmap, MmapOptions};

use crate::Error;

/// How a file's bytes are brought into memory: the mmap policy (`auto`,
/// `always`, `never`; see the module doc for its names elsewhere). What each
/// means is decided in one place (the reading layer's `reach`) and documented
/// once, in docs/memory-maps.md:
///
/// | mode | policy | a page read in parts (a pyramid's raw inputs in bands, a crop's box) | a page handed out whole (a [`Slice`](crate::Slice), a compressed input decoded once) |
/// |---|---|---|---|
/// | [`Auto`](ReadMode::Auto) (default) | `auto` | positional reads | mapped, except on network filesystems (read whole) |
/// | [`Mmap`](ReadMode::Mmap) | `always` | mapped | mapped |
/// | [`Buffered`](ReadMode::Buffered) | `never` | positional reads | read whole, one `read` |
///
/// **The hazard of a map.** A memory map shows the file as it is now. If another
/// process truncates a mapped file, touching the lost pages raises SIGBUS on Unix
/// and the reading process is killed; no error can be returned. If it rewrites the
/// file in place, pixels change under the reader. On Windows a mapped file cannot
/// be truncated or deleted at all while mapped (the other process gets error 1224,
/// `ERROR_USER_MAPPED_FILE`). ctstack narrows the window (the length is checked
/// again right after mapping, and every map is dropped as soon as its slice is)
/// but cannot close it. Reads are immune: a file that shrinks or changes while it
/// is read gives an [`Error`] naming it (a short read, or a length or
/// modification time that differs afterwards), never a crash or mixed pixels.
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
#[non_exhaustive]
pub enum ReadMode {
    /// Map only what is handed out whole, for its zero-copy views, and only
    /// where mapping is neither risky nor slow: pages read in parts are read
    /// by positional reads (measured as fast, and immune to a file truncated
    /// under the reader), and files on a network filesystem are read (detected
    /// with `fstatfs` on Linux and Android: NFS, SMB/CIFS, FUSE such as sshfs,
    /// AFS, Ceph, 9P, Coda, NCP; on macOS: nfs, smbfs, afpfs, webdav, cifs; on
    /// Windows: UNC paths `\\server\share` and network drives, by
    /// `GetDriveTypeW`). Elsewhere (the BSDs) every such file is mapped.
    /// [`Access`](crate::Access) tells which happened to a slice and why.
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
    /// Never map. A [`Slice`](crate::Slice) reads its whole file into memory
    /// with one `read` (one copy, then immune to the file changing); pages read
    /// in parts are read by positional reads into buffers that stay in cache, so
    /// memory does not grow with the slice size and a header check reads only
    /// headers.
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
    /// Opens `path` to serve its pixels, its bytes made available as `mode` says;
    /// `populate` faults a map in at once (MAP_POPULATE on Linux, no effect
    /// elsewhere or when the file is read).
    ///
    /// A mapped file is checked again right after mapping: if it is now shorter
    /// than the map (another process truncated it meanwhile), the map is dropped
    /// and the open fails with an [`Error::Io`] (kind `UnexpectedEof`) rather than
    /// leave a map whose tail would raise SIGBUS when touched. That check narrows
    /// the window; only [`ReadMode::Buffered`] closes it.
    pub fn open(path: &Path, mode: ReadMode, populate: bool) -> Result<Source, Error> {
        Source::open_as(path, mode, Purpose::Pixels { populate }).map(|(source, _)| source)
    }

    /// [`Source::open`], with the file's stamp as it was opened (its length is
    /// the bytes'): what a page index entry is checked against.
    pub fn open_stamped(
        path: &Path,
        mode: ReadMode,
        populate: bool,
    ) -> Result<(Source, FileStamp), Error> {
        Source::open_as(path, mode, Purpose::Pixels { populate })
    }

    /// Opens `path` to parse its header only (a few pages of it), as `mode` says,
    /// with one difference: under [`ReadMode::Auto`] a file on a network
    /// filesystem is mapped, not read, because reading a whole 15 MB slice over the
    /// network to parse its header would double what a pyramid run transfers
    /// (headers are checked before pixels are read), while the map is touched only
    /// for the microseconds the parse takes. Under `Buffered`, which never maps,
    /// headers are read with [`read_layout`] instead.
    pub fn open_header(path: &Path, mode: ReadMode) -> Result<Source, Error> {
        Source::open_as(path, mode, Purpose::Header).map(|(source, _)| source)
    }

    fn open_as(
        path: &Path,
        mode: ReadMode,
        purpose: Purpose,
    ) -> Result<(Source, FileStamp), Error> {
        let file = File::open(path).map_err(|e| Error::io(path, "cannot open", e))?;
        let stamp = FileStamp::of(path, &file)?;
        let len = stamp.len;
        let len = usize::try_from(len).map_err(|_| Error::LimitsExceeded {
            path: path.to_path_buf(),
            what: format!("file of {len} bytes does not fit in this machine's address space"),
        })?;
        let read = |file, why| Source::read(path, file, (len, stamp), why).map(|s| (s, stamp));
        let why = match mode {
            ReadMode::Buffered => return read(file, None),
            ReadMode::Mmap => None,
            ReadMode::Auto => match purpose {
                Purpose::Pixels { .. } => auto_read_reason(path, &file),
                Purpose::Header => None,
            },
        };
        if why.is_some() {
            return read(file, why);
        }
        // An empty file cannot be mapped on every platform; there is nothing to map anyway.
        if len == 0 {
            return read(file, None);
        }
        let mut options = MmapOptions::new();
        options.len(len);
        if let Purpose::Pixels { populate: true } = purpose {
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
        Ok((Source::Mapped(map), stamp))
    }

    /// Reads the whole `file`, of `len` bytes, whose stamp was `before` when
    /// it was opened: an error if it changed meanwhile.
    fn read(
        path: &Path,
        mut file: File,
        (len, before): (usize, FileStamp),
        why: Option<String>,
    ) -> Result<Source, Error> {
        let mut words = vec![0u16; len.div_ceil(2)];
        let bytes = &mut bytemuck::cast_slice_mut::<u16, u8>(&mut words)[..len];
        file.read_exact(bytes).map_err(|e| read_error(path, e))?;
        before.check_unchanged(path, &file)?;
        if before.len != len as u64 {
            return Err(changed_while_read(path));
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

/// Where the reading layer (`tiff::walk`, `tiff::region`) takes a file's bytes
/// from: memory (a [`Source`]: the map, or the file read whole) or positional
/// reads of the open file. One type, so that a page is found and its pixels
/// are addressed by the same code whichever [`ReadMode`] brought the bytes.
#[derive(Clone, Copy)]
pub(crate) enum Bytes<'a> {
    /// The whole file, in memory: reads are copies out of it, or views into it.
    Memory(&'a [u8]),
    /// The open file, `len` bytes long when its stamp was taken: reads are
    /// [`read_exact_at`] calls, which never fault, and a file that shrank since
    /// is a short read (an [`Error::Io`]), never a crash.
    File { file: &'a File, len: u64 },
}

impl<'a> Bytes<'a> {
    /// The file's length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Bytes::Memory(b) => b.len() as u64,
            Bytes::File { len, .. } => *len,
        }
    }

    /// The whole file, when it is in memory.
    pub fn memory(&self) -> Option<&'a [u8]> {
        match self {
            Bytes::Memory(b) => Some(b),
            Bytes::File { .. } => None,
        }
    }

    /// Fills `dst` with the file's bytes from `offset` on; `path` names the file
    /// in errors. Past the end is a short read ([`read_error`]).
    pub fn read_at(&self, path: &Path, offset: u64, dst: &mut [u8]) -> Result<(), Error> {
        match self {
            Bytes::Memory(b) => {
                let part = usize::try_from(offset)
                    .ok()
                    .and_then(|o| b.get(o..o.checked_add(dst.len())?));
                match part {
                    Some(part) => {
                        dst.copy_from_slice(part);
                        Ok(())
                    }
                    None => Err(read_error(path, std::io::ErrorKind::UnexpectedEof.into())),
                }
            }
            Bytes::File { file, .. } => {
                read_exact_at(file, dst, offset).map_err(|e| read_error(path, e))
            }
        }
    }

    /// Hands `f` the `len` bytes at `offset`: a view when the file is in
    /// memory, else read into `scratch` first.
    pub fn with_range<R>(
        &self,
        path: &Path,
        (offset, len): (u64, usize),
        scratch: &mut Vec<u8>,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, Error> {
        if let Bytes::Memory(b) = self
            && let Some(part) = usize::try_from(offset)
                .ok()
                .and_then(|o| b.get(o..o.checked_add(len)?))
        {
            return Ok(f(part));
        }
        scratch.clear();
        scratch.resize(len, 0);
        self.read_at(path, offset, scratch)?;
        Ok(f(scratch))
    }
}

/// A `Read + Seek` over [`Bytes`] with a position of its own, so that each
/// thread can hand the `tiff` crate's decoder its own reader of one open file
/// (a `&File`'s position is shared by every thread that seeks it).
pub(crate) struct PositionalReader<'a> {
    bytes: Bytes<'a>,
    pos: u64,
}

impl<'a> PositionalReader<'a> {
    pub fn new(bytes: Bytes<'a>) -> PositionalReader<'a> {
        PositionalReader { bytes, pos: 0 }
    }
}

impl std::io::Read for PositionalReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.bytes.len().saturating_sub(self.pos);
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let dst = &mut buf[..n];
        match self.bytes {
            Bytes::Memory(b) => {
                // `pos < len` whenever `n > 0`, and `len` is `b.len()`.
                let at = self.pos as usize;
                dst.copy_from_slice(&b[at..at + n]);
            }
            Bytes::File { file, .. } => read_exact_at(file, dst, self.pos)?,
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl std::io::Seek for PositionalReader<'_> {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            std::io::SeekFrom::Start(p) => Some(p),
            std::io::SeekFrom::End(d) => self.bytes.len().checked_add_signed(d),
            std::io::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match target {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek before the start of the file",
            )),
        }
    }
}

/// What an open is for: it decides whether [`ReadMode::Auto`] checks the
/// filesystem and whether a map is faulted in at once.
#[derive(Clone, Copy)]
enum Purpose {
    /// The pixels will be read: a network file is read under `Auto`, not mapped.
    Pixels { populate: bool },
    /// Only the header will be parsed: see [`Source::open_header`].
    Header,
}

/// A file's length and modification time, taken with `fstat`: reads that must
/// not mix two versions of a file compare the stamp before and after.
///
/// `read()` and `pread()` are not atomic against a concurrent `truncate` (a read
/// that overlaps one can return zeroed pages and still succeed), so a short read
/// is not the only sign of a file changed under the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStamp {
    pub len: u64,
    modified: Option<std::time::SystemTime>,
    /// On Unix, the file's device and inode: a file replaced by another of
    /// the same size and time (rsync and `cp -p` rename a new file over the
    /// old one) is another file, which a reader that reopens the path between
    /// two reads (a decoder kept between bands) must not carry on into.
    identity: Option<(u64, u64)>,
}

impl FileStamp {
    /// The stamp of the open `file` now.
    pub fn of(path: &Path, file: &File) -> Result<FileStamp, Error> {
        let m = file
            .metadata()
            .map_err(|e| Error::io(path, "cannot read metadata", e))?;
        #[cfg(unix)]
        let identity = {
            use std::os::unix::fs::MetadataExt;
            Some((m.dev(), m.ino()))
        };
        #[cfg(not(unix))]
        let identity = None;
        Ok(FileStamp {
            len: m.len(),
            modified: m.modified().ok(),
            identity,
        })
    }

    /// An error unless `file`'s stamp is still this one.
    pub fn check_unchanged(&self, path: &Path, file: &File) -> Result<(), Error> {
        if FileStamp::of(path, file)? == *self {
            Ok(())
        } else {
            Err(changed_while_read(path))
        }
    }
}

pub(crate) fn changed_while_read(path: &Path) -> Error {
    let e = std::io::Error::other("the file changed while it was read");
    Error::io(path, "cannot read", e)
}

/// A read error naming the file; a short read says the file shrank.
pub(crate) fn read_error(path: &Path, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        let e = std::io::Error::new(e.kind(), "the file shrank while it was read");
        Error::io(path, "cannot read", e)
    } else {
        Error::io(path, "cannot read", e)
    }
}

/// Fills `buf` from `file` at byte `offset`, without moving a shared file
/// position (so threads may read one file at once): `pread` on Unix,
/// `ReadFile` with an offset on Windows, seek + read elsewhere. A file that
/// ends first gives `UnexpectedEof`.
pub(crate) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.read_exact_at(buf, offset)
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::FileExt;
        let mut done = 0;
        while done < buf.len() {
            match file.seek_read(&mut buf[done..], offset + done as u64) {
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
    #[cfg(not(any(unix, windows)))]
    {
        use std::io::{Seek, SeekFrom};
        let mut f = file;
        f.seek(SeekFrom::Start(offset))?;
        f.read_exact(buf)
    }
}

/// Asks the OS to start reading `len` bytes of `file` at `offset` into the page
/// cache now (`posix_fadvise(POSIX_FADV_WILLNEED)` on Linux and Android), so a
/// later read finds them there. A hint: a no-op elsewhere, errors ignored.
pub(crate) fn advise_willneed(file: &File, offset: u64, len: u64) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len))
        else {
            return;
        };
        // SAFETY: posix_fadvise only reads its integer arguments; the descriptor is
        // open for the call (borrowed from `file`). The result is a hint's, ignored.
        unsafe {
            libc::posix_fadvise(file.as_raw_fd(), offset, len, libc::POSIX_FADV_WILLNEED);
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (file, offset, len);
}

/// Asks the OS to read the whole file at `path` into the page cache now
/// ([`advise_willneed`] on a descriptor opened for the call; the read-ahead
/// goes on after it is closed). A hint: errors are ignored.
pub(crate) fn prefetch_file(path: &Path) {
    if let Ok(file) = File::open(path)
        && let Ok(m) = file.metadata()
    {
        advise_willneed(&file, 0, m.len());
    }
}

/// The file's current length, from `fstat` on the open file.
fn file_len(path: &Path, file: &File) -> Result<u64, Error> {
    Ok(file
        .metadata()
        .map_err(|e| Error::io(path, "cannot read metadata", e))?
        .len())
}

/// Why [`ReadMode::Auto`] should read rather than map `file` (opened from
/// `path`), or `None` to map it.
fn auto_read_reason(path: &Path, file: &File) -> Option<String> {
    network_filesystem(path, file).map(|fs| format!("auto: on a network filesystem ({fs})"))
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
fn network_filesystem(_path: &Path, file: &File) -> Option<&'static str> {
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
fn network_filesystem(_path: &Path, file: &File) -> Option<&'static str> {
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

/// What kind of network location `path` (opened as `file`) is on, if it is one:
/// a UNC path (`\\server\share\...`, `\\?\UNC\...`) or a drive letter that
/// `GetDriveTypeW` calls `DRIVE_REMOTE` (a mapped network drive). A map of a file
/// there raises `EXCEPTION_IN_PAGE_ERROR` (the process dies) if the share drops.
#[cfg(windows)]
fn network_filesystem(path: &Path, _file: &File) -> Option<&'static str> {
    let absolute = std::path::absolute(path).ok()?;
    windows_network_location(&absolute.to_string_lossy(), drive_is_remote)
}

/// Whether drive `letter` is a network drive (`GetDriveTypeW` on `X:\`).
#[cfg(windows)]
fn drive_is_remote(letter: char) -> bool {
    use windows_sys::Win32::Storage::FileSystem::GetDriveTypeW;
    use windows_sys::Win32::System::WindowsProgramming::DRIVE_REMOTE;
    let root: Vec<u16> = format!("{letter}:\\\0").encode_utf16().collect();
    // SAFETY: `root` is a NUL-terminated UTF-16 string that outlives the call,
    // which only reads it.
    unsafe { GetDriveTypeW(root.as_ptr()) == DRIVE_REMOTE }
}

/// The decision of the Windows [`network_filesystem`] on an absolute path's
/// text, apart from the system call (`drive_is_remote`), so every OS tests it.
#[cfg_attr(not(windows), allow(dead_code))]
fn windows_network_location(
    path: &str,
    drive_is_remote: impl Fn(char) -> bool,
) -> Option<&'static str> {
    let path = path.replace('/', "\\");
    let verbatim = path
        .strip_prefix(r"\\?\")
        .or_else(|| path.strip_prefix(r"\\.\"));
    let rest = match verbatim {
        Some(rest)
            if rest
                .get(..4)
                .is_some_and(|p| p.eq_ignore_ascii_case("UNC\\")) =>
        {
            return Some("a UNC path to a network share");
        }
        Some(rest) => rest,
        None if path.starts_with(r"\\") => return Some("a UNC path to a network share"),
        None => &path,
    };
    let mut chars = rest.chars();
    match (chars.next(), chars.next()) {
        (Some(letter), Some(':')) if letter.is_ascii_alphabetic() && drive_is_remote(letter) => {
            Some("a network drive")
        }
        _ => None,
    }
}

/// Portable fallback (the BSDs, ...): no detection, every file is mapped.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    windows
)))]
fn network_filesystem(_path: &Path, _file: &File) -> Option<&'static str> {
    None
}

/// Test-only: the pixel bytes readers brought in from each file (a slice
/// opened whole counts its image, a streamed read the rows read), so that tests
/// can tell each input read once from inputs read twice.
#[cfg(test)]
pub(crate) mod probe {
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    static PIXEL_BYTES: Mutex<Option<HashMap<PathBuf, u64>>> = Mutex::new(None);

    pub(crate) fn pixels_read(path: &Path, bytes: u64) {
        let mut counts = PIXEL_BYTES.lock().unwrap_or_else(|e| e.into_inner());
        *counts
            .get_or_insert_with(HashMap::new)
            .entry(path.to_path_buf())
            .or_default() += bytes;
    }

    static ROWS_READ: Mutex<Vec<(PathBuf, usize)>> = Mutex::new(Vec::new());

    /// A streamed read of rows from `y0` of the file at `path` starts.
    pub(crate) fn rows_read(path: &Path, y0: usize) {
        let mut reads = ROWS_READ.lock().unwrap_or_else(|e| e.into_inner());
        reads.push((path.to_path_buf(), y0));
    }

    /// The first rows of the streamed reads of the file at `path` so far, in
    /// the order they started.
    pub(crate) fn rows_reads(path: &Path) -> Vec<usize> {
        let reads = ROWS_READ.lock().unwrap_or_else(|e| e.into_inner());
        reads
            .iter()
            .filter(|(p, _)| p == path)
            .map(|&(_, y0)| y0)
            .collect()
    }

    /// Pixel bytes brought in from the file at `path` so far.
    pub(crate) fn pixel_bytes(path: &Path) -> u64 {
        let counts = PIXEL_BYTES.lock().unwrap_or_else(|e| e.into_inner());
        counts
            .as_ref()
            .and_then(|c| c.get(path))
            .copied()
            .unwrap_or(0)
    }
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

    /// A file replaced by another of the same size and time (rsync, `cp -p`:
    /// a new file renamed over the old) does not have the old one's stamp, so
    /// a reader that reopens the path between bands does not carry on into it.
    /// Unix only: the identity is the inode, which Windows' stable std lacks.
    #[cfg(unix)]
    #[test]
    fn a_file_replaced_at_the_same_size_and_time_is_another_file() {
        let dir = std::env::temp_dir().join(format!("ctstack-stamp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (path, new) = (dir.join("s.tif"), dir.join("s.tif.new"));
        std::fs::write(&path, [1u8; 64]).unwrap();
        std::fs::write(&new, [2u8; 64]).unwrap();
        let time = std::fs::metadata(&path).unwrap().modified().unwrap();
        File::options()
            .write(true)
            .open(&new)
            .unwrap()
            .set_modified(time)
            .unwrap();
        let before = FileStamp::of(&path, &File::open(&path).unwrap()).unwrap();
        std::fs::rename(&new, &path).unwrap();
        let after = FileStamp::of(&path, &File::open(&path).unwrap()).unwrap();
        assert_eq!((before.len, before.modified), (after.len, after.modified));
        assert_ne!(before, after);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Unix only: Windows refuses to shorten a mapped file (the next test), so
    /// no map there can outlast its file's length.
    #[cfg(unix)]
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

    /// Windows' side of the mapping hazard: while ctstack maps a file, another
    /// program cannot shorten it (ERROR_USER_MAPPED_FILE, 1224); once the map
    /// is dropped, it can.
    #[cfg(windows)]
    #[test]
    fn a_mapped_file_cannot_be_shortened_on_windows() {
        let dir = std::env::temp_dir().join(format!("ctstack-shorten-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mapped.bin");
        std::fs::write(&path, vec![1u8; 256 * 1024]).unwrap();
        let map = Source::open(&path, ReadMode::Mmap, false).unwrap();
        assert!(map.is_mapped());
        let other = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let e = other.set_len(10).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(1224), "{e}");
        drop(map);
        other.set_len(10).unwrap();
        drop(other);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn windows_shares_and_network_drives_are_network_locations() {
        let z_is_remote = |letter: char| letter.eq_ignore_ascii_case(&'Z');
        let network = |p: &str| windows_network_location(p, z_is_remote);
        for share in [
            r"\\nas\scans\rec_0000.tif",
            r"\\?\UNC\nas\scans\rec_0000.tif",
            r"\\?\unc\nas\scans\rec_0000.tif",
            "//nas/scans/rec_0000.tif",
        ] {
            assert_eq!(
                network(share),
                Some("a UNC path to a network share"),
                "{share}"
            );
        }
        for drive in [
            r"Z:\scan\rec_0000.tif",
            r"z:\scan",
            r"\\?\Z:\scan\rec_0000.tif",
        ] {
            assert_eq!(network(drive), Some("a network drive"), "{drive}");
        }
        for local in [
            r"C:\scan\rec_0000.tif",
            r"\\?\C:\scan\rec_0000.tif",
            r"\\?\Volume{0b1e2f3a-0000-0000-0000-100000000000}\scan",
            "/home/scan/rec_0000.tif",
        ] {
            assert_eq!(network(local), None, "{local}");
        }
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
        let on_network = network_filesystem(&small, &File::open(&small).unwrap());
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
        // Windows refuses to delete a mapped file: unmap first.
        drop((s, l, b));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
