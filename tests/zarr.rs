//! The OME-Zarr writer: every level read back by zarrs equals the input (level
//! 0) and the TIFF pyramid's level (levels 1 ..= L) byte for byte, for every
//! sample type and awkward shape; the metadata parses and validates with
//! ome_zarr_metadata and says what the levels are; foreign stores are refused;
//! interrupted runs finish to the same bytes.
#![cfg(feature = "ome-zarr")]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::pyramid::temp_dir;
use common::tree_files;
use ctstack::{
    ChunkCompression, ErrorKind, Ngff, OpenOptions, Pyramid, PyramidBuilder, SampleType, Slice,
    ZarrBuilder, ZarrSummary, write_slice,
};
use ome_zarr_metadata::Validate;
use zarrs::array::Array;
use zarrs::filesystem::FilesystemStore;

/// Every level of the store at `store`, as zarrs reads it: shape and raw bytes.
fn zarr_levels(store: &Path, levels: usize) -> Vec<(Vec<u64>, Vec<u8>)> {
    let fs = Arc::new(FilesystemStore::new(store).unwrap());
    (0..levels)
        .map(|k| {
            let array = Array::open(fs.clone(), &format!("/{k}")).unwrap();
            let got = array
                .retrieve_array_subset::<zarrs::array::ArrayBytes>(&array.subset_all())
                .unwrap();
            let bytes = got.into_fixed().unwrap().into_owned();
            (array.shape().to_vec(), bytes)
        })
        .collect()
}

/// The stack's slices, read by ctstack, as bytes: level 0.
fn input_bytes(builder: &PyramidBuilder) -> Vec<u8> {
    let plan = builder.plan().unwrap();
    let mut out = Vec::new();
    for input in plan.inputs() {
        let slice = Slice::open_page(&input.path, input.page, &OpenOptions::default()).unwrap();
        out.extend_from_slice(&slice_bytes(&slice));
    }
    out
}

fn slice_bytes(slice: &Slice) -> Vec<u8> {
    fn rows<T: ctstack::Sample>(slice: &Slice) -> Vec<u8> {
        let rows = slice.rows::<T>().unwrap();
        rows.iter()
            .flat_map(|r| bytemuck::cast_slice::<T, u8>(r).to_vec())
            .collect()
    }
    match slice.sample_type() {
        SampleType::U8 => rows::<u8>(slice),
        SampleType::U16 => rows::<u16>(slice),
        SampleType::I16 => rows::<i16>(slice),
        _ => rows::<f32>(slice),
    }
}

/// Level `k` of the TIFF pyramid in `dir`, as bytes.
fn tiff_level(dir: &Path, k: usize, t: SampleType) -> Vec<u8> {
    let p = Pyramid::open(dir).unwrap();
    match t {
        SampleType::U8 => p.read_level::<u8>(k).unwrap(),
        SampleType::U16 => bytemuck::cast_slice(&p.read_level::<u16>(k).unwrap()).to_vec(),
        SampleType::I16 => bytemuck::cast_slice(&p.read_level::<i16>(k).unwrap()).to_vec(),
        _ => bytemuck::cast_slice(&p.read_level::<f32>(k).unwrap()).to_vec(),
    }
}

