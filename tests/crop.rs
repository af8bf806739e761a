//! The crop (issue 21): boxes and slice ranges at level 0 and level k, into files
//! and arrays, against the sources read whole; bounds, stale pyramids, names,
//! formats, resolution, cancel, and a run killed with SIGKILL then run again.
//!
//! The outputs are also checked against tifffile's and Pillow's reading of the
//! sources in python/tests/test_crop.py.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::fixtures;
use common::pyramid::temp_dir;
use ctstack::{
    CROP_RECORD_FILE, CancelFlag, Crop, Error, ErrorKind, Naming, OutputFormat, PyramidBuilder,
    Sample, Slice, write_slice,
};

/// Samples of `path` (page `page`) as f64 (exact for every sample type ctstack reads).
fn whole(path: &Path, page: usize) -> (u32, u32, Vec<f64>) {
    let s = Slice::open_page(path, page, &Default::default()).unwrap_or_else(|e| panic!("{e}"));
    fn all<T: Sample + Into<f64>>(s: &Slice) -> Vec<f64> {
        s.contiguous::<T>()
            .unwrap()
            .iter()
            .map(|&v| v.into())
            .collect()
    }
    let v = match s.sample_type() {
        ctstack::SampleType::U8 => all::<u8>(&s),
        ctstack::SampleType::U16 => all::<u16>(&s),
        ctstack::SampleType::I16 => all::<i16>(&s),
        _ => all::<f32>(&s),
    };
    (s.width(), s.height(), v)
}

/// The box x, y of a row-major `w`-wide image.
fn cut(v: &[f64], w: u32, x: std::ops::Range<u32>, y: std::ops::Range<u32>) -> Vec<f64> {
    let mut out = Vec::new();
    for row in y {
        let at = (row * w) as usize;
        out.extend_from_slice(&v[at + x.start as usize..at + x.end as usize]);
    }
    out
}

/// The files of `dir` but the crop's record ([`CROP_RECORD_FILE`]).
fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name != CROP_RECORD_FILE)
        .collect();
    names.sort();
    names
}

/// Crops `crop` into a fresh folder and checks every output against the
/// sources' box (`sources[i]` = (file, page) of output i).
fn check_crop(name: &str, crop: Crop, x: std::ops::Range<u32>, y: std::ops::Range<u32>) {
    let out = temp_dir(name);
    let plan = crop
        .output_dir(&out)
        .plan()
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let summary = plan.run(&mut |_, _| {}, &CancelFlag::new()).unwrap();
    assert_eq!(summary.written, plan.sources().len());
    assert_eq!(files_in(&out).len(), summary.written, "{name}");
    for (source, file) in plan.sources().iter().zip(&summary.files) {
        let (w, _, src) = whole(&source.path, source.page);
        let (ow, oh, got) = whole(file, 0);
        assert_eq!(
            (ow, oh),
            (x.len() as u32, y.len() as u32),
            "{name}: {}",
            file.display()
        );
        let want = cut(&src, w, x.clone(), y.clone());
        // NaN compares by bits.
        let same = got
            .iter()
            .zip(&want)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "{name}: {} differs from {source}", file.display());
    }
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn level_0_boxes_equal_the_sources_for_every_format_and_type() {
    let f = fixtures();
    // (stack, width, height): boxes 1 px wide, at each edge, the whole slice.
    for (stack, w, h) in [
        ("stack", 301, 203),
        ("stack_u8", 0, 0),
        ("stack_png", 0, 0),
        ("stack_bmp", 0, 0),
        ("stack_mixed", 33, 31),
        ("types_stacks/f32", 0, 0),
        ("types_stacks/i16", 0, 0),
    ] {
        let dir = f.join(stack);
        let first = ctstack::stack::list_slices(&dir).unwrap()[0].clone();
        let (sw, sh) = if w == 0 {
            let s = Slice::open(&first).unwrap();
            (s.width(), s.height())
        } else {
            (w, h)
        };
        for (i, (x, y)) in [
            (0..sw, 0..sh),
            (0..1, 0..sh),
            (sw - 1..sw, 0..1),
            (sw / 3..sw / 2 + 1, sh - 2..sh),
            (1..sw - 1, 1..sh - 1),
        ]
        .into_iter()
        .enumerate()
        {
            let crop = Crop::from_dir(&dir).region(x.clone(), y.clone());
            check_crop(&format!("l0-{}-{i}", stack.replace('/', "-")), crop, x, y);
        }
    }
}

