//! Every fixture in fixtures/expected.json opens with the expected access path (or
//! error kind), and its pixels equal the `tiff` crate's decode and the checksums
//! that fixtures/make_fixtures.py computed with numpy.

mod common;

use ctstack::{AccessPath, ErrorKind, OpenOptions, ReadMode, Slice};

fn pixels(slice: &Slice) -> Vec<u32> {
    match slice.bits() {
        8 => slice
            .rows::<u8>()
            .unwrap()
            .iter()
            .flatten()
            .map(|&v| u32::from(v))
            .collect(),
        _ => slice
            .rows::<u16>()
            .unwrap()
            .iter()
            .flatten()
            .map(|&v| u32::from(v))
            .collect(),
    }
}

/// Always map: `ReadMode::Auto` would read files on a network filesystem.
fn mapped() -> OpenOptions {
    OpenOptions {
        read_mode: ReadMode::Mmap,
        ..OpenOptions::default()
    }
}

fn buffered() -> OpenOptions {
    OpenOptions {
        read_mode: ReadMode::Buffered,
        ..OpenOptions::default()
    }
}

#[test]
fn every_fixture_opens_as_expected() {
    let mut paths_seen = std::collections::HashSet::new();
    for case in common::expected() {
        let file = case["file"].as_str().unwrap();
        let path = common::fixtures().join(file);
        let expect = case["expect"].as_str().unwrap();
        let result = Slice::open_with(&path, &mapped());
        match expect {
            "mapped" | "copied" | "decoded" => {
                let slice = result.unwrap_or_else(|e| panic!("{file}: {e}"));
                let want_path = match expect {
                    "mapped" => AccessPath::Mapped,
                    "copied" => AccessPath::Copied,
                    _ => AccessPath::Decoded,
                };
                assert_eq!(slice.access().path, want_path, "{file}: {}", slice.access());
                paths_seen.insert(want_path);
                assert_eq!(
                    u64::from(slice.width()),
                    case["width"].as_u64().unwrap(),
                    "{file}"
                );
                assert_eq!(
                    u64::from(slice.height()),
                    case["height"].as_u64().unwrap(),
                    "{file}"
                );
                assert_eq!(
                    u64::from(slice.bits()),
                    case["bits"].as_u64().unwrap(),
                    "{file}"
                );
                assert_eq!(slice.is_zero_copy(), want_path == AccessPath::Mapped);

                let ours = pixels(&slice);
                let sum: u64 = ours.iter().map(|&v| u64::from(v)).sum();
                let wsum: u64 = ours
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| (i as u64 + 1) * u64::from(v))
                    .sum();
                assert_eq!(sum, case["sum"].as_u64().unwrap(), "{file}: sum");
                assert_eq!(
                    wsum,
                    case["wsum"].as_u64().unwrap(),
                    "{file}: weighted sum (row order)"
                );
                assert_eq!(
                    ours,
                    common::tiff_crate_pixels(&path),
                    "{file}: pixels differ from the tiff crate"
                );

                // The buffered source gives the same pixels; views become `Read`.
                let again = Slice::open_with(&path, &buffered()).unwrap();
                assert_eq!(pixels(&again), ours, "{file}: buffered read differs");
                let want_buffered = if want_path == AccessPath::Mapped {
                    AccessPath::Read
                } else {
                    want_path
                };
                assert_eq!(again.access().path, want_buffered, "{file}");

                // The default (auto) gives the same pixels.
                let auto = Slice::open(&path).unwrap();
                assert_eq!(pixels(&auto), ours, "{file}: auto read differs");
            }
            kind => {
                let err = result
                    .err()
                    .unwrap_or_else(|| panic!("{file}: opened, expected {kind}"));
                let want = match kind {
                    "Format" => ErrorKind::Format,
                    "Unsupported" => ErrorKind::Unsupported,
                    "LimitsExceeded" => ErrorKind::LimitsExceeded,
                    other => panic!("unknown expectation {other}"),
                };
                assert_eq!(err.kind(), want, "{file}: {err}");
                let msg = err.to_string();
                assert!(
                    msg.contains(path.file_name().unwrap().to_str().unwrap()),
                    "{file}: message names no file: {msg}"
                );
                let again = Slice::open_with(&path, &buffered()).err().unwrap();
                assert_eq!(again.kind(), want, "{file} (buffered): {again}");
            }
        }
    }
    assert_eq!(paths_seen.len(), 3, "every access path is exercised");
}

#[test]
fn reasons_name_the_cause() {
    let f = common::fixtures().join("slices");
    let reason = |name: &str| {
        Slice::open_with(f.join(name), &mapped())
            .unwrap()
            .access()
            .to_string()
    };
    assert_eq!(reason("tifffile_u16_be.tif"), "copied: big-endian");
    assert_eq!(reason("tifffile_u16_lzw.tif"), "decoded: LZW");
    assert_eq!(reason("tifffile_u16_le_1strip.tif"), "mapped: one strip");
    assert!(
        reason("hand_u16_odd_offset.tif")
            .starts_with("copied: strip 0 at offset 147, not a multiple of 2")
    );
    assert!(reason("tifffile_u16_tiled16.tif").starts_with("copied: tiled"));
    assert!(reason("hand_u16_strips_reversed_gaps.tif").contains("scattered"));
}

#[test]
fn scattered_strips_are_views_and_contiguous_copies_once() {
    let path = common::fixtures().join("slices/hand_u16_strips_reversed_gaps.tif");
    let slice = Slice::open(&path).unwrap();
    let range = slice.source_address_range().unwrap();
    let rows = slice.rows::<u16>().unwrap();
    assert!(rows.as_contiguous().is_none());
    for row in rows.iter() {
        let at = row.as_ptr() as usize;
        assert!(
            range.contains(&at) && at + 2 * row.len() <= range.end,
            "row outside the mapping"
        );
    }
    let flat = slice.contiguous::<u16>().unwrap();
    assert!(
        !range.contains(&(flat.as_ptr() as usize)),
        "a contiguous copy was expected"
    );
    assert_eq!(
        flat.iter().map(|&v| u32::from(v)).collect::<Vec<_>>(),
        common::tiff_crate_pixels(&path)
    );
    // The copy is kept: a second call returns the same buffer.
    assert_eq!(slice.contiguous::<u16>().unwrap().as_ptr(), flat.as_ptr());
}

#[test]
fn wrong_sample_type_and_buffer_length_are_mismatches() {
    let slice = Slice::open(common::fixtures().join("slices/tifffile_u8.tif")).unwrap();
    assert_eq!(
        slice.rows::<u16>().err().unwrap().kind(),
        ErrorKind::Mismatch
    );
    let mut small = vec![0u8; 10];
    assert_eq!(
        slice.copy_to(&mut small).err().unwrap().kind(),
        ErrorKind::Mismatch
    );
    let mut exact = vec![0u8; slice.image_bytes()];
    slice.copy_to(&mut exact).unwrap();
    assert_eq!(exact, slice.contiguous::<u8>().unwrap());
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let err = Slice::open("no/such/slice_0042.tif").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert!(err.to_string().contains("slice_0042.tif"), "{err}");
}

#[test]
fn slices_are_send_and_sync_and_read_alike_from_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Slice>();
    let slice = Slice::open(common::fixtures().join("slices/tifffile_u16_le_strips8.tif")).unwrap();
    let want = pixels(&slice);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| assert_eq!(pixels(&slice), want));
        }
    });
}
