//! Hostile bytes, in-tree: every valid fixture (TIFF, and the BMP, PNG and JPEG
//! files of fixtures/images; and the unsupported ones) is
//! mutated a few thousand times with a seeded generator, and each mutant is
//! opened with default limits and with small ones. Every outcome must be an
//! `Ok` slice whose rows agree with its dimensions, or a typed error of kind
//! Format / Unsupported / LimitsExceeded. No panic, no case slower than
//! [`MAX_CASE_TIME`], and no case whose peak of live heap bytes (counted by this
//! binary's global allocator) goes past [`memory_bound`].
//!
//! A failure names the fixture, the seed and the mutations applied. To replay
//! one case: `CTSTACK_MUTATION_SEED=<seed> cargo test --test mutation -- --nocapture`
//! (the seed alone fixes the fixture and the mutations). `CTSTACK_MUTATIONS=<n>`
//! changes the number of cases per fixture (default [`CASES_PER_FIXTURE`]).
//!
//! This file holds a single `#[test]`, so nothing else allocates while a case runs.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::Rng;
use ctstack::{
    AccessPath, ErrorKind, Limits, OpenOptions, Sample, SampleType, Slice, average_pair,
};

// ---------------------------------------------------------------------------
// Peak-tracking allocator (this test binary only).

