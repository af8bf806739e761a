//! Every file in fixtures/types.json (sample types, bit depths, bit order,
//! photometric, volumes, compressions) opens with the expected access path and
//! tifffile's pixels, or is refused as Unsupported with the recorded reason.

mod common;

use ctstack::{AccessPath, ErrorKind, OpenOptions, ReadMode, SampleType, Slice};
use serde_json::Value;

fn types() -> Vec<Value> {
    let text = std::fs::read_to_string(common::fixtures().join("types.json")).unwrap();
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Each sample's bit pattern as an unsigned integer of its width, row-major: what
/// the fixture script's `bit_checks` sums.
fn bit_patterns(slice: &Slice) -> Vec<u64> {
    fn collect<T: ctstack::Sample>(slice: &Slice, bits: impl Fn(T) -> u64) -> Vec<u64> {
        let rows = slice.rows::<T>().unwrap();
        rows.iter().flatten().map(|&v| bits(v)).collect()
    }
    match slice.sample_type() {
        SampleType::U8 => collect::<u8>(slice, u64::from),
        SampleType::U16 => collect::<u16>(slice, u64::from),
        SampleType::I16 => collect::<i16>(slice, |v| u64::from(v as u16)),
        SampleType::F32 => collect::<f32>(slice, |v| u64::from(v.to_bits())),
        other => panic!("no bit patterns for {other}"),
    }
}

fn open(path: &std::path::Path, read_mode: ReadMode) -> Result<Slice, ctstack::Error> {
    let options = OpenOptions {
        read_mode,
        ..OpenOptions::default()
    };
    Slice::open_with(path, &options)
}

#[test]
fn every_type_fixture_reads_as_tifffile_or_is_refused_with_its_reason() {
    let cases = types();
    assert!(!cases.is_empty());
    for case in cases {
        let file = case["file"].as_str().unwrap();
        let path = common::fixtures().join(file);
        let expect = case["expect"].as_str().unwrap();
        if expect == "pages" {
            check_pages(file, &path, &case);
            continue;
        }
        let result = open(&path, ReadMode::Mmap);
        if expect == "Unsupported" {
            let err = result
                .err()
                .unwrap_or_else(|| panic!("{file}: opened, expected Unsupported"));
            assert_eq!(err.kind(), ErrorKind::Unsupported, "{file}: {err}");
            let reason = case["reason"].as_str().unwrap();
            assert!(
                err.to_string().contains(reason),
                "{file}: `{err}` does not say `{reason}`"
            );
            continue;
        }
        let slice = result.unwrap_or_else(|e| panic!("{file}: {e}"));
        let want_path = match expect {
            "mapped" => AccessPath::Mapped,
            "copied" => AccessPath::Copied,
            "decoded" => AccessPath::Decoded,
            other => panic!("{file}: unknown expectation {other}"),
        };
        assert_eq!(slice.access().path, want_path, "{file}: {}", slice.access());
        assert_eq!(
            slice.sample_type().name(),
            case["dtype"].as_str().unwrap(),
            "{file}"
        );
        assert_eq!(
            slice.photometric().name(),
            case["photometric"].as_str().unwrap(),
            "{file}"
        );
        if let Some(why) = case["access"].as_str() {
            assert!(
                slice.access().reason.contains(why),
                "{file}: access `{}` does not say `{why}`",
                slice.access()
            );
        }
        assert_eq!(u64::from(slice.width()), case["width"].as_u64().unwrap());
        assert_eq!(u64::from(slice.height()), case["height"].as_u64().unwrap());
        let bits = bit_patterns(&slice);
        let (sum, wsum) = sums(&bits);
        assert_eq!(sum, case["bitsum"].as_u64().unwrap(), "{file}: sum");
        assert_eq!(wsum, case["bitwsum"].as_u64().unwrap(), "{file}: wsum");
        // Read whole instead of mapped: the same pixels.
        let read = open(&path, ReadMode::Buffered).unwrap();
        assert_eq!(bit_patterns(&read), bits, "{file}: buffered read differs");
    }
}

fn sums(bits: &[u64]) -> (u64, u64) {
    let sum = bits.iter().sum();
    let wsum = bits
        .iter()
        .enumerate()
        .map(|(i, &v)| (i as u64 + 1) * v)
        .sum();
    (sum, wsum)
}

/// A multi-page file: the page count, and every page as tifffile reads it, on
/// the access path the script derived; mapped pages point into the one mapping.
fn check_pages(file: &str, path: &std::path::Path, case: &Value) {
    let pages = case["pages"].as_array().unwrap();
    let options = OpenOptions {
        read_mode: ReadMode::Mmap,
        ..OpenOptions::default()
    };
    assert_eq!(
        Slice::page_count(path, &options).unwrap(),
        pages.len(),
        "{file}"
    );
    for (k, want) in pages.iter().enumerate() {
        let slice = Slice::open_page(path, k, &options).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(slice.page(), k);
        let header = Slice::read_page_header(path, k, &options).unwrap();
        assert_eq!(
            (header.width, header.height),
            (slice.width(), slice.height())
        );
        assert_eq!(
            slice.access().path.name(),
            want["expect"].as_str().unwrap(),
            "{file} page {k}: {}",
            slice.access()
        );
        assert_eq!(slice.sample_type().name(), want["dtype"].as_str().unwrap());
        assert_eq!(u64::from(slice.width()), want["width"].as_u64().unwrap());
        assert_eq!(u64::from(slice.height()), want["height"].as_u64().unwrap());
        let (sum, wsum) = sums(&bit_patterns(&slice));
        assert_eq!(
            (sum, wsum),
            (
                want["bitsum"].as_u64().unwrap(),
                want["bitwsum"].as_u64().unwrap()
            ),
            "{file} page {k}: pixels differ from tifffile's"
        );
        if slice.is_zero_copy() {
            let range = slice.source_address_range().unwrap();
            let row = with_first_row(&slice);
            assert!(
                range.contains(&row),
                "{file} page {k}: row 0 not in the mapping"
            );
        }
    }
    let past = Slice::open_page(path, pages.len(), &options).unwrap_err();
    assert_eq!(past.kind(), ErrorKind::Usage, "{past}");
}

/// The address of row 0's first sample.
fn with_first_row(slice: &Slice) -> usize {
    match slice.sample_type() {
        SampleType::U8 => slice.rows::<u8>().unwrap().row(0).as_ptr() as usize,
        SampleType::U16 => slice.rows::<u16>().unwrap().row(0).as_ptr() as usize,
        SampleType::I16 => slice.rows::<i16>().unwrap().row(0).as_ptr() as usize,
        _ => slice.rows::<f32>().unwrap().row(0).as_ptr() as usize,
    }
}

/// Each sample's bit pattern, NaN folded to one value (NaN payloads may differ
/// between numpy's and our arithmetic; NaN-ness may not).
fn canonical_bits(slice: &Slice) -> Vec<u64> {
    let mut bits = bit_patterns(slice);
    if slice.sample_type() == SampleType::F32 {
        for b in &mut bits {
            if f32::from_bits(*b as u32).is_nan() {
                *b = u64::from(f32::NAN.to_bits());
            }
        }
    }
    bits
}

/// The i16, f32 and min-is-white stacks' pyramids equal the numpy references the
/// fixture script wrote (and checked against a naive per-pixel version), sample
/// type and photometric included; so do those of stacks saved as multi-page
/// files (one file, or a folder of them), whose pages are the slices.
#[test]
fn typed_pyramids_equal_the_numpy_references() {
    let text = std::fs::read_to_string(common::fixtures().join("types_pyramids.json")).unwrap();
    let entries: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(entries.len(), 8);
    for entry in entries {
        let stack = common::fixtures().join(entry["stack"].as_str().unwrap());
        let reference = common::fixtures().join(entry["reference"].as_str().unwrap());
        let name = entry["stack"].as_str().unwrap().replace('/', "-");
        let out = std::env::temp_dir().join(format!("ctstack-types-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let builder = if stack.is_file() {
            ctstack::PyramidBuilder::from_file(&stack)
        } else {
            ctstack::PyramidBuilder::from_dir(&stack).unwrap()
        };
        let plan = builder
            .output_dir(&out)
            .min_size(entry["min_size"].as_u64().unwrap() as u32)
            .plan()
            .unwrap();
        assert_eq!(plan.sample_type().name(), entry["dtype"].as_str().unwrap());
        let first = plan
            .run(&mut |_, _| {}, &ctstack::CancelFlag::new())
            .unwrap();
        assert!(first.rebuilt > 0, "{name}");
        // A second run trusts its manifest (which names the sample type): nothing rebuilt.
        let again = plan
            .run(&mut |_, _| {}, &ctstack::CancelFlag::new())
            .unwrap();
        assert_eq!(
            (again.rebuilt, again.kept),
            (0, first.rebuilt),
            "{name}: {again:?}"
        );
        let white = entry["photometric"].as_str().unwrap() == "miniswhite";
        for level in entry["levels"].as_array().unwrap() {
            let k = level["level"].as_u64().unwrap();
            for j in 0..level["count"].as_u64().unwrap() {
                let f = format!("{k}/{j:06}.tif");
                let ours = Slice::open(out.join(&f)).unwrap();
                let want = Slice::open(reference.join(&f)).unwrap();
                assert_eq!(ours.sample_type(), want.sample_type(), "{name} {f}");
                assert_eq!(
                    (ours.width(), ours.height()),
                    (want.width(), want.height()),
                    "{name} {f}"
                );
                assert_eq!(
                    ours.photometric() == ctstack::Photometric::MinIsWhite,
                    white,
                    "{name} {f}: photometric"
                );
                assert_eq!(
                    canonical_bits(&ours),
                    canonical_bits(&want),
                    "{name} {f} differs from the reference"
                );
            }
        }
        std::fs::remove_dir_all(&out).unwrap();
    }
}

/// A truncated ImageJ stack whose description claims more images than the file
/// holds is a format error, not a shorter stack; one that claims one image is one.
#[test]
fn imagej_image_counts_beyond_the_file_are_refused() {
    let original =
        std::fs::read(common::fixtures().join("types/imagej_u16_7images_truncated.tif")).unwrap();
    let at = original
        .windows(8)
        .position(|w| w == b"images=7")
        .expect("the description");
    let dir = std::env::temp_dir().join(format!("ctstack-imagej-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let options = OpenOptions::default();
    for (digit, want) in [(b'9', None), (b'1', Some(1)), (b'7', Some(7))] {
        let mut bytes = original.clone();
        bytes[at + 7] = digit;
        let path = dir.join(format!("images{}.tif", digit as char));
        std::fs::write(&path, &bytes).unwrap();
        match (Slice::page_count(&path, &options), want) {
            (Ok(n), Some(w)) => assert_eq!(n, w),
            (Err(e), None) => {
                assert_eq!(e.kind(), ErrorKind::Format, "{e}");
                assert!(e.to_string().contains("images=9"), "{e}");
                let page = Slice::open_page(&path, 8, &options).unwrap_err();
                assert_eq!(page.kind(), ErrorKind::Format, "{page}");
            }
            (got, _) => panic!("images={}: {got:?}", digit as char),
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
