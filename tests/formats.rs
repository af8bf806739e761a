//! BMP, PNG and JPEG slices against Pillow's decode (fixtures/images.json, made by
//! fixtures/make_image_fixtures.py), hostile headers, and pyramids over BMP, PNG
//! and JPEG stacks against their numpy references.

mod common;

use std::path::{Path, PathBuf};

use ctstack::{
    AccessPath, CancelFlag, ErrorKind, Format, OpenOptions, PyramidBuilder, ReadMode, SampleType,
    Slice,
};
use serde_json::Value;

fn mapped() -> OpenOptions {
    OpenOptions {
        read_mode: ReadMode::Mmap,
        ..OpenOptions::default()
    }
}

/// Every sample of `slice`, widened.
fn values(slice: &Slice) -> Vec<u32> {
    let rows: Vec<u32> = match slice.bits() {
        8 => {
            let r = slice.rows::<u8>().unwrap();
            r.iter().flatten().map(|&v| u32::from(v)).collect()
        }
        _ => {
            let r = slice.rows::<u16>().unwrap();
            r.iter().flatten().map(|&v| u32::from(v)).collect()
        }
    };
    assert_eq!(rows.len(), slice.width() as usize * slice.height() as usize);
    rows
}

/// A reference: raw row-major samples, u8 or little-endian u16.
fn raw_reference(path: &Path, bits: u64) -> Vec<u32> {
    let bytes = std::fs::read(path).unwrap();
    match bits {
        8 => bytes.iter().map(|&v| u32::from(v)).collect(),
        _ => bytes
            .chunks_exact(2)
            .map(|b| u32::from(u16::from_le_bytes([b[0], b[1]])))
            .collect(),
    }
}

/// (pixels that differ, largest difference).
fn differences(ours: &[u32], theirs: &[u32]) -> (usize, u32) {
    assert_eq!(ours.len(), theirs.len());
    let diffs = ours.iter().zip(theirs).map(|(a, b)| a.abs_diff(*b));
    diffs.fold((0, 0), |(n, max), d| (n + usize::from(d > 0), max.max(d)))
}

fn json(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(common::fixtures().join(name)).unwrap();
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn pillow_fixtures_decode_as_pillow_decodes_them() {
    let f = common::fixtures();
    for entry in json("images.json") {
        let file = entry["file"].as_str().unwrap();
        let slice = Slice::open_with(f.join(file), &mapped()).unwrap_or_else(|e| panic!("{e}"));
        let bits = entry["bits"].as_u64().unwrap();
        assert_eq!(
            (slice.width(), slice.height(), u64::from(slice.bits())),
            (
                entry["width"].as_u64().unwrap() as u32,
                entry["height"].as_u64().unwrap() as u32,
                bits
            ),
            "{file}"
        );
        assert_eq!(
            slice.access().path.name(),
            entry["access"].as_str().unwrap(),
            "{file}: {}",
            slice.access()
        );
        let extension = file.rsplit('.').next().unwrap();
        let format = match extension {
            "bmp" => Format::Bmp,
            "png" => Format::Png,
            _ => Format::Jpeg,
        };
        assert_eq!(slice.format(), format, "{file}");
        let header = Slice::read_header(f.join(file), &OpenOptions::default()).unwrap();
        assert_eq!(
            (
                header.format,
                header.width,
                header.height,
                header.sample_type.bits()
            ),
            (format, slice.width(), slice.height(), slice.bits()),
            "{file}"
        );

        let want = raw_reference(&f.join(entry["reference"].as_str().unwrap()), bits);
        let ours = values(&slice);
        let (differ, largest) = differences(&ours, &want);
        let tolerance = entry["tolerance"].as_u64().unwrap() as u32;
        assert!(
            largest <= tolerance,
            "{file}: {differ} pixels differ from Pillow's, by up to {largest}"
        );
        if tolerance > 0 {
            eprintln!(
                "{file}: {differ} of {} pixels ({:.2}%) differ from Pillow's decode, by at most {largest}",
                ours.len(),
                100.0 * differ as f64 / ours.len() as f64
            );
        }
        // Buffered reads serve the same pixels.
        let buffered = OpenOptions {
            read_mode: ReadMode::Buffered,
            ..OpenOptions::default()
        };
        let again = Slice::open_with(f.join(file), &buffered).unwrap();
        assert_eq!(values(&again), ours, "{file}");
    }
}

#[test]
fn access_names_what_was_done() {
    let f = common::fixtures().join("images");
    let access = |name: &str| {
        Slice::open_with(f.join(name), &mapped())
            .unwrap()
            .access()
            .to_string()
    };
    assert_eq!(
        access("nrecon_like_301.bmp"),
        "mapped: BMP, bottom-up rows padded to 304 bytes, gray palette"
    );
    assert_eq!(
        access("pillow_P.bmp"),
        "converted: palette to gray (BMP, bottom-up rows padded to 68 bytes)"
    );
    assert_eq!(access("pillow_RGB.png"), "converted: RGB to gray (PNG)");
    assert_eq!(access("pillow_RGBA.png"), "converted: RGBA to gray (PNG)");
    assert_eq!(access("pillow_I16.png"), "decoded: PNG, 16-bit big-endian");
    assert_eq!(access("pillow_RGB.jpg"), "converted: RGB to gray (JPEG)");
    assert_eq!(access("pillow_L.jpg"), "decoded: JPEG");
}

/// A BMP built by hand: `info` is the 40-byte BITMAPINFOHEADER's fields.
fn bmp(width: i32, height: i32, bits: u16, compression: u32, colors: u32, tail: &[u8]) -> Vec<u8> {
    let palette_len = if bits == 8 { 4 * colors.max(1) } else { 0 };
    let offset = 14 + 40 + palette_len;
    let mut v = b"BM".to_vec();
    v.extend_from_slice(&(offset + tail.len() as u32).to_le_bytes());
    v.extend_from_slice(&[0; 4]);
    v.extend_from_slice(&offset.to_le_bytes());
    for field in [40u32, width as u32, height as u32] {
        v.extend_from_slice(&field.to_le_bytes());
    }
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&bits.to_le_bytes());
    for field in [compression, tail.len() as u32, 0, 0, colors, 0] {
        v.extend_from_slice(&field.to_le_bytes());
    }
    for i in 0..palette_len / 4 {
        let g = i as u8;
        v.extend_from_slice(&[g, g, g, 0]);
    }
    v.extend_from_slice(tail);
    v
}

