//! Test data for the benchmarks, generated at start into a temporary directory
//! (never committed): CT-like 16-bit slices written by ctstack's own writer.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The standard CT slice of the performance targets: 2752 x 2752, 16-bit (15 MB).
pub const SIZE: u32 = 2752;

/// A directory under the system temp dir, emptied, removed again on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ctstack-bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A CT-like slice: a bright disc on a dark background with deterministic noise.
pub fn phantom(width: u32, height: u32, index: u32) -> Vec<u16> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(index);
    let (cx, cy, r) = (
        width as f64 / 2.0,
        height as f64 / 2.0,
        width.min(height) as f64 * 0.4,
    );
    let mut out = Vec::with_capacity((width * height) as usize);
    for y in 0..height {
        for x in 0..width {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let (dx, dy) = (x as f64 - cx, y as f64 - cy);
            let base = if dx * dx + dy * dy < r * r {
                30000
            } else {
                2500
            };
            out.push(base + (state % 700) as u16);
        }
    }
    out
}

/// Writes `count` phantom slices of `size` x `size` into `dir`.
pub fn write_stack(dir: &Path, count: u32, size: u32) {
    for i in 0..count {
        ctstack::write_slice(
            &dir.join(format!("slice_{i:04}.tif")),
            size,
            size,
            &phantom(size, size, i),
        )
        .unwrap();
    }
}
