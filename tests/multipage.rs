//! Stacks saved as multi-page TIFFs: the pages are the slices, whichever way
//! the files are read, and the resume rule knows each slice by file and page.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::pyramid::{pixels, temp_dir};
use ctstack::stack::SliceRef;
use ctstack::{CancelFlag, ErrorKind, PyramidBuilder, ReadMode, Slice};
use serde_json::Value;

const MODES: [ReadMode; 3] = [ReadMode::Auto, ReadMode::Mmap, ReadMode::Buffered];

/// `rel` of fixtures/ copied into a fresh temporary folder (outputs may go beside it).
fn copy_fixture(name: &str, rel: &str) -> PathBuf {
    let dir = temp_dir(name);
    let to = dir.join(Path::new(rel).file_name().unwrap());
    std::fs::copy(common::fixtures().join(rel), &to).unwrap();
    to
}

fn run(builder: PyramidBuilder) -> ctstack::Summary {
    builder
        .plan()
        .unwrap()
        .run(&mut |_, _| {}, &CancelFlag::new())
        .unwrap()
}

/// Every file of `out`'s levels equals the same file of `reference`.
fn assert_same_levels(out: &Path, reference: &Path, levels: usize, what: &str) {
    for k in 1..=levels {
        let mut names: Vec<_> = std::fs::read_dir(reference.join(k.to_string()))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        let ours = std::fs::read_dir(out.join(k.to_string())).unwrap().count();
        assert_eq!(ours, names.len(), "{what}: level {k} count");
        for name in names {
            let rel = Path::new(&k.to_string()).join(&name);
            assert_eq!(
                pixels(&out.join(&rel)),
                pixels(&reference.join(&rel)),
                "{what}: {} differs",
                rel.display()
            );
        }
    }
}

/// The 200-page ImageJ stack's pyramid equals the numpy reference under every
/// read mode, its slices are its pages in order, and each page is mapped.
#[test]
fn a_200_page_imagej_file_is_a_200_slice_stack() {
    let file = copy_fixture("mp-imagej", "types/imagej_u16_200pages.tif");
    let reference = common::fixtures().join("types_stacks/imagej_u16_200pages_reference");
    for mode in MODES {
        let builder = PyramidBuilder::from_file(&file).min_size(2).read_mode(mode);
        let plan = builder.plan().unwrap();
        let pages: Vec<SliceRef> = (0..200).map(|k| SliceRef::new(&file, k)).collect();
        assert_eq!(plan.inputs(), &pages[..]);
        assert_eq!(plan.levels()[0].count, 200);
        let summary = plan.run(&mut |_, _| {}, &CancelFlag::new()).unwrap();
        // Default output: STEM.thumbnail beside the file.
        let out = file.with_file_name("imagej_u16_200pages.thumbnail");
        assert_eq!(summary.output_dir, out);
        assert_same_levels(&out, &reference, 3, &format!("{mode:?}"));
        std::fs::remove_dir_all(&out).unwrap();
    }
    for k in [0, 1, 99, 199] {
        let page = Slice::open_page(&file, k, &Default::default()).unwrap();
        assert!(page.is_zero_copy(), "page {k}: {}", page.access());
    }
}

/// Slab tasks of a multi-page stack (each walks the file once) and the
/// driver's finish give the pyramid a whole run gives.
#[test]
fn slabs_of_a_multi_page_file_make_the_reference() {
    let file = copy_fixture("mp-slabs", "types/imagej_u16_200pages.tif");
    let out = file.with_file_name("slabs");
    let builder = PyramidBuilder::from_file(&file)
        .min_size(2)
        .output_dir(&out);
    let plan = builder.plan().unwrap();
    assert_eq!(plan.slab_alignment(), 8);
    for slab in [64..128, 0..64, 192..200, 128..192] {
        builder
            .run_slab(slab, &mut |_, _| {}, &CancelFlag::new())
            .unwrap();
    }
    plan.finish_slabs(&CancelFlag::new()).unwrap();
    let reference = common::fixtures().join("types_stacks/imagej_u16_200pages_reference");
    assert_same_levels(&out, &reference, 3, "slabs");
    std::fs::remove_dir_all(file.parent().unwrap()).unwrap();
}

