//! The OME-Zarr writer's chunk files, byte for byte, against digests of what
//! the writer of 0.1.0's main (one band of `D` whole slices per level, before
//! the row-band writer) wrote for the same stacks and options: every sample
//! type, odd sizes and slice counts, odd chunk shapes, shards, both Zarr
//! versions, with and without compression (and one Blosc layout, see
//! `LAYOUTS`). `tests/zarr_digests.txt` holds them; `CTSTACK_WRITE_DIGESTS=1`
//! rewrites it (only ever from a writer known to be right: the file is the
//! specification).
#![cfg(feature = "ome-zarr")]

mod common;

use std::path::{Path, PathBuf};

use common::pyramid::temp_dir;
use ctstack::{
    BloscCompressor, BloscShuffle, ChunkCompression, Ngff, PyramidBuilder, ZarrBuilder, write_slice,
};

/// FNV-1a, 64 bits: enough to tell two stores apart, with no dependency.
fn fnv(hash: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *hash ^= u64::from(b);
        *hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
}

/// One digest of every chunk file of the store (path and bytes), leaving out
/// the metadata (which names the store and its times).
fn chunk_digest(store: &Path) -> (usize, String) {
    let mut files = common::tree_files(store);
    files.retain(|rel, _| {
        let name = rel.rsplit('/').next().unwrap_or(rel);
        ![
            "zarr.json",
            ".zarray",
            ".zattrs",
            ".zgroup",
            "ctstack-inputs.json",
        ]
        .contains(&name)
    });
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for (rel, bytes) in &files {
        fnv(&mut hash, rel.as_bytes());
        fnv(&mut hash, &(bytes.len() as u64).to_le_bytes());
        fnv(&mut hash, bytes);
    }
    (files.len(), format!("{hash:016x}"))
}

/// The odd-sized u16 stack (name in the digests file, folder, min size): one
/// definition for the writer's digests and the one-strip stacks that must
/// give the same chunks.
fn odd_u16_stack(dir: &Path) -> (&'static str, PathBuf, u32) {
    let raw = make_stack(&dir.join("e"), 37, 201, 163, |z, i| {
        ((z * 7919 + i * 31) % 65521) as u16
    });
    ("u16 37x201x163", raw, 20)
}

/// The odd-sized u8 stack, as [`odd_u16_stack`].
fn odd_u8_stack(dir: &Path) -> (&'static str, PathBuf, u32) {
    let raw = make_stack(&dir.join("f"), 19, 130, 67, |z, i| {
        ((z * 37 + i * 5) % 251) as u8
    });
    ("u8 19x130x67", raw, 3)
}

/// Writes a stack of `count` slices of `w` x `h` of `T` (values from `value(z, i)`).
fn make_stack<T: ctstack::Sample>(
    dir: &Path,
    count: usize,
    w: u32,
    h: u32,
    value: impl Fn(usize, usize) -> T,
) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for z in 0..count {
        let pixels: Vec<T> = (0..(w * h) as usize).map(|i| value(z, i)).collect();
        write_slice(&dir.join(format!("s{z:04}.tif")), w, h, &pixels).unwrap();
    }
    dir.to_path_buf()
}

fn fixture_builder(rel: &str) -> PyramidBuilder {
    let path = common::fixtures().join(rel);
    if path.is_file() {
        PyramidBuilder::from_file(path)
    } else {
        PyramidBuilder::from_dir(path).unwrap()
    }
}

type Options = fn(ZarrBuilder) -> ZarrBuilder;

/// The layouts every stack is written with. Each names its compression: the
/// default codec may change, what these digests pin may not.
const LAYOUTS: [(&str, Options); 7] = [
    ("c2.16.32-zstd", |z| {
        z.chunks([2, 16, 32]).compression(ChunkCompression::Zstd(3))
    }),
    ("c3.9.7-none-v2", |z| {
        z.chunks([3, 9, 7])
            .ngff(Ngff::V0_4)
            .compression(ChunkCompression::None)
    }),
    ("c2.8.16-shard4.16.32", |z| {
        z.chunks([2, 8, 16])
            .shard(Some([4, 16, 32]))
            .compression(ChunkCompression::Zstd(3))
    }),
    ("c5.33.17-zstd", |z| {
        z.chunks([5, 33, 17]).compression(ChunkCompression::Zstd(3))
    }),
    ("c4.32.32-none", |z| {
        z.chunks([4, 32, 32]).compression(ChunkCompression::None)
    }),
    ("default-chunks-zstd", |z| {
        z.compression(ChunkCompression::Zstd(3))
    }),
    // Not from the whole-slice writer (it had no Blosc): written by the
    // row-band writer with C-Blosc 1.21 (blosc-src 0.3.8), after
    // tests/zarr.rs and python/tests/test_zarr.py had read such stores back
    // as the TIFF pyramid. Pins the Blosc configuration (type size, shuffle,
    // level, block size) and the bytes on every platform.
    ("c4.32.32-blosc-lz4-bitshuffle", |z| {
        z.chunks([4, 32, 32]).compression(ChunkCompression::Blosc {
            compressor: BloscCompressor::Lz4,
            shuffle: BloscShuffle::Bit,
            level: 5,
        })
    }),
];

