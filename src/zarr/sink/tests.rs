//! Level 0 is the inputs as the cascade read them: each input byte is read
//! once, under every read mode.

use std::path::{Path, PathBuf};

use crate::source::probe::pixel_bytes;
use crate::{CancelFlag, PyramidBuilder, ReadMode, ZarrBuilder};

/// The inputs whose mapped reads run a hook ([`after_mapped_read`]), each
/// with its hook: one per test, on a path of its own, so that tests running at
/// once neither meet nor replace each other's.
static AFTER_MAPPED_READ: std::sync::Mutex<Vec<PathHook>> = std::sync::Mutex::new(Vec::new());

/// Sets `hook` for mapped reads of `path` ([`AFTER_MAPPED_READ`]).
fn hook_mapped_reads(path: &Path, hook: fn(&Path)) {
    let mut hooks = AFTER_MAPPED_READ.lock().unwrap_or_else(|e| e.into_inner());
    hooks.push((path.to_path_buf(), hook));
}

/// Removes the hook of `path`.
fn unhook_mapped_reads(path: &Path) {
    let mut hooks = AFTER_MAPPED_READ.lock().unwrap_or_else(|e| e.into_inner());
    hooks.retain(|(at, _)| at != path);
}

/// A hook and the one path it runs for.
type PathHook = (PathBuf, fn(&Path));

/// Called by `read_rows` after a mapped read, before its check: runs the hook
/// set for `path`, if any.
pub(super) fn after_mapped_read(path: &Path) {
    let hook = AFTER_MAPPED_READ
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|(at, _)| at == path)
        .map(|&(_, hook)| hook);
    if let Some(hook) = hook {
        hook(path);
    }
}

