//! One page index per plan: each page is found from it, not by walking the
//! chain again, by every reader of a plan's slices (the pyramid under each
//! read mode, a crop, the Zarr writer), and only while the file is unchanged.

use super::*;
use crate::tiff::probe::ifd_reads;
use crate::{CancelFlag, Crop, PyramidBuilder, ReadMode};

const MODES: [ReadMode; 3] = [ReadMode::Auto, ReadMode::Mmap, ReadMode::Buffered];

/// A little-endian classic TIFF of `pages` pages of `width` x `height` `u16`,
/// one IFD each after its pixels, `padding` zero bytes after the header;
/// sample `(p, y, x)` is [`test_sample`]`(p, y, x, width)`.
fn multi_page_tiff(width: u32, height: u32, pages: u32, padding: u32) -> Vec<u8> {
    let pixels = width * height * 2;
    let entries: u32 = 9;
    let ifd_len = 2 + entries * 12 + 4;
    let first = 8 + padding;
    let page_at = |p: u32| first + p * (pixels + ifd_len);
    let mut f = b"II*\0".to_vec();
    f.extend_from_slice(&(page_at(0) + pixels).to_le_bytes());
    f.resize(first as usize, 0);
    for p in 0..pages {
        for y in 0..height {
            for x in 0..width {
                f.extend_from_slice(&test_sample(p, y, x, width).to_le_bytes());
            }
        }
        let next = if p + 1 < pages {
            page_at(p + 1) + pixels
        } else {
            0
        };
        let tags: [(u16, u16, u32); 9] = [
            (256, 4, width),
            (257, 4, height),
            (258, 3, 16),
            (259, 3, 1),
            (262, 3, 1),
            (273, 4, page_at(p)),
            (277, 3, 1),
            (278, 4, height),
            (279, 4, pixels),
        ];
        f.extend_from_slice(&(entries as u16).to_le_bytes());
        for (tag, ty, value) in tags {
            f.extend_from_slice(&tag.to_le_bytes());
            f.extend_from_slice(&ty.to_le_bytes());
            f.extend_from_slice(&1u32.to_le_bytes());
            f.extend_from_slice(&value.to_le_bytes());
        }
        f.extend_from_slice(&next.to_le_bytes());
    }
    f
}

/// Sample `(y, x)` of page `p` of a [`multi_page_tiff`] `width` samples wide.
fn test_sample(p: u32, y: u32, x: u32, width: u32) -> u16 {
    (p.wrapping_mul(7919) ^ (y * width + x)) as u16
}

/// A fresh folder under the system's temporary folder.
fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ctstack-index-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The index of every page of `path`, as a plan makes it.
fn index_of(path: &Path, limits: &Limits) -> Vec<IndexedPage> {
    let file = File::open(path).unwrap();
    let mut reader = PageReader::open_file(path, &file, limits).unwrap().unwrap();
    let stamp = reader.stamp().unwrap();
    let mut index = Vec::new();
    reader
        .walk(false, |page, layout, at| {
            index.push(IndexedPage::new(layout, at, page, stamp));
            Ok(())
        })
        .unwrap();
    index
}