/// A folder of multi-page files is the concatenation of their pages, in
/// natural file order, whichever way it is read; a rerun keeps everything and
/// replacing one file rebuilds exactly what depends on its pages.
#[test]
fn a_folder_of_multi_page_files_concatenates_their_pages() {
    let dir = temp_dir("mp-parts");
    for part in ["part_1.tif", "part_2.tif"] {
        std::fs::copy(
            common::fixtures().join("types_stacks/u16_parts").join(part),
            dir.join(part),
        )
        .unwrap();
    }
    let reference = common::fixtures().join("types_stacks/u16_parts_reference");
    for mode in MODES {
        let out = dir.join(format!("out-{mode:?}"));
        let builder = PyramidBuilder::from_dir(&dir)
            .unwrap()
            .min_size(4)
            .read_mode(mode)
            .output_dir(&out);
        let inputs = builder.plan().unwrap().inputs().to_vec();
        let want: Vec<SliceRef> = [("part_1.tif", 3), ("part_2.tif", 4)]
            .iter()
            .flat_map(|&(f, n)| {
                let path = dir.join(f);
                (0..n).map(move |k| SliceRef::new(&path, k))
            })
            .collect();
        assert_eq!(inputs, want);
        let first = run(builder.clone());
        assert_eq!(first.rebuilt, 4 + 2 + 1);
        assert_same_levels(&out, &reference, 3, &format!("{mode:?}"));
        let again = run(builder.clone());
        assert_eq!((again.rebuilt, again.kept), (0, first.rebuilt), "{mode:?}");
    }
    // The manifest names the page of each slice after the first of its file.
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("out-Auto").join(ctstack::MANIFEST_FILE)).unwrap(),
    )
    .unwrap();
    let named: Vec<(String, u64)> = manifest["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let page = i.get("page").map_or(0, |p| p.as_u64().unwrap());
            (i["name"].as_str().unwrap().to_string(), page)
        })
        .collect();
    let expect: Vec<(String, u64)> = [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2), (2, 3)]
        .iter()
        .map(|&(f, p)| (format!("part_{f}.tif"), p))
        .collect();
    assert_eq!(named, expect);
    assert!(
        manifest["inputs"][0].get("page").is_none(),
        "page 0 is not written"
    );
    // part_1 rewritten (same pixels, new time): its pages are slices 0-2, so
    // level-1 slices 0 (0+1) and 1 (2+3), level-2 slice 0 and level-3 slice 0
    // are rebuilt; level-1 slices 2 and 3 and level-2 slice 1 are kept.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let bytes = std::fs::read(dir.join("part_1.tif")).unwrap();
    std::fs::write(dir.join("part_1.tif"), bytes).unwrap();
    let builder = PyramidBuilder::from_dir(&dir)
        .unwrap()
        .min_size(4)
        .output_dir(dir.join("out-Auto"));
    let after = run(builder);
    assert_eq!((after.rebuilt, after.kept), (4, 3), "{after:?}");
    assert_same_levels(&dir.join("out-Auto"), &reference, 3, "after the rewrite");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A page that does not match the first is a mismatch naming the file and
/// the page; a page that cannot be read is an error naming its page.
#[test]
fn a_page_that_differs_is_refused_by_file_and_page() {
    let file = copy_fixture("mp-mixed", "types/tifffile_u16_4pages_mixed.tif");
    for mode in MODES {
        let err = PyramidBuilder::from_file(&file)
            .min_size(2)
            .read_mode(mode)
            .plan()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Mismatch, "{err}");
        let message = err.to_string();
        assert!(
            message.contains("tifffile_u16_4pages_mixed.tif page 3: 11x9"),
            "{message}"
        );
    }
    let volume = copy_fixture("mp-volume", "types/tifffile_u16_volume5.tif");
    let err = PyramidBuilder::from_file(&volume).plan().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    std::fs::remove_dir_all(file.parent().unwrap()).unwrap();
    std::fs::remove_dir_all(volume.parent().unwrap()).unwrap();
}

/// `ctstack pyramid FILE` builds beside the file; selection flags, which pick
/// files of a directory, are refused for a file (exit 2).
#[test]
fn the_command_line_takes_a_multi_page_file() {
    let file = copy_fixture("mp-cli", "types_stacks/f32_imagej.tif");
    let bin = env!("CARGO_BIN_EXE_ctstack");
    let done = Command::new(bin)
        .args(["pyramid", "--min-size", "8", "-q"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(done.status.success(), "{done:?}");
    let out = file.with_file_name("f32_imagej.thumbnail");
    let reference = common::fixtures().join("types_stacks/f32_reference");
    for k in 1..=2 {
        for entry in std::fs::read_dir(reference.join(k.to_string())).unwrap() {
            let rel = Path::new(&k.to_string()).join(entry.unwrap().file_name());
            let ours = std::fs::read(out.join(&rel)).unwrap();
            let want = Slice::open(reference.join(&rel)).unwrap();
            let ours = Slice::from_bytes("ours", &ours, &Default::default()).unwrap();
            let bits = |s: &Slice| -> Vec<u32> {
                s.contiguous::<f32>()
                    .unwrap()
                    .iter()
                    .map(|v| {
                        if v.is_nan() {
                            f32::NAN.to_bits()
                        } else {
                            v.to_bits()
                        }
                    })
                    .collect()
            };
            assert_eq!(bits(&ours), bits(&want), "{}", rel.display());
        }
    }
    let refused = Command::new(bin)
        .args(["pyramid", "--prefix", "slice_"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("is a file"), "{stderr}");
    std::fs::remove_dir_all(file.parent().unwrap()).unwrap();
}