#[test]
fn single_files_of_every_layout_and_multi_page_stacks() {
    let f = fixtures();
    // Strips of every size, tiles, big-endian, BigTIFF, packed depths, compressed.
    let mut files: Vec<PathBuf> = std::fs::read_dir(f.join("slices"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| Slice::open(p).is_ok())
        // Its page 1 is of another size: a stack that the plan refuses as mixed.
        .filter(|p| !p.ends_with("tifffile_multipage2_u16.tif"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "{files:?}");
    for (n, file) in files.iter().enumerate() {
        let s = Slice::open(file).unwrap();
        let (w, h) = (s.width(), s.height());
        let (x, y) = (w / 4..w - 1, 1..h / 2 + 1);
        let crop = Crop::from_files(vec![file.clone()]).region(x.clone(), y.clone());
        check_crop(&format!("file-{n}"), crop, x, y);
    }
    // Multi-page stacks: a page range of one file, named by page.
    for file in ["types_stacks/i16_pages.tif", "types_stacks/f32_imagej.tif"] {
        let path = f.join(file);
        let s = Slice::open(&path).unwrap();
        let (x, y) = (2..s.width() - 3, 0..s.height());
        let crop = Crop::from_file(&path)
            .region(x.clone(), y.clone())
            .slices(1..3);
        let plan = crop.clone().plan().unwrap();
        assert_eq!(plan.sources()[0].page, 1, "{file}");
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        assert_eq!(plan.output_names()[0], format!("{stem}_000001.tif"));
        check_crop(&format!("pages-{stem}"), crop, x, y);
    }
}

#[test]
fn level_k_reads_the_pyramid_through_its_manifest() {
    let dir = temp_dir("crop-levelk-stack");
    for (i, src) in ctstack::stack::list_slices(&fixtures().join("stack"))
        .unwrap()
        .iter()
        .enumerate()
    {
        std::fs::copy(src, dir.join(format!("s_{i:03}.tif"))).unwrap();
    }
    // No pyramid yet: a usage error saying to build it.
    let err = Crop::from_dir(&dir).level(1).plan().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::State);
    assert!(err.to_string().contains("build it"), "{err}");
    PyramidBuilder::from_dir(&dir)
        .unwrap()
        .min_size(40)
        .plan()
        .unwrap()
        .run(&mut |_, _| {}, &CancelFlag::new())
        .unwrap();
    let pyramid = ctstack::Pyramid::open(dir.join(".thumbnail")).unwrap();
    let level = pyramid.level(2).unwrap();
    let volume: Vec<u16> = pyramid.read_level(2).unwrap();
    let (x, y, z) = (3..level.width - 1, 0..7, 1..level.count);
    let out = dir.join("harvest");
    let plan = Crop::from_dir(&dir)
        .level(2)
        .region(x.clone(), y.clone())
        .slices(z.clone())
        .output_dir(&out)
        .plan()
        .unwrap();
    assert_eq!(plan.output_names()[0], "000001.tif");
    assert!(
        plan.notes().iter().any(|n| n.contains("j*4")),
        "{:?}",
        plan.notes()
    );
    let summary = plan.run(&mut |_, _| {}, &CancelFlag::new()).unwrap();
    let plane = (level.width * level.height) as usize;
    let mut array = vec![0u16; plan.samples()];
    plan.crop_to_array(&mut array, &mut |_, _| {}, &CancelFlag::new())
        .unwrap();
    for (i, j) in z.clone().enumerate() {
        let want: Vec<f64> = cut(
            &volume[j * plane..(j + 1) * plane]
                .iter()
                .map(|&v| f64::from(v))
                .collect::<Vec<_>>(),
            level.width,
            x.clone(),
            y.clone(),
        );
        let (_, _, got) = whole(&summary.files[i], 0);
        assert_eq!(got, want, "level 2 slice {j}");
        let n = x.len() * y.len();
        let arr: Vec<f64> = array[i * n..(i + 1) * n]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        assert_eq!(arr, want, "array plane {i}");
    }
    // Out of the level: usage errors naming its bounds.
    let err = Crop::from_dir(&dir)
        .level(2)
        .slices(0..99)
        .plan()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
    assert!(
        err.to_string()
            .contains(&format!("slices 0..{}", level.count)),
        "{err}"
    );
    let err = Crop::from_dir(&dir)
        .level(2)
        .region(0..level.width + 1, 0..1)
        .plan()
        .unwrap_err();
    assert!(
        err.to_string().contains(&format!("x 0..{}", level.width)),
        "{err}"
    );
    let err = Crop::from_dir(&dir).level(9).plan().unwrap_err();
    assert!(err.to_string().contains("no level 9"), "{err}");
    // A replaced input makes the pyramid stale.
    let replaced = dir.join("s_005.tif");
    let (w, h, _) = whole(&replaced, 0);
    write_slice::<u16>(&replaced, w, h, &vec![7; (w * h) as usize]).unwrap();
    let err = Crop::from_dir(&dir).level(1).plan().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::State);
    assert!(
        err.to_string().contains("stale") && err.to_string().contains("s_005.tif"),
        "{err}"
    );
    // Level 0 needs no pyramid.
    Crop::from_dir(&dir).plan().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn formats_names_and_resolution() {
    let f = fixtures();
    // JPEG -> PNG by default, saying so; pixels as decoded.
    let out = temp_dir("crop-jpeg");
    let plan = Crop::from_dir(f.join("stack_jpeg"))
        .slices(0..2)
        .output_dir(&out)
        .plan()
        .unwrap();
    assert_eq!(plan.format(), OutputFormat::Png);
    assert!(
        plan.notes().iter().any(|n| n.contains("JPEG")),
        "{:?}",
        plan.notes()
    );
    assert_eq!(plan.output_names(), ["slice_0000.png", "slice_0001.png"]);
    let summary = plan.run(&mut |_, _| {}, &CancelFlag::new()).unwrap();
    assert_eq!(
        whole(&summary.files[0], 0).2,
        whole(&plan.sources()[0].path, 0).2
    );
    // A JPEG's JFIF density (set here to 300 x 150 dots per inch) becomes the PNG's pHYs.
    let jfif = temp_dir("crop-jfif");
    let mut jpeg = std::fs::read(f.join("images/pillow_L.jpg")).unwrap();
    assert_eq!(&jpeg[6..11], b"JFIF\0");
    jpeg[13] = 1;
    jpeg[14..18].copy_from_slice(&[1, 44, 0, 150]);
    std::fs::write(jfif.join("j_0.jpg"), &jpeg).unwrap();
    let plan = Crop::from_dir(&jfif)
        .output_dir(jfif.join("o"))
        .plan()
        .unwrap();
    let summary = plan.run(&mut |_, _| {}, &CancelFlag::new()).unwrap();
    let file = std::io::BufReader::new(std::fs::File::open(&summary.files[0]).unwrap());
    let reader = png::Decoder::new(file).read_info().unwrap();
    let dims = reader.info().pixel_dims.unwrap();
    assert_eq!((dims.xppu, dims.yppu), (11811, 5906));
    // Windows removes an open file only once it is closed (until then the
    // folder is not empty): close the PNG first.
    drop(reader);
    std::fs::remove_dir_all(&jfif).unwrap();
    // BMP keeps its pixels-per-metre; numbered names as CTHarvester writes them.
    let bmp = ctstack::stack::list_slices(&f.join("stack_bmp")).unwrap();
    let src = std::fs::read(&bmp[0]).unwrap();
    let plan = Crop::from_dir(f.join("stack_bmp"))
        .slices(2..4)
        .region(5..30, 7..9)
        .naming(Naming::numbered("cut_", 10, 3))
        .output_dir(&out)
        .plan()
        .unwrap();
    assert_eq!(plan.output_names(), ["cut_012.bmp", "cut_013.bmp"]);
    let summary = plan.run(&mut |_, _| {}, &CancelFlag::new()).unwrap();
    let written = std::fs::read(&summary.files[0]).unwrap();
    assert_eq!(&written[38..46], &src[38..46], "pixels per metre");
    assert_eq!(written[28], 8, "8-bit");
    // A TIFF's resolution, carried over exactly (tags 282, 283, 296).
    let dir = temp_dir("crop-res");
    let tif = dir.join("r_0.tif");
    write_resolution_tiff(&tif);
    let plan = Crop::from_dir(&dir)
        .region(1..3, 0..2)
        .output_dir(dir.join("o"))
        .plan()
        .unwrap();
    let summary = plan.run(&mut |_, _| {}, &CancelFlag::new()).unwrap();
    let mut d =
        tiff::decoder::Decoder::new(std::fs::File::open(&summary.files[0]).unwrap()).unwrap();
    use tiff::decoder::ifd::Value;
    use tiff::tags::Tag;
    assert_eq!(
        d.get_tag(Tag::XResolution).unwrap(),
        Value::Rational(300, 1)
    );
    assert_eq!(
        d.get_tag(Tag::YResolution).unwrap(),
        Value::Rational(150, 1)
    );
    assert_eq!(d.get_tag_u32(Tag::ResolutionUnit).unwrap(), 2);
    assert_eq!(whole(&summary.files[0], 0).2, vec![1.0, 2.0, 5.0, 6.0]);
    // As PNG: pHYs in pixels per metre; BMP refuses 16-bit samples.
    let png = Crop::from_dir(&dir)
        .format(OutputFormat::Png)
        .output_dir(dir.join("p"))
        .plan()
        .unwrap();
    let summary = png.run(&mut |_, _| {}, &CancelFlag::new()).unwrap();
    let reader = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&summary.files[0]).unwrap(),
    ))
    .read_info()
    .unwrap();
    let dims = reader.info().pixel_dims.unwrap();
    assert_eq!((dims.xppu, dims.yppu), (11811, 5906));
    let err = Crop::from_dir(&dir)
        .format(OutputFormat::Bmp)
        .plan()
        .unwrap_err();
    assert!(err.to_string().contains("uint16"), "{err}");
    // Windows removes an open file only once it is closed: close both first.
    drop((d, reader));
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&out).unwrap();
}

