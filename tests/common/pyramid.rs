//! Pyramid test helpers: a naive reference pyramid, and reading an output folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ctstack::{Slice, level_shapes};

/// A fresh, empty directory under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    // The pid alone is not unique (pid namespaces, two Wine prefixes sharing a
    // temporary folder, or one test asking twice): a count and the time too.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!(
        "ctstack-test-{name}-{}-{call}-{nanos}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// (width, height, samples) of the slice at `path`, samples widened to u32.
pub fn pixels(path: &Path) -> (u32, u32, Vec<u32>) {
    let s = Slice::open(path).unwrap_or_else(|e| panic!("{e}"));
    let v = match s.bits() {
        8 => s
            .contiguous::<u8>()
            .unwrap()
            .iter()
            .map(|&v| u32::from(v))
            .collect(),
        _ => s
            .contiguous::<u16>()
            .unwrap()
            .iter()
            .map(|&v| u32::from(v))
            .collect(),
    };
    (s.width(), s.height(), v)
}

/// Every `<k>/<name>` under `dir`, relative, sorted.
pub fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for level in std::fs::read_dir(dir).unwrap().flatten() {
        if !level.path().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(level.path()).unwrap().flatten() {
            out.push(format!(
                "{}/{}",
                level.file_name().to_string_lossy(),
                f.file_name().to_string_lossy()
            ));
        }
    }
    out.sort();
    out
}

/// The formula applied level by level over whole volumes, as plainly as possible.
pub fn reference_volume(vol: &[Vec<u32>], w: usize, h: usize) -> (Vec<Vec<u32>>, usize, usize) {
    let (ow, oh) = (w / 2, h / 2);
    let mut out = Vec::new();
    for j in 0..vol.len().div_ceil(2) {
        let a = &vol[2 * j];
        let b = vol.get(2 * j + 1).unwrap_or(a);
        let mut img = vec![0u32; ow * oh];
        for y in 0..oh {
            for x in 0..ow {
                let mut s = 0;
                for img_in in [a, b] {
                    s += img_in[2 * y * w + 2 * x]
                        + img_in[2 * y * w + 2 * x + 1]
                        + img_in[(2 * y + 1) * w + 2 * x]
                        + img_in[(2 * y + 1) * w + 2 * x + 1];
                }
                img[y * ow + x] = (s + 4) >> 3;
            }
        }
        out.push(img);
    }
    (out, ow, oh)
}

/// Every output of the pyramid of `vol` (`w` x `h` slices) with `min_size`, by
/// relative path `<k>/<j:06>.tif`: (width, height, samples).
pub fn reference_pyramid(
    vol: &[Vec<u32>],
    w: u32,
    h: u32,
    min_size: u32,
) -> BTreeMap<String, (u32, u32, Vec<u32>)> {
    let shapes = level_shapes(w, h, vol.len(), min_size);
    let mut files = BTreeMap::new();
    let (mut level, mut cw, mut ch) = (vol.to_vec(), w as usize, h as usize);
    for k in 1..shapes.len() {
        let (next, nw, nh) = reference_volume(&level, cw, ch);
        for (j, img) in next.iter().enumerate() {
            files.insert(
                format!("{k}/{j:06}.tif"),
                (nw as u32, nh as u32, img.clone()),
            );
        }
        (level, cw, ch) = (next, nw, nh);
    }
    files
}
