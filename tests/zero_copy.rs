//! Proof of the zero-copy claim: a plain uncompressed little-endian slice written
//! by tifffile, and an NRecon-like 8-bit gray-palette BMP (bottom-up, padded
//! rows), are served from the mapping, and opening them allocates nothing
//! proportional to the image.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use ctstack::{AccessPath, OpenOptions, ReadMode, Slice};

/// Counts the bytes allocated on this process: the tests of this file take
/// [`one_at_a_time`] first, so no other test's allocations are counted.
struct Counting;
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

/// Serialises the tests of this file (the counter is process-wide, and cargo
/// runs tests on parallel threads): held for the whole test.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

// SAFETY: forwards to the system allocator unchanged, only counting sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours, passed through.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours, passed through.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Writes a tifffile-like 16-bit slice large enough that a pixel copy would stand out.
fn big_slice(dir: &std::path::Path) -> std::path::PathBuf {
    // Take a real tifffile fixture's header and widen the image: simpler to write a
    // minimal classic TIFF by hand, laid out as tifffile lays it out.
    let (w, h) = (1024u32, 768u32);
    let data_offset = 256u32;
    let mut bytes = vec![0u8; data_offset as usize];
    bytes[..8].copy_from_slice(&[b'I', b'I', 42, 0, 8, 0, 0, 0]);
    let entries: [(u16, u16, u32, u32); 8] = [
        (256, 4, 1, w),
        (257, 4, 1, h),
        (258, 3, 1, 16),
        (259, 3, 1, 1),
        (262, 3, 1, 1),
        (273, 4, 1, data_offset),
        (278, 4, 1, h),
        (279, 4, 1, w * h * 2),
    ];
    bytes[8..10].copy_from_slice(&(entries.len() as u16).to_le_bytes());
    for (i, (tag, ty, count, value)) in entries.iter().enumerate() {
        let at = 10 + 12 * i;
        bytes[at..at + 2].copy_from_slice(&tag.to_le_bytes());
        bytes[at + 2..at + 4].copy_from_slice(&ty.to_le_bytes());
        bytes[at + 4..at + 8].copy_from_slice(&count.to_le_bytes());
        bytes[at + 8..at + 12].copy_from_slice(&value.to_le_bytes());
    }
    for i in 0..w * h {
        bytes.extend_from_slice(&((i * 7) as u16).to_le_bytes());
    }
    let path = dir.join("big.tif");
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn mapped_slice_views_the_file_without_allocating_pixels() {
    let _serial = one_at_a_time();
    let dir = std::env::temp_dir().join(format!("ctstack-zero-copy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = big_slice(&dir);

    let before = ALLOCATED.load(Ordering::Relaxed);
    let slice = Slice::open(&path).unwrap();
    let rows = slice.rows::<u16>().unwrap();
    let all = rows.as_contiguous().unwrap();
    let allocated = ALLOCATED.load(Ordering::Relaxed) - before;

    assert_eq!(slice.access().path, AccessPath::Mapped);
    assert!(slice.is_zero_copy());
    let range = slice.source_address_range().unwrap();
    let (start, end) = (all.as_ptr() as usize, all.as_ptr() as usize + 2 * all.len());
    assert!(
        range.start <= start && end <= range.end,
        "pixels lie outside the mapping"
    );
    assert_eq!(
        start - range.start,
        256,
        "pixels start at the strip offset in the mapping"
    );
    assert!(
        allocated < slice.image_bytes() / 100,
        "opening allocated {allocated} bytes for a {}-byte image",
        slice.image_bytes()
    );
    assert_eq!(all[1000], (1000 * 7) as u16);
    drop(slice);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tifffile_plain_slices_open_mapped() {
    let _serial = one_at_a_time();
    for name in [
        "tifffile_u16_le_1strip.tif",
        "tifffile_u16_le_strips8.tif",
        "tifffile_u8.tif",
    ] {
        // Always map: `ReadMode::Auto` would read these small files instead.
        let mmap = OpenOptions {
            read_mode: ReadMode::Mmap,
            ..OpenOptions::default()
        };
        let slice = Slice::open_with(common::fixtures().join("slices").join(name), &mmap).unwrap();
        assert_eq!(
            slice.access().path,
            AccessPath::Mapped,
            "{name}: {}",
            slice.access()
        );
        let range = slice.source_address_range().unwrap();
        let at = match slice.bits() {
            8 => slice
                .rows::<u8>()
                .unwrap()
                .as_contiguous()
                .unwrap()
                .as_ptr() as usize,
            _ => slice
                .rows::<u16>()
                .unwrap()
                .as_contiguous()
                .unwrap()
                .as_ptr() as usize,
        };
        assert!(range.contains(&at), "{name}: pixels outside the mapping");
    }
}

/// An NRecon-like 8-bit BMP, large enough that a pixel copy would stand out:
/// BITMAPINFOHEADER, a 256-entry gray palette, rows stored bottom-up and padded
/// from 1001 to 1004 bytes. Returns the path and the pixel data's offset.
fn big_bmp(dir: &std::path::Path) -> (std::path::PathBuf, usize) {
    let (w, h, stride) = (1001usize, 768usize, 1004usize);
    let offset = 14 + 40 + 1024;
    let mut bytes = b"BM".to_vec();
    bytes.extend_from_slice(&((offset + stride * h) as u32).to_le_bytes());
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend_from_slice(&(offset as u32).to_le_bytes());
    for field in [40u32, w as u32, h as u32] {
        bytes.extend_from_slice(&field.to_le_bytes());
    }
    bytes.extend_from_slice(&[1, 0, 8, 0]);
    for field in [0u32, (stride * h) as u32, 0, 0, 256, 256] {
        bytes.extend_from_slice(&field.to_le_bytes());
    }
    for i in 0..=255u8 {
        bytes.extend_from_slice(&[i, i, i, 0]);
    }
    for stored in 0..h {
        let y = h - 1 - stored;
        bytes.extend((0..w).map(|x| (x * 3 + y * 7) as u8));
        bytes.extend_from_slice(&[0xEE; 3]);
    }
    let path = dir.join("nrecon_rec00000000.bmp");
    std::fs::write(&path, bytes).unwrap();
    (path, offset)
}

#[test]
fn gray_palette_bmp_rows_are_views_of_the_mapping() {
    let _serial = one_at_a_time();
    let dir = std::env::temp_dir().join(format!("ctstack-zero-copy-bmp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (path, offset) = big_bmp(&dir);
    let (w, h, stride) = (1001usize, 768usize, 1004usize);

    let before = ALLOCATED.load(Ordering::Relaxed);
    let slice = Slice::open(&path).unwrap();
    let rows = slice.rows::<u8>().unwrap();
    let (top, bottom) = (
        rows.row(0).as_ptr() as usize,
        rows.row(h - 1).as_ptr() as usize,
    );
    let allocated = ALLOCATED.load(Ordering::Relaxed) - before;

    assert_eq!(
        slice.access().path,
        AccessPath::Mapped,
        "{}",
        slice.access()
    );
    assert!(slice.is_zero_copy());
    let range = slice.source_address_range().unwrap();
    // The top row is the last one stored, the bottom row the first.
    assert_eq!(top - range.start, offset + (h - 1) * stride);
    assert_eq!(bottom - range.start, offset);
    for y in [0, 1, h / 2, h - 1] {
        let row = rows.row(y);
        let at = row.as_ptr() as usize;
        assert!(range.start <= at && at + row.len() <= range.end);
        assert_eq!(row.len(), w, "padding is not served");
        assert!(
            row.iter()
                .enumerate()
                .all(|(x, &v)| v == (x * 3 + y * 7) as u8)
        );
    }
    assert!(
        allocated < slice.image_bytes() / 100,
        "opening allocated {allocated} bytes for a {}-byte image",
        slice.image_bytes()
    );
    drop(slice);
    std::fs::remove_dir_all(&dir).unwrap();
}