/// NRecon's BMP slices carry a screen's 96 dpi, not the voxel size: the
/// scanner's log beside them gives the outputs' resolution (12.5 um: 80000
/// pixels per metre), and the plan says which file; at level k, 2^k times
/// coarser. Without the log the slices' own density is carried over.
#[test]
fn the_resolution_comes_from_the_scanners_log_when_the_slices_have_none() {
    let dir = temp_dir("crop-sidecar");
    let ppm = |path: &Path| {
        let b = std::fs::read(path).unwrap();
        (
            i32::from_le_bytes(b[38..42].try_into().unwrap()),
            i32::from_le_bytes(b[42..46].try_into().unwrap()),
        )
    };
    let scan = common::stack_with_sidecar("stack_bmp", Some("bruker"), &dir.join("scan"));
    let plan = Crop::from_dir(&scan)
        .slices(0..2)
        .output_dir(dir.join("out"))
        .plan()
        .unwrap();
    assert!(
        plan.notes()
            .iter()
            .any(|n| n.contains("12.5 um") && n.contains("scan_rec.log")),
        "{:?}",
        plan.notes()
    );
    let summary = plan.run(&mut |_, _| {}, &CancelFlag::new()).unwrap();
    assert_eq!(ppm(&summary.files[0]), (80000, 80000));
    // Level 1 (TIFF): 25 um, 400 pixels per centimetre.
    PyramidBuilder::from_dir(&scan)
        .unwrap()
        .min_size(8)
        .plan()
        .unwrap()
        .run(&mut |_, _| {}, &CancelFlag::new())
        .unwrap();
    let summary = Crop::from_dir(&scan)
        .level(1)
        .slices(0..1)
        .output_dir(dir.join("out1"))
        .plan()
        .unwrap()
        .run(&mut |_, _| {}, &CancelFlag::new())
        .unwrap();
    let tiff = std::fs::File::open(&summary.files[0]).unwrap();
    let mut decoder = tiff::decoder::Decoder::new(tiff).unwrap();
    assert_eq!(
        decoder.find_tag(tiff::tags::Tag::XResolution).unwrap(),
        Some(tiff::decoder::ifd::Value::Rational(800, 2))
    );
    // No log: the slices' 96 dpi as before.
    let bare = common::stack_with_sidecar("stack_bmp", None, &dir.join("bare"));
    let summary = Crop::from_dir(&bare)
        .slices(0..1)
        .output_dir(dir.join("out-bare"))
        .plan()
        .unwrap()
        .run(&mut |_, _| {}, &CancelFlag::new())
        .unwrap();
    assert_eq!(ppm(&summary.files[0]), (3780, 3780));
    std::fs::remove_dir_all(&dir).ok();
}

