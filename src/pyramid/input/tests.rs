//! Every path to a TIFF page's pixels gives the same samples: a [`Slice`]
//! under each read mode, the pyramid's streamed input (bands of rows), and the
//! reading layer's regions (row bands, column windows, boxes), read from the
//! file in memory and by positional reads.

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::*;
use crate::region::{Page, Region};
use crate::sample::with_sample_type;
use crate::source::Bytes;
use crate::tiff::{PageReader, page_layout};
use crate::{ReadMode, Slice};

const MODES: [ReadMode; 3] = [ReadMode::Auto, ReadMode::Mmap, ReadMode::Buffered];

fn options(read_mode: ReadMode) -> OpenOptions {
    OpenOptions {
        read_mode,
        ..OpenOptions::default()
    }
}

/// Every `.tif` of the fixture folders that hold images (not the malformed ones).
fn tiff_fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut dirs = vec![
        root.join("slices"),
        root.join("types"),
        root.join("types_stacks"),
        root.join("stack"),
        root.join("stack_u8"),
    ];
    for entry in std::fs::read_dir(root.join("types_stacks")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            dirs.push(path);
        }
    }
    let mut files = Vec::new();
    for dir in dirs {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "tif") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The regions read of a `w` x `h` page: the whole page, single pixels at
/// opposite corners, a band of rows, a window of columns, boxes touching each
/// edge, an empty one, and a few pseudo-random boxes.
fn regions(w: u32, h: u32) -> Vec<Region> {
    let r = |rows: Range<u32>, cols: Range<u32>| Region { rows, cols };
    let mut v = vec![
        Region::whole(w, h),
        r(0..1, 0..1),
        r(h - 1..h, w - 1..w),
        r(h / 3..(h.div_ceil(3) * 2).min(h), 0..w),
        r(0..h, w / 3..(w / 2 + 1).min(w)),
        r(0..h.div_ceil(2), w / 2..w),
        r(h / 2..h, 0..w.div_ceil(2)),
        r(0..h, w - 1..w),
        r(h / 2..h / 2, 0..w),
    ];
    let mut seed = u64::from(w) * 31 + u64::from(h);
    let mut next = |n: u32| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) % u64::from(n)) as u32
    };
    for _ in 0..6 {
        let (y0, x0) = (next(h), next(w));
        let (y1, x1) = (y0 + 1 + next(h - y0), x0 + 1 + next(w - x0));
        v.push(r(y0..y1, x0..x1));
    }
    v
}

/// The samples of `region` cut out of a whole page `want` of width `w`.
fn cut<T: Copy>(want: &[T], w: u32, region: &Region) -> Vec<T> {
    let mut out = Vec::with_capacity(region.samples());
    for y in region.rows.clone() {
        let row = y as usize * w as usize;
        out.extend_from_slice(
            &want[row + region.cols.start as usize..row + region.cols.end as usize],
        );
    }
    out
}

/// Bit patterns, so that NaNs compare equal to themselves.
fn bits<T: Sample>(v: &[T]) -> Vec<u8> {
    bytemuck::cast_slice(v).to_vec()
}

/// Checks every path against `want`, page `page` of `path` as a mapped slice.
fn check_page<T: Sample>(path: &Path, page: usize, want: &[T]) -> usize {
    let what = format!("{} page {page}", path.display());
    let mut checked = 0;
    for mode in MODES {
        let slice = Slice::open_page(path, page, &options(mode)).unwrap();
        assert_eq!(
            bits(slice.contiguous::<T>().unwrap()),
            bits(want),
            "{what}: slice under {mode:?}"
        );
        checked += 1;
    }
    // The layout from memory and from positional reads is the same.
    let whole = std::fs::read(path).unwrap();
    let limits = Limits::default();
    let layout = PageReader::in_memory(path, &whole, &limits)
        .unwrap()
        .page(page)
        .unwrap();
    let file = File::open(path).unwrap();
    let (from_file, stamp) = page_layout(path, page, &file, &limits).unwrap().unwrap();
    assert_eq!(format!("{layout:?}"), format!("{from_file:?}"), "{what}");
    let (w, h) = (layout.width, layout.height);
    // The streamed input (or the slice it falls back to), band by band.
    for mode in [ReadMode::Auto, ReadMode::Buffered] {
        let input = Input::open(&SliceRef::new(path, page), &options(mode), None).unwrap();
        let mut buffer = vec![T::default(); w as usize * h as usize];
        let mut bytes = Vec::new();
        for (y0, rows) in [
            (0, h),
            (0, 1),
            (h / 2, h - h / 2),
            (h - 1, 1),
            (h / 3, h / 3 + 1),
        ] {
            let band = input
                .band::<T>(y0 as usize, rows as usize, &mut buffer, &mut bytes)
                .unwrap();
            for i in 0..rows as usize {
                let y = y0 as usize + i;
                let expected = &want[y * w as usize..(y + 1) * w as usize];
                assert_eq!(
                    bits(band.row(i)),
                    bits(expected),
                    "{what}: band row {y} under {mode:?}"
                );
            }
            checked += 1;
        }
    }
    // Regions, from the file in memory and by positional reads, and through
    // the entry point of callers that read parts of slices, in every mode.
    for region in regions(w, h) {
        let expected = cut(want, w, &region);
        for mode in MODES {
            let mut got = vec![T::default(); region.samples()];
            crate::region::read_slice_region(
                &SliceRef::new(path, page),
                None,
                &options(mode),
                &region,
                &mut got,
            )
            .unwrap();
            assert_eq!(
                bits(&got),
                bits(&expected),
                "{what}: slice region {region:?} under {mode:?}"
            );
            checked += 1;
        }
        for bytes in [
            Bytes::Memory(&whole),
            Bytes::File {
                file: &file,
                len: stamp.len,
            },
        ] {
            let page = Page {
                path,
                bytes,
                index: page,
                layout: &layout,
            };
            let mut got = vec![T::default(); region.samples()];
            page.read(&region, &mut got, &limits).unwrap();
            assert_eq!(bits(&got), bits(&expected), "{what}: region {region:?}");
            checked += 1;
        }
    }
    checked
}