/// Every page is found from the index without reading an IFD (positional
/// reads and a file in memory alike), and agrees with a walk to it; once
/// the file is rewritten, the index is not used and the new file's pages
/// are found by walking.
#[test]
fn pages_are_found_from_the_index_only_while_the_file_is_unchanged() {
    let dir = temp_dir("unchanged");
    let path = dir.join("stack.tif");
    let pages = 40;
    std::fs::write(&path, multi_page_tiff(12, 9, pages, 0)).unwrap();
    let limits = Limits::default();
    let index = index_of(&path, &limits);
    assert_eq!(index.len(), pages as usize);
    let file = File::open(&path).unwrap();
    let before = ifd_reads(&path);
    for (page, known) in index.iter().enumerate() {
        let (layout, stamp) = locate(&path, page, &file, Some(known), &limits)
            .unwrap()
            .unwrap();
        let whole = std::fs::read(&path).unwrap();
        let in_memory =
            locate_in_memory(&path, page, (&whole, stamp), Some(known), &limits).unwrap();
        let walked = page_layout(&path, page, &file, &limits).unwrap().unwrap().0;
        assert_eq!(format!("{layout:?}"), format!("{walked:?}"), "page {page}");
        assert_eq!(
            format!("{in_memory:?}"),
            format!("{walked:?}"),
            "page {page}"
        );
    }
    // The walks to each page above read 1 + 2 + ... + 40 IFDs; the index none.
    let walks: u64 = (1..=u64::from(pages)).sum();
    assert_eq!(ifd_reads(&path) - before, walks);

    // Rewritten: every page moved by 6 bytes, the file is longer.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&path, multi_page_tiff(12, 9, pages, 6)).unwrap();
    drop(file);
    let file = File::open(&path).unwrap();
    let (layout, stamp) = locate(&path, 7, &file, Some(&index[7]), &limits)
        .unwrap()
        .unwrap();
    assert_ne!(stamp, index[7].stamp);
    assert_eq!(
        layout.offsets[0],
        index[7].layout.as_ref().unwrap().offsets[0] + 6
    );
    let whole = std::fs::read(&path).unwrap();
    let in_memory = locate_in_memory(&path, 7, (&whole, stamp), Some(&index[7]), &limits);
    assert_eq!(in_memory.unwrap().offsets[0], layout.offsets[0]);
    // An entry of another page is never taken for this one.
    let index = index_of(&path, &limits);
    let (layout, _) = locate(&path, 3, &file, Some(&index[2]), &limits)
        .unwrap()
        .unwrap();
    assert_eq!(
        format!("{layout:?}"),
        format!("{:?}", index[3].layout.as_ref().unwrap())
    );
    // Windows refuses to remove a folder while a file in it is open (os error 145).
    drop(file);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A page whose layout the index does not keep (more chunks than
/// [`KEPT_MAX_CHUNKS`]) is parsed again from its IFD alone, not found by
/// walking the chain.
#[test]
fn a_page_whose_layout_is_not_kept_is_parsed_from_its_ifd_alone() {
    let dir = temp_dir("not-kept");
    let path = dir.join("stack.tif");
    let (w, h) = (4u32, 100u32);
    std::fs::write(&path, multi_page_tiff(w, h, 30, 0)).unwrap();
    let limits = Limits::default();
    let mut index = index_of(&path, &limits);
    let kept = index[25].layout.take().unwrap();
    let file = File::open(&path).unwrap();
    let before = ifd_reads(&path);
    let (layout, _) = locate(&path, 25, &file, Some(&index[25]), &limits)
        .unwrap()
        .unwrap();
    assert_eq!(ifd_reads(&path) - before, 1, "page 25's IFD alone");
    assert_eq!(format!("{layout:?}"), format!("{kept:?}"));
    // Windows refuses to remove a folder while a file in it is open (os error 145).
    drop(file);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Pages of the stacks the jobs below read: enough that a walk per page
/// (1 + 2 + ... + 300 = 45,150 IFD reads) stands far from a walk per plan.
const PAGES: u32 = 300;
const W: u32 = 16;
const H: u32 = 12;

/// A [`PAGES`]-page stack of `W` x `H` pages in a fresh folder: (folder, file).
fn stack(name: &str, padding: u32) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = temp_dir(name);
    let path = dir.join("stack.tif");
    std::fs::write(&path, multi_page_tiff(W, H, PAGES, padding)).unwrap();
    (dir, path)
}

/// At most this many IFD reads for a job over the stack: the plan's walk (one
/// per page) and a few header reads of page 0, not a walk per page.
const ONCE_PER_PLAN: u64 = PAGES as u64 + 10;

/// The box columns 3..11, rows 2..9 of every page, by a crop planned now,
/// run after `meanwhile`.
fn crop_box(path: &Path, mode: ReadMode, meanwhile: impl FnOnce()) -> Vec<u16> {
    let plan = Crop::from_file(path)
        .region(3..11, 2..9)
        .read_mode(mode)
        .plan()
        .unwrap();
    meanwhile();
    let mut volume = vec![0u16; plan.samples()];
    plan.crop_to_array(&mut volume, &mut |_, _| {}, &CancelFlag::new())
        .unwrap();
    volume
}

/// The box [`crop_box`] cuts, from [`test_sample`].
fn expected_box() -> Vec<u16> {
    let mut want = Vec::new();
    for p in 0..PAGES {
        for y in 2..9 {
            want.extend((3..11).map(|x| test_sample(p, y, x, W)));
        }
    }
    want
}

#[test]
fn a_crop_of_a_multi_page_file_walks_its_chain_once() {
    let (dir, path) = stack("crop", 0);
    for mode in MODES {
        let before = ifd_reads(&path);
        let volume = crop_box(&path, mode, || {});
        let reads = ifd_reads(&path) - before;
        assert!(reads <= ONCE_PER_PLAN, "{mode:?}: {reads} IFD reads");
        assert!(volume == expected_box(), "{mode:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A file rewritten between a crop's plan and its reads (every page moved by
/// 6 bytes) is read as it is now: the index of the old one is not used.
#[test]
fn a_crop_reads_a_file_changed_since_its_plan_as_it_is_now() {
    let (dir, path) = stack("crop-changed", 0);
    for mode in MODES {
        std::fs::write(&path, multi_page_tiff(W, H, PAGES, 0)).unwrap();
        let volume = crop_box(&path, mode, || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            std::fs::write(&path, multi_page_tiff(W, H, PAGES, 6)).unwrap();
        });
        assert!(volume == expected_box(), "{mode:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The files of `dir`'s levels, by relative path, and their bytes.
fn levels(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for k in 1.. {
        let level = dir.join(k.to_string());
        let Ok(entries) = std::fs::read_dir(&level) else {
            break;
        };
        let mut names: Vec<_> = entries.map(|e| e.unwrap().file_name()).collect();
        names.sort();
        for name in names {
            let rel = Path::new(&k.to_string()).join(name);
            files.push((rel.clone(), std::fs::read(dir.join(rel)).unwrap()));
        }
    }
    files
}

#[test]
fn a_pyramid_of_a_multi_page_file_walks_its_chain_once_in_every_read_mode() {
    let (dir, path) = stack("pyramid", 0);
    let mut built = Vec::new();
    for mode in MODES {
        let out = dir.join(format!("out-{}", mode.policy_name()));
        let before = ifd_reads(&path);
        PyramidBuilder::from_file(&path)
            .output_dir(&out)
            .min_size(4)
            .read_mode(mode)
            .plan()
            .unwrap()
            .run(&mut |_, _| {}, &CancelFlag::new())
            .unwrap();
        let reads = ifd_reads(&path) - before;
        assert!(reads <= ONCE_PER_PLAN, "{mode:?}: {reads} IFD reads");
        built.push(levels(&out));
    }
    assert!(!built[0].is_empty());
    assert!(built.iter().all(|b| *b == built[0]));
    // Rewritten between plan and run: the run reads the file as it is now
    // (the same samples, every page 6 bytes further on).
    for mode in MODES {
        std::fs::write(&path, multi_page_tiff(W, H, PAGES, 0)).unwrap();
        let out = dir.join(format!("changed-{}", mode.policy_name()));
        let plan = PyramidBuilder::from_file(&path)
            .output_dir(&out)
            .min_size(4)
            .read_mode(mode)
            .plan()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, multi_page_tiff(W, H, PAGES, 6)).unwrap();
        plan.run(&mut |_, _| {}, &CancelFlag::new()).unwrap();
        assert!(levels(&out) == built[0], "{mode:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(feature = "ome-zarr")]
#[test]
fn the_zarr_writer_of_a_multi_page_file_walks_its_chain_once_in_every_read_mode() {
    let (dir, path) = stack("zarr", 0);
    for mode in MODES {
        let store = dir.join(format!("{}.ome.zarr", mode.policy_name()));
        let before = ifd_reads(&path);
        let pyramid = PyramidBuilder::from_file(&path).min_size(4).read_mode(mode);
        crate::ZarrBuilder::new(pyramid, &store)
            .plan()
            .unwrap()
            .run(&mut |_, _| {}, &CancelFlag::new())
            .unwrap();
        let reads = ifd_reads(&path) - before;
        assert!(reads <= ONCE_PER_PLAN, "{mode:?}: {reads} IFD reads");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