/// Review s27 1d: under `--mmap always`, an input rewritten in place at the
/// same size while its rows are read (a scanner re-exporting) is an error
/// (the file changed while it was read), as under positional reads, not a
/// store of mixed pixels.
#[test]
fn a_mapped_input_rewritten_at_the_same_size_while_read_is_an_error() {
    let dir = temp_dir("rewritten");
    let (stack, victim) = four_slices(&dir);
    hook_mapped_reads(&victim, |path: &Path| {
        // Same size, other pixels, a later time: what an in-place rewrite does.
        use std::io::Write;
        let pixels: Vec<u16> = (0..20 * 15).map(|v| 9000 - v as u16).collect();
        let other = path.with_extension("other");
        crate::write_slice(&other, 20, 15, &pixels).unwrap();
        let bytes = std::fs::read(&other).unwrap();
        assert_eq!(std::fs::metadata(path).unwrap().len(), bytes.len() as u64);
        // In place: the same file (a rename would leave the mapped one as it was).
        let mut file = std::fs::File::options().write(true).open(path).unwrap();
        file.write_all(&bytes).unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
        file.set_modified(later).unwrap();
    });
    let result = write_mapped(&stack, &dir.join("s.ome.zarr"));
    unhook_mapped_reads(&victim);
    let err = result.expect_err("a rewritten input read as if unchanged");
    assert_eq!(err.kind(), crate::ErrorKind::Io, "{err}");
    assert!(
        err.to_string().contains("changed while it was read"),
        "{err}"
    );
    assert_eq!(err.path(), Some(victim.as_path()), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Four 20x15 u16 slices in `dir`/stack, and the third's path (the one the
/// tests change while it is read).
fn four_slices(dir: &Path) -> (PathBuf, PathBuf) {
    let stack = dir.join("stack");
    std::fs::create_dir_all(&stack).unwrap();
    let (w, h) = (20u32, 15u32);
    for i in 0..4u16 {
        let pixels: Vec<u16> = (0..w * h).map(|v| v as u16 + i * 101).collect();
        crate::write_slice(&stack.join(format!("s{i:02}.tif")), w, h, &pixels).unwrap();
    }
    let victim = stack.join("s02.tif");
    (stack, victim)
}

/// `stack` written to `store` with its inputs mapped, in chunks of 4x8x8 (two
/// bands of rows of each 15-row slice: 0..8, 8..15).
fn write_mapped(stack: &Path, store: &Path) -> Result<crate::ZarrSummary, crate::Error> {
    let pyramid = PyramidBuilder::from_dir(stack)
        .unwrap()
        .min_size(4)
        .read_mode(ReadMode::Mmap);
    ZarrBuilder::new(pyramid, store)
        .chunks([4, 8, 8])
        .plan()
        .unwrap()
        .run(&mut |_, _| {}, &CancelFlag::new())
}

/// A fresh folder under the system's temporary folder.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ctstack-sink-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every file under `dir`, by path relative to it, with its bytes.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().to_path_buf();
                files.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

/// Seven 20x15 slices (an odd count, an odd height: the last input is paired
/// with itself, the last row of each is in no level-1 slice) written into
/// stores under each read mode, chunks 4 deep: every input's pixels are
/// brought in exactly once per run, and the stores are the same.
#[test]
fn each_input_byte_is_read_once_and_the_stores_agree() {
    let dir = temp_dir("once");
    let stack = dir.join("stack");
    std::fs::create_dir_all(&stack).unwrap();
    let (w, h) = (20u32, 15u32);
    let files: Vec<PathBuf> = (0..7u16)
        .map(|i| {
            let path = stack.join(format!("s{i:02}.tif"));
            let pixels: Vec<u16> = (0..w * h).map(|v| v as u16 * 3 + i * 101).collect();
            crate::write_slice(&path, w, h, &pixels).unwrap();
            path
        })
        .collect();
    let image = u64::from(w * h * 2);
    let mut stores: Vec<Vec<(PathBuf, Vec<u8>)>> = Vec::new();
    for mode in [ReadMode::Auto, ReadMode::Mmap, ReadMode::Buffered] {
        let before: Vec<u64> = files.iter().map(|f| pixel_bytes(f)).collect();
        let store = dir.join(format!("{}.ome.zarr", mode.policy_name()));
        let pyramid = PyramidBuilder::from_dir(&stack)
            .unwrap()
            .min_size(4)
            .read_mode(mode);
        let summary = ZarrBuilder::new(pyramid, &store)
            .chunks([4, 8, 8])
            .plan()
            .unwrap()
            .run(&mut |_, _| {}, &CancelFlag::new())
            .unwrap();
        assert_eq!(summary.input_bytes, 7 * image, "{mode:?}");
        for (file, before) in files.iter().zip(before) {
            let read = pixel_bytes(file) - before;
            assert_eq!(
                read,
                image,
                "{mode:?}: {} read {read} bytes",
                file.display()
            );
        }
        // The group's attributes name the store, and the record of the inputs
        // holds the chunk files' times; the arrays must be the same.
        stores.push(
            tree(&store)
                .into_iter()
                .filter(|(p, _)| {
                    p != Path::new("zarr.json") && p != Path::new("ctstack-inputs.json")
                })
                .collect(),
        );
    }
    assert!(stores[0].len() > 10, "{}", stores[0].len());
    for s in &stores[1..] {
        let differ: Vec<_> = s
            .iter()
            .zip(&stores[0])
            .filter(|(a, b)| a != b)
            .map(|(a, _)| a.0.display().to_string())
            .collect();
        assert!(
            s.len() == stores[0].len() && differ.is_empty(),
            "{differ:?}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Twenty-nine 23x19 slices written whole and as slabs (in reverse order), with
/// odd chunks (3 x 5 x 7: units of 6 planes by 10 rows, slabs of 3 * 2^L
/// inputs starting mid-unit): the same chunk files.
#[test]
fn slabs_with_odd_chunks_write_the_whole_runs_chunks() {
    let dir = temp_dir("slabs");
    let stack = dir.join("stack");
    std::fs::create_dir_all(&stack).unwrap();
    let (w, h) = (23u32, 19u32);
    for i in 0..29u16 {
        let pixels: Vec<u16> = (0..w * h).map(|v| (v as u16 * 7) ^ (i * 911)).collect();
        crate::write_slice(&stack.join(format!("s{i:02}.tif")), w, h, &pixels).unwrap();
    }
    let pyramid = PyramidBuilder::from_dir(&stack).unwrap().min_size(5);
    let chunks = |store: &Path| {
        tree(store)
            .into_iter()
            .filter(|(p, _)| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                !["zarr.json", "ctstack-inputs.json"].contains(&name.as_str())
            })
            .collect::<Vec<_>>()
    };
    let whole = dir.join("whole.ome.zarr");
    let plan = ZarrBuilder::new(pyramid.clone(), &whole)
        .chunks([3, 5, 7])
        .plan()
        .unwrap();
    plan.run(&mut |_, _| {}, &CancelFlag::new()).unwrap();
    let sliced = dir.join("slabs.ome.zarr");
    let plan = ZarrBuilder::new(pyramid, &sliced)
        .chunks([3, 5, 7])
        .plan()
        .unwrap();
    let align = plan.slab_alignment();
    assert_eq!(align, 3 << (plan.levels().len() - 1));
    assert!(align * 2 < 29, "{align}: fewer than three slabs");
    plan.prepare().unwrap();
    let starts: Vec<usize> = (0..29).step_by(align).collect();
    for &start in starts.iter().rev() {
        let span = start..(start + align).min(29);
        let mut progress = Vec::new();
        plan.run_slab(span, &mut |d, t| progress.push((d, t)), &CancelFlag::new())
            .unwrap();
        // Progress never goes back and ends at the slab's total.
        assert!(
            progress
                .windows(2)
                .all(|p| p[0].0 <= p[1].0 && p[0].1 == p[1].1)
        );
        assert!(progress.last().is_some_and(|&(d, t)| d == t && t > 0));
    }
    plan.finish().unwrap();
    let (a, b) = (chunks(&whole), chunks(&sliced));
    assert!(a.len() > 20, "{}", a.len());
    assert!(a == b, "the slabs' chunks differ from the whole run's");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A chunk the store cannot write comes back as the store's own error: an
/// [`Error::Io`](crate::Error::Io) naming the folder it could not make, with
/// the system's error as the source, not zarrs' message as text.
#[test]
fn a_store_error_keeps_its_kind_file_and_source_through_zarrs() {
    let dir = temp_dir("store-error");
    let stack = dir.join("stack");
    std::fs::create_dir_all(&stack).unwrap();
    for i in 0..4u16 {
        let pixels = vec![i; 16 * 16];
        crate::write_slice(&stack.join(format!("s{i}.tif")), 16, 16, &pixels).unwrap();
    }
    let store = dir.join("s.ome.zarr");
    let plan = ZarrBuilder::new(
        PyramidBuilder::from_dir(&stack).unwrap().min_size(4),
        &store,
    )
    .chunks([2, 8, 8])
    .plan()
    .unwrap();
    plan.prepare().unwrap();
    // A file where level 0's chunk folder goes.
    std::fs::create_dir_all(store.join("0")).unwrap();
    std::fs::write(store.join("0").join("c"), b"in the way").unwrap();
    let err = plan
        .run_slab(0..4, &mut |_, _| {}, &CancelFlag::new())
        .unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::Io, "{err}");
    assert!(
        err.to_string().contains("cannot create store directory"),
        "{err}"
    );
    let source = std::error::Error::source(&err)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .expect("the system's error as the source");
    // The system's own error (on main: an io::Error made of zarrs' text).
    assert!(source.raw_os_error().is_some(), "{source:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A little-endian 16-bit TIFF of `pixels` (`w` x `h`) in strips of `rps` rows,
/// compressed with `compression` (TIFF's code: 5 LZW, 8 Deflate, 32773
/// PackBits, 50000 ZSTD) after the horizontal predictor when `predictor` is 2.
fn compressed_tiff(
    w: u32,
    h: u32,
    pixels: &[u16],
    rps: u32,
    compression: u16,
    predictor: u16,
) -> Vec<u8> {
    compressed_tiff_by(w, h, pixels, rps, compression, predictor, &|_, raw| {
        encode(compression, raw)
    })
}

/// Strip `raw` compressed as `compression` (see [`compressed_tiff`]).
fn encode(compression: u16, raw: &[u8]) -> Vec<u8> {
    match compression {
        5 => crate::decode::probe::lzw_encode(raw),
        8 => {
            use std::io::Write;
            let level = flate2::Compression::default();
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), level);
            z.write_all(raw).unwrap();
            z.finish().unwrap()
        }
        32773 => raw
            .chunks(128)
            .flat_map(|run| {
                let mut literal = vec![(run.len() - 1) as u8];
                literal.extend_from_slice(run);
                literal
            })
            .collect(),
        // With the frame's checksum, as libtiff and imagecodecs write it.
        50000 => {
            let mut zstd = zstd::bulk::Compressor::new(3).unwrap();
            zstd.include_checksum(true).unwrap();
            zstd.compress(raw).unwrap()
        }
        other => panic!("compression {other}"),
    }
}

/// [`compressed_tiff`] with strip `i`'s bytes `raw` compressed by `encode(i, raw)`.
fn compressed_tiff_by(
    w: u32,
    h: u32,
    pixels: &[u16],
    rps: u32,
    compression: u16,
    predictor: u16,
    encode: &dyn Fn(usize, &[u8]) -> Vec<u8>,
) -> Vec<u8> {
    let strips: Vec<Vec<u8>> = pixels
        .chunks((w * rps) as usize)
        .enumerate()
        .map(|(i, rows)| {
            let mut raw = Vec::new();
            for row in rows.chunks(w as usize) {
                let mut left = 0u16;
                for &v in row {
                    let stored = if predictor == 2 {
                        v.wrapping_sub(left)
                    } else {
                        v
                    };
                    raw.extend_from_slice(&stored.to_le_bytes());
                    left = v;
                }
            }
            encode(i, &raw)
        })
        .collect();
    let n = strips.len() as u32;
    let entries: [(u16, u16, u32, u32); 9] = [
        (256, 4, 1, w),
        (257, 4, 1, h),
        (258, 3, 1, 16),
        (259, 3, 1, u32::from(compression)),
        (262, 3, 1, 1),
        (273, 4, n, 0),
        (278, 4, 1, rps),
        (279, 4, n, 0),
        (317, 3, 1, u32::from(predictor)),
    ];
    let ifd = 8 + 2 + 12 * entries.len() as u32 + 4;
    let (offsets_at, counts_at) = (ifd, ifd + 4 * n);
    let mut data_at = counts_at + 4 * n;
    let mut offsets = Vec::new();
    for s in &strips {
        offsets.push(data_at);
        data_at += s.len() as u32;
    }
    let mut file = b"II\x2a\0\x08\0\0\0".to_vec();
    file.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, ty, count, value) in entries {
        let value = match (tag, n) {
            (273, 1) => offsets[0],
            (279, 1) => strips[0].len() as u32,
            (273, _) => offsets_at,
            (279, _) => counts_at,
            _ => value,
        };
        file.extend_from_slice(&tag.to_le_bytes());
        file.extend_from_slice(&ty.to_le_bytes());
        file.extend_from_slice(&count.to_le_bytes());
        file.extend_from_slice(&value.to_le_bytes());
    }
    file.extend_from_slice(&[0; 4]);
    for o in &offsets {
        file.extend_from_slice(&o.to_le_bytes());
    }
    for s in &strips {
        file.extend_from_slice(&(s.len() as u32).to_le_bytes());
    }
    for s in &strips {
        file.extend_from_slice(s);
    }
    file
}

/// The chunk files of `store`, without the metadata that names the store.
fn chunk_files(store: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    tree(store)
        .into_iter()
        .filter(|(p, _)| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            !["zarr.json", "ctstack-inputs.json"].contains(&name.as_str())
        })
        .collect()
}

/// Compressed pages whose strips span several bands (one strip for the whole
/// page, as tifffile, ImageJ and Pillow write them; strips of 3 and 13 rows
/// against bands of 8): every strip is decoded once, each compressed byte read
/// once, under every read mode and codec, and the store is the one the same
/// pixels make uncompressed. On main each band decoded the whole strip again:
/// 5 bands, 5 decodes of every one-strip page.
#[test]
fn compressed_strips_spanning_bands_are_decoded_once() {
    use crate::decode::probe::counts;
    let dir = temp_dir("strips");
    let (w, h, n) = (20u32, 40u32, 5u16);
    let pixels = |i: u16| -> Vec<u16> {
        (0..w * h)
            .map(|v| (v as u16).wrapping_mul(2_971) ^ (i * 4_099))
            .collect()
    };
    let raw = dir.join("raw");
    std::fs::create_dir_all(&raw).unwrap();
    for i in 0..n {
        crate::write_slice(&raw.join(format!("s{i}.tif")), w, h, &pixels(i)).unwrap();
    }
    let write = |stack: &Path, store: &Path, mode: ReadMode| {
        let pyramid = PyramidBuilder::from_dir(stack)
            .unwrap()
            .min_size(4)
            .read_mode(mode);
        ZarrBuilder::new(pyramid, store)
            .chunks([2, 8, 8])
            .plan()
            .unwrap()
            .run(&mut |_, _| {}, &CancelFlag::new())
            .unwrap();
        chunk_files(store)
    };
    let expected = write(&raw, &dir.join("raw.ome.zarr"), ReadMode::Auto);
    assert!(expected.len() > 20, "{}", expected.len());
    let image = u64::from(w * h * 2);
    for (compression, predictor, rps) in [
        (8, 1, h),
        (8, 2, h),
        (50000, 2, h),
        (5, 2, h),
        (5, 1, 13),
        (32773, 1, h),
        (8, 2, 3),
        (50000, 1, 13),
    ] {
        let what = format!("compression {compression}, predictor {predictor}, {rps} rows/strip");
        let stack = dir.join(format!("c{compression}-p{predictor}-r{rps}"));
        std::fs::create_dir_all(&stack).unwrap();
        let files: Vec<(PathBuf, u64)> = (0..n)
            .map(|i| {
                let path = stack.join(format!("s{i}.tif"));
                let file = compressed_tiff(w, h, &pixels(i), rps, compression, predictor);
                std::fs::write(&path, &file).unwrap();
                // The strips' bytes: all of the file after the IFD and its arrays.
                let strips = h.div_ceil(rps);
                let header = 8 + 2 + 12 * 9 + 4 + 8 * strips;
                (path, file.len() as u64 - u64::from(header))
            })
            .collect();
        for mode in [ReadMode::Auto, ReadMode::Mmap, ReadMode::Buffered] {
            let before: Vec<[u64; 3]> = files.iter().map(|(f, _)| counts(f)).collect();
            let store = dir.join(format!("{}.ome.zarr", mode.policy_name()));
            let got = write(&stack, &store, mode);
            assert!(got == expected, "{what}, {mode:?}: the store differs");
            for ((file, compressed), before) in files.iter().zip(before) {
                let after = counts(file);
                let [decoded, read, started] = [0, 1, 2].map(|k| after[k] - before[k]);
                assert_eq!(decoded, image, "{what}, {mode:?}: bytes decoded");
                // Strips of 3 rows: those that straddle two bands are
                // streamed, the others decoded whole, each once.
                if rps > 8 {
                    assert_eq!(read, *compressed, "{what}, {mode:?}: bytes read");
                    assert_eq!(started, u64::from(h.div_ceil(rps)), "{what}, {mode:?}");
                }
            }
            std::fs::remove_dir_all(&store).unwrap();
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A page read in bands reserves the ZSTD window its first frame asks for
/// (1 KiB here, not the 8 MiB cap: a 2752^2 tifffile slice asks 2 MiB; on
/// main, at 8 MiB each, 29 of these 40 open inputs were kept and the others
/// decoded again for every band, as they were in a 64-slice 2752^2 stack); a
/// later strip asking for more (1 MiB) is read chunk by chunk from there on:
/// the same store.
#[test]
fn a_zstd_page_reserves_its_first_frames_window_and_a_wider_strip_still_reads() {
    let dir = temp_dir("zstd-windows");
    let (w, h, n, rps) = (20u32, 40u32, 40u16, 13u32);
    let pixels = |i: u16| -> Vec<u16> {
        (0..w * h)
            .map(|v| (v as u16).wrapping_mul(40_503) ^ (i * 7))
            .collect()
    };
    let write = |stack: &Path, store: &Path| {
        let pyramid = PyramidBuilder::from_dir(stack).unwrap().min_size(4);
        ZarrBuilder::new(pyramid, store)
            .chunks([16, 8, 8])
            .plan()
            .unwrap()
            .run(&mut |_, _| {}, &CancelFlag::new())
            .unwrap();
        chunk_files(store)
    };
    // A frame streamed with a window of 2^20 and no content size in its header.
    let wide = |raw: &[u8]| {
        use zstd::stream::raw::CParameter;
        let mut z = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
        z.set_parameter(CParameter::WindowLog(20)).unwrap();
        z.include_checksum(true).unwrap();
        std::io::Write::write_all(&mut z, raw).unwrap();
        z.finish().unwrap()
    };
    let [narrow_stack, mixed_stack] = ["narrow", "mixed"].map(|s| dir.join(s));
    for i in 0..n {
        let name = format!("s{i}.tif");
        let narrow = compressed_tiff(w, h, &pixels(i), rps, 50000, 2);
        let mixed = compressed_tiff_by(w, h, &pixels(i), rps, 50000, 2, &|k, raw| match k {
            0 => encode(50000, raw),
            _ => wide(raw),
        });
        for (stack, file) in [(&narrow_stack, narrow), (&mixed_stack, mixed)] {
            std::fs::create_dir_all(stack).unwrap();
            std::fs::write(stack.join(&name), file).unwrap();
        }
    }
    use crate::decode::probe::counts;
    let decoded = |stack: &Path, i: u16| counts(&stack.join(format!("s{i}.tif")))[0];
    let expected = write(&narrow_stack, &dir.join("narrow.ome.zarr"));
    let got = write(&mixed_stack, &dir.join("mixed.ome.zarr"));
    assert!(
        got == expected,
        "the store of the mixed-window stack differs"
    );
    // Each byte decoded once where every frame fits; a page with the wider
    // strip read chunk by chunk after it (its strips decoded again per band).
    let image = u64::from(w * h * 2);
    let more: Vec<u16> = (0..n)
        .filter(|&i| decoded(&narrow_stack, i) != image)
        .collect();
    assert!(more.is_empty(), "decoded more than once: {more:?}");
    for i in 0..n {
        assert!(
            decoded(&mixed_stack, i) > image,
            "s{i}: {}",
            decoded(&mixed_stack, i)
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// PNG, JPEG and BMP stacks read in bands: each input decoded (brought in)
/// once, not once per band as on main (PNG: its decoder kept between the
/// bands; JPEG and BMP: held whole, within the budget).
#[test]
fn png_jpeg_and_bmp_inputs_are_read_once() {
    let dir = temp_dir("formats");
    for stack in ["stack_png", "stack_jpeg", "stack_bmp"] {
        let stack = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(stack);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&stack)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !p.to_string_lossy().ends_with("_spr.bmp"))
            .collect();
        files.sort();
        for mode in [ReadMode::Auto, ReadMode::Buffered] {
            let before: Vec<u64> = files.iter().map(|f| pixel_bytes(f)).collect();
            let store = dir.join("s.ome.zarr");
            let pyramid = PyramidBuilder::from_dir(&stack)
                .unwrap()
                .min_size(8)
                .read_mode(mode);
            let plan = ZarrBuilder::new(pyramid, &store)
                .chunks([2, 8, 8])
                .plan()
                .unwrap();
            let level0 = plan.levels()[0];
            let image = u64::from(level0.width)
                * u64::from(level0.height)
                * plan.sample_type().bytes() as u64;
            assert!(
                level0.height > 16,
                "{}: fewer than 3 bands",
                stack.display()
            );
            plan.run(&mut |_, _| {}, &CancelFlag::new()).unwrap();
            let read: Vec<u64> = files
                .iter()
                .zip(before)
                .map(|(f, b)| pixel_bytes(f) - b)
                .collect();
            assert!(
                read.iter().all(|&r| r == image),
                "{}, {mode:?}: {read:?} bytes, each image {image}",
                stack.display()
            );
            std::fs::remove_dir_all(&store).unwrap();
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Hostile one-strip pages read in bands: data that ends early, corrupt data
/// and a Deflate stream or ZSTD frame whose checksum is wrong are format errors naming the
/// file, never a panic or a store vouched for.
#[test]
fn broken_strips_read_in_bands_are_format_errors() {
    let dir = temp_dir("broken-strips");
    let (w, h) = (20u32, 40u32);
    let pixels: Vec<u16> = (0..w * h).map(|v| (v as u16).wrapping_mul(7_919)).collect();
    for (what, compression, damage) in [
        ("truncated Deflate", 8u16, 0usize),
        ("truncated ZSTD", 50000, 0),
        ("truncated LZW", 5, 0),
        ("corrupt LZW", 5, 1),
        ("Deflate checksum", 8, 2),
        ("ZSTD checksum", 50000, 2),
        ("ZSTD without its magic number", 50000, 3),
    ] {
        let stack = dir.join(what.replace(' ', "-"));
        std::fs::create_dir_all(&stack).unwrap();
        for i in 0..2 {
            let mut file = compressed_tiff(w, h, &pixels, h, compression, 1);
            let data_at = 8 + 2 + 12 * 9 + 4 + 8;
            match damage {
                // Keep a third of the strip (the byte count still claims it all:
                // the file is cut).
                0 => file.truncate(data_at + (file.len() - data_at) / 3),
                // Bytes in the middle of the stream overwritten.
                1 => {
                    let mid = data_at + (file.len() - data_at) / 2;
                    file[mid..mid + 8].fill(0xFF);
                }
                // The checksum at the end of the zlib stream (Adler-32) or of
                // the ZSTD frame (XXH64's low 32 bits).
                2 => *file.last_mut().unwrap() ^= 0x55,
                // The frame's first bytes.
                _ => file[data_at..data_at + 4].fill(0xFF),
            }
            std::fs::write(stack.join(format!("s{i}.tif")), &file).unwrap();
        }
        let pyramid = PyramidBuilder::from_dir(&stack).unwrap().min_size(4);
        let result = ZarrBuilder::new(pyramid, dir.join(format!("{i}.ome.zarr", i = what.len())))
            .chunks([2, 8, 8])
            .plan()
            .and_then(|plan| plan.run(&mut |_, _| {}, &CancelFlag::new()));
        let err = result.expect_err(what);
        assert!(
            matches!(err.kind(), crate::ErrorKind::Format | crate::ErrorKind::Io),
            "{what}: {err}"
        );
        assert!(
            err.to_string().contains("s0.tif") || err.to_string().contains("s1.tif"),
            "{what}: {err}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The decoders kept between bands share one budget: a reservation that would
/// pass it is refused (the input is then read chunk by chunk per band), and a
/// decoder dropped gives its share back.
#[test]
fn kept_decoders_stay_within_their_budget() {
    let budget = std::sync::Arc::new(super::StreamBudget::default());
    let zstd = (8 << 20) + (576 << 10);
    let kept: Vec<_> = std::iter::from_fn(|| budget.take(zstd)).collect();
    assert_eq!(kept.len() as u64, super::STREAM_BUDGET / zstd);
    assert!(budget.take(zstd).is_none());
    assert!(budget.take(u64::MAX).is_none());
    drop(kept);
    assert_eq!(budget.0.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert!(budget.take(super::STREAM_BUDGET).is_some());
}

/// An input replaced by rename between two of its bands (rsync -a, `cp -p`:
/// a new file of the same size and time renamed over the old) is an error,
/// never a store whose chunks hold rows of both files (on main the second band
/// was read from the new file and the store declared complete; a rerun then
/// found every chunk done). Mapped reads, where the band reopens by path.
#[cfg(unix)]
#[test]
fn an_input_replaced_between_its_bands_is_an_error() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static DONE: AtomicBool = AtomicBool::new(false);
    let dir = temp_dir("replaced-between-bands");
    let (stack, victim) = four_slices(&dir);
    hook_mapped_reads(&victim, |path: &Path| {
        if DONE.swap(true, Ordering::SeqCst) {
            return; // once, after the first band
        }
        let time = std::fs::metadata(path).unwrap().modified().unwrap();
        let pixels: Vec<u16> = (0..20 * 15).map(|v| 9000 - v as u16).collect();
        let new = path.with_extension("new");
        crate::write_slice(&new, 20, 15, &pixels).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&new)
            .unwrap()
            .set_modified(time)
            .unwrap();
        std::fs::rename(&new, path).unwrap(); // what rsync -a does
    });
    let result = write_mapped(&stack, &dir.join("s.ome.zarr"));
    unhook_mapped_reads(&victim);
    assert!(DONE.load(Ordering::SeqCst), "the hook did not run");
    let err = result.expect_err("rows of two files stored as one input, store declared complete");
    assert!(err.to_string().contains("changed"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A valid ZSTD page whose first strip asks for a window over 8 MiB (a frame
/// streamed with 2^24 declared) and whose shorter last strip does not: the band
/// that ends in the last strip starts a StripRows given the last strip's
/// window, and the first strip's tail, asking for more, is read chunk by chunk
/// (on main it was opened with the window capped at 8 MiB and refused as "ZSTD
/// data is corrupt", a file the whole-chunk decoder reads).
#[test]
fn a_zstd_page_whose_first_strip_asks_a_wider_window_than_its_last_still_reads() {
    let dir = temp_dir("zstd-large-first-strip");
    let (w, h, rps) = (8192u32, 1000u32, 600u32); // strips of 9.8 MB and 6.5 MB
    let [zstd_stack, raw_stack] = ["zstd", "raw"].map(|s| dir.join(s));
    for stack in [&zstd_stack, &raw_stack] {
        std::fs::create_dir_all(stack).unwrap();
    }
    for i in 0..2u16 {
        let pixels: Vec<u16> = (0..w * h).map(|v| (v % 4099) as u16 ^ (i * 7)).collect();
        let name = format!("s{i}.tif");
        // Strip 0: a frame streamed with a 2^24 window declared (no content
        // size), as zstd's levels 20-22 write a 9.8 MB strip; strip 1: level 3.
        let file = compressed_tiff_by(w, h, &pixels, rps, 50000, 1, &|k, raw| {
            use zstd::stream::raw::CParameter;
            let mut z = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
            if k == 0 {
                z.set_parameter(CParameter::WindowLog(24)).unwrap();
            }
            z.include_checksum(true).unwrap();
            std::io::Write::write_all(&mut z, raw).unwrap();
            z.finish().unwrap()
        });
        std::fs::write(zstd_stack.join(&name), file).unwrap();
        crate::write_slice(&raw_stack.join(&name), w, h, &pixels).unwrap();
    }
    let write = |stack: &Path, store: &Path| {
        let pyramid = PyramidBuilder::from_dir(stack).unwrap().min_size(4096);
        ZarrBuilder::new(pyramid, store)
            .chunks([2, 256, 256])
            .compression(crate::ChunkCompression::None)
            .plan()
            .unwrap()
            .run(&mut |_, _| {}, &CancelFlag::new())
            .map(|_| chunk_files(store))
    };
    // The whole-page decoder reads the file (window up to the strip's size).
    {
        // Dropped before the folder is removed (Windows cannot remove open files).
        let whole = crate::Slice::open(zstd_stack.join("s0.tif")).unwrap();
        let raw = crate::Slice::open(raw_stack.join("s0.tif")).unwrap();
        assert!(whole.contiguous::<u16>().unwrap() == raw.contiguous::<u16>().unwrap());
    }
    let expected = write(&raw_stack, &dir.join("raw.ome.zarr")).unwrap();
    let got = write(&zstd_stack, &dir.join("zstd.ome.zarr"))
        .expect("a valid ZSTD page refused when read in bands");
    assert!(got == expected, "other pixels");
    std::fs::remove_dir_all(&dir).unwrap();
}
