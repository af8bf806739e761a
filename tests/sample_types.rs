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
        assert_eq!(u64::from(slice.width()), case["width"].as_u64().unwrap());
        assert_eq!(u64::from(slice.height()), case["height"].as_u64().unwrap());
        let bits = bit_patterns(&slice);
        let sum: u64 = bits.iter().sum();
        let wsum: u64 = bits
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as u64 + 1) * v)
            .sum();
        assert_eq!(sum, case["bitsum"].as_u64().unwrap(), "{file}: sum");
        assert_eq!(wsum, case["bitwsum"].as_u64().unwrap(), "{file}: wsum");
        // Read whole instead of mapped: the same pixels.
        let read = open(&path, ReadMode::Buffered).unwrap();
        assert_eq!(bit_patterns(&read), bits, "{file}: buffered read differs");
    }
}
