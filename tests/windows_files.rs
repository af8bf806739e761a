//! Windows' file rules, met by ctstack: a file another program has open cannot
//! be renamed over or removed (virus scanners, the search indexer, sync clients
//! and image viewers open fresh files briefly, all the time). The "other
//! program" here is a handle opened the way such programs open files: sharing
//! reads only, so neither a rename over the file nor its removal is allowed.
//!
//! Windows only (the CI runs them under Wine): on Unix a rename or a removal
//! does not care who has the file open, so there is nothing to wait out.
#![cfg(windows)]

mod common;

use std::fs::File;
use std::os::windows::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::pyramid::temp_dir;
use ctstack::{CancelFlag, MANIFEST_FILE, PyramidBuilder, Summary, write_slice};

/// FILE_SHARE_READ (winnt.h): others may read, not write, rename or delete.
const SHARE_READ: u32 = 1;

/// Opens `path` as a thumbnail viewer does: reading, sharing reads only.
fn hold(path: &Path) -> File {
    std::fs::OpenOptions::new()
        .read(true)
        .share_mode(SHARE_READ)
        .open(path)
        .unwrap()
}

/// Whether `dir` holds one of ctstack's temporary files (a write in progress).
fn writing(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().ends_with(".ctstack-tmp"))
}

/// A slice written over a file another program holds for a moment replaces it
/// once the hold ends, instead of failing the run (on main: "cannot rename
/// temporary file ... into place: Access denied. (os error 5)").
#[test]
fn an_output_held_for_a_moment_is_replaced_once_it_is_let_go() {
    let dir = temp_dir("held-briefly");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("000000.tif");
    write_slice::<u16>(&path, 4, 4, &[1; 16]).unwrap();
    let viewer = hold(&path);
    std::thread::scope(|s| {
        s.spawn(|| {
            // Let go soon after the write has started (its temporary file exists):
            // well inside the retries' 2.5 s, after the first attempt has failed.
            let started = Instant::now();
            while !writing(&dir) && started.elapsed() < Duration::from_secs(30) {
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(Duration::from_millis(50));
            drop(viewer);
        });
        write_slice::<u16>(&path, 4, 4, &[2; 16]).unwrap_or_else(|e| panic!("{e}"));
    });
    let slice = ctstack::Slice::open(&path).unwrap();
    assert_eq!(slice.contiguous::<u16>().unwrap(), &[2; 16][..]);
    drop(slice);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// 16 x 16 slices `s_000.tif` ... in `dir/in`.
fn write_stack(dir: &Path, count: usize) -> PathBuf {
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    for i in 0..count {
        let pixels: Vec<u16> = (0..256).map(|p| (p * 7 + i * 1000) as u16).collect();
        write_slice(&input.join(format!("s_{i:03}.tif")), 16, 16, &pixels).unwrap();
    }
    input
}

fn run(input: &Path, out: &Path) -> Summary {
    PyramidBuilder::from_dir(input)
        .unwrap()
        .output_dir(out)
        .min_size(4)
        .plan()
        .unwrap()
        .run(&mut |_, _| {}, &CancelFlag::new())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// An old output that cannot be removed because another program keeps it open
/// stays listed in the manifest, and the next run removes it, instead of
/// disowning it forever ("1 file not written by ctstack for this pyramid, left
/// in place" on every later run, on main).
#[test]
fn an_old_output_held_open_is_removed_by_the_next_run() {
    let dir = temp_dir("held-stale");
    let input = write_stack(&dir, 8);
    let out = dir.join("out");
    // 8 slices of 16x16 to 4 px: level 1 has 4 slices (8x8), level 2 has 2 (4x4).
    let first = run(&input, &out);
    assert_eq!(first.rebuilt, 4 + 2);
    // 4 slices now: 1/000002, 1/000003 and 2/000001 are no longer outputs.
    for i in 4..8 {
        std::fs::remove_file(input.join(format!("s_{i:03}.tif"))).unwrap();
    }
    let stale = out.join("1").join("000003.tif");
    let viewer = hold(&stale);
    let second = run(&input, &out);
    assert_eq!(second.removed, 2, "{:?}", second.warnings);
    assert!(stale.exists());
    let warning = second
        .warnings
        .iter()
        .find(|w| w.contains("000003.tif"))
        .unwrap_or_else(|| panic!("no warning names the held file: {:?}", second.warnings));
    assert!(
        warning.contains("the next run tries again")
            && warning.contains("another program has the file open"),
        "{warning}"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join(MANIFEST_FILE)).unwrap()).unwrap();
    let leftovers = manifest["leftovers"]
        .as_array()
        .expect("no leftovers listed");
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    assert_eq!(
        (&leftovers[0]["k"], &leftovers[0]["j"]),
        (&1.into(), &3.into())
    );

    drop(viewer);
    let third = run(&input, &out);
    assert_eq!(
        (third.removed, third.rebuilt),
        (1, 0),
        "{:?}",
        third.warnings
    );
    assert!(third.warnings.is_empty(), "{:?}", third.warnings);
    assert!(!stale.exists());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join(MANIFEST_FILE)).unwrap()).unwrap();
    assert!(manifest.get("leftovers").is_none(), "{manifest}");
    std::fs::remove_dir_all(&dir).unwrap();
}
