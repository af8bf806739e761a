//! Level 0 is the inputs as the cascade read them: each input byte is read
//! once, under every read mode.

use std::path::{Path, PathBuf};

use crate::source::probe::pixel_bytes;
use crate::{CancelFlag, PyramidBuilder, ReadMode, ZarrBuilder};

/// A fresh folder under the system's temporary folder.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ctstack-sink-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every file under `dir`, by path relative to it, with its bytes.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().to_path_buf();
                files.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

/// Seven 20x15 slices (an odd count, an odd height: the last input is paired
/// with itself, the last row of each is in no level-1 slice) written into
/// stores under each read mode, chunks 4 deep: every input's pixels are
/// brought in exactly once per run, and the stores are the same.
#[test]
fn each_input_byte_is_read_once_and_the_stores_agree() {
    let dir = temp_dir("once");
    let stack = dir.join("stack");
    std::fs::create_dir_all(&stack).unwrap();
    let (w, h) = (20u32, 15u32);
    let files: Vec<PathBuf> = (0..7u16)
        .map(|i| {
            let path = stack.join(format!("s{i:02}.tif"));
            let pixels: Vec<u16> = (0..w * h).map(|v| v as u16 * 3 + i * 101).collect();
            crate::write_slice(&path, w, h, &pixels).unwrap();
            path
        })
        .collect();
    let image = u64::from(w * h * 2);
    let mut stores: Vec<Vec<(PathBuf, Vec<u8>)>> = Vec::new();
    for mode in [ReadMode::Auto, ReadMode::Mmap, ReadMode::Buffered] {
        let before: Vec<u64> = files.iter().map(|f| pixel_bytes(f)).collect();
        let store = dir.join(format!("{}.ome.zarr", mode.policy_name()));
        let pyramid = PyramidBuilder::from_dir(&stack)
            .unwrap()
            .min_size(4)
            .read_mode(mode);
        let summary = ZarrBuilder::new(pyramid, &store)
            .chunks([4, 8, 8])
            .plan()
            .unwrap()
            .run(&mut |_, _| {}, &CancelFlag::new())
            .unwrap();
        assert_eq!(summary.input_bytes, 7 * image, "{mode:?}");
        for (file, before) in files.iter().zip(before) {
            let read = pixel_bytes(file) - before;
            assert_eq!(
                read,
                image,
                "{mode:?}: {} read {read} bytes",
                file.display()
            );
        }
        // The group's attributes name the store, and the record of the inputs
        // holds the chunk files' times; the arrays must be the same.
        stores.push(
            tree(&store)
                .into_iter()
                .filter(|(p, _)| {
                    p != Path::new("zarr.json") && p != Path::new("ctstack-inputs.json")
                })
                .collect(),
        );
    }
    assert!(stores[0].len() > 10, "{}", stores[0].len());
    for s in &stores[1..] {
        let differ: Vec<_> = s
            .iter()
            .zip(&stores[0])
            .filter(|(a, b)| a != b)
            .map(|(a, _)| a.0.display().to_string())
            .collect();
        assert!(
            s.len() == stores[0].len() && differ.is_empty(),
            "{differ:?}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
