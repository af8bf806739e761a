//! The OME-Zarr writer: every level read back by zarrs equals the input (level
//! 0) and the TIFF pyramid's level (levels 1 ..= L) byte for byte, for every
//! sample type and awkward shape; the metadata parses and validates with
//! ome_zarr_metadata and says what the levels are; foreign stores are refused;
//! interrupted runs finish to the same bytes.
#![cfg(feature = "ome-zarr")]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::collections::BTreeMap;

use common::pyramid::temp_dir;
use ctstack::{
    ChunkCompression, ErrorKind, Ngff, OpenOptions, Pyramid, PyramidBuilder, SampleType, Slice,
    ZarrBuilder, write_slice,
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
    assert_eq!(summary.levels, tiff.levels(), "{what}");
    let levels = zarr_levels(&store, tiff.levels().len());
    for (k, (shape, bytes)) in levels.iter().enumerate() {
        let l = tiff.levels()[k];
        assert_eq!(
            shape,
            &[l.count as u64, l.height.into(), l.width.into()],
            "{what}: level {k}"
        );
        let expected = match k {
            0 => input_bytes(&builder),
            _ => tiff_level(&dir.join("tiff"), k, tiff.sample_type()),
        };
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
        for ngff in [Ngff::V0_5, Ngff::V0_4] {
            for compression in [ChunkCompression::None, ChunkCompression::Zstd(5)] {
                let what = format!("{rel} {} {compression:?}", ngff.name());
                check(
                    fixture_builder(rel).min_size(2),
                    |z| z.chunks([2, 8, 16]).ngff(ngff).compression(compression),
                    &what,
                );
            }
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
                    assert_eq!(read(&format!("{k}/.zarray"))["dimension_separator"], "/");
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
                assert!(
                    (scale[a] - s0[a] * f).abs() < 1e-6,
                    "{ngff:?} level {k} scale {scale:?}"
                );
                let want = s0[a] * (f - 1.0) / 2.0;
                assert!(
                    (translation[a] - want).abs() < 1e-6,
                    "level {k} translation {translation:?}"
                );
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_store_that_is_not_ctstacks_is_refused_without_force() {
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
    let plan = ZarrBuilder::new(builder.clone(), &store).plan().unwrap();
    let e = plan.run(&mut |_, _| {}, &Default::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::State, "{e}");
    assert_eq!(e.path(), Some(store.as_path()));
    assert!(
        e.to_string().contains("not a ctstack")
            && e.to_string().contains("ZarrBuilder::force(true)"),
        "{e}"
    );
    assert_eq!(
        std::fs::read(store.join("0/precious")).unwrap(),
        b"someone's data"
    );
    // A plain file is not replaced either.
    let file = dir.join("file.ome.zarr");
    std::fs::write(&file, b"x").unwrap();
    let e = ZarrBuilder::new(builder.clone(), &file)
        .plan()
        .unwrap()
        .run(&mut |_, _| {}, &Default::default());
    assert!(e.is_err());
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
    // With force it is replaced; then it is ctstack's, and a rerun needs no force.
    let forced = ZarrBuilder::new(builder.clone(), &store)
        .force(true)
        .plan()
        .unwrap();
    forced.run(&mut |_, _| {}, &Default::default()).unwrap();
    assert!(!store.join("0/precious").exists());
    let again = ZarrBuilder::new(builder, &store).plan().unwrap();
    let summary = again.run(&mut |_, _| {}, &Default::default()).unwrap();
    // Only the root group is written again (marked incomplete, then complete).
    assert_eq!(summary.written, 2, "{summary:?}");
    assert!(summary.unchanged > 2, "{summary:?}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Every file under `dir` (relative path -> bytes).
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// `ctstack zarr` killed mid-run (SIGKILL; TerminateProcess on Windows) leaves a
/// store marked incomplete; a rerun finishes it to the very bytes of a clean
/// run, writing only what was missing.
#[test]
fn killed_mid_run_then_rerun_gives_the_clean_runs_bytes() {
    let dir = temp_dir("zarr-kill");
    let stack = make_stack(&dir.join("in"), 96, 512, 384, |z, i| {
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
    let before = files(&killed).len();
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
        before < files(&clean).len(),
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
    let (a, b) = (files(&clean), files(&killed));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, bytes) in &a {
        assert!(bytes == &b[name], "{name} differs");
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