#[test]
fn chunk_files_are_those_of_the_whole_slice_writer() {
    let dir = temp_dir("zarr-digests");
    let mut stacks: Vec<(String, PyramidBuilder)> = [
        "stack_u8",
        "stack_bmp",
        "stack_png",
        "types_stacks/i16",
        "types_stacks/f32",
        "types_stacks/f32_imagej.tif",
        "types_stacks/i16_pages.tif",
        "types_stacks/u8_miniswhite",
    ]
    .iter()
    .map(|rel| (rel.to_string(), fixture_builder(rel).min_size(2)))
    .collect();
    let made: Vec<(&str, PathBuf, u32)> = vec![
        (
            "u16 7x37x29",
            make_stack(&dir.join("a"), 7, 37, 29, |z, i| (z * 1000 + i * 7) as u16),
            4,
        ),
        (
            "u8 1x33x17",
            make_stack(&dir.join("b"), 1, 33, 17, |_, i| (i * 13) as u8),
            4,
        ),
        (
            "i16 2x19x40",
            make_stack(&dir.join("c"), 2, 19, 40, |z, i| {
                (i as i16 - 300) * (z as i16 * 2 - 1)
            }),
            4,
        ),
        (
            "f32 5x21x23",
            make_stack(&dir.join("d"), 5, 21, 23, |z, i| match i % 11 {
                0 => f32::NAN,
                1 => f32::INFINITY,
                _ => z as f32 * 0.25 - i as f32 * 1.5e-3,
            }),
            4,
        ),
        odd_u16_stack(&dir),
        odd_u8_stack(&dir),
    ];
    for (what, stack, min_size) in made {
        let builder = PyramidBuilder::from_dir(&stack).unwrap().min_size(min_size);
        stacks.push((what.to_string(), builder));
    }
    let mut got = String::new();
    for (what, builder) in &stacks {
        for (layout, options) in LAYOUTS {
            let store = dir.join("s.ome.zarr");
            let _ = std::fs::remove_dir_all(&store);
            options(ZarrBuilder::new(builder.clone(), &store))
                .plan()
                .unwrap()
                .run(&mut |_, _| {}, &Default::default())
                .unwrap_or_else(|e| panic!("{what} {layout}: {e}"));
            let (files, digest) = chunk_digest(&store);
            got.push_str(&format!("{what}\t{layout}\t{files}\t{digest}\n"));
        }
    }
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/zarr_digests.txt");
    if std::env::var_os("CTSTACK_WRITE_DIGESTS").is_some() {
        std::fs::write(&file, &got).unwrap();
    }
    let expected = std::fs::read_to_string(&file).unwrap();
    let differ: Vec<_> = got
        .lines()
        .zip(expected.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert!(
        differ.is_empty() && got.lines().count() == expected.lines().count(),
        "{differ:#?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Rewrites every slice of each folder argv[1:] into FOLDER-CODEC with
/// tifffile, compressed with each codec, the page in ONE strip (as tifffile
/// with `rowsperstrip` the height, ImageJ and Pillow write them), with the
/// horizontal predictor but for PackBits.
const ONE_STRIP_SCRIPT: &str = r#"
import sys, pathlib, tifffile
for raw in map(pathlib.Path, sys.argv[1:]):
    for codec in ["deflate", "zstd", "lzw", "packbits"]:
        out = raw.with_name(raw.name + "-" + codec)
        out.mkdir(parents=True, exist_ok=True)
        for src in sorted(raw.glob("*.tif")):
            a = tifffile.imread(src)
            tifffile.imwrite(out / src.name, a, compression=codec,
                             predictor=codec != "packbits", rowsperstrip=a.shape[0])
            with tifffile.TiffFile(out / src.name) as t:
                assert len(t.pages[0].dataoffsets) == 1, "not one strip"
"#;

/// The u16 and u8 stacks above rewritten by tifffile as one-strip Deflate,
/// ZSTD, LZW and PackBits pages, written in the two layouts with the most
/// bands (16 and 18 rows over pages of 130 and 201 rows: bands end inside the
/// strip, which is decoded once and handed out band by band,
/// src/decode/stream.rs): the chunk files are those of the uncompressed
/// stack's digests.
#[test]
fn one_strip_compressed_stacks_write_the_raw_stacks_chunks() {
    use std::process::Command;
    let python = std::env::var("CTSTACK_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import numpy, tifffile, imagecodecs"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        common::missing_tool(
            &format!("{python} with numpy, tifffile and imagecodecs"),
            common::PYTHON_PACKAGES,
        );
        return;
    }
    let expected = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/zarr_digests.txt"),
    )
    .unwrap();
    let dir = temp_dir("zarr-digests-one-strip");
    let raws: Vec<(&str, PathBuf, u32)> = vec![odd_u16_stack(&dir), odd_u8_stack(&dir)];
    let run = Command::new(&python)
        .args(["-c", ONE_STRIP_SCRIPT])
        .args(raws.iter().map(|(_, raw, _)| raw))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "tifffile failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let mut differ = Vec::new();
    for (what, raw, min_size) in &raws {
        for codec in ["deflate", "zstd", "lzw", "packbits"] {
            let name = raw.file_name().unwrap().to_string_lossy();
            let stack = dir.join(format!("{name}-{codec}"));
            let builder = PyramidBuilder::from_dir(&stack)
                .unwrap()
                .min_size(*min_size);
            for (layout, options) in &LAYOUTS[..2] {
                let store = dir.join("s.ome.zarr");
                let _ = std::fs::remove_dir_all(&store);
                options(ZarrBuilder::new(builder.clone(), &store))
                    .plan()
                    .unwrap()
                    .run(&mut |_, _| {}, &Default::default())
                    .unwrap_or_else(|e| panic!("{what} {codec} {layout}: {e}"));
                let (files, digest) = chunk_digest(&store);
                let line = format!("{what}\t{layout}\t{files}\t{digest}");
                if !expected.lines().any(|l| l == line) {
                    differ.push(format!("{codec}: {line}"));
                }
            }
        }
    }
    assert!(differ.is_empty(), "{differ:#?}");
    std::fs::remove_dir_all(&dir).ok();
}