/// `bmp` with palette entry 1 made a color: not a gray ramp, so pixels go through the palette.
fn color_palette(mut bmp: Vec<u8>) -> Vec<u8> {
    bmp[58..61].copy_from_slice(&[10, 20, 30]);
    bmp
}

fn error_of(name: &str, bytes: &[u8]) -> (ErrorKind, String) {
    let err = Slice::from_bytes(name, bytes, &OpenOptions::default()).unwrap_err();
    assert_eq!(err.path(), Some(Path::new(name)), "{err}");
    (err.kind(), err.to_string())
}

#[test]
fn hostile_and_unsupported_files_get_typed_errors() {
    // A top-down 3x2 gray BMP: rows of 4 bytes (one of padding).
    let ok = bmp(3, -2, 8, 0, 256, &[1, 2, 3, 0, 4, 5, 6, 0]);
    let slice = Slice::from_bytes("top_down.bmp", &ok, &OpenOptions::default()).unwrap();
    assert_eq!(values(&slice), [1, 2, 3, 4, 5, 6]);
    assert_eq!(slice.access().path, AccessPath::Read);
    // The same pixels bottom-up: the row view steps backwards.
    let up = bmp(3, 2, 8, 0, 256, &[4, 5, 6, 0, 1, 2, 3, 0]);
    let slice = Slice::from_bytes("bottom_up.bmp", &up, &OpenOptions::default()).unwrap();
    assert_eq!(values(&slice), [1, 2, 3, 4, 5, 6]);
    assert!(slice.rows::<u8>().unwrap().as_contiguous().is_none());
    assert_eq!(slice.contiguous::<u8>().unwrap(), [1, 2, 3, 4, 5, 6]);

    let cases: Vec<(&str, Vec<u8>, ErrorKind, &str)> = vec![
        (
            "rle8.bmp",
            bmp(3, 2, 8, 1, 256, &[0; 8]),
            ErrorKind::Unsupported,
            "RLE8-compressed BMP",
        ),
        (
            "four_bit.bmp",
            bmp(3, 2, 4, 0, 0, &[0; 8]),
            ErrorKind::Unsupported,
            "4-bit BMP",
        ),
        (
            "bits_7.bmp",
            bmp(3, 2, 7, 0, 0, &[0; 8]),
            ErrorKind::Format,
            "bit count 7",
        ),
        (
            "truncated.bmp",
            bmp(3, 2, 8, 0, 256, &[0; 6]),
            ErrorKind::Format,
            "past the end",
        ),
        (
            "width_zero.bmp",
            bmp(0, 2, 8, 0, 256, &[0; 8]),
            ErrorKind::Format,
            "empty or negative",
        ),
        (
            "huge.bmp",
            bmp(100_000, 100_000, 24, 0, 0, &[0; 8]),
            ErrorKind::LimitsExceeded,
            "pixels",
        ),
        (
            "palette_300.bmp",
            bmp(3, 2, 8, 0, 300, &[0; 8]),
            ErrorKind::Format,
            "300 palette entries",
        ),
        (
            "index_past_palette.bmp",
            color_palette(bmp(3, 2, 8, 0, 4, &[0, 1, 2, 0, 3, 9, 1, 0])),
            ErrorKind::Format,
            "pixel index 9 in row 0 is beyond the 4-entry palette",
        ),
        (
            "header_cut.bmp",
            b"BM\x10\0\0\0\0\0\0\0\x36\0\0\0\x28\0".to_vec(),
            ErrorKind::Format,
            "18 bytes",
        ),
        (
            "pixels_over_palette.bmp",
            {
                let mut b = bmp(3, 2, 8, 0, 256, &[0; 8]);
                b[10..14].copy_from_slice(&54u32.to_le_bytes());
                b
            },
            ErrorKind::Format,
            "overlap the headers and palette, which end at 1078",
        ),
        (
            "hello.txt",
            b"hello".to_vec(),
            ErrorKind::Format,
            "not a TIFF, BMP, PNG or JPEG file: it starts with 68 65 6c 6c",
        ),
        (
            "png_cut.png",
            b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec(),
            ErrorKind::Format,
            "PNG",
        ),
        (
            "jpeg_cut.jpg",
            b"\xff\xd8\xff\xe0\0\x10JFIF".to_vec(),
            ErrorKind::Format,
            "JPEG",
        ),
    ];
    for (name, bytes, kind, text) in cases {
        let (got, message) = error_of(name, &bytes);
        assert_eq!(got, kind, "{name}: {message}");
        assert!(message.contains(text), "{name}: {message}");
    }

    // A 12-bit JPEG: the precision byte of Pillow's file's frame header set to 12.
    let mut jpeg = std::fs::read(common::fixtures().join("images/pillow_L.jpg")).unwrap();
    let sof = jpeg.windows(2).position(|w| w == [0xff, 0xc0]).unwrap();
    jpeg[sof + 4] = 12;
    let (kind, message) = error_of("twelve_bit.jpg", &jpeg);
    assert_eq!(kind, ErrorKind::Unsupported, "{message}");
    assert!(message.contains("12-bit JPEG"), "{message}");

    // A PNG whose header claims 60000 x 60000 gray pixels.
    let mut png = std::fs::read(common::fixtures().join("images/pillow_L.png")).unwrap();
    png[16..24].copy_from_slice(&[0, 0, 0xea, 0x60, 0, 0, 0xea, 0x60]);
    let crc = common::crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    let (kind, message) = error_of("huge.png", &png);
    assert_eq!(kind, ErrorKind::LimitsExceeded, "{message}");
}