#[test]
fn every_fixture_page_reads_alike_through_every_path() {
    let (mut pages, mut checks) = (0, 0);
    for path in tiff_fixtures() {
        let Ok(count) = Slice::page_count(&path, &OpenOptions::default()) else {
            continue;
        };
        let mut wanted = vec![0, 1, count / 2, count.saturating_sub(1)];
        wanted.retain(|&p| p < count);
        wanted.dedup();
        for page in wanted {
            let Ok(reference) = Slice::open_page(&path, page, &options(ReadMode::Mmap)) else {
                // Refused alike in every mode.
                for mode in MODES {
                    assert!(Slice::open_page(&path, page, &options(mode)).is_err());
                }
                continue;
            };
            checks += with_sample_type!(reference.sample_type(), T => {
                let want = reference.contiguous::<T>().unwrap().to_vec();
                check_page::<T>(&path, page, &want)
            });
            pages += 1;
        }
    }
    assert!(pages > 120, "only {pages} pages checked");
    eprintln!("{pages} pages, {checks} reads compared");
}

/// A region outside the page, a destination of the wrong size and the wrong
/// sample type are errors, not panics.
#[test]
fn bad_requests_are_typed_errors() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/slices/tiffcp_u16_tiled16.tif");
    let whole = std::fs::read(&path).unwrap();
    let limits = Limits::default();
    let layout = PageReader::in_memory(&path, &whole, &limits)
        .unwrap()
        .page(0)
        .unwrap();
    let page = Page {
        path: &path,
        bytes: Bytes::Memory(&whole),
        index: 0,
        layout: &layout,
    };
    let (w, h) = (layout.width, layout.height);
    let outside = Region {
        rows: 0..h + 1,
        cols: 0..w,
    };
    let e = page
        .read(&outside, &mut vec![0u16; ((h + 1) * w) as usize], &limits)
        .unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Usage, "{e}");
    assert!(
        e.to_string().contains(&format!("the image is {w}x{h}")),
        "{e}"
    );
    let reversed = Region {
        #[allow(clippy::reversed_empty_ranges)]
        rows: 3..2,
        cols: 0..w,
    };
    assert!(
        page.read(&reversed, &mut Vec::<u16>::new(), &limits)
            .is_err()
    );
    let e = page
        .read(&Region::whole(w, h), &mut [0u16; 3], &limits)
        .unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Mismatch, "{e}");
    let e = page
        .read(
            &Region::whole(w, h),
            &mut vec![0u8; (w * h) as usize],
            &limits,
        )
        .unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Mismatch, "{e}");
}

/// Slices of other formats (BMP, PNG, JPEG) are cut out of the opened slice.
#[test]
fn regions_of_other_formats_are_cut_from_the_slice() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut checked = 0;
    for dir in ["stack_bmp", "stack_png", "stack_jpeg"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap().take(2) {
            let path = entry.unwrap().path();
            let slice = Slice::open(&path).unwrap();
            let (w, h) = (slice.width(), slice.height());
            with_sample_type!(slice.sample_type(), T => {
                let want = slice.contiguous::<T>().unwrap();
                for region in regions(w, h) {
                    let mut got = vec![T::default(); region.samples()];
                    crate::region::read_slice_region(
                        &SliceRef::new(&path, 0),
                        None,
                        &OpenOptions::default(),
                        &region,
                        &mut got,
                    )
                    .unwrap();
                    assert_eq!(bits(&got), bits(&cut(want, w, &region)), "{path:?} {region:?}");
                    checked += 1;
                }
                let outside = Region { rows: 0..h, cols: 0..w + 1 };
                let e = crate::region::read_slice_region(
                    &SliceRef::new(&path, 0),
                    None,
                    &OpenOptions::default(),
                    &outside,
                    &mut vec![T::default(); outside.samples()],
                )
                .unwrap_err();
                assert_eq!(e.kind(), crate::ErrorKind::Usage, "{e}");
            });
        }
    }
    assert!(checked >= 6 * 15, "{checked}");
}