fn fixture_builder(rel: &str) -> PyramidBuilder {
    let path = common::fixtures().join(rel);
    if path.is_file() {
        PyramidBuilder::from_file(path)
    } else {
        PyramidBuilder::from_dir(path).unwrap()
    }
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

/// Builds the TIFF pyramid and the Zarr store (`options` applied) of
/// `builder`'s stack, and checks every level, read back by zarrs, against the
/// inputs (level 0) and the TIFF levels, byte for byte.
fn check(builder: PyramidBuilder, options: impl Fn(ZarrBuilder) -> ZarrBuilder, what: &str) {
    let dir = temp_dir(&format!("zarr-{}", what.replace(['/', ' '], "_")));
    let tiff = builder.clone().output_dir(dir.join("tiff")).plan().unwrap();
    tiff.run(&mut |_, _| {}, &Default::default()).unwrap();
    let store = dir.join("s.ome.zarr");
    let plan = options(ZarrBuilder::new(builder.clone(), &store))
        .plan()
        .unwrap();
    let summary = plan.run(&mut |_, _| {}, &Default::default()).unwrap();
    let n = tiff.levels()[0].count;
    // The OME-Zarr levels: the TIFF levels, in z only the planes that average
    // exactly 2^k slices (at least one).
    let depth = |k: usize| (n >> k).max(1);
    let shapes: Vec<_> = tiff
        .levels()
        .iter()
        .enumerate()
        .map(|(k, l)| ctstack::LevelShape {
            count: depth(k),
            ..*l
        })
        .collect();
    assert_eq!(summary.levels, shapes, "{what}");
    let levels = zarr_levels(&store, tiff.levels().len());
    let t = tiff.sample_type();
    let invert = plan.notes().iter().any(|n| n.contains("MinIsWhite"));
    for (k, (shape, bytes)) in levels.iter().enumerate() {
        let l = tiff.levels()[k];
        assert_eq!(
            shape,
            &[depth(k) as u64, l.height.into(), l.width.into()],
            "{what}: level {k}"
        );
        let mut expected = match k {
            0 => input_bytes(&builder),
            _ => tiff_level(&dir.join("tiff"), k, t),
        };
        expected.truncate(depth(k) * l.width as usize * l.height as usize * t.bytes());
        if invert {
            // MinIsWhite stacks are stored inverted (the fixture is 8-bit).
            assert_eq!(t, SampleType::U8, "{what}");
            expected.iter_mut().for_each(|v| *v = 255 - *v);
        }
        assert_eq!(bytes.len(), expected.len(), "{what}: level {k} size");
        assert!(bytes == &expected, "{what}: level {k} differs");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn every_sample_type_fixture_matches_the_tiff_pyramid_in_both_versions() {
    for rel in [
        "stack",
        "stack_u8",
        "types_stacks/i16",
        "types_stacks/f32",
        "types_stacks/f32_imagej.tif",
        "types_stacks/i16_pages.tif",
        "types_stacks/u8_miniswhite",
    ] {
        // Every level cut into several chunks in each dimension, the last one
        // partial. "stack" (21 x 203 x 301) gets larger chunks: 8 x 16 made
        // 6,500 chunk files a store there, and every file written costs (on
        // Windows most: 570 s of the suite under Wine went to this file).
        let chunks = if rel == "stack" {
            [2, 48, 64]
        } else {
            [2, 8, 16]
        };
        for ngff in [Ngff::V0_5, Ngff::V0_4] {
            for compression in [ChunkCompression::None, ChunkCompression::Zstd(5)] {
                let what = format!("{rel} {} {compression:?}", ngff.name());
                check(
                    fixture_builder(rel).min_size(2),
                    |z| z.chunks(chunks).ngff(ngff).compression(compression),
                    &what,
                );
            }
        }
    }
}

/// Blosc, read back by zarrs' own Blosc codec (C-Blosc): 1-, 2- and 4-byte
/// samples (its type size), both shuffles, both compressors, both versions.
#[test]
fn blosc_stores_match_the_tiff_pyramid_in_both_versions() {
    for (rel, codec) in [
        ("stack", "blosc-lz4-bitshuffle"),
        ("stack_u8", "blosc-lz4:9"),
        ("types_stacks/f32", "blosc-zstd:1"),
        ("types_stacks/i16", "blosc-zstd-bitshuffle:3"),
    ] {
        for ngff in [Ngff::V0_5, Ngff::V0_4] {
            let compression: ChunkCompression = codec.parse().unwrap();
            let what = format!("{rel} {} {codec}", ngff.name());
            check(
                fixture_builder(rel).min_size(2),
                |z| z.chunks([2, 8, 16]).ngff(ngff).compression(compression),
                &what,
            );
        }
    }
}

#[test]
fn odd_and_tiny_shapes_match_the_tiff_pyramid() {
    let dir = temp_dir("zarr-shapes");
    let cases: Vec<(&str, PathBuf)> = vec![
        // Odd depth and sizes, not multiples of the chunk in any dimension.
        (
            "u16 7x37x29",
            make_stack(&dir.join("a"), 7, 37, 29, |z, i| (z * 1000 + i * 7) as u16),
        ),
        (
            "u8 1 slice",
            make_stack(&dir.join("b"), 1, 33, 17, |_, i| (i * 13) as u8),
        ),
        (
            "i16 2 slices",
            make_stack(&dir.join("c"), 2, 19, 40, |z, i| {
                (i as i16 - 300) * (z as i16 * 2 - 1)
            }),
        ),
        (
            "f32 NaN 5 slices",
            make_stack(&dir.join("d"), 5, 21, 23, |z, i| match i % 11 {
                0 => f32::NAN,
                1 => f32::INFINITY,
                _ => z as f32 * 0.25 - i as f32 * 1.5e-3,
            }),
        ),
        (
            "u16 33 slices",
            make_stack(&dir.join("e"), 33, 64, 48, |z, i| (z * 31 + i) as u16),
        ),
    ];
    for (what, stack) in cases {
        let builder = PyramidBuilder::from_dir(&stack).unwrap().min_size(4);
        check(builder.clone(), |z| z.chunks([2, 8, 16]), what);
        check(
            builder.clone(),
            |z| z.chunks([3, 5, 7]).ngff(Ngff::V0_4),
            &format!("{what} v2"),
        );
        check(
            builder,
            |z| z.chunks([2, 8, 16]).shard(Some([4, 16, 32])),
            &format!("{what} sharded"),
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_200_page_imagej_file_and_the_default_chunks() {
    let builder = fixture_builder("types/imagej_u16_200pages.tif").min_size(2);
    check(builder.clone(), |z| z, "imagej 200 pages, default chunks");
    check(
        builder,
        |z| z.chunks([16, 4, 4]).shard(Some([32, 8, 8])),
        "imagej 200 pages sharded",
    );
}

/// The root attributes, parsed by ome_zarr_metadata, validate and carry the
/// scale and translation of every level; every array names its dimensions.
#[test]
fn metadata_round_trips_through_ome_zarr_metadata() {
    let dir = temp_dir("zarr-metadata");
    let stack = make_stack(&dir.join("in"), 9, 40, 30, |z, i| (z + i) as u8);
    let builder = PyramidBuilder::from_dir(&stack).unwrap().min_size(4);
    let s0 = [2.0, 0.5, 0.25];
    for ngff in [Ngff::V0_5, Ngff::V0_4] {
        let store = dir.join(format!("v{}.ome.zarr", ngff.name()));
        let plan = ZarrBuilder::new(builder.clone(), &store)
            .ngff(ngff)
            .voxel_size(s0)
            .unit("nanometer")
            .plan()
            .unwrap();
        plan.run(&mut |_, _| {}, &Default::default()).unwrap();
        let levels = plan.levels().len();
        assert_eq!(levels, 5);
        let read = |name: &str| -> serde_json::Value {
            serde_json::from_slice(&std::fs::read(store.join(name)).unwrap()).unwrap()
        };
        let (multiscales, ctstack) = match ngff {
            Ngff::V0_5 => {
                let root = read("zarr.json");
                let attrs: ome_zarr_metadata::v0_5::OmeZarrGroupAttributes =
                    serde_json::from_value(root["attributes"].clone()).unwrap();
                attrs.validate().unwrap();
                assert_eq!(attrs.ome.version.to_string(), "0.5");
                let m = attrs.ome.multiscales.unwrap();
                let m = serde_json::to_value(&m[0]).unwrap();
                for k in 0..levels {
                    let array = read(&format!("{k}/zarr.json"));
                    assert_eq!(array["dimension_names"], serde_json::json!(["z", "y", "x"]));
                }
                (m, root["attributes"]["ctstack"].clone())
            }
            _ => {
                let attrs = read(".zattrs");
                let parsed: ome_zarr_metadata::v0_4::OmeNgffGroupAttributes =
                    serde_json::from_value(attrs.clone()).unwrap();
                parsed.validate().unwrap();
                let m = parsed.multiscales.unwrap();
                assert_eq!(m[0].version.to_string(), "0.4");
                assert_eq!(read(".zgroup")["zarr_format"], 2);
                for k in 0..levels {
                    let array = read(&format!("{k}/.zattrs"));
                    assert_eq!(
                        array["_ARRAY_DIMENSIONS"],
                        serde_json::json!(["z", "y", "x"])
                    );
                    let zarray = read(&format!("{k}/.zarray"));
                    assert_eq!(zarray["dimension_separator"], "/");
                    // The v2 specification's keys only.
                    assert!(zarray.get("node_type").is_none(), "{zarray}");
                    assert!(zarray.get("attributes").is_none(), "{zarray}");
                }
                (
                    serde_json::to_value(&m[0]).unwrap(),
                    attrs["ctstack"].clone(),
                )
            }
        };
        assert_eq!(ctstack["complete"], true);
        assert_eq!(multiscales["type"], "mean");
        assert_eq!(
            multiscales["metadata"]["version"],
            env!("CARGO_PKG_VERSION")
        );
        let axes: Vec<_> = multiscales["axes"].as_array().unwrap().iter().collect();
        assert_eq!(axes.len(), 3);
        for (axis, name) in axes.iter().zip(["z", "y", "x"]) {
            assert_eq!(axis["name"], name);
            assert_eq!(axis["type"], "space");
            assert_eq!(axis["unit"], "nanometer");
        }
        let datasets = multiscales["datasets"].as_array().unwrap();
        assert_eq!(datasets.len(), levels);
        for (k, d) in datasets.iter().enumerate() {
            assert_eq!(d["path"], k.to_string());
            let t = d["coordinateTransformations"].as_array().unwrap();
            let f = f64::from(1u32 << k);
            let scale: Vec<f64> = serde_json::from_value(t[0]["scale"].clone()).unwrap();
            let translation: Vec<f64> =
                serde_json::from_value(t[1]["translation"].clone()).unwrap();
            for a in 0..3 {
                // 9 slices: level 4 has one plane, averaging the whole stack.
                let f = if a == 0 && k == 4 { 9.0 } else { f };
                assert_eq!(scale[a], s0[a] * f, "{ngff:?} level {k} scale {scale:?}");
                let want = s0[a] * (f - 1.0) / 2.0;
                assert_eq!(
                    translation[a], want,
                    "level {k} translation {translation:?}"
                );
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Runs `builder` into `store`; the error if it fails.
fn run_store(builder: &PyramidBuilder, store: &Path) -> Result<ZarrSummary, ctstack::Error> {
    ZarrBuilder::new(builder.clone(), store)
        .plan()?
        .run(&mut |_, _| {}, &Default::default())
}

/// A refusal names no flag that would make ctstack delete something.
fn assert_no_destructive_hint(e: &ctstack::Error) {
    let text = e.to_string();
    assert!(
        !text.contains("force"),
        "the refusal invites a destructive flag: {text}"
    );
}

/// Issue 26 item 0: a folder that is not a ctstack store is never replaced,
/// (no option of ctstack's replaces one); nothing in it is touched, and the
/// message does not suggest a flag.
#[test]
fn a_folder_holding_only_a_killed_runs_temporary_file_is_claimed() {
    // A run killed before its first rename leaves `.zarr.json.PID.SEQ.ctstack-tmp`
    // and nothing else; the rerun must build the store, not refuse the folder
    // (found by python/tests/test_zarr.py's kill test).
    let dir = temp_dir("zarr-killed-first");
    let stack = make_stack(&dir.join("in"), 3, 20, 20, |z, i| (z + i) as u16);
    let builder = PyramidBuilder::from_dir(&stack).unwrap().min_size(4);
    let store = dir.join("s.ome.zarr");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(store.join(".zarr.json.4242.0.ctstack-tmp"), b"{\"zarr_for").unwrap();
    run_store(&builder, &store).unwrap();
    assert!(store.join("zarr.json").is_file());
    // A user's file with a temporary-looking name that is not ctstack's is not.
    let other = dir.join("t.ome.zarr");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join(".notes.ctstack-tmp"), b"mine").unwrap();
    let e = run_store(&builder, &other).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::State, "{e}");
    assert_eq!(
        std::fs::read(other.join(".notes.ctstack-tmp")).unwrap(),
        b"mine"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_folder_that_is_not_a_ctstack_store_is_never_replaced() {
    let dir = temp_dir("zarr-foreign");
    let stack = make_stack(&dir.join("in"), 3, 20, 20, |z, i| (z + i) as u16);
    let builder = PyramidBuilder::from_dir(&stack).unwrap().min_size(4);
    let store = dir.join("s.ome.zarr");
    std::fs::create_dir_all(store.join("0")).unwrap();
    std::fs::write(
        store.join("zarr.json"),
        br#"{"zarr_format":3,"node_type":"group"}"#,
    )
    .unwrap();
    std::fs::write(store.join("0/precious"), b"someone's data").unwrap();
    let before = tree_files(&store);
    for attempt in 0..2 {
        let e = run_store(&builder, &store).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::State, "{e}");
        assert_eq!(e.path(), Some(store.as_path()));
        assert!(e.to_string().contains("not a ctstack"), "{e}");
        assert_no_destructive_hint(&e);
        assert_eq!(tree_files(&store), before, "attempt {attempt}");
    }
    // A plain file is not replaced either.
    let file = dir.join("file.ome.zarr");
    std::fs::write(&file, b"x").unwrap();
    for _attempt in 0..2 {
        let e = run_store(&builder, &file).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::State, "{e}");
        assert_no_destructive_hint(&e);
        assert_eq!(std::fs::read(&file).unwrap(), b"x");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Issue 26 item 0, the data-loss report: `ctstack zarr project/scanA --out
/// project --force` (project holding the scan and a user's analysis.csv),
/// `--out INPUT --force`, a store inside the input, a store reached through
/// `..` or a symbolic link, and a store holding an input file of a list: all
/// refused before anything is written, nothing deleted.
#[test]
fn a_store_path_at_in_or_around_the_input_is_refused() {
    let dir = temp_dir("zarr-input-guard");
    let project = dir.join("project");
    let scan = make_stack(&project.join("scanA"), 3, 20, 20, |z, i| (z * 7 + i) as u16);
    std::fs::write(project.join("analysis.csv"), b"a,b\n1,2\n").unwrap();
    let before = tree_files(&project);
    let builder = PyramidBuilder::from_dir(&scan).unwrap().min_size(4);
    // The symbolic-link cases are Unix only: creating one on Windows needs a privilege
    // (or developer mode) that a user's account and the CI's Wine do not have.
    #[cfg_attr(not(unix), allow(unused_mut))]
    let mut cases = vec![
        (project.clone(), "contains the input folder"),
        (scan.clone(), "is the input folder"),
        (scan.join("out.ome.zarr"), "is inside the input folder"),
        (project.join("scanA/../scanA"), "is the input folder"),
        (
            project.join("x/../scanA/new/deeper.zarr"),
            "is inside the input folder",
        ),
    ];
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&scan, dir.join("link")).unwrap();
        cases.push((dir.join("link"), "is the input folder"));
        cases.push((dir.join("link/inner.zarr"), "is inside the input folder"));
    }
    for (store, how) in &cases {
        for _attempt in 0..2 {
            let e = run_store(&builder, store).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Usage, "{}: {e}", store.display());
            assert!(e.to_string().contains(how), "{}: {e}", store.display());
            assert_no_destructive_hint(&e);
            assert_eq!(tree_files(&project), before, "{}", store.display());
        }
    }
    // An explicit list of files: a store that is, or holds, one of them.
    let list: Vec<PathBuf> = builder
        .plan()
        .unwrap()
        .inputs()
        .iter()
        .map(|i| i.path.clone())
        .collect();
    let from_list = PyramidBuilder::from_files(list.clone(), dir.join("unused")).min_size(4);
    for store in [scan.clone(), list[0].clone(), project.clone()] {
        let e = run_store(&from_list, &store).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage, "{}: {e}", store.display());
        assert_no_destructive_hint(&e);
    }
    assert_eq!(tree_files(&project), before);
    // Beside the input is fine.
    run_store(&builder, &project.join("scanA.ome.zarr")).unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

/// A ctstack store is replaced by a store of another stack (another layout),
/// but a user's files in it stay, and the summary says so; levels the new
/// stack does not have go, with only ctstack's files.
#[test]
fn a_ctstack_store_is_replaced_and_a_users_files_in_it_stay() {
    let dir = temp_dir("zarr-replace");
    let a = make_stack(&dir.join("a"), 9, 64, 48, |z, i| (z * 3 + i) as u16);
    let b = make_stack(&dir.join("b"), 5, 20, 24, |z, i| (z * 11 + i * 3) as u16);
    let store = dir.join("s.ome.zarr");
    let builder_a = PyramidBuilder::from_dir(&a).unwrap().min_size(4);
    let first = run_store(&builder_a, &store).unwrap();
    assert!(first.levels.len() > 3, "{first:?}");
    std::fs::write(store.join("notes.txt"), b"mine").unwrap();
    std::fs::write(store.join("0/notes.txt"), b"mine too").unwrap();
    // Named like a temporary file, but not one ctstack's writer makes.
    std::fs::write(store.join("0/.notes.ctstack-tmp"), b"mine, oddly named").unwrap();
    let deepest = store.join((first.levels.len() - 1).to_string());
    std::fs::write(deepest.join("keep.me"), b"and this").unwrap();
    let builder_b = PyramidBuilder::from_dir(&b).unwrap().min_size(4);
    for replacing in [true, false] {
        let summary = run_store(&builder_b, &store).unwrap();
        assert!(summary.levels.len() < first.levels.len());
        assert_eq!(std::fs::read(store.join("notes.txt")).unwrap(), b"mine");
        assert_eq!(
            std::fs::read(store.join("0/.notes.ctstack-tmp")).unwrap(),
            b"mine, oddly named"
        );
        assert_eq!(
            std::fs::read(store.join("0/notes.txt")).unwrap(),
            b"mine too"
        );
        assert_eq!(std::fs::read(deepest.join("keep.me")).unwrap(), b"and this");
        if replacing {
            let notes = summary.notes.join("\n");
            for name in ["notes.txt", "keep.me"] {
                assert!(notes.contains(name), "{notes}");
            }
        }
        // The stale level is no array any more: only the user's file is left.
        assert_eq!(
            std::fs::read_dir(&deepest).unwrap().count(),
            1,
            "{:?}",
            tree_files(&deepest)
        );
        let levels = zarr_levels(&store, summary.levels.len());
        assert_eq!(levels[0].1, input_bytes(&builder_b));
    }
    // An unchanged rerun writes nothing.
    let again = run_store(&builder_b, &store).unwrap();
    assert_eq!(again.written, 0, "{again:?}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The summary counts each file once: a fresh store's count equals the files
/// on disk (the root group is written twice, first marked incomplete).
#[test]
fn the_summary_counts_the_files_on_disk() {
    let dir = temp_dir("zarr-count");
    let stack = make_stack(&dir.join("in"), 9, 40, 30, |z, i| (z + i) as u8);
    let builder = PyramidBuilder::from_dir(&stack).unwrap().min_size(4);
    for ngff in [Ngff::V0_5, Ngff::V0_4] {
        let store = dir.join(format!("{}.zarr", ngff.name()));
        let summary = ZarrBuilder::new(builder.clone(), &store)
            .ngff(ngff)
            .chunks([2, 8, 8])
            .plan()
            .unwrap()
            .run(&mut |_, _| {}, &Default::default())
            .unwrap();
        // Every file but the record of the inputs, which is not the image's.
        assert_eq!(summary.written, tree_files(&store).len() - 1, "{ngff:?}");
        assert_eq!(summary.unchanged, 0, "{ngff:?}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Issue 26 item 4: the voxel size is stored as the f64 given, and for the
/// 21-slice fixture every level's z extent lies within the stack's
/// [-0.5, 20.5] and every voxel's centre is the mean of its sources' centres
/// (the sources as the TIFF pyramid's `inputs_of` says), in both versions.
#[test]
fn every_voxel_sits_at_the_centre_of_its_sources() {
    let dir = temp_dir("zarr-centres");
    let builder = fixture_builder("stack").min_size(2);
    let s0 = [0.7, 0.3, 0.1];
    for ngff in [Ngff::V0_5, Ngff::V0_4] {
        let store = dir.join(format!("{}.zarr", ngff.name()));
        let plan = ZarrBuilder::new(builder.clone(), &store)
            .ngff(ngff)
            .voxel_size(s0)
            .plan()
            .unwrap();
        plan.run(&mut |_, _| {}, &Default::default()).unwrap();
        let n = plan.levels()[0].count;
        assert_eq!(n, 21);
        let (text, multiscales) = match ngff {
            Ngff::V0_5 => {
                let text = std::fs::read_to_string(store.join("zarr.json")).unwrap();
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                (text, v["attributes"]["ome"]["multiscales"][0].clone())
            }
            _ => {
                let text = std::fs::read_to_string(store.join(".zattrs")).unwrap();
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                (text, v["multiscales"][0].clone())
            }
        };
        // Exactly as given, not through f32 (0.699999988079071, ...).
        assert!(!text.contains("0.699999"), "{text}");
        let datasets = multiscales["datasets"].as_array().unwrap();
        assert_eq!(datasets.len(), plan.levels().len());
        assert!(
            plan.levels().len() > 5,
            "the test needs levels with n < 2^k"
        );
        for (k, d) in datasets.iter().enumerate() {
            let t = d["coordinateTransformations"].as_array().unwrap();
            let scale: Vec<f64> = serde_json::from_value(t[0]["scale"].clone()).unwrap();
            let shift: Vec<f64> = serde_json::from_value(t[1]["translation"].clone()).unwrap();
            if k == 0 {
                assert_eq!(scale, s0.to_vec());
                assert_eq!(shift, vec![0.0; 3]);
            }
            let (sz, tz) = (scale[0] / s0[0], shift[0] / s0[0]);
            let planes = plan.levels()[k].count;
            // The extent, in level-0 voxels.
            let low = tz - sz / 2.0;
            let high = tz + (planes as f64 - 1.0) * sz + sz / 2.0;
            assert!(
                low >= -0.5 - 1e-9 && high <= 20.5 + 1e-9,
                "level {k}: [{low}, {high}]"
            );
            for j in 0..planes {
                let sources = ctstack::inputs_of(k, j, n);
                let mean = sources.clone().map(|i| i as f64).sum::<f64>() / sources.len() as f64;
                let centre = tz + j as f64 * sz;
                assert!(
                    (centre - mean).abs() < 1e-9,
                    "level {k} plane {j}: {centre} vs {mean}"
                );
                // A kept plane averages 2^k slices, or is the level's only plane.
                assert!(
                    sources.len() == 1 << k || planes == 1,
                    "level {k} plane {j}"
                );
            }
            // y and x: level-k pixel i averages pixels i*2^k .. (i+1)*2^k.
            for a in 1..3 {
                let f = f64::from(1u32 << k);
                assert!((scale[a] / s0[a] - f).abs() < 1e-9);
                assert!((shift[a] / s0[a] - (f - 1.0) / 2.0).abs() < 1e-9);
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Issue 26 item 4: an unknown physical size (ResolutionUnit NONE, no voxel
/// size given) is written without a unit, as the NGFF specification allows,
/// and the plan warns; a given voxel size gets the unit.
#[test]
fn an_unknown_voxel_size_has_no_unit_and_a_warning() {
    use tiff::encoder::{Rational, TiffEncoder, colortype};
    use tiff::tags::ResolutionUnit;
    let dir = temp_dir("zarr-unknown-unit");
    let stack = dir.join("in");
    std::fs::create_dir_all(&stack).unwrap();
    for z in 0..3 {
        let file = std::fs::File::create(stack.join(format!("s{z}.tif"))).unwrap();
        let mut tiff = TiffEncoder::new(file).unwrap();
        let mut image = tiff.new_image::<colortype::Gray16>(8, 6).unwrap();
        image.resolution(ResolutionUnit::None, Rational { n: 72, d: 1 });
        image.write_data(&[z as u16; 48]).unwrap();
    }
    let builder = PyramidBuilder::from_dir(&stack).unwrap().min_size(2);
    for (given, unit) in [(None, None), (Some([2.0, 1.0, 1.0]), Some("micrometer"))] {
        let store = dir.join(format!("{}.zarr", unit.unwrap_or("none")));
        let mut z = ZarrBuilder::new(builder.clone(), &store);
        if let Some(size) = given {
            z = z.voxel_size(size);
        }
        let plan = z.plan().unwrap();
        assert_eq!(plan.unit().as_deref(), unit);
        let warned = plan
            .warnings()
            .iter()
            .any(|w| w.contains("voxel size is unknown"));
        assert_eq!(warned, given.is_none(), "{:?}", plan.warnings());
        plan.run(&mut |_, _| {}, &Default::default()).unwrap();
        let root: serde_json::Value =
            serde_json::from_slice(&std::fs::read(store.join("zarr.json")).unwrap()).unwrap();
        let m = &root["attributes"]["ome"]["multiscales"][0];
        for axis in m["axes"].as_array().unwrap() {
            assert_eq!(axis.get("unit").and_then(|u| u.as_str()), unit, "{axis}");
        }
        let attrs: ome_zarr_metadata::v0_5::OmeZarrGroupAttributes =
            serde_json::from_value(root["attributes"].clone()).unwrap();
        attrs.validate().unwrap();
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Issue 26 item 4: a MinIsWhite stack is stored inverted (what napari and
/// Fiji show then matches TIFF viewers), and the ctstack attribute says so.
#[test]
fn a_min_is_white_stack_is_stored_inverted_and_says_so() {
    let dir = temp_dir("zarr-miniswhite");
    let builder = fixture_builder("types_stacks/u8_miniswhite").min_size(2);
    let store = dir.join("s.zarr");
    let plan = ZarrBuilder::new(builder.clone(), &store).plan().unwrap();
    plan.run(&mut |_, _| {}, &Default::default()).unwrap();
    let got = &zarr_levels(&store, 1)[0].1;
    let raw = input_bytes(&builder);
    assert_eq!(got.len(), raw.len());
    assert!(got.iter().zip(&raw).all(|(g, r)| *g == 255 - *r));
    let root: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("zarr.json")).unwrap()).unwrap();
    let values = root["attributes"]["ctstack"]["values"].as_str().unwrap();
    assert!(values.contains("255 - v"), "{values}");
    std::fs::remove_dir_all(&dir).ok();
}

/// `ctstack zarr` killed mid-run (SIGKILL; TerminateProcess on Windows) leaves a
/// store marked incomplete; a rerun finishes it to the very bytes of a clean
/// run, writing only what was missing.
#[test]
fn killed_mid_run_then_rerun_gives_the_clean_runs_bytes() {
    let dir = temp_dir("zarr-kill");
    // 32 slices: the kill comes once level 1's third chunk in z exists (from
    // level 0's planes 8 to 11), about a third of the way; 96 made three times
    // the chunk files (2,700 a store), each slow to write under Wine.
    let stack = make_stack(&dir.join("in"), 32, 512, 384, |z, i| {
        ((z * 7919 + i * 31) % 65521) as u16
    });
    let exe = env!("CARGO_BIN_EXE_ctstack");
    let args = |out: &Path| {
        let mut c = std::process::Command::new(exe);
        c.arg("zarr")
            .arg(&stack)
            .arg("--out")
            .arg(out)
            .args(["--quiet", "--min-size", "16"]);
        c.args(["--chunks", "2,64,64", "--compression", "zstd:19"]);
        c
    };
    // The same store name in both: the name is in the multiscales metadata.
    let clean = dir.join("clean/s.ome.zarr");
    assert!(args(&clean).status().unwrap().success());
    let killed = dir.join("killed/s.ome.zarr");
    let mut child = args(&killed).spawn().unwrap();
    // Wait until some level-1 chunks exist, then kill.
    let started = std::time::Instant::now();
    while !killed.join("1/c/2").exists() && started.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let root: serde_json::Value =
        serde_json::from_slice(&std::fs::read(killed.join("zarr.json")).unwrap()).unwrap();
    assert!(
        root["attributes"].get("ome").is_none(),
        "a killed store claims completeness"
    );
    assert_eq!(root["attributes"]["ctstack"]["complete"], false);
    let before = tree_files(&killed).len();
    // A chunk finished before the kill: the rerun must leave that very file alone.
    let kept = killed.join("1/c/0/0/0");
    let identity = |p: &Path| {
        let m = std::fs::metadata(p).unwrap();
        // Windows has no inode in Metadata (its file index needs a handle): the
        // modification time alone says whether the file was written again.
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&m);
        #[cfg(not(unix))]
        let inode = 0;
        (inode, m.modified().unwrap())
    };
    let kept_before = identity(&kept);
    assert!(
        before < tree_files(&clean).len(),
        "killed after the end: make the stack larger"
    );
    // Its own store: no --force needed.
    let out = args(&killed).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        identity(&kept),
        kept_before,
        "a chunk already right was rewritten"
    );
    let (a, b) = (tree_files(&clean), tree_files(&killed));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, bytes) in &a {
        // The record lists the chunk files' times: its own to each store.
        if name != "ctstack-inputs.json" {
            assert!(bytes == &b[name], "{name} differs");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Without --voxel-size, the first slice's resolution tags give the voxel size
/// (z taken equal to x), converted to the unit; a given size wins.
#[test]
fn the_voxel_size_comes_from_the_resolution_tags() {
    use tiff::encoder::{Rational, TiffEncoder, colortype};
    use tiff::tags::ResolutionUnit;
    let dir = temp_dir("zarr-resolution");
    let stack = dir.join("in");
    std::fs::create_dir_all(&stack).unwrap();
    for z in 0..3 {
        let file = std::fs::File::create(stack.join(format!("s{z}.tif"))).unwrap();
        let mut tiff = TiffEncoder::new(file).unwrap();
        let mut image = tiff.new_image::<colortype::Gray16>(8, 6).unwrap();
        // 2000 pixels per centimetre: 5 micrometres.
        image.resolution(ResolutionUnit::Centimeter, Rational { n: 2000, d: 1 });
        image.write_data(&[z as u16; 48]).unwrap();
    }
    let builder = PyramidBuilder::from_dir(&stack).unwrap().min_size(2);
    let plan = ZarrBuilder::new(builder.clone(), dir.join("a"))
        .plan()
        .unwrap();
    assert_eq!(plan.voxel_size(), [5.0, 5.0, 5.0]);
    assert!(
        plan.notes()[0].contains("z taken equal to x"),
        "{:?}",
        plan.notes()
    );
    let mm = ZarrBuilder::new(builder.clone(), dir.join("b"))
        .unit("millimeter")
        .plan()
        .unwrap();
    assert!(
        (mm.voxel_size()[2] - 0.005).abs() < 1e-12,
        "{:?}",
        mm.voxel_size()
    );
    let given = ZarrBuilder::new(builder.clone(), dir.join("c"))
        .voxel_size([1.0, 2.0, 3.0])
        .plan()
        .unwrap();
    assert_eq!(given.voxel_size(), [1.0, 2.0, 3.0]);
    assert!(given.notes().is_empty());
    // Slices written without tags: 1, 1, 1.
    let plain = make_stack(&dir.join("plain"), 2, 8, 6, |_, i| i as u8);
    let plan = ZarrBuilder::new(PyramidBuilder::from_dir(&plain).unwrap(), dir.join("d"))
        .plan()
        .unwrap();
    assert_eq!(plan.voxel_size(), [1.0; 3]);
    let e = ZarrBuilder::new(builder, dir.join("e"))
        .unit("parsec-ish")
        .plan()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Usage, "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

/// One completed system call of an strace log: the call's name and its
/// arguments (with `-y`, file descriptors carry their path as `N</path>`).
#[cfg(target_os = "linux")]
fn strace_calls(log: &str) -> Vec<(String, String)> {
    let mut pending: std::collections::HashMap<String, (String, String)> = Default::default();
    let mut calls = Vec::new();
    for line in log.lines() {
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        if let Some(resumed) = rest.strip_prefix("<... ") {
            // "<... fdatasync resumed>) = 0": the call completes now.
            if let Some((name, args)) = pending.remove(pid)
                && !resumed.contains("= -1")
            {
                calls.push((name, args));
            }
            continue;
        }
        let Some((name, args)) = rest.split_once('(') else {
            continue;
        };
        if args.ends_with("<unfinished ...>") {
            pending.insert(pid.to_string(), (name.to_string(), args.to_string()));
        } else if !args.contains("= -1") {
            calls.push((name.to_string(), args.to_string()));
        }
    }
    calls
}

/// Issue 26 item 5, in the order strace sees the calls: every chunk of level
/// k is synced (fdatasync), and so are the folders holding them and the level's
/// folder, before level k's metadata is renamed into place; each metadata file
/// is synced before its rename; the complete root group is the last rename.
/// Needs strace (fails without it, unless CTSTACK_ALLOW_SKIPS=1).
#[cfg(target_os = "linux")]
#[test]
fn the_store_is_synced_before_its_metadata_vouches_for_it() {
    let have = std::process::Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        common::missing_tool("strace", "apt-get install strace (Debian)");
        return;
    }
    let dir = temp_dir("zarr-strace");
    let stack = make_stack(&dir.join("in"), 9, 40, 30, |z, i| (z * 5 + i) as u16);
    for (ngff, meta) in [
        ("0.5", &["zarr.json"][..]),
        ("0.4", &[".zattrs", ".zarray"][..]),
    ] {
        let store = dir.join(format!("s{ngff}.ome.zarr"));
        let log = dir.join(format!("strace{ngff}.log"));
        let status = std::process::Command::new("strace")
            .args([
                "-f",
                "-y",
                "-qq",
                "-e",
                "trace=fdatasync,fsync,rename,renameat,renameat2",
            ])
            .arg("-o")
            .arg(&log)
            .arg(env!("CARGO_BIN_EXE_ctstack"))
            .arg("zarr")
            .arg(&stack)
            .arg("--out")
            .arg(&store)
            .args([
                "--quiet",
                "--min-size",
                "4",
                "--chunks",
                "2,8,8",
                "--ngff",
                ngff,
            ])
            .args(["--voxel-size", "1,1,1"])
            .status()
            .unwrap();
        assert!(status.success());
        let calls = strace_calls(&std::fs::read_to_string(&log).unwrap());
        let path_of = |args: &str| -> String {
            // "7</abs/path>" -> "/abs/path"
            let start = args.find('<').map_or(0, |i| i + 1);
            let end = args[start..].find('>').map_or(args.len(), |i| start + i);
            args[start..end].to_string()
        };
        let target_of = |args: &str| -> String {
            let quoted: Vec<&str> = args.split('"').collect();
            quoted[quoted.len().saturating_sub(2)].to_string()
        };
        let mut synced = std::collections::BTreeSet::new();
        let mut renamed = Vec::new();
        let levels: Vec<PathBuf> = (0..)
            .map(|k| store.join(k.to_string()))
            .take_while(|p| p.is_dir())
            .collect();
        assert!(levels.len() >= 3);
        for (name, args) in &calls {
            if name == "fdatasync" || name == "fsync" {
                synced.insert(path_of(args));
                continue;
            }
            let target = PathBuf::from(target_of(args));
            let source = args.split('"').nth(1).unwrap_or_default().to_string();
            if target.starts_with(&store) {
                let is_meta = meta
                    .iter()
                    .chain(["zarr.json", ".zgroup"].iter())
                    .any(|m| target.file_name().is_some_and(|n| n == *m));
                if is_meta {
                    // The metadata file itself: synced under its temporary name.
                    assert!(
                        synced.contains(&source),
                        "{} renamed unsynced",
                        target.display()
                    );
                }
                let level = levels.iter().find(|l| target.parent() == Some(l.as_path()));
                if let Some(level) = level
                    && meta
                        .iter()
                        .any(|m| target.file_name().is_some_and(|n| n == *m))
                {
                    for chunk in tree_files(level)
                        .keys()
                        .filter(|k| !meta.contains(&k.as_str()))
                    {
                        let path = level.join(chunk);
                        let shown = path.display().to_string();
                        assert!(
                            synced.contains(&shown),
                            "{ngff}: {shown} not synced before {}",
                            target.display()
                        );
                        let parent = path.parent().unwrap().display().to_string();
                        assert!(
                            synced.contains(&parent),
                            "{ngff}: folder {parent} not synced before {}",
                            target.display()
                        );
                    }
                }
                renamed.push(target);
            }
        }
        // Every file of the store was renamed into place (the log is whole).
        assert!(
            renamed.len() >= tree_files(&store).len(),
            "{ngff}: {} renames",
            renamed.len()
        );
        // The last renames are the root group's metadata with the OME
        // attributes, then the record of the inputs that vouches for it all.
        let root = store.join(if ngff == "0.5" {
            "zarr.json"
        } else {
            ".zattrs"
        });
        assert_eq!(
            renamed.last(),
            Some(&store.join("ctstack-inputs.json")),
            "{ngff}"
        );
        assert_eq!(renamed.iter().rev().nth(1), Some(&root), "{ngff}");
        for level in &levels {
            for m in meta {
                let at = renamed.iter().position(|r| r == &level.join(m));
                assert!(
                    at.is_some_and(|i| i + 1 < renamed.len()),
                    "{ngff}: {} not renamed before the root",
                    level.display()
                );
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Slices that carry no physical size (NRecon's BMPs; TIFFs without
/// resolution tags) take the voxel size from the scanner's file beside them,
/// and the plan says which file; a given size wins; a malformed log is a
/// warning and leaves the size unknown.
#[test]
fn the_voxel_size_comes_from_the_scanners_file_beside_the_slices() {
    let dir = temp_dir("zarr-sidecar");
    // (stack, scanner's files, the size they give, what the plan says)
    type Case<'a> = (&'a str, Option<&'a str>, Option<[f64; 3]>, &'a str);
    let cases: [Case; 6] = [
        ("stack_bmp", Some("bruker"), Some([12.5; 3]), "scan_rec.log"),
        (
            "stack_bmp",
            Some("bruker_step2"),
            Some([25.0, 12.5, 12.5]),
            "Section to Section Step",
        ),
        (
            "stack",
            Some("nikon"),
            Some([25.0, 20.0, 20.0]),
            "scan.xtekct",
        ),
        ("stack", Some("phoenix"), Some([10.5; 3]), "scan.pcr"),
        (
            "stack_bmp",
            Some("bruker_acq"),
            None,
            "scan.log is a Bruker SkyScan acquisition log",
        ),
        (
            "stack_bmp",
            Some("bruker_bad"),
            None,
            "Pixel Size (um) = \"n/a\"",
        ),
    ];
    for (i, (stack, sidecar, size, said)) in cases.into_iter().enumerate() {
        let scan = common::stack_with_sidecar(stack, sidecar, &dir.join(format!("scan{i}")));
        let builder = PyramidBuilder::from_dir(&scan).unwrap().min_size(8);
        let plan = ZarrBuilder::new(builder.clone(), dir.join(format!("s{i}.zarr")))
            .plan()
            .unwrap();
        let said_by: Vec<String> = plan
            .notes()
            .into_iter()
            .chain(plan.warnings().to_vec())
            .collect();
        assert!(
            said_by.iter().any(|n| n.contains(said)),
            "{sidecar:?}: {said_by:?}"
        );
        match size {
            Some(size) => {
                let got = plan.voxel_size();
                assert!(
                    got.iter().zip(size).all(|(g, s)| (g - s).abs() < 1e-9),
                    "{sidecar:?}: {got:?}"
                );
                assert_eq!(plan.unit().as_deref(), Some("micrometer"));
                // In millimetres, converted.
                let mm = ZarrBuilder::new(builder.clone(), dir.join(format!("mm{i}.zarr")))
                    .unit("millimeter")
                    .plan()
                    .unwrap();
                assert!((mm.voxel_size()[2] - size[2] / 1000.0).abs() < 1e-12);
            }
            None => {
                assert_eq!(plan.voxel_size(), [1.0; 3]);
                assert_eq!(plan.unit(), None);
            }
        }
        // A given size wins, without a note about the scanner's file.
        let given = ZarrBuilder::new(builder, dir.join(format!("g{i}.zarr")))
            .voxel_size([1.0, 2.0, 3.0])
            .plan()
            .unwrap();
        assert_eq!(given.voxel_size(), [1.0, 2.0, 3.0]);
        assert!(
            given.notes().iter().all(|n| !n.contains("scan")),
            "{:?}",
            given.notes()
        );
    }
    // The store records it.
    let scan = common::stack_with_sidecar("stack_bmp", Some("bruker"), &dir.join("written"));
    let store = dir.join("written.zarr");
    ZarrBuilder::new(PyramidBuilder::from_dir(&scan).unwrap().min_size(8), &store)
        .plan()
        .unwrap()
        .run(&mut |_, _| {}, &Default::default())
        .unwrap();
    let root: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("zarr.json")).unwrap()).unwrap();
    let m = &root["attributes"]["ome"]["multiscales"][0];
    assert_eq!(
        m["datasets"][0]["coordinateTransformations"][0]["scale"],
        serde_json::json!([12.5, 12.5, 12.5])
    );
    assert_eq!(m["axes"][2]["unit"], "micrometer");
    std::fs::remove_dir_all(&dir).ok();
}

/// A rerun of an unchanged, complete store reads no pixel and writes nothing
/// (its record vouches for the inputs, the options and every chunk file); a
/// change of any of them makes the run compare (and fix) as before, and a run
/// that changes a chunk removes the record before it does.
#[test]
fn a_rerun_of_an_unchanged_complete_store_does_nothing() {
    let dir = temp_dir("zarr-rerun-record");
    let stack = make_stack(&dir.join("in"), 9, 40, 30, |z, i| (z * 7 + i) as u16);
    let builder = PyramidBuilder::from_dir(&stack).unwrap().min_size(4);
    let record = |store: &Path| store.join("ctstack-inputs.json");
    for ngff in [Ngff::V0_5, Ngff::V0_4] {
        let store = dir.join(format!("{}.zarr", ngff.name()));
        let zarr = |compression| {
            ZarrBuilder::new(builder.clone(), &store)
                .ngff(ngff)
                .chunks([2, 8, 8])
                .compression(compression)
                .plan()
                .unwrap()
        };
        let run = |compression| {
            zarr(compression)
                .run(&mut |_, _| {}, &Default::default())
                .unwrap()
        };
        let codec = ChunkCompression::default();
        let first = run(codec);
        assert!(record(&store).is_file(), "{ngff:?}");
        // The image's files: all but the record.
        let on_disk = tree_files(&store).len() - 1;
        assert_eq!(first.written, on_disk, "{ngff:?}");
        // Unchanged: no pixel read, nothing written, every file unchanged.
        let again = run(codec);
        assert_eq!(
            (again.input_bytes, again.written, again.unchanged),
            (0, 0, on_disk),
            "{ngff:?}"
        );
        // An input touched (same pixels): read and compared, none of the
        // image's files written (a new record); then unchanged again.
        let recorded = std::fs::read(record(&store)).unwrap();
        let input = stack.join("s0003.tif");
        let file = std::fs::File::options().write(true).open(&input).unwrap();
        file.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(7))
            .unwrap();
        drop(file);
        let touched = run(codec);
        assert!(touched.input_bytes > 0, "{ngff:?}");
        assert_eq!(touched.written, 0, "{ngff:?}");
        assert_ne!(std::fs::read(record(&store)).unwrap(), recorded, "{ngff:?}");
        assert_eq!(run(codec).input_bytes, 0, "{ngff:?}");
        // Other options: the store is rewritten.
        let other = run(ChunkCompression::None);
        assert!(other.input_bytes > 0 && other.written > 1, "{ngff:?}");
        assert_eq!(run(ChunkCompression::None).input_bytes, 0, "{ngff:?}");
        // A chunk deleted: the run puts it back.
        let chunk = tree_files(&store)
            .into_keys()
            .find(|f| f.starts_with("1/") && !f.ends_with("json") && !f.contains(".z"))
            .unwrap();
        std::fs::remove_file(store.join(&chunk)).unwrap();
        let fixed = run(ChunkCompression::None);
        assert!(
            fixed.input_bytes > 0 && fixed.written >= 2,
            "{ngff:?} {chunk}"
        );
        assert!(store.join(&chunk).is_file());
        // A record that is not one is ignored and replaced.
        std::fs::write(record(&store), b"{ not json").unwrap();
        let replaced = run(ChunkCompression::None);
        assert!(replaced.input_bytes > 0, "{ngff:?}");
        assert_eq!(run(ChunkCompression::None).input_bytes, 0, "{ngff:?}");
        // A run that changes chunks removes the record before the first: a
        // cancelled one leaves none.
        let cancel = ctstack::CancelFlag::new();
        let result = zarr(codec).run(
            &mut |done, _| {
                if done > 0 {
                    cancel.cancel();
                }
            },
            &cancel,
        );
        assert_eq!(result.unwrap_err().kind(), ErrorKind::Cancelled, "{ngff:?}");
        assert!(!record(&store).exists(), "{ngff:?}");
        let finished = run(codec);
        assert!(finished.input_bytes > 0 && record(&store).is_file());
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The codecs' spelling: what `--compression`, `ZarrOptions.compression` and
/// `ChunkCompression`'s `FromStr` read, written back by its `Display`.
#[test]
fn compression_spellings_round_trip_and_bad_ones_are_usage_errors() {
    use ctstack::{BloscCompressor, BloscShuffle};
    let cases = [
        ("none", "none", ChunkCompression::None),
        ("zstd", "zstd:3", ChunkCompression::Zstd(3)),
        ("zstd:-7", "zstd:-7", ChunkCompression::Zstd(-7)),
        (
            "blosc-lz4",
            "blosc-lz4:5",
            ChunkCompression::Blosc {
                compressor: BloscCompressor::Lz4,
                shuffle: BloscShuffle::Byte,
                level: 5,
            },
        ),
        (
            "blosc-zstd-bitshuffle:9",
            "blosc-zstd-bitshuffle:9",
            ChunkCompression::Blosc {
                compressor: BloscCompressor::Zstd,
                shuffle: BloscShuffle::Bit,
                level: 9,
            },
        ),
    ];
    for (text, shown, want) in cases {
        let got: ChunkCompression = text.parse().unwrap();
        assert_eq!(got, want, "{text}");
        assert_eq!(got.to_string(), shown, "{text}");
        assert_eq!(shown.parse::<ChunkCompression>().unwrap(), want, "{shown}");
    }
    for bad in [
        "",
        "none:1",
        "zstd:23",
        "blosc",
        "blosc-lz4:10",
        "blosc-lz4:-1",
        "blosc-lz4-shuffle",
        "blosc-snappy",
        "lz4",
    ] {
        let err = bad.parse::<ChunkCompression>().unwrap_err();
        assert_eq!(err.kind(), ctstack::ErrorKind::Usage, "{bad}: {err}");
        assert!(
            err.to_string().contains("blosc-lz4-bitshuffle"),
            "{bad}: {err}"
        );
    }
}

/// Runs `work` on a thread of its own with a progress callback that, at its
/// first call (the lock held, the first unit done), says so and waits until
/// `release` is sent; returns once that first call came, with the thread.
fn paused_at_first_progress<T: Send + 'static>(
    work: impl FnOnce(&mut dyn FnMut(u64, u64)) -> T + Send + 'static,
) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<T>) {
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let mut first = true;
        work(&mut |_, _| {
            if std::mem::take(&mut first) {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
            }
        })
    });
    started_rx
        .recv()
        .expect("the first writer never reported progress");
    (release_tx, thread)
}

/// Review s27 2b: a second writer on a store a live run is writing is refused
/// with an error naming the store and the holder (pid, host), and writes
/// nothing; the first run then ends with its own, unmixed store.
#[test]
fn a_second_writer_on_a_store_being_written_is_refused_naming_the_holder() {
    let dir = temp_dir("zarr-held");
    let stack = make_stack(&dir.join("in"), 8, 40, 30, |z, i| (z * 7 + i) as u16);
    let builder = PyramidBuilder::from_dir(&stack).unwrap().min_size(4);
    let store = dir.join("s.ome.zarr");
    let plan = |compression| {
        ZarrBuilder::new(builder.clone(), &store)
            .chunks([2, 8, 8])
            .compression(compression)
            .plan()
            .unwrap()
    };
    let first = plan(ChunkCompression::None);
    let (release, thread) =
        paused_at_first_progress(move |progress| first.run(progress, &Default::default()));
    let before = tree_files(&store);
    let second = plan(ChunkCompression::default()).run(&mut |_, _| {}, &Default::default());
    let err = second.expect_err("a second writer ran beside the first");
    assert_eq!(err.kind(), ErrorKind::State, "{err}");
    let text = err.to_string();
    assert!(text.starts_with(&store.display().to_string()), "{text}");
    let pid = format!("pid {} on host ", std::process::id());
    assert!(
        text.contains(&pid) && text.contains(ctstack::LOCK_FILE),
        "{text}"
    );
    assert_eq!(
        tree_files(&store),
        before,
        "the refused writer changed the store"
    );
    release.send(()).unwrap();
    thread.join().unwrap().unwrap();
    // The first run's store, whole: the same bytes as a run of its own.
    let alone = dir.join("alone.ome.zarr");
    ZarrBuilder::new(builder.clone(), &alone)
        .chunks([2, 8, 8])
        .compression(ChunkCompression::None)
        .plan()
        .unwrap()
        .run(&mut |_, _| {}, &Default::default())
        .unwrap();
    let (a, b) = (tree_files(&alone), tree_files(&store));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, bytes) in &a {
        if name != "ctstack-inputs.json" && name != "zarr.json" {
            assert!(bytes == &b[name], "{name} differs");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Review s27 2b, distributed: the slabs of one build run at once (the lock
/// shared) while a prepare or finish is refused; once another build (other
/// options) has prepared the store, the first build's slabs and finish are
/// refused, so the two never mix.
#[test]
fn two_distributed_builds_never_interleave_and_one_builds_slabs_run_at_once() {
    let dir = temp_dir("zarr-builds");
    let stack = make_stack(&dir.join("in"), 16, 40, 30, |z, i| (z * 7 + i) as u16);
    let builder = PyramidBuilder::from_dir(&stack).unwrap().min_size(16);
    let store = dir.join("s.ome.zarr");
    let plan = |compression| {
        ZarrBuilder::new(builder.clone(), &store)
            .chunks([1, 8, 8])
            .compression(compression)
            .plan()
            .unwrap()
    };
    let a = plan(ChunkCompression::None);
    let align = a.slab_alignment();
    let count = a.levels()[0].count;
    assert!(count >= 2 * align, "one slab only: make the stack deeper");
    a.prepare().unwrap();
    let slab = a.clone();
    let (release, thread) = paused_at_first_progress(move |progress| {
        slab.run_slab(0..align, progress, &Default::default())
    });
    // Another slab of the same build runs beside it.
    a.run_slab(align..count, &mut |_, _| {}, &Default::default())
        .unwrap();
    // A prepare or finish (of any build) is refused while a slab runs.
    let b = plan(ChunkCompression::default());
    let pid = format!("pid {} on host ", std::process::id());
    for err in [b.prepare().unwrap_err(), a.finish().unwrap_err()] {
        assert_eq!(err.kind(), ErrorKind::State, "{err}");
        assert!(err.to_string().contains(&pid), "{err}");
    }
    release.send(()).unwrap();
    thread.join().unwrap().unwrap();
    // Build b prepares between a's slabs: a's slabs and finish are refused.
    b.prepare().unwrap();
    for err in [
        a.run_slab(0..align, &mut |_, _| {}, &Default::default())
            .unwrap_err(),
        a.finish().unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::State, "{err}");
        assert!(err.to_string().contains("another build"), "{err}");
    }
    b.run_slab(0..count, &mut |_, _| {}, &Default::default())
        .unwrap();
    b.finish().unwrap();
    // Finished: a slab of b can no longer join.
    let late = b.run_slab(0..align, &mut |_, _| {}, &Default::default());
    assert_eq!(late.unwrap_err().kind(), ErrorKind::State);
    // b's store, the bytes of a run of b alone.
    let alone = dir.join("alone.ome.zarr");
    ZarrBuilder::new(builder.clone(), &alone)
        .chunks([1, 8, 8])
        .plan()
        .unwrap()
        .run(&mut |_, _| {}, &Default::default())
        .unwrap();
    let x = tree_files(&alone);
    // The late slab's shared lock: removed by it on Unix (the last holder out);
    // on Windows left for the next exclusive holder.
    let y: std::collections::BTreeMap<String, Vec<u8>> = tree_files(&store)
        .into_iter()
        .filter(|(k, _)| !cfg!(windows) || k != ctstack::LOCK_FILE)
        .collect();
    assert_eq!(
        x.keys()
            .filter(|k| *k != "ctstack-inputs.json")
            .collect::<Vec<_>>(),
        y.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &y {
        if name != "zarr.json" {
            assert!(bytes == &x[name], "{name} differs");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Review (build mix): a store complete from build B, then a distributed
/// build A of the same layout from other inputs (the stack rescanned, same
/// names and shapes, other pixels) whose later slabs never ran: its finish
/// must not find B's chunks in their place and declare the store complete
/// with A's pixels in some slices and B's in the rest. Its prepare clears
/// chunks it cannot tell are A's (B's store finished by a run or by a
/// distributed build, or A's own killed run over B's chunks); once every slab
/// has run, the store is a run of A alone, byte for byte.
#[test]
fn a_distributed_build_never_finishes_on_another_builds_chunks() {
    for how in ["run", "distributed", "killed run"] {
        let dir = temp_dir("zarr-build-mix");
        let input = dir.join("in");
        let stack = make_stack(&input, 16, 40, 30, |z, i| (z * 7 + i) as u16);
        let store = dir.join("mixed/s.ome.zarr");
        let plan = |store: &Path| {
            let builder = PyramidBuilder::from_dir(&stack).unwrap().min_size(16);
            ZarrBuilder::new(builder, store)
                .chunks([1, 8, 8])
                .plan()
                .unwrap()
        };
        let b = plan(&store);
        let count = b.levels()[0].count;
        let align = b.slab_alignment();
        assert!(count >= 2 * align, "one slab only: make the stack deeper");
        match how {
            "distributed" => {
                b.prepare().unwrap();
                b.run_slab(0..count, &mut |_, _| {}, &Default::default())
                    .unwrap();
                b.finish().unwrap();
            }
            _ => {
                b.run(&mut |_, _| {}, &Default::default()).unwrap();
            }
        }
        // Rescanned: same names, sizes and shape, other pixels and times.
        make_stack(&input, 16, 40, 30, |z, i| (z * 7 + i + 1000) as u16);
        for entry in std::fs::read_dir(&input).unwrap() {
            let file = std::fs::File::options()
                .write(true)
                .open(entry.unwrap().path())
                .unwrap();
            file.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(7))
                .unwrap();
        }
        let a = plan(&store);
        if how == "killed run" {
            // A's run stopped after its first unit: some chunks A's, the rest B's.
            let cancel = ctstack::CancelFlag::new();
            let result = a.run(
                &mut |done, _| {
                    if done > 0 {
                        cancel.cancel();
                    }
                },
                &cancel,
            );
            assert_eq!(result.unwrap_err().kind(), ErrorKind::Cancelled, "{how}");
        }
        a.prepare().unwrap();
        a.run_slab(0..align, &mut |_, _| {}, &Default::default())
            .unwrap();
        let err = a.finish().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::State, "{how}: {err}");
        assert!(err.to_string().contains("missing"), "{how}: {err}");
        let root: serde_json::Value =
            serde_json::from_slice(&std::fs::read(store.join("zarr.json")).unwrap()).unwrap();
        assert!(
            root["attributes"].get("ome").is_none(),
            "{how}: the store claims completeness"
        );
        assert!(!store.join("ctstack-inputs.json").exists(), "{how}");
        // The other slab, then finish: A's store.
        a.run_slab(align..count, &mut |_, _| {}, &Default::default())
            .unwrap();
        a.finish().unwrap();
        let alone = dir.join("alone/s.ome.zarr");
        plan(&alone)
            .run(&mut |_, _| {}, &Default::default())
            .unwrap();
        let ours = |files: std::collections::BTreeMap<String, Vec<u8>>| {
            files
                .into_iter()
                .filter(|(k, _)| k != "ctstack-inputs.json" && k != ctstack::LOCK_FILE)
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        let (x, y) = (ours(tree_files(&alone)), ours(tree_files(&store)));
        assert_eq!(
            x.keys().collect::<Vec<_>>(),
            y.keys().collect::<Vec<_>>(),
            "{how}"
        );
        for (name, bytes) in &x {
            assert!(bytes == &y[name], "{how}: {name} differs");
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}

/// Review s27 1c: a rerun's sweep removes a killed run's temporary files only
/// where ctstack writes (level folders, the root's own metadata names), and
/// never one whose pid is a live process on this host (another run's, still
/// writing); a user's file named like a temporary file stays.
#[test]
fn the_stores_sweep_spares_live_processes_and_the_users_files() {
    let dir = temp_dir("zarr-sweep");
    let stack = make_stack(&dir.join("in"), 4, 40, 30, |z, i| (z * 7 + i) as u16);
    let builder = PyramidBuilder::from_dir(&stack).unwrap().min_size(16);
    let store = dir.join("s.ome.zarr");
    run_store(&builder, &store).unwrap();
    let me = std::process::id();
    // Above Linux's largest pid_max (2^22): no such process, a killed run's.
    let dead = 4_999_999;
    let live = store.join(format!("0/c/0/0/.0.{me}.3.ctstack-tmp"));
    let killed = [
        store.join(format!("0/c/0/0/.0.{dead}.3.ctstack-tmp")),
        store.join(format!(".zarr.json.{dead}.1.ctstack-tmp")),
    ];
    std::fs::create_dir_all(store.join("labels")).unwrap();
    let users = [
        store.join(format!("labels/.0.{dead}.1.ctstack-tmp")),
        store.join(format!(".notes.txt.{dead}.1.ctstack-tmp")),
    ];
    for f in killed.iter().chain(&users).chain([&live]) {
        std::fs::write(f, b"x").unwrap();
    }
    // Without the record the rerun prepares (and sweeps) as after a kill.
    std::fs::remove_file(store.join("ctstack-inputs.json")).unwrap();
    run_store(&builder, &store).unwrap();
    #[cfg(unix)]
    for f in &killed {
        assert!(!f.exists(), "{} left", f.display());
    }
    for f in users.iter().chain([&live]) {
        assert!(f.exists(), "{} removed", f.display());
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Review s27 2: finish says "missing" only for a chunk that is not there;
/// any other error inspecting one is that error (kind Io, the path and the
/// system's message), not a slab to rerun. Unix only: a path through a file
/// is ENOTDIR there; Windows reports it as not found.
#[cfg(unix)]
#[test]
fn finish_reports_a_chunk_it_cannot_inspect_as_that_error() {
    let dir = temp_dir("zarr-finish-stat");
    let stack = make_stack(&dir.join("in"), 8, 40, 30, |z, i| (z * 7 + i) as u16);
    let builder = PyramidBuilder::from_dir(&stack).unwrap().min_size(16);
    let store = dir.join("s.ome.zarr");
    let plan = ZarrBuilder::new(builder, &store)
        .chunks([1, 8, 8])
        .plan()
        .unwrap();
    plan.prepare().unwrap();
    plan.run_slab(0..8, &mut |_, _| {}, &Default::default())
        .unwrap();
    // Level 1's chunk row folder replaced by a file: its chunks' paths now
    // pass through a file.
    let row = store.join("1/c/0/0");
    std::fs::remove_dir_all(&row).unwrap();
    std::fs::write(&row, b"x").unwrap();
    let err = plan.finish().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    let text = err.to_string();
    assert!(!text.contains("missing"), "{text}");
    assert!(text.contains("1/c/0/0/0"), "{text}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Review s27 2: two test folders of one name in one process are two folders
/// (the pid alone let two runs share, and wipe, one).
#[test]
fn temp_dir_gives_a_new_folder_per_call() {
    let (a, b) = (temp_dir("zarr-twice"), temp_dir("zarr-twice"));
    assert_ne!(a, b);
    assert!(a.is_dir() && b.is_dir());
    std::fs::remove_dir_all(&a).ok();
    std::fs::remove_dir_all(&b).ok();
}

/// A chunk Blosc cannot compress (over `INT_MAX - 16` bytes: here exactly the
/// 2 GiB ctstack allows, 1 x 32768 x 32768 u16) is refused by the plan, before
/// any input is read (on main the run failed at its first chunk, after reading
/// its band); zstd takes it. The stack is one sparse file (no disk used).
#[test]
fn a_chunk_over_what_blosc_compresses_is_refused_by_the_plan() {
    let dir = temp_dir("blosc-limit");
    let stack = dir.join("stack");
    std::fs::create_dir_all(&stack).unwrap();
    let side = 32768u32;
    let data = u64::from(side) * u64::from(side) * 2;
    let mut tiff = b"II\x2a\0\x08\0\0\0".to_vec();
    let entries: [(u16, u16, u32); 8] = [
        (256, 4, side),
        (257, 4, side),
        (258, 3, 16),
        (259, 3, 1),
        (262, 3, 1),
        (273, 4, 8 + 2 + 8 * 12 + 4),
        (278, 4, side),
        (279, 4, data as u32),
    ];
    tiff.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, ty, value) in entries {
        tiff.extend_from_slice(&tag.to_le_bytes());
        tiff.extend_from_slice(&ty.to_le_bytes());
        tiff.extend_from_slice(&1u32.to_le_bytes());
        tiff.extend_from_slice(&value.to_le_bytes());
    }
    tiff.extend_from_slice(&[0; 4]);
    let path = stack.join("s0.tif");
    std::fs::write(&path, &tiff).unwrap();
    // Closed at once: Windows cannot remove the folder of an open file.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(tiff.len() as u64 + data)
        .unwrap();
    let plan = |compression: ChunkCompression| {
        let pyramid = PyramidBuilder::from_dir(&stack).unwrap();
        ZarrBuilder::new(pyramid, dir.join("s.ome.zarr"))
            .chunks([1, side, side])
            .compression(compression)
            .plan()
    };
    let err = plan(ChunkCompression::default()).unwrap_err();
    assert_eq!(err.kind(), ctstack::ErrorKind::Usage, "{err}");
    assert!(err.to_string().contains("Blosc"), "{err}");
    plan(ChunkCompression::Zstd(3)).expect("zstd compresses 2 GiB chunks");
    assert!(!dir.join("s.ome.zarr").exists(), "a plan writes nothing");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Any folder may be named as a store: a root `zarr.json` larger than any
/// group's metadata is refused by name after a bounded read, not read whole
/// (on main a sparse 1 GiB file was read into memory before the refusal).
#[test]
fn a_huge_root_metadata_file_is_refused_without_reading_it_whole() {
    let dir = temp_dir("huge-root");
    let store = dir.join("data");
    std::fs::create_dir_all(&store).unwrap();
    let huge = store.join("zarr.json");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let pyramid = PyramidBuilder::from_dir(common::fixtures().join("stack")).unwrap();
    let err = ZarrBuilder::new(pyramid, &store)
        .plan()
        .and_then(|plan| plan.run(&mut |_, _| {}, &ctstack::CancelFlag::new()))
        .unwrap_err();
    assert!(err.to_string().contains("larger than"), "{err}");
    assert!(err.to_string().contains("zarr.json"), "{err}");
    assert_eq!(
        std::fs::metadata(&huge).unwrap().len(),
        1 << 30,
        "left as it was"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