/// Builds the pyramid of `stack` and compares every level with its reference
/// (fixtures/image_pyramids.json), sample by sample within the reference's tolerance.
fn check_pyramid(entry: &Value, builder: PyramidBuilder) -> usize {
    let f = common::fixtures();
    let stack = entry["stack"].as_str().unwrap();
    let out = std::env::temp_dir().join(format!("ctstack-formats-{stack}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let plan = builder
        .output_dir(&out)
        .min_size(entry["min_size"].as_u64().unwrap() as u32)
        .plan()
        .unwrap();
    plan.run(&mut |_, _| {}, &CancelFlag::new()).unwrap();
    let tolerance = entry["tolerance"].as_u64().unwrap() as u32;
    let reference = f.join(entry["reference"].as_str().unwrap());
    let mut compared = 0;
    for level in &entry["levels"].as_array().unwrap()[1..] {
        let k = level["level"].as_u64().unwrap();
        assert_eq!(
            plan.levels()[k as usize].count as u64,
            level["count"].as_u64().unwrap()
        );
        for j in 0..level["count"].as_u64().unwrap() {
            let name = PathBuf::from(k.to_string()).join(format!("{j:06}.tif"));
            let ours = Slice::open(out.join(&name)).unwrap();
            let theirs = Slice::open(reference.join(&name)).unwrap();
            assert_eq!(
                (ours.width(), ours.height()),
                (theirs.width(), theirs.height())
            );
            assert_eq!(ours.bits(), theirs.bits(), "{stack} {}", name.display());
            let (differ, largest) = differences(&values(&ours), &values(&theirs));
            assert!(
                largest <= tolerance,
                "{stack} {}: {differ} samples differ, by up to {largest}",
                name.display()
            );
            compared += 1;
        }
    }
    std::fs::remove_dir_all(&out).unwrap();
    compared
}

#[test]
fn pyramids_over_bmp_png_and_jpeg_stacks_match_their_references() {
    let f = common::fixtures();
    for entry in json("image_pyramids.json") {
        let stack = f.join(entry["stack"].as_str().unwrap());
        let builder = PyramidBuilder::from_dir(&stack).unwrap();
        assert!(check_pyramid(&entry, builder) > 0);
    }
}

#[test]
fn a_bmp_stack_is_every_slice_mapped_and_leaves_the_preview_out() {
    let dir = common::fixtures().join("stack_bmp");
    let builder = PyramidBuilder::from_dir(&dir).unwrap();
    let listing = builder.listing().unwrap();
    assert_eq!(listing.files.len(), 9);
    assert_eq!(listing.skipped.len(), 1);
    assert!(listing.skipped[0].path.ends_with("scan_spr.bmp"));
    for file in &listing.files {
        let slice = Slice::open_with(file, &mapped()).unwrap();
        assert!(
            slice.is_zero_copy(),
            "{}: {}",
            file.display(),
            slice.access()
        );
    }
}

#[test]
fn mixed_depths_are_an_error_unless_converted() {
    let f = common::fixtures().join("images");
    let dir = std::env::temp_dir().join(format!("ctstack-formats-mixed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Same size (67x45), 8 and 16 bits.
    std::fs::copy(f.join("pillow_L.png"), dir.join("s_0.png")).unwrap();
    std::fs::copy(f.join("pillow_I16.png"), dir.join("s_1.png")).unwrap();

    let err = PyramidBuilder::from_dir(&dir).unwrap().plan().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Mismatch);
    assert!(err.to_string().contains("s_1.png: 67x45 uint16"), "{err}");

    let out = dir.join("out");
    let plan = PyramidBuilder::from_dir(&dir)
        .unwrap()
        .convert_depth(SampleType::U16)
        .output_dir(&out)
        .min_size(40)
        .plan()
        .unwrap();
    assert_eq!(plan.sample_type(), SampleType::U16);
    plan.run(&mut |_, _| {}, &CancelFlag::new()).unwrap();
    let l = raw_reference(&f.join("reference/pillow_L.png.raw"), 8);
    let i16 = raw_reference(&f.join("reference/pillow_I16.png.raw"), 16);
    let level1 = Slice::open(out.join("1/000000.tif")).unwrap();
    assert_eq!(
        (level1.width(), level1.height(), level1.bits()),
        (33, 22, 16)
    );
    let got = values(&level1);
    for y in 0..22 {
        for x in 0..33 {
            let mut sum = 0;
            for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                let at = (2 * y + dy) * 67 + 2 * x + dx;
                sum += l[at] * 257 + i16[at];
            }
            assert_eq!(got[y * 33 + x], (sum + 4) >> 3, "({x}, {y})");
        }
    }
    // Windows refuses to delete a mapped file: unmap before the folder goes.
    drop(level1);
    // Opened on its own with a conversion, the 16-bit slice says what was done.
    let narrow = OpenOptions {
        convert_depth: Some(SampleType::U8),
        ..mapped()
    };
    let slice = Slice::open_with(dir.join("s_1.png"), &narrow).unwrap();
    assert_eq!(slice.bits(), 8);
    assert_eq!(
        slice.access().to_string(),
        "converted: 16-bit to 8-bit by (v + 128) / 257 (was decoded: PNG, 16-bit big-endian)"
    );
    let want: Vec<u32> = i16.iter().map(|v| (v + 128) / 257).collect();
    assert_eq!(values(&slice), want);
    std::fs::remove_dir_all(&dir).unwrap();
}