/// Counts live heap bytes and their peak. Forwards everything to the system allocator.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn shrank(n: usize) {
    LIVE.fetch_sub(n, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` with the same arguments; only the
// sizes of successful calls are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours, passed through.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours, passed through.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours, passed through.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as ours, passed through.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// ---------------------------------------------------------------------------
// Budgets.

/// Cases per fixture (each case is opened with two sets of limits).
const CASES_PER_FIXTURE: u64 = 250;
/// The slowest a single case may be, debug build included. The slowest legitimate
/// case is a JPEG whose forged height is still plausible for its length (67x8192,
/// a real decode): about 0.5 s in a quiet debug build, up to 2 s when the
/// machine's two cores are shared; 5 s still tells a runaway decode from a real one.
const MAX_CASE_TIME: Duration = Duration::from_secs(5);
/// A case still running after this long is a hang: the watchdog names it and aborts.
const HANG_TIME: Duration = Duration::from_secs(60);
/// The seed every case's seed derives from.
const BASE_SEED: u64 = 0x6374_7374_6163_6b06; // "ctstack", issue 6

/// Small limits: a 67x45 16-bit fixture (6030 bytes) still fits, little else.
fn small_limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_pixels = 8192;
    limits.max_decoded_bytes = 16 << 10;
    limits.max_ifd_entries = 32;
    limits.max_compression_ratio = 16;
    limits.max_pages = 8;
    limits
}

/// The largest peak of live heap bytes one case may reach, beyond what was live
/// before it: 64 MiB of headroom plus a small multiple of the input, for the
/// default limits. The small limits cap every buffer ctstack sizes from the file
/// at 16 KiB, so the bound there is much tighter.
fn memory_bound(input_len: usize, small: bool) -> usize {
    if small {
        (4 << 20) + 16 * input_len
    } else {
        (64 << 20) + 16 * input_len
    }
}

// ---------------------------------------------------------------------------
// A minimal TIFF structure reader, to aim mutations at IFD fields.

#[derive(Clone, Copy)]
struct Entry {
    /// Offset of the 12- or 20-byte entry.
    pos: usize,
    tag: u16,
    field_type: u16,
}

struct Ifd {
    pos: usize,
    entries: Vec<Entry>,
    /// Offset of the next-IFD pointer that ends this IFD.
    next_pos: usize,
}

struct Structure {
    le: bool,
    big: bool,
    /// Offset of the header's first-IFD pointer (4 or 8).
    first_pos: usize,
    ifds: Vec<Ifd>,
}

impl Structure {
    fn offset_size(&self) -> usize {
        if self.big { 8 } else { 4 }
    }
    /// Offset of an entry's count field.
    fn count_pos(&self, e: &Entry) -> usize {
        e.pos + 4
    }
    /// Offset of an entry's value/offset field.
    fn value_pos(&self, e: &Entry) -> usize {
        e.pos + 4 + self.offset_size()
    }
}

fn read_uint(bytes: &[u8], at: usize, size: usize, le: bool) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(size)?)?;
    let mut v = 0u64;
    for i in 0..size {
        let byte = if le { b[size - 1 - i] } else { b[i] };
        v = v << 8 | u64::from(byte);
    }
    Some(v)
}

/// Writes the low `size` bytes of `v` at `at` in the file's byte order; a write
/// that does not fit in the file is dropped (returns false).
fn write_uint(bytes: &mut [u8], at: usize, size: usize, v: u64, le: bool) -> bool {
    let Some(end) = at.checked_add(size) else {
        return false;
    };
    let Some(b) = bytes.get_mut(at..end) else {
        return false;
    };
    for i in 0..size {
        let byte = (v >> (8 * i)) as u8;
        if le {
            b[i] = byte;
        } else {
            b[size - 1 - i] = byte;
        }
    }
    true
}

/// The header and up to four IFDs of the chain (stopping at loops or bad offsets).
fn structure(bytes: &[u8]) -> Option<Structure> {
    let le = match bytes.get(..2)? {
        b"II" => true,
        b"MM" => false,
        _ => return None,
    };
    let big = match read_uint(bytes, 2, 2, le)? {
        42 => false,
        43 => true,
        _ => return None,
    };
    let (first_pos, osize, csize, esize) = if big { (8, 8, 8, 20) } else { (4, 4, 2, 12) };
    let mut s = Structure {
        le,
        big,
        first_pos,
        ifds: Vec::new(),
    };
    let mut at = read_uint(bytes, first_pos, osize, le)? as usize;
    while at != 0 && s.ifds.len() < 4 && s.ifds.iter().all(|i| i.pos != at) {
        let Some(n) = read_uint(bytes, at, csize, le) else {
            break;
        };
        let n = n.min(4096) as usize;
        let mut entries = Vec::new();
        for i in 0..n {
            let pos = at + csize + i * esize;
            if pos + esize > bytes.len() {
                break;
            }
            entries.push(Entry {
                pos,
                tag: read_uint(bytes, pos, 2, le)? as u16,
                field_type: read_uint(bytes, pos + 2, 2, le)? as u16,
            });
        }
        let next_pos = at + csize + n * esize;
        s.ifds.push(Ifd {
            pos: at,
            entries,
            next_pos,
        });
        match read_uint(bytes, next_pos, osize, le) {
            Some(next) => at = next as usize,
            None => break,
        }
    }
    Some(s)
}

// ---------------------------------------------------------------------------
// Mutations.

const INTERESTING_U8: [u8; 10] = [0, 1, 0x7F, 0x80, 0xFF, 0xFE, 0x10, 0x40, 0x20, 0x08];

const TAGS: [u16; 17] = [
    256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 317, 322, 323, 324, 325, 339, 330,
];

/// Field types, valid (1..=18) and not.
const TYPES: [u16; 12] = [0, 1, 2, 3, 4, 5, 7, 12, 13, 16, 18, 0xFFFF];

/// Interesting values for a count, an offset or a dimension, given the file length.
fn interesting(rng: &mut Rng, len: usize, big: bool) -> u64 {
    let len = len as u64;
    let fixed: [u64; 22] = [
        0,
        1,
        2,
        3,
        7,
        8,
        15,
        16,
        255,
        256,
        0x7FFF,
        0xFFFF,
        0x1_0000,
        100_000,
        1 << 20,
        1 << 24,
        0x3FFF_FFFF,
        0x4000_0000,
        0x7FFF_FFFF,
        0x8000_0000,
        0xFFFF_FFFE,
        0xFFFF_FFFF,
    ];
    let near_eof = [
        len.wrapping_sub(1),
        len.wrapping_sub(2),
        len.wrapping_sub(3),
        len.wrapping_sub(4),
        len.wrapping_sub(8),
        len,
        len + 1,
        len / 2,
    ];
    let wide: [u64; 5] = [
        u64::MAX,
        u64::MAX / 12,
        1 << 32,
        0x7FFF_FFFF_FFFF_FFFF,
        0x8000_0000_0000_0000,
    ];
    match rng.below(10) {
        0..=4 => fixed[rng.below(fixed.len() as u64) as usize],
        5..=7 => near_eof[rng.below(near_eof.len() as u64) as usize],
        8 if big => wide[rng.below(wide.len() as u64) as usize],
        _ => rng.below(len.max(1) * 2),
    }
}

/// Applies one random mutation to `bytes`; returns what it did.
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) -> String {
    let len = bytes.len();
    if len == 0 {
        bytes.push(rng.next_u64() as u8);
        return "grew an empty file by one byte".into();
    }
    let kind = rng.below(13);
    if kind >= 4
        && let Some(what) = mutate_image_header(rng, bytes)
    {
        return what;
    }
    let s = structure(bytes);
    // Structured mutations need an IFD; without one they fall back to a byte overwrite.
    let s = match (kind, s) {
        (0..=3, _) | (_, None) => return mutate_bytes(rng, bytes, kind.min(3)),
        (_, Some(s)) if s.ifds.is_empty() || s.ifds[0].entries.is_empty() => {
            return mutate_bytes(rng, bytes, kind % 4);
        }
        (_, Some(s)) => s,
    };
    let le = s.le;
    let osize = s.offset_size();
    let ifd = &s.ifds[rng.below(s.ifds.len() as u64) as usize];
    let pick = |rng: &mut Rng, ifd: &Ifd| -> Option<Entry> {
        if ifd.entries.is_empty() {
            None
        } else {
            Some(ifd.entries[rng.below(ifd.entries.len() as u64) as usize])
        }
    };
    let find = |tag: u16| s.ifds[0].entries.iter().find(|e| e.tag == tag).copied();
    match kind {
        4 => {
            let Some(e) = pick(rng, ifd) else {
                return mutate_bytes(rng, bytes, 0);
            };
            let v = interesting(rng, len, s.big);
            write_uint(bytes, s.count_pos(&e), osize, v, le);
            format!("entry @{} (tag {}) count := {v}", e.pos, e.tag)
        }
        5 => {
            let Some(e) = pick(rng, ifd) else {
                return mutate_bytes(rng, bytes, 0);
            };
            let v = interesting(rng, len, s.big);
            write_uint(bytes, s.value_pos(&e), osize, v, le);
            format!("entry @{} (tag {}) value/offset := {v}", e.pos, e.tag)
        }
        6 => {
            let Some(e) = pick(rng, ifd) else {
                return mutate_bytes(rng, bytes, 0);
            };
            let t = TYPES[rng.below(TYPES.len() as u64) as usize];
            write_uint(bytes, e.pos + 2, 2, u64::from(t), le);
            format!(
                "entry @{} (tag {}) type {} := {t}",
                e.pos, e.tag, e.field_type
            )
        }
        7 => {
            let Some(e) = pick(rng, ifd) else {
                return mutate_bytes(rng, bytes, 0);
            };
            let t = TAGS[rng.below(TAGS.len() as u64) as usize];
            write_uint(bytes, e.pos, 2, u64::from(t), le);
            format!("entry @{} tag {} := {t}", e.pos, e.tag)
        }
        8 => {
            // An IFD loop: some IFD's next pointer goes back to IFD 0 or to itself,
            // or IFD 0's next pointer goes to the last IFD in the chain.
            let last = s.ifds.last().unwrap();
            let (at, target, what) = match rng.below(3) {
                0 => (last.next_pos, s.ifds[0].pos, "last IFD's next := IFD 0"),
                1 => (ifd.next_pos, ifd.pos, "an IFD's next := itself"),
                _ => (s.ifds[0].next_pos, last.pos, "IFD 0's next := last IFD"),
            };
            write_uint(bytes, at, osize, target as u64, le);
            format!("{what} (pointer @{at} := {target})")
        }
        9 => {
            let target = match rng.below(4) {
                0 => s.ifds.last().unwrap().pos as u64,
                1 => s.ifds[0].next_pos as u64,
                2 => ifd.entries.first().map_or(8, |e| e.pos as u64),
                _ => interesting(rng, len, s.big),
            };
            write_uint(bytes, s.first_pos, osize, target, le);
            format!("first IFD offset := {target}")
        }
        10 | 11 => {
            // A dimension or a layout tag gets a huge or odd value, as a LONG (LONG8).
            const DIMS: [u16; 10] = [256, 257, 256, 257, 278, 322, 323, 258, 277, 259];
            let tag = DIMS[rng.below(DIMS.len() as u64) as usize];
            let Some(e) = find(tag) else {
                return mutate_bytes(rng, bytes, 1);
            };
            let v = match tag {
                259 => [1u64, 5, 7, 8, 32773, 32946, 34712, 50000, 2, 0][rng.below(10) as usize],
                258 => [0u64, 1, 4, 8, 12, 16, 24, 32, 64, 0xFFFF][rng.below(10) as usize],
                _ => interesting(rng, len, s.big),
            };
            let (t, size) = if s.big && v > u64::from(u32::MAX) {
                (16, 8)
            } else {
                (4, 4)
            };
            write_uint(bytes, e.pos + 2, 2, t, le);
            write_uint(bytes, s.count_pos(&e), osize, 1, le);
            write_uint(bytes, s.value_pos(&e), osize, 0, le);
            write_uint(bytes, s.value_pos(&e), size, v, le);
            format!("tag {tag} (entry @{}) := {v} as type {t}", e.pos)
        }
        _ => {
            // Strip/tile offsets or counts: many values at a huge or near-EOF offset.
            let tag = [273u16, 279, 324, 325][rng.below(4) as usize];
            let Some(e) = find(tag) else {
                return mutate_bytes(rng, bytes, 2);
            };
            let count = [1u64, 2, 4, 100, 0xFFFF, 0x4000_0000][rng.below(6) as usize];
            let offset = interesting(rng, len, s.big);
            write_uint(bytes, s.count_pos(&e), osize, count, le);
            write_uint(bytes, s.value_pos(&e), osize, offset, le);
            format!("tag {tag} (entry @{}) := {count} values at {offset}", e.pos)
        }
    }
}

/// Header mutations for BMP, PNG and JPEG files: a size, offset or count field
/// of the header gets an interesting value (PNG's IHDR keeps a valid CRC, so the
/// decoder gets past its check). `None` for TIFF files.
fn mutate_image_header(rng: &mut Rng, bytes: &mut [u8]) -> Option<String> {
    let len = bytes.len();
    let le32 = |bytes: &mut [u8], at: usize, v: u64| write_uint(bytes, at, 4, v, true);
    if bytes.starts_with(b"BM") {
        // File size, pixel offset, header size, width, height, planes + bits,
        // compression, image size, colors used.
        const FIELDS: [(usize, &str); 9] = [
            (2, "file size"),
            (10, "pixel offset"),
            (14, "header size"),
            (18, "width"),
            (22, "height"),
            (26, "planes and bits"),
            (30, "compression"),
            (34, "image size"),
            (46, "colors used"),
        ];
        let (at, name) = FIELDS[rng.below(FIELDS.len() as u64) as usize];
        let v = match name {
            "header size" => {
                [12u64, 16, 40, 52, 56, 64, 108, 124, 0, 0xFFFF_FFFF][rng.below(10) as usize]
            }
            "planes and bits" => [
                1u64 | 8 << 16,
                1 | 24 << 16,
                1 | 32 << 16,
                1 | 4 << 16,
                1 | 16 << 16,
                0,
            ][rng.below(6) as usize],
            "compression" => rng.below(8),
            "height" if rng.below(2) == 0 => (-(interesting(rng, len, false) as i64)) as u32 as u64,
            _ => interesting(rng, len, false),
        };
        le32(bytes, at, v);
        return Some(format!("BMP {name} (@{at}) := {v}"));
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") && len >= 33 {
        // IHDR: width @16, height @20, depth @24, color @25, interlace @28; CRC @29.
        let what = match rng.below(4) {
            0 | 1 => {
                let at = [16usize, 20][rng.below(2) as usize];
                let v = interesting(rng, len, false);
                write_uint(bytes, at, 4, v, false);
                format!(
                    "PNG IHDR {} := {v}",
                    if at == 16 { "width" } else { "height" }
                )
            }
            2 => {
                let depth = [1u8, 2, 4, 8, 16, 0, 3][rng.below(7) as usize];
                bytes[24] = depth;
                format!("PNG IHDR bit depth := {depth}")
            }
            _ => {
                let color = [0u8, 2, 3, 4, 6, 1, 7][rng.below(7) as usize];
                bytes[25] = color;
                format!("PNG IHDR color type := {color}")
            }
        };
        let crc = common::crc32(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        return Some(what);
    }
    if bytes.starts_with(&[0xff, 0xd8]) {
        // The frame header: precision, height, width, components.
        let sof = bytes
            .windows(2)
            .position(|w| w[0] == 0xff && (0xc0..=0xc2).contains(&w[1]))?;
        let field = rng.below(4) as usize;
        let (at, size) = [(sof + 4, 1), (sof + 5, 2), (sof + 7, 2), (sof + 9, 1)][field];
        let v = match field {
            0 => [8u64, 12, 16, 0][rng.below(4) as usize],
            3 => [1u64, 3, 4, 0, 255][rng.below(5) as usize],
            _ => [0u64, 1, 0xFFFF, 0x8000, 8192][rng.below(5) as usize],
        };
        write_uint(bytes, at, size, v, false);
        return Some(format!("JPEG frame field @{at} := {v}"));
    }
    None
}

/// Unstructured mutations: 0 bit flips, 1 interesting byte, 2 truncation, 3 word overwrite or splice.
fn mutate_bytes(rng: &mut Rng, bytes: &mut Vec<u8>, kind: u64) -> String {
    let len = bytes.len();
    // Half the time aim at the first 512 bytes, where headers and IFDs usually are.
    let pos = |rng: &mut Rng| {
        if rng.below(2) == 0 {
            rng.below(len.min(512) as u64) as usize
        } else {
            rng.below(len as u64) as usize
        }
    };
    match kind {
        0 => {
            let n = 1 + rng.below(4);
            let mut flips = Vec::new();
            for _ in 0..n {
                let (at, bit) = (pos(rng), rng.below(8));
                bytes[at] ^= 1 << bit;
                flips.push(format!("{at}.{bit}"));
            }
            format!("bit flips at {}", flips.join(","))
        }
        1 => {
            let at = pos(rng);
            let v = INTERESTING_U8[rng.below(INTERESTING_U8.len() as u64) as usize];
            bytes[at] = v;
            format!("byte @{at} := {v:#04x}")
        }
        2 => {
            let to = if rng.below(2) == 0 {
                rng.below(len as u64) as usize
            } else {
                len.saturating_sub(1 + rng.below(16) as usize)
            };
            bytes.truncate(to);
            format!("truncated to {to} bytes")
        }
        _ => {
            if rng.below(4) == 0 {
                // Copy a run of bytes over another place (moves IFD-like data around).
                let from = pos(rng);
                let to = pos(rng);
                let n = (1 + rng.below(64) as usize).min(len - from).min(len - to);
                bytes.copy_within(from..from + n, to);
                return format!("copied {n} bytes from @{from} to @{to}");
            }
            let at = pos(rng);
            let size = [2usize, 4, 8][rng.below(3) as usize];
            let v = interesting(rng, len, true);
            let le = rng.below(2) == 0;
            write_uint(bytes, at, size, v, le);
            format!(
                "{size}-byte {} word @{at} := {v}",
                if le { "LE" } else { "BE" }
            )
        }
    }
}

// ---------------------------------------------------------------------------
// Checking one mutant.

/// What a mutant opened as.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Opened {
        width: u32,
        height: u32,
        bits: u32,
        checksum: u64,
    },
    Refused(ErrorKind),
}

/// What the checks need of a sample type: its bit pattern, and the mean of a
/// 2x2 block averaged with itself, as the specification has it.
trait Probe: Sample {
    fn pattern(self) -> u64;
    fn self_mean(q: [Self; 4]) -> Self;
    fn same(a: Self, b: Self) -> bool;
}

macro_rules! integer_probe {
    ($($T:ty => $U:ty),*) => {$(
        impl Probe for $T {
            fn pattern(self) -> u64 {
                u64::from(self as $U)
            }
            fn self_mean(q: [$T; 4]) -> $T {
                let s: i64 = q.iter().map(|&v| i64::from(v)).sum();
                <$T>::try_from((2 * s + 4).div_euclid(8)).unwrap()
            }
            fn same(a: $T, b: $T) -> bool {
                a == b
            }
        }
    )*};
}
integer_probe!(u8 => u8, u16 => u16, i16 => u16);

impl Probe for f32 {
    fn pattern(self) -> u64 {
        u64::from(self.to_bits())
    }
    fn self_mean(q: [f32; 4]) -> f32 {
        let s = (f64::from(q[0]) + f64::from(q[1])) + (f64::from(q[2]) + f64::from(q[3]));
        ((s + s) / 8.0) as f32
    }
    fn same(a: f32, b: f32) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }
}

fn rows_checksum<T: Probe>(slice: &Slice) -> Result<u64, String> {
    let rows = slice.rows::<T>().map_err(|e| format!("rows(): {e}"))?;
    let (w, h) = (slice.width() as usize, slice.height() as usize);
    if rows.width() != w || rows.height() != h {
        return Err(format!(
            "rows are {}x{}, slice is {w}x{h}",
            rows.width(),
            rows.height()
        ));
    }
    let mut n = 0usize;
    let mut sum = 0u64;
    for (y, row) in rows.iter().enumerate() {
        if row.len() != w {
            return Err(format!("row {y} holds {} samples, width is {w}", row.len()));
        }
        for (x, &v) in row.iter().enumerate() {
            sum = sum
                .wrapping_mul(31)
                .wrapping_add(v.pattern() ^ (x as u64) << 16);
        }
        n += 1;
    }
    if n != h {
        return Err(format!("rows() yielded {n} rows, height is {h}"));
    }
    let mut out = vec![T::default(); (w / 2) * (h / 2)];
    average_pair(&rows, &rows, &mut out).map_err(|e| format!("average_pair: {e}"))?;
    // The mean of a slice with itself, on the first output pixel, is the 2x2 mean.
    if w >= 2 && h >= 2 {
        let q = [
            rows.row(0)[0],
            rows.row(0)[1],
            rows.row(1)[0],
            rows.row(1)[1],
        ];
        let want = T::self_mean(q);
        if !T::same(out[0], want) {
            return Err(format!(
                "average_pair gave {:?}, the 2x2 mean is {want:?}",
                out[0]
            ));
        }
    }
    // Asking for the other sample type is a typed mismatch, not a panic.
    let other = if T::BITS == 8 {
        slice.rows::<u16>().err()
    } else {
        slice.rows::<u8>().err()
    };
    match other.map(|e| e.kind()) {
        Some(ErrorKind::Mismatch) => {}
        k => return Err(format!("rows() of the wrong type gave {k:?}")),
    }
    Ok(sum)
}

fn checksum(slice: &Slice) -> Result<u64, String> {
    match slice.sample_type() {
        SampleType::U8 => rows_checksum::<u8>(slice),
        SampleType::U16 => rows_checksum::<u16>(slice),
        SampleType::I16 => rows_checksum::<i16>(slice),
        SampleType::F32 => rows_checksum::<f32>(slice),
        t => Err(format!("opened with samples of {t}")),
    }
}

/// Only typed errors of the file's making.
fn file_error(e: &ctstack::Error) -> Result<(), String> {
    match e.kind() {
        ErrorKind::Format | ErrorKind::Unsupported | ErrorKind::LimitsExceeded => Ok(()),
        kind => Err(format!("error of kind {kind:?}: {e}")),
    }
}

/// The page chain of a mutant: counted within the limit (or refused), its last
/// page opened and checked, the page after it a usage error.
fn check_pages(path: &Path, options: &OpenOptions) -> Result<(), String> {
    let n = match Slice::page_count(path, options) {
        Ok(n) => n,
        Err(e) => return file_error(&e),
    };
    if n == 0 || n as u64 > options.limits.max_pages {
        return Err(format!("page_count gave {n}"));
    }
    match Slice::open_page(path, n - 1, options) {
        Ok(slice) => {
            checksum(&slice).map_err(|e| format!("page {}: {e}", n - 1))?;
        }
        Err(e) => file_error(&e)?,
    }
    match Slice::open_page(path, n, options) {
        Err(e) if e.kind() == ErrorKind::Usage => Ok(()),
        Err(e) => file_error(&e),
        Ok(_) => Err(format!("page {n} of {n} opened")),
    }
}

fn open_and_check(
    name: &Path,
    bytes: &[u8],
    options: &OpenOptions,
    file: Option<&Path>,
) -> Result<Outcome, String> {
    let result = match file {
        Some(path) => Slice::open_with(path, options),
        None => Slice::from_bytes(name, bytes, options),
    };
    if let Some(path) = file {
        check_pages(path, options)?;
    }
    match result {
        Ok(slice) => {
            let (w, h, bits) = (slice.width(), slice.height(), slice.bits());
            if w == 0 || h == 0 {
                return Err(format!("opened a {w}x{h} slice"));
            }
            if u64::from(w) * u64::from(h) > options.limits.max_pixels {
                return Err(format!("opened {w}x{h}, beyond max_pixels"));
            }
            let owned = matches!(
                slice.access().path,
                AccessPath::Copied | AccessPath::Decoded | AccessPath::Converted
            );
            if owned && slice.image_bytes() as u64 > options.limits.max_decoded_bytes {
                return Err(format!(
                    "allocated {} bytes, beyond max_decoded_bytes",
                    slice.image_bytes()
                ));
            }
            let checksum = checksum(&slice)?;
            Ok(Outcome::Opened {
                width: w,
                height: h,
                bits,
                checksum,
            })
        }
        Err(e) => {
            let kind = e.kind();
            if !matches!(
                kind,
                ErrorKind::Format | ErrorKind::Unsupported | ErrorKind::LimitsExceeded
            ) {
                return Err(format!("error of kind {kind:?}: {e}"));
            }
            let shown = file.unwrap_or(name);
            if e.path() != Some(shown) || !e.to_string().contains(&*shown.to_string_lossy()) {
                return Err(format!("error does not name the file: {e}"));
            }
            Ok(Outcome::Refused(kind))
        }
    }
}

/// Runs `f` under `catch_unwind`, timing it and measuring its heap peak.
fn measured<R>(f: impl FnOnce() -> Result<R, String>) -> (Result<R, String>, Duration, usize) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let start = Instant::now();
    let result = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic".into());
            Err(format!("PANIC: {msg}"))
        }
    };
    let elapsed = start.elapsed();
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    (result, elapsed, peak)
}

// ---------------------------------------------------------------------------
// The test.

/// What the watchdog prints if a case never returns.
static CURRENT: Mutex<String> = Mutex::new(String::new());
/// Milliseconds since `EPOCH` at which the current case started; 0 when idle.
static STARTED_MS: AtomicU64 = AtomicU64::new(0);

fn inputs() -> Vec<(String, Vec<u8>)> {
    let root = common::fixtures();
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in ["slices", "unsupported", "images", "types"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path
                .extension()
                .is_some_and(|e| ["tif", "bmp", "png", "jpg"].iter().any(|x| e == *x))
            {
                files.push(path);
            }
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

fn case_seed(fixture_index: usize, case: u64) -> u64 {
    BASE_SEED ^ ((fixture_index as u64) << 32 | case)
}

#[test]
fn mutated_fixtures_never_panic_hang_or_overallocate() {
    let inputs = inputs();
    assert!(inputs.len() >= 30, "fixtures missing: {}", inputs.len());
    let per_fixture = std::env::var("CTSTACK_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES_PER_FIXTURE);
    let only_seed: Option<u64> = std::env::var("CTSTACK_MUTATION_SEED").ok().map(|v| {
        v.trim()
            .parse()
            .expect("CTSTACK_MUTATION_SEED must be a number")
    });
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mutation");
    std::fs::create_dir_all(&tmp).unwrap();

    // Warm up rayon's pool and the panic machinery outside any measured case.
    {
        let s = Slice::from_bytes("warmup", &inputs[0].1, &OpenOptions::default()).unwrap();
        let _ = rows_checksum::<u16>(&s).or_else(|_| rows_checksum::<u8>(&s));
        let _ = catch_unwind(|| ());
    }

    // A watchdog: a case that never returns would hang `cargo test`; name it and abort instead.
    let epoch = Instant::now();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let started = STARTED_MS.load(Ordering::Relaxed);
            let now = epoch.elapsed().as_millis() as u64;
            if started != 0 && now.saturating_sub(started) > HANG_TIME.as_millis() as u64 {
                let what = CURRENT.lock().map(|s| s.clone()).unwrap_or_default();
                eprintln!("HANG: a case has run for over {HANG_TIME:?}: {what}");
                std::process::abort();
            }
        }
    });

    // A panic is reported once, with its case; silence the default hook's output.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));

    let test_start = Instant::now();
    let defaults = OpenOptions::default();
    let small = OpenOptions {
        limits: small_limits(),
        ..OpenOptions::default()
    };
    let mut failures: Vec<String> = Vec::new();
    let (mut mutants, mut opens) = (0u64, 0u64);
    let (mut opened, mut refused) = (0u64, std::collections::BTreeMap::<String, u64>::new());
    let (mut slowest, mut biggest) = (Duration::ZERO, 0usize);
    let mut slowest_case = String::new();

    'fixtures: for (fi, (name, original)) in inputs.iter().enumerate() {
        for case in 0..per_fixture {
            let seed = case_seed(fi, case);
            if only_seed.is_some_and(|s| s != seed) {
                continue;
            }
            let mut rng = Rng::new(seed);
            let mut bytes = original.clone();
            let stacked = match rng.below(20) {
                0..=11 => 1,
                12..=16 => 2,
                _ => 3 + rng.below(2),
            };
            let what: Vec<String> = (0..stacked).map(|_| mutate(&mut rng, &mut bytes)).collect();
            let label = format!(
                "fixture {name}, seed {seed} ({} bytes after: {})",
                bytes.len(),
                what.join("; ")
            );
            mutants += 1;
            let shown = PathBuf::from(format!("mutant-{seed}.tif"));
            // Every 8th mutant also goes through a real file, memory-mapped.
            let file = (case % 8 == 0).then(|| {
                let p = tmp.join(&shown);
                std::fs::write(&p, &bytes).unwrap();
                p
            });

            let mut outcomes = Vec::new();
            let runs: [(&str, &OpenOptions, Option<&Path>); 3] = [
                ("default limits", &defaults, None),
                ("small limits", &small, None),
                ("default limits, mmap", &defaults, file.as_deref()),
            ];
            for (mode, options, path) in runs {
                if mode.ends_with("mmap") && path.is_none() {
                    continue;
                }
                *CURRENT.lock().unwrap() = format!("{label} [{mode}]");
                STARTED_MS.store(epoch.elapsed().as_millis().max(1) as u64, Ordering::Relaxed);
                let (result, elapsed, peak) =
                    measured(|| open_and_check(&shown, &bytes, options, path));
                STARTED_MS.store(0, Ordering::Relaxed);
                opens += 1;
                if elapsed > slowest {
                    slowest = elapsed;
                    slowest_case = format!("{label} [{mode}]");
                }
                biggest = biggest.max(peak);
                let bound = memory_bound(bytes.len(), options.limits == small_limits());
                match result {
                    Err(e) => failures.push(format!("{label} [{mode}]: {e}")),
                    Ok(outcome) => {
                        match &outcome {
                            Outcome::Opened { .. } => opened += 1,
                            Outcome::Refused(k) => {
                                *refused.entry(format!("{k:?}")).or_default() += 1
                            }
                        }
                        outcomes.push((mode, outcome));
                    }
                }
                if elapsed > MAX_CASE_TIME {
                    failures.push(format!("{label} [{mode}]: took {elapsed:?}"));
                }
                if peak > bound {
                    failures.push(format!(
                        "{label} [{mode}]: heap peak {peak} bytes, bound {bound}"
                    ));
                }
                if failures.len() >= 20 {
                    break 'fixtures;
                }
            }
            // Consistency: what opens under small limits opens alike under the defaults,
            // and the mapped file reads as the in-memory bytes do.
            let find = |m: &str| outcomes.iter().find(|(mode, _)| *mode == m).map(|(_, o)| o);
            if let (Some(s @ Outcome::Opened { .. }), Some(d)) =
                (find("small limits"), find("default limits"))
                && s != d
            {
                failures.push(format!("{label}: small limits gave {s:?}, defaults {d:?}"));
            }
            if let (Some(m), Some(d)) = (find("default limits, mmap"), find("default limits"))
                && m != d
            {
                failures.push(format!("{label}: mmap gave {m:?}, from_bytes {d:?}"));
            }
            if let Some(p) = file {
                let _ = std::fs::remove_file(p);
            }
        }
    }
    std::panic::set_hook(hook);

    let elapsed = test_start.elapsed();
    eprintln!(
        "mutation: {mutants} mutants of {} fixtures, {opens} opens in {elapsed:.1?}: \
         {opened} opened, refused {refused:?}; slowest open {slowest:?} ({slowest_case}); \
         largest heap peak {biggest} bytes",
        inputs.len()
    );
    assert!(
        failures.is_empty(),
        "{} failure(s) (replay with CTSTACK_MUTATION_SEED=<seed>):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