/// A 4x2 u16 TIFF (samples 0..8) at 300 x 150 pixels per inch, by the tiff crate.
fn write_resolution_tiff(path: &Path) {
    use tiff::encoder::{Rational, TiffEncoder, colortype};
    let file = std::fs::File::create(path).unwrap();
    let mut enc = TiffEncoder::new(file).unwrap();
    let mut image = enc.new_image::<colortype::Gray16>(4, 2).unwrap();
    image.x_resolution(Rational { n: 300, d: 1 });
    image.y_resolution(Rational { n: 150, d: 1 });
    image.resolution_unit(tiff::tags::ResolutionUnit::Inch);
    image.write_data(&[0u16, 1, 2, 3, 4, 5, 6, 7]).unwrap();
}

#[test]
fn the_output_folder_holds_only_what_is_asked_and_sources_are_never_replaced() {
    let dir = temp_dir("crop-folder");
    for i in 0..4u16 {
        write_slice::<u16>(&dir.join(format!("s_{i}.tif")), 5, 4, &[i; 20]).unwrap();
    }
    // Writing into the stack's own folder with the sources' names is refused.
    let err = Crop::from_dir(&dir)
        .output_dir(&dir)
        .plan()
        .unwrap()
        .run(&mut |_, _| {}, &CancelFlag::new())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
    assert!(err.to_string().contains("source"), "{err}");
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("notes.txt"), b"mine").unwrap();
    std::fs::write(out.join(".other.tif.1.2.ctstack-tmp"), b"someone else's").unwrap();
    std::fs::write(out.join(".s_1.tif.99.0.ctstack-tmp"), b"ours, killed").unwrap();
    let plan = Crop::from_dir(&dir)
        .slices(1..3)
        .output_dir(&out)
        .plan()
        .unwrap();
    plan.run(&mut |_, _| {}, &CancelFlag::new()).unwrap();
    assert!(out.join(CROP_RECORD_FILE).is_file());
    // A rerun replaces its own outputs (the record vouches for them).
    std::fs::write(out.join(".s_1.tif.99.0.ctstack-tmp"), b"ours, killed").unwrap();
    plan.run(&mut |_, _| {}, &CancelFlag::new()).unwrap();
    assert_eq!(
        files_in(&out),
        [
            ".other.tif.1.2.ctstack-tmp",
            "notes.txt",
            "s_1.tif",
            "s_2.tif"
        ]
    );
    assert_eq!(whole(&out.join("s_1.tif"), 0).2, vec![1.0; 20]);
    // Cancel from the progress callback: stops with Cancelled, complete files only.
    let cancel = Arc::new(CancelFlag::new());
    let button = Arc::clone(&cancel);
    let out2 = dir.join("out2");
    let plan = Crop::from_dir(&dir)
        .threads(1)
        .output_dir(&out2)
        .plan()
        .unwrap();
    let mut calls = 0;
    let result = plan.run(
        &mut |done, _| {
            calls += 1;
            if done == 1 {
                button.cancel();
            }
        },
        &cancel,
    );
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    assert_eq!(files_in(&out2), ["s_0.tif"]);
    assert!(calls >= 2);
    // An array of the wrong type or length is a mismatch.
    let plan = Crop::from_dir(&dir).plan().unwrap();
    let err = plan
        .crop_to_array(&mut [0u8; 80], &mut |_, _| {}, &CancelFlag::new())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Mismatch);
    let err = plan
        .crop_to_array(&mut [0u16; 79], &mut |_, _| {}, &CancelFlag::new())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Mismatch);
    // A failing slice stops the run naming it, with nothing partial left.
    let plan = Crop::from_dir(&dir)
        .threads(1)
        .output_dir(dir.join("out3"))
        .plan()
        .unwrap();
    std::fs::write(dir.join("s_2.tif"), b"II*\0 truncated").unwrap();
    let err = plan.run(&mut |_, _| {}, &CancelFlag::new()).unwrap_err();
    assert!(err.to_string().contains("s_2.tif"), "{err}");
    assert_eq!(files_in(&dir.join("out3")), ["s_0.tif", "s_1.tif"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// ctstack never replaces a file it did not write: a file at an output name
/// that the folder's crop record does not vouch for (the user's, or an output
/// changed since), or a record file that is not one, refuses the crop before
/// anything is written, naming the files and what to do. Two crops into one
/// folder both stay ctstack's, and each rerun replaces its own outputs.
#[test]
fn a_file_the_crop_did_not_write_is_never_replaced() {
    let dir = temp_dir("crop-foreign");
    for i in 0..8u16 {
        write_slice::<u16>(&dir.join(format!("s_{i}.tif")), 5, 4, &[i; 20]).unwrap();
    }
    let crop = |out: &Path, z: std::ops::Range<usize>| {
        Crop::from_dir(&dir)
            .slices(z)
            .output_dir(out)
            .plan()
            .unwrap()
            .run(&mut |_, _| {}, &CancelFlag::new())
    };
    let listing = |d: &Path| -> Vec<(String, Vec<u8>)> {
        let mut all: Vec<(String, Vec<u8>)> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                (name, std::fs::read(e.path()).unwrap_or_default())
            })
            .collect();
        all.sort();
        all
    };
    // The user's files at four output names: refused, named (three and a
    // count), nothing written (not even the record).
    let out = dir.join("users");
    std::fs::create_dir_all(&out).unwrap();
    for i in 1..5 {
        std::fs::write(out.join(format!("s_{i}.tif")), b"the user's").unwrap();
    }
    let before = listing(&out);
    let err = crop(&out, 0..8).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::State, "{err}");
    let message = err.to_string();
    for part in [
        "4 files are at output names of the crop (s_1.tif, s_2.tif, s_3.tif, and 1 more)",
        "ctstack did not write them",
        "choose another output folder, or move them away",
        "nothing was written",
    ] {
        assert!(message.contains(part), "{part:?} not in {message}");
    }
    assert_eq!(listing(&out), before);
    // One file: named alone.
    let one = dir.join("one");
    std::fs::create_dir_all(&one).unwrap();
    std::fs::write(one.join("s_6.tif"), b"the user's").unwrap();
    let err = crop(&one, 0..8).unwrap_err();
    assert!(
        err.to_string()
            .contains("s_6.tif is at an output name of the crop, and ctstack did not write it"),
        "{err}"
    );
    assert_eq!(std::fs::read(one.join("s_6.tif")).unwrap(), b"the user's");
    assert_eq!(files_in(&one), ["s_6.tif"]);

    // Two crops into one folder, then both again: every output is ctstack's.
    let shared = dir.join("shared");
    crop(&shared, 0..3).unwrap();
    crop(&shared, 3..8).unwrap();
    crop(&shared, 0..3).unwrap();
    crop(&shared, 2..6).unwrap();
    assert_eq!(files_in(&shared).len(), 8);
    // An output changed since ctstack wrote it is the user's now.
    std::fs::write(shared.join("s_4.tif"), b"edited").unwrap();
    let err = crop(&shared, 3..8).unwrap_err();
    assert!(err.to_string().contains("s_4.tif"), "{err}");
    assert_eq!(std::fs::read(shared.join("s_4.tif")).unwrap(), b"edited");
    crop(&shared, 5..8).unwrap();
    // A folder or a link at an output name is not ctstack's either.
    std::fs::remove_file(shared.join("s_4.tif")).unwrap();
    std::fs::create_dir(shared.join("s_4.tif")).unwrap();
    assert_eq!(crop(&shared, 4..5).unwrap_err().kind(), ErrorKind::State);
    std::fs::remove_dir(shared.join("s_4.tif")).unwrap();
    #[cfg(unix)]
    {
        std::fs::write(dir.join("elsewhere.bin"), b"the user's").unwrap();
        std::os::unix::fs::symlink(dir.join("elsewhere.bin"), shared.join("s_4.tif")).unwrap();
        assert_eq!(crop(&shared, 4..5).unwrap_err().kind(), ErrorKind::State);
        std::fs::remove_file(shared.join("s_4.tif")).unwrap();
    }
    crop(&shared, 4..5).unwrap();

    // A record file that is not ctstack's record proves nothing and stays.
    for foreign in [&b"{ not json"[..], br#"{"format": "mine", "files": {}}"#] {
        std::fs::write(shared.join(CROP_RECORD_FILE), foreign).unwrap();
        let err = crop(&shared, 0..2).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::State, "{err}");
        assert!(
            err.to_string().contains(CROP_RECORD_FILE)
                && err
                    .to_string()
                    .contains("move it away or choose another output folder"),
            "{err}"
        );
        assert_eq!(
            std::fs::read(shared.join(CROP_RECORD_FILE)).unwrap(),
            foreign
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `ctstack crop` killed with SIGKILL in the middle, then run again: exactly the
/// expected files, byte-identical to a clean run.
#[cfg(unix)]
#[test]
fn kill_9_mid_crop_then_rerun_gives_a_clean_runs_bytes() {
    use std::process::Command;
    let dir = temp_dir("crop-kill");
    let (w, h) = (1024u32, 768u32);
    let mut rng = common::Rng::new(21);
    for i in 0..48 {
        let v: Vec<u16> = (0..w * h).map(|_| rng.below(65536) as u16).collect();
        write_slice(&dir.join(format!("k_{i:03}.tif")), w, h, &v).unwrap();
    }
    let bin = env!("CARGO_BIN_EXE_ctstack");
    let args = |out: &Path| {
        let mut c = Command::new(bin);
        c.args(["crop"])
            .arg(&dir)
            .args([
                "--box",
                "1:1000,3:700",
                "--slices",
                "2:46",
                "--threads",
                "1",
                "-q",
                "--out",
            ])
            .arg(out);
        c
    };
    let clean = dir.join("clean");
    assert!(args(&clean).status().unwrap().success());
    let killed = dir.join("killed");
    // Kill as soon as the first output appears (polled every millisecond),
    // so that the kill lands mid-run however fast or loaded the machine is.
    let mut interrupted = false;
    for _attempt in 0..5 {
        let _ = std::fs::remove_dir_all(&killed);
        let mut child = args(&killed).spawn().unwrap();
        let started = std::time::Instant::now();
        // Outputs only: the lock file and the record appear first.
        let outputs = |d: &Path| -> usize {
            files_in(d)
                .iter()
                .filter(|n| n.starts_with("k_") && n.ends_with(".tif"))
                .count()
        };
        let nothing_yet = || !killed.exists() || outputs(&killed) == 0;
        while nothing_yet() && started.elapsed() < std::time::Duration::from_secs(20) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let finished = child.try_wait().unwrap().is_some();
        child.kill().unwrap();
        child.wait().unwrap();
        let n = if killed.exists() { outputs(&killed) } else { 0 };
        if !finished && n > 0 && n < 44 {
            interrupted = true;
            break;
        }
    }
    assert!(interrupted, "no kill landed mid-run");
    assert!(args(&killed).status().unwrap().success());
    assert_eq!(files_in(&killed), files_in(&clean));
    assert_eq!(files_in(&clean).len(), 44);
    for name in files_in(&clean) {
        assert_eq!(
            std::fs::read(clean.join(&name)).unwrap(),
            std::fs::read(killed.join(&name)).unwrap(),
            "{name}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `ctstack crop`: exit 0 with the files, 2 for a box outside the level (naming
/// its bounds), 3 for a level without a pyramid, 130 on Ctrl-C with complete
/// files only.
#[cfg(unix)]
#[test]
fn the_command_line_exit_statuses_and_ctrl_c() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let bin = env!("CARGO_BIN_EXE_ctstack");
    let stack = fixtures().join("stack");
    let dir = temp_dir("crop-cli");
    let run = |args: &[&str]| Command::new(bin).arg("crop").args(args).output().unwrap();
    let out = dir.join("ok");
    let ok = run(&[
        stack.to_str().unwrap(),
        "--box",
        "10:50,20:40",
        "--slices",
        "3:7",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(files_in(&out).len(), 4);
    let bad = run(&[
        stack.to_str().unwrap(),
        "--box",
        "0:302,0:1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("x 0..301, y 0..203"));
    let unbuilt = run(&[
        stack.to_str().unwrap(),
        "--level",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        unbuilt.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&unbuilt.stderr)
    );
    let parse = run(&[
        stack.to_str().unwrap(),
        "--box",
        "0:3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(parse.status.code(), Some(2));

    // Ctrl-C: enough work to be interrupted (96 slices of 1024x1024, one thread).
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    let pixels: Vec<u16> = (0..1024 * 1024).map(|i| (i % 65_521) as u16).collect();
    for k in 0..96 {
        write_slice(&input.join(format!("s{k:03}.tif")), 1024, 1024, &pixels).unwrap();
    }
    let cut = dir.join("cut");
    let mut child = Command::new(bin)
        .arg("crop")
        .arg(&input)
        .args(["--threads", "1", "--out"])
        .arg(&cut)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !cut.exists() || files_in(&cut).is_empty() {
        assert!(child.try_wait().unwrap().is_none(), "ended before Ctrl-C");
        assert!(start.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(1));
    }
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill() takes plain integers; the child is ours and not yet reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.code() == Some(0) {
        // It finished between the first file and the signal: nothing to check.
        assert_eq!(files_in(&cut).len(), 96);
        eprintln!("the run finished before Ctrl-C arrived");
    } else {
        eprintln!("Ctrl-C after {} files: {stderr}", files_in(&cut).len());
        assert_eq!(output.status.code(), Some(130), "{stderr}");
        assert!(
            stderr.starts_with("ctstack: interrupted after "),
            "{stderr}"
        );
        let names = files_in(&cut);
        assert!(names.len() < 96);
        assert!(
            names
                .iter()
                .all(|n| n.starts_with('s') && n.ends_with(".tif")),
            "{names:?}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `ct_0005.tif ..= ct_0044.tif` without `ct_0015.tif` (issue 26 item 1), 40x30
/// u16, every slice's pixels distinct (`number * 100 + x + y`), in a fresh folder.
fn stack_with_a_gap(name: &str) -> PathBuf {
    let dir = temp_dir(name);
    for n in (5u16..=44).filter(|&n| n != 15) {
        let pixels: Vec<u16> = (0..30u16)
            .flat_map(|y| (0..40u16).map(move |x| n * 100 + x + y))
            .collect();
        write_slice(&dir.join(format!("ct_{n:04}.tif")), 40, 30, &pixels).unwrap();
    }
    dir
}

/// Every file of `out` holds the box x, y of the source of its own name in `dir`.
fn each_output_is_its_namesake(
    dir: &Path,
    out: &Path,
    x: std::ops::Range<u32>,
    y: std::ops::Range<u32>,
) {
    for name in files_in(out) {
        let (w, _, src) = whole(&dir.join(&name), 0);
        let (_, _, got) = whole(&out.join(&name), 0);
        assert_eq!(got, cut(&src, w, x.clone(), y.clone()), "{name}");
    }
}

#[test]
fn a_missing_number_is_refused_or_skipped_never_filled_by_its_neighbour() {
    use ctstack::stack::Selection;
    let dir = stack_with_a_gap("crop-gap");
    // CTHarvester's call: prefix, type, seq_begin..=seq_end, width; bottom 3, top 30.
    let selection = Selection::default()
        .prefix("ct_")
        .extension("tif")
        .range(5, 44)
        .index_width(4);
    let crop = |out: &Path| {
        Crop::from_selection(&dir, &selection)
            .region(2..37, 1..29)
            .slices(3..31)
            .naming(Naming::numbered("ct_", 5, 4))
            .output_dir(out)
    };
    // By default: an error naming the missing number, before anything is written.
    let out = dir.join("refused");
    let err = crop(&out).plan().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::State, "{err}");
    let message = err.to_string();
    assert!(
        message.contains("number 15 (ct_0015.tif)") && message.contains("skip_missing"),
        "{message}"
    );
    assert!(!out.exists());
    // Skipped on request: the 27 right files, a warning naming the gap.
    let out = dir.join("skipped");
    let plan = crop(&out).skip_missing(true).plan().unwrap();
    assert_eq!(plan.warnings().len(), 1, "{:?}", plan.warnings());
    assert!(
        plan.warnings()[0].contains("15 (ct_0015.tif)"),
        "{:?}",
        plan.warnings()
    );
    assert_eq!(plan.shape().0, 27);
    let summary = plan.run(&mut |_, _| {}, &CancelFlag::new()).unwrap();
    assert!(
        summary.notes[0].contains("ct_0015.tif"),
        "{:?}",
        summary.notes
    );
    let want: Vec<String> = (8..=35)
        .filter(|&n| n != 15)
        .map(|n| format!("ct_{n:04}.tif"))
        .collect();
    assert_eq!(files_in(&out), want);
    each_output_is_its_namesake(&dir, &out, 2..37, 1..29);
    // The array holds the same slices, in order.
    let mut volume = vec![0u16; plan.samples()];
    plan.crop_to_array(&mut volume, &mut |_, _| {}, &CancelFlag::new())
        .unwrap();
    let (_, _, ct_0016) = whole(&dir.join("ct_0016.tif"), 0);
    let plane = 35 * 28;
    let got: Vec<f64> = volume[7 * plane..8 * plane]
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    assert_eq!(got, cut(&ct_0016, 40, 2..37, 1..29), "plane 7 is ct_0016");
    // The default selection and names (no range: numbered from the first file).
    let out = dir.join("default");
    let err = Crop::from_dir(&dir).slices(3..31).plan().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::State);
    let plan = Crop::from_dir(&dir)
        .slices(9..12)
        .skip_missing(true)
        .output_dir(&out)
        .plan()
        .unwrap();
    assert_eq!(plan.output_names(), ["ct_0014.tif", "ct_0016.tif"]);
    plan.run(&mut |_, _| {}, &CancelFlag::new()).unwrap();
    each_output_is_its_namesake(&dir, &out, 0..40, 0..30);
    // A range without the gap needs no option.
    Crop::from_dir(&dir).slices(11..40).plan().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn at_level_k_a_slice_after_a_gap_is_missing_not_a_mean_of_the_wrong_files() {
    let dir = stack_with_a_gap("crop-gap-levelk");
    PyramidBuilder::from_dir(&dir)
        .unwrap()
        .min_size(5)
        .plan()
        .unwrap()
        .run(&mut |_, _| {}, &CancelFlag::new())
        .unwrap();
    // The pyramid's own warning says what the gap does to its levels.
    let plan = PyramidBuilder::from_dir(&dir).unwrap().plan().unwrap();
    assert_eq!(plan.warnings().len(), 1);
    assert!(
        plan.warnings()[0].contains("number 15 is missing")
            && plan.warnings()[0].contains("not the mean of the numbers"),
        "{:?}",
        plan.warnings()
    );
    let pyramid = ctstack::Pyramid::open(dir.join(".thumbnail")).unwrap();
    // Level-1 slices 0..=4 are numbers 5..=14: whole, the pyramid's own files.
    let out = dir.join("l1");
    let plan = Crop::from_dir(&dir)
        .level(1)
        .slices(2..5)
        .naming(Naming::numbered("c_", 0, 3))
        .output_dir(&out)
        .plan()
        .unwrap();
    assert_eq!(plan.output_names(), ["c_002.tif", "c_003.tif", "c_004.tif"]);
    plan.run(&mut |_, _| {}, &CancelFlag::new()).unwrap();
    for j in 2..5 {
        let (_, _, want) = whole(&pyramid.slice_path(1, j), 0);
        let (_, _, got) = whole(&out.join(format!("c_{j:03}.tif")), 0);
        assert_eq!(got, want, "level 1 slice {j}");
    }
    // Slice 5 stands for numbers 15 and 16; the pyramid's slice 5 is 16 and 17.
    let err = Crop::from_dir(&dir)
        .level(1)
        .slices(4..7)
        .plan()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::State);
    let message = err.to_string();
    assert!(
        message.contains("level 1 slices 5..=6") && message.contains("number 15 (ct_0015.tif)"),
        "{message}"
    );
    let plan = Crop::from_dir(&dir)
        .level(1)
        .slices(4..7)
        .skip_missing(true)
        .output_dir(dir.join("l1-skip"))
        .plan()
        .unwrap();
    assert_eq!(plan.output_names(), ["000004.tif"]);
    assert!(
        plan.warnings()[0].contains("level 1 slices 5..=6"),
        "{:?}",
        plan.warnings()
    );
    // The level counts the numbers, missing ones included: 40 -> 20 -> 10.
    assert_eq!(plan.level_shape().count, 20);
    // Level 2: slices 0 and 1 (numbers 5..=12) are whole, 2 (13..=16) is not.
    let plan = Crop::from_dir(&dir)
        .level(2)
        .skip_missing(true)
        .plan()
        .unwrap();
    assert_eq!(plan.output_names(), ["000000.tif", "000001.tif"]);
    assert!(
        plan.warnings()[0].contains("level 2 slices 2..=9"),
        "{:?}",
        plan.warnings()
    );
    // Only missing slices: an error even when skipping.
    let err = Crop::from_dir(&dir)
        .level(2)
        .slices(3..5)
        .skip_missing(true)
        .plan()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::State);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_command_line_refuses_a_gap_or_skips_it_with_a_warning() {
    use std::process::Command;
    let bin = env!("CARGO_BIN_EXE_ctstack");
    let dir = stack_with_a_gap("crop-gap-cli");
    let run = |out: &Path, extra: &[&str]| {
        Command::new(bin)
            .arg("crop")
            .arg(&dir)
            .args([
                "--prefix",
                "ct_",
                "--ext",
                "tif",
                "--indices",
                "5:44",
                "--slices",
                "3:31",
            ])
            .arg("--out")
            .arg(out)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = dir.join("refused");
    let refused = run(&out, &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("ct_0015.tif") && stderr.contains("--skip-missing"),
        "{stderr}"
    );
    assert!(!out.exists() || files_in(&out).is_empty());
    let out = dir.join("skipped");
    let skipped = run(&out, &["--skip-missing", "--quiet"]);
    let stderr = String::from_utf8_lossy(&skipped.stderr);
    assert!(skipped.status.success(), "{stderr}");
    assert!(
        stderr.contains("ctstack: warning: skipped: ") && stderr.contains("15 (ct_0015.tif)"),
        "{stderr}"
    );
    assert_eq!(files_in(&out).len(), 27);
    assert!(!files_in(&out).contains(&"ct_0015.tif".to_string()));
    each_output_is_its_namesake(&dir, &out, 0..40, 0..30);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// numpy's `v[z0:z1:zs, y0:y1:ys, x0:x1:xs]` of a row-major (n, h, w) volume.
fn strided(
    v: &[u16],
    (h, w): (usize, usize),
    z: (usize, usize, usize),
    y: (usize, usize, usize),
    x: (usize, usize, usize),
) -> Vec<u16> {
    let mut out = Vec::new();
    for i in (z.0..z.1).step_by(z.2) {
        for r in (y.0..y.1).step_by(y.2) {
            for c in (x.0..x.1).step_by(x.2) {
                out.push(v[(i * h + r) * w + c]);
            }
        }
    }
    out
}

#[test]
fn one_plan_reads_any_strided_box_of_its_level() {
    let stack = fixtures().join("stack");
    let plan = Crop::from_dir(&stack).plan().unwrap();
    let (n, h, w) = plan.shape();
    let (h, w) = (h as usize, w as usize);
    let mut whole = vec![0u16; plan.samples()];
    plan.crop_to_array(&mut whole, &mut |_, _| {}, &CancelFlag::new())
        .unwrap();
    let cases = [
        ((0, n, 1), (0, h, 1), (0, w, 1)),
        ((20, 21, 1), (0, h, 1), (0, w, 1)),
        ((3, 4, 1), (7, 8, 1), (0, w, 1)),
        ((0, n, 5), (1, h, 3), (2, w, 7)),
        ((1, 20, 2), (0, h, 1), (300, 301, 4)),
        ((0, 1, 1), (202, 203, 9), (0, w, 300)),
        ((2, 9, 3), (5, 100, 2), (10, 11, 1)),
    ];
    for (z, y, x) in cases {
        let want = strided(&whole, (h, w), z, y, x);
        let mut got = vec![0u16; want.len()];
        plan.read_box(
            (z.0..z.1, z.2),
            (y.0 as u32..y.1 as u32, y.2),
            (x.0 as u32..x.1 as u32, x.2),
            &mut got,
        )
        .unwrap_or_else(|e| panic!("{z:?} {y:?} {x:?}: {e}"));
        assert!(got == want, "{z:?} {y:?} {x:?}");
    }
    // Level 1 of the pyramid, through the same call.
    let out = temp_dir("read-box-level-1");
    PyramidBuilder::from_dir(&stack)
        .unwrap()
        .output_dir(&out)
        .min_size(80)
        .plan()
        .unwrap()
        .run(&mut |_, _| {}, &CancelFlag::new())
        .unwrap();
    let plan1 = Crop::from_dir(&stack)
        .pyramid_dir(&out)
        .level(1)
        .plan()
        .unwrap();
    let mut level1 = vec![0u16; plan1.samples()];
    plan1
        .crop_to_array(&mut level1, &mut |_, _| {}, &CancelFlag::new())
        .unwrap();
    let (n1, h1, w1) = plan1.shape();
    let want = strided(
        &level1,
        (h1 as usize, w1 as usize),
        (1, n1, 4),
        (0, 101, 10),
        (3, 150, 2),
    );
    let mut got = vec![0u16; want.len()];
    plan1
        .read_box((1..n1, 4), (0..101, 10), (3..150, 2), &mut got)
        .unwrap();
    assert!(got == want);

    // Refusals: out of the crop, empty, step 0, a wrong length or type.
    let usage = |e: Error| assert_eq!(e.kind(), ErrorKind::Usage, "{e}");
    usage(
        plan.read_box((0..22, 1), (0..1, 1), (0..1, 1), &mut [0u16; 22])
            .unwrap_err(),
    );
    usage(
        plan.read_box((0..1, 1), (0..204, 1), (0..1, 1), &mut [0u16; 204])
            .unwrap_err(),
    );
    usage(
        plan.read_box((0..1, 1), (0..1, 1), (5..5, 1), &mut [0u16; 0])
            .unwrap_err(),
    );
    usage(
        plan.read_box((0..1, 0), (0..1, 1), (0..1, 1), &mut [0u16; 1])
            .unwrap_err(),
    );
    let e = plan
        .read_box((0..1, 1), (0..1, 1), (0..2, 1), &mut [0u16; 3])
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Mismatch, "{e}");
    let e = plan
        .read_box((0..1, 1), (0..1, 1), (0..2, 1), &mut [0u8; 2])
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Mismatch, "{e}");
}
