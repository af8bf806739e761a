//! Compressed slices as tifffile writes them (Deflate, ZSTD, PackBits, LZW; with
//! and without a predictor; strips and padded tiles; both byte orders; every
//! sample type) decode to tifffile's own pixels, whichever of ctstack's decoders
//! reads them (its LZW and direct decoders, or the `tiff` crate's).
//!
//! Needs Python with numpy, tifffile and imagecodecs (`CTSTACK_PYTHON`, default
//! `python3`); without them the test fails saying how to install them, or skips
//! with `CTSTACK_ALLOW_SKIPS=1` ([`common::missing_tool`]).

mod common;

use std::process::Command;

use ctstack::{AccessPath, OpenOptions, ReadMode, SampleType, Slice};

fn python() -> String {
    std::env::var("CTSTACK_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Writes every variant into argv[1] as NAME.tif and tifffile's reading of it
/// as NAME.raw (little-endian samples, row-major).
const WRITE_SCRIPT: &str = r#"
import sys, os, itertools, numpy as np, tifffile
out = sys.argv[1]
h, w = 29, 37
rng = np.random.default_rng(7)
base = rng.normal(30000, 3000, (h, w))
base[5:20, 8:30] += 9000
for codec, pred, layout, order, dtype in itertools.product(
        ["zlib", "zstd", "packbits", "lzw"], [False, True], ["strips", "tiles"],
        ["<", ">"], ["uint8", "uint16", "int16", "float32"]):
    if pred and codec == "packbits":
        continue
    if dtype == "uint8":
        a = (base / 256).astype(np.uint8)
    elif dtype == "int16":
        a = (base - 32768).astype(np.int16)
    else:
        a = base.astype(dtype)
    a[0, :4] = 0  # runs, for PackBits
    kw = {"tile": (16, 16)} if layout == "tiles" else {"rowsperstrip": 5}
    name = f"{codec}_{'pred' if pred else 'nopred'}_{layout}_{'le' if order == '<' else 'be'}_{dtype}"
    path = os.path.join(out, name + ".tif")
    tifffile.imwrite(path, a, byteorder=order, compression=codec, predictor=pred,
                     photometric="minisblack", metadata=None, **kw)
    back = tifffile.imread(path)
    assert (back == a).all(), name
    back.astype(back.dtype.newbyteorder("<")).tofile(os.path.join(out, name + ".raw"))
print("ok")
"#;

fn le_bytes(slice: &Slice) -> Vec<u8> {
    fn collect<T: ctstack::Sample>(slice: &Slice, bytes: impl Fn(T) -> Vec<u8>) -> Vec<u8> {
        let rows = slice.rows::<T>().unwrap();
        rows.iter().flatten().flat_map(|&v| bytes(v)).collect()
    }
    match slice.sample_type() {
        SampleType::U8 => collect::<u8>(slice, |v| vec![v]),
        SampleType::U16 => collect::<u16>(slice, |v| v.to_le_bytes().to_vec()),
        SampleType::I16 => collect::<i16>(slice, |v| v.to_le_bytes().to_vec()),
        SampleType::F32 => collect::<f32>(slice, |v| v.to_le_bytes().to_vec()),
        other => panic!("no bytes for {other}"),
    }
}

#[test]
fn tifffile_compressed_variants_decode_to_tifffiles_pixels() {
    let ok = Command::new(python())
        .args(["-c", "import numpy, tifffile, imagecodecs"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        common::missing_tool(
            &format!("{} with numpy, tifffile and imagecodecs", python()),
            common::PYTHON_PACKAGES,
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("ctstack-compressed-{}", std::process::id()));
    std::fs::create_dir(&dir).unwrap();
    let run = Command::new(python())
        .args(["-c", WRITE_SCRIPT])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "tifffile failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".tif").map(str::to_string)
        })
        .collect();
    names.sort();
    assert_eq!(names.len(), 112, "{names:?}");
    for name in &names {
        let want = std::fs::read(dir.join(format!("{name}.raw"))).unwrap();
        for read_mode in [ReadMode::Mmap, ReadMode::Buffered] {
            let options = OpenOptions {
                read_mode,
                ..OpenOptions::default()
            };
            let slice = Slice::open_with(dir.join(format!("{name}.tif")), &options)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(slice.access().path, AccessPath::Decoded, "{name}");
            assert_eq!((slice.width(), slice.height()), (37, 29), "{name}");
            assert!(
                le_bytes(&slice) == want,
                "{name} ({read_mode:?}): not tifffile's pixels"
            );
        }
    }
    // Only files this test wrote, in the folder it made.
    for name in &names {
        for ext in ["tif", "raw"] {
            std::fs::remove_file(dir.join(format!("{name}.{ext}"))).unwrap();
        }
    }
    std::fs::remove_dir(&dir).unwrap();
}
